"""The match on one court, rebuilt from the PSS events as they arrive, and the one rule for when a
match starts and ends (``starts_match``, ``next_status``), which the live scoreboard (this
``MatchState``) and the database's match tracking both follow.

A match starts with ``pre;FightLoaded``; the athletes (``at1``...) or the configuration (``mch``)
start one too when there is none yet (the app started in the middle of a match, or the
FightLoaded datagram was lost). Its status goes ``loaded`` -> ``ready`` (``rdy;FightReady``) ->
``running`` (the match clock starts) -> ``finished`` (the winner, ``win`` or ``wmh``).

``MatchState.apply`` is called on the dispatch thread for every event, in arrival order, and says
whether anything a viewer can see changed (so the plugin pushes a snapshot only then).
``snapshot()`` is plain JSON-ready data. ``pss_fight_loaded`` (``pre;FightLoaded``) starts a new
match: everything is reset.

Composite messages (scores, warnings, round winners) are full snapshots in the real sender, but
each part is merged on its own, so a message carrying one side only (``wg2;3``) updates that side.

When the match clock starts (``clk;..;start``) a break, injury time or time-out still shown is
over: that heals a lost ``brk;0:00;stopEnd`` or ``ij1;..;hide``.

Hit levels: ``hl1``/``hl2`` arrive just before the ``pt1``/``pt2`` they belong to. The state keeps
each athlete's hit levels of the last ``HIT_WINDOW_NS`` (by ``received_ns``) and attaches them to
the next points event of that athlete (``snapshot()["last_points"]``); once attached they are
consumed, so a later punch does not inherit the levels of an earlier kick.

Every list in the state has a bound that no feed value can move: per-round lists are at most
``MAX_ROUNDS`` long (round numbers outside 1..``MAX_ROUNDS`` are ignored, even if an event
built without validation carries one), and ``challenges`` keeps the newest ``MAX_CHALLENGES``.
"""

from __future__ import annotations

from collections import deque
from typing import Literal, NamedTuple

from restrike.host.timeutil import now_iso

from .protocol import MAX_ROUNDS, Clock, PssEvent
from .sides import SIDES, athlete_side

MatchStatus = Literal["loaded", "ready", "running", "finished"]

STARTS_A_MATCH_WHEN_NONE = frozenset(("athletes", "match_config"))
"""Event types that start a match when the court has none (besides ``fight_loaded``)."""

ENDS_A_MATCH = frozenset(("winner_side", "winner"))
"""Event types that finish the current match."""

STARTS_A_MATCH = STARTS_A_MATCH_WHEN_NONE | {"fight_loaded"}
"""Every event type that can start a match (``starts_match`` says when)."""

STATUS_EVENTS = ENDS_A_MATCH | {"fight_ready", "clock"}
"""The only event types ``next_status`` can change the status for (so others skip it)."""

SUMMARY_EVENTS = STARTS_A_MATCH | STATUS_EVENTS | {
    "round", "current_scores", "warnings", "scores", "winner_rounds"}
"""The only event types that can change ``MatchState.summary()``: a consumer that reads
nothing else (the database's match tracking) applies only these."""


def starts_match(kind: str, in_match: bool) -> bool:
    """Whether an event of type ``kind`` begins a new match (``in_match``: one is current)."""
    return kind == "fight_loaded" or (not in_match and kind in STARTS_A_MATCH_WHEN_NONE)


def next_status(status: MatchStatus, event: PssEvent) -> MatchStatus:
    """The status of the current match after ``event`` (a new match starts ``loaded``)."""
    kind = event.type
    if kind in ENDS_A_MATCH:
        return "finished"
    if kind == "fight_ready" and status == "loaded":
        return "ready"
    if isinstance(event, Clock) and event.action == "start" and status in ("loaded", "ready"):
        return "running"
    return status


class MatchSummary(NamedTuple):
    """What a consumer that records matches needs (``MatchState.summary()``): plain values
    and copies, cheap enough to take once per change."""

    status: MatchStatus | None
    round: int | None
    clock: str | None  # the clock's text
    match: dict  # the ``match`` section of ``snapshot()`` (the ``mch`` configuration)
    scores: tuple[int, int]  # current (blue, red)
    warnings: tuple[int, int]  # (blue, red)
    round_scores: tuple[dict, dict]  # ({round: points} blue, red), rounds 1..MAX_ROUNDS
    round_winners: dict  # {round: athlete 1/2, 0 none}
    winner: dict  # {side, name, classification}


HIT_WINDOW_NS = 5_000_000_000
"""How far back (ns of ``received_ns``) a hit level still belongs to the next points event."""

