"""Matches, athletes, rounds, scores and warnings derived from the stored events.

Runs on the writer thread, inside the writer's batch transaction (it never commits). One source
(session, sender IP, sender port) has at most one current match. The match itself is the PSS
domain's one model, ``pss.match.MatchState`` - the same the live scoreboard keeps, with the
same rule for when a match starts and ends (``starts_match``, ``next_status``): its status,
round, clock, configuration, scores, warnings, round results and winner are what
``MatchState.summary()`` says, written to ``pss_matches``/``pss_rounds`` once per batch.
Only the events that can change the summary are applied (``pss.match.SUMMARY_EVENTS``).

What this module adds is the database's bookkeeping around that model (``TrackedMatch``):
row ids, which rows changed since the last write, and the rows that record history:

- a match row (``pss_matches``) per match: ``pre;FightLoaded`` starts one; ``at1…``/``mch…``
  start one too when the source has none yet; every other event before the first match of a
  source belongs to no match. ``match_config`` keeps the ``mch`` message as JSON;
  ``ended_at`` is when the winner arrived;
- ``at1;…;at2;…`` upserts ``pss_athletes`` and links them in ``pss_match_athletes``
  (1 blue, 2 red);
- ``rnd;n`` opens round n (``pss_rounds``) and ends the previous one; a round that only
  appears in ``s1n/s2n`` scores or ``wrd`` winners (its ``rnd`` datagram was lost) is opened on
  demand when the value is not zero;
- ``pt1/pt2`` adds a ``pss_scores`` row (points = point type, as in WT rules);
- ``wg1;a;wg2;b`` adds a ``pss_warnings`` row for each side whose count changed.

Match and round rows are updated once per batch (``dirty_rows``), not once per event; this
module decides the rows, the batch writes them (many rows per statement, see the SQL templates
below: ``{rows}`` is where a statement's VALUES rows go). The batch snapshots the state before
it starts and restores it when its transaction rolls back (``MatchState.copy``).
``place`` runs for every event, so the common case (a clock tick) is a dict lookup and one
``MatchState.apply``.
"""

from __future__ import annotations

from collections.abc import Callable

from restrike.pss.match import (
    STARTS_A_MATCH,
    SUMMARY_EVENTS,
    MatchState,
    MatchSummary,
    starts_match,
)
from restrike.pss.protocol import MAX_ROUNDS
from restrike.pss.sides import SIDE_PAIRS

# pss_matches column <- key of the summary's ``match`` section (its colours are under "colors")
_CONFIG_COLUMNS = (("match_number", "number"), ("phase", "phase"), ("category", "category"),
                   ("division", "division"), ("internal_match_id", "match_id"),
                   ("rounds_total", "rounds"), ("round_duration_s", "round_duration"),
                   ("countdown_type", "countdown"))
_COLOUR_COLUMNS = ("blue_bg", "blue_fg", "red_bg", "red_fg")


_INSERT_MATCH = (
    "INSERT INTO pss_matches (session_id, source_ip, source_port, tournament_id, "
    "tournament_day_id, status, loaded_at, updated_at, court) "
    "VALUES (?, ?, ?, ?, ?, 'loaded', ?, ?, ?) RETURNING id"
)


def _update_many(table: str, columns: str) -> str:
    """An UPDATE of many rows by id in one statement: ``{rows}`` are (id, *columns) tuples.
    Plain SQL (a CTE and a row-value SET), no ``UPDATE ... FROM`` (SQLite 3.33+)."""
    return (f"WITH v(id, {columns}) AS (VALUES {{rows}}) UPDATE {table} SET ({columns}) = "
            f"(SELECT {columns} FROM v WHERE v.id = {table}.id) "
            f"WHERE id IN (SELECT id FROM v)")


UPDATE_MATCHES = _update_many(
    "pss_matches",
    "match_number, phase, category, division, internal_match_id, rounds_total, "
    "round_duration_s, countdown_type, blue_bg, blue_fg, red_bg, red_fg, match_config, status, "
    "current_round, clock, blue_score, red_score, blue_warnings, red_warnings, winner, "
    "winner_name, win_classification, ended_at, updated_at")
"""Rows from ``dirty_rows``: (id, 25 columns) per match."""
UPDATE_ROUNDS = _update_many("pss_rounds", "blue_score, red_score, winner, ended_at")
"""Rows from ``dirty_rows``: (id, blue_score, red_score, winner, ended_at) per round."""
INSERT_SCORES = (
    "INSERT INTO pss_scores (event_id, match_id, round_id, athlete, point_type, points, clock, "
    "scored_at) VALUES {rows}"
)
INSERT_WARNINGS = (
    "INSERT INTO pss_warnings (event_id, match_id, round_id, athlete, warnings, clock, "
    "issued_at) VALUES {rows}"
)


