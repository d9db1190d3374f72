"""The rules of the statistics, in one place: what a scoring action counts as, which side a
hit level or a gam-jeom belongs to, how a score is reported, what kind of win a classification
names. Pure data and functions, no I/O; the database plugin folds stored events with them.

- ``pt1;3`` is one head kick for blue: ``POINT_TYPES`` names the five point types (the type is
  also the number of points, WT rules);
- ``hl1;45`` is a hit level of athlete 1's scoring attempt (the sender sends it just before the
  ``pt1`` it belongs to, see ``pss.match``): it counts for athlete 1;
- ``wg1;a;wg2;b`` are running gam-jeom counts per match: the penalties given to a side in a
  round are the increases of its count while that round is current (a withdrawn gam-jeom is a
  negative step, so the rounds add up to the last count);
- a side's points are what the scoring system reported (the per-round ``s1n``/``s2n``
  snapshots); when a round has no snapshot, the sum of its scoring actions and of the
  opponent's gam-jeoms (each gives the other side a point) stands in;
- the win type is the last word of the ``wmh`` classification (``2-1 PTF`` -> ``PTF``).
"""

from __future__ import annotations

from .protocol import POINT_NAMES

POINT_TYPES: dict[int, str] = {n: name.replace(" ", "_") for n, name in POINT_NAMES.items()}
"""Point type -> key in ``points_by_type``: 1 punch, 2 body, 3 head, 4 technical_body,
5 technical_head."""

POINT_KEYS: tuple[str, ...] = tuple(POINT_TYPES.values())
"""The ``points_by_type`` keys in point-type order."""

HIT_LEVEL_BUCKET = 10
"""Width of a hit-level histogram bucket: 1-10, 11-20, ..., 91-100 (levels are 1..100)."""
HIT_LEVEL_BUCKETS = 10


def hit_level_bucket(level: int) -> int:
    """The histogram bucket (0..9) of a hit level 1..100."""
    return min(max(level - 1, 0) // HIT_LEVEL_BUCKET, HIT_LEVEL_BUCKETS - 1)


def win_type(classification: str | None) -> str | None:
    """The kind of win a ``wmh`` classification names: its last word, upper case (``2-1 PTF``
    -> ``PTF``, ``DSQ`` -> ``DSQ``); None when there is none."""
    if not classification:
        return None
    words = classification.split()
    return words[-1].upper()[:16] if words else None


def round_points(reported: int | None, scored: int, opponent_gam_jeom: int) -> int:
    """A side's points in a round: the scoring system's snapshot when there is one, else the
    sum of its scoring actions and of the opponent's gam-jeoms (snapshots win over sums)."""
    return reported if reported is not None else scored + opponent_gam_jeom
