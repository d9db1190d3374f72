"""Statistics: cached aggregates the writer keeps exact, and the queries that read them.

Aggregates (schema versions 7 and 9)
    ``stat_match_rounds`` (per match, round and athlete: scoring actions by type, points scored,
    gam-jeoms, hit levels and their histogram, the reported score), ``stat_matches`` (a match's
    totals, what it added to the athletes, the tournament group it is counted in and its
    duration), ``stat_match_timeline`` (the reported score of both sides after each score
    snapshot), ``stat_athletes`` and ``stat_athlete_win_types`` (per athlete, the sum of their
    matches), ``stat_tournament_groups`` (per tournament, day, court, hour, finished and win
    classification: the sum of its matches), ``stat_court_rates`` (events per minute per
    tournament, day and court; version 7's ``stat_event_rates``, per match, is gone). The
    rules (what counts as what) are ``pss.statistics``.

Kept in the writer's transaction
    ``update_aggregates(cur, events)`` is called once per batch inside the writer's transaction,
    after the batch's events, matches and rounds are written: it folds every event whose id is
    above ``stat_state.folded_up_to`` (the batch's) into the aggregates, so they commit or roll
    back with the events they summarise, and are never stale nor half-updated. A match's totals
    depend on the order of its events (running gam-jeom counts, score snapshots), so events are
    folded in id order; what a fold needs from earlier events (the last gam-jeom count, the
    last reported scores) follows from the round rows.

    Cost: the batch's rows (``events``) are folded as they were inserted, nothing read back;
    every event is counted per match, round and minute by ``Counter``; what else an event does
    is its category's role (``_ROLES``): clock ticks, most of the feed, only count; a repeated
    snapshot (most ``s1n`` score messages) is not even parsed. A match's facts from the tracking
    tables (athletes, round winners, winner, status) are read again only after its "result"
    events, and turned then, once, into what each write of it needs (``_facts``). The matches
    being fought stay in a small cache (``_Cache``) between batches, so a
    batch does not read back what the previous one wrote; ``stat_state.generation`` says whether
    the cache is still the database's (a rolled-back batch or a rebuild changes it, and the
    cache is dropped).

Archival and restore
    The aggregates are keyed by match, athlete and minute, never by event, and folding looks
    at ids above the high-water mark only: moving events between the main and archive tables
    (which keeps their ids) changes none of them, so archival needs no call here.
    ``cleanup_old_archive_data`` deletes archived events but keeps their matches' statistics;
    a later ``rebuild_statistics`` forgets those matches (it recomputes from the events still
    stored).

Athletes and tournament groups
    A match's contribution to its two athletes and to its tournament group is recomputed
    whenever its rows change or a "result" event arrives (its result, athletes, status
    finished), and the difference from what it added before is applied, so an athlete relinked
    by a late ``at1`` message moves their numbers with them, and a finished match moves from
    the in-progress group to its finished one. Every other change of the tracking tables
    follows from events of those roles (``pss.match``: only ``win``/``wmh`` finish a match).

Rebuild
    ``rebuild(conn)`` empties the aggregates and folds every stored event (main and archive, in
    id order, in chunks) with the same code: the incremental result and the rebuild are equal
    (``tests/database/test_statistics.py`` compares them on a random feed).
"""

from __future__ import annotations

import json
import math
import operator
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import compress
from typing import Any

import orjson

from restrike.host.timeutil import now_iso, parse_iso
from restrike.pss.sides import SIDE_PAIRS, SIDES
from restrike.pss.statistics import (
    HIT_LEVEL_BUCKETS,
    POINT_KEYS,
    POINT_TYPES,
    hit_level_bucket,
    round_points,
    win_type,
)

from .backend import is_postgres
from .pool import read_snapshot
from .rows import EventRow, write_rows

# -- the fold ---------------------------------------------------------------------------------

_FOLDED = "folded_up_to"
_GENERATION = "generation"
_PENDING = "pending_rebuild"
_CHUNK = 20_000  # events read at once by a rebuild
_IN_LIST = 500  # ids per "IN (...)" (SQLite's default variable limit is 32766: far above)

# What a fold does with an event, by its category (pss_event_types.category = the parser's
# type). "count": it adds to counts (points, hit levels): its JSON is read and folded.
# "snapshot": it states a running value whole (the reported scores, the gam-jeom counts), so
# the same message again right after changes nothing: folded unless its text repeats the
# match's previous one of that category (most score snapshots do), then not even parsed.
# "result": it may change a match's result or athletes (what the match adds to its athletes
# and its tournament group is recomputed; its JSON is not read). Every other event (clock
# ticks: most of the feed) is only counted per match, round and minute, never folded.
_ROLES = {
    "points": "count", "hit_level": "count", "warnings": "snapshot", "scores": "snapshot",
    "athletes": "result", "winner": "result", "winner_side": "result", "winner_rounds": "result",
}
_FOLDED_TYPES = frozenset(c for c, role in _ROLES.items() if role != "result")
_SNAPSHOT_TYPES = frozenset(c for c, role in _ROLES.items() if role == "snapshot")
_SELECT_FOLDED = (
    "SELECT e.id, e.match_id, t.category, e.parsed_data, e.raw_data FROM {table} e "
    "JOIN pss_event_types t ON t.id = e.event_type_id WHERE e.id > ? AND e.id <= ? "
    "AND e.match_id IS NOT NULL AND e.event_type_id IN (SELECT id FROM pss_event_types "
    "WHERE category IN (" + ", ".join(f"'{c}'" for c in sorted(_ROLES)) + ")) ORDER BY e.id"
)
# Events per match, round (the round current when they arrived: round_id, a pss_rounds id) and
# minute.
_COUNT_EVENTS = (
    "SELECT e.match_id, e.round_id, substr(e.timestamp, 1, 16), COUNT(*) FROM {table} e "
    "WHERE e.id > ? AND e.id <= ? AND e.match_id IS NOT NULL GROUP BY 1, 2, 3"
)
_ADD_EVENTS = (
    "INSERT INTO stat_matches (match_id, events, contribution) VALUES {rows} "
    "ON CONFLICT (match_id) DO UPDATE SET events = stat_matches.events + excluded.events"
)

# A round row: the stat_match_rounds columns after the key, in order.
_ROUND_COLUMNS = ("seen", *POINT_KEYS, "scored", "gam_jeom", "hl_count", "hl_sum", "hl_max",
                  "hl_histogram", "reported")
_SEEN, _SCORED, _GAM_JEOM, _HL_COUNT, _HL_SUM, _HL_MAX, _HIST, _REPORTED = (
    0, 6, 7, 8, 9, 10, 11, 12)
_POINT_INDEX = {n: 1 + i for i, n in enumerate(POINT_TYPES)}  # point type -> column index

