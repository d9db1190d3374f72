"""PostgreSQL's LISTEN/NOTIFY between the instances of a tournament: who changed what, live.

Every instance writing to one PostgreSQL database sends a notification inside the transaction
that made the change, so it is delivered at commit, exactly when the change is visible, and
never for a batch that was rolled back (``notify``):

- ``COURTS`` (payload: the court's name), once per committed batch (``batch.store_batch``):
  the Courts screen's "something changed" signal (``courts.ChangeNotifier``);
- ``CONTEXT`` (payload empty), when the UDP tournament context (``app_state``) is set or
  cleared (``tournaments.save_context``): every instance stamps new events with it.

Every instance (a ``--no-udp`` results desk too) listens on a dedicated connection on its own
``db-listen`` thread (``Listener``). When that connection breaks it is opened again with a
backoff (``retry_initial`` doubling to ``retry_max`` s); meanwhile ``live`` is ``polling``:
the screens' 5 s poll keeps them right, and ``get_courts`` says so. After every (re)connect
the ``on_connect`` callback runs (reload the context, refresh the screens): notifications sent
while nobody listened are gone, the database is not.

On SQLite nothing of this runs: one instance writes the file, its own commits are every change
(and the driver, psycopg, is imported by the ``db-listen`` thread only: an SQLite app never
loads it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from restrike.host.timeutil import now_iso

from .backend import is_postgres

log = logging.getLogger(__name__)

COURTS = "restrike_courts"
"""Channel: a batch of a court was committed (payload: the court's name)."""
CONTEXT = "restrike_context"
"""Channel: the UDP tournament context was set or cleared (payload empty)."""

NOTIFY = "notify"
POLLING = "polling"
"""``Listener.live``: notifications arrive (``notify``) or the listening connection is down
and the screens rely on their poll (``polling``)."""

_WAIT_S = 0.5  # how long one wait for notifications lasts: the bound on stop()'s delay
APPLICATION_NAME = "restrike-listen"
"""The listening connection's ``application_name`` (``pg_stat_activity`` shows it)."""


def notify(conn, channel: str, payload: str = "") -> None:
    """Send ``channel``'s notification in ``conn``'s current transaction (delivered when it
    commits); nothing on SQLite. ``conn`` may be a connection or a cursor."""
    if is_postgres(conn):
        conn.execute("SELECT pg_notify(?, ?)", (channel, payload))


class Listener:
    """LISTEN on ``handlers``' channels on a dedicated connection, on the ``db-listen``
    thread; ``handlers[channel](payload)`` runs there for every notification (it must not
    block for long). ``on_connect()`` runs after every successful (re)connect."""

    def __init__(self, conninfo: str, handlers: Mapping[str, Callable[[str], None]],
                 on_connect: Callable[[], None] = lambda: None, *,
                 retry_initial: float = 0.5, retry_max: float = 10.0,
                 connect_timeout: float = 5.0):
        self._conninfo = conninfo
        self._handlers = dict(handlers)
        self._on_connect = on_connect
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._connect_timeout = max(1, int(connect_timeout))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._live = POLLING
        self._received = 0
        self._connects = 0
        self._breaks = 0
        self._handler_errors = 0
        self._since: str | None = None
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._thread = threading.Thread(target=self._run, name="db-listen", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (within ``_WAIT_S`` s of a wait, or a connect's timeout)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout + self._connect_timeout)

    @property
    def live(self) -> str:
        return self._live

    def stats(self) -> dict:
        """``{live (notify | polling), notifications (received since the start), connects,
        breaks (connections lost), handler_errors, listening_since, last_error,
        last_error_at}``."""
        with self._lock:
            return {"live": self._live, "notifications": self._received,
                    "connects": self._connects, "breaks": self._breaks,
                    "handler_errors": self._handler_errors, "listening_since": self._since,
                    "last_error": self._last_error, "last_error_at": self._last_error_at}

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        import psycopg  # PostgreSQL only (see the module docstring); its errors stay in here

        delay = 0.0
        while not self._stopping.is_set():
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True,
                                       connect_timeout=self._connect_timeout,
                                       application_name=APPLICATION_NAME,
                                       # TCP keepalives: a pulled cable breaks the listening
                                       # connection within about 20 s instead of never (it
                                       # sends nothing, so nothing else would notice)
                                       keepalives=1, keepalives_idle=10,
                                       keepalives_interval=5, keepalives_count=2)
            except psycopg.Error as exc:
                delay = self._backoff(delay)
                self._note(exc, f"listening for changes failed, retrying in {delay:.1f} s",
                           loud=delay == self._retry_initial)
                self._stopping.wait(delay)
                continue
            try:
                with conn:
                    for channel in self._handlers:
                        conn.execute(f'LISTEN "{channel}"')  # our constants: no user text
                    with self._lock:
                        self._live, self._since = NOTIFY, now_iso()
                        self._connects += 1
                    delay = 0.0
                    log.info("listening for changes of the other instances (%s)",
                             ", ".join(self._handlers))
                    self._call(self._on_connect)
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=_WAIT_S):
                            with self._lock:
                                self._received += 1
                            handler = self._handlers.get(note.channel)
                            if handler is not None:
                                self._call(handler, note.payload)
            except psycopg.Error as exc:
                with self._lock:
                    self._live, self._since = POLLING, None
                    self._breaks += 1
                delay = self._backoff(delay)
                self._note(exc, "the connection listening for changes broke; the screens "
                                f"poll meanwhile; reconnecting in {delay:.1f} s", loud=True)
                self._stopping.wait(delay)
        with self._lock:
            self._live, self._since = POLLING, None

    def _backoff(self, delay: float) -> float:
        return self._retry_initial if delay == 0.0 else min(delay * 2, self._retry_max)

    def _note(self, exc: BaseException, what: str, loud: bool) -> None:
        """Keep the error; log it as a WARNING once per outage, then at DEBUG."""
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {str(exc).strip()}"
            self._last_error_at = now_iso()
        log.log(logging.WARNING if loud else logging.DEBUG, "%s (%s)", what,
                self._last_error)

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception:  # a handler's bug must not end the listening
            with self._lock:
                self._handler_errors += 1
            log.exception("a change notification's handler failed")
