"""Read queries and the read commands (matches, events, statistics). All reads use the pool.

An event as the UI gets it (``event_rows``)::

    {id, session_id, match_id, type, event_code, athlete, round, time, timestamp, raw_data,
     is_valid, error_message, description}

``type`` is the parser's event type (``points``, ``clock``, ``unknown``, ``invalid``...),
``event_code`` the wire code (``pt1``), ``athlete`` ``blue``/``red``/``referee``/None, ``round``
and ``time`` the match's round and clock when the event arrived (None when unknown),
``timestamp`` the reception time, ``raw_data`` the message exactly as received.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from restrike.host.errors import NotFound
from restrike.host.timeutil import to_iso, to_utc
from restrike.pss.sides import ATHLETE_SIDES, athlete_side

from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService
from .pool import read_snapshot

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
"""A row id (positive)."""
SessionId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=200)]

# The event columns the UI rows are built from, in the order ``event_rows`` unpacks them. The
# match index covers exactly these (schema version 5): add one there too, or a match's event
# list goes back to one table lookup per event.
EVENT_COLUMNS = (
    "e.id, e.session_id, e.match_id, e.timestamp, e.raw_data, e.parsed_data, e.is_valid, "
    "e.error_message, e.event_type_id"
)
_TABLES = {False: "pss_events_v2", True: "pss_events_v2_archive"}
_WINNER_SIDE = {0: None, 1: "blue", 2: "red"}


class EventFilters(BaseModel):
    """What ``get_events`` and ``export_events`` select (every filter optional, all combined).

    ``event_type`` is a wire code (``pt1``) or a parser type (``points``); messages with an
    undocumented code are under ``unknown``. ``since``/``until`` bound the reception time
    (``since`` included, ``until`` excluded; ISO date-times, or dates meaning their midnight; a
    time without zone is UTC). ``cursor`` is the ``next_cursor`` of the previous page.
    ``archived`` reads the archive table instead.
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True)

    match_id: Id | None = None
    tournament_id: Id | None = None
    tournament_day_id: Id | None = None
    session_id: SessionId | None = None
    event_type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=64)] | None = None
    is_valid: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None = None
    limit: int = Field(100, ge=1, le=1000)
    order: Literal["asc", "desc"] = "desc"
    archived: bool = False

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        # The documented text form (a date alone is its midnight), parsed here because a value
        # that passes a "before" validator is no longer JSON text to pydantic, and the command
        # binder's strict mode would refuse the string; anything else stays refused.
        if not isinstance(value, str):
            return value
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO date or date-time "
                             "(2026-11-28 or 2026-11-28T12:00:00Z)") from None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without zone is UTC (as everywhere in restrike), so the two compare; one that
        # leaves the years 1..9999 in UTC is a ValueError naming the field, not an OverflowError.
        return None if value is None else to_utc(value)

    @model_validator(mode="after")
    def _time_range(self) -> EventFilters:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


def event_rows(conn: sqlite3.Connection, sql: str, params) -> list[dict]:
    """Run ``sql`` (which selects ``EVENT_COLUMNS``) and return the UI's event dicts.

    This is the hot read path (a match is ~600 events): plain tuples, no join (the few event
    types are looked up in a dict), and the rows' JSON parsed by one ``orjson.loads`` of them
    all (``json.loads`` per row was half the time of the whole query).
    """
    types = {row[0]: (row[1], row[2]) for row in conn.execute(
        "SELECT id, code, category FROM pss_event_types")}
    cur = conn.cursor()
    cur.row_factory = None
    found = cur.execute(sql, params).fetchall()
    if not found:
        return []
    # parsed_data is NULL only for an event stored bare (see writer.py)
    parsed_all = orjson.loads("[" + ",".join([row[5] or "{}" for row in found]) + "]")
    side = ATHLETE_SIDES.get
    unknown = ("unknown", "unknown")
    rows: list[dict] = []
    append = rows.append
    for (id_, session_id, match_id, timestamp, raw, _, valid, error, type_id), parsed in zip(
            found, parsed_all, strict=True):
        get = parsed.get
        code, category = types.get(type_id, unknown)
        append({
            "id": id_,
            "session_id": session_id,
            "match_id": match_id,
            "type": get("type") or category,
            "event_code": get("code") or code,
            "athlete": side(get("athlete")),
            "round": get("match_round"),
            "time": get("match_clock"),
            "timestamp": timestamp,
            "raw_data": raw,
            "is_valid": valid == 1,
            "error_message": error,
            "description": get("description") or raw,
        })
    return rows


