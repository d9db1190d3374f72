"""Three plain implementations of ``restrike_pss_events`` and a ``wrapper=True`` one.

pluggy registers a plugin's functions in name order, so ``a_plain``, ``b_first``, ``c_last``:
calling them in registration order, or in pluggy's order without the markers, both give another
sequence than tryfirst / plain / trylast. ``a_plain`` raises after it recorded its call.
"""

from restrike import hookimpl


@hookimpl
def restrike_startup(app):
    app.extensions["probe_order"] = []


@hookimpl(specname="restrike_pss_events")
def a_plain(events, app):
    app.extensions["probe_order"].append("plain")
    raise RuntimeError("probe failure")


@hookimpl(specname="restrike_pss_events", tryfirst=True)
def b_first(events, app):
    app.extensions["probe_order"].append("tryfirst")
    return "first"


@hookimpl(specname="restrike_pss_events", trylast=True)
def c_last(events, app):
    app.extensions["probe_order"].append("trylast")
    return "last"


@hookimpl(specname="restrike_pss_events", wrapper=True)
def d_around(events, app):
    app.extensions["probe_order"].append("wrapper before")
    results = yield
    app.extensions["probe_order"].append(f"wrapper after {results}")
    return results
