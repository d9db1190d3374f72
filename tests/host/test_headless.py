"""``restrike --headless`` as a real subprocess: token, bridge over HTTP, SSE, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket

import httpx
import pytest

from tests.cli import TOKEN, start_headless, stop
from tests.conftest import free_port


@pytest.fixture
def headless(tmp_path):
    udp_port = free_port(socket.SOCK_DGRAM)
    proc, base = start_headless(tmp_path / "data", "--udp-bind", "127.0.0.1",
                                "--udp-port", str(udp_port))
    yield proc, base, udp_port
    stop(proc)


def test_saved_udp_settings_apply_unless_the_command_line_gives_the_port(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    saved_port, flag_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    (data / "udp-settings.json").write_text(json.dumps({"bind": "127.0.0.1", "port": saved_port}))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for args, port in (((), saved_port), (("--udp-port", str(flag_port)), flag_port)):
        proc, base = start_headless(data, *args)
        try:
            settings = httpx.post(f"{base}/api/invoke/get_udp_settings", headers=auth,
                                  json=[]).json()
            assert (settings["bind"], settings["port"]) == ("127.0.0.1", port)
        finally:
            stop(proc)


def test_headless_bridge_token_sse_and_sigterm(headless):
    proc, base, udp_port = headless
    auth = {"Authorization": f"Bearer {TOKEN}"}

    ok = httpx.post(f"{base}/api/invoke/list_plugins", headers=auth, json=[])
    assert ok.status_code == 200
    names = {p["name"] for p in ok.json()}
    assert {"database", "udp"} <= names

    assert httpx.post(f"{base}/api/invoke/list_plugins", json=[]).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{base}/api/invoke/list_plugins", headers=wrong, json=[]).status_code == 401
    assert httpx.get(f"{base}/index.html?token={TOKEN}").status_code == 200

    bad = httpx.post(f"{base}/api/invoke/archive_old_events", headers=auth, json={"daysOld": -1})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "daysOld"

    with httpx.stream("GET", f"{base}/api/events", headers=auth, timeout=10) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"pt1;3\r\n", ("127.0.0.1", udp_port))
        pushed = None
        for line in lines:
            if line.startswith("data: "):
                batch = json.loads(line[6:])
                events = [i for i in batch if i["event"] == "pss_event"]
                if events:
                    pushed = events[0]["payload"]
                    break
    assert pushed and pushed[0]["raw_data"] == "pt1;3"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def test_security_headers_traversal_and_cross_origin(headless):
    _proc, base, _ = headless
    auth = {"Authorization": f"Bearer {TOKEN}"}
    page = httpx.get(f"{base}/", headers=auth)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fhost/cli.py",
                 "/api/../../README.md", "/index.html%00.js", "/%00", "/" + "n" * 300 + ".js"):
        assert httpx.get(f"{base}{path}", headers=auth).status_code == 404, path
    foreign = httpx.post(f"{base}/api/invoke/list_plugins", json=[],
                         headers={**auth, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    rebinding = httpx.get(f"{base}/", headers={**auth, "Host": "evil.example"})
    assert rebinding.status_code == 403
