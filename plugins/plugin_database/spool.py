"""The store-and-forward spool: writer batches kept in a local SQLite file while the central
database (PostgreSQL) cannot be reached.

One job: ``append`` a batch (the writer's queue items, ``batch.Events`` and ``batch.Session``),
read the ``oldest``, ``delete`` it once forwarded. The writer's forwarder decides when
(``forward.py``); this module only keeps the batches safe and in order.

On disk (``<data dir>/central-spool.db``)
    One row per batch, in ``id`` order (the order batches are forwarded in). Its ``body`` is
    zlib-compressed JSON, never pickle: per event its ``IngestedEvent`` fields and raw text; the
    parsed model is not stored when the PSS parser gives it back from the raw text (nearly
    always; the parse is redone when the batch is read), else as the model's JSON (a message
    that broke a configured parser limit, for instance). A datagram's base64 (not UTF-8) is
    kept once per datagram, not once per message. ``maybe_written`` marks a batch whose write
    to the server failed in a way that leaves its fate unknown (the connection died during
    COMMIT), and every batch an earlier process left (it may have died between the server's
    commit and the delete here): before resending it the writer checks whether the server has
    it already.

What a power cut costs
    WAL journal with ``synchronous=FULL``: every append is fsynced before ``append`` returns,
    and the writer acknowledges a batch (``flush``) only then. A SIGKILL, an OS crash or a power
    cut loses nothing the spool committed. The price is one fsync per batch, paid only during
    an outage (a batch is up to ``batch_max_events`` events, so a few ms per thousand events).

Bounded
    ``max_bytes`` bounds the bytes of the spooled batches (their compressed bodies); the file
    is that plus SQLite's b-tree pages, a few percent more (a forwarded batch's pages are
    reused). A batch that does not fit is refused (``append`` returns False): the writer counts
    and logs it; what is spooled already is never dropped. When the spool empties, the file is
    truncated back to a few pages.

Only the writer thread uses a ``Spool``; ``depth()`` (plain counters) may be read from any
thread.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restrike.pss.ingested import IngestedEvent
from restrike.pss.protocol import EVENT_ADAPTER, EVENT_MODELS, parse_text
from restrike.pss.session import UdpSession

from .batch import Events, Session
from .recovery import is_damaged, move_aside
from .transactions import transaction

log = logging.getLogger(__name__)

SPOOL_FILE = "central-spool.db"
"""The spool's file name inside the data dir."""