# -- matches ----------------------------------------------------------------------------------


def match_exists(conn: sqlite3.Connection, match_id: int) -> bool:
    found = conn.execute("SELECT 1 FROM pss_matches WHERE id = ?", (match_id,)).fetchone()
    return found is not None


def events_for_match(conn: sqlite3.Connection, match_id: int) -> list[dict]:
    """Every event of a match, archived ones included, in arrival (id) order."""
    with read_snapshot(conn):  # an archival between the two reads moves nothing
        if conn.execute("SELECT 1 FROM pss_events_v2_archive WHERE match_id = ? LIMIT 1",
                        (match_id,)).fetchone() is None:
            # The usual case: the index gives the id order, no sort of the whole rows.
            sql = f"SELECT {EVENT_COLUMNS} FROM pss_events_v2 e WHERE e.match_id = ? ORDER BY e.id"
            return event_rows(conn, sql, (match_id,))
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM pss_events_v2 e WHERE e.match_id = ? "
            f"UNION ALL SELECT {EVENT_COLUMNS} FROM pss_events_v2_archive e WHERE e.match_id = ? "
            "ORDER BY 1"  # the id column of the compound select
        )
        return event_rows(conn, sql, (match_id, match_id))


_MATCH_SELECT = (
    "SELECT m.*, "
    "ab.short_name AS blue_short, ab.long_name AS blue_long, ab.country_code AS blue_country, "
    "ar.short_name AS red_short, ar.long_name AS red_long, ar.country_code AS red_country "
    "FROM pss_matches m "
    "LEFT JOIN pss_match_athletes mb ON mb.match_id = m.id AND mb.athlete_position = 1 "
    "LEFT JOIN pss_athletes ab ON ab.id = mb.athlete_id "
    "LEFT JOIN pss_match_athletes mr ON mr.match_id = m.id AND mr.athlete_position = 2 "
    "LEFT JOIN pss_athletes ar ON ar.id = mr.athlete_id "
)


def _athlete(row: sqlite3.Row, side: str) -> dict | None:
    if row[f"{side}_short"] is None:
        return None
    return {"short_name": row[f"{side}_short"], "long_name": row[f"{side}_long"] or None,
            "country_code": row[f"{side}_country"] or None}


def match_row(row: sqlite3.Row) -> dict:
    """A ``pss_matches`` row (from ``_MATCH_SELECT``) as a dict with its two athletes."""
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "source_ip": row["source_ip"],
        "source_port": row["source_port"],
        "tournament_id": row["tournament_id"],
        "tournament_day_id": row["tournament_day_id"],
        "match_number": row["match_number"],
        "phase": row["phase"],
        "category": row["category"],
        "division": row["division"],
        "internal_match_id": row["internal_match_id"],
        "rounds_total": row["rounds_total"],
        "round_duration_s": row["round_duration_s"],
        "countdown_type": row["countdown_type"],
        "colors": {"blue_bg": row["blue_bg"], "blue_fg": row["blue_fg"],
                   "red_bg": row["red_bg"], "red_fg": row["red_fg"]},
        "status": row["status"],
        "current_round": row["current_round"],
        "clock": row["clock"],
        "blue_score": row["blue_score"],
        "red_score": row["red_score"],
        "blue_warnings": row["blue_warnings"],
        "red_warnings": row["red_warnings"],
        "winner": row["winner"],
        "winner_name": row["winner_name"],
        "win_classification": row["win_classification"],
        "loaded_at": row["loaded_at"],
        "ended_at": row["ended_at"],
        "updated_at": row["updated_at"],
        "blue": _athlete(row, "blue"),
        "red": _athlete(row, "red"),
    }