_ATHLETE_COLUMNS = (
    "matches", "wins", "losses", "rounds_won", "rounds_lost",
    *(f"scored_{k}" for k in POINT_KEYS), *(f"conceded_{k}" for k in POINT_KEYS),
    "points_for", "points_against", "penalties_received", "penalties_given",
    "hl_count", "hl_sum", "hl_max",
)
_HL_MAX_AT = len(_ATHLETE_COLUMNS) - 1
_UPSERT_ATHLETE = (
    f"INSERT INTO stat_athletes (athlete_id, {', '.join(_ATHLETE_COLUMNS)}) VALUES {{rows}} "
    f"ON CONFLICT (athlete_id) DO UPDATE SET "
    + ", ".join(f"{c} = stat_athletes.{c} + excluded.{c}" for c in _ATHLETE_COLUMNS[:-1])
    + ", hl_max = CASE WHEN excluded.hl_max > stat_athletes.hl_max THEN excluded.hl_max "
    "ELSE stat_athletes.hl_max END"
)
_UPSERT_WIN_TYPE = (
    "INSERT INTO stat_athlete_win_types (athlete_id, win_type, wins, losses) VALUES {rows} "
    "ON CONFLICT (athlete_id, win_type) DO UPDATE SET "
    "wins = stat_athlete_win_types.wins + excluded.wins, "
    "losses = stat_athlete_win_types.losses + excluded.losses"
)
_REPLACE_ROUND = (
    f"INSERT INTO stat_match_rounds (match_id, round_number, athlete, "
    f"{', '.join(_ROUND_COLUMNS)}) VALUES {{rows}} "
    f"ON CONFLICT (match_id, round_number, athlete) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ROUND_COLUMNS)
)
_GROUP_KEY = ("tournament_id", "tournament_day_id", "court", "hour", "finished",
              "classification")
# A stat_matches row's group, duration and sums (penalties, point types) as _Match.group.
_GROUP_COLUMNS = ", ".join((*_GROUP_KEY, "duration_ms", "blue_gam_jeom + red_gam_jeom",
                            *POINT_KEYS))
_GROUP_VALUES = ("matches", "durations", "duration_ms", "penalties", *POINT_KEYS)
_ADD_GROUP = (
    f"INSERT INTO stat_tournament_groups ({', '.join(_GROUP_KEY)}, {', '.join(_GROUP_VALUES)}) "
    f"VALUES {{rows}} "
    f"ON CONFLICT ({', '.join(_GROUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = stat_tournament_groups.{c} + excluded.{c}" for c in _GROUP_VALUES)
)
_DROP_EMPTY_GROUP = (
    "DELETE FROM stat_tournament_groups WHERE matches = 0 AND "
    + " AND ".join(f"{c} = ?" for c in _GROUP_KEY)
)
_MATCH_SUMMARY = ("events", "blue_points", "red_points", "blue_gam_jeom", "red_gam_jeom",
                  *POINT_KEYS, "hl_count", "hl_sum", "contribution", *_GROUP_KEY, "duration_ms")
_REPLACE_MATCH = (
    f"INSERT INTO stat_matches (match_id, {', '.join(_MATCH_SUMMARY)}) "
    f"VALUES {{rows}} ON CONFLICT (match_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _MATCH_SUMMARY)
)
_ADD_TIMELINE = (
    "INSERT INTO stat_match_timeline (match_id, event_id, round_number, clock, blue, red) "
    "VALUES {rows} ON CONFLICT (match_id, event_id) DO UPDATE SET "
    "round_number = excluded.round_number, clock = excluded.clock, blue = excluded.blue, "
    "red = excluded.red"
)
_ADD_COURT_RATE = (
    "INSERT INTO stat_court_rates (minute, tournament_id, tournament_day_id, court, events) "
    "VALUES {rows} ON CONFLICT (minute, tournament_id, tournament_day_id, court) "
    "DO UPDATE SET events = stat_court_rates.events + excluded.events"
)


def _new_round() -> list:
    return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, [0] * HIT_LEVEL_BUCKETS, None]


class _Match:
    """One match's aggregates while a fold runs (loaded from, and written back to, its rows)."""

    __slots__ = ("id", "events", "warnings", "reported", "timeline_last", "rounds", "timeline",
                 "contribution", "contribution_text", "dirty", "group", "snapshots", "info")

    def __init__(self, match_id: int, row=None, rounds: Iterable = ()):
        self.id = match_id
        self.events = row[0] if row else 0
        self.contribution_text = row[1] if row else "{}"
        self.contribution = orjson.loads(self.contribution_text)
        # What its stat_matches row adds to stat_tournament_groups (None: no row yet).
        self.group: tuple | None = (tuple(row[2:8]), row[8], tuple(row[9:])) if row else None
        self.rounds: dict[tuple[int, int], list] = {}
        for r in rounds:
            values = list(r[3:])
            values[_HIST] = orjson.loads(values[_HIST])
            self.rounds[(r[1], r[2])] = values
        # What the next events are compared with, from the rows: the running gam-jeom count
        # is the sum of its steps; the reported scores are the rounds' snapshots.
        self.warnings = {a: 0 for a in SIDES}
        self.reported: dict[int, dict[int, int]] = {a: {} for a in SIDES}
        for (number, athlete), values in self.rounds.items():
            self.warnings[athlete] += values[_GAM_JEOM]
            if values[_REPORTED] is not None:
                self.reported[athlete][number] = values[_REPORTED]
        self.timeline_last = ((sum(self.reported[1].values()), sum(self.reported[2].values()))
                              if any(self.reported.values()) else None)
        self.timeline: list[tuple] = []
        self.dirty: set[tuple[int, int]] = set()  # rounds changed since written
        self.snapshots: dict[str, str] = {}  # category -> the text of its last folded snapshot
        self.info: tuple | None = None  # _facts of its _match_info (None: to read)

    def round(self, number: int, athlete: int) -> list:
        """The row of a round and athlete, to change (it is written with the batch)."""
        key = (number, athlete)
        self.dirty.add(key)
        row = self.rounds.get(key)
        if row is None:
            row = self.rounds[key] = _new_round()
        return row


class _Cache:
    """What one writing connection keeps between batches, valid while ``stat_state.generation``
    is the one it was saved with: the ``_Match`` objects of the matches being fought (as their
    rows hold them), the round numbers of ``pss_rounds`` ids, and the fold's role of each event
    type id (``_ROLES``). Bounded: beyond ``MAX_MATCHES`` matches or ``MAX_ROUNDS`` round ids
    the part is emptied (the next batch reads them back from the tables)."""

    MAX_MATCHES = 512
    MAX_ROUNDS = 8192

    __slots__ = ("generation", "matches", "round_numbers", "kinds")

    def __init__(self, generation: int):
        self.generation = generation
        self.matches: dict[int, _Match] = {}
        self.round_numbers: dict[int, int] = {}
        self.kinds: dict[int, str] | None = None  # event type id -> category, if in _ROLES


# id(connection) -> (connection, _Cache). A connection cannot be weakly referenced: the entry
# keeps it, and at most _MAX_CONNECTIONS entries are kept (one writer per database; tests open
# many), the oldest dropped first.
_CACHES: dict[int, tuple] = {}
_MAX_CONNECTIONS = 8


