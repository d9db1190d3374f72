"""The wire's athlete numbers and the sides they stand for: 1 blue, 2 red (0 the referee).

The one place that spells the mapping; everything else looks it up here.
"""

from __future__ import annotations

from typing import Literal

Side = Literal["blue", "red"]

SIDES: dict[int, Side] = {1: "blue", 2: "red"}
"""Athlete number -> side, for the two athletes."""

SIDE_PAIRS: tuple[tuple[int, Side], ...] = tuple(SIDES.items())
"""``((1, "blue"), (2, "red"))``: the athletes in wire order, for loops over both sides."""

SIDE_NUMBERS: dict[str, int] = {side: number for number, side in SIDES.items()}
"""Side -> athlete number (``"blue"`` -> 1)."""

ATHLETE_SIDES: dict[int | None, str] = {number: side for number, side in SIDE_PAIRS}
"""Every athlete number the wire uses (0: the referee or unidentified) -> its name. Keyed by
``int | None`` so a missing athlete looks up as absent."""
ATHLETE_SIDES[0] = "referee"


def athlete_side(athlete: int | None) -> str | None:
    """1 -> 'blue', 2 -> 'red', 0 -> 'referee', anything else -> None."""
    return ATHLETE_SIDES.get(athlete)


def side_of_key(key: str) -> Side:
    """The side a per-athlete key names by its last digit: ``wg1``/``sc1``/``at1`` -> blue."""
    return SIDES[int(key[-1])]