def recent_matches(conn: sqlite3.Connection, limit: int) -> list[dict]:
    """The ``limit`` most recently loaded matches, newest first."""
    rows = conn.execute(_MATCH_SELECT + "ORDER BY m.id DESC LIMIT ?", (limit,))
    return [match_row(row) for row in rows]


def match_details(conn: sqlite3.Connection, match_id: int) -> dict | None:
    """A match with its rounds, score and warning history and event counts; None if unknown."""
    row = conn.execute(_MATCH_SELECT + "WHERE m.id = ?", (match_id,)).fetchone()
    if row is None:
        return None
    match = match_row(row)
    match["rounds"] = [
        {"round_number": r["round_number"], "blue_score": r["blue_score"],
         "red_score": r["red_score"], "winner": _WINNER_SIDE.get(r["winner"]),
         "started_at": r["started_at"], "ended_at": r["ended_at"]}
        for r in conn.execute(
            "SELECT * FROM pss_rounds WHERE match_id = ? ORDER BY round_number", (match_id,))
    ]
    match["scores"] = [
        {"event_id": r["event_id"], "round": r["round_number"],
         "athlete": athlete_side(r["athlete"]), "point_type": r["point_type"],
         "points": r["points"], "time": r["clock"], "timestamp": r["scored_at"]}
        for r in conn.execute(
            "SELECT s.*, r.round_number FROM pss_scores s "
            "LEFT JOIN pss_rounds r ON r.id = s.round_id WHERE s.match_id = ? ORDER BY s.id",
            (match_id,))
    ]
    match["warnings"] = [
        {"event_id": r["event_id"], "round": r["round_number"],
         "athlete": athlete_side(r["athlete"]), "warnings": r["warnings"], "time": r["clock"],
         "timestamp": r["issued_at"]}
        for r in conn.execute(
            "SELECT w.*, r.round_number FROM pss_warnings w "
            "LEFT JOIN pss_rounds r ON r.id = w.round_id WHERE w.match_id = ? ORDER BY w.id",
            (match_id,))
    ]
    total = invalid = 0
    for table in _TABLES.values():
        count, bad = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_valid = 0 THEN 1 ELSE 0 END), 0) "
            f"FROM {table} WHERE match_id = ?",
            (match_id,)).fetchone()
        total += count
        invalid += bad
    match["event_count"] = total
    match["invalid_event_count"] = invalid
    return match


# -- events -------------------------------------------------------------------------------------


def filtered_events(conn: sqlite3.Connection, filters: EventFilters, *,
                    after_id: int | None = None, up_to_id: int | None = None,
                    limit: int | None = None, order: str | None = None) -> list[dict]:
    """Events matching ``filters`` (one page). ``after_id``/``up_to_id``/``limit``/``order``
    override the filters' cursor, limit and order (``export_events`` pages in id order)."""
    order = order or filters.order
    where, params = _where(conn, filters)
    cursor = after_id if after_id is not None else (
        int(filters.cursor) if filters.cursor is not None else None)
    if cursor is not None:
        where.append("e.id > ?" if order == "asc" else "e.id < ?")
        params.append(cursor)
    if up_to_id is not None:
        where.append("e.id <= ?")
        params.append(up_to_id)
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM {_TABLES[filters.archived]} e"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY e.id {'ASC' if order == 'asc' else 'DESC'} LIMIT ?"
    )
    params.append(limit if limit is not None else filters.limit)
    return event_rows(conn, sql, params)


