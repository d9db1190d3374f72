"""Tournaments, days and the UDP tournament context, through the real registry."""

from __future__ import annotations

import sqlite3

import pytest

from restrike.host.errors import Conflict, InvalidArgument, NotFound
from restrike.plugins.plugin_database.plugin import service_of

from .conftest import DATABASE_ONLY, Feed, call, read, store

INJECTION = "Robert'); DROP TABLE tournaments;--"


def snapshot(app):
    service = service_of(app)
    return (read(service, "SELECT * FROM tournaments ORDER BY id"),
            read(service, "SELECT * FROM tournament_days ORDER BY id"))


def test_create_get_update_and_delete(db_app):
    created = call(db_app, "tournament_create", name=INJECTION, durationDays=3,
                   city="Paris", countryCode="fra", startDate="2026-11-27")
    assert created["name"] == INJECTION and created["country_code"] == "FRA"
    assert created["status"] == "pending" and created["end_date"] == "2026-11-29"
    assert [(d["day_number"], d["date"], d["status"]) for d in created["days"]] == [
        (1, "2026-11-27", "pending"), (2, "2026-11-28", "pending"), (3, "2026-11-29", "pending")]
    tid = created["id"]
    assert call(db_app, "tournament_get", tid) == created
    assert [t["id"] for t in call(db_app, "tournament_get_all")] == [tid]
    updated = call(db_app, "tournament_update", tournamentId=tid, durationDays=2, city="",
                   startDate="2026-12-01")
    assert updated["city"] is None and updated["end_date"] == "2026-12-02"
    assert [d["date"] for d in call(db_app, "tournament_get_days", tid)] == [
        "2026-12-01", "2026-12-02"]
    assert updated["name"] == INJECTION  # not given: unchanged
    assert call(db_app, "tournament_delete", tid) == {"deleted": tid}
    with pytest.raises(NotFound) as err:
        call(db_app, "tournament_get", tid)
    assert err.value.field == "tournamentId"
    assert snapshot(db_app) == ([], [])


def test_day_lifecycle(db_app):
    tid = call(db_app, "tournament_create", "Open", 2)["id"]
    day1, day2 = (d["id"] for d in call(db_app, "tournament_get_days", tid))
    assert call(db_app, "tournament_get_active") is None
    started = call(db_app, "tournament_start_day", day1)
    assert started["status"] == "active" and started["start_time"].endswith("Z")
    active = call(db_app, "tournament_get_active")
    assert active["tournament"]["id"] == tid and active["day"]["id"] == day1
    with pytest.raises(Conflict) as err:
        call(db_app, "tournament_start_day", day2)
    assert err.value.field == "tournamentDayId"
    with pytest.raises(Conflict):
        call(db_app, "tournament_start_day", day1)
    with pytest.raises(Conflict):
        call(db_app, "tournament_end_day", day2)
    call(db_app, "tournament_end_day", day1)
    between = call(db_app, "tournament_get_active")
    assert between["day"] is None and between["tournament"]["status"] == "active"
    call(db_app, "tournament_start_day", day2)
    ended = call(db_app, "tournament_end_day", tournamentDayId=day2)
    assert ended["status"] == "completed" and ended["end_time"].endswith("Z")
    assert call(db_app, "tournament_get", tid)["status"] == "completed"
    assert call(db_app, "tournament_get_active") is None
    with pytest.raises(Conflict) as err:  # a started day cannot be removed
        call(db_app, "tournament_update", tid, None, 1)
    assert err.value.field == "durationDays"


@pytest.mark.parametrize("args, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "ok", "durationDays": 0}, "durationDays"),
    ({"name": "ok", "durationDays": "two"}, "durationDays"),
    ({"name": "ok", "countryCode": "FRANCE"}, "countryCode"),
    ({"name": "ok", "startDate": "27/11/2026"}, "startDate"),
    ({"name": "ok", "durationDays": 60, "startDate": "9999-12-31"}, "startDate"),
    ({"name": "ok", "durationDays": 2, "startDate": "9999-12-31"}, "startDate"),
    ({"name": "ok", "unknownArg": 1}, "unknownArg"),
])
def test_bad_arguments_change_nothing(db_app, args, field):
    call(db_app, "tournament_create", name="existing")
    before = snapshot(db_app)
    with pytest.raises(InvalidArgument) as err:
        call(db_app, "tournament_create", **args)
    assert err.value.field == field
    assert snapshot(db_app) == before


def test_bad_update_and_unknown_ids_change_nothing(db_app):
    tid = call(db_app, "tournament_create", "Open", 2)["id"]
    before = snapshot(db_app)
    with pytest.raises(InvalidArgument):
        call(db_app, "tournament_update", tournamentId=tid, durationDays=-1)
    with pytest.raises(NotFound):
        call(db_app, "tournament_update", tournamentId=tid + 1, name="x")
    with pytest.raises(NotFound) as err:
        call(db_app, "tournament_start_day", 999)
    assert err.value.field == "tournamentDayId"
    with pytest.raises(NotFound):
        call(db_app, "tournament_delete", tid + 1)
    assert snapshot(db_app) == before


