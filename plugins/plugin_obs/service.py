"""The OBS plugin's per-app service: instances, the save worker, clips, the player.

A trigger (a feed event of the trigger table, ``replay_save_now``, the Replay button) becomes
one *save job*; the ``obs-replay`` thread runs it: SaveReplayBuffer on every ready instance at
once, each saved file moved to the clip folder under a unique name, stored through the database
plugin (``app.extensions["database"].store_clip``, duck-typed: this plugin never imports it),
pushed as ``replay_clip``, and, with ``autoplay``, the first clip played.

Coalescing: OBS names replays to the second and overwrites, and a SaveReplayBuffer sent while a
save runs gives no event at all. So a trigger that arrives while a job is pending or running,
or within ``MIN_SAVE_GAP`` s of the last save's start, starts no save: it is counted in
``coalesced`` (the clip being saved already holds that moment), logged, and the manual command
says so. Nothing overwrites a clip: each file is renamed to ``<instance>_<UTC time, µs>``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from restrike.host.errors import NotFound, Unavailable
from restrike.host.timeutil import now_iso

from .config import ObsConfig
from .connection import Instance, SaveFailed
from .player import Player
from .triggers import Matcher, Trigger

if TYPE_CHECKING:
    from restrike.host.app import App

log = logging.getLogger(__name__)

EXTENSION = "obs"
MIN_SAVE_GAP = 1.0
"""Seconds between two saves' starts: OBS's file names are unique to the second only."""


def probe_duration(path: str) -> float | None:
    """The clip's real length from ffprobe (OBS cuts at keyframes, so it differs from the
    buffer's length by up to a keyframe interval); None without ffprobe or a readable file."""
    exe = shutil.which("ffprobe")
    if exe is None or not Path(path).is_file():
        return None
    try:
        out = subprocess.run([exe, "-v", "error", "-show_entries", "format=duration", "-of",
                              "default=nw=1:nk=1", "--", path], capture_output=True, text=True,
                             timeout=10, check=True)
        return round(float(out.stdout.strip()), 3)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@runtime_checkable
class ClipDatabase(Protocol):
    """What this plugin uses of ``app.extensions["database"]`` (the database plugin's
    ``DatabaseService``, which it never imports)."""

    def store_clip(self, **clip: Any) -> dict: ...

    def clip(self, clip_id: int) -> dict | None: ...


@dataclass(eq=False)  # a job is itself, not its fields
class _Job:
    """One trigger's save request; ``future`` gets ``{coalesced, clips, errors}``."""

    trigger: str
    ref: dict | None
    court: str | None
    coalesced: bool = False
    """No save was started for it: the save running or just started holds that moment."""
    future: concurrent.futures.Future[dict] = field(default_factory=concurrent.futures.Future)