def _take_cache(conn, generation: int) -> _Cache:
    entry = _CACHES.pop(id(conn), None)
    if entry is None or entry[0] is not conn or entry[1].generation != generation:
        return _Cache(generation)
    return entry[1]


def _keep_cache(conn, cache: _Cache) -> None:
    while len(_CACHES) >= _MAX_CONNECTIONS:
        del _CACHES[next(iter(_CACHES))]
    _CACHES[id(conn)] = (conn, cache)


def _fold_event(m: _Match, event_id: int, category: str, parsed: dict) -> None:
    """Apply one event of match ``m`` (its parsed data, with match_round/match_clock)."""
    number = parsed.get("match_round") or 0
    if category == "points":
        athlete = parsed.get("athlete") or 0
        column = _POINT_INDEX.get(parsed.get("point_type") or 0)
        if athlete in SIDES and column is not None:
            row = m.round(number, athlete)
            row[column] += 1
            row[_SCORED] += parsed["point_type"]
    elif category == "hit_level":
        athlete, level = parsed.get("athlete"), parsed.get("level")
        if athlete in SIDES and type(level) is int:
            row = m.round(number, athlete)
            row[_HL_COUNT] += 1
            row[_HL_SUM] += level
            row[_HL_MAX] = max(row[_HL_MAX], level)
            row[_HIST][hit_level_bucket(level)] += 1
    elif category == "warnings":
        for athlete, side in SIDE_PAIRS:
            count = parsed.get(side)
            if type(count) is not int:
                continue
            step = count - m.warnings[athlete]
            if step:
                m.round(number, athlete)[_GAM_JEOM] += step
                m.warnings[athlete] = count
    elif category == "scores":
        for athlete, side in SIDE_PAIRS:
            per_round = parsed.get(side) or {}
            known = m.reported[athlete]
            for key, value in per_round.items():
                r = int(key)
                known[r] = value
                stored = m.rounds.get((r, athlete))
                if stored is None or stored[_REPORTED] != value:  # snapshots mostly repeat
                    m.round(r, athlete)[_REPORTED] = value
        totals = (sum(m.reported[1].values()), sum(m.reported[2].values()))
        if totals != m.timeline_last:
            m.timeline_last = totals
            m.timeline.append((m.id, event_id, number or None, parsed.get("match_clock"),
                               *totals))


def _load(cur, match_ids: list[int], cache: dict[int, _Match]) -> dict[int, _Match]:
    found = {m: cache[m] for m in match_ids if m in cache}
    missing = [m for m in match_ids if m not in found]
    rounds: dict[int, list] = defaultdict(list)
    for chunk in _chunks(missing):
        marks = ", ".join("?" * len(chunk))
        for r in cur.execute(f"SELECT match_id, round_number, athlete, "
                             f"{', '.join(_ROUND_COLUMNS)} FROM stat_match_rounds "
                             f"WHERE match_id IN ({marks})", chunk):
            rounds[r[0]].append(r)
        for row in cur.execute(f"SELECT match_id, events, contribution, {_GROUP_COLUMNS} "
                               f"FROM stat_matches WHERE match_id IN ({marks})", chunk):
            found[row[0]] = _Match(row[0], row[1:], rounds.pop(row[0], ()))
    for match_id in missing:
        if match_id not in found:
            found[match_id] = _Match(match_id, None, rounds.pop(match_id, ()))
    return found


def _read_tables(cur, tables: tuple[str, ...], after: int, upto: int) -> tuple[list, list]:
    """The events of ``tables`` with ``after < id <= upto`` as ``_fold`` takes them, read back
    by SQL: the events to fold ``(id, match_id, category, parsed_data, raw_data)`` in id order,
    and the counts ``(match_id, round_id, minute, events)``."""
    rows: list = []
    counts: list = []
    for table in tables:
        rows += cur.execute(_SELECT_FOLDED.format(table=table), (after, upto)).fetchall()
        counts += cur.execute(_COUNT_EVENTS.format(table=table), (after, upto)).fetchall()
    if len(tables) > 1:
        rows.sort(key=lambda r: r[0])
    return rows, counts


_ID, _MATCH_ID, _ROUND_ID, _TIME, _RAW, _PARSED, _TYPE = (EventRow._fields.index(f) for f in (
    "id", "match_id", "round_id", "timestamp", "raw_data", "parsed_data", "event_type_id"))
_MATCH_AND_ROUND = operator.itemgetter(_MATCH_ID, _ROUND_ID)
_TIME_OF = operator.itemgetter(_TIME)
_TYPE_OF = operator.itemgetter(_TYPE)


def _read_batch(events: list, kinds: dict[int, str]) -> tuple[list, list]:
    """What ``_read_tables`` would read back, from the batch's ``rows.EventRow`` list just
    inserted (0 stands for NULL there): the same rows, without a query. Counted by
    ``Counter`` and filtered by comprehensions, no Python statement per event (most are clock
    ticks that are only counted: the events to fold are picked by ``compress``)."""
    rows = [(e[_ID], e[_MATCH_ID], kinds[e[_TYPE]], e[_PARSED], e[_RAW])
            for e in compress(events, map(kinds.__contains__, map(_TYPE_OF, events)))
            if e[_MATCH_ID]]
    first, last = min(map(_TIME_OF, events))[:16], max(map(_TIME_OF, events))[:16]
    if first == last:  # one minute (a batch is a fraction of a second): ISO text sorts by time
        counts = Counter(map(_MATCH_AND_ROUND, events))
        return rows, [(m, r or None, first, n) for (m, r), n in counts.items() if m]
    by_minute = Counter(zip(map(_MATCH_AND_ROUND, events),
                            [t[:16] for t in map(_TIME_OF, events)], strict=True))
    return rows, [(m, r or None, minute, n) for ((m, r), minute), n in by_minute.items() if m]


