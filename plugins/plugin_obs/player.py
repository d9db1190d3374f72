"""Clip playback in mpv, controlled over its JSON IPC (``--input-ipc-server``).

One player at a time: playing another clip stops the current one. While mpv runs, the main
window (``app.window`` in window mode, None headless) is hidden; a watcher thread shows it again
when mpv exits, however it exits. mpv missing is an ``Unavailable`` error in plain words and
changes nothing else.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from restrike.host.errors import Unavailable

log = logging.getLogger(__name__)

IPC_TIMEOUT = 5.0
MAX_IPC_LINE = 1_000_000

# Speeds the operator can pick: slow motion for the referee, then normal.
SPEEDS = (0.25, 0.5, 1.0)

# control action -> mpv command (value filled in where needed)
_COMMANDS: dict[str, Callable[[float | None], list]] = {
    "pause": lambda v: ["set_property", "pause", True],
    "resume": lambda v: ["set_property", "pause", False],
    "toggle_pause": lambda v: ["cycle", "pause"],
    "frame_step": lambda v: ["frame-step"],
    "frame_back": lambda v: ["frame-back-step"],
    "speed": lambda v: ["set_property", "speed", v],
    "seek": lambda v: ["seek", v, "absolute+exact"],
    "stop": lambda v: ["quit"],
}


class Window(Protocol):
    """What the player uses of the main window (pywebview's ``Window``)."""

    def hide(self) -> None: ...

    def show(self) -> None: ...


class Ipc:
    """A line-based JSON IPC connection to one mpv; requests are answered by request id."""

    def __init__(self, path: str, timeout: float = IPC_TIMEOUT):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def command(self, *args):
        """Send one command; its ``data`` (``RuntimeError`` with mpv's error otherwise)."""
        with self._lock:
            rid = next(self._ids)
            self._sock.sendall(json.dumps({"command": list(args), "request_id": rid}).encode()
                               + b"\n")
            while True:
                msg = self._read()
                if msg.get("request_id") == rid:
                    if msg.get("error") != "success":
                        raise RuntimeError(f"mpv: {msg.get('error')}")
                    return msg.get("data")

    def _read(self) -> dict:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("mpv closed its IPC connection")
            self._buf += chunk
            if len(self._buf) > MAX_IPC_LINE:
                raise ConnectionError("mpv sent an over-long IPC line")
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _wait_for_socket(path: str, proc: subprocess.Popen, timeout: float) -> Ipc:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise Unavailable(f"mpv stopped at once (exit status {proc.returncode})")
        try:
            return Ipc(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise Unavailable("mpv did not open its control socket within "
                                  f"{timeout:g} s") from None
            time.sleep(0.02)  # mpv creates the socket a few ms after it starts


class Player:
    """The mpv process of this app, if any."""

    def __init__(self, program: str, extra_args: list[str], get_window: Callable[[], Window | None],
                 on_change: Callable[[dict], None]):
        self.program = program
        self.extra_args = list(extra_args)
        self._get_window = get_window
        self._on_change = on_change
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ipc: Ipc | None = None
        self._clip: dict | None = None
        self._ipc_path: str | None = None
        self._dir = tempfile.mkdtemp(prefix="restrike-mpv-")
        self.plays = 0

    def play(self, clip: dict, start: float) -> dict:
        """Start mpv on ``clip['path']`` at ``start`` s; hide the window until mpv exits."""
        exe = shutil.which(self.program)
        if exe is None:
            raise Unavailable(f"the video player {self.program} is not installed: clips cannot "
                              "be played (install it: apt install mpv)")
        path = clip["path"]
        if not Path(path).is_file():
            raise Unavailable(f"the clip's file is missing: {path}")
        self.stop()
        sock = os.path.join(self._dir, f"mpv-{os.getpid()}-{self.plays}.sock")
        args = [exe, f"--input-ipc-server={sock}", f"--start={start:.3f}", "--keep-open=yes",
                "--hr-seek=yes", "--force-window=yes", "--no-terminal", "--title=restrike replay",
                "--osd-level=2", *self.extra_args, "--", path]
        with self._lock:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                ipc = _wait_for_socket(sock, proc, IPC_TIMEOUT)
            except BaseException:
                _kill(proc)
                raise
            self._proc, self._ipc, self._clip, self._ipc_path = proc, ipc, clip, sock
            self.plays += 1
        window = self._get_window()
        if window is not None:
            with contextlib.suppress(Exception):
                window.hide()
        threading.Thread(target=self._watch, args=(proc, ipc, window), name="mpv-watch",
                         daemon=True).start()
        log.info("playing clip %s from %.1f s", clip.get("id"), start)
        state = self.state()
        self._on_change(state)
        return state

    def _watch(self, proc: subprocess.Popen, ipc: Ipc, window: Window | None) -> None:
        proc.wait()
        ipc.close()
        with self._lock:
            if self._proc is proc:
                self._proc = self._ipc = self._clip = None
        if window is not None and self._proc is None:
            with contextlib.suppress(Exception):
                window.show()
        self._on_change(self.state())

    def control(self, action: str, value: float | None = None) -> dict:
        """One control action (``_COMMANDS``) on the running mpv."""
        ipc = self._ipc
        if ipc is None:
            raise Unavailable("no clip is playing")
        try:
            ipc.command(*_COMMANDS[action](value))
        except (OSError, ConnectionError, RuntimeError) as exc:
            raise Unavailable(f"the player did not take the command: {exc}") from None
        return self.state()

    def state(self) -> dict:
        """``{playing, clip_id, path, position, speed, paused, ipc}`` (position in s, from mpv;
        ``ipc`` the path of mpv's control socket, for scripts)."""
        ipc, clip = self._ipc, self._clip
        if ipc is None or clip is None:
            return {"playing": False, "clip_id": None, "path": None, "position": None,
                    "speed": None, "paused": None, "ipc": None}
        out = {"playing": True, "clip_id": clip.get("id"), "path": clip["path"],
               "position": None, "speed": None, "paused": None, "ipc": self._ipc_path}
        with contextlib.suppress(OSError, ConnectionError, RuntimeError, ValueError):
            out["path"] = ipc.command("get_property", "path")
            out["position"] = ipc.command("get_property", "time-pos")
            out["speed"] = ipc.command("get_property", "speed")
            out["paused"] = ipc.command("get_property", "pause")
        return out

    def stop(self) -> None:
        with self._lock:
            proc, ipc = self._proc, self._ipc
        if proc is None:
            return
        # "quit" over IPC ends mpv at once; SIGTERM can take seconds while it is decoding.
        if ipc is not None:  # always, with a process: play() sets and _watch clears both
            with contextlib.suppress(OSError, ConnectionError, RuntimeError, ValueError):
                ipc.command("quit")
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
