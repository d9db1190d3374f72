"""The tournament-wide live view: every court that writes to this database (``get_courts``),
and the throttled ``courts_changed`` push that tells the Courts screen to read it again.

A court is the ``court`` column of ``udp_server_sessions`` and ``pss_matches`` (``--court`` of
the instance that wrote them, schema version 8). Everything here is read from the database
through the pool, with a few indexed queries per court (``idx_udp_server_sessions_court``,
``idx_pss_matches_court``): a results-desk instance (``--no-udp``) on the same database sees the
courts other instances write. The match row (``pss_matches``) holds the round, clock, scores
and winner: the writer updates it once per batch already (``tracking.dirty_rows``), so the
live view costs the writer nothing.

"Something changed" comes from one place, ``change_source``: on SQLite the writer's commits of
this instance; on PostgreSQL every instance's commits, through LISTEN/NOTIFY (``listen.py``,
started by ``start_listener``). While the listening connection is down ``get_courts`` says
``live: "polling"`` and the screens' 5 s poll keeps them right.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from restrike.host.timeutil import now_iso, parse_iso

from .backend import POSTGRESQL, SQLITE
from .listen import CONTEXT, COURTS, Listener
from .pool import read_snapshot
from .running import service_of
from .tournaments import follow_context

if TYPE_CHECKING:
    import sqlite3

    from restrike.host.app import App

    from .service import DatabaseService

log = logging.getLogger(__name__)

PUSH = "courts_changed"
"""The push name: ``{"at": ISO time}``, latest only; the screen then calls ``get_courts``."""
MIN_INTERVAL_S = 0.5
"""At most two ``courts_changed`` pushes a second, whatever the commit rate."""
NOTIFIER = "database.courts"
"""``app.extensions[NOTIFIER]``: the running ``ChangeNotifier``."""
LISTENER = "database.listen"
"""``app.extensions[LISTENER]``: the running ``listen.Listener`` (PostgreSQL only)."""

_SIDES = {1: "blue", 2: "red"}


class ChangeNotifier:
    """Turns "something changed" signals (any thread, never blocking) into at most one
    ``emit()`` per ``min_interval`` s on its own ``courts-notify`` thread. A signal during the
    pause is not lost: it is emitted at the end of the pause (the last change always shows)."""

    def __init__(self, emit: Callable[[], None], min_interval: float = MIN_INTERVAL_S):
        self._emit = emit
        self._interval = min_interval
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self.signals = 0
        self.emitted = 0
        self._thread = threading.Thread(target=self._run, name="courts-notify", daemon=True)

    def start(self) -> ChangeNotifier:
        self._thread.start()
        return self

    def changed(self) -> None:
        """Something a court shows may have changed (called on the writer thread)."""
        self.signals += 1
        self._changed.set()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            self._changed.wait()
            if self._stopping.is_set():
                return
            self._changed.clear()
            try:
                self._emit()
                self.emitted += 1
            except Exception:  # a failing push must not end the signal
                log.exception("the courts_changed push failed")
            if self._stopping.wait(self._interval):  # the throttle: signals meanwhile wait
                return


def change_source(notifier: ChangeNotifier, backend: str) -> Callable[[], None] | None:
    """Where the "something changed" signal comes from, as the writer's ``on_commit``: on
    SQLite only this instance writes, so its commits are every change. On PostgreSQL none:
    every writer's batch NOTIFYs ``listen.COURTS`` and ``start_listener`` hears them all,
    this instance's own included."""
    return notifier.changed if backend == SQLITE else None


def start_listener(app: App, service: DatabaseService, notifier: ChangeNotifier) -> None:
    """On PostgreSQL: LISTEN for the other instances' changes (kept in ``app.extensions``):
    a court's batch signals ``notifier``; a new UDP tournament context is stamped on this
    instance's events from then on (``tournaments.follow_context``). After every (re)connect
    both are read again (what changed meanwhile was not heard)."""
    if service.url is None or service.backend != POSTGRESQL:
        return

    def connected() -> None:
        follow_context(service)
        notifier.changed()

    app.extensions[LISTENER] = Listener(service.url.conninfo, {
        COURTS: lambda court: notifier.changed(),
        CONTEXT: lambda payload: follow_context(service),
    }, connected).start()


def stop_listener(app: App) -> None:
    listener = app.extensions.pop(LISTENER, None)
    if isinstance(listener, Listener):
        listener.stop()


def live_status(app: App) -> dict:
    """``get_courts``' ``live`` (``local``: SQLite, this instance's commits; ``notify``:
    PostgreSQL's notifications arrive; ``polling``: the listening connection is down, the
    screens poll) and ``listen`` (``listen.Listener.stats``, None on SQLite)."""
    listener = app.extensions.get(LISTENER)
    if not isinstance(listener, Listener):
        return {"live": "local", "listen": None}
    stats = listener.stats()
    return {"live": stats["live"], "listen": stats}


def start_notifier(app: App) -> ChangeNotifier:
    """Start the ``courts_changed`` notifier of ``app`` (kept in ``app.extensions``)."""
    notifier = ChangeNotifier(lambda: app.push.emit(PUSH, {"at": now_iso()}, latest_only=True))
    app.extensions[NOTIFIER] = notifier.start()
    return notifier


def stop_notifier(app: App) -> None:
    notifier = app.extensions.pop(NOTIFIER, None)
    if isinstance(notifier, ChangeNotifier):
        notifier.stop()


def spool_depth(service: DatabaseService, court: str) -> int:
    """Events of ``court`` waiting in this instance's local spool for the central database
    (store-and-forward, ``forward.py``): this instance's own court only - another court's
    spool lives on its own PC (0 here, and on SQLite, which has no spool)."""
    if court != service.config.court:
        return 0
    spool = service.writer.stats()["spool"]
    return spool["depth"]["events"] if spool is not None else 0


