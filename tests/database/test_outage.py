"""Store-and-forward on a real PostgreSQL server that really goes away (``pg_ctl stop -m
immediate``, a crash to its clients) and comes back: ingest goes on into the local spool, reads
say "central database unavailable", and when the server answers again every batch is forwarded
in order, exactly once, and the spool is emptied. The server here is this module's own
(``own_pg_server``): stopping the session's shared one would break the other tests."""

from __future__ import annotations

import psycopg
import pytest

from restrike.host.errors import Unavailable
from restrike.host.timeutil import now_iso
from restrike.plugins.plugin_database.courts import spool_depth
from restrike.plugins.plugin_database.recovery import DatabaseOpenError
from restrike.plugins.plugin_database.service import DatabaseConfig, DatabaseService
from restrike.plugins.plugin_database.spool import SPOOL_FILE
from restrike.plugins.plugin_database.tournaments import save_context
from restrike.plugins.plugin_database.writer import UNAVAILABLE
from restrike.pss.session import UdpSession
from tests.conftest import wait_for

from .conftest import Feed, match_datagrams

COURT = "court-7"


def open_service(url: str, data_dir, **config) -> DatabaseService:
    config = {"court": COURT, "pool_max_size": 2, "pool_timeout": 1.0, **config}
    return DatabaseService.open(url, DatabaseConfig(**config), data_dir=data_dir)


def spool_of(service: DatabaseService) -> dict:
    return service.writer.stats()["spool"]


def stored(url: str) -> list[tuple]:
    """Every event on the server by id: (session, datagram sequence, index, raw text)."""
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT session_id, event_sequence, datagram_index, raw_data FROM pss_events_v2 "
            "ORDER BY id")]


def read_when_back(service: DatabaseService, sql: str) -> list[tuple] | None:
    """The rows of a read, None while the pool still answers "unavailable" (it reconnects
    with its own backoff)."""
    try:
        with service.pool.connection() as conn:
            return [tuple(r) for r in conn.execute(sql)]
    except Unavailable:
        return None


def keys(events: list) -> list[tuple]:
    return [(ev.session_id, ev.seq, ev.index, ev.raw) for ev in events]


def feed_batches(service: DatabaseService, feed: Feed, count: int) -> list:
    """``count`` batches of a match each, submitted; their events."""
    sent = []
    for _ in range(count):
        events = feed.events(match_datagrams())
        assert service.writer.submit(events)
        sent += events
    return sent


def test_an_outage_is_spooled_and_forwarded_in_order_exactly_once(stoppable_pg_server, tmp_path):
    url = stoppable_pg_server.database()
    service = open_service(url, tmp_path)
    try:
        feed = Feed("outage-session")
        service.writer.submit_session(UdpSession(session_id="outage-session",
                                                 started_at=now_iso()))
        sent = feed_batches(service, feed, 2)
        assert service.writer.flush(10)
        assert spool_of(service)["depth"]["events"] == 0
        before = len(sent)

        stoppable_pg_server.stop("immediate")  # mid-feed: the writer's connection dies under it
        sent += feed_batches(service, feed, 3)
        wait_for(lambda: spool_of(service)["unreachable"]
                 and spool_of(service)["depth"]["events"] == len(sent) - before,
                 message="the batches of the outage in the spool")
        assert service.writer.flush(10)  # acknowledged: committed to the spool
        sent += feed_batches(service, feed, 2)
        assert service.writer.flush(10)
        assert spool_of(service)["depth"]["events"] == len(sent) - before  # it grows
        assert spool_of(service)["unreachable_since"] is not None
        # get_courts' health of this court: spooling, with the depth
        assert spool_depth(service, COURT) == len(sent) - before
        assert spool_depth(service, "another court") == 0
        assert (tmp_path / SPOOL_FILE).exists()

        # reads and writes say plainly that central data is unavailable
        with pytest.raises(Unavailable, match=UNAVAILABLE):
            with service.pool.connection() as conn:
                conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()
        with pytest.raises(Unavailable, match=UNAVAILABLE):
            service.write(lambda conn: conn.execute("SELECT 1").fetchone())

        stoppable_pg_server.start()
        sent += feed_batches(service, feed, 1)  # while the spool is forwarded: behind it
        wait_for(lambda: not spool_of(service)["unreachable"]
                 and spool_of(service)["depth"]["events"] == 0, 30,
                 message="the spool forwarded")
        assert service.writer.flush(10)
        assert stored(url) == keys(sent)  # every event once, in the order it arrived
        stats = service.writer.stats()
        assert stats["spool"]["forwarded"] >= len(sent) - before - len(match_datagrams())
        assert stats["spool"]["dropped"] == stats["dropped"] == stats["lost"] == 0
        assert wait_for(lambda: read_when_back(service, "SELECT COUNT(*) FROM pss_events_v2"),
                        30) == [(len(sent),)]  # reads work again
    finally:
        service.close()


