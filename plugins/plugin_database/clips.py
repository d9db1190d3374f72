"""Instant-replay clips in the database: ``recorded_videos`` and their timelines.

The OBS plugin reaches these through ``app.extensions["database"]`` (a ``DatabaseService``,
which mixes ``ClipStore`` in) and never imports this package: ``store_clip`` writes through the
single writer, ``clips``/``clip`` read through the pool, ``delete_clip`` removes the row (the
caller removes the file).

A clip covers ``[created_at - duration_s, created_at]``: the PSS events received in that window
(of the clip's match when there is one) become its ``recorded_video_events``, each with its
offset from the clip's first frame in ms. Archival moves events to ``pss_events_v2_archive``
under the same id, so the timeline reads both tables and a clip stays whole after archival;
``cleanup_old_archive_data`` deleting an event removes its mark from the timeline, nothing else.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from restrike.host.timeutil import parse_iso, to_iso

from .transactions import transaction

if TYPE_CHECKING:
    from .pool import ConnectionPool

MAX_EVENTS_PER_CLIP = 5_000
"""Timeline marks kept per clip: a 20 s clip of one court has a few dozen; the cap only matters
for a clip of a long manual window on a busy multi-court feed (the newest are kept)."""

_EVENT_TABLES = ("pss_events_v2", "pss_events_v2_archive")

T = TypeVar("T")


def _trigger_event(conn, ref: dict | None) -> tuple[int | None, int | None]:
    """``(event id, match id)`` of the stored event that triggered the clip, if it is stored."""
    if not ref:
        return None, None
    row = conn.execute(
        "SELECT id, match_id FROM pss_events_v2 WHERE timestamp = ? AND session_id = ? "
        "AND event_sequence = ? AND raw_data = ? ORDER BY id LIMIT 1",
        (ref["received_at"], ref["session_id"], ref["seq"], ref["raw"]),
    ).fetchone()
    if row is None:
        return None, None
    return row[0], row[1] or None


def _match_in_window(conn, start: str, end: str) -> int | None:
    """A manual clip's match: the one of the newest placed event inside the window."""
    row = conn.execute(
        "SELECT match_id FROM pss_events_v2 WHERE timestamp BETWEEN ? AND ? "
        "AND match_id IS NOT NULL AND match_id != 0 ORDER BY timestamp DESC LIMIT 1",
        (start, end),
    ).fetchone()
    return row[0] if row else None


