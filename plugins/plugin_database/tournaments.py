"""Tournaments, their days, and the UDP tournament context stamped on incoming events.

Writes run on the writer thread (``DatabaseService.write``), each in one transaction; reads use
the pool. A tournament of ``duration_days`` N has days 1..N; with a ``start_date`` the days get
consecutive dates and the tournament an ``end_date``. Status goes pending → active → completed:
starting a day makes it and its tournament active; ending the last day completes the
tournament.

The UDP tournament context (``set_udp_tournament_context``) is what the writer stamps on every
event submitted after it is set (``tournament_id``, ``tournament_day_id``). It is saved in
``app_state`` in the same step, so after a restart (or a crash) in the middle of a tournament
day the feed is stamped as before (``restored_context``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints

from restrike.host.errors import Conflict, InvalidArgument, NotFound
from restrike.host.timeutil import now_iso

from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService
from .listen import CONTEXT, notify
from .queries import Id
from .transactions import transaction

log = logging.getLogger(__name__)

CONTEXT_KEY = "udp_tournament_context"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
CountryCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True,
                                               pattern=r"^[A-Za-z]{3}$")]
Days = Annotated[int, Field(ge=1, le=60)]


# -- reads ---------------------------------------------------------------------------------------


def _day(row: sqlite3.Row) -> dict:
    return {key: row[key] for key in ("id", "tournament_id", "day_number", "date", "status",
                                      "start_time", "end_time", "created_at", "updated_at")}


def _tournament(row: sqlite3.Row, days: list[dict]) -> dict:
    result = {key: row[key] for key in (
        "id", "name", "duration_days", "city", "country", "country_code", "start_date",
        "end_date", "status", "created_at", "updated_at")}
    result["days"] = days
    return result


def days_of(conn: sqlite3.Connection, tournament_id: int) -> list[dict]:
    return [_day(r) for r in conn.execute(
        "SELECT * FROM tournament_days WHERE tournament_id = ? ORDER BY day_number",
        (tournament_id,))]


def get(conn: sqlite3.Connection, tournament_id: int, field: str = "tournamentId") -> dict:
    """A tournament with its days; ``NotFound`` naming ``field`` if there is none."""
    row = conn.execute("SELECT * FROM tournaments WHERE id = ?", (tournament_id,)).fetchone()
    if row is None:
        raise NotFound(f"there is no tournament {tournament_id}", field=field)
    return _tournament(row, days_of(conn, tournament_id))


def get_all(conn: sqlite3.Connection) -> list[dict]:
    """Every tournament with its days, newest first."""
    days: dict[int, list] = {}
    for r in conn.execute("SELECT * FROM tournament_days ORDER BY tournament_id, day_number"):
        days.setdefault(r["tournament_id"], []).append(_day(r))
    return [_tournament(r, days.get(r["id"], []))
            for r in conn.execute("SELECT * FROM tournaments ORDER BY id DESC")]


def get_day(conn: sqlite3.Connection, day_id: int, field: str = "tournamentDayId") -> dict:
    row = conn.execute("SELECT * FROM tournament_days WHERE id = ?", (day_id,)).fetchone()
    if row is None:
        raise NotFound(f"there is no tournament day {day_id}", field=field)
    return _day(row)


def get_active(conn: sqlite3.Connection) -> dict | None:
    """The active tournament and its active day (None between days), or None."""
    day = conn.execute(
        "SELECT * FROM tournament_days WHERE status = 'active' ORDER BY start_time DESC LIMIT 1"
    ).fetchone()
    if day is not None:
        return {"tournament": get(conn, day["tournament_id"]), "day": _day(day)}
    row = conn.execute(
        "SELECT id FROM tournaments WHERE status = 'active' ORDER BY updated_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return {"tournament": get(conn, row["id"]), "day": None}


# -- writes (writer thread, one transaction each) ------------------------------------------------


def _dates(start: dt.date | None, count: int, field: str = "startDate") -> list[str | None]:
    """The ISO dates of ``count`` consecutive days from ``start`` (all None without a start).

    ``InvalidArgument`` naming ``field`` when the last day would fall after 9999-12-31 (the
    calendar ends there: the date arithmetic would overflow).
    """
    if start is None:
        return [None] * count
    if (dt.date.max - start).days < count - 1:
        raise InvalidArgument(
            f"{field}: a tournament of {count} days starting {start.isoformat()} would end after "
            f"9999-12-31", field=field)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def create(conn: sqlite3.Connection, *, name: str, duration_days: int, city: str | None,
           country: str | None, country_code: str | None, start_date: dt.date | None) -> dict:
    now = now_iso()
    dates = _dates(start_date, duration_days)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO tournaments (name, duration_days, city, country, country_code, "
            "start_date, end_date, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
            (name, duration_days, city or None, country or None, country_code, dates[0],
             dates[-1], now, now),
        )
        tournament_id = cur.fetchone()[0]
        conn.executemany(
            "INSERT INTO tournament_days (tournament_id, day_number, date, status, created_at, "
            "updated_at) VALUES (?, ?, ?, 'pending', ?, ?)",
            [(tournament_id, i + 1, dates[i], now, now) for i in range(duration_days)],
        )
    return get(conn, tournament_id)


def update(conn: sqlite3.Connection, tournament_id: int, changes: dict,
           in_use: Callable[[int], bool]) -> dict:
    """Apply the given changes (``None`` values mean unchanged; ``""`` clears a text)."""
    now = now_iso()
    with transaction(conn):
        current = get(conn, tournament_id)
        merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
        days = current["days"]
        count = merged["duration_days"]
        if count < len(days):
            started = [d["day_number"] for d in days[count:] if d["status"] != "pending"]
            if started:
                raise Conflict(f"cannot shorten the tournament to {count} days: day "
                               f"{started[0]} has already started", field="durationDays")
            if in_use(tournament_id):
                raise Conflict("cannot remove days while the tournament is the UDP tournament "
                               "context: clear the context first", field="durationDays")
            conn.execute("DELETE FROM tournament_days WHERE tournament_id = ? AND day_number > ?",
                         (tournament_id, count))
        elif count > len(days):
            conn.executemany(
                "INSERT INTO tournament_days (tournament_id, day_number, status, created_at, "
                "updated_at) VALUES (?, ?, 'pending', ?, ?)",
                [(tournament_id, n, now, now) for n in range(len(days) + 1, count + 1)],
            )
        start = merged["start_date"]
        if isinstance(start, str):
            start = dt.date.fromisoformat(start) if start else None
        # the tournament ends too late either because of its new start or its new length
        dates = _dates(start, count,
                       "startDate" if changes.get("start_date") is not None else "durationDays")
        conn.executemany(
            "UPDATE tournament_days SET date = ?, updated_at = ? "
            "WHERE tournament_id = ? AND day_number = ?",
            [(dates[i], now, tournament_id, i + 1) for i in range(count)],
        )
        conn.execute(
            "UPDATE tournaments SET name = ?, duration_days = ?, city = ?, country = ?, "
            "country_code = ?, start_date = ?, end_date = ?, updated_at = ? WHERE id = ?",
            (merged["name"], count, merged["city"] or None, merged["country"] or None,
             merged["country_code"] or None, dates[0], dates[-1], now, tournament_id),
        )
    return get(conn, tournament_id)


def delete(conn: sqlite3.Connection, tournament_id: int, in_use: Callable[[int], bool]) -> dict:
    """Delete a tournament and its days; its events and matches keep existing, unstamped."""
    with transaction(conn):
        get(conn, tournament_id)
        if in_use(tournament_id):
            raise Conflict(
                f"tournament {tournament_id} is the UDP tournament context (or events stamped "
                "with it are still waiting to be written): clear the context first",
                field="tournamentId",
            )
        conn.execute("DELETE FROM tournaments WHERE id = ?", (tournament_id,))
    return {"deleted": tournament_id}


def start_day(conn: sqlite3.Connection, day_id: int) -> dict:
    now = now_iso()
    with transaction(conn):
        day = get_day(conn, day_id)
        if day["status"] != "pending":
            raise Conflict(f"day {day['day_number']} is already {day['status']}",
                           field="tournamentDayId")
        other = conn.execute(
            "SELECT day_number FROM tournament_days WHERE tournament_id = ? AND status = 'active'",
            (day["tournament_id"],)).fetchone()
        if other is not None:
            raise Conflict(f"day {other[0]} of this tournament is still active: end it first",
                           field="tournamentDayId")
        conn.execute("UPDATE tournament_days SET status = 'active', start_time = ?, "
                     "updated_at = ? WHERE id = ?", (now, now, day_id))
        conn.execute("UPDATE tournaments SET status = 'active', updated_at = ? WHERE id = ?",
                     (now, day["tournament_id"]))
    return get_day(conn, day_id)


def end_day(conn: sqlite3.Connection, day_id: int) -> dict:
    now = now_iso()
    with transaction(conn):
        day = get_day(conn, day_id)
        if day["status"] != "active":
            raise Conflict(f"day {day['day_number']} is {day['status']}, not active",
                           field="tournamentDayId")
        conn.execute("UPDATE tournament_days SET status = 'completed', end_time = ?, "
                     "updated_at = ? WHERE id = ?", (now, now, day_id))
        left = conn.execute(
            "SELECT COUNT(*) FROM tournament_days WHERE tournament_id = ? AND status != "
            "'completed'", (day["tournament_id"],)).fetchone()[0]
        if not left:
            conn.execute("UPDATE tournaments SET status = 'completed', updated_at = ? "
                         "WHERE id = ?", (now, day["tournament_id"]))
    return get_day(conn, day_id)


# -- commands -------------------------------------------------------------------------------------


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The tournament and tournament-context commands, bound to the running service."""

    def get_service() -> DatabaseService:
        return service_of(app)


    def _write(fn):
        return get_service().write(fn)

    def _read_with(fn):
        with get_service().pool.connection() as conn:
            return fn(conn)

    def tournament_create(name: Name, duration_days: Days = 1, city: Text | None = None,
                          country: Text | None = None, country_code: CountryCode | None = None,
                          start_date: dt.date | None = None) -> dict:
        """Create a tournament with ``duration_days`` days (numbered from 1; dated from
        ``start_date`` when given). Returns it with its days."""
        return _write(lambda conn: create(
            conn, name=name, duration_days=duration_days, city=city, country=country,
            country_code=country_code, start_date=start_date))

    def tournament_get_all() -> list[dict]:
        """Every tournament with its days, newest first."""
        return _read_with(get_all)

    def tournament_get(tournament_id: Id) -> dict:
        """One tournament with its days (``not_found`` naming ``tournamentId``)."""
        return _read_with(lambda conn: get(conn, tournament_id))

    def tournament_update(tournament_id: Id, name: Name | None = None,
                          duration_days: Days | None = None, city: Text | None = None,
                          country: Text | None = None,
                          country_code: CountryCode | Annotated[str, Field(max_length=0)]
                          | None = None,
                          start_date: dt.date | None = None) -> dict:
        """Change a tournament: only the arguments given change (``""`` clears city, country
        or country code). Changing ``duration_days`` adds days or removes pending ones;
        changing ``start_date`` re-dates the days."""
        changes = {"name": name, "duration_days": duration_days, "city": city,
                   "country": country, "country_code": country_code, "start_date": start_date}
        writer = get_service().writer
        return _write(lambda conn: update(conn, tournament_id, changes,
                                          writer.tournament_in_use))

    def tournament_delete(tournament_id: Id) -> dict:
        """Delete a tournament and its days. Its events and matches stay, without tournament.
        ``conflict`` while it is the UDP tournament context."""
        writer = get_service().writer
        return _write(lambda conn: delete(conn, tournament_id, writer.tournament_in_use))

    def tournament_get_days(tournament_id: Id) -> list[dict]:
        """The days of a tournament, in order (``not_found`` naming ``tournamentId``)."""
        return _read_with(lambda conn: get(conn, tournament_id)["days"])

    def tournament_start_day(tournament_day_id: Id) -> dict:
        """Start a pending day (its tournament becomes active). ``conflict`` when the day is
        not pending or another day of the tournament is still active."""
        return _write(lambda conn: start_day(conn, tournament_day_id))

    def tournament_end_day(tournament_day_id: Id) -> dict:
        """End the active day; the tournament completes when all its days are completed."""
        return _write(lambda conn: end_day(conn, tournament_day_id))

    def tournament_get_active() -> dict | None:
        """``{tournament, day}`` of the active tournament (``day`` None between days), or
        None."""
        return _read_with(get_active)

    def set_udp_tournament_context(tournament_id: Id,
                                   tournament_day_id: Id | None = None) -> dict:
        """Stamp the events received from now on with this tournament (and day).

        ``not_found`` names ``tournamentId`` or ``tournamentDayId``; a day of another
        tournament is a ``validation_error`` on ``tournamentDayId``.
        """
        writer = get_service().writer

        def apply(conn):
            tournament = get(conn, tournament_id)
            day = None
            if tournament_day_id is not None:
                day = get_day(conn, tournament_day_id)
                if day["tournament_id"] != tournament_id:
                    raise InvalidArgument(
                        f"tournament day {tournament_day_id} belongs to tournament "
                        f"{day['tournament_id']}, not {tournament_id}", field="tournamentDayId")
            save_context(conn, tournament_id, tournament_day_id)
            writer.set_context(tournament_id, tournament_day_id)
            return _context(tournament, day)

        return _write(apply)

    def get_udp_tournament_context() -> dict:
        """``{tournament_id, tournament_day_id, tournament, day}`` stamped on incoming events
        (all None when no context is set)."""
        tournament_id, day_id = get_service().writer.context

        def read(conn):
            tournament = get(conn, tournament_id)
            day = get_day(conn, day_id) if day_id else None
            return _context(tournament, day)

        if tournament_id is None:
            return _context(None, None)
        return _read_with(read)

    def clear_udp_tournament_context() -> dict:
        """Stop stamping incoming events with a tournament."""
        writer = get_service().writer

        def apply(conn):
            save_context(conn, None, None)
            writer.set_context(None, None)
            return _context(None, None)

        return _write(apply)

    return {fn.__name__: fn for fn in (
        tournament_create, tournament_get_all, tournament_get, tournament_update,
        tournament_delete, tournament_get_days, tournament_start_day, tournament_end_day,
        tournament_get_active, set_udp_tournament_context, get_udp_tournament_context,
        clear_udp_tournament_context,
    )}