def _where(conn: sqlite3.Connection, filters: EventFilters) -> tuple[list[str], list]:
    where: list[str] = []
    params: list = []
    for column, value in (("match_id", filters.match_id),
                          ("tournament_id", filters.tournament_id),
                          ("tournament_day_id", filters.tournament_day_id),
                          ("session_id", filters.session_id)):
        if value is not None:
            where.append(f"e.{column} = ?")
            params.append(value)
    if filters.event_type is not None:
        # Resolved first: "= ?" on one id lets the (event_type_id, id) index give the order.
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM pss_event_types WHERE code = ? OR category = ?",
            (filters.event_type, filters.event_type))]
        if len(ids) == 1:
            where.append("e.event_type_id = ?")
        else:
            where.append(f"e.event_type_id IN ({', '.join('?' * len(ids)) or 'NULL'})")
        params += ids
    if filters.is_valid is not None:
        # A literal, not a parameter: only then can SQLite use the partial index of invalid rows.
        where.append("e.is_valid = 1" if filters.is_valid else "e.is_valid = 0")
    if filters.since is not None:
        where.append("e.timestamp >= ?")
        params.append(to_iso(filters.since))
    if filters.until is not None:
        where.append("e.timestamp < ?")
        params.append(to_iso(filters.until))
    return where, params


def max_event_id(conn: sqlite3.Connection, archived: bool = False) -> int:
    return conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {_TABLES[archived]}").fetchone()[0]


def iter_events(pool, filters: EventFilters, page: int = 1000) -> Iterator[dict]:
    """Every event matching ``filters`` (cursor, limit and order ignored), in id order, up to
    the newest one stored when the iteration starts; one pool checkout per page."""
    with pool.connection() as conn:
        last = max_event_id(conn, filters.archived)
    after = 0
    while True:
        with pool.connection() as conn:
            rows = filtered_events(conn, filters, after_id=after, up_to_id=last, limit=page,
                                   order="asc")
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["id"]


# -- sessions and statistics ----------------------------------------------------------------------


def session_row(row: sqlite3.Row) -> dict:
    return {
        "session_id": row["session_id"],
        "bind_address": row["bind_address"],
        "port": row["port"],
        "started_at": row["started_at"],
        "stopped_at": row["stopped_at"],
        "status": row["status"],
        "is_simulated": bool(row["is_simulated"]),
        "packets_received": row["packets_received"],
        "bytes_received": row["bytes_received"],
        "events_stored": row["events_stored"],
        "invalid_events": row["invalid_events"],
        "unknown_events": row["unknown_events"],
        "first_event_at": row["first_event_at"],
        "last_event_at": row["last_event_at"],
        "counters": json.loads(row["counters"]) if row["counters"] else {},
    }


def server_statistics(conn: sqlite3.Connection, recent: int = 20) -> dict:
    """Totals over every UDP session, and the ``recent`` latest sessions."""
    totals = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(is_simulated), 0), COALESCE(SUM(packets_received), 0), "
        "COALESCE(SUM(bytes_received), 0), COALESCE(SUM(events_stored), 0), "
        "COALESCE(SUM(invalid_events), 0), COALESCE(SUM(unknown_events), 0), "
        "MIN(first_event_at), MAX(last_event_at) FROM udp_server_sessions"
    ).fetchone()
    clients = conn.execute(
        "SELECT COUNT(DISTINCT source_ip) FROM udp_client_connections").fetchone()[0]
    sessions = conn.execute(
        "SELECT * FROM udp_server_sessions ORDER BY started_at DESC LIMIT ?", (recent,))
    return {
        "sessions": totals[0],
        "running_sessions": totals[1],
        "simulated_sessions": totals[2],
        "packets_received": totals[3],
        "bytes_received": totals[4],
        "events_stored": totals[5],
        "invalid_events": totals[6],
        "unknown_events": totals[7],
        "first_event_at": totals[8],
        "last_event_at": totals[9],
        "client_addresses": clients,
        "recent_sessions": [session_row(row) for row in sessions],
    }