_HIT_BUFFER = 32  # hit levels kept per athlete; older ones are outside any sane window anyway

MAX_CHALLENGES = 64
"""Challenges kept in the state of one match (a real match has a handful); older ones go."""

_CHALLENGE_STATE = {None: "requested", 1: "accepted", 0: "rejected", -1: "cancelled"}
_RUNNING_ACTIONS = {"start": True, "stop": False, "stopEnd": False}


def _empty() -> dict:
    """The state of a court before any match is loaded."""
    return {
        "loaded": False,
        "status": None,
        "ready": False,
        "connected": None,
        "match": {
            "number": None, "phase": None, "category": None, "division": None,
            "match_id": None, "rounds": None, "round_duration": None, "countdown": None,
            "colors": {"blue_bg": None, "blue_fg": None, "red_bg": None, "red_fg": None},
            "body_level": None, "head_level": None, "extra": [],
        },
        "athletes": {"blue": None, "red": None},
        "round": None,
        "clock": {"text": None, "seconds": None, "running": False, "action": None},
        "current_scores": {"blue": 0, "red": 0},
        "round_scores": {"blue": {}, "red": {}},
        "warnings": {"blue": 0, "red": 0},
        "hit_levels": {"blue": None, "red": None},
        "last_points": {"blue": None, "red": None},
        "injury": None,
        "break": None,
        "time_outs": {"blue": None, "red": None},
        "challenges": [],
        "round_winners": {},
        "winner": {"side": None, "name": None, "classification": None},
        "supremacy": None,
        "referees": [],
        "hardware_test": None,
        "avt": None,
    }


