"""The PostgreSQL driver (psycopg, psycopg_pool and libpq, ~19 MiB) is loaded by an app on
PostgreSQL only: an app on an SQLite file, the default, never imports it.

A fresh interpreter (what was imported by the tests' process says nothing) builds and starts the
real app with every built-in plugin, receives a real datagram over UDP, stores it, and prints
which driver modules it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

_PROBE = """
import json, socket, sys

from restrike.host.app import App
from restrike.host.settings import Settings
from tests.conftest import free_port, wait_for

data_dir, url = sys.argv[1], sys.argv[2]
port = free_port(socket.SOCK_DGRAM)
config = {"udp": {"bind": "127.0.0.1", "port": port}}
if url:
    config["database"] = {"url": url}
with App(Settings(data_dir=data_dir, config=config), load_entrypoints=False) as app:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"pt1;3\\r\\n", ("127.0.0.1", port))
    stored = lambda: app.commands.call("get_events", [{"limit": 10}])["events"]
    events = wait_for(stored, 20, 0.02, "the datagram stored")
    print(json.dumps({
        "stored": [event["raw_data"] for event in events],
        "driver": sorted(name for name in sys.modules
                         if name.partition(".")[0] in ("psycopg", "psycopg_pool")),
    }))
"""


def _run_app(data_dir, url: str = "") -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(data_dir), url], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_only_an_app_on_postgresql_imports_the_postgresql_driver(tmp_path, backend, request):
    url = request.getfixturevalue("pg_server").database() if backend == "postgresql" else ""
    try:
        seen = _run_app(tmp_path / "data", url)
    finally:
        if url:
            request.getfixturevalue("pg_server").drop(url)
    assert seen["stored"] == ["pt1;3"]
    if backend == "sqlite":
        assert seen["driver"] == []
    else:  # the probe sees the driver where it is used
        assert {"psycopg", "psycopg_pool"} <= set(seen["driver"])
