"""Matches, athletes, rounds, scores and warnings derived from the stored events.

Runs on the writer thread, inside the writer's batch transaction (it never commits). One source
(session, sender IP, sender port) has at most one current match. When a match starts and ends,
and its status, follow the one rule of the PSS domain (``pss.match.starts_match`` and
``next_status``, the same the live scoreboard follows):

- ``pre;FightLoaded`` starts a new match; ``at1…``/``mch…`` start one too when the source has
  none yet; every other event before the first match of a source belongs to no match;
- ``mch`` fills number, phase, category, division, colours, rounds, round duration;
- ``at1;…;at2;…`` upserts ``pss_athletes`` and links them in ``pss_match_athletes`` (1 blue, 2 red);
- ``rnd;n`` opens round n (``pss_rounds``) and ends the previous one; a round that only appears in
  ``s1n/s2n`` scores or ``wrd`` winners (its ``rnd`` datagram was lost) is opened on demand when
  the value is not zero;
- ``pt1/pt2`` adds a ``pss_scores`` row (points = point type, as in WT rules);
- ``wg1;a;wg2;b`` adds a ``pss_warnings`` row for each side whose count changed;
- ``sc1;a;sc2;b`` is the current score, ``clk`` the clock, ``win``/``wmh`` the winner.

Match and round rows are updated once per batch (``dirty_rows``), not once per event; this
module decides the rows, the writer writes them (many rows per statement, see the SQL templates
below: ``{rows}`` is where a statement's VALUES rows go). The state is plain data: the writer
snapshots it before a batch and restores it when the batch rolls back.
``place`` runs for every event, so the common case (a clock tick, a hit level: no SQL, a field
or two set) is a dict lookup and at most one handler call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from restrike.pss.match import MatchStatus, next_status, starts_match
from restrike.pss.sides import SIDE_PAIRS

_MATCH_CONFIG_COLUMNS = {
    # MatchConfig field -> pss_matches column
    "number": "match_number",
    "phase": "phase",
    "category": "category",
    "division": "division",
    "match_id": "internal_match_id",
    "rounds": "rounds_total",
    "round_duration": "round_duration_s",
    "countdown": "countdown_type",
    "blue_bg": "blue_bg",
    "blue_fg": "blue_fg",
    "red_bg": "red_bg",
    "red_fg": "red_fg",
}


_INSERT_MATCH = (
    "INSERT INTO pss_matches (session_id, source_ip, source_port, tournament_id, "
    "tournament_day_id, status, loaded_at, updated_at) VALUES (?, ?, ?, ?, ?, 'loaded', ?, ?)"
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


@dataclass
class RoundState:
    id: int
    number: int
    blue: int | None = None
    red: int | None = None
    winner: int | None = None
    ended_at: str | None = None
    dirty: bool = False


@dataclass
class MatchState:
    id: int
    config: dict = field(default_factory=dict)  # pss_matches column -> value
    match_config: str | None = None
    status: MatchStatus = "loaded"
    round_no: int | None = None
    round_id: int | None = None  # id of round ``round_no`` (kept with it, read per event)
    # Free for the caller to cache what it derives from (round_no, clock): set back to None
    # whenever either changes.
    placement_cache: object = None
    clock: str | None = None
    scores: dict = field(default_factory=lambda: {1: 0, 2: 0})
    warnings: dict = field(default_factory=lambda: {1: 0, 2: 0})
    winner: str | None = None
    winner_name: str | None = None
    win_classification: str | None = None
    ended_at: str | None = None
    rounds: dict[int, RoundState] = field(default_factory=dict)
    dirty: bool = True

    def copy(self) -> MatchState:
        """An independent copy (cheaper than ``copy.deepcopy``: it runs once per batch)."""
        clone = copy.copy(self)
        clone.config = dict(self.config)
        clone.scores = dict(self.scores)
        clone.warnings = dict(self.warnings)
        clone.rounds = {number: copy.copy(rnd) for number, rnd in self.rounds.items()}
        return clone


class MatchTracker:
    """Current match per source; ``place`` is called for every event, in arrival order."""

    def __init__(self) -> None:
        self._current: dict[tuple, MatchState] = {}
        # Matches a new one replaced before their last changes were written (a FightLoaded in
        # the same batch as the end of the previous match): written by the next dirty_rows.
        self._retired: list[MatchState] = []

    def snapshot(self) -> tuple:
        """A copy of the state, to ``restore`` when the batch's transaction rolls back."""
        return ({key: state.copy() for key, state in self._current.items()},
                [state.copy() for state in self._retired])

    def restore(self, snapshot: tuple) -> None:
        self._current, self._retired = snapshot

    def place(self, cur, key: tuple, at: str, event, kind: str, context: tuple,
              event_id: int, linked: list) -> MatchState | None:
        """Apply ``event`` (a parsed model of type ``kind``, received at ``at`` from the source
        ``key`` = (session_id, source_ip, source_port), to be stored under ``event_id``) to that
        source's match.

        Returns the match state after the event (where it goes: ``id``, ``round_id``,
        ``round_no``, ``clock``), or None when the source has no match yet. Rows that name the
        event (score and warning history) are appended to ``linked`` as ``(sql, params)``, to
        be run once the event row exists; ``sql`` is ``INSERT_SCORES`` or ``INSERT_WARNINGS``.
        """
        state = self._current.get(key)
        if starts_match(kind, state is not None):
            state = self._new_match(cur, key, at, context)
        if state is None:
            return None
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(cur, state, event, at, event_id, linked)
        return state

    def dirty_rows(self, now: str) -> tuple[list[tuple], list[tuple]]:
        """The rows of the matches and rounds changed since the last call, for
        ``UPDATE_MATCHES`` and ``UPDATE_ROUNDS``; they count as written from now on."""
        matches: list[tuple] = []
        rounds: list[tuple] = []
        retired, self._retired = self._retired, []
        for state in (*retired, *self._current.values()):
            for rnd in state.rounds.values():
                if rnd.dirty:
                    rounds.append((rnd.id, rnd.blue, rnd.red, rnd.winner, rnd.ended_at))
                    rnd.dirty = False
            if state.dirty:
                c = state.config
                matches.append((
                    state.id, c.get("match_number"), c.get("phase"), c.get("category"),
                    c.get("division"), c.get("internal_match_id"), c.get("rounds_total"),
                    c.get("round_duration_s"), c.get("countdown_type"), c.get("blue_bg"),
                    c.get("blue_fg"), c.get("red_bg"), c.get("red_fg"), state.match_config,
                    state.status, state.round_no, state.clock, state.scores[1],
                    state.scores[2], state.warnings[1], state.warnings[2], state.winner,
                    state.winner_name, state.win_classification, state.ended_at, now,
                ))
                state.dirty = False
        return matches, rounds

    def _new_match(self, cur, key: tuple, at: str, context: tuple) -> MatchState:
        session_id, source_ip, source_port = key
        cur.execute(_INSERT_MATCH, (session_id, source_ip, source_port, context[0], context[1],
                                    at, at))
        state = MatchState(id=cur.lastrowid)
        previous = self._current.get(key)
        if previous is not None and (previous.dirty or any(
                rnd.dirty for rnd in previous.rounds.values())):
            self._retired.append(previous)
        self._current[key] = state
        return state