class MatchState:
    """The current match on one court. Not thread-safe: one dispatch thread applies events;
    readers get copies through ``snapshot()``."""

    def __init__(self) -> None:
        self._s = _empty()
        self._hits: dict[int, deque[tuple[int, int]]] = {1: deque(maxlen=_HIT_BUFFER),
                                                         2: deque(maxlen=_HIT_BUFFER)}
        self._updated_at: str | None = None
        self._updated_ns: int | None = None

    # ------------------------------------------------------------------------------------ API

    def apply(self, event: PssEvent, received_ns: int, received_at: str | None = None) -> bool:
        """Fold one event into the state; True when the visible state changed.

        ``received_ns`` orders hit levels against points (only differences matter);
        ``received_at`` (``now_iso()`` format) becomes ``updated_at``, now when not given.
        """
        kind = event.type
        plan = _PLANS.get(kind)
        if plan is None:
            return False  # unknown/invalid/avt-like messages change nothing a viewer sees
        handler, may_start, may_change_status = plan
        s = self._s
        changed = False
        if may_start and starts_match(kind, s["loaded"]):
            if kind == "fight_loaded":
                self.reset()
                s = self._s
            s["loaded"], s["status"], changed = True, "loaded", True
        changed |= handler(self, event, received_ns)
        if may_change_status and s["loaded"]:
            status = next_status(s["status"], event)
            if status != s["status"]:
                s["status"], changed = status, True
        if changed:
            self._updated_at = received_at or now_iso()
            self._updated_ns = received_ns
        return changed

    def reset(self) -> None:
        """Forget the match (as ``pre;FightLoaded`` does)."""
        self._s = _empty()
        for hits in self._hits.values():
            hits.clear()

    def copy(self) -> MatchState:
        """An independent copy, cheap enough to take for every court before each database
        batch (``copy.deepcopy`` costs 30 times more). It copies exactly what the handlers
        change in place: the top level, the sections ``_put`` writes into, the challenges;
        every other value is replaced, never changed, by the handlers (keep it so)."""
        clone = MatchState.__new__(MatchState)
        s = dict(self._s)
        for key in _SECTIONS_CHANGED_IN_PLACE:
            s[key] = dict(s[key])
        s["round_scores"] = {side: dict(v) for side, v in s["round_scores"].items()}
        s["challenges"] = [dict(c) for c in s["challenges"]]
        clone._s = s
        clone._hits = {athlete: deque(hits, maxlen=_HIT_BUFFER)
                       for athlete, hits in self._hits.items()}
        clone._updated_at = self._updated_at
        clone._updated_ns = self._updated_ns
        return clone

    @property
    def loaded(self) -> bool:
        """A match is current (started by ``starts_match``)."""
        return self._s["loaded"]

    @property
    def round(self) -> int | None:
        """The current round number (``rnd``), None before the first."""
        return self._s["round"]

    @property
    def clock(self) -> str | None:
        """The match clock's text (``clk``), None before the first."""
        return self._s["clock"]["text"]

    @property
    def where(self) -> tuple[int | None, str | None]:
        """Where in the match an event now falls: (round, clock text)."""
        s = self._s
        return s["round"], s["clock"]["text"]

    @property
    def warnings(self) -> tuple[int, int]:
        """The warning counts (blue, red)."""
        w = self._s["warnings"]
        return w["blue"], w["red"]

    def summary(self) -> MatchSummary:
        """The match's status, configuration, scores, warnings, per-round results and winner
        (what the database's match rows hold), without the copy of ``snapshot()``."""
        s = self._s
        scores, warnings = s["current_scores"], s["warnings"]
        return MatchSummary(
            s["status"], s["round"], s["clock"]["text"], dict(s["match"]),
            (scores["blue"], scores["red"]), (warnings["blue"], warnings["red"]),
            (dict(s["round_scores"]["blue"]), dict(s["round_scores"]["red"])),
            dict(s["round_winners"]), dict(s["winner"]))

    def recent_hit_levels(self, athlete: int, now_ns: int) -> list[int]:
        """Hit levels of athlete 1/2 received in the last ``HIT_WINDOW_NS`` before ``now_ns``."""
        hits = self._hits.get(athlete)
        if not hits:
            return []
        return [level for at, level in hits if 0 <= now_ns - at <= HIT_WINDOW_NS]

    def snapshot(self) -> dict:
        """A JSON-serialisable copy of the state.

        Keys: ``loaded`` (a match is current), ``status`` (``next_status``: loaded, ready,
        running, finished; None before a match), ``ready``, ``connected`` (hel/bye), ``match``
        (number, phase, category, division, match_id, rounds, round_duration, countdown,
        colors{blue_bg..red_fg}, body_level, head_level, extra), ``athletes`` {blue, red:
        {short, long, country} | None},
        ``round``, ``clock`` {text, seconds, running, action}, ``current_scores`` {blue, red},
        ``round_scores`` {blue, red: [round 1, round 2, ...]}, ``warnings`` {blue, red},
        ``hit_levels`` {blue, red: last level}, ``last_points`` {blue, red: {point_type, points,
        hit_levels, received_ns} | None}, ``injury`` {side, athlete, text, seconds, action,
        visible} | None, ``break`` {text, seconds, action, running, active} | None,
        ``time_outs`` {blue, red}, ``challenges`` [{side, athlete, state, won, round}],
        ``round_winners`` [athlete per round, 0 none], ``winner`` {side, name, classification},
        ``supremacy``, ``referees`` [{role, name, country}], ``hardware_test``, ``avt``,
        ``updated_at`` (ISO, last visible change), ``updated_ns``.
        """
        s = self._s
        # the configured rounds are validated by the parser; min() keeps the bound even for an
        # event that skipped validation, as this runs under the live feed's lock
        rounds = _round_count(s["match"]["rounds"])
        n_scores = max([rounds, *s["round_scores"]["blue"], *s["round_scores"]["red"]])
        n_winners = max([rounds, *s["round_winners"]])
        return {
            "loaded": s["loaded"],
            "status": s["status"],
            "ready": s["ready"],
            "connected": s["connected"],
            "match": {**s["match"], "colors": dict(s["match"]["colors"]),
                      "extra": list(s["match"]["extra"])},
            "athletes": {side: (dict(a) if a else None) for side, a in s["athletes"].items()},
            "round": s["round"],
            "clock": dict(s["clock"]),
            "current_scores": dict(s["current_scores"]),
            # list index 0 is round 1; a round without a score message counts 0
            "round_scores": {side: [s["round_scores"][side].get(r, 0)
                                    for r in range(1, n_scores + 1)]
                             for side in ("blue", "red")},
            "warnings": dict(s["warnings"]),
            "hit_levels": dict(s["hit_levels"]),
            "last_points": {side: (dict(p, hit_levels=list(p["hit_levels"])) if p else None)
                            for side, p in s["last_points"].items()},
            "injury": dict(s["injury"]) if s["injury"] else None,
            "break": dict(s["break"]) if s["break"] else None,
            "time_outs": {side: (dict(t) if t else None) for side, t in s["time_outs"].items()},
            "challenges": [dict(c) for c in s["challenges"]],
            "round_winners": [s["round_winners"].get(r, 0) for r in range(1, n_winners + 1)],
            "winner": dict(s["winner"]),
            "supremacy": s["supremacy"],
            "referees": [dict(o) for o in s["referees"]],
            "hardware_test": s["hardware_test"],
            "avt": s["avt"],
            "updated_at": self._updated_at,
            "updated_ns": self._updated_ns,
        }

    # ------------------------------------------------------------------------------- handlers

    def _put(self, section: dict, key: str, value) -> bool:
        if section.get(key) == value and key in section:
            return False
        section[key] = value
        return True

    def _fight_loaded(self, e, ns) -> bool:
        return True  # ``apply`` started the new match (``starts_match``)

    def _fight_ready(self, e, ns) -> bool:
        return self._put(self._s, "ready", True)

    def _hello(self, e, ns) -> bool:
        return self._put(self._s, "connected", True)

    def _bye(self, e, ns) -> bool:
        return self._put(self._s, "connected", False)

    def _athletes(self, e, ns) -> bool:
        changed = False
        for side in ("blue", "red"):
            a = getattr(e, side)
            if a is not None:
                changed |= self._put(self._s["athletes"], side,
                                     {"short": a.short, "long": a.long, "country": a.country})
        return changed

    def _match_config(self, e, ns) -> bool:
        m = self._s["match"]
        new = {
            "number": e.number, "phase": e.phase, "category": e.category,
            "division": e.division, "match_id": e.match_id, "rounds": e.rounds,
            "round_duration": e.round_duration, "countdown": e.countdown,
            "colors": {"blue_bg": e.blue_bg, "blue_fg": e.blue_fg,
                       "red_bg": e.red_bg, "red_fg": e.red_fg},
            "body_level": e.body_level, "head_level": e.head_level, "extra": list(e.extra),
        }
        if new == m:
            return False
        self._s["match"] = new
        return True

    def _points(self, e, ns) -> bool:
        side = SIDES[e.athlete]
        levels = self.recent_hit_levels(e.athlete, ns)
        self._hits[e.athlete].clear()
        self._s["last_points"][side] = {"point_type": e.point_type, "points": e.point_type,
                                        "hit_levels": levels, "received_ns": ns}
        return True  # a new score is an event to show even when the numbers look the same

    def _hit_level(self, e, ns) -> bool:
        self._hits[e.athlete].append((ns, e.level))
        self._s["hit_levels"][SIDES[e.athlete]] = e.level
        return True

    def _warnings(self, e, ns) -> bool:
        w = self._s["warnings"]
        changed = False
        if e.blue is not None:
            changed |= self._put(w, "blue", e.blue)
        if e.red is not None:
            changed |= self._put(w, "red", e.red)
        return changed

    def _current_scores(self, e, ns) -> bool:
        c = self._s["current_scores"]
        changed = False
        if e.blue is not None:
            changed |= self._put(c, "blue", e.blue)
        if e.red is not None:
            changed |= self._put(c, "red", e.red)
        return changed

    def _scores(self, e, ns) -> bool:
        changed = False
        for side in ("blue", "red"):
            per_round = self._s["round_scores"][side]
            for rnd, value in getattr(e, side).items():
                if _is_round(rnd):
                    changed |= self._put(per_round, rnd, value)
        return changed

    def _winner_rounds(self, e, ns) -> bool:
        changed = False
        for rnd, athlete in e.winners.items():
            if _is_round(rnd):
                changed |= self._put(self._s["round_winners"], rnd, athlete)
        return changed

    def _clock(self, e, ns) -> bool:
        old = self._s["clock"]
        running = _RUNNING_ACTIONS.get(e.action, old["running"])  # a tick or corr keeps it
        new = {"text": e.clock, "seconds": e.seconds, "running": running, "action": e.action}
        changed = new != old
        self._s["clock"] = new
        if e.action == "start":
            changed |= self._fighting_resumed()
        return changed

    def _fighting_resumed(self) -> bool:
        """The match clock starts: any break, injury time or time-out is over, even when the
        message that ended it (``stopEnd``, ``hide``) was lost on the way."""
        s = self._s
        changed = False
        if s["break"] and s["break"]["active"]:
            s["break"] = dict(s["break"], active=False, running=False)
            changed = True
        if s["injury"] and s["injury"]["visible"]:
            s["injury"] = dict(s["injury"], visible=False)
            changed = True
        for side, time_out in s["time_outs"].items():
            if time_out is not None:
                s["time_outs"][side] = None
                changed = True
        return changed

    def _round(self, e, ns) -> bool:
        return self._put(self._s, "round", e.round)

    def _break(self, e, ns) -> bool:
        # brk ticks mean the break runs; stop pauses it; stopEnd ends it
        new = {"text": e.clock, "seconds": e.seconds, "action": e.action,
               "running": e.action not in ("stop", "stopEnd"), "active": e.action != "stopEnd"}
        return self._put(self._s, "break", new)

    def _injury(self, e, ns) -> bool:
        old = self._s["injury"] or {}
        visible = {"show": True, "hide": False, "reset": False}.get(
            e.action, old.get("visible", True))
        new = {"side": athlete_side(e.athlete), "athlete": e.athlete, "text": e.clock,
               "seconds": e.seconds, "action": e.action, "visible": visible}
        return self._put(self._s, "injury", new)

    def _time_out(self, e, ns) -> bool:
        if e.action in ("hide", "reset", "stop", "stopEnd"):
            return self._put(self._s["time_outs"], SIDES[e.athlete], None)
        new = {"text": e.clock, "seconds": e.seconds, "action": e.action}
        return self._put(self._s["time_outs"], SIDES[e.athlete], new)

    def _challenge(self, e, ns) -> bool:
        challenges = self._s["challenges"]
        side = athlete_side(e.athlete)
        entry = {"side": side, "athlete": e.athlete, "state": _CHALLENGE_STATE[e.accepted],
                 "won": None if e.won is None else bool(e.won), "round": self._s["round"]}
        # The answer to a pending request of the same side completes it instead of adding one.
        for c in reversed(challenges):
            if c["athlete"] == e.athlete:
                if c["state"] == "requested" and entry["state"] != "requested":
                    c.update(entry)
                    return True
                if c == entry:
                    return False
                break
        challenges.append(entry)
        if len(challenges) > MAX_CHALLENGES:
            del challenges[:-MAX_CHALLENGES]
        return True

    def _winner_side(self, e, ns) -> bool:
        return self._put(self._s["winner"], "side", e.side)

    def _winner(self, e, ns) -> bool:
        w = self._s["winner"]
        changed = self._put(w, "name", e.name)
        return self._put(w, "classification", e.classification) or changed

    def _supremacy(self, e, ns) -> bool:
        return self._put(self._s, "supremacy", e.value)

    def _referees(self, e, ns) -> bool:
        officials = [{"role": o.role, "name": o.name, "country": o.country} for o in e.officials]
        return self._put(self._s, "referees", officials)

    def _hardware_test(self, e, ns) -> bool:
        return self._put(self._s, "hardware_test", e.value)

    def _avt(self, e, ns) -> bool:
        return self._put(self._s, "avt", e.value)


