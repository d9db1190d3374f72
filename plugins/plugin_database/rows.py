"""The rows of a batch: how the writer turns ``IngestedEvent`` into event, detail and counter
rows, and the many-row statements that insert them (see ``Many`` for why they are built so).

Everything here runs on the writer thread, inside the writer's transaction (``batch.py``);
nothing here knows the queue, the thread or the retries (``writer.py``).

A row is a plain tuple of its columns in the order a ``NamedTuple`` names (``EventRow``), read by
name through ``operator.itemgetter`` of that name's position. Plain, not the ``NamedTuple`` itself:
the garbage collector stops visiting a plain tuple of strings and numbers after its first
collection, but visits an instance of a tuple subclass in every collection for as long as it lives
(a batch's thousand event rows: measured, 2 % of the writer's instructions). The detail rows, five
per event and never read back, go further: their values go one after the other into one flat
list in ``DetailRow``'s order, as even a plain tuple per detail row is an object the garbage
collector visits once (measured: 10 % of the writer's rate).
"""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
from typing import NamedTuple

import pydantic_core
from pydantic import BaseModel

from restrike.pss.describe import describe

from .backend import is_postgres

PROTOCOL_VERSION = "2.3"
EVENT_INTO = (
    "INSERT INTO pss_events_v2 (id, session_id, match_id, round_id, timestamp, raw_data, "
    "parsed_data, event_sequence, processing_time_ms, created_at, tournament_id, "
    "tournament_day_id, event_type_id, is_valid, error_message, recognition_status, "
    "protocol_version, parser_confidence, validation_errors, datagram_index) "
)
_DETAIL_INTO = (
    "INSERT INTO pss_event_details (event_id, created_at, detail_key, detail_value, detail_type) "
)
_COUNT_SESSION = (
    "UPDATE udp_server_sessions SET events_stored = events_stored + ?, "
    "invalid_events = invalid_events + ?, unknown_events = unknown_events + ?, "
    "packets_received = packets_received + ?, bytes_received = bytes_received + ?, "
    "first_event_at = COALESCE(first_event_at, ?), last_event_at = ?, updated_at = ? "
    "WHERE session_id = ?"
)
_DETAIL_SKIP = frozenset(("type", "code", "raw"))
# detail_type as the detail rows carry it (the INSERT spells it, see _DETAILS)
_DETAIL_TYPES = {"str": 0, "int": 1, "bool": 2, "float": 3, "json": 4}
STR, _INT = _DETAIL_TYPES["str"], _DETAIL_TYPES["int"]


# -- the rows of a batch ----------------------------------------------------------------------


class EventRow(NamedTuple):
    """The order of an event row's values as the hot loop builds them (``_EVENTS`` inserts
    them; the rows are plain tuples, see the module docstring). No None: 0 (or -1) stands for
    NULL and the SQL turns it back (see ``Many`` for why); the last six values are
    ``_Shape.tail``."""

    id: int
    session_id: str
    match_id: int  # 0: none
    round_id: int  # 0: none
    timestamp: str
    raw_data: str
    parsed_data: str
    event_sequence: int
    datagram_index: int  # the message's place in its datagram (the natural key's last part)
    processing_time_ms: float  # -1: none
    tournament_id: int  # 0: none
    tournament_day_id: int  # 0: none
    event_type_id: int
    is_valid: int
    error_message: str | int  # 0: none
    recognition_status: int  # _Shape.odd: 0 recognized, 1 invalid, 2 unknown
    parser_confidence: float
    validation_errors: str | int  # 0: none


class DetailRow(NamedTuple):
    """The order of a detail row's values (rows are plain tuples, see the module docstring)."""

    event_id: int
    detail_key: str
    detail_value: str
    detail_type: int  # a number of _DETAIL_TYPES


_MATCH_ID = operator.itemgetter(EventRow._fields.index("match_id"))
_EVENT_TYPE_ID = operator.itemgetter(EventRow._fields.index("event_type_id"))

