"""The OBS plugin's commands (instant replay). Passwords never leave: ``obs_get_config`` says
``password_set`` per instance, and no result or push carries one."""

from __future__ import annotations

import concurrent.futures
import errno
import logging
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from restrike.host.errors import InvalidArgument, NotFound, StorageFull, Unavailable

from . import config as config_file
from . import triggers as triggers_file
from .config import ObsConfig
from .service import EXTENSION, ObsService
from .triggers import TriggerTable

log = logging.getLogger(__name__)

ClipId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class InstanceChange(BaseModel):
    """An instance as the settings screen sends it; ``password`` None keeps the saved one of
    the same name, "" removes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    host: str = "127.0.0.1"
    port: int = 4455
    password: Annotated[str, StringConstraints(max_length=256)] | None = None


class ConfigChange(BaseModel):
    """The fields of ``ObsConfig`` to change (the others stay)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: Annotated[list[InstanceChange], Field(max_length=50)] | None = None
    replay_seconds: int | None = None
    start_at_seconds: float | None = None
    autoplay: bool | None = None
    clip_dir: str | None = None
    player: str | None = None
    player_args: Annotated[list[str], Field(max_length=50)] | None = None


def _validation_error(exc: pydantic.ValidationError, prefix: str) -> InvalidArgument:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = f"{prefix}.{loc}" if loc else prefix
    message = err["msg"].removeprefix("Value error, ")
    return InvalidArgument(f"{field}: {message}", field=field)


def _saving(what: str, save) -> None:
    """Run ``save()``; a failure to write is ``storage_full`` or ``unavailable``, said plainly,
    and nothing was changed."""
    try:
        save()
    except OSError as exc:
        log.error("%s not saved: %s", what, exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"the {what} were not saved.") from None
        raise Unavailable(f"the {what} could not be saved: {exc.strerror or exc}") from None


def merge(current: ObsConfig, change: ConfigChange) -> ObsConfig:
    """The new settings, validated (``InvalidArgument`` naming the field otherwise)."""
    data = current.saved()
    given = change.model_dump(exclude_unset=True)
    if change.instances is not None:
        old = {i["name"]: i for i in data["instances"]}
        given["instances"] = [
            {**i.model_dump(), "password": (old.get(i.name, {}).get("password")
                                            if i.password is None else (i.password or None))}
            for i in change.instances]
    data.update(given)
    try:
        return ObsConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc, "config") from None