def _fold(cur, rows: list, counts: list, cache: _Cache) -> int:
    """Fold events into the aggregates: ``rows`` (the events to fold, in id order) and
    ``counts`` (every event of a match, counted), as ``_read_tables`` gives them; returns how
    many events there were (of a match). ``cache``: what the tables hold, updated here."""
    cached = cache.matches
    per_match: dict[int, list] = defaultdict(list)
    for row in rows:
        per_match[row[1]].append(row)
    events: dict[int, int] = defaultdict(int)
    for match_id, _, _, n in counts:
        events[match_id] += n
    # The numbers of the rounds the events arrived in (a pss_rounds id never changes its
    # number while the generation is the same: a rolled-back round changes the generation).
    numbers = cache.round_numbers
    round_ids = sorted({r[1] for r in counts if r[1] is not None and r[1] not in numbers})
    if len(numbers) + len(round_ids) > _Cache.MAX_ROUNDS:
        numbers.clear()
    for chunk in _chunks(round_ids):
        numbers.update(cur.execute(f"SELECT id, round_number FROM pss_rounds WHERE id IN "
                                   f"({', '.join('?' * len(chunk))})", chunk).fetchall())
    seen: dict[int, set[int]] = defaultdict(set)  # match -> the rounds fought (in this batch)
    for match_id, round_id, _minute, _n in counts:
        number = numbers.get(round_id)
        if number:
            seen[match_id].add(number)
    # Every match with events: a match without its stat_matches row yet is written whole
    # (its tournament group counts it from its first event on).
    matches = _load(cur, list(events.keys() | per_match.keys()), cached)
    changed: dict[int, _Match] = {}
    for match_id, m in matches.items():
        result = False
        last = m.snapshots
        for event_id, _, category, parsed, raw in per_match.get(match_id, ()):
            if parsed is None or category not in _FOLDED_TYPES:
                result = True  # its match's result or athletes may change
                continue
            if category in _SNAPSHOT_TYPES:
                if last.get(category) == raw:
                    continue  # the same snapshot again: nothing changes
                last[category] = raw
            data = orjson.loads(parsed)
            if data.get("type") == category:  # an invalid pt1 keeps its code's category
                _fold_event(m, event_id, category, data)
        for number in seen.get(match_id, ()):  # a round fought is listed (``_listed``)
            for athlete in SIDES:
                row = m.rounds.get((number, athlete))
                if row is None or not row[_SEEN]:
                    m.round(number, athlete)[_SEEN] = 1
        # What a match adds to its athletes and its tournament group follows from its rows
        # (``dirty`` says which changed) and from its result and athletes (changed only by
        # "result" events): when neither changed, only its event count is added (below).
        if result:
            m.info = None  # read again from the tracking tables
        if result or m.dirty or m.group is None:
            changed[match_id] = m
            m.events += events.pop(match_id, 0)  # written with its row
    if changed:
        _write(cur, changed)
    if len(cached) + len(matches) > _Cache.MAX_MATCHES:
        cached.clear()
    cached.update(matches)
    write_rows(cur, _ADD_EVENTS, [(m, n, "{}") for m, n in events.items()])
    for match_id, n in events.items():
        matches[match_id].events += n
    court_rates: dict[tuple, int] = defaultdict(int)
    for match_id, _, minute, n in counts:
        group = matches[match_id].group  # every match with events has one by now (_write)
        if group is not None:
            court_rates[(minute, *group[0][:3])] += n
    write_rows(cur, _ADD_COURT_RATE, [(*key, n) for key, n in court_rates.items()])
    return sum(n for _, _, _, n in counts)


def _write(cur, matches: dict[int, _Match]) -> None:
    # What the tracking tables say of a match changes only with its "result" events (its
    # athletes, round winners, winner, status finished, end): read for the matches that had
    # one (``info`` None), kept with the match otherwise.
    info = _match_info(cur, [match_id for match_id, m in matches.items() if m.info is None])
    round_rows = []
    match_rows = []
    timeline = []
    athlete_changes: list[tuple[dict, dict]] = []
    groups: dict[tuple, list] = {}  # group key -> what the batch adds to it (_GROUP_VALUES)
    for match_id, m in matches.items():
        for number, athlete in m.dirty:
            row = list(m.rounds[(number, athlete)])
            row[_HIST] = orjson.dumps(row[_HIST]).decode()
            round_rows.append((match_id, number, athlete, *row))
        timeline += m.timeline
        sides = _lean_sides(m.rounds)
        if m.info is None:
            m.info = _facts(info.get(match_id, _NO_INFO))
        key, duration, fixed = m.info
        new = _contribution(sides, fixed)
        if new != m.contribution:
            athlete_changes.append((m.contribution, new))
            m.contribution = new
            m.contribution_text = orjson.dumps(new, option=orjson.OPT_SORT_KEYS).decode()
        m.timeline = []
        m.dirty = set()
        blue, red = sides[1], sides[2]
        sums = (blue[_G] + red[_G], blue[0] + red[0], blue[1] + red[1], blue[2] + red[2],
                blue[3] + red[3], blue[4] + red[4])  # penalties, then the five point types
        group = (key, duration, sums)
        if group != m.group:
            _move_group(groups, m.group, group)
            m.group = group
        match_rows.append((
            match_id, m.events, blue[_P], red[_P], blue[_G], red[_G], *sums[1:],
            blue[_HC] + red[_HC], blue[_HS] + red[_HS], m.contribution_text, *key, duration))
    write_rows(cur, _REPLACE_ROUND, round_rows)
    write_rows(cur, _REPLACE_MATCH, match_rows)
    changes = [(*key, *values) for key, values in groups.items() if any(values)]
    if changes:
        write_rows(cur, _ADD_GROUP, changes)
        cur.executemany(_DROP_EMPTY_GROUP, [key for key, values in groups.items()
                                            if values[0] < 0])
    if timeline:
        write_rows(cur, _ADD_TIMELINE, timeline)
    if athlete_changes:
        _apply_athletes(cur, athlete_changes)


_NO_INFO: dict[str, Any] = {"winner": None, "classification": None, "athletes": {},
                            "round_winners": {}, "group": (None,) * 9}


def _group_of(info: dict) -> tuple[tuple, int | None]:
    """The stat_tournament_groups key of a match and its duration in ms (finished: load to
    end), from its pss_matches columns (``_match_info``'s ``group``)."""
    court, ip, port, tournament_id, day_id, loaded_at, status, ended_at, winner = info["group"]
    finished = status == "finished"
    duration = None
    if finished and ended_at and loaded_at:
        try:
            duration = round((parse_iso(ended_at) - parse_iso(loaded_at)).total_seconds() * 1000)
        except ValueError:
            duration = None  # not a time: counted without a duration
    key = (tournament_id or 0, day_id or 0, court_of(court, ip, port), (loaded_at or "")[:13],
           int(finished), (info["classification"] or "") if finished and winner else "")
    return key, duration


def _move_group(groups: dict[tuple, list], old: tuple | None, new: tuple) -> None:
    """Take a match's old group contribution (``_Match.group``; None: none yet) away and add
    its new one, in ``groups`` (key -> the batch's additions, ``_GROUP_VALUES`` order)."""
    for sign, group in ((-1, old), (1, new)):
        if group is None:
            continue
        key, duration, sums = group
        values = groups.setdefault(key, [0] * len(_GROUP_VALUES))
        values[0] += sign
        if duration is not None:
            values[1] += sign
            values[2] += sign * duration
        for i, n in enumerate(sums, start=3):
            values[i] += sign * n