def session_statistics(conn: sqlite3.Connection, session_id: str) -> dict | None:
    """One session: its counters, events per type, its senders, its matches; None if unknown."""
    row = conn.execute("SELECT * FROM udp_server_sessions WHERE session_id = ?",
                       (session_id,)).fetchone()
    if row is None:
        return None
    by_type = [
        {"event_code": r[0], "type": r[1], "name": r[2], "count": r[3], "invalid": r[4]}
        for r in conn.execute(
            "SELECT t.code, t.category, t.name, COUNT(*), "
            "COALESCE(SUM(CASE WHEN e.is_valid = 0 THEN 1 ELSE 0 END), 0) "
            "FROM pss_events_v2 e JOIN pss_event_types t ON t.id = e.event_type_id "
            "WHERE e.session_id = ? GROUP BY t.code, t.category, t.name ORDER BY COUNT(*) DESC",
            (session_id,))
    ]
    clients = [
        {"source_ip": r["source_ip"], "source_port": r["source_port"],
         "first_seen": r["first_seen"], "last_seen": r["last_seen"], "packets": r["packets"],
         "events": r["events"], "bytes": r["bytes"]}
        for r in conn.execute(
            "SELECT * FROM udp_client_connections WHERE session_id = ? ORDER BY first_seen",
            (session_id,))
    ]
    matches = conn.execute("SELECT COUNT(*) FROM pss_matches WHERE session_id = ?",
                           (session_id,)).fetchone()[0]
    return {"session": session_row(row), "events_by_type": by_type, "clients": clients,
            "matches": matches}


# -- commands ------------------------------------------------------------------------------------


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The read commands, bound to the running service."""

    def get_service() -> DatabaseService:
        return service_of(app)


    def pss_get_events_for_match(match_id: Id) -> list[dict]:
        """Every stored event of a match (archived ones included), oldest first.

        Raises ``not_found`` (field ``matchId``) when there is no such match.
        """
        with get_service().pool.connection() as conn:
            events = events_for_match(conn, match_id)
            if not events and not match_exists(conn, match_id):
                raise NotFound(f"there is no match {match_id}", field="matchId")
            return events

    def pss_get_match_details(match_id: Id) -> dict:
        """A match: configuration, athletes, status, scores, warnings, winner, its rounds, its
        score and warning history, and how many events it has (``event_count``)."""
        with get_service().pool.connection() as conn:
            details = match_details(conn, match_id)
        if details is None:
            raise NotFound(f"there is no match {match_id}", field="matchId")
        return details

    def pss_get_matches(limit: Annotated[int, Field(ge=1, le=500)] = 50) -> list[dict]:
        """The most recently loaded matches, newest first (for the match selector)."""
        with get_service().pool.connection() as conn:
            return recent_matches(conn, limit)

    def get_events(filters: EventFilters | None = None) -> dict:
        """Stored events matching ``filters``, one page: ``{events, next_cursor}``.

        Pass ``next_cursor`` back as ``filters.cursor`` for the next page (None: no more).
        """
        filters = filters or EventFilters()
        with get_service().pool.connection() as conn:
            rows = filtered_events(conn, filters, limit=filters.limit + 1)
        more = len(rows) > filters.limit
        rows = rows[:filters.limit]
        return {"events": rows, "next_cursor": str(rows[-1]["id"]) if more else None}

    def get_udp_server_statistics() -> dict:
        """Totals over all UDP sessions (packets, bytes, events, invalid, unknown, senders)
        and the latest sessions."""
        with get_service().pool.connection() as conn:
            return server_statistics(conn)

    def get_comprehensive_event_statistics(session_id: SessionId) -> dict:
        """One UDP session: counters, events per type, senders and number of matches.

        Raises ``not_found`` (field ``sessionId``) for an unknown session.
        """
        with get_service().pool.connection() as conn:
            stats = session_statistics(conn, session_id)
        if stats is None:
            raise NotFound(f"there is no UDP session {session_id!r}", field="sessionId")
        return stats

    return {fn.__name__: fn for fn in (
        pss_get_events_for_match, pss_get_match_details, pss_get_matches, get_events,
        get_udp_server_statistics, get_comprehensive_event_statistics,
    )}

