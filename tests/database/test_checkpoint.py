"""The WAL checkpoints (``checkpoint.py``) on real SQLite files: not SQLite's automatic ones but
the writer's, between two batches, at most every interval; a reader on an old snapshot only
delays them, the WAL file is bounded, and their statistics keep their keys."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from itertools import count

import pytest
from pydantic import ValidationError

from restrike.plugins.plugin_database.maintenance import vacuum
from restrike.plugins.plugin_database.pool import read_snapshot
from restrike.plugins.plugin_database.running import service_of
from restrike.plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService
from tests.conftest import wait_for

from .conftest import Feed, call, match_datagrams, read, store

MiB = 1024 * 1024
STATS_KEYS = {"interval_s", "runs", "frames_checkpointed", "busy", "errors", "last_at",
              "pending_frames", "wal_bytes", "wal_warn_bytes", "wal_over_bound",
              "flush_interval_s", "wal_flushes", "wal_flush_errors"}

_matches = count(100)


def a_match() -> list:
    """The events of one more whole match (its own session, so it is new rows everywhere)."""
    number = next(_matches)
    return Feed(f"session-{number}").events(match_datagrams(str(number)))


def stats(service: DatabaseService) -> dict:
    stats = service.checkpoint_stats()
    assert stats is not None
    return stats


def wal_size(service: DatabaseService) -> int:
    try:
        return os.path.getsize(f"{service.path}-wal")
    except FileNotFoundError:
        return 0


def events_stored(service: DatabaseService) -> int:
    return read(service, "SELECT COUNT(*) FROM pss_events_v2")[0][0]


@pytest.mark.sqlite_only(reason="SQLite's WAL")
def test_sqlite_never_checkpoints_on_its_own_the_writer_does_once_an_interval(open_db):
    db = open_db(checkpoint_interval_s=0.05)
    assert db.write(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
    assert db.write(lambda conn: conn.execute("PRAGMA journal_size_limit").fetchone()[0]) \
        == 64 * MiB
    submitted = 0

    def one_more_batch_then_enough() -> bool:
        nonlocal submitted
        events = a_match()
        store(db, events)
        submitted += len(events)
        return stats(db)["frames_checkpointed"] >= 1000  # SQLite's own threshold, passed

    wait_for(one_more_batch_then_enough, timeout=60, interval=0,
             message="1,000 WAL frames checkpointed by the writer")
    figures = stats(db)
    assert figures["runs"] >= 1 and figures["errors"] == 0 and figures["last_at"].endswith("Z")
    assert events_stored(db) == submitted


@pytest.mark.sqlite_only(reason="SQLite's WAL")
def test_a_reader_on_an_old_snapshot_delays_checkpoints_without_blocking_anyone(open_db):
    db = open_db(checkpoint_interval_s=0.05)
    store(db, a_match())
    with db.pool.connection() as reader, read_snapshot(reader):
        seen = reader.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0]
        busy = stats(db)["busy"]
        stored = 0

        def one_more_batch() -> None:  # checkpoints run after a commit: one each time
            nonlocal stored
            store(db, a_match())  # the writer is not blocked: each batch is committed
            stored += 1

        wait_for(lambda: one_more_batch() or (stats(db)["busy"] > busy
                                              and stats(db)["pending_frames"] > 0),
                 message="a checkpoint that could not copy every frame")
        assert reader.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] == seen
    wait_for(lambda: one_more_batch() or stats(db)["pending_frames"] == 0,
             message="a complete checkpoint once the reader ended")
    figures = stats(db)
    assert figures["errors"] == 0 and figures["wal_over_bound"] == 0
    assert events_stored(db) == seen + stored * len(a_match())


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
def test_the_wal_file_is_cut_back_after_a_burst(open_db, caplog):
    db = open_db(checkpoint_interval_s=0.05, wal_keep_bytes=MiB, wal_warn_bytes=2 * MiB)
    store(db, a_match())
    with db.pool.connection() as reader, read_snapshot(reader):
        reader.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()
        # the burst: nothing can be checkpointed while the reader keeps its snapshot
        wait_for(lambda: store(db, a_match()) or wal_size(db) > 3 * MiB, timeout=60,
                 interval=0, message="a WAL of more than 3 MiB")
        wait_for(lambda: store(db, a_match()) or stats(db)["wal_over_bound"] == 1,
                 message="the bound counted")
        busy = stats(db)["busy"]
        wait_for(lambda: store(db, a_match()) or stats(db)["busy"] > busy + 1,
                 message="more incomplete checkpoints")
        assert stats(db)["wal_over_bound"] == 1  # once per episode
    assert [r for r in caplog.records if r.levelno == logging.WARNING
            and "more than 2 MiB" in r.getMessage()]
    # the next commits: a complete checkpoint, then the WAL starts over and the file is cut back
    wait_for(lambda: store(db, a_match()) or wal_size(db) <= MiB,
             message="the WAL cut back to wal_keep_bytes")
    assert stats(db)["errors"] == 0


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
def test_a_writer_that_never_pauses_keeps_its_wal_bounded(open_db):
    """A backlog: the writer goes from COMMIT straight to the next BEGIN. Its own checkpoint in
    between copies the WAL whole (no reader in the way), so the WAL starts over at the next
    BEGIN: 400 matches (about 240,000 events, ~200 MB of WAL pages) leave a WAL of a few MB."""
    db = open_db(checkpoint_interval_s=0.01, wal_keep_bytes=MiB, wal_warn_bytes=64 * MiB,
                 batch_max_events=200)
    store(db, a_match())
    held, release = threading.Event(), threading.Event()

    def hold(conn) -> None:  # the writer waits here while the backlog queues up
        held.set()
        release.wait(30)

    holder = threading.Thread(target=db.write, args=(hold,))
    holder.start()
    wait_for(held.is_set)
    backlog = [a_match() for _ in range(400)]
    for events in backlog:
        assert db.writer.submit(events)
    release.set()
    wait_for(lambda: db.writer.stats()["pending"] == 0, timeout=120, message="the backlog")
    holder.join()
    assert db.writer.flush(10)
    figures = stats(db)
    assert figures["errors"] == 0 and figures["wal_over_bound"] == 0
    assert wal_size(db) <= 16 * MiB
    assert events_stored(db) == len(a_match()) * (1 + len(backlog))


def flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "db-wal-flush"]


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
@pytest.mark.skipif(not hasattr(os, "fdatasync"), reason="no fdatasync here: no flusher")
def test_the_wal_is_flushed_ahead_of_the_checkpoints_by_a_thread_that_stops_with_them(
        tmp_path, open_db):
    """After a commit, the flusher fsyncs the WAL file long before the next checkpoint (a minute
    away here), so the checkpoint's own fsync, which the writer waits for, finds little to do.
    The thread ends when the database closes; ``wal_flush_interval_s`` 0: no thread."""
    db = DatabaseService.open(tmp_path / DB_FILE, DatabaseConfig(
        checkpoint_interval_s=60, wal_flush_interval_s=0.01))
    try:
        assert len(flushers()) == 1
        store(db, a_match())  # the first commit: the first checkpoint (then none for a minute)
        flushes = stats(db)["wal_flushes"]
        store(db, a_match())
        wait_for(lambda: stats(db)["wal_flushes"] > flushes, message="the WAL flushed")
        figures = stats(db)
        assert figures["runs"] == 1 and figures["flush_interval_s"] == 0.01
        assert figures["wal_flush_errors"] == 0
    finally:
        db.close()
    assert flushers() == []
    assert stats(db)["wal_flushes"] == figures["wal_flushes"]  # none after the close

    without = open_db(tmp_path / "without.db", wal_flush_interval_s=0)
    store(without, a_match())
    assert flushers() == [] and stats(without)["flush_interval_s"] == 0


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
@pytest.mark.parametrize("synchronous", ["FULL", "OFF"])
def test_no_flusher_where_synchronous_syncs_every_commit_or_never(open_db, synchronous):
    """FULL syncs the WAL at every commit already; OFF asks for no sync at all."""
    db = open_db(synchronous=synchronous, wal_flush_interval_s=0.01)
    store(db, a_match())
    assert flushers() == [] and stats(db)["flush_interval_s"] == 0


def test_a_flush_interval_is_off_or_a_real_pause():
    with pytest.raises(ValidationError, match="wal_flush_interval_s"):
        DatabaseConfig(wal_flush_interval_s=0.0001)
    assert DatabaseConfig(wal_flush_interval_s=0).wal_flush_interval_s == 0


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
@pytest.mark.skipif(not hasattr(os, "fdatasync"), reason="no fdatasync here: no flusher")
def test_a_wal_past_its_bound_is_checkpointed_before_the_interval(open_db):
    """A feed that writes more than ``wal_keep_bytes`` of WAL within an interval (a minute
    here) gets its checkpoints as soon as the flusher sees the file past the bound, so they
    stay short and the file stays near the bound instead of growing for a whole interval."""
    db = open_db(checkpoint_interval_s=60, wal_flush_interval_s=0.01, wal_keep_bytes=MiB,
                 wal_warn_bytes=64 * MiB)
    store(db, a_match())  # the first commit: the first checkpoint (the next due in a minute)
    wait_for(lambda: store(db, a_match()) or stats(db)["runs"] >= 3, timeout=60,
             message="checkpoints within the interval, for the WAL's size")
    figures = stats(db)
    assert figures["busy"] == 0 and figures["errors"] == 0 and figures["wal_over_bound"] == 0
    assert wal_size(db) <= 8 * MiB


def test_the_checkpoint_statistics_keep_their_keys_from_the_first_call(db_app, backend):
    first = call(db_app, "get_database_pool_stats")
    assert {"in_use", "max_connections", "last_cleanup"} <= set(first)  # the pool's, as before
    if backend == "postgresql":
        assert first["checkpoint"] is None  # the server's WAL is not ours
        return
    assert set(first["checkpoint"]) == STATS_KEYS
    service = service_of(db_app)
    runs = first["checkpoint"]["runs"]
    store(service, a_match())
    wait_for(lambda: call(db_app, "get_database_pool_stats")["checkpoint"]["runs"] > runs)
    assert set(call(db_app, "get_database_pool_stats")["checkpoint"]) == STATS_KEYS


@pytest.mark.sqlite_only(reason="SQLite's WAL file")
def test_closing_checkpoints_everything_and_removes_the_wal(tmp_path, backend):
    path = tmp_path / DB_FILE
    db = DatabaseService.open(path, DatabaseConfig(checkpoint_interval_s=0.05))
    events = a_match()
    store(db, events)
    db.close()
    assert not (tmp_path / f"{DB_FILE}-wal").exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] == len(events)


@pytest.mark.sqlite_only(reason="SQLite's WAL")
def test_a_vacuums_truncating_checkpoint_and_the_writers_own_ones_take_turns(open_db):
    """A vacuum (``wal_checkpoint(TRUNCATE)`` on the writer) between batches whose commits run
    a checkpoint every 10 ms: one connection, one after the other; no error."""
    db = open_db(checkpoint_interval_s=0.01)
    for _ in range(5):
        runs = stats(db)["runs"]
        store(db, a_match())
        assert db.write(lambda conn: vacuum(conn, str(db.path)))["ok"] is True
        wait_for(lambda runs=runs: store(db, a_match()) or stats(db)["runs"] > runs)
    assert stats(db)["errors"] == 0