def _match_info(cur, ids: list[int]) -> dict[int, dict]:
    """What the tracking tables say of these matches: winner, athletes, round winners, and
    the columns their tournament group follows from (``_group_of``)."""
    info: dict[int, dict] = {}
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        for match_id, winner, classification, *group in cur.execute(
                f"SELECT id, winner, win_classification, court, source_ip, source_port, "
                f"tournament_id, "
                f"tournament_day_id, loaded_at, status, ended_at, winner FROM pss_matches "
                f"WHERE id IN ({marks})", chunk):
            info[match_id] = {"winner": winner, "classification": classification,
                              "athletes": {}, "round_winners": {}, "group": group}
        for match_id, position, athlete_id in cur.execute(
                f"SELECT match_id, athlete_position, athlete_id FROM pss_match_athletes "
                f"WHERE match_id IN ({marks})", chunk):
            if match_id in info:
                info[match_id]["athletes"][position] = athlete_id
        for match_id, number, winner in cur.execute(
                f"SELECT match_id, round_number, winner FROM pss_rounds WHERE match_id IN "
                f"({marks}) AND winner IS NOT NULL", chunk):
            if match_id in info:
                info[match_id]["round_winners"][number] = winner
    return info


def _facts(info: dict) -> tuple:
    """What ``_write`` takes from a match's ``_match_info``, computed once per read: its
    tournament group key and duration (``_group_of``) and, per side with an athlete, what its
    contribution has that the rounds do not change: ``(athlete key, position, head, kind,
    won, lost)``, ``head`` the first ``_ATHLETE_COLUMNS`` (matches, wins, losses, rounds won
    and lost), ``kind`` its win type when it won or lost (else None)."""
    winner = info["winner"]
    kind = win_type(info["classification"]) if winner else None
    rounds_won = list(info["round_winners"].values())
    fixed = []
    for position, side in SIDE_PAIRS:
        athlete_id = info["athletes"].get(position)
        if athlete_id is None:
            continue
        other = 3 - position
        won, lost = int(winner == side), int(winner == SIDES[other])
        fixed.append((str(athlete_id), position,
                      (1, won, lost, rounds_won.count(position), rounds_won.count(other)),
                      kind if won or lost else None, won, lost))
    return (*_group_of(info), tuple(fixed))


def _contribution(sides: dict, fixed: tuple) -> dict:
    """What a match adds to its athletes: ``{athlete_id: {"v": [...], "wt": {type: [w, l]}}}``
    (``v`` in ``_ATHLETE_COLUMNS`` order); ``sides`` from ``_lean_sides``, ``fixed`` the
    match's ``_facts``."""
    out: dict[str, dict] = {}
    for key, position, head, kind, won, lost in fixed:
        me, them = sides[position], sides[3 - position]
        vector = [*head, *me[:5], *them[:5], me[_P], them[_P], me[_G], them[_G], me[_HC],
                  me[_HS], me[_HM]]
        entry = out.get(key)
        if entry is None:
            entry = out[key] = {"v": vector, "wt": {}}
        else:  # the same athlete on both sides: one match, both sides' numbers
            entry["v"] = [a + b for a, b in zip(entry["v"][:-1], vector[:-1], strict=True)] + [
                max(entry["v"][-1], vector[-1])]
        if kind:
            counts = entry["wt"].setdefault(kind, [0, 0])
            counts[0] += won
            counts[1] += lost
    return out


_NO_CONTRIBUTION: dict[str, Any] = {"v": [0] * len(_ATHLETE_COLUMNS), "wt": {}}  # read only


def _apply_athletes(cur, changes: list[tuple[dict, dict]]) -> None:
    """Add each match's new contribution and take away its old one (additions: one
    statement per table for the batch)."""
    recompute_max: set[int] = set()
    athletes: list[tuple] = []
    win_types: list[tuple] = []
    for old, new in changes:
        for key in old.keys() | new.keys():
            athlete_id = int(key)
            before = old.get(key, _NO_CONTRIBUTION)
            after = new.get(key, _NO_CONTRIBUTION)
            if before == after:
                continue
            v1, v0 = after["v"], before["v"]
            delta = list(map(operator.sub, v1, v0))
            delta[_HL_MAX_AT] = v1[_HL_MAX_AT]
            if v1[_HL_MAX_AT] < v0[_HL_MAX_AT]:
                recompute_max.add(athlete_id)  # a max cannot be taken away: recount it
            if any(delta):
                athletes.append((athlete_id, *delta))
            wt0, wt1 = before["wt"], after["wt"]
            if wt0 == wt1:  # most changes: points in a match being fought
                continue
            for kind in wt0.keys() | wt1.keys():
                w0, l0 = wt0.get(kind, (0, 0))
                w1, l1 = wt1.get(kind, (0, 0))
                if (w1 - w0, l1 - l0) != (0, 0):
                    win_types.append((athlete_id, kind, w1 - w0, l1 - l0))
    write_rows(cur, _UPSERT_ATHLETE, athletes)
    write_rows(cur, _UPSERT_WIN_TYPE, win_types)
    for athlete_id in recompute_max:
        cur.execute(
            "UPDATE stat_athletes SET hl_max = COALESCE((SELECT MAX(r.hl_max) FROM "
            "stat_match_rounds r JOIN pss_match_athletes a ON a.match_id = r.match_id "
            "AND a.athlete_position = r.athlete WHERE a.athlete_id = ?), 0) "
            "WHERE athlete_id = ?", (athlete_id, athlete_id))


def _chunks(ids: list[int]):
    for start in range(0, len(ids), _IN_LIST):
        yield ids[start:start + _IN_LIST]


def update_aggregates(cur, events: list | None = None,
                      own: tuple[int, int] | None = None) -> None:
    """Fold the events stored since the last call into the statistics' aggregates.

    Called by the writer once per batch, inside its transaction, after the batch's events,
    matches and rounds are written (the one call: step 7 of ``batch.BatchStore.store_batch``).
    ``events``: the batch's ``rows.EventRow`` list as just inserted, so the fold need not read
    them back; used only when they are exactly the events to fold, else (``None``, the careful
    path, events stored by other means) the events are read from the table. Never commits.

    ``own``: ``(first, last)``, the ids this batch gave its events, when several writers share
    the database (PostgreSQL): exactly those are folded, and no shared watermark is read or
    written - another court's writer fills the same table meanwhile, and a watermark would make
    each writer fold (or skip) the others' events and wait for their commits. Each court's
    matches are its own; what they add to athletes is added (``x = x + excluded.x``), which
    commutes. Without ``own`` (SQLite, one writer) every event above ``folded_up_to``."""
    if own is not None:
        first, last = own
        if last < first:
            return
        generation = cur.execute("SELECT value FROM stat_state WHERE key = ?",
                                 (_GENERATION,)).fetchone()[0]
        cache = _take_cache(cur.connection, generation)
        _fold_range(cur, events, first - 1, last, cache)
        _keep_cache(cur.connection, cache)
        return
    state = dict(cur.execute("SELECT key, value FROM stat_state WHERE key IN (?, ?)",
                             (_FOLDED, _GENERATION)).fetchall())
    upto, generation = state[_FOLDED], state[_GENERATION]
    newest = cur.execute("SELECT MAX(id) FROM pss_events_v2").fetchone()[0] or 0
    if newest <= upto:
        return
    # Taken out while the fold runs: an exception leaves no half-updated cache behind.
    cache = _take_cache(cur.connection, generation)
    _fold_range(cur, events, upto, newest, cache)
    cur.executemany("UPDATE stat_state SET value = ? WHERE key = ?",
                    ((newest, _FOLDED), (generation + 1, _GENERATION)))
    cache.generation = generation + 1
    _keep_cache(cur.connection, cache)


