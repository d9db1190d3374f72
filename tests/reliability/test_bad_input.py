"""Bad input everywhere: every command with arbitrary JSON arguments, and a flood of random
datagrams through real UDP.

Commands run through ``host.bridge.invoke`` (what both the window and the HTTP bridge use) on an
in-process app with the real built-in plugins. Each call must return, or fail cleanly with
``validation_error`` / ``not_found`` / ``conflict`` / ``unavailable``: never ``internal_error``,
never a traceback, always JSON the HTTP bridge can send (no NaN). The database must pass its
integrity check afterwards.

Commands called with bad arguments only (a valid call would spoil the run or this machine):

- ``simulate_match``: starts a background feed that would run on after the test;
- ``database_run_vacuum``, ``optimize_archive_tables``: rewrite the whole file (long on a real
  database);
- ``pss_start_listener``, ``update_udp_settings``: a random valid port or address could take a
  port another process on this machine is about to use (each gets one fixed valid call);
- ``export_events`` gets every argument random except ``path``, which is drawn only from
  places inside the test's own directory (absolute, relative, ``..``, links, missing dirs):
  a random valid path could overwrite any file of this machine.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel

from restrike.host.app import App
from restrike.host.bridge import invoke, make_js_api
from restrike.host.settings import Settings
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from restrike.pss.protocol import DEFAULT_LIMITS, parse_text
from tests.reliability import fuzz_feed
from tests.reliability.conftest import Headless, free_port, integrity, open_db, send_all, wait_for

CLEAN_ERRORS = {"validation_error", "not_found", "conflict", "unavailable"}
BAD_ARGS_ONLY = {"simulate_match", "database_run_vacuum", "optimize_archive_tables",
                 "pss_start_listener", "update_udp_settings"}
EXAMPLES = int(os.environ.get("RESTRIKE_FUZZ_EXAMPLES", "1500"))
FUZZ_DATAGRAMS = int(os.environ.get("RESTRIKE_FUZZ_DATAGRAMS", "150000"))

NASTY_TEXT = ["", " ", "0", "-1", "1e999", "NaN", "null", "true", "[]", "{}", "2026-11-28",
              "2026-11-28T12:00:00Z", "2026-02-30", "9999-12-31T23:59:59Z", "0000-01-01",
              "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31",
              "0001-01-01",
              "Robert'); DROP TABLE pss_events_v2;--", "../../../../etc/passwd", "/etc/passwd",
              "\x00", "\u202e", "名字", "😀", "%s%s%n", "' OR 1=1 --", "asc", "desc", "csv",
              "jsonl", "pt1", "points", "unknown", "127.0.0.1", "0.0.0.0", "::1", "10.0.0.0/8",
              "127.0.0.1:6000", "a" * 5000]
KEYS = ["match_id", "matchId", "limit", "since", "until", "cursor", "order", "archived",
        "event_type", "eventType", "is_valid", "session_id", "tournament_id", "tournamentDayId",
        "bind", "port", "receiveBuffer", "receive_buffer", "allowedSources", "autostart",
        "queueMaxDatagrams", "__named__", "__proto__", "constructor", ""]

scalars = (st.none() | st.booleans()
           | st.integers(min_value=-3, max_value=70_000)
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(NASTY_TEXT) | st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A started app with some feed, a tournament and an archived event to work on."""
    root = tmp_path_factory.mktemp("bad-input")
    udp = {"bind": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}
    application = App(Settings(data_dir=root / "data", config={"udp": udp}),
                      load_entrypoints=False)
    application.start()
    application.export_dir = root / "exports"  # type: ignore[attr-defined]
    application.export_dir.mkdir()
    (application.export_dir / "link").symlink_to(root / "data" / "restrike_vta.db")
    send_all(application.settings.config["udp"]["port"], sender_datagrams(9, 0, 1)[:300])
    wait_for(lambda: application.extensions["database"].writer.stats()["stored"] >= 300, 20)
    ok, _ = invoke(application.commands, "tournament_create", {"name": "Open", "durationDays": 2})
    assert ok
    yield application
    application.stop()


