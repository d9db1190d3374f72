"""A short human line per PSS event for the UI (``Blue scores 3 (head)``), as a table.

``DESCRIPTIONS`` maps each event ``type`` to a function of the event; a new message type adds
one row. Kept out of the parser: it is presentation, shared by the live view and the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .protocol import POINT_NAMES, PssEvent
from .sides import ATHLETE_SIDES

_CHALLENGE_STATES = {None: "requested", 1: "accepted", 0: "rejected", -1: "cancelled"}
_CHALLENGE_RESULTS = {None: "", 1: ", won", 0: ", lost"}
_ROUND_WINNERS = {0: "none", **{n: s for n, s in ATHLETE_SIDES.items() if n}}
_HARDWARE_TEST = {0: "Hardware test closed", 1: "Hardware test open"}


def _who(athlete: int | None) -> str:
    return ATHLETE_SIDES.get(athlete, "unidentified").capitalize()


def _pair(blue: object, red: object) -> str:
    return ", ".join(f"{side} {value}" for side, value in (("blue", blue), ("red", red))
                     if value is not None)


def _with_action(text: str, action: str | None) -> str:
    return f"{text} ({action})" if action else text


def _clocked(label: str, e: Any) -> str:
    """``Injury time blue 1:00 (show)``: a label, the clock when there is one, the action."""
    return _with_action(f"{label} {e.clock or ''}".rstrip(), e.action)


def _rounds(per_round: dict[int, int]) -> str | None:
    return "/".join(str(per_round[r]) for r in sorted(per_round)) if per_round else None


def _athlete(a: Any) -> str:
    return f"{a.short} ({a.country})" if a.country else a.short


def _unknown(e: Any) -> str:
    if e.kind == "code":
        return f"Unknown message {e.code}"
    text = e.raw if len(e.raw) <= 60 else e.raw[:57] + "..."
    return f"Status: {text}" if e.kind == "status" else f"Unrecognised text: {text}"


DESCRIPTIONS: dict[str, Callable[[Any], str]] = {
    "points": lambda e: f"{_who(e.athlete)} scores {e.point_type} ({POINT_NAMES[e.point_type]})",
    "hit_level": lambda e: f"{_who(e.athlete)} hit level {e.level}",
    "warnings": lambda e: f"Warnings: {_pair(e.blue, e.red)}",
    "injury": lambda e: _clocked(f"Injury time {_who(e.athlete).lower()}", e),
    "challenge": lambda e: (f"{_who(e.athlete)} challenge {_CHALLENGE_STATES[e.accepted]}"
                            f"{_CHALLENGE_RESULTS[e.won]}"),
    "break": lambda e: _clocked("Break", e),
    "winner_rounds": lambda e: "Round winners: " + ", ".join(
        f"R{r} {_ROUND_WINNERS[w]}" for r, w in sorted(e.winners.items())),
    "winner": lambda e: f"Winner {e.name}" + (f" ({e.classification})"
                                               if e.classification else ""),
    "winner_side": lambda e: f"Winner: {e.side.lower()}",
    "athletes": lambda e: "Athletes: " + " vs ".join(
        _athlete(a) for a in (e.blue, e.red) if a is not None),
    "match_config": lambda e: f"Match {e.number}" + (
        f": {details}" if (details := ", ".join(x for x in (e.phase, e.category) if x)) else ""),
    "scores": lambda e: "Round scores: " + _pair(_rounds(e.blue), _rounds(e.red)),
    "current_scores": lambda e: f"Score {_pair(e.blue, e.red)}",
    "avt": lambda e: f"AVT {e.value}",
    "clock": lambda e: _with_action(f"Clock {e.clock}", e.action),
    "round": lambda e: f"Round {e.round}",
    "fight_loaded": lambda e: "Match loaded",
    "fight_ready": lambda e: "Match ready",
    "supremacy": lambda e: f"Supremacy {e.value}",
    "time_out": lambda e: _clocked(f"Time-out {_who(e.athlete).lower()}", e),
    "referees": lambda e: "Officials: " + ", ".join(f"{o.role} {o.name}" for o in e.officials),
    "hardware_test": lambda e: _HARDWARE_TEST.get(e.value, f"Hardware test hit {e.value}"),
    "hello": lambda e: "Sender connected",
    "bye": lambda e: "Sender closing",
    "scoreboard_setting": lambda e: f"Scoreboard {e.setting.replace('_', ' ')} {e.value}",
    "unknown": _unknown,
    "invalid": lambda e: f"Invalid: {e.error}",
}
"""Event ``type`` -> its description; ``tests/udp/test_protocol.py`` checks every type has one."""


def describe(event: PssEvent) -> str:
    """A short human description of an event for the UI, e.g. ``Blue scores 3 (head)``."""
    render = DESCRIPTIONS.get(event.type)
    return render(event) if render is not None else event.type
