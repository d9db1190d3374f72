"""A package that installs anywhere: a wheel built from the repository and installed with plain
``pip install`` into a new virtual environment serves the whole UI, and installs nothing but
``restrike`` at the top level (``host``, ``plugins`` and ``pss`` live under it)."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile

import httpx
import pytest

from tests.cli import TOKEN, start_headless, stop
from tests.conftest import REPO, free_port


def run(*args, cwd=None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_wheel_installed_into_a_new_venv_serves_the_whole_ui(tmp_path):
    dist, venv, outside = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    outside.mkdir()  # run from a folder that holds no source: only the installed copy is there
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, REPO)
    (wheel,) = dist.glob("restrike-*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert top_level == {"restrike", wheel.name.split("-py3")[0] + ".dist-info"}

    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    where = run(venv / "bin" / "python", "-c", "import restrike.host.http as h; print(h.__file__)",
                cwd=outside)
    assert where.startswith(str(venv))

    proc, base = start_headless(tmp_path / "data", "--udp-bind", "127.0.0.1", "--udp-port",
                                str(free_port(socket.SOCK_DGRAM)),
                                command=(venv / "bin" / "restrike",), cwd=outside)
    try:
        files = sorted(p for p in (REPO / "frontend").rglob("*") if p.is_file())
        assert any(p.name == "index.html" for p in files)
        for path in files:
            relative = path.relative_to(REPO / "frontend").as_posix()
            answer = httpx.get(f"{base}/{relative}", params={"token": TOKEN})
            assert answer.status_code == 200, relative
            assert answer.content == path.read_bytes(), relative
        plugins = httpx.post(f"{base}/api/invoke/list_plugins",
                             headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert {"database", "udp"} <= {p["name"] for p in plugins}
    finally:
        stop(proc)
