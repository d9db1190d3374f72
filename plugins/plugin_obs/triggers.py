"""Which PSS events trigger what: a table of data, not code (the original app's trigger plugin).

A row: ``code`` (the PSS wire code, e.g. ``ch1``), ``action`` (``save_replay`` or
``switch_scene`` with ``scene``), ``scope`` (``always``; ``tournament``: only while a tournament
context is set; ``day``: only while a tournament day is set) and ``throttle`` (``none``;
``round``/``match``: at most once per round / match of the court that sent it). A message that
carries a decision (``ch1;1;0``: the challenge was accepted, cancelled...) never triggers: only
the request does. The table lives in ``<data dir>/obs-triggers.json``.

``Throttle`` follows each court's match and round from the feed itself (``mch``/``pre`` start a
match, ``rnd`` a round) by reading plain attributes of the events, so it needs nothing from the
UDP plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from .config import write_file

TRIGGERS_FILE = "obs-triggers.json"
MAX_TRIGGERS = 100

Action = Literal["save_replay", "switch_scene"]
Scope = Literal["always", "tournament", "day"]
ThrottleKind = Literal["none", "round", "match"]


class Trigger(BaseModel):
    """One row of the trigger table."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,7}$")]
    action: Action = "save_replay"
    scene: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    scope: Scope = "always"
    throttle: ThrottleKind = "none"
    enabled: bool = True

    @model_validator(mode="after")
    def _scene_for_switch(self) -> Trigger:
        if self.action == "switch_scene" and not self.scene:
            raise ValueError("a switch_scene trigger needs the scene's name")
        return self


TriggerTable = Annotated[list[Trigger], Field(max_length=MAX_TRIGGERS)]
_TABLE = TypeAdapter(TriggerTable)

DEFAULT_TRIGGERS = (Trigger(code="ch1"), Trigger(code="ch2"))
"""A challenge of either athlete saves the replay (the referee's ``ch0`` is left to the table)."""

# The codes that start a new match or a new round of a court, for throttling.
MAX_COURTS = 256
"""Courts (sender addresses) whose match and round are followed for throttling (a court is
followed from its first message that starts a match or round or names a row's code)."""
_MATCH_CODES = frozenset({"mch", "pre"})
_ROUND_CODES = frozenset({"rnd"})
_FOLLOWED_CODES = _MATCH_CODES | _ROUND_CODES


def load(data_dir: Path) -> list[Trigger]:
    path = Path(data_dir) / TRIGGERS_FILE
    if not path.is_file():
        return list(DEFAULT_TRIGGERS)
    return _TABLE.validate_json(path.read_bytes()[:1_000_000])


def save(table: list[Trigger], data_dir: Path) -> None:
    write_file(Path(data_dir) / TRIGGERS_FILE, [t.model_dump() for t in table], 0o644)


def is_request(event) -> bool:
    """False for a message that carries a decision flag (``ch1;1;0``, ``ch2;-1``)."""
    return getattr(event, "accepted", None) is None


class Matcher:
    """Matches events against the table, with throttling per court. Used by one thread.

    Called for every event of the feed, so it first asks the one question most events answer
    "no" to: does any enabled row name this code, or does it move a court's match or round?
    """

    def __init__(self, table: list[Trigger]):
        self._where: dict[str, list[int]] = {}   # court -> [match number, round]
        self._fired: dict[tuple, tuple] = {}     # (court, row index) -> (match, round) fired
        self.set_table(table)

    def set_table(self, table: list[Trigger]) -> None:
        self.table = list(table)
        # code -> [(row index, row)] of the enabled rows, in table order
        self._rows: dict[str, list[tuple[int, Trigger]]] = {}
        for index, row in enumerate(self.table):
            if row.enabled:
                self._rows.setdefault(row.code, []).append((index, row))
        self._fired.clear()

    def match(self, ev, context: tuple) -> list[Trigger]:
        """The rows ``ev`` fires, given the tournament ``context`` (tournament id, day id)."""
        event = getattr(ev, "event", None)
        code = getattr(event, "code", "") or ""
        rows = self._rows.get(code)
        if rows is None and code not in _FOLLOWED_CODES:
            return []
        court = f"{getattr(ev, 'source_ip', '')}:{getattr(ev, 'source_port', '')}"
        where = self._where.get(court)
        if where is None:
            if len(self._where) >= MAX_COURTS:  # senders are few; forget the oldest stranger
                del self._where[next(iter(self._where))]
            where = self._where[court] = [0, 0]
        if code in _MATCH_CODES:
            where[0] += 1
            where[1] = 0
        elif code in _ROUND_CODES:
            where[1] = getattr(event, "round", None) or where[1] + 1
        if rows is None or not is_request(event):
            return []
        fired = []
        for index, row in rows:
            if row.scope == "tournament" and not context[0]:
                continue
            if row.scope == "day" and not context[1]:
                continue
            if row.throttle != "none":
                mark = (where[0],) if row.throttle == "match" else (where[0], where[1])
                if self._fired.get((court, index)) == mark:
                    continue
                self._fired[(court, index)] = mark
            fired.append(row)
        return fired