class Source:
    """One sender's share of a batch: its events (counted once, by ``Rows.write_counters``),
    the ids of its first and last, its invalid/unknown counts and its constant detail rows."""

    __slots__ = ("seen", "first_id", "last_id", "odd", "details")

    def __init__(self, ev, event_id: int) -> None:
        self.seen: list = []  # its events, in arrival order
        self.first_id = self.last_id = event_id
        self.odd = [0, 0, 0]  # [-, invalid, unknown] events, indexed by _Shape.odd
        # source_ip, source_port and index 0 (the first message of its datagram)
        self.details = (("source_ip", ev.source_ip, STR),
                        ("source_port", str(ev.source_port), _INT), ("index", "0", _INT))

    def at(self, index: int) -> tuple:
        """The constant detail rows of a message at ``index`` in its datagram."""
        return self.details[:2] + (("index", str(index), _INT),)


_INDEX = operator.attrgetter("index")
_RAW = operator.attrgetter("raw")
_UTF8 = operator.methodcaller("encode", "utf-8", "replace")


class Rows:
    """The rows one batch (or one event, in safe mode) inserts, gathered in arrival order and
    written by a few many-row statements per table (``Many``), plus the per-sender counters."""

    __slots__ = ("now", "events", "details", "linked", "sources", "contexts")

    def __init__(self, now: str) -> None:
        self.now = now
        self.events: list[tuple] = []  # EventRow's values, a tuple per row
        self.details: list = []  # DetailRow's values, row after row, in one flat list
        self.linked: list[tuple] = []  # (sql, params): score/warning rows naming their event
        self.sources: dict[tuple, Source] = {}  # (session_id, ip, port) -> its counters
        self.contexts: set[tuple] = set()  # (tournament_id, tournament_day_id) of the events

    def check_references(self, cur) -> None:
        """What the foreign keys (off during a normal batch, see ``batch.BatchStore.write``) would
        have checked row by row, once per distinct value: every match, round, event type,
        tournament and tournament day the rows name exists. Raises ``IntegrityError`` (and the
        batch is redone event by event, foreign keys on) when one does not.

        Sessions are inserted at the start of the batch; athletes come from the upsert that
        returned their id; the details name the events inserted with them; matches, rounds and
        athlete links name the matches checked here (their events carry the same match id).
        """
        events = self.events
        linked = [params for _, params in self.linked]  # (event_id, match_id, round_id, ...)
        wanted = [
            set(map(_MATCH_ID, events)) | {p[1] for p in linked},
            {p[2] for p in linked},
            set(map(_EVENT_TYPE_ID, events)),
            {tournament for tournament, _ in self.contexts},
            {day for _, day in self.contexts},
        ]
        for ids in wanted:
            ids.discard(None)
            ids.discard(0)  # NULL in an event row
        found = cur.execute(_COUNT_REFERENCED,
                            [json.dumps(sorted(ids)) for ids in wanted]).fetchone()
        for table, ids, count in zip(_REFERENCED, wanted, found, strict=True):
            if count != len(ids):
                raise sqlite3.IntegrityError(
                    f"FOREIGN KEY constraint failed: {len(ids) - count} of the {table} ids "
                    f"this batch refers to do not exist")

    def insert(self, cur) -> None:
        """Insert the events, then the rows that refer to them; empties the lists."""
        if is_postgres(cur):
            from .pg import copy_rows

            copy_rows(cur, self.events, self.details, self.now, PROTOCOL_VERSION)
        else:
            _EVENTS.run(cur, self.events, (self.now,))
            _DETAILS.run_flat(cur, self.details, (self.now,))
        groups: dict[str, list] = {}  # template -> its rows, in arrival order
        for sql, params in self.linked:
            rows = groups.get(sql)
            if rows is None:
                rows = groups[sql] = []
                many(sql, len(params))
            rows.append(params)
        for sql, rows in groups.items():
            _MANY[sql].run(cur, rows)
        self.events, self.details, self.linked = [], [], []

    def count_bare(self, ev, event_id: int) -> None:
        """Count an event stored bare (invalid, no details) like the others."""
        src = self.sources[(ev.session_id, ev.source_ip, ev.source_port)] = Source(ev, event_id)
        src.seen.append(ev)
        src.odd[1] = 1

    def merge_counters(self, other: Rows) -> None:
        """Add the counters of ``other`` (one later event prepared on its own, safe mode)."""
        for key, theirs in other.sources.items():
            mine = self.sources.get(key)
            if mine is None:
                self.sources[key] = theirs
                continue
            mine.seen += theirs.seen
            mine.last_id = theirs.last_id
            mine.odd = [a + b for a, b in zip(mine.odd, theirs.odd, strict=True)]

    def write_counters(self, cur) -> None:
        """Add this batch's counts to ``udp_client_connections`` and ``udp_server_sessions``:
        per sender first/last reception, datagrams (messages at index 0), messages and bytes;
        per session the same summed, plus invalid and unknown messages."""
        sessions: dict[str, list] = {}
        clients: list = []
        for (session_id, ip, port), src in self.sources.items():
            seen = src.seen
            packets = list(map(_INDEX, seen)).count(0)
            size = sum(map(len, map(_UTF8, map(str, map(_RAW, seen)))))
            first, last = seen[0].received_at, seen[-1].received_at
            clients.append((session_id, ip, port, first, last, packets, len(seen), size))
            s = sessions.get(session_id)
            if s is None:  # [events, invalid, unknown, datagrams, bytes, first, last, ids]
                sessions[session_id] = [len(seen), src.odd[1], src.odd[2], packets, size,
                                        first, last, src.first_id, src.last_id]
                continue
            s[0] += len(seen)
            s[1] += src.odd[1]
            s[2] += src.odd[2]
            s[3] += packets
            s[4] += size
            if src.first_id < s[7]:  # ids follow arrival order
                s[5], s[7] = first, src.first_id
            if src.last_id > s[8]:
                s[6], s[8] = last, src.last_id
        _COUNT_CLIENTS.run(cur, clients)
        for session_id, s in sessions.items():
            cur.execute(_COUNT_SESSION, (*s[:7], self.now, session_id))