def save_context(conn: sqlite3.Connection, tournament_id: int | None,
                 tournament_day_id: int | None) -> None:
    """Remember the UDP tournament context for the next start (None, None: forget it). On
    PostgreSQL it is the tournament's context: every instance is told (``listen.CONTEXT``) and
    stamps its new events with it (``shared_context``)."""
    with transaction(conn):
        if tournament_id is None:
            conn.execute("DELETE FROM app_state WHERE key = ?", (CONTEXT_KEY,))
        else:
            conn.execute(
                "INSERT INTO app_state (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (CONTEXT_KEY, json.dumps({"tournament_id": tournament_id,
                                          "tournament_day_id": tournament_day_id}), now_iso()))
        notify(conn, CONTEXT)


def restored_context(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The context saved by ``save_context`` if its tournament (and day) still exist; else
    ``(None, None)``, and a saved one that no longer fits is forgotten with a warning."""
    row = conn.execute("SELECT value FROM app_state WHERE key = ?", (CONTEXT_KEY,)).fetchone()
    if row is None:
        return None, None
    tournament_id, day_id = _fitting(conn, row[0])
    if tournament_id is None:
        log.warning("the saved UDP tournament context %s does not fit the database any more: "
                    "incoming events are not stamped until it is set again", row[0])
        save_context(conn, None, None)
        return None, None
    log.info("UDP tournament context restored: tournament %s, day %s", tournament_id, day_id)
    return tournament_id, day_id


def shared_context(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The saved context as ``restored_context`` reads it, on a reader (changes nothing): what
    an instance stamps after another one changed it (``listen.CONTEXT``)."""
    row = conn.execute("SELECT value FROM app_state WHERE key = ?", (CONTEXT_KEY,)).fetchone()
    return (None, None) if row is None else _fitting(conn, row[0])


def follow_context(service: DatabaseService) -> None:
    """Stamp this instance's new events with the context saved in the database (another
    instance changed it, ``listen.CONTEXT``; or the listening connection is back). Called on
    the listening thread; the read and the assignment run on the writer thread, in order with
    the commands that save a context there: a read begun before such a command committed can
    never put the older context back after it."""

    def follow(conn) -> None:
        context = shared_context(conn)
        if context != tuple(service.writer.context):
            service.writer.set_context(*context)
            log.info("UDP tournament context now tournament %s, day %s (set by an instance "
                     "of this database)", *context)

    service.write(follow)


def _fitting(conn: sqlite3.Connection, value: str) -> tuple[int | None, int | None]:
    """The ids of a saved context if its tournament (and day) exist, else ``(None, None)``."""
    try:
        saved = json.loads(value)
        tournament_id, day_id = saved["tournament_id"], saved["tournament_day_id"]
    except (ValueError, KeyError, TypeError):
        return None, None
    found = tournament_id is not None and conn.execute(
        "SELECT 1 FROM tournaments t WHERE t.id = ? AND (? IS NULL OR EXISTS ("
        "SELECT 1 FROM tournament_days d WHERE d.id = ? AND d.tournament_id = t.id))",
        (tournament_id, day_id, day_id)).fetchone() is not None
    return (tournament_id, day_id) if found else (None, None)


def _context(tournament: dict | None, day: dict | None) -> dict:
    return {
        "tournament_id": tournament["id"] if tournament else None,
        "tournament_day_id": day["id"] if day else None,
        "tournament": tournament,
        "day": day,
    }