class RoundRow:
    """A ``pss_rounds`` row of the match: its id, its end, whether it changed (its scores and
    winner are the summary's)."""

    __slots__ = ("id", "number", "ended_at", "dirty")

    def __init__(self, row_id: int, number: int) -> None:
        self.id = row_id
        self.number = number
        self.ended_at: str | None = None
        self.dirty = False

    def copy(self) -> RoundRow:
        clone = RoundRow(self.id, self.number)
        clone.ended_at, clone.dirty = self.ended_at, self.dirty
        return clone


class TrackedMatch:
    """One source's current match: the domain's ``MatchState`` (``live``) and its rows."""

    __slots__ = ("id", "live", "round_id", "placement_cache", "rounds", "match_config",
                 "ended_at", "dirty", "saved_for")

    def __init__(self, row_id: int) -> None:
        self.id = row_id  # pss_matches.id
        self.live = MatchState()
        self.round_id: int | None = None  # id of the current round's row (read per event)
        # Free for the caller to cache what it derives from ``live.where`` (round, clock): set
        # back to None whenever either may have changed.
        self.placement_cache: str | None = None  # the JSON tail of its events (rows.Suffixes)
        self.rounds: dict[int, RoundRow] = {}
        self.match_config: str | None = None  # the last ``mch`` message, as JSON
        self.ended_at: str | None = None
        self.dirty = True
        self.saved_for: _Undo | None = None  # the innermost snapshot holding its copy

    def copy(self) -> TrackedMatch:
        """An independent copy (taken for every source before each batch)."""
        clone = TrackedMatch.__new__(TrackedMatch)
        clone.id, clone.round_id, clone.placement_cache = self.id, self.round_id, None
        clone.live = self.live.copy()
        clone.rounds = {number: rnd.copy() for number, rnd in self.rounds.items()}
        clone.match_config, clone.ended_at, clone.dirty = (
            self.match_config, self.ended_at, self.dirty)
        clone.saved_for = None
        return clone


class _Undo:
    """What ``MatchTracker.restore`` puts back: the sources' matches when the snapshot was
    taken, and a copy of each that changed since, made just before its first change."""

    __slots__ = ("current", "retired", "copies")

    def __init__(self, current: dict, retired: list) -> None:
        self.current = current
        self.retired = retired
        self.copies: dict[int, TrackedMatch] = {}  # id(match at snapshot) -> its copy


