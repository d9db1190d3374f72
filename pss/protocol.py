"""Parser of the WT PSS real-time UDP feed: bytes in, pydantic events out. Pure, no I/O.

``parse_datagram`` never raises and always returns at least one event, so every datagram can be
stored: what is not understood becomes an ``unknown`` event, what is understood but wrong becomes
an ``invalid`` event whose ``error`` names the field and the reason.

Framing rules (see ``shared/protocol.md``): a datagram holds one message per line (``\\r\\n``,
``\\n`` or ``\\r``); empty lines are framing, not messages. One trailing ``;`` is optional. A glued
``hl1;50hl2;40`` (or ``hl1;50;hl2;40``) is two ``hit_level`` events. Composite messages
(``wg``, ``sc``, ``s11..``, ``wrd``, ``at1/at2``, ``ref``) are read by their key tokens, so any part
may come alone or in another order.

Decisions the protocol leaves open:
- a truncated ``mch`` is a partial ``match_config``: the fields that did not arrive are ``None`` and
  ``complete`` is ``False`` (the sender's own config message is never thrown away);
- ``raw`` is the message text without its line terminator (CR/LF), trailing ``;`` kept;
- actions of ``clk``/``brk``/``ij``/``to`` other than the documented ones are kept as text;
- an unknown first token that looks like a code (``rst;``) is ``unknown`` with ``kind="code"``; a
  first token with spaces (``Udp Port 6000 connected;``) is ``kind="status"``; anything else is
  ``kind="text"`` with ``code=""``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Literal, NamedTuple, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .sides import SIDE_NUMBERS, side_of_key

__all__ = [
    "MAX_ROUNDS",
    "MAX_ROUND_DURATION",
    "POINT_NAMES",
    "Athlete",
    "Official",
    "PssEvent",
    "EVENT_ADAPTER",
    "EVENT_MODELS",
    "DEFAULT_LIMITS",
    "Limits",
    "parse_datagram",
    "parse_cache_stats",
    "parse_text",
]

POINT_NAMES = {1: "punch", 2: "body", 3: "head", 4: "technical body", 5: "technical head"}
SCOREBOARD_SETTINGS = {"inlb": "brightness", "insl": "on_off", "inth": "time_ms"}

MAX_ROUNDS = 99
"""Highest round number or round count accepted from the feed. A match has 3 rounds and the
golden point round is 4; the bound is generous but keeps a feed value from sizing lists."""

MAX_ROUND_DURATION = 3600
"""Longest round duration (seconds) accepted in an ``mch`` message."""


class Limits(NamedTuple):
    """How much of a datagram is parsed; what lies beyond is stored raw as an ``invalid`` event
    whose ``limit`` names the bound (the UDP settings carry them, see ``settings.UdpSettings``).

    The protocol's largest message, ``mch``, has 16 fields; the longest field is a name or a
    category of a few dozen characters; a datagram holds one message, rarely a handful (resync
    replies). The defaults are four times that or more, so a real feed never meets them, while a
    hostile one can make no message bigger than 64 fields of 256 characters, nor more than 64
    events of one datagram.
    """

    max_messages_per_datagram: int = 64
    max_fields_per_message: int = 64
    max_field_length: int = 256


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------------------- models

# a round number as the key of per-round data (s1n, rdN): bounded, as it sizes the state's lists
_RoundKey = Annotated[int, Field(ge=1, le=MAX_ROUNDS)]


AthleteNumber = Literal[0, 1, 2]
"""The wire's athlete number: 1 blue, 2 red, 0 referee or unidentified."""


class _Event(BaseModel):
    """Fields every event has. ``athlete``: 1 blue, 2 red, 0 referee/unidentified, None n/a."""

    model_config = ConfigDict(frozen=True)

    code: str = ""
    raw: str
    athlete: AthleteNumber | None = None


class Athlete(BaseModel):
    """One athlete of ``at1``/``at2``: short name, long name, IOC country (missing ones None)."""

    model_config = ConfigDict(frozen=True)

    short: str
    long: str | None = None
    country: str | None = None


class Official(BaseModel):
    """A referee (``role="ref"``) or judge (``role="ju1"``..) of a ``ref`` message."""

    model_config = ConfigDict(frozen=True)

    role: str
    name: str
    country: str | None = None


class Points(_Event):
    """``pt1``/``pt2``: points scored; ``point_type`` 1..5 is also the number of points."""

    type: Literal["points"] = "points"
    point_type: int = Field(ge=1, le=5)


class HitLevel(_Event):
    """``hl1``/``hl2``: sensor hit level 1..100."""

    type: Literal["hit_level"] = "hit_level"
    level: int = Field(ge=1, le=100)