def call_cleanly(app, name: str, args):
    """Invoke and check the outcome is a result or a clean, JSON-ready error."""
    ok, value = invoke(app.commands, name, args)
    json.dumps(value, allow_nan=False)  # what the HTTP bridge sends must be valid JSON
    if not ok:
        assert value["type"] in CLEAN_ERRORS, f"{name}({args!r}) -> {value}"
        assert isinstance(value["message"], str) and value["message"]
        assert "Traceback" not in value["message"]
    return ok, value


def export_paths(root: Path):
    return st.sampled_from([
        "report.csv", "./report.csv", "../report.csv", "", ".", "..", "/", str(root),
        str(root / "out.csv"), str(root / "out.jsonl"), str(root / "missing" / "out.csv"),
        str(root / ".." / "escaped.csv"), str(root / "link"), str(root / "link" / "x"),
        str(root) + "/", str(root / "a\x00b.csv"), str(root / ("n" * 300)),
    ]) | st.integers() | st.none() | st.lists(st.text(max_size=3), max_size=2)


def arguments(app, name: str):
    params = app.commands.get(name).params
    if name == "export_events":
        filters = st.none() | st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3)
        fmt = st.sampled_from(["csv", "jsonl", "xml", 1])
        path = export_paths(app.export_dir)
        return st.fixed_dictionaries(
            {"filters": filters, "format": fmt, "path": path},
            optional={"overwrite": st.booleans() | json_values},
        ) | st.tuples(filters, fmt, path).map(list) | st.dictionaries(
            st.sampled_from(["filters", "format", "path", "overwrite", "x"]), json_values)
    named = st.dictionaries(
        st.sampled_from(list(params) + [to_camel(p) for p in params] + KEYS),
        json_values, max_size=len(params) + 1)
    return st.none() | st.lists(json_values, max_size=len(params) + 1) | named | scalars


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_command_with_arbitrary_json_fails_cleanly_or_works(app, data):
    name = data.draw(st.sampled_from([n for n in app.commands.names() if n not in BAD_ARGS_ONLY]),
                     label="command")
    args = data.draw(arguments(app, name), label="args")
    call_cleanly(app, name, args)


EDGE_CASES = [
    # Found by this file's fuzzing; kept so they stay fixed whatever hypothesis draws next.
    ("get_events", {"filters": {"since": "0001-01-01T00:00:00+01:00"}}),
    ("get_events", {"filters": {"until": "9999-12-31T23:59:59-01:00"}}),
    ("tournament_create", {"name": "x", "durationDays": 60, "startDate": "9999-12-31"}),
    ("export_events", {"filters": None, "format": "csv", "path": "/tmp/a\x00b.csv"}),
    ("export_events", {"filters": None, "format": "csv", "path": "/tmp/" + "n" * 300}),
    ("restore_from_archive", {"startDate": "0001-01-01T00:00:00+01:00", "endDate": "2000-01-01"}),
    ("archive_old_events", {"daysOld": 100_000}),
    ("pss_get_matches", {"limit": 2**63}),
    ("get_comprehensive_event_statistics", {"sessionId": "\x00"}),
]


