"""The storage of one batch: what the writer thread does inside one transaction.

``BatchStore.write(items, safe)`` stores a batch (the events and session records the writer took
from its queue, in queue order) in one ``BEGIN IMMEDIATE`` ... ``COMMIT``; the steps are in
``store_batch``, in order. Nothing here knows the queue, the thread, the retries or the
statistics (``writer.py``); the rows are built by ``rows.py``, the match state by
``tracking.py``.

What a batch stores
    Every ingested event exactly as received: ``raw_data`` is the message text the UDP plugin
    got (``raw_b64`` in the details keeps the datagram's bytes when they were not UTF-8),
    unknown and invalid events included, in arrival order, each with its details rows under its
    own row id. The writer is the only one inserting events, so it gives the ids itself: read
    once per batch inside its ``BEGIN IMMEDIATE``, above ``sqlite_sequence`` and above the
    largest id of both the main and the archive table, then one after the other in arrival
    order; an archived event's id is never given again, so it can always be restored.
    Alongside, in the same transaction: matches/rounds/scores/warnings (``tracking.py``), the
    session records (``udp_server_sessions``, from ``pss.session.UdpSession``) and the
    per-sender counters (``udp_client_connections``).

How it keeps up with the feed (``bench/database.py`` measures it)
    A batch is a few statements of up to 1024 rows each (``rows.Many``), not a statement per
    row (each execution hands the GIL to the UDP threads and waits to get it back); what an
    event's parsed model alone decides (its ``parsed_data`` but for the match round and clock,
    its detail rows, type and status) is computed once per distinct model and cached
    (``rows.Shapes``); clock ticks and other events that change no match row cost little in
    ``tracking.py``; counters are summed once per batch. Foreign keys are checked once per
    distinct referenced id per batch (``rows.Rows.check_references``) instead of by SQLite for
    every row; a batch that fails that check is redone on the careful path (``safe``), where
    SQLite checks every row.

The careful path (``safe=True``)
    Each event in its own savepoint: an event whose processing fails is stored bare (raw text,
    ``is_valid`` 0, the error in ``error_message``); one that cannot be stored even so is
    counted as lost (``write`` returns the count). The session records and the match state are
    written in savepoints too: a failure there is logged and does not cost the events.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from restrike.host.timeutil import clock_ns, now_iso
from restrike.pss.session import UdpSession

from .backend import errors, is_postgres
from .court import default_court
from .listen import COURTS, notify
from .rows import (
    EVENT_INTO,
    PROTOCOL_VERSION,
    STR,
    UNPLACED,
    Rows,
    Shapes,
    Source,
    Suffixes,
    many,
)
from .schema import UNKNOWN_CODE
from .statistics import update_aggregates
from .tracking import UPDATE_MATCHES, UPDATE_ROUNDS, MatchTracker
from .transactions import rollback, transaction

log = logging.getLogger(__name__)

_INSERT_EVENT = EVENT_INTO + "VALUES (" + ", ".join("?" * 20) + ")"  # one row, None for NULL
_NEXT_EVENT_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'pss_events_v2'), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2_archive), 0)) + 1"
)
_ENSURE_SESSION = (
    "INSERT INTO udp_server_sessions (session_id, started_at, status, updated_at, court) "
    "VALUES (?, ?, 'running', ?, ?) ON CONFLICT (session_id) DO NOTHING"
)
_UPSERT_SESSION = (
    "INSERT INTO udp_server_sessions (session_id, bind_address, port, started_at, stopped_at, "
    "status, is_simulated, counters, updated_at, court) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET bind_address = excluded.bind_address, "
    "port = excluded.port, started_at = excluded.started_at, stopped_at = excluded.stopped_at, "
    "status = excluded.status, is_simulated = excluded.is_simulated, "
    "counters = excluded.counters, updated_at = excluded.updated_at, court = excluded.court"
)


# -- what a batch holds (the writer's queue items that are data) ---------------------------------


@dataclass(slots=True)
class Events:
    """One submitted list of ``pss.ingested.IngestedEvent``."""

    events: list
    context: tuple  # (tournament_id, tournament_day_id) in effect when the batch was submitted
    size: int  # its cost in bytes for the writer's queue bound (``writer.event_bytes``)


@dataclass(slots=True)
class Session:
    """A UDP session record (``restrike_udp_session``)."""

    session: UdpSession


class BatchStore:
    """Stores batches on the writing connection (the writer thread's only).

    ``conn`` must be migrated; ``on_error(exc)`` is told of every error the careful path
    absorbed (the writer's ``last_error``). Keeps what lives from batch to batch: the match
    state (``tracking.MatchTracker``), the shape and suffix caches, the foreign-key switch.
    ``court`` (``--court``, default the host name) is stored with every session and match.
    """

    def __init__(self, conn, on_error: Callable[[BaseException], None],
                 court: str | None = None) -> None:
        self._conn = conn
        self.court = court or default_court()
        self._on_error = on_error
        self._postgres = is_postgres(conn)
        self._types = {code: id_ for code, id_ in conn.execute(
            "SELECT code, id FROM pss_event_types")}
        self._unknown_type = self._types[UNKNOWN_CODE]
        self._tracker = MatchTracker(self.court)
        self._foreign_keys_on: bool | None = None  # unknown: set before each use
        self.shapes = Shapes(self._types, self._unknown_type)
        self._suffixes = Suffixes()
        # A statement inserting hundreds of rows into a table with 8 indexes keeps a statement
        # journal (the pages it changes, to undo it alone) of more than 64 KiB: with temporary
        # files on disk that is a spill file written for every statement (measured: 3.7 times
        # the writes of the WAL itself); in memory it is a copy.
        conn.execute("PRAGMA temp_store=MEMORY")

    def write(self, items: list, safe: bool) -> int:
        """Store ``items`` (``Events`` and ``Session``; anything else is skipped) in one
        transaction; returns the events lost (careful path only). On any exception the
        transaction is rolled back, the match state is as before, and the exception raised."""
        tracker = self._tracker
        snapshot = tracker.snapshot()
        try:
            # The careful path lets SQLite check every row's foreign keys. A normal batch checks
            # each distinct value once instead (Rows.check_references): SQLite's checks are a
            # b-tree search per row and per key, about 8% of a batch's cost.
            self.foreign_keys(safe)
            with transaction(self._conn):
                lost = self.store_batch(self._conn.cursor(), items, safe)
        except BaseException:
            tracker.restore(snapshot)
            raise
        tracker.release(snapshot)
        return lost

    def store_batch(self, cur, items: list, safe: bool) -> int:
        """The steps of one batch, in order, inside the caller's transaction."""
        now = now_iso()
        # 1. Every session the events name exists (a session record may come later).
        self._ensure_sessions(cur, items, now)
        # 2. The events' ids: read once per batch (see the module docstring).
        #    On PostgreSQL, where several writers share the table, a block from its sequence.
        if self._postgres:
            from .pg import allocate_event_ids  # PostgreSQL only (the driver)
            next_id = allocate_event_ids(cur, sum(
                len(item.events) for item in items if isinstance(item, Events)))
        else:
            next_id = cur.execute(_NEXT_EVENT_ID).fetchone()[0]
        first_id = next_id
        # 3. The rows of the events, the match state and the session records, in queue order.
        rows = Rows(now)
        lost = 0
        for item in items:
            if isinstance(item, Session):
                self._guarded(cur, safe, "session record", self._upsert_session, cur,
                              item.session, now)
            elif isinstance(item, Events):
                if safe:
                    for ev in item.events:
                        if not self._store_safely(cur, ev, item.context, now, next_id, rows):
                            lost += 1
                        next_id += 1
                else:
                    next_id = self._prepare(cur, item.events, item.context, next_id, rows)
        # 4. What the foreign keys would check (off on the fast path, see ``write``).
        #    (PostgreSQL checks them itself: its foreign keys stay on)
        if not safe and not self._postgres:
            rows.check_references(cur)
        # 5. The event, detail, score and warning rows: a few many-row statements.
        inserted = rows.events  # the list ``insert`` lets go of, folded at step 7
        rows.insert(cur)
        # 6. The matches and rounds this batch changed.
        self._guarded(cur, safe, "match state", self._write_match_state, cur, now)
        # 7. The statistics' aggregates (statistics.py), folded from the events just inserted.
        #    On PostgreSQL exactly this batch's ids: other writers fill the table meanwhile.
        own = (first_id, next_id - 1) if self._postgres else None
        self._guarded(cur, safe, "statistics", update_aggregates, cur, inserted, own)
        # 8. The per-sender and per-session counters.
        rows.write_counters(cur)
        # 9. On PostgreSQL: tell every instance's Courts screen, at commit (``listen.py``).
        if self._postgres:
            notify(cur, COURTS, self.court)
        return lost

    def use_connection(self, conn) -> None:
        """Store on ``conn`` from now on: a new connection to the same database, in place of a
        broken one (the match state and the caches stay)."""
        self._conn = conn
        self._foreign_keys_on = None

    def foreign_keys(self, on: bool | None) -> None:
        """Switch the connection's foreign key checks, only when they are not so already: a
        PRAGMA change makes SQLite re-prepare every statement, which for the batch INSERTs
        costs more than the checks. So they stay off from batch to batch and are on for every
        ``Writer.run`` function and the careful path. ``None``: someone else may have changed
        them (a ``run`` function); set them again before the next batch."""
        if on is None or self._foreign_keys_on is on:
            self._foreign_keys_on = None if on is None else on
            return
        if self._conn.in_transaction:  # a failed ROLLBACK: the pragma would be ignored
            rollback(self._conn)
        self._conn.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        self._foreign_keys_on = on

    # -- the steps ------------------------------------------------------------------------------

    def _ensure_sessions(self, cur, items: list, now: str) -> None:
        first_seen: dict[str, str] = {}
        for item in items:
            if isinstance(item, Events):
                for ev in item.events:
                    first_seen.setdefault(ev.session_id, ev.received_at)
        for session_id, at in first_seen.items():
            cur.execute(_ENSURE_SESSION, (session_id, at, now, self.court))

    def _write_match_state(self, cur, now: str) -> None:
        """Write the matches and rounds the batch changed: one statement for each table."""
        matches, rounds = self._tracker.dirty_rows(now)
        for template, rows in ((UPDATE_MATCHES, matches), (UPDATE_ROUNDS, rounds)):
            if rows and self._postgres:
                from .pg import update_by_id  # PostgreSQL only (the driver)
                update_by_id(cur, template, rows)
            elif rows:
                many(template, len(rows[0])).run(cur, rows)

    def _prepare(self, cur, events: list, context: tuple, next_id: int, rows: Rows) -> int:
        """The hot loop: turn events into rows (numbered from ``next_id``) in ``rows`` and apply
        them to the match state; returns the next free id. No SQL per event except what the
        match state needs (a new match, a new round, athletes). Every line here runs 25 000
        times a second: what can be done once per batch (the counters) or once per distinct
        value (Shapes, Suffixes, Source.details) is."""
        shape_of = self.shapes.get
        cached = self.shapes.cache.get
        place = self._tracker.place
        suffixes = self._suffixes
        suffix_of = suffixes.get
        add_event = rows.events.append
        details_out = rows.details
        add_details = details_out.extend
        flat = itertools.chain.from_iterable
        linked = rows.linked
        sources = rows.sources
        rows.contexts.add(context)
        tournament_id, day_id = context[0] or 0, context[1] or 0
        now_ns = clock_ns
        for ev in events:
            event = ev.event
            # Shapes.get, its hit path inlined (most events)
            hit = cached((type(event), getattr(event, "raw", None)))
            if hit is not None and hit[0] == getattr(event, "__dict__", None):
                kind, odd, tail, head, details = hit[1]
            else:
                kind, odd, tail, head, details = shape_of(event)
            key = (ev.session_id, ev.source_ip, ev.source_port)
            state = place(cur, key, ev, kind, context, next_id, linked)
            if state is None:
                match_id = round_id = 0
                suffix = UNPLACED
            else:
                match_id = state.id
                round_id = state.round_id or 0
                placed = state.placement_cache
                if placed is None:
                    where = state.live.where
                    placed = state.placement_cache = suffix_of(where) or suffixes.put(*where)
                suffix = placed
            elapsed = now_ns() - ev.received_ns if ev.received_ns else -1
            add_event((  # EventRow's values (a plain tuple: see rows.EventRow)
                next_id, ev.session_id, match_id, round_id, ev.received_at, ev.raw,
                head + suffix, ev.seq, ev.index,
                (elapsed + 500) // 1000 / 1000 if elapsed >= 0 else -1,
                tournament_id, day_id) + tail)
            src = sources.get(key)
            if src is None:
                src = sources[key] = Source(ev, next_id)
            src.seen.append(ev)
            src.last_id = next_id
            prefix = (next_id,)
            if details:
                add_details(flat(map(prefix.__add__, details)))
            index = ev.index
            add_details(flat(map(prefix.__add__, src.details if not index else src.at(index))))
            if ev.raw_b64 and not index:
                # The bytes of the whole datagram, once: on its first message, not on each line.
                details_out += (next_id, "raw_b64", ev.raw_b64, STR)
            if odd:
                src.odd[odd] += 1
            next_id += 1
        return next_id

    def _store_safely(self, cur, ev, context: tuple, now: str, event_id: int,
                      rows: Rows) -> bool:
        """One event in its own savepoint; on a non-I/O error store it bare. False if lost."""
        snapshot = self._tracker.snapshot()
        cur.execute("SAVEPOINT one_event")
        try:
            one = Rows(now)
            self._prepare(cur, [ev], context, event_id, one)
            one.insert(cur)
        except errors.OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - stored bare below, with the reason
            cur.execute("ROLLBACK TO one_event")
            self._tracker.restore(snapshot)
            try:
                self._store_bare(cur, ev, now, exc, event_id)
            except errors.OperationalError:
                raise
            except Exception as again:  # noqa: BLE001 - counted as lost, logged
                cur.execute("ROLLBACK TO one_event")
                cur.execute("RELEASE one_event")
                log.error("event %r of session %s could not be stored: %s",
                          getattr(ev, "raw", None), getattr(ev, "session_id", None), again)
                self._on_error(again)
                return False
            one = Rows(now)  # its counters: as an invalid event
            one.count_bare(ev, event_id)
        else:
            self._tracker.release(snapshot)
        cur.execute("RELEASE one_event")
        rows.merge_counters(one)
        return True

    def _store_bare(self, cur, ev, now: str, exc: Exception, event_id: int) -> None:
        # No match, no tournament: nothing here may depend on another row that could be the
        # reason the normal path failed.
        error = f"stored without its parsed form: {type(exc).__name__}: {exc}"
        cur.execute(_INSERT_EVENT, (
            event_id, ev.session_id, None, None, ev.received_at, str(ev.raw), None, ev.seq,
            None, now, None, None, self._unknown_type, 0, error, "invalid", PROTOCOL_VERSION,
            0.0, json.dumps([error], ensure_ascii=False), ev.index,
        ))

    def _upsert_session(self, cur, session: UdpSession, now: str) -> None:
        cur.execute(_UPSERT_SESSION, (
            session.session_id, session.bind, session.port, session.started_at or now,
            session.stopped_at, session.status, int(session.simulated),
            json.dumps(session.counters_record(), default=str, separators=(",", ":")), now,
            self.court,
        ))

    def _guarded(self, cur, safe: bool, what: str, fn, *args) -> None:
        """Run ``fn`` plainly, or in safe mode inside a savepoint that a failure rolls back."""
        if not safe:
            fn(*args)
            return
        cur.execute("SAVEPOINT guarded")
        try:
            fn(*args)
        except errors.OperationalError:
            raise
        except Exception as exc:
            cur.execute("ROLLBACK TO guarded")
            log.exception("database writer could not write the %s", what)
            self._on_error(exc)
        cur.execute("RELEASE guarded")