def courts(conn: sqlite3.Connection, own_court: str, silent_after: float,
           spooled: Callable[[str], int] = lambda court: 0, now: str | None = None) -> dict:
    """``get_courts``' answer (see the command), read in one snapshot."""
    now = now or now_iso()
    at = parse_iso(now)
    out = []
    with read_snapshot(conn):
        names = [r[0] for r in conn.execute(
            "SELECT DISTINCT court FROM udp_server_sessions WHERE court IS NOT NULL "
            "ORDER BY court")]
        for name in names:
            session = conn.execute(
                "SELECT session_id, status, started_at, stopped_at FROM udp_server_sessions "
                "WHERE court = ? ORDER BY started_at DESC LIMIT 1", (name,)).fetchone()
            last = conn.execute("SELECT MAX(last_event_at) FROM udp_server_sessions "
                                "WHERE court = ?", (name,)).fetchone()[0]
            silent_for = (None if last is None
                          else round(max(0.0, (at - parse_iso(last)).total_seconds()), 1))
            depth = spooled(name)
            if depth:
                health = "spooling"
            elif silent_for is None or silent_for > silent_after:
                health = "silent"
            else:
                health = "connected"
            out.append({
                "court": name, "local": name == own_court, "health": health,
                "spool_depth": depth, "last_event_at": last, "silent_for_s": silent_for,
                "session": {"id": session[0], "status": session[1], "started_at": session[2],
                            "stopped_at": session[3]},
                "match": _current_match(conn, name),
            })
    return {"courts": out, "court": own_court, "silent_after_s": silent_after,
            "generated_at": now}


def _current_match(conn: sqlite3.Connection, court: str) -> dict | None:
    row = conn.execute(
        "SELECT id, match_number, phase, category, division, rounds_total, status, "
        "current_round, clock, blue_score, red_score, blue_warnings, red_warnings, winner, "
        "winner_name, win_classification, blue_bg, blue_fg, red_bg, red_fg, loaded_at, "
        "ended_at, updated_at FROM pss_matches WHERE court = ? ORDER BY id DESC LIMIT 1",
        (court,)).fetchone()
    if row is None:
        return None
    (match_id, number, phase, category, division, rounds, status, round_no, clock, blue,
     red, blue_gj, red_gj, winner, winner_name, classification, *colours, loaded_at,
     ended_at, updated_at) = row
    athletes: dict[str, Any] = {"blue": None, "red": None}
    for position, short, long, country in conn.execute(
            "SELECT ma.athlete_position, a.short_name, a.long_name, a.country_code "
            "FROM pss_match_athletes ma JOIN pss_athletes a ON a.id = ma.athlete_id "
            "WHERE ma.match_id = ?", (match_id,)):
        athletes[_SIDES[position]] = {"short": short, "long": long, "country": country}
    return {
        "id": match_id, "number": number, "phase": phase, "category": category,
        "division": division, "rounds": rounds, "status": status, "round": round_no,
        "clock": clock, "scores": {"blue": blue, "red": red},
        "warnings": {"blue": blue_gj, "red": red_gj}, "athletes": athletes,
        "winner": ({"side": winner, "name": winner_name, "classification": classification}
                   if winner or winner_name else None),
        "colors": dict(zip(("blue_bg", "blue_fg", "red_bg", "red_fg"), colours, strict=True)),
        "loaded_at": loaded_at, "ended_at": ended_at, "updated_at": updated_at,
    }


def commands(app: App) -> dict:
    """The courts command (``get_courts``)."""

    def get_courts() -> dict:
        """Every court that writes to this database, for the Courts screen, the OBS overlay
        (``?court=NAME``) and anyone polling: ``{court (this instance's --court),
        silent_after_s (database.courts_silent_after), generated_at, courts: [{court, local
        (this instance's court), health, spool_depth, last_event_at, silent_for_s, session {id,
        status, started_at, stopped_at} (the court's newest UDP session), match}]}``, sorted
        by court name.

        ``health`` is ``spooling`` while events of the court wait in this instance's local
        spool (``spool_depth`` of them: on this instance's own court, while forwarding after an
        outage; during it the courts cannot be read at all), else
        ``silent`` when its last event is older than ``silent_after_s`` s (or it has none),
        else ``connected``. ``silent_for_s`` is seconds since its last event (the reading
        machine's clock against the receiving one's: keep court PCs on NTP).

        ``match`` is the court's newest match (None before its first): ``{id, number, phase,
        category, division, rounds, status (loaded/ready/running/finished), round, clock (the
        text the scoreboard showed, e.g. "1:23"), scores {blue, red}, warnings {blue, red},
        athletes {blue, red: {short, long, country} | None}, winner {side, name,
        classification} | None, colors {blue_bg, blue_fg, red_bg, red_fg}, loaded_at,
        ended_at, updated_at}``, as the writer stored it with its last batch. Cheap (a few
        indexed reads per court, through the pool): screens may poll it; the
        ``courts_changed`` push says when to (at most twice a second).

        ``live`` says where that push comes from: ``local`` (SQLite: this instance's
        commits), ``notify`` (PostgreSQL: every instance's commits, through LISTEN/NOTIFY) or
        ``polling`` (PostgreSQL, the listening connection is down and being reopened: no push,
        poll). ``listen``: ``{live, notifications (received), connects, breaks,
        handler_errors, listening_since, last_error, last_error_at}`` on PostgreSQL, else
        None."""
        service = service_of(app)
        with service.pool.connection() as conn:
            answer = courts(conn, service.config.court, service.config.courts_silent_after,
                            lambda court: spool_depth(service, court))
        return {**answer, **live_status(app)}

    return {"get_courts": get_courts}