def _is_round(rnd) -> bool:
    """A round number that may key per-round data (it becomes a list index in snapshots)."""
    return type(rnd) is int and 1 <= rnd <= MAX_ROUNDS


def _round_count(rounds) -> int:
    """The configured number of rounds as a list length: 0..MAX_ROUNDS."""
    return min(rounds, MAX_ROUNDS) if type(rounds) is int and rounds > 0 else 0




# The sections of the state that handlers change in place (``_put(section, ...)``), so that
# ``copy()`` copies them; round_scores (two levels) and challenges are copied apart.
_SECTIONS_CHANGED_IN_PLACE = ("athletes", "current_scores", "warnings", "hit_levels",
                              "last_points", "time_outs", "round_winners", "winner")

_APPLY = {
    "fight_loaded": MatchState._fight_loaded,
    "fight_ready": MatchState._fight_ready,
    "hello": MatchState._hello,
    "bye": MatchState._bye,
    "athletes": MatchState._athletes,
    "match_config": MatchState._match_config,
    "points": MatchState._points,
    "hit_level": MatchState._hit_level,
    "warnings": MatchState._warnings,
    "current_scores": MatchState._current_scores,
    "scores": MatchState._scores,
    "winner_rounds": MatchState._winner_rounds,
    "clock": MatchState._clock,
    "round": MatchState._round,
    "break": MatchState._break,
    "injury": MatchState._injury,
    "time_out": MatchState._time_out,
    "challenge": MatchState._challenge,
    "winner_side": MatchState._winner_side,
    "winner": MatchState._winner,
    "supremacy": MatchState._supremacy,
    "referees": MatchState._referees,
    "hardware_test": MatchState._hardware_test,
    "avt": MatchState._avt,
}

# What ``apply`` does for an event of each type, decided here once rather than per event (it runs
# for every event of every court, most of them clock ticks): (handler, may start a match
# (``starts_match``), may change the status (``next_status``)). A type without a handler changes
# nothing, so every type that can start a match has one.
_PLANS = {kind: (handler, kind in STARTS_A_MATCH, kind in STATUS_EVENTS)
          for kind, handler in _APPLY.items()}
if not STARTS_A_MATCH <= _PLANS.keys():
    raise RuntimeError("every event type that can start a match needs a handler in _APPLY")
