"""Crash during ingest: SIGKILL the headless app at random moments while a court sends 2,000
datagrams/s, restart it on the same database and port, and check what survived.

The promise (docs/reliability.md): what the writer acknowledged (``storage.stored``) survives a
kill; what was received but not committed yet is lost, at most the receive queue plus the
writer queue at that instant, and always as a tail: the stored events of each sender are an
exact prefix of what it sent (whole datagrams, no gap, no reordering, no duplicate).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3

import pytest

from tests.reliability.conftest import (
    Sender,
    check_exact_prefix,
    expected_messages,
    integrity,
    open_db,
    send_all,
    stored_session,
    wait_for,
)

CYCLES = int(os.environ.get("RESTRIKE_CRASH_CYCLES", "4"))
RATE = 2_000  # datagrams/s: about 400 courts' worth of real feed, from one sender
MATCHES = 8  # ~4,500 datagrams, ~2.3 s at RATE: longer than the latest kill point


def _clean_session(app, seen: set[str]) -> str:
    """The freshly started app listens by itself with zeroed counters; returns its session."""
    stats = app.stats()
    assert stats["status"] == "Running", stats.get("error")
    session_id = stats["session"]["session_id"]
    assert session_id not in seen, "a restart must open a new session"
    for key in ("datagrams", "events", "queue_dropped", "rejected", "dispatched_datagrams"):
        assert stats[key] == 0, f"{key} of a new session is {stats[key]}"
    storage = stats["storage"]
    for key in ("stored", "pending", "dropped", "held", "lost", "failed_writes"):
        assert storage[key] == 0, f"storage.{key} of a new session is {storage[key]}"
    return session_id


def _check_killed_session(conn: sqlite3.Connection, run: dict) -> None:
    rows = stored_session(conn, run["session_id"])
    per_datagram = expected_messages(run["datagrams"])
    where = f"(cycle {run['cycle']}, RESTRIKE_CRASH_SEED={run['master']})"
    try:
        stored = check_exact_prefix(rows, per_datagram, port=run["source_port"])
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}") from None
    # Acknowledged = committed: every event the writer had reported stored is still there.
    assert len(rows) >= run["acknowledged"], (
        f"{where}: {run['acknowledged']} events were acknowledged, {len(rows)} survived")
    assert stored >= 1
    # The per-sender and per-session counters are written in the same transactions as the
    # events, so they agree exactly with what survived.
    client = conn.execute(
        "SELECT packets, events FROM udp_client_connections WHERE session_id = ? "
        "AND source_port = ?", (run["session_id"], run["source_port"])).fetchone()
    assert tuple(client) == (stored, len(rows)), where
    session = conn.execute(
        "SELECT packets_received, events_stored, status, stopped_at FROM udp_server_sessions "
        "WHERE session_id = ?", (run["session_id"],)).fetchone()
    assert tuple(session)[:2] == (stored, len(rows)), where
    # The restart closed the session the kill cut short, at its last stored event.
    last = conn.execute("SELECT timestamp FROM pss_events_v2 WHERE session_id = ? "
                        "ORDER BY id DESC LIMIT 1", (run["session_id"],)).fetchone()[0]
    assert tuple(session)[2:] == ("interrupted", last), where
    run["stored_datagrams"], run["stored_events"] = stored, len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL", "OFF"])
def test_sigkill_during_ingest_keeps_an_exact_prefix(headless_factory, synchronous):
    """A kill of the process (not of the machine) loses nothing committed in any synchronous
    mode: the operating system still writes what SQLite handed it."""
    master = int(os.environ.get("RESTRIKE_CRASH_SEED", "0")) or random.SystemRandom().randrange(
        1, 10**9)
    rng = random.Random(master)
    app = headless_factory("crash", config={"database": {"synchronous": synchronous}})
    app.start()
    assert app.call("database_get_info")["synchronous"] == synchronous
    seen: set[str] = set()
    runs: list[dict] = []
    for cycle in range(CYCLES if synchronous == "NORMAL" else 2):
        session_id = _clean_session(app, seen)
        seen.add(session_id)
        if runs:
            assert app.call("database_run_integrity_check")["ok"]
            with open_db(app.db_path) as conn:
                assert integrity(conn) == ["ok"]
                _check_killed_session(conn, runs[-1])

        seed = rng.randrange(1, 10**6)
        sender = Sender(app.udp_port, seed=seed, matches=MATCHES, rate=RATE).start()
        kill_after = rng.randint(200, 3_500)  # datagrams received: a random moment of ingest
        # No start_udp_server: after a restart the app must listen again by itself.
        wait_for(lambda kill_after=kill_after: app.stats()["datagrams"] >= kill_after, 30, 0.01,
                 f"{kill_after} datagrams to arrive")
        acknowledged = app.stats()["storage"]["stored"]
        app.kill()
        result = sender.finish()
        runs.append({"cycle": cycle, "seed": seed, "master": master, "session_id": session_id,
                     "acknowledged": acknowledged, "source_port": result["senders"][0]
                     ["source_port"], "datagrams": sender.datagrams(), "sent": result["sent"]})
        app.start()

    _clean_session(app, seen)
    assert app.call("database_run_integrity_check")["ok"]
    with open_db(app.db_path) as conn:
        assert integrity(conn) == ["ok"]
        _check_killed_session(conn, runs[-1])
        # No event of another run crept into a session, none is stored twice.
        total = conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0]
        assert total == sum(r["stored_events"] for r in runs)
    for run in runs:
        print(f"{synchronous} cycle {run['cycle']}: acknowledged {run['acknowledged']} events "
              f"before the kill, {run['stored_events']} stored ({run['stored_datagrams']} "
              f"datagrams) of {run['sent']} datagrams sent")
    # The restarted app ingests on its own.
    port = send_all(app.udp_port, [b"pt1;3\r\n", b"pt2;1\r\n"])
    wait_for(lambda: app.stats()["storage"]["stored"] == 2, 10, message="ingest after restart")
    assert app.stats()["clients"][0]["port"] == port


@pytest.mark.slow
def test_sigterm_stores_everything_received(headless_factory):
    """An orderly stop (SIGTERM) loses nothing: every received datagram is committed first."""
    app = headless_factory("term")
    app.start()
    session_id = app.stats()["session"]["session_id"]
    sender = Sender(app.udp_port, seed=7, matches=4, rate=None, speed=0).start()
    wait_for(lambda: app.stats()["datagrams"] >= 1_000, 30, 0.01, "1,000 datagrams")
    code = app.stop()
    result = sender.finish()
    assert code == 0, f"SIGTERM should end the app cleanly, exit code {code}:\n{app.log()}"
    with open_db(app.db_path) as conn:
        assert integrity(conn) == ["ok"]
        row = conn.execute("SELECT status, stopped_at, packets_received, events_stored, "
                           "counters FROM udp_server_sessions WHERE session_id = ?",
                           (session_id,)).fetchone()
        assert row["status"] == "stopped" and row["stopped_at"]
        rows = stored_session(conn, session_id)
        stored = check_exact_prefix(rows, expected_messages(sender.datagrams()),
                                    port=result["senders"][0]["source_port"])

    counters = json.loads(row["counters"])
    assert stored == counters["packets_received"], "received datagrams were not all stored"
    assert len(rows) == counters["events"]