class Warnings(_Event):
    """``wg1;a;wg2;b``: gam-jeom counts; a side that was not in the message is None."""

    type: Literal["warnings"] = "warnings"
    blue: int | None = Field(default=None, ge=0, le=10)
    red: int | None = Field(default=None, ge=0, le=10)


class Injury(_Event):
    """``ij0``/``ij1``/``ij2``: injury clock, optional action (show/hide/reset)."""

    type: Literal["injury"] = "injury"
    clock: str | None = None
    seconds: int | None = Field(default=None, ge=0)
    action: str | None = None


class Challenge(_Event):
    """``ch0..2``: video replay request. ``accepted``: None requested, 1 yes, 0 no, -1 cancelled."""

    type: Literal["challenge"] = "challenge"
    accepted: Literal[-1, 0, 1] | None = None
    won: Literal[0, 1] | None = None


class Break(_Event):
    """``brk``: break clock between rounds, optional action (stop/stopEnd)."""

    type: Literal["break"] = "break"
    clock: str | None = None
    seconds: int | None = Field(default=None, ge=0)
    action: str | None = None


class WinnerRounds(_Event):
    """``wrd;rd1;x;rd2;y;..``: winner athlete (0 none) per round number present."""

    type: Literal["winner_rounds"] = "winner_rounds"
    winners: dict[_RoundKey, AthleteNumber]


class Winner(_Event):
    """``wmh``: the winner's name and an optional classification such as ``2-1 PTF``."""

    type: Literal["winner"] = "winner"
    name: str
    classification: str | None = None


class WinnerSide(_Event):
    """``win``: the winning side, ``BLUE`` or ``RED`` (``athlete`` is 1 or 2)."""

    type: Literal["winner_side"] = "winner_side"
    side: Literal["BLUE", "RED"]


class Athletes(_Event):
    """``at1;short;long;country;at2;...``: the athletes of the loaded match."""

    type: Literal["athletes"] = "athletes"
    blue: Athlete | None = None
    red: Athlete | None = None


class MatchConfig(_Event):
    """``mch``: match configuration. Missing fields are None; ``complete`` says all 15 arrived.

    ``doc_rounds`` is the field the document calls round count (empty in the real sender);
    ``body_level``/``head_level`` are the two trailing fields (count-up/format in the document,
    sensor levels in the real sender), kept as text. Fields past the 15th go to ``extra``.
    """

    type: Literal["match_config"] = "match_config"
    number: str | None = None
    phase: str | None = None
    category: str | None = None
    doc_rounds: str | None = None
    blue_bg: str | None = None
    blue_fg: str | None = None
    red_bg: str | None = None
    red_fg: str | None = None
    match_id: str | None = None
    division: str | None = None
    rounds: int | None = Field(default=None, ge=0, le=MAX_ROUNDS)
    round_duration: int | None = Field(default=None, ge=0, le=MAX_ROUND_DURATION)
    countdown: str | None = None
    body_level: str | None = None
    head_level: str | None = None
    extra: list[str] = Field(default_factory=list)
    complete: bool = False


class Scores(_Event):
    """``s11;a;s21;b;..``: per-round scores, round number -> points, for the keys present."""

    type: Literal["scores"] = "scores"
    blue: dict[_RoundKey, int] = Field(default_factory=dict)
    red: dict[_RoundKey, int] = Field(default_factory=dict)


class CurrentScores(_Event):
    """``sc1;a;sc2;b``: scores of the round being fought; a missing side is None."""

    type: Literal["current_scores"] = "current_scores"
    blue: int | None = Field(default=None, ge=0)
    red: int | None = Field(default=None, ge=0)


class Avt(_Event):
    """``avt;n`` (sent at match load)."""

    type: Literal["avt"] = "avt"
    value: int


class Clock(_Event):
    """``clk;m:ss[;action]``: match clock; action start/stop/corr/stopEnd or None (a tick)."""

    type: Literal["clock"] = "clock"
    clock: str
    seconds: int = Field(ge=0)
    action: str | None = None


class Round(_Event):
    """``rnd;n``: the current round (4 is the golden point round)."""

    type: Literal["round"] = "round"
    round: int = Field(ge=0, le=MAX_ROUNDS)


class FightLoaded(_Event):
    """``pre;FightLoaded``: a match was loaded (consumers reset their match state)."""

    type: Literal["fight_loaded"] = "fight_loaded"
    text: str | None = None


class FightReady(_Event):
    """``rdy;FightReady``: the loaded match is ready."""

    type: Literal["fight_ready"] = "fight_ready"
    text: str | None = None


class Supremacy(_Event):
    """``sup;n``: supremacy / superiority decision value."""

    type: Literal["supremacy"] = "supremacy"
    value: int