def commands(app) -> dict:
    def svc() -> ObsService:
        service = app.extensions.get(EXTENSION)
        if service is None:
            raise Unavailable("instant replay (the OBS plugin) is not running")
        return service

    def obs_get_status() -> dict:
        """Per OBS instance: ``name, host, port, connected, replay_buffer_active, last_error,
        last_error_at, obs_version, connected_at, connects, saves, save_failures,
        buffer_started_by_restrike, late_saves, unrequested_saves, last_unrequested_path``;
        plus ``replay_seconds``, ``start_at_seconds``, ``saving``, ``counters``
        (``triggers, saves, clips, coalesced, save_failures, store_failures, scene_switches,
        play_failures``), ``last_error``, ``last_clip_id`` and ``player`` (``replay_play``'s
        state). No password, ever."""
        status = svc().status()
        status["player"] = svc().player.state()
        return status

    def obs_get_config() -> dict:
        """The ``obs`` settings; each instance says ``password_set``, never the password."""
        return svc().config.public()

    def obs_update_config(config: ConfigChange) -> dict:
        """Change the settings (only the fields given), reconnect every instance with them and
        save them in the data dir (``obs-settings.json``, owner-only: it holds passwords).
        An instance sent without ``password`` keeps its saved one; ``""`` removes it.
        Returns ``obs_get_config()``."""
        service = svc()
        new = merge(service.config, config)
        _saving("OBS settings", lambda: config_file.save(new, Path(app.settings.data_dir)))
        service.reconfigure(new)
        return new.public()

    def replay_save_now() -> dict:
        """Save the replay buffer on every connected OBS now (the Replay button, no feed
        needed). Waits for the saves: ``{coalesced, clips, errors}``. ``coalesced`` true: a
        save was running or started less than a second ago, and that clip holds this moment.
        ``unavailable`` when no instance could save."""
        service = svc()
        job = service.trigger("manual")
        try:
            result = job.future.result(service.config.save_timeout + 30)
        except concurrent.futures.TimeoutError:
            raise Unavailable("the save did not finish in time; see obs_get_status") from None
        if not result["coalesced"] and not result["clips"]:
            raise Unavailable("; ".join(result["errors"]) or "no clip was saved")
        return result

    def get_replay_clips(match_id: ClipId | None = None,
                         athlete: Annotated[str, StringConstraints(max_length=100)] | None = None,
                         limit: Annotated[int, Field(ge=1, le=500)] = 50) -> list[dict]:
        """Stored clips, newest first: ``id, path, file_exists, instance, match_id,
        match_number, category, court, trigger, created_at, duration_s, blue, red`` and
        ``events`` (the timeline: ``event_id, offset_ms, code, category, raw``). ``athlete``
        matches either athlete's name or country. A clip whose file is gone has
        ``file_exists: false``."""
        db = app.extensions.get("database")
        if db is None:
            raise Unavailable("the database is not running")
        return db.clips(match_id=match_id, athlete=athlete or None, limit=limit)

    def replay_play(clip_id: ClipId,
                    offset_seconds: Annotated[float, Field(ge=0, le=3600)] | None = None) -> dict:
        """Play a clip in mpv from ``offsetSeconds`` (default ``start_at_seconds``); the main
        window hides until mpv exits. Returns the player's state (``playing, clip_id, path,
        position, speed, paused``). ``unavailable`` when mpv is not installed or the clip's
        file is missing; ``not_found`` for an unknown clip."""
        return svc().play(clip_id, offset_seconds)

    def replay_control(action: Literal["pause", "resume", "toggle_pause", "frame_step",
                                       "frame_back", "speed", "seek", "stop"],
                       value: Annotated[float, Field(ge=0, le=3600)] | None = None) -> dict:
        """Control the playing clip: pause/resume, one frame forward/back, ``speed`` (value
        0.25, 0.5 or 1), ``seek`` (value: seconds into the clip), stop. Returns the state."""
        if action in ("speed", "seek") and value is None:
            raise InvalidArgument(f"{action} needs a value", field="value")
        if action == "speed" and value not in (0.25, 0.5, 1.0):
            raise InvalidArgument("speed must be 0.25, 0.5 or 1", field="value")
        return svc().player.control(action, value)

    def replay_delete(clip_id: ClipId) -> dict:
        """Delete a clip: its row, its timeline and its file (a file already gone is fine).
        ``{id, path, file_deleted}``."""
        db = app.extensions.get("database")
        if db is None:
            raise Unavailable("the database is not running")
        path = db.delete_clip(clip_id)
        if path is None:
            raise NotFound(f"there is no clip {clip_id}", field="clipId")
        deleted = False
        try:
            Path(path).unlink()
            deleted = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("clip %s: the file %s could not be deleted: %s", clip_id, path, exc)
        return {"id": clip_id, "path": path, "file_deleted": deleted}

    def replay_get_triggers() -> list[dict]:
        """The trigger table: ``code, action, scene, scope, throttle, enabled`` per row."""
        return [t.model_dump() for t in svc().matcher.table]

    def replay_set_triggers(triggers: TriggerTable) -> list[dict]:
        """Replace the trigger table (saved in the data dir). ``code`` is a PSS wire code
        (``ch1``), ``action`` ``save_replay`` or ``switch_scene`` (needs ``scene``), ``scope``
        ``always``/``tournament``/``day``, ``throttle`` ``none``/``round``/``match``."""
        _saving("triggers", lambda: triggers_file.save(triggers, Path(app.settings.data_dir)))
        svc().matcher.set_table(triggers)
        return [t.model_dump() for t in triggers]

    return {f.__name__: f for f in (
        obs_get_status, obs_get_config, obs_update_config, replay_save_now, get_replay_clips,
        replay_play, replay_control, replay_delete, replay_get_triggers, replay_set_triggers)}

