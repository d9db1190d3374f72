"""A real, headless OBS Studio for tests (from the shared obs-websocket recipe; its traps are
explained there): Xvfb + Debian's ``obs`` with a throwaway config in a temp dir, a small canvas
(320x180 at 15 fps, plain colour: the machine is shared), obs-websocket on a given port with a
given password. ``ObsProcess`` can be killed and started again on the same port and config
(OBS restarted mid-match) and started late (OBS not running when restrike starts)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile

from tests.conftest import free_port, wait_for

LAST_VERSION = (29 << 24) | (0 << 16) | 2   # "LastVersion" 29.0.2: no migrations run


def _ini(sections):
    return "".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()) + "\n"
                   for name, keys in sections.items())


def write_config(cfg: pathlib.Path, *, port, password, rec_dir, width, height, fps, rb_seconds):
    obs = cfg / "obs-studio"
    (obs / "basic" / "profiles" / "Test").mkdir(parents=True)
    (obs / "basic" / "scenes").mkdir(parents=True)
    (obs / "global.ini").write_text(_ini({
        "General": {"Pre19Defaults": "false", "Pre21Defaults": "false",
                    "Pre23Defaults": "false", "Pre24.1Defaults": "false",
                    "FirstRun": "true", "LastVersion": LAST_VERSION,
                    "EnableAutoUpdates": "false", "ConfirmOnExit": "false"},
        "Basic": {"Profile": "Test", "ProfileDir": "Test",
                  "SceneCollection": "Test", "SceneCollectionFile": "Test"},
        "BasicWindow": {"PreviewEnabled": "false", "SysTrayEnabled": "false"},
        # obs-websocket 5.1 (OBS 29.0) reads its settings here, not plugin_config/.
        "OBSWebSocket": {"FirstLoad": "false", "ServerEnabled": "true", "ServerPort": port,
                         "AlertsEnabled": "false", "AuthRequired": "true",
                         "ServerPassword": password},
    }))
    (obs / "basic" / "profiles" / "Test" / "basic.ini").write_text(_ini({
        "General": {"Name": "Test"},
        "Output": {"Mode": "Simple"},
        "SimpleOutput": {
            "FilePath": rec_dir, "RecFormat": "mkv", "FileNameWithoutSpace": "true",
            "VBitrate": 500, "ABitrate": 64, "RecQuality": "Stream",
            "StreamEncoder": "x264", "RecEncoder": "x264",
            # keyint = 1 s: replays are cut at keyframes (the recipe's trap).
            "UseAdvanced": "true", "Preset": "ultrafast", "x264Settings": f"keyint={fps}",
            "RecRB": "true", "RecRBTime": rb_seconds, "RecRBSize": 512, "RecRBPrefix": "Replay"},
        "Video": {"BaseCX": width, "BaseCY": height, "OutputCX": width, "OutputCY": height,
                  "FPSType": 1, "FPSInt": fps},
        "Audio": {"SampleRate": 48000, "ChannelSetup": "Stereo"},
    }))
    (obs / "basic" / "profiles" / "Test" / "service.json").write_text(json.dumps(
        {"type": "rtmp_custom", "settings": {"server": "rtmp://127.0.0.1:9/live", "key": "t",
                                             "use_auth": False}}))
    source = {"id": "color_source", "versioned_id": "color_source_v3", "name": "Colour",
              "settings": {"color": 0xFFCC6633, "width": width, "height": height}}
    (obs / "basic" / "scenes" / "Test.json").write_text(json.dumps({
        "name": "Test", "current_scene": "Scene", "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}, {"name": "Replay"}], "transitions": [],
        "current_transition": "Fade", "transition_duration": 300,
        "sources": [source] + [{
            "id": "scene", "versioned_id": "scene", "name": scene,
            "settings": {"id_counter": 1, "custom_size": False, "items": [{
                "name": "Colour", "id": 1, "visible": True, "locked": False,
                "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "rot": 0.0,
                "align": 5, "bounds_type": 0, "bounds": {"x": 0.0, "y": 0.0},
                "bounds_align": 0}]}} for scene in ("Scene", "Replay")],
    }, indent=1))


def _stop(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


class ObsProcess:
    """One OBS (and its own Xvfb). ``start()``, ``kill()`` (SIGKILL: a crash), ``close()``."""

    def __init__(self, *, rb_seconds=5, fps=15, width=320, height=180):
        for tool in ("obs", "Xvfb", "ffprobe"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} not found: make apt-test installs obs-studio, "
                                   "xvfb, ffmpeg")
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="obs-"))
        self.home, self.record_dir, self.run = (self.root / d for d in
                                                ("home", "recordings", "run"))
        for d in (self.home, self.record_dir, self.run):
            d.mkdir(mode=0o700)
        self.host, self.port = "127.0.0.1", free_port()
        self.password = secrets.token_urlsafe(16)
        self.rb_seconds = rb_seconds
        write_config(self.home / ".config", port=self.port, password=self.password,
                     rec_dir=self.record_dir, width=width, height=height, fps=fps,
                     rb_seconds=rb_seconds)
        self.xvfb = self.proc = None
        self.log = self.root / "obs.log"

    def fill_record_dir(self) -> bool:
        """Put the recording folder on a 64 KiB tmpfs (a full disk for OBS); False when this
        machine does not let us mount (not root)."""
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                               str(self.record_dir)], capture_output=True)
        self.mounted = done.returncode == 0
        return self.mounted

    def _start_xvfb(self):
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "640x360x24", "-nolisten", "tcp",
             "-noreset"], pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(w)
        with os.fdopen(r) as f:
            self.display = ":" + f.readline().strip()

    def start(self) -> ObsProcess:
        if self.xvfb is None:
            self._start_xvfb()
        nowhere = "http://127.0.0.1:9"   # OBS fetches a service list at start: a dead proxy
        env = {**os.environ, "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
               "XDG_RUNTIME_DIR": str(self.run), "DISPLAY": self.display,
               "QT_QPA_PLATFORM": "xcb", "LIBGL_ALWAYS_SOFTWARE": "1",
               "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.run}/no-dbus",
               "http_proxy": nowhere, "https_proxy": nowhere, "HTTP_PROXY": nowhere,
               "HTTPS_PROXY": nowhere, "ALL_PROXY": nowhere, "no_proxy": "", "NO_PROXY": ""}
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("QTWEBENGINE_CHROMIUM_FLAGS", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["obs", "--multi", "--websocket_ipv4_only"],
                                         cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for(self._listening, timeout=60, interval=0.05,
                 message=f"OBS listening on {self.port} (log {self.log})")
        return self

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"OBS exited with {self.proc.returncode}: "
                                 f"{self.log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, self.port)) == 0

    def kill(self) -> None:
        """SIGKILL: OBS crashes (the websocket drops without a close frame)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        _stop(self.proc)
        _stop(self.xvfb)
        if getattr(self, "mounted", False):
            subprocess.run(["umount", "-l", str(self.record_dir)], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def instance(self, name="cam-1", password=None) -> dict:
        """The ``obs.instances`` entry restrike needs for this OBS."""
        return {"name": name, "host": self.host, "port": self.port,
                "password": self.password if password is None else password}


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration:stream=codec_type,codec_name,width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