def test_a_start_while_the_server_is_down_spools_and_migrates_when_it_answers(stoppable_pg_server,
                                                                             tmp_path):
    url = stoppable_pg_server.database()  # never migrated: a first-ever start during an outage
    stoppable_pg_server.stop("immediate")
    service = open_service(url, tmp_path)
    try:
        assert spool_of(service)["unreachable"]
        feed = Feed("first-session")
        service.writer.submit_session(UdpSession(session_id="first-session",
                                                 started_at=now_iso()))
        sent = feed_batches(service, feed, 2)
        assert service.writer.flush(10)
        assert spool_of(service)["depth"]["events"] == len(sent)
        with pytest.raises(Unavailable, match=UNAVAILABLE):
            with service.pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()

        stoppable_pg_server.start()
        wait_for(lambda: spool_of(service)["depth"]["batches"] == 0
                 and not spool_of(service)["unreachable"], 30, message="the spool forwarded")
        assert stored(url) == keys(sent)
        assert wait_for(lambda: read_when_back(service, "SELECT status, court FROM "
                                               "udp_server_sessions"), 30) \
            == [("running", COURT)]  # the read pool connected by itself
    finally:
        service.close()


def test_the_sessions_of_a_run_killed_during_an_outage_end_interrupted(stoppable_pg_server,
                                                                       tmp_path):
    """The killed run's spooled "running" record must not revive its session: the earlier
    run's batches are forwarded first, then its sessions are closed at their last event."""
    url = stoppable_pg_server.database()
    first = open_service(url, tmp_path)
    feed = Feed("killed-run")
    try:
        first.writer.submit_session(UdpSession(session_id="killed-run", started_at=now_iso()))
        sent = feed_batches(first, feed, 1)
        assert first.writer.flush(10)
        before = len(sent)
        stoppable_pg_server.stop("immediate")
        sent += feed_batches(first, feed, 2)
        assert first.writer.flush(10)
        assert spool_of(first)["depth"]["events"] == len(sent) - before
        # the stop record is never written: as after a SIGKILL, the spool's last word is
        # "running" (the spool is committed; closing during an outage keeps it)
    finally:
        first.close()
    stoppable_pg_server.start()

    second = open_service(url, tmp_path)
    try:
        # closed once the earlier run's batches are forwarded (then the spool is empty)
        wait_for(lambda: second.writer.interrupted_sessions == 1, 30,
                 message="the earlier run's spool forwarded, its session closed")
        assert spool_of(second)["depth"]["batches"] == 0
        assert stored(url) == keys(sent)
        with psycopg.connect(url) as conn:
            status, stopped_at = conn.execute(
                "SELECT status, stopped_at FROM udp_server_sessions WHERE session_id = %s",
                ("killed-run",)).fetchone()
            last = conn.execute("SELECT timestamp FROM pss_events_v2 ORDER BY id DESC "
                                "LIMIT 1").fetchone()[0]
        assert (status, stopped_at) == ("interrupted", last)
    finally:
        second.close()


def test_the_tournament_context_survives_a_start_during_an_outage(stoppable_pg_server, tmp_path):
    url = stoppable_pg_server.database()
    service = open_service(url, tmp_path)
    try:
        def create(conn):
            conn.execute("INSERT INTO tournaments (name, duration_days, created_at, "
                         "updated_at) VALUES ('Open', 2, ?, ?)", (now_iso(), now_iso()))
            tournament = conn.execute("SELECT id FROM tournaments").fetchone()[0]
            save_context(conn, tournament, None)  # as set_udp_tournament_context does
            service.writer.set_context(tournament, None)
            return tournament

        tournament = service.write(create)
    finally:
        service.close()
    stoppable_pg_server.stop("immediate")
    again = open_service(url, tmp_path)
    try:
        assert again.writer.context == (tournament, None)  # from the spool, not the server
        events = Feed("context-session").events(match_datagrams()[:3])
        assert again.writer.submit(events)
        assert again.writer.flush(10)
        stoppable_pg_server.start()
        wait_for(lambda: spool_of(again)["depth"]["batches"] == 0, 30,
                 message="the spool forwarded")
        with psycopg.connect(url) as conn:
            assert {r[0] for r in conn.execute("SELECT tournament_id FROM pss_events_v2")} \
                == {tournament}
    finally:
        again.close()


@pytest.mark.parametrize("what", ["no such database", "no such role"])
def test_a_server_that_refuses_us_stops_the_start_in_one_line(stoppable_pg_server, tmp_path, what):
    url = stoppable_pg_server.url("restrike_nowhere") if what == "no such database" else \
        stoppable_pg_server.url().replace("postgres@", "nobody:secret@")
    with pytest.raises(DatabaseOpenError) as caught:
        open_service(url, tmp_path)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)
    assert "cannot connect to the database" in str(caught.value)


def test_without_a_data_dir_an_unreachable_server_stops_the_start(stoppable_pg_server, tmp_path):
    url = stoppable_pg_server.database()
    stoppable_pg_server.stop("immediate")
    with pytest.raises(DatabaseOpenError, match="cannot connect"):
        DatabaseService.open(url, DatabaseConfig(court=COURT))