def _fold_range(cur, events: list | None, after: int, upto: int, cache: _Cache) -> None:
    """Fold the events with ids in ``(after, upto]``: from ``events`` when they are exactly
    those, else read from the table."""
    if (events and events[0][_ID] == after + 1 and events[-1][_ID] == upto
            and len(events) == upto - after):
        if cache.kinds is None:
            cache.kinds = {type_id: category for type_id, category in cur.execute(
                "SELECT id, category FROM pss_event_types") if category in _ROLES}
        rows, counts = _read_batch(events, cache.kinds)
    else:
        rows, counts = _read_tables(cur, ("pss_events_v2",), after, upto)
    _fold(cur, rows, counts, cache)


def rebuild(conn: sqlite3.Connection) -> dict:
    """Recompute every aggregate from the stored events (main and archive tables), in one
    transaction on the writer's connection; returns ``{events, matches, athletes, seconds}``.

    Ingest waits meanwhile, on both backends: SQLite has one writer, and on PostgreSQL the
    events tables are locked (SHARE: reads go on) once the batches in flight committed - every
    court's writer folds its own batches, and one folding while the rebuild reads would be
    counted twice or not at all."""
    from .transactions import transaction  # where the writer engine finds it too

    started = datetime.now(UTC)
    with transaction(conn):
        cur = conn.cursor()
        if is_postgres(conn):
            cur.execute("LOCK TABLE pss_events_v2, pss_events_v2_archive IN SHARE MODE")
        for table in ("stat_match_rounds", "stat_matches", "stat_match_timeline",
                      "stat_athletes", "stat_athlete_win_types", "stat_tournament_groups",
                      "stat_court_rates"):
            cur.execute(f"DELETE FROM {table}")
        newest = max(cur.execute("SELECT COALESCE(MAX(id), 0) FROM pss_events_v2").fetchone()[0],
                     cur.execute("SELECT COALESCE(MAX(id), 0) FROM pss_events_v2_archive")
                     .fetchone()[0])
        _CACHES.pop(id(conn), None)
        events = 0
        start = 0
        cache = _Cache(0)
        while start < newest:
            end = start + _CHUNK
            events += _fold(cur, *_read_tables(cur, ("pss_events_v2", "pss_events_v2_archive"),
                                               start, end), cache)
            start = end
        cur.execute("UPDATE stat_state SET value = value + 1 WHERE key = ?", (_GENERATION,))
        cur.execute("UPDATE stat_state SET value = ? WHERE key = ?", (newest, _FOLDED))
        cur.execute("UPDATE stat_state SET value = 0 WHERE key = ?", (_PENDING,))
        matches = cur.execute("SELECT COUNT(*) FROM stat_matches").fetchone()[0]
        athletes = cur.execute("SELECT COUNT(*) FROM stat_athletes").fetchone()[0]
    seconds = (datetime.now(UTC) - started).total_seconds()
    return {"events": events, "matches": matches, "athletes": athletes,
            "seconds": round(seconds, 3)}


# -- reading ------------------------------------------------------------------------------------


# A side's totals in the write path, flat: the five point types, points, gam-jeoms, hit-level
# count, sum and max (``_side_totals`` builds the public form, histograms included).
_P, _G, _HC, _HS, _HM = 5, 6, 7, 8, 9


def _lean_sides(rounds: dict[tuple[int, int], list]) -> dict[int, list]:
    """Per athlete (1, 2): totals over a match's round rows, as ``_side_totals`` counts them
    (a round where only the opponent has a row still gives this side its gam-jeom points).
    One pass over the rows, the opponent's row looked up (called per changed match and batch)."""
    out = {1: [0] * 10, 2: [0] * 10}
    get = rounds.get
    for (number, athlete), me in rounds.items():
        o = out.get(athlete)
        if o is None:
            continue
        them = get((number, 3 - athlete))
        if them is None:  # the opponent has no row: it still gets this side's gam-jeom points
            out[3 - athlete][_P] += round_points(None, 0, me[_GAM_JEOM])
        o[0] += me[1]
        o[1] += me[2]
        o[2] += me[3]
        o[3] += me[4]
        o[4] += me[5]
        o[_P] += round_points(me[_REPORTED], me[_SCORED], them[_GAM_JEOM] if them else 0)
        o[_G] += me[_GAM_JEOM]
        o[_HC] += me[_HL_COUNT]
        o[_HS] += me[_HL_SUM]
        if me[_HL_MAX] > o[_HM]:
            o[_HM] = me[_HL_MAX]
    return out


def _side_totals(rounds: Iterable) -> dict[int, dict]:
    """Per athlete (1, 2): totals over ``rounds`` items ``((number, athlete), values)``."""
    by_round: dict[int, dict[int, list]] = defaultdict(dict)
    for (number, athlete), values in rounds:
        by_round[number][athlete] = values
    totals = {a: _empty_side() for a in SIDES}
    for pair in by_round.values():
        for athlete in SIDES:
            side = _side(pair.get(athlete), pair.get(3 - athlete))
            _add_side(totals[athlete], side)
    return totals


def _empty_side() -> dict:
    return {"points_by_type": dict.fromkeys(POINT_KEYS, 0), "points": 0, "gam_jeom": 0,
            "hl_count": 0, "hl_sum": 0, "hl_max": 0, "histogram": [0] * HIT_LEVEL_BUCKETS}


def _side(me: list | None, them: list | None) -> dict:
    """One side of one round from its row and its opponent's (``None``: no row)."""
    s = _empty_side()
    if me is None:
        me = _new_round()
    for i, key in enumerate(POINT_KEYS):
        s["points_by_type"][key] = me[1 + i]
    s["gam_jeom"] = me[_GAM_JEOM]
    s["points"] = round_points(me[_REPORTED], me[_SCORED], them[_GAM_JEOM] if them else 0)
    s["hl_count"], s["hl_sum"], s["hl_max"] = me[_HL_COUNT], me[_HL_SUM], me[_HL_MAX]
    s["histogram"] = list(me[_HIST])
    return s


def _add_side(total: dict, s: dict) -> None:
    for key in POINT_KEYS:
        total["points_by_type"][key] += s["points_by_type"][key]
    for key in ("points", "gam_jeom", "hl_count", "hl_sum"):
        total[key] += s[key]
    total["hl_max"] = max(total["hl_max"], s["hl_max"])
    total["histogram"] = [a + b for a, b in zip(total["histogram"], s["histogram"], strict=False)]