class MatchTracker:
    """Current match per source; ``place`` is called for every event, in arrival order.
    Every match it starts is stored with ``court`` (the instance's ``--court``)."""

    def __init__(self, court: str | None = None) -> None:
        self._court = court
        self._current: dict[tuple, TrackedMatch] = {}
        # Matches a new one replaced before their last changes were written (a FightLoaded in
        # the same batch as the end of the previous match): written by the next dirty_rows.
        self._retired: list[TrackedMatch] = []
        self._undos: list[_Undo] = []  # open snapshots, innermost last
        self._top: _Undo | None = None

    def snapshot(self) -> _Undo:
        """Open a snapshot of the state, to ``restore`` when the batch's transaction (or an
        event's savepoint) rolls back, or ``release`` when it commits. A match is copied only
        before its first change under the snapshot: most sources of a long run are idle."""
        undo = _Undo(dict(self._current), list(self._retired))
        self._undos.append(undo)
        self._top = undo
        return undo

    def restore(self, undo: _Undo) -> None:
        """Put the state back as it was when ``undo`` was taken (and close it, and every
        snapshot taken after it)."""
        copies = undo.copies
        self._current = {key: copies.get(id(state), state)
                         for key, state in undo.current.items()}
        self._retired = [copies.get(id(state), state) for state in undo.retired]
        self._close(undo)

    def release(self, undo: _Undo) -> None:
        """Close ``undo``: what changed since is kept."""
        self._close(undo)

    def _close(self, undo: _Undo) -> None:
        at = self._undos.index(undo)
        for closed in self._undos[at:]:
            # A match keeps its last snapshot (``saved_for``) and the snapshot its matches: a
            # reference cycle, garbage once the match is replaced, that only a full collection
            # frees (rare: ``host.cli.tune_gc``), with a copy of every match it saved. Emptied
            # here, a closed snapshot is a small object its matches point to, freed with them.
            closed.copies.clear()
            closed.current.clear()
            closed.retired.clear()
        del self._undos[at:]
        self._top = self._undos[-1] if self._undos else None

    def _save(self, state: TrackedMatch) -> None:
        """Called before ``state`` changes: each open snapshot keeps its copy from before."""
        key = id(state)
        for undo in self._undos:
            if key not in undo.copies:
                undo.copies[key] = state.copy()
        state.saved_for = self._top

    def place(self, cur, key: tuple, ev, kind: str, context: tuple, event_id: int,
              linked: list) -> TrackedMatch | None:
        """Apply the ingested event ``ev`` (its parsed model of type ``kind``, from the source
        ``key`` = (session_id, source_ip, source_port), to be stored under ``event_id``) to
        that source's match.

        Returns the match after the event (where it goes: ``id``, ``round_id``,
        ``live.where``), or None when the source has no match yet. Rows that name the event (score
        and warning history) are appended to ``linked`` as ``(sql, params)``, to be run once
        the event row exists; ``sql`` is ``INSERT_SCORES`` or ``INSERT_WARNINGS``.
        """
        state = self._current.get(key)
        if kind not in _PLACE:
            return state  # changes nothing the database keeps (so the match is not copied)
        if kind in STARTS_A_MATCH and starts_match(kind, state is not None):
            state = self._new_match(cur, key, ev.received_at, context)
        if state is None:
            return None
        if state.saved_for is not self._top:
            self._save(state)
        rows = _PLACE[kind]
        if rows is not None:
            rows(cur, state, ev, event_id, linked)
        elif state.live.apply(ev.event, ev.received_ns, ev.received_at):
            # The clock or anything else seen changed: the row changes, and the placement
            # (round, clock) may have.
            state.dirty = True
            state.placement_cache = None
        return state

    def dirty_rows(self, now: str) -> tuple[list[tuple], list[tuple]]:
        """The rows of the matches and rounds changed since the last call, for
        ``UPDATE_MATCHES`` and ``UPDATE_ROUNDS``; they count as written from now on."""
        matches: list[tuple] = []
        rounds: list[tuple] = []
        retired, self._retired = self._retired, []
        for state in (*retired, *self._current.values()):
            changed = [rnd for rnd in state.rounds.values() if rnd.dirty]
            if not (state.dirty or changed):
                continue
            if state.saved_for is not self._top:
                self._save(state)  # its flags change below
            summary = state.live.summary()
            for rnd in changed:
                rounds.append(_round_row(rnd, summary))
                rnd.dirty = False
            if state.dirty:
                matches.append(_match_row(state, summary, now))
                state.dirty = False
        return matches, rounds

    def _new_match(self, cur, key: tuple, at: str, context: tuple) -> TrackedMatch:
        session_id, source_ip, source_port = key
        cur.execute(_INSERT_MATCH, (session_id, source_ip, source_port, context[0], context[1],
                                    at, at, self._court))
        state = TrackedMatch(cur.fetchone()[0])
        previous = self._current.get(key)
        if previous is not None and (previous.dirty or any(
                rnd.dirty for rnd in previous.rounds.values())):
            self._retired.append(previous)
        self._current[key] = state
        return state


def _match_row(state: TrackedMatch, summary: MatchSummary, now: str) -> tuple:
    """The ``UPDATE_MATCHES`` row of a match: (id, 25 columns)."""
    match = summary.match
    colours = match.get("colors") or {}
    side = summary.winner.get("side")
    return (state.id, *(match.get(key) for _, key in _CONFIG_COLUMNS),
            *(colours.get(column) for column in _COLOUR_COLUMNS), state.match_config,
            summary.status, summary.round, summary.clock, *summary.scores, *summary.warnings,
            side.lower() if side else None, summary.winner.get("name"),
            summary.winner.get("classification"), state.ended_at, now)


def _round_row(rnd: RoundRow, summary: MatchSummary) -> tuple:
    """The ``UPDATE_ROUNDS`` row of a round: (id, blue_score, red_score, winner, ended_at)."""
    blue, red = summary.round_scores
    return (rnd.id, blue.get(rnd.number), red.get(rnd.number),
            summary.round_winners.get(rnd.number), rnd.ended_at)


# -- the rows events add besides the summary: (cursor, match, ingested event, event id, linked) --
# Each applies the event to the match (``_apply``) where it changes the summary.


def _apply(state: TrackedMatch, ev) -> None:
    if state.live.apply(ev.event, ev.received_ns, ev.received_at):
        state.dirty = True


def _open_round(cur, state: TrackedMatch, number: int, at: str) -> RoundRow:
    rnd = state.rounds.get(number)
    if rnd is None:
        row = cur.execute(
            "INSERT INTO pss_rounds (match_id, round_number, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (match_id, round_number) "
            "DO UPDATE SET round_number = excluded.round_number "
            "RETURNING id",
            (state.id, number, at),
        ).fetchone()
        rnd = state.rounds[number] = RoundRow(row[0], number)
    return rnd


