"""The UDP plugin's hooks: ingest of the PSS feed (``service.UdpService``) and its commands."""

from __future__ import annotations

from pydantic import ValidationError

from restrike.host.hookspecs import hookimpl
from restrike.host.settings import section_error

from . import options, simulator
from .commands import commands
from .service import service_of


@hookimpl
def restrike_addoption(parser):
    """``--udp-bind``, ``--udp-port``, ``--demo`` and ``--no-udp`` (see ``options``)."""
    options.add_options(parser)


@hookimpl
def restrike_register_commands(register, app):
    try:
        service_of(app)  # reads and validates the settings: a bad config section fails here
        options.demo_requested(app.settings)
        options.udp_off(app.settings)
    except ValidationError as exc:
        raise section_error(exc, options.SECTION) from None
    for name, function in commands(app).items():
        register(name, function)


@hookimpl
def restrike_startup(app):
    service_of(app).startup()


@hookimpl
def restrike_shutdown(app):
    service = app.extensions.get("udp")
    if service is not None:
        service.shutdown()


@hookimpl
def restrike_pss_events(events, app):
    service = app.extensions.get("udp")
    if service is not None:
        service.on_events(events)


@hookimpl
def restrike_cli_subcommands():
    return {"simulate": simulator.main}