class TimeOut(_Event):
    """``to1``/``to2``: PARA time-out, optional clock and action."""

    type: Literal["time_out"] = "time_out"
    clock: str | None = None
    seconds: int | None = Field(default=None, ge=0)
    action: str | None = None


class Referees(_Event):
    """``ref;name;country;ju1;name;country;..``: referee and judges, in message order."""

    type: Literal["referees"] = "referees"
    officials: list[Official] = Field(default_factory=list)


class HardwareTest(_Event):
    """``hwt;n``: 0 closed, 1 open, 2..5 test hits."""

    type: Literal["hardware_test"] = "hardware_test"
    value: int = Field(ge=0)


class Hello(_Event):
    """``hel;``: the sender connected."""

    type: Literal["hello"] = "hello"


class Bye(_Event):
    """``bye;``: the sender is closing."""

    type: Literal["bye"] = "bye"


class ScoreboardSetting(_Event):
    """``inlb``/``insl``/``inth``: LED scoreboard setting; ``value`` is the text before ``:``."""

    type: Literal["scoreboard_setting"] = "scoreboard_setting"
    setting: str
    value: str
    number: int | None = None


class Unknown(_Event):
    """A message this parser does not know; kept whole. ``kind``: code, status or text."""

    type: Literal["unknown"] = "unknown"
    kind: Literal["code", "status", "text"] = "code"
    values: list[str] = Field(default_factory=list)


class Invalid(_Event):
    """A known message with a bad or missing field; ``error`` says which and why. ``limit``
    names the ``Limits`` field a message or datagram broke (it is then kept raw, unparsed)."""

    type: Literal["invalid"] = "invalid"
    error: str
    limit: str | None = None


PssEvent = Annotated[
    Points | HitLevel | Warnings | Injury | Challenge | Break | WinnerRounds | Winner | WinnerSide
    | Athletes | MatchConfig | Scores | CurrentScores | Avt | Clock | Round | FightLoaded
    | FightReady | Supremacy | TimeOut | Referees | HardwareTest | Hello | Bye | ScoreboardSetting
    | Unknown | Invalid,
    Field(discriminator="type"),
]
"""Any parsed message; ``event.type`` tells which model it is."""

EVENT_ADAPTER: TypeAdapter = TypeAdapter(PssEvent)
"""Validates/serialises any event, e.g. ``EVENT_ADAPTER.validate_json(stored_json)``."""

EVENT_MODELS: dict[str, type[_Event]] = {
    m.model_fields["type"].default: m for m in get_args(get_args(PssEvent)[0])
}
"""Event model by ``type``."""


# ------------------------------------------------------------------------------- field helpers


class _Bad(Exception):
    """A field is wrong; the message becomes an ``invalid`` event with this text."""


def _int(text: str, what: str, lo: int | None = None, hi: int | None = None) -> int:
    t = text.strip()
    # isdigit alone would accept non-ASCII digits and int() would accept '1_0' or '+1'
    body = t[1:] if t[:1] == "-" else t
    if not (body.isascii() and body.isdigit()):
        raise _Bad(f"{what} must be an integer{_range(lo, hi)}, got {text!r}")
    value = int(t)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Bad(f"{what} must be {lo}..{hi}, got {text!r}" if hi is not None
                   else f"{what} must be >= {lo}, got {text!r}")
    return value


def _count(text: str, key: str, noun: str, lo: int = 0, hi: int | None = None) -> int:
    """Fast path of ``_int`` for the non-negative numbers of composites; the field name
    (``f"{key} {noun}"``) is only formatted when there is an error to report."""
    if text.isdigit() and text.isascii():
        value = int(text)
        if hi is None or value <= hi:
            return value
    return _int(text, f"{key} {noun}", lo, hi)


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" {lo}..{hi}"
    if lo is not None:
        return f" >= {lo}"
    return ""


def _clock(text: str, what: str = "clock") -> tuple[str, int]:
    """``m:ss`` or ``ss`` -> (text as sent, seconds)."""
    t = text.strip()
    minutes, sep, secs = t.partition(":")
    if not sep:
        minutes, secs = "0", minutes
    if not (minutes.isascii() and minutes.isdigit() and secs.isascii() and secs.isdigit()
            and len(secs) <= 2 and len(minutes) <= 3):
        raise _Bad(f"{what} must be m:ss or ss, got {text!r}")
    s = int(secs)
    if sep and s > 59:
        raise _Bad(f"{what} seconds must be 0..59, got {text!r}")
    return t, int(minutes) * 60 + s


def _opt(tokens: list[str], i: int) -> str | None:
    """Token i stripped, or None when absent or empty."""
    if i < len(tokens):
        t = tokens[i].strip()
        if t:
            return t
    return None


