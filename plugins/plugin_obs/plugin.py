"""The OBS plugin's hooks: instant video replay (see ``docs/replay.md``).

Reads only plain attributes of the ingested events (``ev.event.code``, ``ev.raw``,
``ev.received_at``, ``ev.session_id``, ``ev.seq``, ``ev.source_ip/port``) and reaches the
database through ``app.extensions["database"]``, so it imports neither the UDP nor the database
plugin, and restrike runs the same without it.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from restrike.host.hookspecs import hookimpl

from . import config as config_file
from . import triggers as triggers_file
from .commands import commands
from .service import EXTENSION, ObsService


def _problems(exc: pydantic.ValidationError, section: str) -> str:
    return "; ".join(f"{section}.{'.'.join(map(str, e['loc']))}: {e['msg']}".replace(
        ": Value error, ", ": ").rstrip(".") for e in exc.errors(include_url=False))


@hookimpl
def restrike_register_commands(register, app):
    """The instant-replay commands (``obs_*``, ``replay_*``, ``get_replay_clips``)."""
    for name, fn in commands(app).items():
        register(name, fn)


@hookimpl
def restrike_startup(app):
    """Validate the ``obs`` settings, start one connection thread per OBS instance and the
    save worker. A bad ``obs`` section stops the start with a message naming the field."""
    data_dir = Path(app.settings.data_dir)
    try:
        config = config_file.load(app.settings.config.get("obs", {}), data_dir)
    except pydantic.ValidationError as exc:
        raise ValueError(f"config section 'obs' is invalid: {_problems(exc, 'obs')}") from None
    try:
        table = triggers_file.load(data_dir)
    except pydantic.ValidationError as exc:
        raise ValueError(f"{triggers_file.TRIGGERS_FILE} is invalid: "
                         f"{_problems(exc, 'triggers')}") from None
    app.extensions[EXTENSION] = ObsService(app, config, table).start()


@hookimpl
def restrike_shutdown(app):
    """Stop the connections, the save worker and a playing mpv."""
    service = app.extensions.pop(EXTENSION, None)
    if service is not None:
        service.stop()


@hookimpl
def restrike_pss_events(events, app):
    """Fire the trigger table's rows (a challenge saves the replay); never blocks."""
    service = app.extensions.get(EXTENSION)
    if service is not None:
        service.on_events(events)
