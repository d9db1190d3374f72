"""One OBS Studio instance over obs-websocket v5, kept connected by its own thread.

The client is obsws-python (synchronous, so it fits restrike's threads; tested against Debian's
OBS 29 in ``../shared/recipes/obs-websocket``): a ``ReqClient`` socket for requests (one at a
time, under a lock) and an ``EventClient`` socket whose thread delivers ``ReplayBufferSaved`` and
``ReplayBufferStateChanged``. The event thread ends when OBS goes away: the instance thread waits
on it (``join``, no polling), marks the instance disconnected and reconnects with a backoff that
doubles from 0.25 s up to ``reconnect_max``.

On every connect the replay buffer is started when it is not running, and the connection only
counts as ready once OBS reports the output active (``StartReplayBuffer`` returns before that,
and a save sent earlier fails with 501).

obsws-python logs its connection parameters, password included, at INFO, and a traceback for
every refused request: its logger is silenced here, and this module logs plain lines itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import obsws_python as obsws
from obsws_python.error import OBSSDKError, OBSSDKRequestError
from websocket import WebSocketException

from restrike.host.timeutil import now_iso

from .config import InstanceConfig

log = logging.getLogger(__name__)

# It would log the password (connection parameters at INFO) and a traceback per refused request.
logging.getLogger("obsws_python").setLevel(logging.CRITICAL + 1)

CONNECT_TIMEOUT = 5.0
BUFFER_START_TIMEOUT = 10.0
BACKOFF_START = 0.25


class SaveFailed(RuntimeError):
    """A save did not produce a file; the message is in the operator's words."""


def plain_error(exc: BaseException, cfg: InstanceConfig) -> str:
    """What went wrong, for the status line; never contains the password."""
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"OBS is not running, or its WebSocket server is off, at {where}"
    if isinstance(exc, socket.gaierror):
        return f"the computer name {cfg.host} is unknown"
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc).lower():
        return f"OBS at {where} did not answer within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, OBSSDKRequestError):
        return f"OBS refused {exc.req_name} (code {exc.code}): {str(exc).split('message: ')[-1]}"
    if isinstance(exc, OBSSDKError):
        if "no password" in str(exc):
            return "OBS asks for a password, and none is set for this instance"
        return "OBS refused the password (wrong password?)"
    if isinstance(exc, SaveFailed):
        return str(exc)
    if isinstance(exc, (WebSocketException, OSError)):
        return f"the connection to OBS at {where} was lost"
    return f"{type(exc).__name__}: {exc}"


