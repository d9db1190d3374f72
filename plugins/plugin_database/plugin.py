"""The database plugin's hook implementations: storage of the PSS feed in SQLite.

Start-up opens ``<data_dir>/restrike_vta.db``, applies the migrations, starts the writer thread
and the reader pool, and keeps them in ``app.extensions["database"]`` (a ``DatabaseService``).
A damaged file is moved aside and a fresh one started; a path that cannot be opened stops the
start with an error naming it (``recovery.py``).
The ``database`` config section is validated by ``service.DatabaseConfig``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic

from restrike.host.errors import Unavailable
from restrike.host.hookspecs import hookimpl

from . import (export, maintenance, maintenance_commands, queries, statistics_commands,
               tournaments)
from .service import DB_FILE, DatabaseConfig, DatabaseService

log = logging.getLogger(__name__)

EXTENSION = "database"
_COMMAND_MODULES = (queries, tournaments, export, maintenance, statistics_commands)


def service_of(app) -> DatabaseService:
    """The running ``DatabaseService`` of ``app``; ``Unavailable`` when it is not started."""
    service = app.extensions.get(EXTENSION)
    if service is None:
        raise Unavailable("the database is not running")
    return service


@hookimpl
def restrike_register_commands(register, app):
    """Register the database commands; each one looks the service up when it is called."""

    def get_service() -> DatabaseService:
        return service_of(app)

    for module in _COMMAND_MODULES:
        for name, fn in module.commands(get_service).items():
            register(name, fn)
    for name, fn in maintenance_commands.commands(get_service, app).items():
        register(name, fn)


@hookimpl
def restrike_startup(app):
    """Open and migrate the database file, start the writer and the pool.

    A damaged file is moved aside (``database_get_info().recovered_from``); an unopenable path
    raises ``DatabaseOpenError`` naming it, which stops the start."""
    section = app.settings.config.get("database", {})
    try:
        config = DatabaseConfig.model_validate(section)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'database'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ValueError(f"config section 'database' is invalid: {problems}") from None
    path = Path(app.settings.data_dir) / DB_FILE
    app.extensions[EXTENSION] = DatabaseService.open(path, config)


@hookimpl
def restrike_shutdown(app):
    """Commit what is queued and close the writer and the pool."""
    service = app.extensions.pop(EXTENSION, None)
    if service is not None:
        service.close()


@hookimpl
def restrike_pss_events(events, app):
    """Queue the batch for the writer. A full queue makes ingest wait for room up to
    ``database.submit_wait`` s (back-pressure: the backlog stays in the UDP receiver's bounded
    queue), then drops the batch and counts it."""
    service = app.extensions.get(EXTENSION)
    if service is None:
        # The host starts the database before UDP and stops it after: this is a bug, say it.
        log.error("%d events arrived while the database is not running: not stored",
                  len(events))
        return
    service.writer.submit(events, wait=service.config.submit_wait)


@hookimpl
def restrike_udp_session(session, app):
    """Record a UDP session's start or stop in ``udp_server_sessions`` (through the writer)."""
    service = app.extensions.get(EXTENSION)
    if service is not None:
        service.writer.submit_session(session)


@hookimpl
def restrike_ingest_stats(app):
    """The ``storage`` section of ``get_udp_stats``: the writer's counters."""
    service = app.extensions.get(EXTENSION)
    if service is None:
        return {"storage": {"running": False}}
    return {"storage": {"running": True, **service.writer.stats()}}