def _need(tokens: list[str], i: int, what: str) -> str:
    value = _opt(tokens, i)
    if value is None:
        raise _Bad(f"{what} is missing")
    return value


def _keyed(tokens: list[str], keys: frozenset[str]) -> list[tuple[str, str]]:
    """(key, value) pairs of a composite message with one value per key, in message order."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(tokens)
    while i < n:
        key = tokens[i].strip()
        if key in keys:
            if i + 1 >= n or tokens[i + 1].strip() in keys or not tokens[i + 1].strip():
                raise _Bad(f"value of {key} is missing")
            pairs.append((key, tokens[i + 1]))
            i += 2
        elif not key:
            i += 1  # a doubled ';' carries nothing
        else:
            raise _Bad(f"unexpected token {key!r}")
    return pairs


def _groups(tokens: list[str], is_key: Callable[[str], bool]) -> list[tuple[str, list[str]]]:
    """(key, values up to the next key) groups of a composite with variable-size parts."""
    groups: list[tuple[str, list[str]]] = []
    for tok in tokens:
        key = tok.strip()
        if is_key(key):
            groups.append((key, []))
        elif groups:
            groups[-1][1].append(tok)
        elif key:
            raise _Bad(f"unexpected token {key!r}")
    return groups


# ------------------------------------------------------------------------------------ handlers
# Each handler gets (code, tokens, raw): tokens[0] is the code token, the trailing ';' is gone.

_ATHLETE_NUMBERS: dict[int, AthleteNumber] = {0: 0, 1: 1, 2: 2}


def _athlete(code: str) -> AthleteNumber:
    """The athlete of a single-athlete code by its third character: ``pt1`` -> 1."""
    return _ATHLETE_NUMBERS[int(code[2])]


_SIDE_ATHLETES: dict[str, AthleteNumber] = {
    side: _ATHLETE_NUMBERS[number] for side, number in SIDE_NUMBERS.items()}
_WINNER_SIDES: dict[str, Literal["BLUE", "RED"]] = {"BLUE": "BLUE", "RED": "RED"}
_ACCEPTED: dict[int, Literal[-1, 0, 1]] = {-1: -1, 0: 0, 1: 1}
_WON: dict[int, Literal[0, 1]] = {0: 0, 1: 1}


class _SideCounts(TypedDict, total=False):
    """The sides a composite of counts (``wg``, ``sc``) carried; an absent side stays unset."""

    blue: int
    red: int


class _SideAthletes(TypedDict, total=False):
    """The athletes an ``at1``/``at2`` message carried; an absent side stays unset."""

    blue: Athlete
    red: Athlete


def _points(code: str, tokens: list[str], raw: str) -> Points:
    v = _need(tokens, 1, "point type")
    pt = _int(v, "point type", 1, 5)
    return Points(code=code, raw=raw, athlete=_athlete(code), point_type=pt)


def _hit_level(code: str, tokens: list[str], raw: str) -> HitLevel:
    v = _need(tokens, 1, "hit level")
    return HitLevel(code=code, raw=raw, athlete=_athlete(code), level=_int(v, "hit level", 1, 100))


_WG_KEYS = frozenset(("wg1", "wg2"))


def _warnings(code: str, tokens: list[str], raw: str) -> Warnings:
    sides: _SideCounts = {}
    for key, value in _keyed(tokens, _WG_KEYS):
        sides[side_of_key(key)] = _count(value, key, "warning count", 0, 10)
    return Warnings(code=code, raw=raw, athlete=_one_side(sides), **sides)


def _one_side(sides: Mapping[str, object]) -> AthleteNumber | None:
    """The athlete of a composite that carries only one side, else None."""
    if len(sides) == 1:
        return _SIDE_ATHLETES[next(iter(sides))]
    return None


def _clock_action(tokens: list[str], what: str) -> tuple[str | None, int | None, str | None]:
    """(clock text, seconds, action) of an optional clock and action (``ij``, ``brk``, ``to``)."""
    text = _opt(tokens, 1)
    if text is None:
        return None, None, _opt(tokens, 2)
    clock, seconds = _clock(text, what)
    return clock, seconds, _opt(tokens, 2)


def _injury(code: str, tokens: list[str], raw: str) -> Injury:
    clock, seconds, action = _clock_action(tokens, "injury clock")
    return Injury(code=code, raw=raw, athlete=_athlete(code), clock=clock, seconds=seconds,
                  action=action)


def _challenge(code: str, tokens: list[str], raw: str) -> Challenge:
    accepted = _opt(tokens, 1)
    won = _opt(tokens, 2)
    return Challenge(
        code=code, raw=raw, athlete=_athlete(code),
        accepted=None if accepted is None else _ACCEPTED[_int(accepted, "accepted flag", -1, 1)],
        won=None if won is None else _WON[_int(won, "won flag", 0, 1)],
    )


def _break(code: str, tokens: list[str], raw: str) -> Break:
    clock, seconds, action = _clock_action(tokens, "break clock")
    return Break(code=code, raw=raw, clock=clock, seconds=seconds, action=action)


_RD_KEYS = frozenset(f"rd{i}" for i in range(1, 10))


def _winner_rounds(code: str, tokens: list[str], raw: str) -> WinnerRounds:
    winners: dict[int, AthleteNumber] = {}
    for key, value in _keyed(tokens[1:], _RD_KEYS):
        number = _count(value, key, "winner", 0, 2)
        winners[int(key[2])] = _ATHLETE_NUMBERS[number]
    if not winners:
        raise _Bad("round winners (rd1..) are missing")
    return WinnerRounds(code=code, raw=raw, winners=winners)


def _winner(code: str, tokens: list[str], raw: str) -> Winner:
    # A ';' inside the name cannot be told from a separator: the classification is the last
    # field, everything between the code and it is the name (nothing is cut off).
    if len(tokens) > 3:
        name, classification = ";".join(tokens[1:-1]), _opt(tokens, len(tokens) - 1)
    else:
        name, classification = (tokens[1] if len(tokens) > 1 else ""), _opt(tokens, 2)
    if not name.strip():
        raise _Bad("winner name is missing")
    return Winner(code=code, raw=raw, name=name, classification=classification)


def _winner_side(code: str, tokens: list[str], raw: str) -> WinnerSide:
    side = _WINNER_SIDES.get(_need(tokens, 1, "side").upper())
    if side is None:
        raise _Bad(f"side must be BLUE or RED, got {tokens[1]!r}")
    return WinnerSide(code=code, raw=raw, athlete=_SIDE_ATHLETES[side.lower()], side=side)


_AT_KEYS = frozenset(("at1", "at2"))


def _athletes(code: str, tokens: list[str], raw: str) -> Athletes:
    sides: _SideAthletes = {}
    for key, values in _groups(tokens, _AT_KEYS.__contains__):
        if not values or not values[0].strip():
            raise _Bad(f"short name of {key} is missing")
        athlete = Athlete(short=values[0],
                          long=values[1] if len(values) > 1 and values[1] else None,
                          country=_opt(values, 2))
        sides[side_of_key(key)] = athlete
    return Athletes(code=code, raw=raw, athlete=_one_side(sides), **sides)


_MCH_TEXT = ("number", "phase", "category", "doc_rounds", "blue_bg", "blue_fg", "red_bg",
             "red_fg", "match_id", "division")
# (field, upper bound): both size things downstream (round columns, clocks), so a garbage
# value becomes an invalid event here instead of a million-entry list in the live state
_MCH_INT = (("rounds", MAX_ROUNDS), ("round_duration", MAX_ROUND_DURATION))
_MCH_TAIL = ("countdown", "body_level", "head_level")
_MCH_COUNT = len(_MCH_TEXT) + len(_MCH_INT) + len(_MCH_TAIL)


def _match_config(code: str, tokens: list[str], raw: str) -> MatchConfig:
    values = tokens[1:]
    fields: dict = {}
    for i, name in enumerate(_MCH_TEXT):
        if i < len(values) and values[i] != "":
            fields[name] = values[i]
    for j, (name, hi) in enumerate(_MCH_INT, start=len(_MCH_TEXT)):
        v = _opt(values, j)
        if v is not None:
            fields[name] = _int(v, name.replace("_", " "), 0, hi)
    for j, name in enumerate(_MCH_TAIL, start=len(_MCH_TEXT) + len(_MCH_INT)):
        if j < len(values) and values[j] != "":
            fields[name] = values[j]
    if not fields.get("number", "").strip():
        raise _Bad("match number is missing")
    return MatchConfig(code=code, raw=raw, extra=values[_MCH_COUNT:],
                       complete=len(values) >= _MCH_COUNT, **fields)


_S_KEYS = frozenset(f"s{a}{r}" for a in (1, 2) for r in range(1, 10))


def _scores(code: str, tokens: list[str], raw: str) -> Scores:
    blue: dict[int, int] = {}
    red: dict[int, int] = {}
    for key, value in _keyed(tokens, _S_KEYS):
        # inlined fast path: this snapshot follows every score, six numbers each time
        n = int(value) if value.isdigit() and value.isascii() else _int(value, f"{key} score", 0)
        (blue if key[1] == "1" else red)[ord(key[2]) - 48] = n
    athlete: AthleteNumber | None = None if (blue and red) else (1 if blue else 2)
    return Scores(code=code, raw=raw, athlete=athlete, blue=blue, red=red)


_SC_KEYS = frozenset(("sc1", "sc2"))


def _current_scores(code: str, tokens: list[str], raw: str) -> CurrentScores:
    sides: _SideCounts = {}
    for key, value in _keyed(tokens, _SC_KEYS):
        sides[side_of_key(key)] = _count(value, key, "score")
    return CurrentScores(code=code, raw=raw, athlete=_one_side(sides), **sides)


def _avt(code: str, tokens: list[str], raw: str) -> Avt:
    return Avt(code=code, raw=raw, value=_int(_need(tokens, 1, "value"), "value"))


def _clk(code: str, tokens: list[str], raw: str) -> Clock:
    clock, seconds = _clock(_need(tokens, 1, "clock"), "clock")  # a clk always has its clock
    return Clock(code=code, raw=raw, clock=clock, seconds=seconds, action=_opt(tokens, 2))


def _round(code: str, tokens: list[str], raw: str) -> Round:
    return Round(code=code, raw=raw,
                 round=_int(_need(tokens, 1, "round"), "round", 0, MAX_ROUNDS))


def _fight_loaded(code: str, tokens: list[str], raw: str) -> FightLoaded:
    return FightLoaded(code=code, raw=raw, text=_opt(tokens, 1))


def _fight_ready(code: str, tokens: list[str], raw: str) -> FightReady:
    return FightReady(code=code, raw=raw, text=_opt(tokens, 1))


def _supremacy(code: str, tokens: list[str], raw: str) -> Supremacy:
    return Supremacy(code=code, raw=raw, value=_int(_need(tokens, 1, "value"), "value"))


def _time_out(code: str, tokens: list[str], raw: str) -> TimeOut:
    clock, seconds, action = _clock_action(tokens, "time-out clock")
    return TimeOut(code=code, raw=raw, athlete=_athlete(code), clock=clock, seconds=seconds,
                   action=action)


def _is_official_key(key: str) -> bool:
    return key == "ref" or (len(key) == 3 and key[:2] == "ju" and key[2].isdigit())


def _referees(code: str, tokens: list[str], raw: str) -> Referees:
    officials = []
    for role, values in _groups(tokens, _is_official_key):
        name = values[0] if values else ""
        if not name.strip():
            raise _Bad(f"name of {role} is missing")
        officials.append(Official(role=role, name=name, country=_opt(values, 1)))
    return Referees(code=code, raw=raw, officials=officials)


def _hardware_test(code: str, tokens: list[str], raw: str) -> HardwareTest:
    return HardwareTest(code=code, raw=raw, value=_int(_need(tokens, 1, "value"), "value", 0))


def _hello(code: str, tokens: list[str], raw: str) -> Hello:
    return Hello(code=code, raw=raw)


def _bye(code: str, tokens: list[str], raw: str) -> Bye:
    return Bye(code=code, raw=raw)


def _scoreboard(code: str, tokens: list[str], raw: str) -> ScoreboardSetting:
    value = _need(tokens, 1, "value").rstrip(":").strip()
    number = int(value) if value.isascii() and value.isdigit() else None
    return ScoreboardSetting(code=code, raw=raw, setting=SCOREBOARD_SETTINGS[code], value=value,
                             number=number)


_HANDLERS: dict[str, Callable[[str, list[str], str], PssEvent]] = {
    "pt1": _points, "pt2": _points,
    "hl1": _hit_level, "hl2": _hit_level,
    "wg1": _warnings, "wg2": _warnings,
    "ij0": _injury, "ij1": _injury, "ij2": _injury,
    "ch0": _challenge, "ch1": _challenge, "ch2": _challenge,
    "brk": _break,
    "wrd": _winner_rounds,
    "wmh": _winner,
    "win": _winner_side,
    "at1": _athletes, "at2": _athletes,
    "mch": _match_config,
    **{key: _scores for key in _S_KEYS},
    "sc1": _current_scores, "sc2": _current_scores,
    "avt": _avt,
    "clk": _clk,
    "rnd": _round,
    "pre": _fight_loaded,
    "rdy": _fight_ready,
    "sup": _supremacy,
    "to1": _time_out, "to2": _time_out,
    "ref": _referees,
    "hwt": _hardware_test,
    "hel": _hello,
    "bye": _bye,
    "inlb": _scoreboard, "insl": _scoreboard, "inth": _scoreboard,
}

# Only single-athlete streams: an invalid composite (wg1;x;wg2;0) concerns no single athlete.
_CODE_ATHLETE = {c: _athlete(c) for c in _HANDLERS if c[:2] in ("pt", "hl", "ij", "ch", "to")}

_LOOKS_LIKE_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}").fullmatch
# A glued hit level: a digit directly (or after one ';') followed by the next hl/pt message.
_GLUED = re.compile(r"(?<=[0-9]);?(?=(?:hl|pt)[12];)")
_LINES = re.compile(r"\r\n|\n|\r")


# --------------------------------------------------------------------------------------- parser


class _LineCache:
    """Events of repeated message lines, bounded in bytes.

    The feed repeats itself (a clock tick per second per court, the same score lines), and an
    event is a frozen model, a pure function of its line (and of the limits): one made of
    immutable values is parsed once and shared. Only lines up to ``max_line`` characters are
    kept (real ones are a few dozen), each costed at ``_ENTRY_BYTES`` plus twice its length (the
    line and the substrings of its fields); when the next one would pass ``max_bytes`` the cache
    is emptied and ``clears`` counts it. Limits other than the cached ones empty it too.
    """

    _ENTRY_BYTES = 640  # the dict slot, the model and its __dict__, measured with tracemalloc

    def __init__(self, max_bytes: int = 2 * 1024 * 1024, max_line: int = 512):
        self.max_bytes = max_bytes
        self.max_line = max_line
        self._events: dict[str, PssEvent] = {}
        self._limits: Limits = DEFAULT_LIMITS
        self._lock = threading.Lock()  # several receivers (apps) may share the module
        self.bytes = 0
        self.clears = 0
        self.too_long = 0

    def message(self, line: str, limits: Limits) -> PssEvent:
        if limits is not self._limits:
            self._use(limits)
        event = self._events.get(line)
        if event is not None:
            return event
        event = _message(line, limits)
        if len(line) > self.max_line:
            self.too_long += 1
            return event
        if not _IMMUTABLE.issuperset(map(type, event.__dict__.values())):
            return event
        size = self._ENTRY_BYTES + 2 * len(line)
        with self._lock:
            if self.bytes + size > self.max_bytes:
                self._empty()
                self.clears += 1
            if limits is self._limits:  # not changed by another receiver meanwhile
                self._events[line] = event
                self.bytes += size
        return event

    def _use(self, limits: Limits) -> None:
        with self._lock:
            if limits != self._limits:
                self._empty()
            self._limits = limits

    def _empty(self) -> None:
        self._events = {}
        self.bytes = 0

    def stats(self) -> dict:
        return {"entries": len(self._events), "bytes": self.bytes, "max_bytes": self.max_bytes,
                "max_line": self.max_line, "clears": self.clears, "too_long": self.too_long}


_IMMUTABLE = frozenset((str, int, float, bool, type(None), tuple))
_SHARED = _LineCache()


def parse_cache_stats() -> dict:
    """The repeated-line parse cache: ``entries``, ``bytes`` (estimated) of ``max_bytes``,
    ``clears`` (emptied because full), ``too_long`` (lines too long to be kept)."""
    return _SHARED.stats()


def _over_limits(line: str, limits: Limits) -> tuple[str, str] | None:
    """(limit name, error) when a message line breaks a limit, else None. Counted in C (no
    split of a hostile line into thousands of strings)."""
    fields = line.count(";") + 1 - line.endswith(";")
    if fields > limits.max_fields_per_message:
        return "max_fields_per_message", (
            f"message has {fields} fields, more than max_fields_per_message "
            f"({limits.max_fields_per_message}): stored as received, not parsed")
    longest = limits.max_field_length
    if len(line) > longest:
        size = max(map(len, line.split(";")))
        if size > longest:
            return "max_field_length", (
                f"a field is {size} characters long, more than max_field_length ({longest}): "
                f"stored as received, not parsed")
    return None


def _raw_invalid(line: str, limit: str, error: str) -> PssEvent:
    return Invalid.model_construct(code="", raw=line, athlete=None, error=error, limit=limit,
                                   type="invalid")


def _message(line: str, limits: Limits = DEFAULT_LIMITS) -> PssEvent:
    """One message line (no line terminator) -> one event. Never raises."""
    broken = _over_limits(line, limits)
    if broken is not None:
        return _raw_invalid(line, *broken)
    body = line[:-1] if line.endswith(";") else line
    tokens = body.split(";")
    code = tokens[0].strip()
    handler = _HANDLERS.get(code)
    if handler is None and code:
        lowered = code.lower()
        handler = _HANDLERS.get(lowered)
        if handler is not None:
            code = lowered
    try:
        if handler is None:
            return _unknown(code, tokens, line)
        return handler(code, tokens, line)
    except _Bad as bad:
        return _invalid(code, line, f"{code}: {bad}")
    except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the datagram
        return _invalid(code, line, f"{code}: could not be parsed ({type(exc).__name__}: {exc})")


def _unknown(code: str, tokens: list[str], line: str) -> PssEvent:
    if not code:
        if line.strip(" ;\t"):
            return Unknown(raw=line, kind="text", values=tokens)
        return Invalid(raw=line, error="message has no stream code (empty or only ';')")
    if _LOOKS_LIKE_CODE(code):
        return Unknown(code=code, raw=line, kind="code", values=tokens[1:])
    kind: Literal["status", "text"] = "status" if " " in code and code.isprintable() else "text"
    return Unknown(raw=line, kind=kind, values=tokens)


def _invalid(code: str, line: str, error: str) -> PssEvent:
    # model_construct: the fallback itself must not be able to fail validation
    return Invalid.model_construct(code=code if code in _HANDLERS else "", raw=line,
                                   athlete=_CODE_ATHLETE.get(code), error=error, type="invalid")


def parse_text(text: str, limits: Limits = DEFAULT_LIMITS) -> list[PssEvent]:
    """Parse decoded datagram text: one event per message line, at least one event, never raises.

    At most ``limits.max_messages_per_datagram`` events are parsed; the rest of the text, from
    the first message beyond the cap, becomes one more ``invalid`` event, kept raw.
    """
    try:
        return _parse_lines(text, limits)
    except Exception as exc:  # noqa: BLE001 - the receiver must always store something
        return [Invalid.model_construct(code="", raw=text, athlete=None, type="invalid",
                                        error=f"datagram could not be parsed ({exc})")]


def _parse_lines(text: str, limits: Limits) -> list[PssEvent]:
    events: list[PssEvent] = []
    message = _SHARED.message
    # Fast path for the usual single message ending in CRLF; the regex only for the rare rest.
    core = text[:-2] if text.endswith("\r\n") else text
    if "\n" not in core and "\r" not in core:
        # The feed's usual datagram: one message seen before. The cache holds only lines that
        # parse as one message (a glued line's parts are themselves unglued), so a hit is its
        # event with no glue or limit checks, which the same limits passed when it was cached.
        shared = _SHARED
        hit = shared._events.get(core) if limits is shared._limits else None
        if hit is not None:
            return [hit]
        if core:
            _add_line(events, core, limits, message)
            if len(events) > limits.max_messages_per_datagram:  # a glued line of many parts
                del events[limits.max_messages_per_datagram:]
                events.append(_over_cap(_glued_rest(core, limits.max_messages_per_datagram),
                                        limits))
    else:
        cap = limits.max_messages_per_datagram
        search = _LINES.search
        pos, end = 0, len(core)
        while pos <= end:
            found = search(core, pos)
            stop = found.start() if found else end
            if stop > pos:  # empty lines are CR/LF framing, not messages
                if len(events) >= cap:
                    events.append(_over_cap(core[pos:], limits))
                    break
                before = len(events)
                _add_line(events, core[pos:stop], limits, message)
                if len(events) > cap:  # the line's glued parts went past the cap
                    del events[cap:]
                    rest = _glued_rest(core[pos:stop], cap - before) + core[stop:]
                    events.append(_over_cap(rest, limits))
                    break
            if found is None:
                break
            pos = found.end()
    if not events:
        events.append(Invalid(raw=text, error="datagram is empty"))
    return events


def _add_line(events: list[PssEvent], line: str, limits: Limits,
              message: Callable[[str, Limits], PssEvent]) -> None:
    """The events of one message line: one, or one per part of a glued ``hl1;50hl2;40``."""
    if line[:2] in ("hl", "pt") and (line.find("hl", 2) > 0 or line.find("pt", 2) > 0):
        broken = _over_limits(line, limits)
        if broken is not None:
            events.append(_raw_invalid(line, *broken))
            return
        for part in _GLUED.split(line):
            events.append(message(part, limits))
    else:
        events.append(message(line, limits))


def _glued_rest(line: str, parts: int) -> str:
    """The text of a glued line from its part number ``parts`` (0-based) on."""
    for number, found in enumerate(_GLUED.finditer(line), start=1):
        if number == parts:
            return line[found.end():]
    return line


def _over_cap(rest: str, limits: Limits) -> PssEvent:
    cap = limits.max_messages_per_datagram
    return _raw_invalid(rest, "max_messages_per_datagram", (
        f"datagram has more than max_messages_per_datagram ({cap}) messages: the rest is "
        f"stored as received, not parsed"))


def parse_datagram(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[PssEvent]:
    """Parse one UDP datagram into events, one per message. Never raises, never returns [].

    Bytes that are not UTF-8 are decoded with U+FFFD replacements; the events are still produced.
    """
    try:
        if type(data) is bytes:
            text = data.decode("utf-8", "replace")
        else:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    except Exception as exc:  # noqa: BLE001 - not bytes-like at all
        return [Invalid.model_construct(code="", raw="", athlete=None, type="invalid",
                                        error=f"datagram is not bytes ({type(exc).__name__})")]
    return parse_text(text, limits)
