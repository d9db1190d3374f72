"""The database plugin's hook implementations: storage of the PSS feed in SQLite or PostgreSQL.

Start-up opens ``<data_dir>/restrike_vta.db`` (or ``--database-url``), applies the migrations,
starts the writer thread and the reader pool, and keeps them in ``app.extensions["database"]``
(a ``DatabaseService``).
A damaged file is moved aside and a fresh one started; a path that cannot be opened stops the
start with an error naming it (``recovery.py``).
The ``database`` config section is validated by ``service.DatabaseConfig``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic

from restrike.host.hookspecs import hookimpl
from restrike.host.settings import section_error
from restrike.pss.session import UdpSession

from . import (
    archive_commands,
    courts,
    export,
    maintenance,
    options,
    queries,
    statistics_commands,
    tournaments,
)
from .backend import SQLITE, DatabaseUrl
from .running import EXTENSION
from .service import DB_FILE, DatabaseConfig, DatabaseService

log = logging.getLogger(__name__)

# Every module that offers commands has one ``commands(app) -> {name: function}``.
_COMMAND_MODULES = (queries, tournaments, export, maintenance, archive_commands,
                    statistics_commands, courts)


@hookimpl
def restrike_addoption(parser):
    """``--database-url URL`` (SQLite file or PostgreSQL server) and ``--court NAME`` (see
    ``options``)."""
    options.add_options(parser)


@hookimpl
def restrike_register_commands(register, app):
    """Register the database commands; each one looks the service up when it is called."""
    for module in _COMMAND_MODULES:
        for name, fn in module.commands(app).items():
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
        raise section_error(exc, EXTENSION) from None
    target = config.url or Path(app.settings.data_dir) / DB_FILE
    notifier = courts.start_notifier(app)
    backend = DatabaseUrl.parse(config.url).backend if config.url else SQLITE
    service = app.extensions[EXTENSION] = DatabaseService.open(
        target, config, as_job=app.jobs.run, progress=archive_commands.progress_to(app),
        on_commit=courts.change_source(notifier, backend), data_dir=Path(app.settings.data_dir))
    courts.start_listener(app, service, notifier)
    log.info("court %r", config.court)


@hookimpl
def restrike_shutdown(app):
    """Stop listening, commit what is queued and close the writer and the pool."""
    courts.stop_listener(app)
    service = app.extensions.pop(EXTENSION, None)
    if service is not None:
        service.close()
    courts.stop_notifier(app)


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
    """Record a UDP session's start or stop (a ``pss.session.UdpSession``) in
    ``udp_server_sessions`` (through the writer). Anything else is validated as one first: a
    record that is not a session raises here, before it reaches the writer."""
    service = app.extensions.get(EXTENSION)
    if service is not None:
        service.writer.submit_session(UdpSession.model_validate(session))


@hookimpl
def restrike_ingest_stats(app):
    """The ``storage`` section of ``get_udp_stats``: the writer's counters."""
    service = app.extensions.get(EXTENSION)
    if service is None:
        return {"storage": {"running": False}}
    return {"storage": {"running": True, **service.writer.stats()}}

