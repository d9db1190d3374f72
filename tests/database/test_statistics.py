"""Statistics (issue 14): every number the commands give equals what the simulator sent, per
round and in total, before and after archival, restore and ``rebuild_statistics``; the
aggregates the writer keeps batch by batch equal a rebuild from the events on a random feed;
the exports hold the commands' numbers.

The expected values come from an oracle that reads the simulator's datagrams as text
(``sender_datagrams``: exactly what was sent), independent of the parser and the database.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import threading
from collections import defaultdict

import pytest
from openpyxl import load_workbook

from restrike.host.errors import CommandError
from restrike.host.timeutil import now_iso
from restrike.plugins.plugin_database import statistics
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.conftest import wait_for

from .conftest import Feed, call, read, store
from .match_oracle import POINT_KEYS, SIDES, assert_match_sheet, expected_match, oracle


def actual_match(stats: dict) -> dict:
    return {
        "rounds": stats["rounds"], "total": stats["total"],
        "timeline": [{k: t[k] for k in ("round", "clock", "blue", "red")}
                     for t in stats["timeline"]],
        "winner": stats["winner"], "win_type": stats["win_type"],
    }


# -- feeding ------------------------------------------------------------------------------------


def feed_courts(service, seed: int, courts: int, matches: int, rng: random.Random,
                session: str = "sim") -> dict:
    """Send ``matches`` simulated matches on each of ``courts`` senders (one source each),
    interleaved and stored in batches of random size; returns {sender: datagrams}."""
    sent = {c: sender_datagrams(seed, c, matches) for c in range(courts)}
    feeds = {c: Feed(session_id=session, source=("10.0.0.9", 40000 + c)) for c in sent}
    cursors = dict.fromkeys(sent, 0)
    batch: list = []
    while any(cursors[c] < len(sent[c]) for c in sent):
        c = rng.choice([c for c in sent if cursors[c] < len(sent[c])])
        take = rng.randint(1, 40)
        for data in sent[c][cursors[c]:cursors[c] + take]:
            batch += feeds[c].datagram(data)
        cursors[c] += take
        if len(batch) > rng.randint(1, 600):
            store(service, batch)
            batch = []
    if batch:
        store(service, batch)
    return sent


def match_ids_by_number(service) -> dict[str, int]:
    return {number: mid for mid, number in read(
        service, "SELECT id, match_number FROM pss_matches")}


def stat_tables(service) -> dict:
    tables = ("stat_match_rounds", "stat_matches", "stat_match_timeline", "stat_athletes",
              "stat_athlete_win_types", "stat_tournament_groups", "stat_court_rates")
    return {t: sorted(read(service, f"SELECT * FROM {t}")) for t in tables}


def check_matches(app, service, sent: dict) -> int:
    ids = match_ids_by_number(service)
    checked = 0
    for datagrams in sent.values():
        for m in oracle(datagrams):
            stats = call(app, "get_match_statistics", ids[m["number"]])
            assert actual_match(stats) == expected_match(m), m["number"]
            checked += 1
    return checked


# -- tests --------------------------------------------------------------------------------------


@pytest.fixture
def service(db_app):
    return db_app.extensions["database"]


def test_every_field_of_match_statistics_equals_what_the_simulator_sent(db_app, service):
    sent = feed_courts(service, seed=41, courts=3, matches=2, rng=random.Random(1))
    assert check_matches(db_app, service, sent) == 6


def test_match_statistics_hold_after_archival_restore_and_rebuild(db_app, service):
    sent = feed_courts(service, seed=42, courts=2, matches=2, rng=random.Random(2))
    before = stat_tables(service)
    assert call(db_app, "archive_old_events", days_old=0) > 0
    assert read(service, "SELECT COUNT(*) FROM pss_events_v2") == [(0,)]
    assert stat_tables(service) == before
    assert check_matches(db_app, service, sent) == 4  # archived matches answer too
    rebuilt = call(db_app, "rebuild_statistics")  # from the archive table alone
    assert rebuilt["matches"] == 4 and rebuilt["events"] > 2000
    assert stat_tables(service) == before
    call(db_app, "restore_from_archive", "2000-01-01", "2100-01-01")
    assert read(service, "SELECT COUNT(*) FROM pss_events_v2_archive") == [(0,)]
    assert stat_tables(service) == before
    assert check_matches(db_app, service, sent) == 4
    call(db_app, "rebuild_statistics")
    assert stat_tables(service) == before
    assert check_matches(db_app, service, sent) == 4


_VOCABULARY = [
    "pre;FightLoaded", "at1;A. ONE;Ann ONE;TUR;at2;B. TWO;Bo TWO;ESP", "at1;C. THREE;;KOR",
    "mch;7;Final;M- 68 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;abc;Senior;3;120;cntDown;22;14",
    "rnd;1", "rnd;2", "rnd;3", "rnd;4", "clk;2:00;start", "clk;1:{:02d}", "clk;0:00;stop",
    "pt1;{p}", "pt2;{p}", "pt1;9", "hl1;{h}", "hl2;{h}", "hl1;{h}hl2;{h}", "hl2;0",
    "wg1;{w};wg2;{w}", "wg2;{w}", "wg1;{w}", "s11;{s};s21;{s};s12;{s};s22;{s}", "s13;{s}",
    "sc1;{s};sc2;{s}", "wrd;rd1;1;rd2;2;rd3;0", "wrd;rd1;{a};rd2;{a}", "win;BLUE", "win;RED",
    "wmh;A. ONE;2-0 PTF", "wmh;B. TWO;DSQ", "wmh;X", "brk;0:30", "garbage;;", "\xff\xfe",
]


def random_feed(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        line = rng.choice(_VOCABULARY)
        line = line.replace("{:02d}", f"{rng.randint(0, 59):02d}")
        for key, lo, hi in (("{p}", 1, 5), ("{h}", 1, 100), ("{w}", 0, 10), ("{s}", 0, 30),
                            ("{a}", 0, 2)):
            while key in line:
                line = line.replace(key, str(rng.randint(lo, hi)), 1)
        out.append(line + "\r\n")
    return out


def test_two_courts_writing_at_once_keep_the_aggregates_exact(open_db, backend, tmp_path):
    """Two instances (courts) write one PostgreSQL at the same time, each folding its own
    batches: the aggregates equal a rebuild from the events, and each court has its matches.
    (A shared "folded up to" mark made each writer fold the other's events too - twice - and
    their transactions deadlock.)"""
    if backend != "postgresql":
        pytest.skip("an SQLite file has one writer")
    courts = [open_db(tmp_path / "shared.db", court=f"Court {c}") for c in (1, 2)]
    errors: list[BaseException] = []

    def feed(i: int) -> None:
        try:
            feed_courts(courts[i], seed=50 + i, courts=2, matches=2, rng=random.Random(i),
                        session=f"court-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [c.writer.stats()["failed_writes"] for c in courts] == [0, 0]
    incremental = stat_tables(courts[0])
    with courts[0].pool.connection() as conn:
        per_court = statistics.tournament_statistics(conn, None, None)["per_court"]
    assert [(c["court"], c["finished"]) for c in per_court] == [("Court 1", 4), ("Court 2", 4)]
    courts[0].writer.run(statistics.rebuild)
    assert stat_tables(courts[0]) == incremental


def test_a_rebuild_on_postgresql_waits_for_writes_in_flight_and_counts_them(
        open_db, backend, tmp_path, feed):
    """Another court's write that is in flight when a rebuild starts: the rebuild waits for its
    commit and counts its event (it read the events without it before, while that writer
    folded them too: counted once, twice or not at all depending on the moment)."""
    if backend != "postgresql":
        pytest.skip("an SQLite file has one writer: a rebuild runs between its batches")
    import psycopg

    service = open_db(tmp_path / "shared.db")
    store(service, feed.events(["pre;FightLoaded\r\n", "rnd;1\r\n", "pt1;3\r\n"]))
    url = service.url.display  # the test server has no password
    with psycopg.connect(url) as other:  # a court's transaction, not committed yet
        other.execute(
            "INSERT INTO pss_events_v2 (match_id, event_type_id, timestamp, raw_data, "
            "event_sequence, is_valid, created_at, recognition_status) SELECT "
            "(SELECT MAX(id) FROM pss_matches), MIN(id), %s, 'clk;1:00', 9, 1, %s, 'recognized' "
            "FROM pss_event_types", (now_iso(), now_iso()))
        result: dict = {}
        rebuilding = threading.Thread(
            target=lambda: result.update(service.writer.run(statistics.rebuild, timeout=60)))
        rebuilding.start()
        with psycopg.connect(url, autocommit=True) as watch:
            wait_for(lambda: watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'LOCK TABLE pss_events_v2%'").fetchone(), 10,
                message="the rebuild waiting for the write in flight")
        other.commit()
        rebuilding.join(60)
    assert result["events"] == 4
    assert read(service, "SELECT events FROM stat_matches") == [(4,)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_aggregates_equal_a_rebuild_on_a_random_feed(db_app, service, seed):
    rng = random.Random(seed)
    feeds = [Feed(session_id=f"s{seed}", source=("10.1.0.1", 5000 + i)) for i in range(3)]
    for step in range(40):
        batch = []
        for _ in range(rng.randint(1, 30)):
            batch += rng.choice(feeds).events(random_feed(rng, rng.randint(1, 5)))
        store(service, batch)
        if step == 20:  # some of the events live in the archive table for the rebuild
            call(db_app, "archive_old_events", days_old=0)
    incremental = stat_tables(service)
    assert incremental["stat_matches"], "the random feed made no match"
    call(db_app, "rebuild_statistics")
    assert stat_tables(service) == incremental


def test_athlete_and_tournament_statistics_over_a_simulated_day(db_app, service):
    tournament = call(db_app, "tournament_create", name="Day test", duration_days=1)
    day_id = tournament["days"][0]["id"]
    call(db_app, "tournament_start_day", day_id)
    # Through the command (saved in app_state): on PostgreSQL every instance follows the saved
    # context, so a context set on the writer alone is reset when the listener (re)connects.
    call(db_app, "set_udp_tournament_context", tournament["id"], day_id)
    sent = feed_courts(service, seed=43, courts=4, matches=3, rng=random.Random(3))
    matches = [m for datagrams in sent.values() for m in oracle(datagrams)]

    # athletes: the oracle's sums over each athlete's matches
    expected: dict[str, dict] = defaultdict(lambda: {
        "matches": 0, "wins": 0, "losses": 0, "rounds_won": 0, "rounds_lost": 0,
        "points_scored_by_type": dict.fromkeys(POINT_KEYS, 0),
        "points_conceded_by_type": dict.fromkeys(POINT_KEYS, 0), "points_for": 0,
        "points_against": 0, "penalties_received": 0, "penalties_given": 0, "levels": [],
        "win_types": defaultdict(lambda: [0, 0])})
    for m in matches:
        e = expected_match(m)
        for athlete, side in SIDES.items():
            other = SIDES[3 - athlete]
            a = expected[m["athletes"][athlete]]
            a["matches"] += 1
            won = m["winner"] == side
            a["wins" if won else "losses"] += 1
            a["win_types"][e["win_type"]][0 if won else 1] += 1
            a["rounds_won"] += sum(1 for w in m["round_winners"].values() if w == athlete)
            a["rounds_lost"] += sum(1 for w in m["round_winners"].values() if w == 3 - athlete)
            for k in POINT_KEYS:
                a["points_scored_by_type"][k] += e["total"][side]["points_by_type"][k]
                a["points_conceded_by_type"][k] += e["total"][other]["points_by_type"][k]
            a["points_for"] += e["total"][side]["points"]
            a["points_against"] += e["total"][other]["points"]
            a["penalties_received"] += e["total"][side]["gam_jeom"]
            a["penalties_given"] += e["total"][other]["gam_jeom"]
            a["levels"] += [v for r in m["rounds"].values() for v in r[athlete]["levels"]]
    listed = call(db_app, "get_athletes")
    assert {a["short"] for a in listed} == set(expected)
    for entry in listed:
        want = expected[entry["short"]]
        got = call(db_app, "get_athlete_statistics", entry["id"])
        assert (entry["matches"], entry["wins"], entry["losses"]) == (
            want["matches"], want["wins"], want["losses"])
        for key in ("matches", "wins", "losses", "rounds_won", "rounds_lost",
                    "points_scored_by_type", "points_conceded_by_type", "points_for",
                    "points_against", "penalties_received", "penalties_given"):
            assert got[key] == want[key], (entry["short"], key)
        levels = want["levels"]
        assert got["hit_levels"] == {"count": len(levels), "max": max(levels, default=None),
                                     "mean": round(sum(levels) / len(levels), 2)
                                     if levels else None}
        assert got["win_types"] == [{"win_type": k, "wins": w, "losses": lo}
                                    for k, (w, lo) in sorted(want["win_types"].items())]
        assert len(got["match_list"]) == want["matches"]
        assert sum(1 for x in got["match_list"] if x["result"] == "win") == want["wins"]
    assert call(db_app, "get_athletes", search="xyz-nobody") == []
    some = listed[0]["short"]
    assert some in [a["short"] for a in call(db_app, "get_athletes", search=some[3:].lower())]

    # tournament: counts, mix, penalties, win types, courts
    stats = call(db_app, "get_tournament_statistics", tournament_id=tournament["id"],
                 day_id=day_id)
    assert (stats["matches"], stats["finished"], stats["in_progress"]) == (12, 12, 0)
    # one instance serves one court (--court): its four senders' matches are that court's
    # (several courts into one database: tests/reliability/test_tournament.py)
    assert [(c["court"], c["finished"]) for c in stats["per_court"]] == [
        (service.config.court, 12)]
    mix = dict.fromkeys(POINT_KEYS, 0)
    penalties = 0
    for m in matches:
        e = expected_match(m)
        for side in SIDES.values():
            for k in POINT_KEYS:
                mix[k] += e["total"][side]["points_by_type"][k]
            penalties += e["total"][side]["gam_jeom"]
    assert stats["technique_mix"] == mix
    assert stats["penalties"] == penalties
    assert stats["penalties_per_match"] == round(penalties / 12, 3)
    assert stats["win_types"] == {"PTF": 12}
    assert stats["duration_s"]["count"] == 12 and stats["duration_s"]["p90"] >= 0
    assert sum(h["finished"] for h in stats["per_hour"]) == 12
    total_events = read(service, "SELECT COUNT(*) FROM pss_events_v2 WHERE match_id IS NOT NULL")
    assert sum(r["events"] for rates in stats["event_rates"]["per_court"].values()
               for r in rates) == total_events[0][0]
    other = call(db_app, "tournament_create", name="Empty", duration_days=1)
    assert call(db_app, "get_tournament_statistics", tournament_id=other["id"])["matches"] == 0


def test_exports_hold_the_numbers_of_the_commands(db_app, service, tmp_path):
    sent = feed_courts(service, seed=44, courts=2, matches=1, rng=random.Random(4))
    ids = match_ids_by_number(service)
    target = tmp_path / "matches.xlsx"
    result = call(db_app, "export_statistics", kind="matches", format="xlsx", path=str(target))
    assert result == {"path": str(target), "rows": 2}
    exported = assert_match_sheet(target, lambda m: call(db_app, "get_match_statistics", m))
    assert sorted(exported) == sorted(ids.values())

    athletes_xlsx = tmp_path / "athletes.xlsx"
    call(db_app, "export_statistics", kind="athletes", format="xlsx", path=str(athletes_xlsx))
    rows = [list(r) for r in load_workbook(athletes_xlsx).active.iter_rows(values_only=True)]
    for row in rows[1:]:
        got = dict(zip(rows[0], row, strict=True))
        stats = call(db_app, "get_athlete_statistics", got["athlete_id"])
        assert (got["matches"], got["wins"], got["losses"], got["points_for"],
                got["points_against"]) == (stats["matches"], stats["wins"], stats["losses"],
                                           stats["points_for"], stats["points_against"])
        assert {k: got[f"scored_{k}"] for k in POINT_KEYS} == stats["points_scored_by_type"]
    assert len(rows) == 1 + 4

    tournament_csv = tmp_path / "tournament.csv"
    call(db_app, "export_statistics", kind="tournament", format="csv",
         path=str(tournament_csv))
    with open(tournament_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    stats = call(db_app, "get_tournament_statistics")
    values = {(s, k): v for s, k, v in rows[1:]}
    assert values[("summary", "matches")] == str(stats["matches"]) == "2"
    for k in POINT_KEYS:
        assert values[("technique_mix", k)] == str(stats["technique_mix"][k])

    # the same rules as export_events: no overwrite without asking, absolute paths only
    with pytest.raises(CommandError) as err:
        call(db_app, "export_statistics", kind="matches", format="xlsx", path=str(target))
    assert err.value.type == "conflict" and err.value.field == "path"
    with pytest.raises(CommandError) as err:
        call(db_app, "export_statistics", kind="matches", format="csv", path="rel.csv")
    assert err.value.field == "path"
    assert call(db_app, "export_statistics", kind="matches", format="csv", path=str(target),
                overwrite=True)["rows"] == 2
    del sent


def test_a_sender_cannot_put_a_formula_into_a_csv_export(db_app, service, tmp_path):
    store(service, Feed().events(["pre;FightLoaded\r\n", "at1;=cmd|' /C calc'!A0;x;TUR\r\n"]))
    target = tmp_path / "athletes.csv"
    call(db_app, "export_statistics", kind="athletes", format="csv", path=str(target))
    text = target.read_text(encoding="utf-8")
    assert "'=cmd" in text


@pytest.mark.parametrize(("command", "args", "field"), [
    ("get_match_statistics", {"matchId": "1"}, "matchId"),
    ("get_match_statistics", {"matchId": 0}, "matchId"),
    ("get_athlete_statistics", {"athleteId": True}, "athleteId"),
    ("get_athletes", {"search": 5}, "search"),
    ("get_athletes", {"search": "x" * 101}, "search"),
    ("get_tournament_statistics", {"dayId": 1.0}, "dayId"),
    ("get_tournament_statistics", {"court": ""}, "court"),
    ("export_statistics", {"kind": "sessions", "format": "csv", "path": "/tmp/x"}, "kind"),
    ("export_statistics", {"kind": "athletes", "format": "ods", "path": "/tmp/x"}, "format"),
])
def test_arguments_are_strict_and_errors_name_the_field(db_app, command, args, field):
    with pytest.raises(CommandError) as err:
        call(db_app, command, **args)
    assert err.value.type == "validation_error"
    assert err.value.field == field


def test_unknown_match_and_athlete_are_not_found(db_app):
    for command, field in (("get_match_statistics", "matchId"),
                           ("get_athlete_statistics", "athleteId")):
        with pytest.raises(CommandError) as err:
            call(db_app, command, 99)
        assert (err.value.type, err.value.field) == ("not_found", field)


UNDO_VERSION_8 = (
    "DROP INDEX idx_pss_events_v2_natural", "DROP INDEX idx_udp_server_sessions_court",
    "DROP INDEX idx_pss_matches_court", "ALTER TABLE udp_server_sessions DROP COLUMN court",
    "ALTER TABLE pss_matches DROP COLUMN court",
    "ALTER TABLE pss_events_v2 DROP COLUMN datagram_index",
    "ALTER TABLE pss_events_v2_archive DROP COLUMN datagram_index",
)
"""What takes a file of schema version 8 back to version 7 (courts, tests only)."""


def as_version(path, version: int, statements) -> None:
    """Make the (closed) file at ``path`` what schema ``version`` left: run the statements
    ``statements(conn)`` lists, forget every migration after ``version``."""
    conn = sqlite3.connect(path)
    for statement in list(statements(conn)):
        conn.execute(statement)
    conn.execute("DELETE FROM schema_version WHERE version > ?", (version,))
    conn.commit()
    conn.close()


@pytest.mark.sqlite_only(reason="builds an old SQLite file by hand")
def test_a_file_written_before_the_aggregates_says_so_until_rebuilt(open_db, tmp_path, feed):
    path = tmp_path / "old.db"
    service = open_db(path)
    store(service, feed.events(["pre;FightLoaded\r\n", "rnd;1\r\n", "pt1;3\r\n"]))
    service.close()
    # the file as version 6 left it: events, no aggregates
    as_version(path, 6, lambda conn: [*(f"DROP TABLE {name}" for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name LIKE 'stat\\_%' ESCAPE '\\'")), *UNDO_VERSION_8])
    service = open_db(path)
    with service.pool.connection() as c:
        assert statistics.tournament_statistics(c, None, None)["pending_rebuild"] is True
        assert statistics.match_statistics(c, 1)["total"]["blue"]["points_by_type"]["head"] == 0
    assert service.writer.run(statistics.rebuild)["events"] == 3
    with service.pool.connection() as c:
        assert statistics.tournament_statistics(c, None, None)["pending_rebuild"] is False
        assert statistics.match_statistics(c, 1)["total"]["blue"]["points_by_type"]["head"] == 1


@pytest.mark.sqlite_only(reason="builds an old SQLite file by hand")
def test_a_version_8_file_gets_its_tournament_groups_from_its_statistics(open_db, tmp_path):
    """Migration 9 fills the tournament groups from the statistics a version 8 file holds
    (version 7's aggregates, version 8's courts): the tournament figures are the same before
    and after, and a rebuild's equal them."""
    path = tmp_path / "v8.db"
    service = open_db(path)
    feed_courts(service, seed=71, courts=3, matches=2, rng=random.Random(7))
    now = now_iso()

    def figures(service) -> dict:
        with service.pool.connection() as c:
            out = statistics.tournament_statistics(c, None, None, now)
        durations = out.pop("duration_s")  # the migration's from julianday: +-1 ms
        return {**out, "durations": durations["count"], "mean": durations["mean"]}

    before = figures(service)
    assert before["matches"] == 6 and before["durations"] == 6
    service.close()
    # the file as version 8 left it: no groups, stat_matches without their columns, the
    # events per match and minute
    as_version(path, 8, lambda conn: [
        *(f"DROP INDEX {name}" for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'stat_matches' "
            "AND sql IS NOT NULL")),
        "DROP TABLE stat_tournament_groups", "DROP TABLE stat_court_rates",
        ("CREATE TABLE stat_event_rates (minute TEXT NOT NULL, match_id INTEGER NOT NULL, "
         "events INTEGER NOT NULL, PRIMARY KEY (minute, match_id)) WITHOUT ROWID"),
        ("INSERT INTO stat_event_rates SELECT substr(timestamp, 1, 16), match_id, COUNT(*) "
         "FROM pss_events_v2 WHERE match_id IS NOT NULL GROUP BY 1, 2"),
        *(f"ALTER TABLE stat_matches DROP COLUMN {column}" for column in (
            "tournament_id", "tournament_day_id", "court", "hour", "finished", "classification",
            "duration_ms"))])
    service = open_db(path)
    after = figures(service)
    assert after["mean"] == pytest.approx(before["mean"], abs=0.002)
    assert {**after, "mean": 0} == {**before, "mean": 0}
    groups = read(service, "SELECT * FROM stat_tournament_groups ORDER BY 1, 2, 3, 4, 5, 6")
    service.writer.run(statistics.rebuild)
    rebuilt = read(service, "SELECT * FROM stat_tournament_groups ORDER BY 1, 2, 3, 4, 5, 6")
    without_ms = [r[:8] + r[9:] for r in groups]  # duration sums: julianday against ISO times
    assert without_ms == [r[:8] + r[9:] for r in rebuilt]
    assert figures(service) == {**before, "mean": figures(service)["mean"]}