def test_a_tournament_may_end_on_the_last_day_of_the_calendar_but_not_after(db_app):
    last = call(db_app, "tournament_create", name="Last", durationDays=3, startDate="9999-12-29")
    assert [d["date"] for d in last["days"]] == ["9999-12-29", "9999-12-30", "9999-12-31"]
    before = snapshot(db_app)
    with pytest.raises(InvalidArgument, match="after 9999-12-31") as err:
        call(db_app, "tournament_update", tournamentId=last["id"], durationDays=4)
    assert err.value.field == "durationDays"
    with pytest.raises(InvalidArgument, match="after 9999-12-31") as err:
        call(db_app, "tournament_update", tournamentId=last["id"], startDate="9999-12-30")
    assert err.value.field == "startDate"
    assert snapshot(db_app) == before


def test_context_is_validated_stamped_on_new_events_and_cleared(db_app):
    service = service_of(db_app)
    feed = Feed()
    t1 = call(db_app, "tournament_create", "One", 1)
    t2 = call(db_app, "tournament_create", "Two", 1)
    day1 = t1["days"][0]["id"]
    with pytest.raises(NotFound) as err:
        call(db_app, "set_udp_tournament_context", 999, None)
    assert err.value.field == "tournamentId"
    with pytest.raises(NotFound) as err:
        call(db_app, "set_udp_tournament_context", t1["id"], 999)
    assert err.value.field == "tournamentDayId"
    with pytest.raises(InvalidArgument) as err:
        call(db_app, "set_udp_tournament_context", t2["id"], day1)
    assert err.value.field == "tournamentDayId"
    assert call(db_app, "get_udp_tournament_context")["tournament_id"] is None

    store(service, feed.events(["pt1;1;"]))
    context = call(db_app, "set_udp_tournament_context", tournamentId=t1["id"],
                   tournamentDayId=day1)
    assert context["tournament_id"] == t1["id"] and context["tournament_day_id"] == day1
    assert call(db_app, "get_udp_tournament_context")["tournament"]["name"] == "One"
    store(service, feed.events(["pre;FightLoaded", "pt1;2;"]))
    with pytest.raises(Conflict) as err:
        call(db_app, "tournament_delete", t1["id"])
    assert err.value.field == "tournamentId"
    assert call(db_app, "clear_udp_tournament_context")["tournament_id"] is None
    store(service, feed.events(["pt1;3;"]))
    rows = read(service, "SELECT raw_data, tournament_id, tournament_day_id FROM pss_events_v2 "
                         "ORDER BY id")
    assert rows == [("pt1;1;", None, None), ("pre;FightLoaded", t1["id"], day1),
                    ("pt1;2;", t1["id"], day1), ("pt1;3;", None, None)]
    assert read(service, "SELECT tournament_id, tournament_day_id FROM pss_matches") == [
        (t1["id"], day1)]
    # once cleared, the tournament can go; its events stay, unstamped
    call(db_app, "tournament_delete", t1["id"])
    assert read(service, "SELECT COUNT(*), COUNT(tournament_id) FROM pss_events_v2") == [(4, 0)]


def test_the_context_survives_a_restart_and_a_cleared_one_stays_cleared(make_app, tmp_path):
    data_dir = tmp_path / "data"

    def start():
        return make_app(builtins=DATABASE_ONLY, data_dir=data_dir).start()

    first = start()
    tournament = call(first, "tournament_create", "Open", 2)
    day2 = tournament["days"][1]["id"]
    call(first, "set_udp_tournament_context", tournament["id"], day2)
    first.stop()  # as after a crash: nothing else told the next run

    second = start()
    context = call(second, "get_udp_tournament_context")
    assert (context["tournament_id"], context["tournament_day_id"]) == (tournament["id"], day2)
    store(service_of(second), Feed().events(["pt1;1;"]))
    assert read(service_of(second), "SELECT tournament_id, tournament_day_id FROM pss_events_v2"
                ) == [(tournament["id"], day2)]
    call(second, "clear_udp_tournament_context")
    second.stop()

    third = start()
    assert call(third, "get_udp_tournament_context")["tournament_id"] is None


def test_a_saved_context_that_no_longer_fits_is_forgotten_with_a_warning(make_app, tmp_path,
                                                                         caplog):
    data_dir = tmp_path / "data"
    first = make_app(builtins=DATABASE_ONLY, data_dir=data_dir).start()
    tournament = call(first, "tournament_create", "Gone", 1)
    call(first, "set_udp_tournament_context", tournament["id"], None)
    first.stop()
    with sqlite3.connect(data_dir / "restrike_vta.db") as conn:  # removed behind the app's back
        conn.execute("DELETE FROM tournament_days")
        conn.execute("DELETE FROM tournaments")
    conn.close()

    second = make_app(builtins=DATABASE_ONLY, data_dir=data_dir).start()
    assert call(second, "get_udp_tournament_context")["tournament_id"] is None
    assert "does not fit the database any more" in caplog.text
    assert read(service_of(second), "SELECT COUNT(*) FROM app_state") == [(0,)]