class Instance:
    """One configured OBS instance: its connection thread, status and save."""

    def __init__(self, cfg: InstanceConfig, on_change: Callable[[], None],
                 reconnect_max: float = 10.0):
        self.cfg = cfg
        self._on_change = on_change
        # the last save whose wait ran out: OBS's late "saved" event is handed to it
        self._overdue: Callable[[str], None] | None = None
        self._reconnect_max = reconnect_max
        self._stop = threading.Event()
        self._req_lock = threading.Lock()      # ReqClient: one request at a time
        self._save_lock = threading.Lock()     # one save at a time on this instance
        self._state_lock = threading.Lock()
        self._req: obsws.ReqClient | None = None
        self._events: obsws.EventClient | None = None
        self._buffer_active = threading.Event()
        # the running save's (done, {"path": ...} or {"error": ...})
        self._pending_save: tuple[threading.Event, dict[str, str]] | None = None
        self.ready = threading.Event()          # connected and replay buffer active
        self.buffer_seconds: float | None = None
        self._status: dict[str, Any] = {
            "name": cfg.name, "host": cfg.host, "port": cfg.port, "connected": False,
            "replay_buffer_active": False, "last_error": None, "last_error_at": None,
            "obs_version": None, "connected_at": None, "connects": 0, "saves": 0,
            "save_failures": 0, "buffer_started_by_restrike": 0, "late_saves": 0,
            "unrequested_saves": 0, "last_unrequested_path": None,
        }
        self._thread = threading.Thread(target=self._run, name=f"obs-{cfg.name}", daemon=True)

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> Instance:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._close()
        self._thread.join(timeout)

    def status(self) -> dict:
        with self._state_lock:
            return dict(self._status)

    def _set(self, **changes) -> None:
        with self._state_lock:
            self._status.update(changes)
        self._on_change()

    def _error(self, message: str) -> None:
        with self._state_lock:
            repeated = self._status["last_error"] == message
        if not repeated:  # a refused reconnect every 10 s is one line, not one per attempt
            log.warning("OBS %s: %s", self.cfg.name, message)
        self._set(last_error=message, last_error_at=now_iso())

    def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stop.is_set():
            try:
                events = self._connect()
                delay = BACKOFF_START
                events.worker.join()   # returns when OBS closes the connection
                if not self._stop.is_set():
                    self._error(f"the connection to OBS at {self.cfg.host}:{self.cfg.port} "
                                "was lost")
            except Exception as exc:  # noqa: BLE001 - every failure is a status, then a retry
                if not self._stop.is_set():
                    self._error(plain_error(exc, self.cfg))
            self._close()
            self._set(connected=False, replay_buffer_active=False)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._reconnect_max)

    def _connect(self) -> obsws.EventClient:
        """Connect both clients and make the replay buffer run; the event client, whose thread
        ends when OBS closes the connection."""
        cfg = self.cfg
        kw = dict(host=cfg.host, port=cfg.port, timeout=CONNECT_TIMEOUT,
                  password=cfg.password.get_secret_value() if cfg.password else "")
        self._req = obsws.ReqClient(**kw)
        self._events = events = obsws.EventClient(**kw, subs=obsws.Subs.OUTPUTS)
        events.callback.register([self.on_replay_buffer_saved,
                                  self.on_replay_buffer_state_changed])
        version = self._request("GetVersion")
        self.buffer_seconds = self._buffer_length()
        self._set(connected=True, connected_at=now_iso(), obs_version=version.obs_version,
                  connects=self._status["connects"] + 1)
        log.info("OBS %s connected (%s:%s, OBS %s)", cfg.name, cfg.host, cfg.port,
                 version.obs_version)
        if not self._request("GetReplayBufferStatus").output_active:
            self._start_buffer()
        else:
            self._buffer_active.set()
        self._set(replay_buffer_active=True, last_error=None)
        self.ready.set()
        return events

    def _start_buffer(self) -> None:
        self._buffer_active.clear()
        self._request("StartReplayBuffer")
        # StartReplayBuffer answers before the output runs: wait for OBS to say it started.
        deadline = time.monotonic() + BUFFER_START_TIMEOUT
        while not self._buffer_active.wait(0.25):
            if self._request("GetReplayBufferStatus").output_active:
                break
            if time.monotonic() > deadline or self._stop.is_set():
                raise SaveFailed("OBS's replay buffer did not start within "
                                 f"{BUFFER_START_TIMEOUT:g} s: is OBS's recording folder "
                                 "full or missing? (OBS starts no recording on a full disk)")
        log.info("OBS %s: replay buffer started by restrike", self.cfg.name)
        self._set(buffer_started_by_restrike=self._status["buffer_started_by_restrike"] + 1)

    def _buffer_length(self) -> float | None:
        """OBS's own replay-buffer length (Simple or Advanced output mode), if it says."""
        for category in ("SimpleOutput", "AdvOut"):
            try:
                value = self._request("GetProfileParameter", {"parameterCategory": category,
                                                              "parameterName": "RecRBTime"})
                if value and value.parameter_value:
                    return float(value.parameter_value)
            except (OBSSDKError, ValueError, AttributeError):
                continue
        return None

    def _close(self) -> None:
        self.ready.clear()
        self._buffer_active.clear()
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            pending[1]["error"] = "the connection to OBS was lost during the save"
            pending[0].set()
        for client in (self._events, self._req):
            if client is not None:
                try:
                    client.base_client.ws.close()
                except Exception:  # noqa: BLE001 - closing a dead socket
                    pass

    def _request(self, name: str, data: dict | None = None):
        req = self._req
        if req is None:
            raise SaveFailed(f"OBS {self.cfg.name} is not connected")
        with self._req_lock:
            return req.send(name, data)

    # -- events (on the EventClient's thread) -------------------------------------------------
    def on_replay_buffer_saved(self, data) -> None:
        pending = self._pending_save
        if pending is not None:
            pending[1]["path"] = data.saved_replay_path
            pending[0].set()
        elif self._overdue is not None:
            # our last save outlived its wait (a loaded machine): its file still becomes a clip
            overdue, self._overdue = self._overdue, None
            self._set(late_saves=self._status["late_saves"] + 1)
            overdue(data.saved_replay_path)
        else:
            # Saved by OBS's hotkey or another client of this OBS (every client hears every
            # save): not ours to move or store; counted and said, the file stays where it is.
            log.info("OBS %s saved a replay restrike did not ask for: %s", self.cfg.name,
                     data.saved_replay_path)
            self._set(unrequested_saves=self._status["unrequested_saves"] + 1,
                      last_unrequested_path=data.saved_replay_path)

    def on_replay_buffer_state_changed(self, data) -> None:
        active = bool(data.output_active)
        if active:
            self._buffer_active.set()
        elif data.output_state == "OBS_WEBSOCKET_OUTPUT_STOPPED":
            self._buffer_active.clear()
            self.ready.clear()
            self._error("the replay buffer was stopped in OBS: no replay can be saved")
        self._set(replay_buffer_active=active)

    # -- actions ------------------------------------------------------------------------------
    def save(self, timeout: float, on_late: Callable[[str], None] | None = None) -> str:
        """Save the replay buffer; the saved file's path (as OBS names it). ``SaveFailed``.
        When the wait runs out, ``on_late(path)`` gets the file if OBS reports it later."""
        if not self.ready.is_set():
            raise SaveFailed(f"OBS {self.cfg.name} is not ready: "
                             f"{self.status()['last_error'] or 'not connected'}")
        with self._save_lock:
            done = threading.Event()
            box: dict[str, str] = {}
            self._overdue = None
            self._pending_save = (done, box)
            try:
                self._request("SaveReplayBuffer")
                if not done.wait(timeout):
                    self._overdue = on_late
                    raise SaveFailed(f"OBS {self.cfg.name} did not report the saved replay "
                                     f"within {timeout:g} s")
            except SaveFailed:
                self._set(save_failures=self._status["save_failures"] + 1)
                raise
            except Exception as exc:  # noqa: BLE001
                self._set(save_failures=self._status["save_failures"] + 1)
                raise SaveFailed(plain_error(exc, self.cfg)) from None
            finally:
                self._pending_save = None
            if "error" in box:
                self._set(save_failures=self._status["save_failures"] + 1)
                raise SaveFailed(box["error"])
            self._set(saves=self._status["saves"] + 1)
            return box["path"]

    def switch_scene(self, scene: str) -> None:
        """Switch OBS's program scene (a trigger's ``switch_scene`` action)."""
        try:
            self._request("SetCurrentProgramScene", {"sceneName": scene})
        except Exception as exc:  # noqa: BLE001
            raise SaveFailed(plain_error(exc, self.cfg)) from None