# -- event handlers: (cursor, match state, event, received_at, event_id, linked rows list) ------


def _open_round(cur, state: MatchState, number: int, at: str) -> RoundState:
    rnd = state.rounds.get(number)
    if rnd is None:
        row = cur.execute(
            "INSERT INTO pss_rounds (match_id, round_number, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (match_id, round_number) DO UPDATE SET round_number = excluded.round_number "
            "RETURNING id",
            (state.id, number, at),
        ).fetchone()
        rnd = state.rounds[number] = RoundState(id=row[0], number=number)
    return rnd


def _on_round(cur, state, event, at, event_id, linked):
    number = event.round
    previous = state.rounds.get(state.round_no)
    if previous is not None and previous.number != number and previous.ended_at is None:
        previous.ended_at = at
        previous.dirty = True
    state.round_id = _open_round(cur, state, number, at).id
    state.round_no = number
    state.placement_cache = None
    state.dirty = True


def _on_match_config(cur, state, event, at, event_id, linked):
    for name, column in _MATCH_CONFIG_COLUMNS.items():
        value = getattr(event, name)
        if value is not None:
            state.config[column] = value
    state.match_config = event.model_dump_json(exclude={"type", "code", "raw", "athlete"})
    state.dirty = True


def _on_athletes(cur, state, event, at, event_id, linked):
    for position, side in SIDE_PAIRS:
        athlete = getattr(event, side)
        if athlete is None:
            continue
        row = cur.execute(
            "INSERT INTO pss_athletes (short_name, long_name, country_code, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (short_name, long_name, country_code) "
            "DO UPDATE SET short_name = excluded.short_name RETURNING id",
            (athlete.short, athlete.long or "", athlete.country or "", at),
        ).fetchone()
        cur.execute(
            "INSERT INTO pss_match_athletes (match_id, athlete_position, athlete_id) "
            "VALUES (?, ?, ?) ON CONFLICT (match_id, athlete_position) "
            "DO UPDATE SET athlete_id = excluded.athlete_id",
            (state.id, position, row[0]),
        )


