"""Crash during archival and restore, through the real app's commands, while ingest goes on.

``tests/database/test_archive_crash.py`` kills a bare worker process at chosen chunks of
``archive.archive_old_events`` / ``restore_from_archive``. This test covers what that one
cannot: the operations as the page runs them (``archive_old_events`` / ``restore_from_archive``
over the HTTP bridge, on the app's own ``db-writer`` thread), a court sending meanwhile (its
batches queue up behind the operation), and the app killed with SIGKILL when the operation's
``archive_progress`` push reports a random share done. After each restart: the file is sound,
every event is in exactly one of ``pss_events_v2`` / ``pss_events_v2_archive`` with its details
beside it, the operation happened whole or not at all, and the court's events are an exact
prefix of what it sent, none that the writer acknowledged missing.
"""

from __future__ import annotations

import os
import random
import threading

import httpx
import pytest

from tests.database.archive_worker import DETAILS_PER_EVENT, create_database, fill_events
from tests.reliability.conftest import (
    EventStream,
    Sender,
    check_exact_prefix,
    expected_messages,
    integrity,
    open_db,
    stored_session,
    wait_for,
)

N_EVENTS = int(os.environ.get("RESTRIKE_APP_CRASH_EVENTS", "50000"))
OPERATIONS = {
    "archive": ("archive_old_events", {"daysOld": 0}),
    "restore": ("restore_from_archive", {"startDate": "1970-01-01", "endDate": "2999-12-31"}),
}


def _side_of_prefilled(conn) -> str:
    """Where the N pre-filled events (ids 1..N) are: "main" or "archive" — never split."""
    main = conn.execute("SELECT COUNT(*) FROM pss_events_v2 WHERE id <= ?",
                        (N_EVENTS,)).fetchone()[0]
    archived = conn.execute("SELECT COUNT(*) FROM pss_events_v2_archive WHERE id <= ?",
                            (N_EVENTS,)).fetchone()[0]
    assert main + archived == N_EVENTS, f"{main} + {archived} of {N_EVENTS} pre-filled events"
    assert main in (0, N_EVENTS), f"a partial move: {main} in main, {archived} archived"
    return "main" if main else "archive"


def _check_every_event_once(conn) -> None:
    both = conn.execute("SELECT COUNT(*) FROM pss_events_v2 JOIN pss_events_v2_archive "
                        "USING (id)").fetchone()[0]
    assert both == 0, f"{both} events are in both tables"
    for events, details in (("pss_events_v2", "pss_event_details"),
                            ("pss_events_v2_archive", "pss_event_details_archive")):
        stray = conn.execute(f"SELECT COUNT(*) FROM {details} d LEFT JOIN {events} e "
                             "ON e.id = d.event_id WHERE e.id IS NULL").fetchone()[0]
        assert stray == 0, f"{stray} rows of {details} are away from their event"
        bare = conn.execute(f"SELECT COUNT(*) FROM {events} e WHERE NOT EXISTS "
                            f"(SELECT 1 FROM {details} d WHERE d.event_id = e.id)").fetchone()[0]
        assert bare == 0, f"{bare} events of {events} lost their details"
        prefilled_details = conn.execute(
            f"SELECT COUNT(*) FROM {details} WHERE event_id <= ?", (N_EVENTS,)).fetchone()[0]
        prefilled = conn.execute(f"SELECT COUNT(*) FROM {events} WHERE id <= ?",
                                 (N_EVENTS,)).fetchone()[0]
        assert prefilled_details == DETAILS_PER_EVENT * prefilled


def _run(app, op: str, stream: EventStream, kill_at: float | None):
    """Start ``op`` over HTTP; with ``kill_at`` SIGKILL the app once the progress push reports
    that share done (or the call returned). Returns the call's outcome (None when killed)."""
    name, args = OPERATIONS[op]
    outcome: dict = {}

    def call():
        try:
            outcome["response"] = app.invoke(name, args, timeout=120)
        except httpx.HTTPError as exc:  # the app died under the call
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    if kill_at is None:
        thread.join(120)
        response = outcome["response"]
        assert response.status_code == 200, response.text
        return response.json()
    stream.wait("archive_progress",
                lambda p: p["operation"] == name and p["done"] >= kill_at * p["total"], 120)
    acknowledged = app.stats()["storage"]["stored"]
    app.kill()
    thread.join(30)
    return acknowledged


@pytest.mark.slow
def test_sigkill_during_archive_and_restore_through_the_app(headless_factory):
    master = int(os.environ.get("RESTRIKE_CRASH_SEED", "0")) or random.SystemRandom().randrange(
        1, 10**9)
    rng = random.Random(master)
    app = headless_factory("archive")
    app.data_dir.mkdir(parents=True)
    conn = create_database(app.db_path)
    fill_events(conn, N_EVENTS)
    conn.close()
    app.start()

    outcomes = []
    for round_no, op in enumerate(("archive", "restore", "archive", "restore")):
        with open_db(app.db_path) as conn:
            side = _side_of_prefilled(conn)
        if (op, side) in (("archive", "archive"), ("restore", "main")):
            # The last kill came before the commit: put the events where this op finds them.
            _run(app, "restore" if op == "archive" else "archive", None, None)

        stream = EventStream(app)
        session_id = app.stats()["session"]["session_id"]
        seed = rng.randrange(1, 10**6)
        sender = Sender(app.udp_port, seed=seed, matches=20, rate=400).start()
        wait_for(lambda: app.stats()["storage"]["stored"] > 0, 20, message="ingest to start")
        kill_at = rng.uniform(0.05, 1.0)
        acknowledged = _run(app, op, stream, kill_at)
        result = sender.finish()
        stream.close()
        app.start()

        context = (f"round {round_no}: {op} killed at {kill_at:.0%} "
                   f"(RESTRIKE_CRASH_SEED={master})")
        assert app.call("database_run_integrity_check")["ok"], context
        with open_db(app.db_path) as conn:
            assert integrity(conn) == ["ok"], context
            try:
                _check_every_event_once(conn)
                after = _side_of_prefilled(conn)
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}") from None
            rows = stored_session(conn, session_id, archive=True)
            try:
                check_exact_prefix(rows, expected_messages(sender.datagrams()),
                                   port=result["senders"][0]["source_port"])
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}") from None
            assert len(rows) >= acknowledged, f"{context}: acknowledged events lost"
        before = "main" if op == "archive" else "archive"
        outcomes.append((op, f"{kill_at:.0%}", "rolled back" if after == before else "done"))
    print("outcomes:", outcomes)