@pytest.mark.parametrize("name, args", EDGE_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_edge_cases_found_by_fuzzing_fail_cleanly(app, name, args):
    call_cleanly(app, name, args)


def test_commands_kept_from_valid_calls_refuse_bad_arguments(app):
    for name in sorted(BAD_ARGS_ONLY | {"stop_simulation", "export_events"}):
        params = app.commands.get(name).params
        bad = [list(range(len(params) + 1)), {"noSuchArgument": 1}, "x", 7,
               {p: {"nested": [float("nan")]} for p in params} or {"x": 1}]
        for args in bad:
            ok, value = call_cleanly(app, name, args)
            if name in BAD_ARGS_ONLY or args is not bad[-1]:
                assert not ok and value["type"] == "validation_error", (name, args, value)
    for name, args in (("simulate_match", {"senders": 0}), ("simulate_match", {"speed": "fast"}),
                       ("simulate_match", {"matches": 10**9}), ("pss_start_listener", [70000]),
                       ("update_udp_settings", {"settings": {"bind": "999.1.1.1"}}),
                       ("update_udp_settings", {"settings": {"receiveBuffer": -1}}),
                       ("update_udp_settings", {"settings": {"allowedSources": ["nope"]}}),
                       ("update_udp_settings", {"settings": {"port": 80, "typo": 1}})):
        ok, value = call_cleanly(app, name, args)
        assert not ok and value["type"] == "validation_error" and value["field"], (name, value)
    # One valid call each, on our own port: they work.
    port = app.settings.config["udp"]["port"]
    assert call_cleanly(app, "pss_start_listener", [port]) == (True, "Running")
    ok, value = call_cleanly(app, "update_udp_settings", {"settings": {"port": port}})
    assert ok and value["port"] == port


def strict_cases(port: int) -> list[tuple[str, object, str]]:
    """(command, arguments, field the error names): each one was coerced and acted on before
    (``[true]`` moved the listener to UDP port 1 and archived everything older than a day;
    ``"16000"`` and ``16000.0`` were ports). ``port`` is a free port the listener must not
    move to."""
    return [
        ("pss_start_listener", [True], "port"),
        ("pss_start_listener", [str(port)], "port"),
        ("pss_start_listener", [float(port)], "port"),
        ("pss_start_listener", {"port": str(port)}, "port"),
        ("archive_old_events", [True], "daysOld"),
        ("archive_old_events", ["1"], "daysOld"),
        ("archive_old_events", [1.0], "daysOld"),
        ("archive_old_events", {"days_old": True}, "days_old"),
        ("cleanup_old_archive_data", {"daysOld": True}, "daysOld"),
        ("export_events", {"filters": None, "format": "csv", "path": "/nonexistent/x.csv",
                           "overwrite": "true"}, "overwrite"),
        ("get_events", [{"isValid": 1}], "filters.isValid"),
        ("simulate_match", {"senders": True}, "senders"),
    ]


def test_strict_arguments_over_http(headless_factory):
    """Through the real HTTP interface of the headless app: refused with the field named, and
    nothing happened (the listener stays on its port)."""
    app = headless_factory("strict").start()
    for name, args, field in strict_cases(free_port(socket.SOCK_DGRAM)):
        response = app.invoke(name, args)
        assert response.status_code == 422, (name, args, response.text)
        error = response.json()["error"]
        assert (error["type"], error["field"]) == ("validation_error", field), (name, args)
        assert error["message"].startswith(f"{field}: "), error
    stats = app.stats()
    assert (stats["status"], stats["port"]) == ("Running", app.udp_port)
    # What the page sends (its own types, a date typed on the export screen) still works.
    assert app.call("pss_start_listener", [app.udp_port]) == "Running"
    assert app.call("archive_old_events", [{"daysOld": 30}]) == 0
    assert app.call("get_events", {"filters": {"since": "2026-11-28", "isValid": True}})
    assert app.call("tournament_create", {"name": "Open", "startDate": "2026-11-28"})["id"]


def test_strict_arguments_through_the_window_bridge(app):
    """The ``js_api`` object pywebview gets: the same refusals, the listener stays."""
    api = make_js_api(app.commands)
    port = app.extensions["udp"].port
    for name, args, field in strict_cases(free_port(socket.SOCK_DGRAM)):
        call_args = args if isinstance(args, list) else [args]
        ok, error = getattr(api, name)(*call_args)
        assert not ok, (name, args)
        assert (error["type"], error["field"]) == ("validation_error", field), (name, args)
    assert app.extensions["udp"].port == port
    assert api.pss_start_listener(port) == [True, "Running"]


def test_after_the_fuzz_the_database_is_sound_and_the_app_still_ingests(app):
    """Runs after the fuzz tests of this module (pytest keeps file order)."""
    ok, check = call_cleanly(app, "database_run_integrity_check", None)
    assert ok and check["ok"], check
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert integrity(conn) == ["ok"]
    assert all(p["errors"] == 0 for p in call_cleanly(app, "list_plugins", None)[1])
    ok, _ = call_cleanly(app, "start_udp_server", None)
    assert ok
    before = app.extensions["database"].writer.stats()["stored"]
    send_all(app.extensions["udp"].port, [b"pt1;2\r\n"])
    wait_for(lambda: app.extensions["database"].writer.stats()["stored"] == before + 1, 10)
    exported = [p for p in app.export_dir.parent.rglob("*") if p.is_file()
                and p.parent != app.export_dir and p.suffix in (".csv", ".jsonl")]
    assert exported == [], f"export wrote outside the chosen directory: {exported}"
    assert not (app.export_dir.parent / "escaped.csv").exists()


# -------------------------------------------------------------------------- datagrams


def test_a_many_line_non_utf8_datagram_is_not_stored_once_per_line(make_app):
    """A 4 KiB datagram of 2,000 lines that is not UTF-8 gives max_messages_per_datagram + 1
    events (the rest kept raw in the last); its bytes (``raw_b64``) must not be stored once per
    event (a 64 KiB one would write megabytes)."""
    app = make_app()
    app.start()
    datagram = b"\xff\n" * 2_000
    send_all(app.settings.config["udp"]["port"], [datagram])
    writer = app.extensions["database"].writer
    events = DEFAULT_LIMITS.max_messages_per_datagram + 1
    wait_for(lambda: writer.stats()["stored"] == events, 20)
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        b64_bytes = conn.execute("SELECT COALESCE(SUM(LENGTH(detail_value)), 0) FROM "
                                 "pss_event_details WHERE detail_key = 'raw_b64'").fetchone()[0]
    budget = 4 * len(datagram)  # the datagram's base64 (4/3) with room to spare
    assert b64_bytes <= budget, (
        f"{b64_bytes:,} bytes of raw_b64 stored for one {len(datagram):,}-byte datagram")


def test_absurd_numbers_in_a_message_are_bounded_not_used_as_sizes(make_app):
    """``mch`` carries the number of rounds; the live match state lists one score per round.
    A sender (or garbage) claiming millions of rounds must not make every snapshot build
    millions of entries under the feed's lock (the fuzz below found 10^20 stalling ingest)."""
    app = make_app()
    app.start()
    absurd = (b"mch;101;Final;M- 80 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;abc;Senior;"
              b"100000;120;cntDown;18;10\r\n")
    send_all(app.settings.config["udp"]["port"], [absurd, b"s11;1;s21;0\r\n", b"pt1;1\r\n"])
    writer = app.extensions["database"].writer
    wait_for(lambda: writer.stats()["stored"] == 3, 20)
    ok, state = invoke(app.commands, "pss_get_match_state", None)
    assert ok
    assert len(state["round_scores"]["blue"]) <= 99, "a feed value was used as a list size"
    assert len(state["round_winners"]) <= 99


@pytest.mark.slow
def test_random_datagrams_through_real_udp_are_all_counted_and_stored(tmp_path):
    """``RESTRIKE_FUZZ_DATAGRAMS`` (default 150,000; see docs/reliability.md) random datagrams
    to the headless app. The sender is paced by the app's own backlog, so no bound is reached:
    then nothing may be missing anywhere - received == sent, no kernel, queue or writer drop,
    every message stored, and the file sound."""
    app = Headless(tmp_path / "fuzz", config={"udp": {"receive_buffer": 64 * 1024 * 1024}})
    app.start()
    try:
        expected_events = 0
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            target = ("127.0.0.1", app.udp_port)
            for datagram in fuzz_feed.datagrams(1, FUZZ_DATAGRAMS):
                s.sendto(datagram, target)
                sent += 1
                expected_events += len(parse_text(datagram.decode("utf-8", "replace")))
                if sent % 5_000 == 0:
                    wait_for(lambda: _backlog(app.stats()) < 10_000, 120, 0.05,
                             "the app to catch up")
        stats = wait_for(lambda: (st := app.stats())["datagrams"] == sent
                         and _backlog(st) == 0 and st, 120, 0.1, "everything to be stored")
        assert stats["status"] == "Running"
        assert stats["kernel_drops"] == 0 and stats["queue_dropped"] == 0
        assert stats["dispatched_datagrams"] == sent
        assert stats["events"] == expected_events
        storage = stats["storage"]
        assert storage["stored"] == expected_events, storage
        assert storage["dropped"] == storage["lost"] == storage["failed_writes"] == 0
        assert stats["clients"][0]["packets"] == sent
        assert app.call("database_run_integrity_check", timeout=300)["ok"]
        with open_db(app.db_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] \
                == expected_events
    finally:
        app.close()


def _backlog(stats: dict) -> int:
    """Datagrams and events received but not stored yet."""
    return (stats["datagrams"] - stats["dispatched_datagrams"]
            + stats["storage"]["pending"] + stats["storage"]["held"])
