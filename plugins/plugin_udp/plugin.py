"""The UDP plugin's hooks: ingest of the PSS feed (``service.UdpService``) and its commands."""

from __future__ import annotations

from restrike.host.hookspecs import hookimpl

from . import simulator
from .commands import commands
from .service import service_of


@hookimpl
def restrike_register_commands(register, app):
    service_of(app)  # reads and validates the settings: a bad config section fails here
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