def _public(s: dict) -> dict:
    """``S`` as the commands answer it."""
    count = s["hl_count"]
    return {
        "points_by_type": dict(s["points_by_type"]),
        "points": s["points"],
        "gam_jeom": s["gam_jeom"],
        "hit_levels": {"count": count,
                       "mean": round(s["hl_sum"] / count, 2) if count else None,
                       "max": s["hl_max"] if count else None,
                       "histogram": list(s["histogram"])},
    }


def _listed(number: int, pair: dict) -> bool:
    """Whether a round appears in ``rounds``: fought (an event arrived during it), or with
    something counted or reported (round 0 gathers what came before round 1)."""
    for values in pair.values():
        if (number and values[_SEEN]) or values[_REPORTED] or values[_GAM_JEOM] or any(
                values[1:_SCORED]) or values[_HL_COUNT]:
            return True
    return False


def match_statistics(conn: sqlite3.Connection, match_id: int) -> dict | None:
    """``get_match_statistics``'s answer, or None when there is no such match."""
    with read_snapshot(conn):
        match = conn.execute(
            "SELECT m.id, m.status, m.winner, m.winner_name, m.win_classification, "
            "m.match_number, m.category, m.phase, m.loaded_at, m.ended_at FROM pss_matches m "
            "WHERE m.id = ?", (match_id,)).fetchone()
        if match is None:
            return None
        rows = conn.execute(
            f"SELECT round_number, athlete, {', '.join(_ROUND_COLUMNS)} FROM stat_match_rounds "
            f"WHERE match_id = ? ORDER BY round_number, athlete", (match_id,)).fetchall()
        timeline = conn.execute(
            "SELECT round_number, clock, event_id, blue, red FROM stat_match_timeline "
            "WHERE match_id = ? ORDER BY event_id", (match_id,)).fetchall()
        athletes = _athletes_of(conn, [match_id]).get(match_id, {})
        winners = dict(conn.execute(
            "SELECT round_number, winner FROM pss_rounds WHERE match_id = ?", (match_id,)))
    items = []
    by_round: dict[int, dict[int, list]] = defaultdict(dict)
    for row in rows:
        values = list(row[2:])
        values[_HIST] = json.loads(values[_HIST])
        items.append(((row[0], row[1]), values))
        by_round[row[0]][row[1]] = values
    rounds = []
    for number in sorted(by_round):
        pair = by_round[number]
        if not _listed(number, pair):
            continue
        entry: dict[str, Any] = {"round": number,
                                 "winner": SIDES.get(winners.get(number) or 0)}
        for athlete, side in SIDE_PAIRS:
            entry[side] = _public(_side(pair.get(athlete), pair.get(3 - athlete)))
        rounds.append(entry)
    totals = _side_totals(items)
    return {
        "match_id": match[0], "status": match[1], "winner": match[2],
        "winner_name": match[3], "win_classification": match[4],
        "win_type": win_type(match[4]) if match[2] else None,
        "match_number": match[5], "category": match[6], "phase": match[7],
        "loaded_at": match[8], "ended_at": match[9],
        "athletes": athletes,
        "rounds": rounds,
        "total": {side: _public(totals[a]) for a, side in SIDE_PAIRS},
        "timeline": [{"round": r, "clock": c, "event_id": e, "blue": b, "red": rd}
                     for r, c, e, b, rd in timeline],
    }


