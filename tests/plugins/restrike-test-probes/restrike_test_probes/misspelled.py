"""A plugin with a misspelled hook name: restrike must refuse to load it, and say so."""

from restrike import hookimpl


@hookimpl
def restrike_startup(app):
    app.extensions["probe_misspelled"] = "started"


@hookimpl
def restrike_pss_event(events, app):  # the hook is restrike_pss_events
    raise AssertionError("never called")
