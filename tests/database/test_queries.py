"""Read and maintenance commands through the real host app (registry validation included)."""

from __future__ import annotations

import json

import pytest

from restrike.host.errors import CommandError, InvalidArgument, NotFound, Unavailable
from restrike.plugins.plugin_database.running import service_of
from restrike.pss.session import UdpSession

from .conftest import Feed, call, match_datagrams, read, store


@pytest.fixture
def loaded(db_app):
    """The app with two matches on two courts stored, plus stray events."""
    service = service_of(db_app)
    court1 = Feed("session-a", ("10.0.0.1", 6001))
    court2 = Feed("session-a", ("10.0.0.2", 6001))
    store(service, court1.events(match_datagrams("11")) + court2.events(match_datagrams("12"))
          + court1.events(["pt1;9;", "rst;"]))
    return db_app


def match_ids(app):
    return [m["id"] for m in call(app, "pss_get_matches")]


def test_events_for_a_match_come_in_order_in_the_ui_shape(loaded):
    newest, oldest = match_ids(loaded)
    events = call(loaded, "pss_get_events_for_match", oldest)
    assert [e["raw_data"] for e in events] == [
        d.rstrip("\r\n") for d in match_datagrams("11")[1:]] + ["pt1;9;", "rst;"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    points = next(e for e in events if e["raw_data"] == "pt1;3")
    assert points == {
        "id": points["id"], "session_id": "session-a", "match_id": oldest, "type": "points",
        "event_code": "pt1", "athlete": "blue", "round": 1, "time": "1:59",
        "timestamp": points["timestamp"], "raw_data": "pt1;3", "is_valid": True,
        "error_message": None, "description": "Blue scores 3 (head)",
    }
    assert points["timestamp"].endswith("Z")
    invalid = next(e for e in events if e["raw_data"] == "pt1;9;")
    assert invalid["is_valid"] is False and invalid["type"] == "invalid"
    assert "point type" in invalid["error_message"]
    unknown = next(e for e in events if e["raw_data"] == "rst;")
    assert unknown["type"] == "unknown" and unknown["event_code"] == "rst"
    assert call(loaded, "pss_get_events_for_match", matchId=newest)[0]["match_id"] == newest


def test_events_for_a_match_include_archived_ones(loaded):
    service = service_of(loaded)
    match_id = match_ids(loaded)[-1]
    before = call(loaded, "pss_get_events_for_match", match_id)

    def archive_first_ten(conn):
        conn.execute("BEGIN IMMEDIATE")
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM pss_events_v2 WHERE match_id = ? ORDER BY id LIMIT 10", (match_id,))]
        marks = ",".join("?" * len(ids))
        conn.execute(f"INSERT INTO pss_events_v2_archive SELECT * FROM pss_events_v2 "
                     f"WHERE id IN ({marks})", ids)
        conn.execute(f"INSERT INTO pss_event_details_archive SELECT * FROM pss_event_details "
                     f"WHERE event_id IN ({marks})", ids)
        conn.execute(f"DELETE FROM pss_events_v2 WHERE id IN ({marks})", ids)
        conn.execute("COMMIT")

    service.writer.run(archive_first_ten)
    assert read(service, "SELECT COUNT(*) FROM pss_events_v2_archive") == [(10,)]
    assert call(loaded, "pss_get_events_for_match", match_id) == before
    assert call(loaded, "pss_get_match_details", match_id)["event_count"] == len(before)


def test_unknown_match_and_bad_ids_name_the_field(loaded):
    with pytest.raises(NotFound) as err:
        call(loaded, "pss_get_events_for_match", 999_999)
    assert err.value.field == "matchId"
    with pytest.raises(NotFound):
        call(loaded, "pss_get_match_details", matchId=999_999)
    with pytest.raises(InvalidArgument) as err:
        call(loaded, "pss_get_events_for_match", 0)
    assert err.value.field == "matchId"
    with pytest.raises(InvalidArgument):
        call(loaded, "pss_get_events_for_match", "1; DROP TABLE pss_events_v2")
    with pytest.raises(InvalidArgument):
        call(loaded, "pss_get_matches", 0)


def test_match_details_and_recent_matches(loaded):
    matches = call(loaded, "pss_get_matches", limit=1)
    assert len(matches) == 1 and matches[0]["match_number"] == "12"
    _newest, oldest = match_ids(loaded)
    details = call(loaded, "pss_get_match_details", oldest)
    assert details["match_number"] == "11" and details["status"] == "finished"
    assert details["blue"] == {"short_name": "K. ARSLAN", "long_name": "Kerem ARSLAN",
                               "country_code": "TUR"}
    assert details["red"]["long_name"] == "Jaime MORENO GARCÍA"
    assert [(r["round_number"], r["blue_score"], r["red_score"], r["winner"])
            for r in details["rounds"]] == [(1, 4, 0, "blue"), (2, 0, 2, "red"),
                                             (3, 4, 0, "blue")]
    assert [(s["round"], s["athlete"], s["points"]) for s in details["scores"]] == [
        (1, "blue", 3), (2, "red", 2), (3, "blue", 4)]
    assert [(w["athlete"], w["warnings"]) for w in details["warnings"]] == [("red", 1)]
    assert details["invalid_event_count"] == 1
    assert details["winner"] == "blue" and details["win_classification"] == "2-1 PTF"


def test_get_events_filters_combine(loaded):
    match_id = match_ids(loaded)[-1]
    page = call(loaded, "get_events", filters={"matchId": match_id, "eventType": "pt1",
                                                   "order": "asc"})
    assert [e["raw_data"] for e in page["events"]] == ["pt1;3", "pt1;4", "pt1;9;"]
    points = call(loaded, "get_events", {"match_id": match_id, "event_type": "points"})
    assert {e["event_code"] for e in points["events"]} == {"pt1", "pt2"}
    invalid = call(loaded, "get_events", {"isValid": False})["events"]
    assert [e["raw_data"] for e in invalid] == ["pt1;9;"]
    unknown = call(loaded, "get_events", {"eventType": "unknown"})["events"]
    assert [e["raw_data"] for e in unknown] == ["rst;"]
    everything = call(loaded, "get_events", {"limit": 1000})["events"]
    first, last = everything[-1]["timestamp"], everything[0]["timestamp"]
    ranged = call(loaded, "get_events", {"since": first, "until": last, "limit": 1000})
    assert len(ranged["events"]) == sum(1 for e in everything if first <= e["timestamp"] < last)
    assert call(loaded, "get_events", {"eventType": "no-such-type"})["events"] == []


def test_cursor_paging_returns_every_event_once(loaded):
    service = service_of(loaded)
    total = read(service, "SELECT COUNT(*) FROM pss_events_v2")[0][0]
    seen, cursor = [], None
    while True:
        page = call(loaded, "get_events", {"limit": 17, "cursor": cursor})
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize("filters, field", [
    ({"limit": 0}, "filters.limit"),
    ({"limit": 5000}, "filters.limit"),
    ({"cursor": "abc"}, "filters.cursor"),
    ({"matchId": -1}, "filters.matchId"),
    ({"order": "sideways"}, "filters.order"),
    ({"since": "yesterday"}, "filters.since"),
    ({"bogus": 1}, "filters.bogus"),
])
def test_bad_filters_are_refused_naming_the_field(loaded, filters, field):
    with pytest.raises(InvalidArgument) as err:
        call(loaded, "get_events", filters)
    assert err.value.field == field


def test_times_without_zone_are_utc(loaded):
    everything = call(loaded, "get_events", {"limit": 1000})["events"]
    naive_since = everything[-1]["timestamp"].rstrip("Z")
    page = call(loaded, "get_events", {"since": naive_since, "until": "2999-01-01T00:00:00Z",
                                       "limit": 1000})
    assert len(page["events"]) == len(everything)


@pytest.mark.parametrize("filters, field", [
    ({"since": "0001-01-01T00:00:00+01:00"}, "filters.since"),
    ({"until": "9999-12-31T23:59:59-01:00"}, "filters.until"),
    ({"since": "0001-01-01T00:30:00+00:45", "until": "2026-01-01T00:00:00Z"}, "filters.since"),
])
def test_times_outside_the_calendar_in_utc_are_refused_naming_the_field(loaded, filters, field):
    with pytest.raises(InvalidArgument, match="outside the years 1 to 9999") as err:
        call(loaded, "get_events", filters)
    assert err.value.field == field


def test_times_at_the_ends_of_the_calendar_compare_as_times(loaded):
    """A year before 1000 is written with four digits, so the text range in SQL is a time
    range (a since of year 500 must not come after 2026 as text)."""
    everything = call(loaded, "get_events", {"limit": 1000})["events"]
    page = call(loaded, "get_events", {"since": "0500-01-01T00:00:00Z",
                                       "until": "9999-12-31T23:59:59Z", "limit": 1000})
    assert len(page["events"]) == len(everything)


def test_until_before_since_is_refused(loaded):
    with pytest.raises(InvalidArgument, match="until must be after since"):
        call(loaded, "get_events", {"since": "2026-01-02T00:00:00Z",
                                     "until": "2026-01-01T00:00:00Z"})


def test_server_and_session_statistics(loaded):
    service = service_of(loaded)
    service.writer.submit_session(UdpSession(
        session_id="session-a", bind="0.0.0.0", port=6000,
        started_at="2026-11-28T10:00:00.000000Z", stopped_at=None, simulated=True,
        status="running"))
    assert service.writer.flush(5.0)
    total = read(service, "SELECT COUNT(*) FROM pss_events_v2")[0][0]
    stats = call(loaded, "get_udp_server_statistics")
    assert stats["sessions"] == 1 and stats["simulated_sessions"] == 1
    assert stats["events_stored"] == total and stats["invalid_events"] == 1
    assert stats["unknown_events"] == 1 and stats["client_addresses"] == 2
    assert stats["recent_sessions"][0]["session_id"] == "session-a"
    detail = call(loaded, "get_comprehensive_event_statistics", sessionId="session-a")
    assert sum(t["count"] for t in detail["events_by_type"]) == total
    clk = next(t for t in detail["events_by_type"] if t["event_code"] == "clk")
    assert clk["type"] == "clock"
    assert clk["count"] == 2 * sum(d.startswith("clk;") for d in match_datagrams())
    assert len(detail["clients"]) == 2 and detail["matches"] == 2
    with pytest.raises(NotFound) as err:
        call(loaded, "get_comprehensive_event_statistics", "nope")
    assert err.value.field == "sessionId"


def test_maintenance_commands_run_on_the_live_database(loaded, backend):
    info = call(loaded, "database_get_info")
    if backend == "sqlite":
        assert info["journal_mode"] == "wal" and info["synchronous"] == "NORMAL"
        assert info["path"].endswith("restrike_vta.db")
    else:  # the server's database, its password never shown
        assert info["journal_mode"] == "postgresql" and info["sqlite_version"] is None
        assert info["path"].startswith("postgresql://") and info["server_version"]
    assert info["size_bytes"] > 0
    assert info["row_counts"]["pss_matches"] == 2 and info["schema_version"] >= 1
    assert info["writer"]["stored"] == info["row_counts"]["pss_events_v2"]
    if backend == "sqlite":
        check = call(loaded, "database_run_integrity_check")
        assert check["ok"] is True and check["problems"] == []
        assert check["foreign_key_problems"] == []
    else:
        with pytest.raises(Unavailable, match="not on PostgreSQL"):
            call(loaded, "database_run_integrity_check")
    assert call(loaded, "database_run_analyze")["ok"] is True
    assert call(loaded, "database_run_optimize")["ok"] is True
    vacuum = call(loaded, "database_run_vacuum")
    assert vacuum["ok"] is True and vacuum["size_after"] > 0
    # ingest still works after a VACUUM
    service = service_of(loaded)
    store(service, Feed("session-a").events(["pt2;1;"]))
    assert call(loaded, "get_events", {"limit": 1})["events"][0]["raw_data"] == "pt2;1;"


def test_ingest_through_the_hooks_and_storage_stats(db_app):
    feed = Feed("hooked")
    db_app.hooks.udp_session({"session_id": "hooked", "bind": "127.0.0.1", "port": 6000,
                              "started_at": "2026-11-28T10:00:00.000000Z", "stopped_at": None,
                              "simulated": False, "status": "running"}, db_app)
    db_app.hooks.pss_events(feed.events(["pt1;3;", "pt2;1;"]), db_app)
    service = service_of(db_app)
    assert service.writer.flush(5.0)
    storage = db_app.hooks.ingest_stats(db_app)["storage"]
    assert storage["stored"] == 2 and storage["pending"] == 0 and storage["dropped"] == 0
    assert storage["last_commit_at"].endswith("Z")
    assert [p["name"] for p in db_app.list_plugins() if p["errors"]] == []


def test_commands_before_start_are_unavailable(make_app):
    from .conftest import DATABASE_ONLY

    app = make_app(builtins=DATABASE_ONLY)
    app.hooks.register_commands(
        lambda plugin: (lambda name, fn: app.commands.register(name, fn, plugin=plugin)), app)
    with pytest.raises(CommandError) as err:
        call(app, "pss_get_matches")
    assert err.value.type == "unavailable"


def test_a_udp_session_record_is_a_typed_model_and_anything_else_is_refused(db_app):
    # The UDP plugin hands a pss.session.UdpSession; a record that is not one is refused at
    # the database's hook (named in list_plugins), never half-written.
    service = service_of(db_app)
    db_app.hooks.udp_session({"session_id": "no-start-time"}, db_app)
    session = UdpSession(session_id="typed", bind="127.0.0.1", port=6000,
                         started_at="2026-11-28T10:00:00.000000Z", packets_received=7)
    db_app.hooks.udp_session(session, db_app)
    assert service.writer.flush(5.0)
    (row,) = read(service, "SELECT session_id, port, status, is_simulated, counters "
                           "FROM udp_server_sessions")
    assert row[:4] == ("typed", 6000, "running", 0)
    assert json.loads(row[4]) == session.counters_record()
    (database,) = [p for p in db_app.list_plugins() if p["name"] == "database"]
    assert database["errors"] == 1 and "started_at" in database["last_error"]