def _athletes_of(conn, match_ids: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = defaultdict(lambda: {"blue": None, "red": None})
    for chunk in _chunks(match_ids):
        marks = ", ".join("?" * len(chunk))
        for match_id, position, athlete_id, short, long_, country in conn.execute(
                f"SELECT ma.match_id, ma.athlete_position, a.id, a.short_name, a.long_name, "
                f"a.country_code FROM pss_match_athletes ma JOIN pss_athletes a "
                f"ON a.id = ma.athlete_id WHERE ma.match_id IN ({marks})", chunk):
            out[match_id][SIDES[position]] = {"id": athlete_id, "short": short,
                                              "long": long_, "country": country}
    return dict(out)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def athletes(conn: sqlite3.Connection, search: str | None, limit: int) -> list[dict]:
    """``get_athletes``: athletes whose names or country contain ``search``, with their record."""
    where, params = "", []
    if search:
        where = ("WHERE LOWER(a.short_name) LIKE LOWER(?) ESCAPE '\\' "  # case: as in SQLite
                 "OR LOWER(a.long_name) LIKE LOWER(?) ESCAPE '\\' "
                 "OR LOWER(a.country_code) LIKE LOWER(?) ESCAPE '\\'")
        params = [_like(search)] * 3
    rows = conn.execute(
        f"SELECT a.id, a.short_name, a.long_name, a.country_code, COALESCE(s.matches, 0), "
        f"COALESCE(s.wins, 0), COALESCE(s.losses, 0) FROM pss_athletes a "
        f"LEFT JOIN stat_athletes s ON s.athlete_id = a.id {where} "
        f"ORDER BY a.short_name, a.id LIMIT ?", (*params, limit)).fetchall()
    return [{"id": r[0], "short": r[1], "long": r[2], "country": r[3], "matches": r[4],
             "wins": r[5], "losses": r[6]} for r in rows]


def athlete_statistics(conn: sqlite3.Connection, athlete_id: int, match_limit: int) -> dict | None:
    """``get_athlete_statistics``'s answer, or None when there is no such athlete."""
    with read_snapshot(conn):
        who = conn.execute("SELECT id, short_name, long_name, country_code FROM pss_athletes "
                           "WHERE id = ?", (athlete_id,)).fetchone()
        if who is None:
            return None
        row = conn.execute(f"SELECT {', '.join(_ATHLETE_COLUMNS)} FROM stat_athletes "
                           f"WHERE athlete_id = ?", (athlete_id,)).fetchone()
        kinds = conn.execute("SELECT win_type, wins, losses FROM stat_athlete_win_types "
                             "WHERE athlete_id = ? AND (wins != 0 OR losses != 0) "
                             "ORDER BY win_type", (athlete_id,)).fetchall()
        matches = conn.execute(
            "SELECT m.id, ma.athlete_position, m.status, m.winner, m.win_classification, "
            "m.match_number, m.category, m.phase, m.loaded_at, m.ended_at, "
            "s.blue_points, s.red_points FROM pss_match_athletes ma "
            "JOIN pss_matches m ON m.id = ma.match_id "
            "LEFT JOIN stat_matches s ON s.match_id = m.id "
            "WHERE ma.athlete_id = ? ORDER BY m.id DESC LIMIT ?",
            (athlete_id, match_limit)).fetchall()
        opponents = _athletes_of(conn, [m[0] for m in matches])
    v = (dict(zip(_ATHLETE_COLUMNS, row, strict=False)) if row
         else dict.fromkeys(_ATHLETE_COLUMNS, 0))
    listed = []
    for (mid, position, status, winner, classification, number, category, phase, loaded,
         ended, blue_points, red_points) in matches:
        side = SIDES[position]
        other = SIDES[3 - position]
        points = {"blue": blue_points or 0, "red": red_points or 0}
        listed.append({
            "match_id": mid, "side": side, "status": status,
            "result": None if winner is None else ("win" if winner == side else "loss"),
            "win_type": win_type(classification) if winner else None,
            "classification": classification,
            "opponent": opponents.get(mid, {}).get(other),
            "points_for": points[side], "points_against": points[other],
            "match_number": number, "category": category, "phase": phase,
            "loaded_at": loaded, "ended_at": ended,
        })
    count = v["hl_count"]
    return {
        "athlete": {"id": who[0], "short": who[1], "long": who[2], "country": who[3]},
        "matches": v["matches"], "wins": v["wins"], "losses": v["losses"],
        "rounds_won": v["rounds_won"], "rounds_lost": v["rounds_lost"],
        "points_scored_by_type": {k: v[f"scored_{k}"] for k in POINT_KEYS},
        "points_conceded_by_type": {k: v[f"conceded_{k}"] for k in POINT_KEYS},
        "points_for": v["points_for"], "points_against": v["points_against"],
        "penalties_received": v["penalties_received"], "penalties_given": v["penalties_given"],
        "hit_levels": {"count": count, "mean": round(v["hl_sum"] / count, 2) if count else None,
                       "max": v["hl_max"] if count else None},
        "win_types": [{"win_type": k, "wins": w, "losses": lo} for k, w, lo in kinds],
        "match_list": listed,
    }


def match_filter(tournament_id: int | None, day_id: int | None,
                 prefix: str = "") -> tuple[list[str], list[int]]:
    """The conditions (on ``pss_matches`` columns, ``prefix`` its alias) and their parameters
    that select the matches of a tournament and/or one of its days (none: every match)."""
    where, params = [], []
    for column, value in (("tournament_id", tournament_id), ("tournament_day_id", day_id)):
        if value is not None:
            where.append(f"{prefix}{column} = ?")
            params.append(value)
    return where, params


def tournament_statistics(conn: sqlite3.Connection, tournament_id: int | None,
                          day_id: int | None, now: str | None = None,
                          court: str | None = None) -> dict:
    """``get_tournament_statistics``'s answer (see the command). Read from the groups the
    writer keeps (``stat_tournament_groups``: a few rows per court and hour, whatever the
    number of matches), the p90 duration from an index of ``stat_matches`` (nearest rank),
    the last hour's rates from ``stat_court_rates`` (a row per minute and court); ``court``:
    only that court's matches (``court_of``)."""
    where, ids = match_filter(tournament_id, day_id)
    params: list[int | str] = list(ids)
    if court is not None:
        where.append("court = ?")
        params.append(court)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    now = now or now_iso()
    since = (datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(hours=1))
    since_minute = since.strftime("%Y-%m-%dT%H:%M")
    with read_snapshot(conn):
        rows = conn.execute(
            "SELECT court, hour, finished, classification, SUM(matches), SUM(durations), "
            "SUM(duration_ms), SUM(penalties), "
            + ", ".join(f"SUM({k})" for k in POINT_KEYS)
            + f" FROM stat_tournament_groups {clause} "
            f"GROUP BY court, hour, finished, classification", params).fetchall()
        durations = sum(r[5] for r in rows)
        p90 = None
        if durations:
            p90 = conn.execute(
                f"SELECT duration_ms FROM stat_matches WHERE "
                f"{' AND '.join([*where, 'duration_ms IS NOT NULL'])} "
                f"ORDER BY duration_ms LIMIT 1 OFFSET ?",
                (*params, math.ceil(0.9 * durations) - 1)).fetchone()[0]
        rates = conn.execute(
            f"SELECT minute, court, SUM(events) FROM stat_court_rates WHERE "
            f"{' AND '.join(['minute >= ?', *where])} GROUP BY minute, court ORDER BY minute",
            (since_minute, *params)).fetchall()
    groups: dict[tuple, int] = defaultdict(int)
    classifications: dict[str, int] = defaultdict(int)
    duration_ms = 0
    totals = [0] * (1 + len(POINT_KEYS))  # penalties, then the point types
    for court, hour, done, classification, count, _timed, summed, *sums in rows:
        groups[(court, hour, done)] += count
        if done:
            classifications[classification] += count
        duration_ms += summed
        totals = [a + b for a, b in zip(totals, sums, strict=True)]
    finished = in_progress = 0
    per_court: dict[str, dict] = {}
    per_hour: dict[str, dict] = {}
    for (court, hour, is_finished), count in groups.items():
        hour = hour + ":00:00Z"
        key = "finished" if is_finished else "in_progress"
        c = per_court.setdefault(court, {"court": court, "finished": 0, "in_progress": 0})
        h = per_hour.setdefault(hour, {"hour": hour, "finished": 0, "in_progress": 0,
                                       "by_court": {}})
        c[key] += count
        h[key] += count
        h["by_court"][court] = h["by_court"].get(court, 0) + count
        if is_finished:
            finished += count
        else:
            in_progress += count
    kinds: dict[str, int] = defaultdict(int)
    for classification, count in classifications.items():
        kind = win_type(classification)
        if kind:
            kinds[kind] += count
    penalties = totals[0]
    live: dict[str, list] = defaultdict(list)
    for minute, court, events in rates:
        live[court].append({"minute": minute + "Z", "events": events})
    total = finished + in_progress
    return {
        "tournament_id": tournament_id, "tournament_day_id": day_id,
        "matches": total, "finished": finished, "in_progress": in_progress,
        "per_court": sorted(per_court.values(), key=lambda c: c["court"]),
        "per_hour": [per_hour[h] for h in sorted(per_hour)],
        "duration_s": {"mean": round(duration_ms / durations / 1000, 3) if durations else None,
                       "p90": None if p90 is None else round(p90 / 1000, 3),
                       "count": durations},
        "win_types": dict(sorted(kinds.items())),
        "technique_mix": dict(zip(POINT_KEYS, totals[1:], strict=True)),
        "penalties": penalties,
        "penalties_per_match": round(penalties / total, 3) if total else None,
        "event_rates": {"since": since_minute + "Z", "per_court": dict(sorted(live.items()))},
        "pending_rebuild": pending_rebuild(conn),
    }


def court_of(court: str | None, ip: str | None, port: int | None) -> str:
    """A match's court in the statistics: the ``--court`` of the instance that stored it; a
    match stored before courts existed (schema 8) is named by its sender's address."""
    if court:
        return court
    return f"{ip}:{port}" if ip else "unknown"


def pending_rebuild(conn: sqlite3.Connection) -> bool:
    """True when the file held events before the aggregates existed (see ``rebuild``)."""
    row = conn.execute("SELECT value FROM stat_state WHERE key = ?", (_PENDING,)).fetchone()
    return bool(row and row[0])


__all__ = ["athlete_statistics", "athletes", "match_statistics", "pending_rebuild", "rebuild",
           "tournament_statistics", "update_aggregates"]