class ObsService:
    """What ``app.extensions["obs"]`` holds."""

    def __init__(self, app: App, config: ObsConfig, triggers: list[Trigger]):
        self.app = app
        self.config = config
        self.matcher = Matcher(triggers)
        self.instances: dict[str, Instance] = {}
        self.counters = {"triggers": 0, "saves": 0, "clips": 0, "coalesced": 0,
                         "save_failures": 0, "store_failures": 0, "scene_switches": 0,
                         "play_failures": 0}
        self.last_error: str | None = None
        self.last_clip: dict | None = None
        self._lock = threading.Condition()
        self._job: _Job | None = None
        self._saving = False
        self._last_start = -1e18
        self._stopping = False
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="obs-save")
        self.player = Player(config.player, config.player_args,
                             lambda: getattr(app, "window", None),
                             lambda state: app.push.emit("replay_player", state,
                                                         latest_only=True))
        self._worker = threading.Thread(target=self._run, name="obs-replay", daemon=True)

    # -- life -----------------------------------------------------------------------------
    def start(self) -> ObsService:
        self._start_instances()
        self._worker.start()
        return self

    def _start_instances(self) -> None:
        for cfg in self.config.instances:
            self.instances[cfg.name] = Instance(cfg, self._changed,
                                                self.config.reconnect_max).start()
        if not self.config.instances:
            log.info("no OBS instance configured: instant replay idles")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for inst in self.instances.values():
            inst.stop()
        self._worker.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.player.close()

    def reconfigure(self, config: ObsConfig) -> None:
        """Apply new settings: every instance reconnects with its new address/password."""
        old, self.instances = self.instances, {}
        for inst in old.values():
            inst.stop()
        self.config = config
        self.player.program, self.player.extra_args = config.player, list(config.player_args)
        self._start_instances()
        self._changed()

    # -- status ---------------------------------------------------------------------------
    def status(self) -> dict:
        """Per instance: connected, replay buffer active, last error; the counters."""
        with self._lock:
            counters, saving = dict(self.counters), self._saving or self._job is not None
        return {
            "instances": [inst.status() for inst in self.instances.values()],
            "replay_seconds": self.config.replay_seconds,
            "start_at_seconds": self.config.start_at_seconds,
            "saving": saving, "counters": counters, "last_error": self.last_error,
            "last_clip_id": (self.last_clip or {}).get("id"),
        }

    def _changed(self) -> None:
        self.app.push.emit("replay_status", self.status(), latest_only=True)

    def _fail(self, message: str, counter: str) -> None:
        log.error("instant replay: %s", message)
        with self._lock:
            self.counters[counter] += 1
        self.last_error = message

    # -- triggers -------------------------------------------------------------------------
    def on_events(self, events: list) -> None:
        """The feed (dispatch thread): fire the trigger table's rows; never blocks."""
        context = self._context()
        for ev in events:
            for row in self.matcher.match(ev, context):
                court = f"{getattr(ev, 'source_ip', '')}:{getattr(ev, 'source_port', '')}"
                if row.action == "save_replay":
                    ref = {"session_id": getattr(ev, "session_id", None),
                           "seq": getattr(ev, "seq", None),
                           "received_at": getattr(ev, "received_at", None),
                           "raw": getattr(ev, "raw", None)}
                    self.trigger(row.code, ref, court)
                elif row.scene is not None:  # switch_scene: validation made it name a scene
                    self._pool.submit(self._switch_scene, row.scene)

    def _context(self) -> tuple:
        """(tournament id, day id) of incoming events, for trigger scopes; (None, None) when
        the database does not say."""
        try:
            db: Any = self.app.extensions["database"]  # any shape: a wrong one is caught below
            context = db.writer.context
            return tuple(context() if callable(context) else context)[:2]
        except Exception:  # noqa: BLE001 - no database, or another shape: no context
            return (None, None)

    def trigger(self, name: str, ref: dict | None = None, court: str | None = None) -> _Job:
        """Ask for a save; returns the job (``coalesced`` set when none was started)."""
        job = _Job(name, ref, court)
        if not self.instances and name != "manual":
            # No OBS configured: instant replay is off; a challenge is not a failure then.
            job.coalesced = False
            job.future.set_result({"coalesced": False, "clips": [], "errors": []})
            return job
        with self._lock:
            self.counters["triggers"] += 1
            busy = self._saving or self._job is not None
            recent = time.monotonic() - self._last_start < MIN_SAVE_GAP
            if busy or recent or self._stopping:
                self.counters["coalesced"] += 1
                job.coalesced = True
                log.info("replay trigger %s coalesced: a save %s", name,
                         "is in progress" if busy else "started less than 1 s ago")
                job.future.set_result({"coalesced": True, "clips": [], "errors": []})
            else:
                job.coalesced = False
                self._job = job
                self._lock.notify_all()
        self._changed()
        return job

    def _late(self, inst: Instance, job: _Job):
        """``on_late`` of a save: OBS confirmed it after the wait ran out; the file is stored
        as that job's clip all the same (off the event thread), not left an orphan."""

        def store(path: str) -> None:
            log.warning("OBS %s confirmed a save after %g s: storing it", inst.cfg.name,
                        self.config.save_timeout)
            try:
                self._pool.submit(self._store, inst, path, now_iso(), job)
            except RuntimeError:  # shutting down: the file stays where OBS put it
                log.warning("not stored (restrike is stopping): %s", path)

        return store

    def _switch_scene(self, scene: str) -> None:
        for inst in list(self.instances.values()):
            try:
                inst.switch_scene(scene)
                with self._lock:
                    self.counters["scene_switches"] += 1
            except SaveFailed as exc:
                self._fail(f"{inst.cfg.name}: scene {scene!r} not switched: {exc}",
                           "save_failures")

    # -- the save worker ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    job = self._job
                    if job is not None:
                        break
                    self._lock.wait()
                previous_start = self._last_start
                self._saving, self._last_start = True, time.monotonic()
            try:
                result = self._save_all(job)
            except Exception as exc:  # the worker must survive anything (logged with its trace)
                log.exception("instant replay: the save failed")
                result = {"coalesced": False, "clips": [], "errors": [str(exc)]}
            sent = result.pop("sent", True)
            with self._lock:
                self._job, self._saving = None, False
                # the gap protects OBS's file names: only a save sent to OBS counts
                self._last_start = time.monotonic() if sent else previous_start
            job.future.set_result(result)
            self._changed()
            if result["clips"] and self.config.autoplay:
                try:
                    self.play(result["clips"][0]["id"])
                except Exception as exc:  # noqa: BLE001 - mpv missing: say it, go on
                    self._fail(f"the clip could not be played: {exc}", "play_failures")

    def _save_all(self, job: _Job) -> dict:
        ready = [inst for inst in self.instances.values() if inst.ready.is_set()]
        if not ready:
            message = ("no OBS instance is connected: nothing saved" if self.instances
                       else "no OBS instance is configured: nothing saved")
            self._fail(message, "save_failures")
            return {"coalesced": False, "clips": [], "errors": [message], "sent": False}
        futures = {self._pool.submit(inst.save, self.config.save_timeout,
                                     self._late(inst, job)): inst
                   for inst in ready}
        clips, errors = [], []
        for future in concurrent.futures.as_completed(futures):
            inst = futures[future]
            try:
                path = future.result()
            except SaveFailed as exc:
                errors.append(f"{inst.cfg.name}: {exc}")
                self._fail(f"{inst.cfg.name}: {exc}", "save_failures")
                continue
            saved_at = now_iso()
            with self._lock:
                self.counters["saves"] += 1
            clip = self._store(inst, path, saved_at, job)
            if clip is not None:
                clips.append(clip)
        clips.sort(key=lambda c: c["id"])
        return {"coalesced": False, "clips": clips, "errors": errors, "sent": True}

    def _clip_dir(self) -> Path:
        return Path(self.config.clip_dir or Path(self.app.settings.data_dir) / "clips")

    def _move(self, inst: Instance, path: str, saved_at: str) -> str:
        """Move OBS's file into the clip folder under a name unique to the microsecond; a file
        that is not on this computer (a remote OBS) stays where OBS wrote it."""
        src = Path(path)
        if not src.is_file():
            return path
        stamp = saved_at.replace("-", "").replace(":", "").replace(".", "-").rstrip("Z")
        target = self._clip_dir() / f"{inst.cfg.name.replace(' ', '_')}_{stamp}{src.suffix}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, target)
            return str(target)
        except OSError as exc:
            self._fail(f"the clip could not be moved to {target.parent} ({exc.strerror}); "
                       f"it stays at {path}", "store_failures")
            return path

    def _store(self, inst: Instance, path: str, saved_at: str, job: _Job) -> dict | None:
        path = self._move(inst, path, saved_at)
        duration = (probe_duration(path) or inst.buffer_seconds
                    or float(self.config.replay_seconds))
        size = Path(path).stat().st_size if Path(path).is_file() else None
        db = self.app.extensions.get("database")
        if not isinstance(db, ClipDatabase):
            self._fail(f"the database is not running: the clip {path} is not in the archive",
                       "store_failures")
            return None
        try:
            stored = db.store_clip(path=path, instance=inst.cfg.name, duration_s=duration,
                                   saved_at=saved_at, trigger=job.trigger,
                                   trigger_ref=job.ref, court=job.court, file_size=size)
            clip = db.clip(stored["id"])
        except Exception as exc:  # noqa: BLE001 - storage full, writer down: say it
            self._fail(f"the clip {path} could not be stored: {exc}", "store_failures")
            return None
        if clip is None:  # deleted (replay_delete) between its write and its read back
            self._fail(f"the clip {path} was deleted as it was stored", "store_failures")
            return None
        with self._lock:
            self.counters["clips"] += 1
        self.last_clip = clip
        log.info("replay saved: clip %s from %s (%s, %d events)", clip["id"], inst.cfg.name,
                 job.trigger, len(clip["events"]))
        self.app.push.emit("replay_clip", clip)
        return clip

    # -- playback -------------------------------------------------------------------------
    def play(self, clip_id: int, offset: float | None = None) -> dict:
        db = self.app.extensions.get("database")
        if not isinstance(db, ClipDatabase):
            raise Unavailable("the database is not running")
        clip = db.clip(clip_id)
        if clip is None:
            raise NotFound(f"there is no clip {clip_id}", field="clipId")
        start = self.config.start_at_seconds if offset is None else offset
        start = max(0.0, min(start, float(clip["duration_s"])))
        return self.player.play(clip, start)
