"""Security: the HTTP bridge's token, files and origins; where exports may write; SQL that feed
text cannot change; the UDP allow-list; and what a plugin (or a page) can reach.

``tests/host/test_headless.py`` already checks a missing and a wrong bearer token, four
traversal paths, the CSP's ``default-src`` and a foreign ``Origin`` / ``Host``; this file covers
the rest (other token carriers, raw un-normalised paths, every CSP directive, preflights, what a
refused request leaves undone).
"""

from __future__ import annotations

import inspect
import socket

import httpx
import pytest

from restrike.host.bridge import invoke, make_js_api
from restrike.host.hookspecs import hookimpl
from tests.reliability.conftest import TOKEN, Headless, open_db, send_all, wait_for

INJECTION = "Robert'); DROP TABLE pss_events_v2;--"
INJECTION_NO_SEP = "Robert' OR '1'='1' -- DROP TABLE pss_events_v2"  # ';' separates feed fields


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = Headless(tmp_path_factory.mktemp("security") / "data")
    app.start()
    yield app
    app.close()


def raw_get(app: Headless, target: str, headers: dict | None = None,
            method: str = "GET", auth: bool = True) -> tuple[int, bytes]:
    """An HTTP/1.1 request with the target sent exactly as given (HTTP clients remove ``..``
    segments and re-encode escapes before sending; an attacker's raw socket does not)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{app.http_port}",
             "Connection: close"]
    if auth:
        lines.append(f"Authorization: Bearer {app.token}")
    if method == "POST":
        lines += ["Content-Type: application/json", "Content-Length: 2"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", app.http_port), timeout=10) as s:
        body = "[]" if method == "POST" else ""
        s.sendall(("\r\n".join(lines) + "\r\n\r\n" + body).encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


# ------------------------------------------------------------------------------- the token


def test_tokens_are_compared_in_constant_time():
    from restrike.host import http

    source = inspect.getsource(http)
    assert "hmac.compare_digest" in source
    for plain in ("== token", "token ==", "!= token", "token !=", "== self._token",
                  "self._token =="):
        assert plain not in source, f"a plain comparison of the token: {plain!r}"


@pytest.mark.parametrize("carrier", [
    {"headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},  # a prefix of the real one
    {"headers": {"Authorization": f"Bearer {TOKEN}x"}},
    {"headers": {"Authorization": f"Basic {TOKEN}"}},
    {"headers": {"Authorization": "Bearer"}},
    {"headers": {"Authorization": TOKEN}},
    {"params": {"token": ""}},
    {"params": {"token": TOKEN.upper()}},
    {"params": {"token": "t\u00f6k\u00e9n\U0001f600"}},
    {"cookies": {"restrike_token": "guess"}},
    {"headers": {"X-Token": TOKEN}},
])
def test_a_wrong_token_in_any_carrier_is_refused_and_runs_nothing(server, carrier):
    client = httpx.Client(base_url=server.base, timeout=10, cookies=carrier.get("cookies"))
    with client:
        refused = client.post("/api/invoke/stop_udp_server", json=[],
                              headers=carrier.get("headers"), params=carrier.get("params"))
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "unauthorized"
        assert "set-cookie" not in refused.headers
        for path in ("/api/events", "/", "/index.html", "/app.js"):
            assert client.get(path, headers=carrier.get("headers"),
                              params=carrier.get("params")).status_code == 401, path
    assert server.call("get_udp_status") == "Running", "a refused call must not have run"


@pytest.mark.parametrize("target", ["/?token=%ff%fe", "/?token=%00", "/?token=%C3%28",
                                    "/api/events?token=" + "%41" * 5000])
def test_undecodable_tokens_are_refused_not_crashed_on(server, target):
    status, _ = raw_get(server, target, auth=False)
    assert status == 401


def test_the_query_token_sets_a_strict_http_only_cookie_that_then_works(server):
    with httpx.Client(base_url=server.base, timeout=10) as client:
        first = client.get("/", params={"token": TOKEN})
        assert first.status_code == 200
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.post("/api/invoke/list_plugins", json=[]).status_code == 200


# ------------------------------------------------------------------------------ the files


@pytest.mark.parametrize("target", [
    "/../../../../etc/passwd", "/../pyproject.toml", "/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e%2fpyproject.toml", "/%252e%252e/pyproject.toml", "/..%5cpyproject.toml",
    "/..\\pyproject.toml", "//etc/passwd", "/etc/passwd", "/frontend/../host/cli.py",
    "/./../README.md", "/index.html%00.js", "/.git/config", "/%2fetc%2fpasswd",
    "/api/../../pyproject.toml", "/overlay/../../host/http.py",
])
def test_only_files_under_frontend_are_served(server, target):
    status, body = raw_get(server, target)
    assert status in (400, 404), (target, status)
    assert b"root:" not in body and b"[build-system]" not in body and b"import" not in body


def test_the_page_is_served_with_a_strict_policy_everywhere(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    responses = [httpx.get(f"{server.base}/", headers=auth),
                 httpx.post(f"{server.base}/api/invoke/list_plugins", headers=auth, json=[]),
                 httpx.get(f"{server.base}/nope.js", headers=auth),
                 httpx.post(f"{server.base}/api/invoke/list_plugins", json=[])]
    assert [r.status_code for r in responses] == [200, 200, 404, 401]
    for response in responses:
        csp = {d.split()[0]: d.split()[1:] for d in
               (part.strip() for part in response.headers["content-security-policy"].split(";"))
               if d}
        assert csp["default-src"] == ["'self'"]
        assert csp["script-src"] == ["'self'"], "no inline or eval'd script"
        assert csp["object-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"], "the page cannot be framed"
        assert csp["base-uri"] == ["'none'"]
        assert "'unsafe-inline'" not in str(csp) and "'unsafe-eval'" not in str(csp)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("headers", [
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # same host, another port: another origin
    {"Origin": "https://127.0.0.1"},
    {"Host": "127.0.0.1.evil.example"},
    {"Host": "localhost.evil.example:80"},
])
def test_cross_origin_requests_are_refused_before_anything_runs(server, headers):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = httpx.post(f"{server.base}/api/invoke/stop_udp_server", json=[],
                         headers={**auth, **headers})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    preflight = httpx.options(f"{server.base}/api/invoke/stop_udp_server",
                              headers={**headers, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code in (403, 405)
    assert "access-control-allow-origin" not in preflight.headers
    assert server.call("get_udp_status") == "Running"


# --------------------------------------------------------------- what the bridge reaches


@pytest.mark.parametrize("name", [
    "_commands", "__class__", "__init__", "service_of", "restrike_startup", "restrike_pss_events",
    "call", "bind", "names", "get", "UdpService", "LiveFeed", "app", "extensions",
    "list_plugins.__globals__", "..%2Flist_plugins", "list_plugins/../stop_udp_server",
    "list_plugins%2F..%2Fstop_udp_server", "stop_udp_server%00", "LIST_PLUGINS", "list-plugins",
])
def test_only_registered_commands_are_reachable_over_http(server, name):
    status, body = raw_get(server, f"/api/invoke/{name}", method="POST")
    # 404: no such command; 405: the path is not a command path at all (only GET is served)
    assert status in (404, 405), (name, status, body[:200])
    assert server.call("get_udp_status") == "Running"


def _third_party_plugin():
    class ThirdParty:
        """A plugin with private helpers and state next to its one command."""

        __name__ = "third_party"
        secret = "internal state"

        def _private(self):
            return self.secret

        @hookimpl
        def restrike_register_commands(self, register, app):
            def third_party_ping() -> str:
                """Answer pong."""
                return "pong"

            register("third_party_ping", third_party_ping)
            for bad in ("_private", "__class__", "ThirdParty", "third.party", "secret x", ""):
                with pytest.raises(ValueError):
                    register(bad, self._private)

    return ThirdParty()


def test_a_plugin_exposes_only_its_registered_commands(make_app):
    app = make_app(extra_plugins=(_third_party_plugin(),))
    app.start()
    assert invoke(app.commands, "third_party_ping", None) == (True, "pong")
    for name in ("_private", "secret", "third_party", "restrike_register_commands",
                 "__class__", "_commands", "service_of"):
        ok, error = invoke(app.commands, name, None)
        assert not ok and error["type"] == "not_found", name
    api = make_js_api(app.commands)
    public = {n for n in dir(api) if not n.startswith("_")}
    assert public == set(app.commands.names())
    assert "third_party_ping" in public and "secret" not in public
    # What the page receives for a bad call is an envelope, never an exception or a traceback.
    ok, answer = api.archive_old_events("x")
    assert not ok and answer["type"] == "validation_error"


# ------------------------------------------------------------------------------- exports


@pytest.fixture
def export_app(make_app, tmp_path):
    app = make_app()
    app.start()
    send_all(app.settings.config["udp"]["port"], [b"pt1;3\r\n", b"pt2;1\r\n"])
    wait_for(lambda: app.extensions["database"].writer.stats()["stored"] == 2, 10)
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    return app, chosen


def export(app, path, **extra):
    return invoke(app.commands, "export_events",
                  {"filters": None, "format": "csv", "path": str(path), **extra})


def test_export_writes_exactly_the_chosen_file(export_app):
    app, chosen = export_app
    ok, result = export(app, chosen / "events.csv")
    assert ok and result["rows"] == 2
    assert (chosen / "events.csv").read_text().count("\n") == 3
    ok, error = export(app, chosen / "events.csv")
    assert not ok and error["type"] == "conflict", "an existing file is kept unless overwrite"


@pytest.mark.parametrize("make_path", [
    lambda chosen: "events.csv",
    lambda chosen: "./events.csv",
    lambda chosen: "../events.csv",
    lambda chosen: f"{chosen}/../outside.csv",
    lambda chosen: f"{chosen}/sub/../../outside.csv",
    lambda chosen: f"{chosen}/missing/events.csv",
    lambda chosen: f"{chosen}/",
    lambda chosen: f"{chosen}/a\x00b.csv",
], ids=["relative", "dot", "dotdot", "abs-dotdot", "abs-sub-dotdot", "missing-dir",
        "directory", "nul-byte"])
def test_export_refuses_crafted_paths(export_app, make_path):
    app, chosen = export_app
    (chosen / "sub").mkdir(exist_ok=True)
    before = set(chosen.parent.rglob("*"))
    ok, error = export(app, make_path(chosen))
    assert not ok and error["type"] == "validation_error" and error["field"] == "path", error
    assert set(chosen.parent.rglob("*")) == before, "a refused export created a file"


@pytest.mark.parametrize("overwrite", [False, True])
def test_export_never_follows_a_symbolic_link(export_app, overwrite):
    app, chosen = export_app
    victim = chosen.parent / "victim.txt"
    victim.write_text("precious")
    (chosen / "report.csv").symlink_to(victim)
    (chosen / "dangling.csv").symlink_to(chosen.parent / "created-through-link.csv")
    for name in ("report.csv", "dangling.csv"):
        ok, error = export(app, chosen / name, overwrite=overwrite)
        assert not ok and error["type"] == "validation_error" and error["field"] == "path"
    assert victim.read_text() == "precious"
    assert not (chosen.parent / "created-through-link.csv").exists()


# ----------------------------------------------------------------------------- SQL text


def test_feed_and_command_text_is_stored_verbatim_never_run_as_sql(make_app):
    app = make_app()
    app.start()
    athletes = (f"at1;{INJECTION_NO_SEP};O'Brien \" OR \"1\"=\"1;TUR;"
                f"at2;x') DELETE FROM pss_athletes --;Ana;ESP;\r\n")
    feed = [b"pre;FightLoaded\r\n", athletes.encode(),
            (b"mch;101;Final;M- 80 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;abc;Senior;3;120;"
             b"cntDown;18;10\r\n"), f"wmh;{INJECTION_NO_SEP};2-0 PTF\r\n".encode(),
            f"{INJECTION}\r\n".encode()]
    send_all(app.settings.config["udp"]["port"], feed)
    writer = app.extensions["database"].writer
    wait_for(lambda: writer.stats()["stored"] >= len(feed), 10)
    ok, tournament = invoke(app.commands, "tournament_create",
                            {"name": INJECTION, "city": "'; DROP TABLE tournaments; --",
                             "country": "x\" OR 1=1"})
    assert ok, tournament
    ok, found = invoke(app.commands, "tournament_get", [tournament["id"]])
    assert ok and found["name"] == INJECTION and found["city"] == "'; DROP TABLE tournaments; --"
    for name, args in (("get_events", {"filters": {"eventType": INJECTION}}),
                       ("get_events", {"filters": {"sessionId": "' OR '1'='1"}}),
                       ("get_comprehensive_event_statistics", {"sessionId": "' OR 1=1 --"}),
                       ("pss_get_match_state", {"source": "' OR 1=1 --"})):
        ok, value = invoke(app.commands, name, args)
        assert ok or value["type"] in ("not_found", "validation_error"), (name, value)
        if ok and name == "get_events":
            assert value["events"] == [], "a filter value matched as SQL"

    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"pss_events_v2", "tournaments", "pss_athletes"} <= tables
        raws = [r[0] for r in conn.execute("SELECT raw_data FROM pss_events_v2 ORDER BY id")]
        assert raws == [d.decode().rstrip("\r\n") for d in feed]
        names = {r[0] for r in conn.execute("SELECT short_name FROM pss_athletes")}
        longs = {r[0] for r in conn.execute("SELECT long_name FROM pss_athletes")}
        assert INJECTION_NO_SEP in names and "x') DELETE FROM pss_athletes --" in names
        assert "O'Brien \" OR \"1\"=\"1" in longs
        winner = conn.execute("SELECT winner_name FROM pss_matches").fetchone()[0]
        assert winner == INJECTION_NO_SEP
        assert conn.execute("SELECT name FROM tournaments").fetchone()[0] == INJECTION


# --------------------------------------------------------------------------- allow-list


def test_the_allow_list_drops_and_counts_datagrams_from_other_sources(make_app):
    app = make_app()
    app.start()
    ok, settings = invoke(app.commands, "update_udp_settings",
                          {"settings": {"allowedSources": ["10.20.30.40", "192.168.0.0/16"]}})
    assert ok and settings["allowed_sources"] == ["10.20.30.40", "192.168.0.0/16"]
    port = app.extensions["udp"].port
    send_all(port, [b"pt1;3\r\n"] * 25)
    stats = wait_for(lambda: (st := invoke(app.commands, "get_udp_stats", None)[1])["rejected"]
                     == 25 and st, 10)
    assert stats["last_rejected"].startswith("127.0.0.1:")
    assert stats["storage"]["stored"] == 0 and stats["events"] == 0 and stats["clients"] == []

    ok, _ = invoke(app.commands, "update_udp_settings",
                   {"settings": {"allowedSources": ["127.0.0.0/8"]}})
    assert ok
    send_all(app.extensions["udp"].port, [b"pt1;3\r\n"] * 5)
    wait_for(lambda: invoke(app.commands, "get_udp_stats", None)[1]["storage"]["stored"] == 5,
             10)
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] == 5