def _on_round(cur, state, ev, event_id, linked):
    previous = state.rounds.get(state.live.round)
    _apply(state, ev)
    number = state.live.round
    if previous is not None and previous.number != number and previous.ended_at is None:
        previous.ended_at = ev.received_at
        previous.dirty = True
    if number is not None:
        state.round_id = _open_round(cur, state, number, ev.received_at).id
    state.placement_cache = None
    state.dirty = True


def _on_match_config(cur, state, ev, event_id, linked):
    _apply(state, ev)
    state.match_config = ev.event.model_dump_json(exclude={"type", "code", "raw", "athlete"})
    state.dirty = True


def _on_athletes(cur, state, ev, event_id, linked):
    _apply(state, ev)
    for position, side in SIDE_PAIRS:
        athlete = getattr(ev.event, side)
        if athlete is None:
            continue
        row = cur.execute(
            "INSERT INTO pss_athletes (short_name, long_name, country_code, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (short_name, long_name, country_code) "
            "DO UPDATE SET short_name = excluded.short_name RETURNING id",
            (athlete.short, athlete.long or "", athlete.country or "", ev.received_at),
        ).fetchone()
        cur.execute(
            "INSERT INTO pss_match_athletes (match_id, athlete_position, athlete_id) "
            "VALUES (?, ?, ?) ON CONFLICT (match_id, athlete_position) "
            "DO UPDATE SET athlete_id = excluded.athlete_id",
            (state.id, position, row[0]),
        )


def _on_points(cur, state, ev, event_id, linked):
    # History only (points change no summary field; the current score comes from sc1/sc2).
    event = ev.event
    if event.athlete not in (1, 2):
        return
    current = state.rounds.get(state.live.round)
    linked.append((INSERT_SCORES, (event_id, state.id, current.id if current else None,
                                   event.athlete, event.point_type, event.point_type,
                                   state.live.clock, ev.received_at)))


def _on_warnings(cur, state, ev, event_id, linked):
    before = state.live.warnings
    _apply(state, ev)
    after = state.live.warnings
    current = state.rounds.get(state.live.round)
    for position, _side in SIDE_PAIRS:
        if after[position - 1] != before[position - 1]:
            linked.append((INSERT_WARNINGS, (
                event_id, state.id, current.id if current else None, position,
                after[position - 1], state.live.clock, ev.received_at)))


def _touch_rounds(cur, state, numbers_values, at: str) -> list[RoundRow]:
    """The rows of the rounds an ``s1n``/``wrd`` message names: opened on demand when the
    value is not zero (the ``rnd`` datagram was lost), marked changed."""
    touched = []
    for number, value in numbers_values:
        if type(number) is not int or not 1 <= number <= MAX_ROUNDS:
            continue  # not a round the summary keeps
        rnd = state.rounds.get(number)
        if rnd is None:
            if not value:
                continue
            rnd = _open_round(cur, state, number, at)
        rnd.dirty = True
        touched.append(rnd)
    return touched


def _on_round_scores(cur, state, ev, event_id, linked):
    _apply(state, ev)
    event = ev.event
    _touch_rounds(cur, state, [*event.blue.items(), *event.red.items()], ev.received_at)


def _on_round_winners(cur, state, ev, event_id, linked):
    _apply(state, ev)
    winners = ev.event.winners
    for rnd in _touch_rounds(cur, state, winners.items(), ev.received_at):
        if winners[rnd.number] and rnd.ended_at is None:
            rnd.ended_at = ev.received_at


def _on_winner(cur, state, ev, event_id, linked):
    _apply(state, ev)  # status finished (next_status)
    at = ev.received_at
    if state.ended_at is None:
        state.ended_at = at
    current = state.rounds.get(state.live.round)
    if current is not None and current.ended_at is None:
        current.ended_at = at
        current.dirty = True
    state.dirty = True


_ROWS = {
    "round": _on_round,
    "match_config": _on_match_config,
    "athletes": _on_athletes,
    "points": _on_points,
    "warnings": _on_warnings,
    "scores": _on_round_scores,
    "winner_rounds": _on_round_winners,
    "winner_side": _on_winner,
    "winner": _on_winner,
}


# What ``place`` does for an event of each type, decided here once rather than per event: the
# row handler above, None for a type that only changes the summary (``MatchState.apply``), no
# entry for one that changes neither (about a quarter of a real feed: break and injury time, hit
# levels...), which then costs one dict lookup and no copy of the match.
_PLACE: dict[str, Callable[..., None] | None] = {**dict.fromkeys(SUMMARY_EVENTS), **_ROWS}