def _court_of(conn, match_id: int | None) -> str | None:
    if match_id is None:
        return None
    row = conn.execute("SELECT source_ip, source_port FROM pss_matches WHERE id = ?",
                       (match_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return f"{row[0]}:{row[1]}"


def _events_in_window(conn, match_id: int | None, start: str, end: str) -> list[tuple]:
    if match_id is not None:
        sql = ("SELECT id, timestamp FROM pss_events_v2 WHERE match_id = ? AND timestamp "
               "BETWEEN ? AND ? ORDER BY id DESC LIMIT ?")
        args: tuple = (match_id, start, end, MAX_EVENTS_PER_CLIP)
    else:
        sql = ("SELECT id, timestamp FROM pss_events_v2 WHERE timestamp BETWEEN ? AND ? "
               "ORDER BY timestamp DESC LIMIT ?")
        args = (start, end, MAX_EVENTS_PER_CLIP)
    return conn.execute(sql, args).fetchall()


def _offset_ms(start: _dt.datetime, stamp: str) -> int:
    return max(0, round((parse_iso(stamp) - start).total_seconds() * 1000))


def insert_clip(conn: sqlite3.Connection, *, path: str, instance: str, duration_s: float,
                saved_at: str, trigger: str, trigger_ref: dict | None = None,
                court: str | None = None, file_size: int | None = None) -> dict:
    """On the writer's connection: one ``recorded_videos`` row and its timeline, in one
    transaction. Returns ``{id, match_id, court, events}``."""
    end = parse_iso(saved_at)
    start = end - _dt.timedelta(seconds=duration_s)
    start_iso, end_iso = to_iso(start), to_iso(end)
    with transaction(conn):
        event_id, match_id = _trigger_event(conn, trigger_ref)
        if match_id is None:
            match_id = _match_in_window(conn, start_iso, end_iso)
        court = court or _court_of(conn, match_id)
        cur = conn.execute(
            "INSERT INTO recorded_videos (file_path, instance, match_id, court, trigger, "
            "trigger_event_id, start_time, created_at, duration_s, file_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (path, instance, match_id, court, trigger, event_id, start_iso, end_iso,
             duration_s, file_size),
        )
        video_id = cur.fetchone()[0]
        events = _events_in_window(conn, match_id, start_iso, end_iso)
        conn.executemany(
            "INSERT INTO recorded_video_events (video_id, event_id, offset_ms) VALUES (?, ?, ?)",
            [(video_id, eid, _offset_ms(start, stamp)) for eid, stamp in events],
        )
    return {"id": video_id, "match_id": match_id, "court": court, "events": len(events)}


_CLIP_SELECT = (
    "SELECT v.*, m.match_number, m.category, m.phase, "
    "ab.short_name AS blue_short, ab.long_name AS blue_long, ab.country_code AS blue_country, "
    "ar.short_name AS red_short, ar.long_name AS red_long, ar.country_code AS red_country "
    "FROM recorded_videos v "
    "LEFT JOIN pss_matches m ON m.id = v.match_id "
    "LEFT JOIN pss_match_athletes mb ON mb.match_id = m.id AND mb.athlete_position = 1 "
    "LEFT JOIN pss_athletes ab ON ab.id = mb.athlete_id "
    "LEFT JOIN pss_match_athletes mr ON mr.match_id = m.id AND mr.athlete_position = 2 "
    "LEFT JOIN pss_athletes ar ON ar.id = mr.athlete_id "
)


def _athlete(row, side: str) -> dict | None:
    if row[f"{side}_short"] is None:
        return None
    return {"short_name": row[f"{side}_short"], "long_name": row[f"{side}_long"] or None,
            "country_code": row[f"{side}_country"] or None}


def _timeline(conn, video_id: int) -> list[dict]:
    """The clip's events from the main table or, once archived, from the archive (same id)."""
    marks = []
    for table in _EVENT_TABLES:
        marks += [
            {"event_id": r[0], "offset_ms": r[1], "code": r[2], "category": r[3], "raw": r[4]}
            for r in conn.execute(
                # an f-string, not a parameter: {table} is one of _EVENT_TABLES, never input
                f"SELECT e.id, c.offset_ms, t.code, t.category, e.raw_data "
                f"FROM recorded_video_events c JOIN {table} e ON e.id = c.event_id "
                f"JOIN pss_event_types t ON t.id = e.event_type_id WHERE c.video_id = ?",
                (video_id,))
        ]
    marks.sort(key=lambda m: (m["offset_ms"], m["event_id"]))
    return marks


def clip_row(conn, row, with_events: bool = True) -> dict:
    """A ``recorded_videos`` row (from ``_CLIP_SELECT``) in the shape commands return."""
    path = row["file_path"]
    clip = {
        "id": row["id"], "path": path, "file_exists": Path(path).is_file(),
        "instance": row["instance"], "match_id": row["match_id"],
        "match_number": row["match_number"], "category": row["category"],
        "phase": row["phase"], "court": row["court"], "trigger": row["trigger"],
        "trigger_event_id": row["trigger_event_id"], "start_time": row["start_time"],
        "created_at": row["created_at"], "duration_s": row["duration_s"],
        "file_size": row["file_size"],
        "blue": _athlete(row, "blue"), "red": _athlete(row, "red"),
    }
    if with_events:
        clip["events"] = _timeline(conn, row["id"])
    return clip


def select_clips(conn, *, match_id: int | None = None, athlete: str | None = None,
                 limit: int = 50) -> list[dict]:
    """Newest first; ``athlete`` matches either athlete's short or long name or country."""
    where: list[str] = []
    args: list[object] = []
    if match_id is not None:
        where.append("v.match_id = ?")
        args.append(match_id)
    if athlete:
        like = "%" + athlete.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cols = ("ab.short_name", "ab.long_name", "ab.country_code",
                "ar.short_name", "ar.long_name", "ar.country_code")
        # LOWER on both sides: SQLite's LIKE ignores case, PostgreSQL's does not
        where.append("(" + " OR ".join(f"LOWER({c}) LIKE LOWER(?) ESCAPE '\\'" for c in cols)
                     + ")")
        args += [like] * len(cols)
    sql = _CLIP_SELECT + (("WHERE " + " AND ".join(where) + " ") if where else "")
    rows = conn.execute(sql + "ORDER BY v.id DESC LIMIT ?", (*args, limit)).fetchall()
    return [clip_row(conn, row) for row in rows]


class _Database(Protocol):
    """What ``ClipStore``'s methods use of the ``DatabaseService`` they are mixed into."""

    @property
    def pool(self) -> ConnectionPool: ...

    def write(self, fn: Callable[[Any], T]) -> T: ...


class ClipStore:
    """The clip methods of ``DatabaseService`` (``self.write`` / ``self.pool``)."""

    def store_clip(self: _Database, **clip) -> dict:
        """Store a saved clip and its timeline through the writer (arguments of
        ``insert_clip``); runs after every event queued before it is written."""
        return self.write(lambda conn: insert_clip(conn, **clip))

    def clips(self: _Database, match_id: int | None = None, athlete: str | None = None,
              limit: int = 50) -> list[dict]:
        """Stored clips, newest first, each with its timeline (``events``)."""
        with self.pool.connection() as conn:
            return select_clips(conn, match_id=match_id, athlete=athlete, limit=limit)

    def clip(self: _Database, clip_id: int) -> dict | None:
        """One clip with its timeline, or None."""
        with self.pool.connection() as conn:
            row = conn.execute(_CLIP_SELECT + "WHERE v.id = ?", (clip_id,)).fetchone()
            return None if row is None else clip_row(conn, row)

    def delete_clip(self: _Database, clip_id: int) -> str | None:
        """Delete a clip's row and timeline; returns its file path (None: no such clip)."""

        def delete(conn):
            with transaction(conn):
                row = conn.execute("SELECT file_path FROM recorded_videos WHERE id = ?",
                                   (clip_id,)).fetchone()
                if row is None:
                    return None
                conn.execute("DELETE FROM recorded_videos WHERE id = ?", (clip_id,))
                return row[0]

        return self.write(delete)