DEFAULT_MAX_BYTES = 1024 ** 3
"""The default bound of the spool (``database.spool_max_bytes``): 1 GiB, about 2.5 million
events of a real feed (the simulator's events cost ~400 bytes each, compressed)."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spooled_batches ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " events INTEGER NOT NULL,"
    " maybe_written INTEGER NOT NULL DEFAULT 0,"
    " spooled_at TEXT NOT NULL,"
    " body BLOB NOT NULL)"
)
_STATE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
)
_CONTEXT_KEY = "udp_tournament_context"
_SAME_B64 = 1  # in an event's raw_b64 slot: the same datagram as the message before


def _locked(method):
    """Run ``method`` holding the spool's lock: its one connection is used by the writer thread
    and, for the tournament context, by the thread that follows it on PostgreSQL (a transaction
    of one must not interleave with the other's)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(slots=True)
class Spooled:
    """One batch read back from the spool."""

    id: int
    items: list  # batch.Events and batch.Session, in their queue order
    events: int
    maybe_written: bool
    bytes: int  # of its compressed body


# -- the body of a batch: what is stored, and how it is read back ---------------------------


def _event_record(ev: IngestedEvent, previous_b64: str | None) -> list:
    # The parsed model only when the parser would not give it back from the raw text.
    reparsed = parse_text(ev.raw)
    model = None if len(reparsed) == 1 and reparsed[0] == ev.event else \
        EVENT_ADAPTER.dump_python(ev.event, mode="json")
    b64 = _SAME_B64 if ev.raw_b64 is not None and ev.raw_b64 == previous_b64 else ev.raw_b64
    return [ev.session_id, ev.seq, ev.index, ev.received_at, ev.received_ns, ev.source_ip,
            ev.source_port, ev.raw, b64, model]


def _event_from(record: list, previous_b64: str | None, own: bool) -> IngestedEvent:
    session_id, seq, index, received_at, received_ns, ip, port, raw, b64, model = record
    if b64 == _SAME_B64:
        b64 = previous_b64
    event: Any
    if model is None:
        event = parse_text(raw)[0]
    else:
        try:
            event = EVENT_ADAPTER.validate_python(model)
        except ValueError:  # built by the parser without validation (a limit's ``invalid``)
            event = EVENT_MODELS[model["type"]].model_construct(**model)
    # received_ns is a monotonic clock reading: meaningless to another process (a reboot).
    return IngestedEvent(session_id, seq, index, received_at, received_ns if own else 0, ip,
                         port, raw, b64, event)


def encode(items: list) -> tuple[bytes, int]:
    """``(body, events)`` of a batch's data items (anything but ``Events``/``Session`` is left
    out: a flush marker is the writer's business)."""
    out: list = []
    count = 0
    for item in items:
        if isinstance(item, Events):
            records = []
            previous = None
            for ev in item.events:
                records.append(_event_record(ev, previous))
                previous = ev.raw_b64
            out.append(["e", list(item.context), item.size, records])
            count += len(records)
        elif isinstance(item, Session):
            out.append(["s", item.session.model_dump(mode="json")])
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"), 1), count


def decode(body: bytes, own: bool = True) -> list:
    """The items ``encode`` stored. ``own``: written by this process (keep ``received_ns``)."""
    items: list = []
    for entry in json.loads(zlib.decompress(body)):
        if entry[0] == "e":
            _, context, size, records = entry
            events = []
            previous = None
            for record in records:
                ev = _event_from(record, previous, own)
                events.append(ev)
                previous = ev.raw_b64
            items.append(Events(events, tuple(context), size))
        else:
            items.append(Session(UdpSession.model_validate(entry[1])))
    return items


# -- the file -------------------------------------------------------------------------------


class Spool:
    """The spool file at ``path``, at most ``max_bytes`` of pages in use.

    A file SQLite says is damaged is moved aside (``<name>.corrupt-<UTC time>``, kept for a
    rescue, logged as an ERROR) and a fresh one started.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lock = threading.RLock()
        if max_bytes < 64 * 1024:
            raise ValueError("max_bytes must be at least 64 KiB")
        self.path = Path(path)
        self.max_bytes = max_bytes
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            moved = move_aside(self.path, str(exc))
            log.error("the spool file %s is damaged (%s): moved it to %s and started a fresh "
                      "one", self.path, exc, moved["moved_to"])
            self._conn = self._open()
        events, batches, size, last = self._conn.execute(
            "SELECT COALESCE(SUM(events), 0), COUNT(*), COALESCE(SUM(LENGTH(body)), 0), "
            "COALESCE(MAX(id), 0) FROM spooled_batches").fetchone()
        self._events, self._batches, self._bytes = events, batches, size
        self._first_own_id = last + 1  # rows below it were written by an earlier process
        self._earlier = batches

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # see the module docstring
            conn.execute(_SCHEMA)
            conn.execute(_STATE_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def depth(self) -> dict:
        """``events``, ``batches`` waiting and their ``bytes`` (compressed) of ``max_bytes``."""
        return {"events": self._events, "batches": self._batches, "bytes": self._bytes,
                "max_bytes": self.max_bytes}

    def __len__(self) -> int:
        return self._batches

    @_locked
    def append(self, items: list, spooled_at: str, maybe_written: bool = False) -> bool:
        """Commit a batch (fsynced) after the others. False when it does not fit ``max_bytes``:
        nothing is written then."""
        body, events = encode(items)
        if self._bytes + len(body) > self.max_bytes:
            return False
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO spooled_batches (events, maybe_written, spooled_at, body) "
                "VALUES (?, ?, ?, ?)", (events, int(maybe_written), spooled_at, body))
        self._events += events
        self._batches += 1
        self._bytes += len(body)
        return True

    @_locked
    def oldest(self) -> Spooled | None:
        """The batch spooled first, or None when the spool is empty."""
        row = self._conn.execute(
            "SELECT id, events, maybe_written, body FROM spooled_batches ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        id_, events, maybe, body = row
        own = id_ >= self._first_own_id
        # An earlier process may have died between the server's commit and the delete here.
        return Spooled(id_, decode(body, own=own), events, bool(maybe) or not own, len(body))

    @_locked
    def mark_maybe_written(self, id_: int) -> None:
        """Its write failed with its fate unknown: check the server before resending it."""
        self._conn.execute("UPDATE spooled_batches SET maybe_written = 1 WHERE id = ?", (id_,))

    @_locked
    def delete(self, spooled: Spooled) -> None:
        """Forget a forwarded batch. When the spool is empty, give the disk space back."""
        with transaction(self._conn):
            gone = self._conn.execute("DELETE FROM spooled_batches WHERE id = ?",
                                      (spooled.id,)).rowcount
        if gone:
            if spooled.id < self._first_own_id:
                self._earlier -= 1
            self._events -= spooled.events
            self._batches -= 1
            self._bytes -= spooled.bytes
        if not self._batches:
            self._events = self._bytes = 0
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def earlier(self) -> int:
        """Batches an earlier process spooled that are still waiting (they come first)."""
        return self._earlier

    @_locked
    def save_context(self, tournament_id: int | None, tournament_day_id: int | None) -> None:
        """Keep the UDP tournament context here too: a start during an outage cannot read the
        one saved on the server (``tournaments.save_context``)."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO spool_state (key, value) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                (_CONTEXT_KEY, json.dumps([tournament_id, tournament_day_id])))

    @_locked
    def saved_context(self) -> tuple[int | None, int | None]:
        """The context ``save_context`` kept, ``(None, None)`` when none (or unreadable)."""
        row = self._conn.execute("SELECT value FROM spool_state WHERE key = ?",
                                 (_CONTEXT_KEY,)).fetchone()
        try:
            tournament_id, day_id = json.loads(row[0]) if row else (None, None)
        except (ValueError, TypeError):
            return None, None
        ok = all(v is None or (type(v) is int) for v in (tournament_id, day_id))
        return (tournament_id, day_id) if ok else (None, None)

    @_locked
    def close(self) -> None:
        """Close the file (what was committed stays)."""
        self._conn.close()