@pytest.mark.sqlite_only(reason="fails writes with SQLite's max_page_count")
def test_aggregates_stay_exact_when_batches_fail_and_are_retried(db_app, service):
    """A full disk (SQLite's page limit) rolls batches back after parts of them, aggregates
    included, and the writer retries them: what is kept between batches must follow."""
    sent = sender_datagrams(45, 0, 1)
    feed = Feed(session_id="full", source=("10.0.0.9", 40000))
    store(service, feed.events(sent[:150]))

    def cap(pages):
        def apply(conn):
            limit = conn.execute("PRAGMA page_count").fetchone()[0] if pages is None else pages
            return conn.execute(f"PRAGMA max_page_count = {int(limit)}").fetchone()[0]
        return service.writer.run(apply, timeout=10)

    cap(None)
    for start in range(150, len(sent), 25):
        assert service.writer.submit(feed.events(sent[start:start + 25]))
    wait_for(lambda: service.writer.stats()["failed_writes"] > 0, 10, 0.01, "a failed write")
    cap(1 << 30)
    assert service.writer.flush(30)
    assert service.writer.stats()["lost"] == 0
    ids = match_ids_by_number(service)
    (m,) = oracle(sent)
    stats = call(db_app, "get_match_statistics", ids[m["number"]])
    assert actual_match(stats) == expected_match(m)
    incremental = stat_tables(service)
    call(db_app, "rebuild_statistics")
    assert stat_tables(service) == incremental


def test_a_rolled_back_fold_leaves_nothing_behind_for_the_next_batch(db_app, service):
    """The matches kept between batches must be dropped when the transaction that updated
    them rolls back (here: the last events folded again inside a transaction rolled back)."""
    sent = sender_datagrams(46, 0, 1)
    feed = Feed(session_id="rb", source=("10.0.0.9", 40001))
    half = len(sent) // 2
    store(service, feed.events(sent[:half]))

    def fold_again_then_roll_back(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE stat_state SET value = value - 300 WHERE key = 'folded_up_to'")
            statistics.update_aggregates(conn.cursor())
        finally:
            conn.execute("ROLLBACK")

    service.writer.run(fold_again_then_roll_back)
    store(service, feed.events(sent[half:]))
    (m,) = oracle(sent)
    stats = call(db_app, "get_match_statistics", match_ids_by_number(service)[m["number"]])
    assert actual_match(stats) == expected_match(m)
    incremental = stat_tables(service)
    call(db_app, "rebuild_statistics")
    assert stat_tables(service) == incremental