class Many:
    """``run(cur, rows, head)``: one SQL statement over many rows, with few executions.

    ``template`` holds ``{rows}`` where the statement's VALUES rows go, ``values`` values each;
    ``rows`` are tuples of ``values`` values (``run_flat``: one flat list of them); ``head``
    are the values of the
    template's own ``?`` (they come before ``{rows}`` in the text). Rows go in blocks of up to
    ``per_statement`` (a power of two), the rest in halving blocks: whatever the count, a
    handful of executions of a few cached statement sizes. Why it is built this way (measured
    with callgrind, timers and strace):

    - every execution releases the GIL around ``sqlite3_step``, and getting it back waits for
      the other Python threads (up to the 5 ms switch interval while the UDP parser is busy):
      with one busy thread next to it, the writer made 73 events/s with a statement per row,
      457 with 64 rows per statement, 3 700 with 512;
    - one statement of many rows also costs SQLite and the sqlite3 module a third less per row
      than a statement per row (1.9 vs 2.9 us per detail row, 13 vs 17.5 us per event row);
    - the sqlite3 module binds ``None`` through its adaptation protocol, which raises and
      discards an ``AttributeError`` each time (~0.5 us, several per event): the hot rows carry
      0 (or -1) instead and the SQL turns it back into NULL with ``NULLIF``;
    - every bound text is copied under a mutex (~0.2 us): what the whole batch shares is bound
      once (``head``), and a text out of a small fixed set is bound as its number and spelled
      by the SQL (``CASE``); only anonymous ``?``: the module looks ``?NNN`` names up linearly.
    """

    def __init__(self, template: str, values: int, per_statement: int = 1024):
        self._template = template
        self._one = "(" + ", ".join("?" * values) + ")"
        self.values = values
        self._per = per_statement
        self._sql: dict[int, str] = {}

    def _statement(self, rows: int) -> str:
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = self._template.replace(
                "{rows}", ", ".join((self._one,) * rows))
        return sql

    def run(self, cur, rows: list, head: tuple = ()) -> None:
        limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = 1 << max(0, min(self._per, (limit - len(head)) // self.values).bit_length() - 1)
        flat = itertools.chain.from_iterable
        start, left = 0, len(rows)
        while left:
            size = per if left >= per else 1 << (left.bit_length() - 1)
            count = left // size if size == per else 1
            cur.executemany(self._statement(size), [
                [*head, *flat(rows[i:i + size])]
                for i in range(start, start + count * size, size)])
            start += count * size
            left -= count * size

    def run_flat(self, cur, flat: list, head: tuple = ()) -> None:
        """``run`` for rows given as one flat list of their values, row after row."""
        n = self.values
        limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = 1 << max(0, min(self._per, (limit - len(head)) // n).bit_length() - 1)
        first = list(head)
        start, rows = 0, len(flat) // n
        while rows:
            size = per if rows >= per else 1 << (rows.bit_length() - 1)
            count = rows // size if size == per else 1
            step = size * n
            cur.executemany(self._statement(size), [
                first + flat[i:i + step] for i in range(start, start + count * step, step)])
            start += count * step
            rows -= count * size


_MANY: dict[str, Many] = {}


def many(template: str, values: int) -> Many:
    """The ``Many`` of a template (one per template, so its statements stay cached)."""
    many = _MANY.get(template)
    if many is None:
        many = _MANY[template] = Many(template, values)
    return many


_ONE_ROW: dict[str, str] = {}


def write_rows(cur, template: str, rows: list) -> None:
    """Run ``template`` (an INSERT whose ``VALUES`` are ``{rows}``) over ``rows``, tuples of the
    same length: on SQLite a few many-row statements (``many``: every execution hands the GIL
    away and each row costs less in one statement, see ``Many``); on PostgreSQL the one-row
    statement, pipelined by psycopg's ``executemany``. Rows with the same key follow each other
    in one statement as in separate ones (SQLite applies an upsert row by row)."""
    if not rows:
        return
    if not is_postgres(cur):
        many(template, len(rows[0])).run(cur, rows)
        return
    sql = _ONE_ROW.get(template)
    if sql is None:
        sql = _ONE_ROW[template] = template.replace(
            "{rows}", "(" + ", ".join("?" * len(rows[0])) + ")")
    cur.executemany(sql, rows)


def _select_values(select: str, values: int) -> str:
    """``select`` with ``{0}``, ``{1}``... naming the VALUES columns and ``{c}`` a ``?``."""
    return select.format(*(f"v.column{i + 1}" for i in range(values)), c="?")


# An EventRow. A real id is >= 1, a real time >= 0, and NULLIF(text, 0) keeps any text (even
# '0': text never equals an integer in SQLite). The batch's created_at is the head value.
_EVENTS = Many(
    EVENT_INTO + "SELECT " + _select_values(
        "{0}, {1}, NULLIF({2}, 0), NULLIF({3}, 0), {4}, {5}, {6}, {7}, NULLIF({9}, -1), {c}, "
        "NULLIF({10}, 0), NULLIF({11}, 0), {12}, {13}, NULLIF({14}, 0), "
        "CASE {15} WHEN 0 THEN 'recognized' WHEN 1 THEN 'invalid' WHEN 2 THEN 'unknown' END, "
        f"'{PROTOCOL_VERSION}', {{16}}, NULLIF({{17}}, 0), {{8}}", len(EventRow._fields))
    + " FROM (VALUES {rows}) AS v",
    18,
)
# A detail row (DetailRow's values); the batch's created_at is the head value.
_DETAILS = Many(
    _DETAIL_INTO + "SELECT " + _select_values(
        "{0}, {c}, {1}, {2}, CASE {3} WHEN 0 THEN 'str' WHEN 1 THEN 'int' WHEN 2 THEN 'bool' "
        "WHEN 3 THEN 'float' WHEN 4 THEN 'json' END", 4)
    + " FROM (VALUES {rows}) AS v",
    4,
)
_COUNT_CLIENTS = Many(
    "INSERT INTO udp_client_connections (session_id, source_ip, source_port, first_seen, "
    "last_seen, packets, events, bytes) VALUES {rows} "
    "ON CONFLICT (session_id, source_ip, source_port) DO UPDATE SET "
    "last_seen = excluded.last_seen, "
    "packets = udp_client_connections.packets + excluded.packets, "
    "events = udp_client_connections.events + excluded.events, "
    "bytes = udp_client_connections.bytes + excluded.bytes",
    8,
)
_REFERENCED = ("pss_matches", "pss_rounds", "pss_event_types", "tournaments", "tournament_days")
_COUNT_REFERENCED = "SELECT " + ", ".join(
    f"(SELECT COUNT(*) FROM {table} WHERE id IN (SELECT value FROM json_each(?)))"
    for table in _REFERENCED)


# -- what an event's model alone decides (cached) ---------------------------------------------


class _Shape(NamedTuple):
    """The part of an event's rows that depends only on its parsed model."""

    kind: str  # the model's type (points, clock, invalid, unknown...)
    odd: int  # 1 invalid, 2 unknown, else 0 (the session counters)
    tail: tuple  # the last values of its event row (see _EVENTS)
    parsed_head: str  # parsed_data without its closing "match_round"/"match_clock" part
    details: tuple  # ((detail_key, detail_value, detail type number), ...) of its fields


class Shapes:
    """``get(event)`` -> its ``_Shape``, computed once per distinct model value.

    The feed repeats itself (a clock tick per second per court, the same score lines), so most
    events are a dict hit instead of ``model_dump`` + JSON + ``describe``. The cache is looked
    up by model class and ``raw`` text, and a hit counts only when the cached model's fields
    equal this one's (``__dict__`` comparison, in C): two events share a shape only when their
    models are equal, whatever built them. Classes whose dump could depend on more than their
    fields (not pydantic, extra or computed fields) are never cached.

    Bounds: ``max_size`` entries and ``max_bytes`` bytes, an entry costed at ``ENTRY_BYTES``
    plus three times its raw text (the text, the fields parsed from it, its ``parsed_data`` and
    detail rows); an event whose raw text is longer than ``max_raw`` (a real message is a few
    dozen characters; an invalid one kept raw can be 64 KiB) is built but not kept
    (``too_long``). When an entry would pass a bound the cache is emptied (``clears``).
    """

    ENTRY_BYTES = 2048  # the key, the fields' dict, the shape's tuples and strings

    def __init__(self, types: dict[str, int], unknown_type: int, max_size: int = 8192,
                 max_bytes: int = 16 * 1024 * 1024, max_raw: int = 1024):
        self._types = types
        self._unknown_type = unknown_type
        self._max_size = max_size
        self.max_bytes = max_bytes
        self.max_raw = max_raw
        self.bytes = 0
        self.clears = 0
        self.too_long = 0
        self._cacheable: dict[type, bool] = {}
        # (class, raw) -> (the model's fields, its shape); read directly by BatchStore._prepare
        self.cache: dict[tuple, tuple[dict, _Shape]] = {}

    def get(self, event) -> _Shape:
        cls = type(event)
        cacheable = self._cacheable.get(cls)
        if cacheable is None:
            cacheable = self._cacheable[cls] = _cacheable(cls)
        if not cacheable:
            return self._build(event)
        key = (cls, event.raw)
        fields = event.__dict__
        hit = self.cache.get(key)
        if hit is not None and hit[0] == fields:
            return hit[1]
        shape = self._build(event)
        raw = event.raw
        if len(raw) > self.max_raw:
            self.too_long += 1
            return shape
        size = self.ENTRY_BYTES + 3 * len(raw)
        if len(self.cache) >= self._max_size or self.bytes + size > self.max_bytes:
            self.cache.clear()
            self.bytes = 0
            self.clears += 1
        self.cache[key] = (dict(fields), shape)
        self.bytes += size
        return shape

    def stats(self) -> dict:
        """``entries``/``max_entries``, ``bytes`` (estimated)/``max_bytes``, ``clears`` (emptied
        because full) and ``too_long`` (events not kept: raw text over ``max_raw``)."""
        return {"entries": len(self.cache), "max_entries": self._max_size, "bytes": self.bytes,
                "max_bytes": self.max_bytes, "max_raw": self.max_raw, "clears": self.clears,
                "too_long": self.too_long}

    def _build(self, event) -> _Shape:
        cls = type(event)
        cacheable = self._cacheable.get(cls)
        if cacheable is None:
            cacheable = self._cacheable[cls] = _cacheable(cls)
        data = event.__dict__ if cacheable else None
        if data is None or not _PLAIN.issuperset(map(type, data.values())):
            # A dict, list or model value: model_dump's JSON form differs (int keys as text...)
            data = event.model_dump(mode="json")
        kind = data.get("type")
        type_id = self._types.get(data.get("code") or "", self._unknown_type)
        error = None
        if kind == "invalid":  # odd: recognition_status, see _EVENTS
            error = data.get("error")
            valid, confidence, odd = 0, 0.5, 1
        elif kind == "unknown":
            valid, confidence, odd = 1, 0.0, 2
        else:
            valid, confidence, odd = 1, 1.0, 0
        # raw is in raw_data already; None fields are the model's defaults: both left out.
        parsed = {key: value for key, value in data.items()
                  if value is not None and key != "raw"}
        parsed["description"] = describe(event)
        text = json_text(parsed)
        details = []
        for key, value in data.items():
            if value is None or key in _DETAIL_SKIP:
                continue
            kind_of = type(value)
            if kind_of is str:
                details.append((key, value, STR))
            elif kind_of is int:
                details.append((key, str(value), _INT))
            else:
                text_of, type_of = _typed(value)
                details.append((key, text_of, _DETAIL_TYPES[type_of]))
        tail = (type_id, valid, 0 if error is None else error, odd, confidence,
                0 if error is None else json.dumps([error], ensure_ascii=False))
        return tuple.__new__(_Shape, (kind, odd, tail, text[:-1], tuple(details)))


def _cacheable(cls: type) -> bool:
    """True when a model's dump depends on its fields (``__dict__``) alone and it has ``raw``."""
    return (isinstance(cls, type) and issubclass(cls, BaseModel) and "raw" in cls.model_fields
            and not cls.model_computed_fields and cls.model_config.get("extra") != "allow")


# parsed_data's end for an event of no match
UNPLACED = ',"match_round":null,"match_clock":null}'


class Suffixes(dict):
    """``(round, clock)`` -> the end of ``parsed_data``: ``,"match_round":..,"match_clock":..}``
    (a dict: ``get`` is the hit path, ``put`` computes and stores a miss)."""

    def put(self, round_no, clock) -> str:
        text = (',"match_round":' + json.dumps(round_no) + ',"match_clock":'
                + json.dumps(clock, ensure_ascii=False) + "}")
        if len(self) >= 4096:
            self.clear()
        self[(round_no, clock)] = text
        return text


def _typed(value) -> tuple[str, str]:
    """A detail's stored text and its ``detail_type``."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, float):
        return repr(value), "float"
    if isinstance(value, str):
        return value, "str"
    return json_text(value), "json"


def json_text(value) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, four times faster.

    pydantic's serializer writes the same text for str, int, bool, None, dict and list
    (checked on every BMP code point; tests/database/test_writer.py keeps it so); floats are
    spelled differently (``1e16``), so data holding one goes to ``json.dumps``.
    """
    if type(value) is dict and _PLAIN.issuperset(map(type, value.values())):
        pass  # the common case, checked in C
    elif _has_float(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return pydantic_core.to_json(value).decode()


# Value types whose JSON text json.dumps and pydantic write the same, and that model_dump's
# JSON mode leaves as they are.
_PLAIN = frozenset((str, int, bool, type(None)))


def _has_float(value) -> bool:
    kind = type(value)
    if kind is dict:
        return any(map(_has_float, value.values()))
    if kind is list or kind is tuple:
        return any(map(_has_float, value))
    return kind is float or not (kind is str or kind is int or kind is bool or value is None)