def _on_clock(cur, state, event, at, event_id, linked):
    clock = event.clock
    if clock != state.clock:
        state.clock = clock
        state.placement_cache = None
    state.status = next_status(state.status, event)
    state.dirty = True


def _on_ready(cur, state, event, at, event_id, linked):
    status = next_status(state.status, event)
    if status != state.status:
        state.status = status
        state.dirty = True


def _on_points(cur, state, event, at, event_id, linked):
    if event.athlete not in (1, 2):
        return
    current = state.rounds.get(state.round_no)
    linked.append((INSERT_SCORES, (event_id, state.id, current.id if current else None,
                                   event.athlete, event.point_type, event.point_type,
                                   state.clock, at)))


def _on_warnings(cur, state, event, at, event_id, linked):
    current = state.rounds.get(state.round_no)
    for position, side in SIDE_PAIRS:
        count = getattr(event, side)
        if count is None or count == state.warnings[position]:
            continue
        state.warnings[position] = count
        state.dirty = True
        linked.append((INSERT_WARNINGS, (event_id, state.id, current.id if current else None,
                                         position, count, state.clock, at)))


def _on_current_scores(cur, state, event, at, event_id, linked):
    for position, side in SIDE_PAIRS:
        value = getattr(event, side)
        if value is not None and value != state.scores[position]:
            state.scores[position] = value
            state.dirty = True


def _on_round_scores(cur, state, event, at, event_id, linked):
    for position, side in SIDE_PAIRS:
        for number, points in getattr(event, side).items():
            rnd = state.rounds.get(number)
            if rnd is None:
                if not points:
                    continue
                rnd = _open_round(cur, state, number, at)
            if getattr(rnd, side) != points:
                setattr(rnd, side, points)
                rnd.dirty = True


def _on_round_winners(cur, state, event, at, event_id, linked):
    for number, winner in event.winners.items():
        rnd = state.rounds.get(number)
        if rnd is None:
            if not winner:
                continue
            rnd = _open_round(cur, state, number, at)
        if rnd.winner != winner:
            rnd.winner = winner
            if winner and rnd.ended_at is None:
                rnd.ended_at = at
            rnd.dirty = True


def _finish(state: MatchState, event, at: str) -> None:
    state.status = next_status(state.status, event)  # finished
    if state.ended_at is None:
        state.ended_at = at
    current = state.rounds.get(state.round_no)
    if current is not None and current.ended_at is None:
        current.ended_at = at
        current.dirty = True
    state.dirty = True


def _on_winner_side(cur, state, event, at, event_id, linked):
    state.winner = event.side.lower()
    _finish(state, event, at)


def _on_winner(cur, state, event, at, event_id, linked):
    state.winner_name = event.name
    state.win_classification = event.classification
    _finish(state, event, at)


_HANDLERS = {
    "round": _on_round,
    "match_config": _on_match_config,
    "athletes": _on_athletes,
    "clock": _on_clock,
    "fight_ready": _on_ready,
    "points": _on_points,
    "warnings": _on_warnings,
    "current_scores": _on_current_scores,
    "scores": _on_round_scores,
    "winner_rounds": _on_round_winners,
    "winner_side": _on_winner_side,
    "winner": _on_winner,
}

