"""The UDP service of one app (``app.extensions["udp"]``).

It owns the server's life (start/stop/settings, one session per start), the live view of the feed
(``live.LiveFeed``), the pushes and the built-in simulator. Ingest itself runs in
``receiver.Receiver``.

Pushes: ``udp_status`` (latest only) when the server or the simulator starts, stops or fails;
``pss_match_state`` (latest only) with the snapshot of the court whose state just
changed; and ``pss_event`` with the UI events (a stream push: at most
``PUSH_EVENTS_PER_DELIVERY`` per delivery, the newest; the push service counts the rest as
``trimmed``, and they are in ``pss_get_events`` and the database).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid

import psutil

from restrike.host.errors import Conflict, StorageFull, Unavailable
from restrike.host.timeutil import now_iso
from restrike.pss.protocol import parse_cache_stats
from restrike.pss.session import UdpSession

from . import simulator
from .live import LiveFeed, ui_event
from .options import demo_requested, udp_off
from .receiver import BindError, Receiver, open_socket
from .settings import UdpSettings, apply_update, changed_fields, save_settings, settings_from_app

log = logging.getLogger(__name__)

PUSH_EVENTS_PER_DELIVERY = 250
"""Events a page gets per push delivery (30 a second at most): more than a table can show."""
DEMO_SPEED = 1.0
"""The ``--demo`` feed runs in real time (one clock tick per second), as a real court would."""
OFF_MESSAGE = ("this instance receives no PSS feed (--no-udp): it shows what the courts "
               "store in the database")
_DISK_FULL = frozenset((errno.ENOSPC, errno.EDQUOT))  # no space left (on the disk, in a quota)


class UdpService:
    """The UDP plugin of one app: server life, sessions, live view, simulator."""

    def __init__(self, app):
        self.app = app
        chosen = settings_from_app(app.settings)
        self.settings: UdpSettings = chosen.settings
        self._default_settings = chosen.default
        # why saved settings are not in use (get_udp_stats "settings_problem"); cleared when
        # the operator saves settings that bind
        self.settings_problem: str | None = chosen.problem
        self.status = "Stopped"
        self.error: str | None = None
        self.receiver: Receiver | None = None
        self.session: UdpSession | None = None
        self.receive_buffer_granted: int | None = None
        self.feed = LiveFeed()
        self.pushed_events = 0
        self._lock = threading.RLock()  # start/stop/settings, one at a time
        self._simulation: dict | None = None
        # the per-sender counts of the simulator run in progress (simulator.send's progress),
        # added to the record's finished runs when read: the sent count is live
        self._simulation_live: list = []
        self._simulation_count = threading.Lock()  # a run's counts move from live to record
        self._simulation_stop = threading.Event()
        self._simulation_thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- server

    def start(self) -> str:
        """Start receiving (a new session); idempotent. Raises ``Unavailable`` if it cannot,
        or when this instance runs with ``--no-udp``."""
        with self._lock:
            if self.status == "Running":
                return self.status
            if udp_off(self.app.settings):
                raise Unavailable(OFF_MESSAGE)
            self._start_locked()
            return self.status

    def stop(self) -> str:
        """Stop receiving; everything received is dispatched first. Idempotent."""
        with self._lock:
            self._stop_simulation()
            self._stop_locked()
            return self.status

    def _start_locked(self, opened: tuple | None = None) -> None:
        self.status = "Starting"
        self.error = None
        s = self.settings
        if opened is None:
            try:
                opened = open_socket(s.bind, s.port, s.receive_buffer)
            except BindError as exc:
                self.status = "Error"
                self.error = str(exc.strerror)
                log.error("UDP server not started: %s (the app runs without ingest: change "
                          "--udp-bind/--udp-port or the UDP screen)", self.error)
                self._emit_status()
                raise Unavailable(self.error) from None
        sock, granted = opened
        session_id = str(uuid.uuid4())
        self.receiver = Receiver(
            session_id, self._deliver, allowed_sources=s.allowed_sources,
            queue_max_datagrams=s.queue_max_datagrams, queue_max_bytes=s.queue_max_bytes,
            limits=s.limits())
        self.receive_buffer_granted = granted
        session = UdpSession(
            session_id=session_id, bind=s.bind, port=sock.getsockname()[1],
            started_at=now_iso(), receive_buffer_requested=s.receive_buffer,
            receive_buffer_granted=granted, allowed_sources=list(s.allowed_sources),
            **_session_counters(None))
        self.session = session
        # Every plugin knows the session before its first event is dispatched.
        self.app.hooks.udp_session(session, self.app)
        try:
            self.receiver.start([(sock, granted)])
        except Exception as exc:  # e.g. no thread could be started: an error state, not a hang
            self.receiver.stop()
            sock.close()
            self.status = "Error"
            self.error = f"the UDP receiver could not start: {exc}"
            log.exception("UDP receiver not started")
            self.session = session.model_copy(update={"stopped_at": now_iso(),
                                                      "status": "error"})
            self.app.hooks.udp_session(self.session, self.app)
            self._emit_status()
            raise Unavailable(self.error) from None
        self.status = "Running"
        self._emit_status()
        log.info("UDP server listening on %s:%s (session %s, receive buffer %d bytes granted)",
                 s.bind, session.port, session_id, granted)

    def _running_session(self) -> UdpSession:
        """The session of the running server: the status is ``Running`` only once it exists."""
        if self.session is None:
            raise RuntimeError("the UDP server is running without a session")
        return self.session

    def _stop_locked(self) -> None:
        receiver, session = self.receiver, self.session
        # a running receiver always has its session (set before the receiver starts)
        if receiver is None or not receiver.running or session is None:
            if self.status != "Stopped":
                self.status = "Stopped"  # stopping also acknowledges an error state
                self.error = None
                self._emit_status()
            return
        receiver.stop()
        self.session = session.model_copy(update={
            "stopped_at": now_iso(), "status": "stopped", **_session_counters(receiver)})
        self.status = "Stopped"
        self.app.hooks.udp_session(self.session, self.app)
        self._emit_status()
        log.info("UDP server stopped (session %s: %d datagrams, %d events)",
                 receiver.session_id, receiver.datagrams, receiver.events)

    def reconfigure(self, new: UdpSettings, *, start: bool = False) -> None:
        """Use ``new`` settings; a running server restarts with them (a new session).

        When the address changes, the new socket is opened before the old server stops, so a
        port in use leaves the running server and the settings as they were.
        """
        with self._lock:
            if self.status == "Running" and new == self.settings:
                return
            if self.status != "Running":
                if not start:
                    _check_binds(new)  # a stopped server's settings must still be listenable
                self.settings = new
                if start:
                    self._start_locked()
                return
            old = self.settings
            opened = None
            if (new.bind, new.port) != (old.bind, self._running_session().port):
                try:
                    opened = open_socket(new.bind, new.port, new.receive_buffer)
                except BindError as exc:
                    raise Unavailable(f"settings not changed: {exc.strerror}") from None
            self._stop_simulation()  # it feeds the session that ends here
            self._stop_locked()
            self.settings = new
            self._start_locked(opened)

    def update_settings(self, update: UdpSettings) -> None:
        """Apply the fields ``update`` gives (see ``reconfigure``) and save them for the next
        start, only once their socket bound (while stopped: a trial bind, closed at once).
        Raises ``Unavailable`` when they were not applied (nothing saved) or were applied but
        could not be saved."""
        with self._lock:
            self.reconfigure(apply_update(self.settings, update))
            try:
                save_settings(self.app.settings.data_dir, changed_fields(update))
            except OSError as exc:
                log.error("UDP settings applied but not saved: %s", exc)
                if exc.errno in _DISK_FULL:
                    raise StorageFull("the settings are in use but could not be saved for the "
                                      "next start.") from None
                raise Unavailable(f"the settings are in use but could not be saved for the "
                                  f"next start: {exc}") from None
            self._default_settings = None  # the saved address is the operator's latest choice
            if self.settings_problem is not None:
                self.settings_problem = None
                self._emit_status()

    def _emit_status(self) -> None:
        """Push ``udp_status`` (latest only) so that the UI refreshes at once."""
        self.app.push.emit("udp_status", {
            "status": self.status, "error": self.error, "port": self.port,
            "session_id": self.session.session_id if self.session else None,
            "simulated": bool(self.session and self.session.simulated),
            "simulating": bool(self._simulation and self._simulation["running"]),
            "settings_problem": self.settings_problem,
        }, latest_only=True)

    def current_status(self) -> str:
        """The status; the error state raises ``Unavailable`` with its message."""
        if self.status == "Error":
            raise Unavailable(self.error or "the UDP server failed")
        return self.status

    @property
    def port(self) -> int | None:
        return self.session.port if self.session and self.status == "Running" else None

    # --------------------------------------------------------------------------- ingest

    def _deliver(self, batch: list) -> None:
        self.app.hooks.pss_events(batch, self.app)

    def on_events(self, events: list) -> None:
        """Our own ``restrike_pss_events``: match state, recent events, pushes."""
        changed, added = self.feed.apply(events)
        if changed is not None:
            self.app.push.emit("pss_match_state", self.feed.snapshot(changed), latest_only=True)
        if added:
            self.pushed_events += len(added)
            self.app.push.emit_items("pss_event", added, limit=PUSH_EVENTS_PER_DELIVERY,
                                     render=_render_ui_event)

    # ------------------------------------------------------------------------ simulator

    def simulate(self, senders: int, speed: float, matches: int | None, *, demo: bool = False,
                 seed: int | None = None) -> dict:
        """Run the built-in simulator against our own port in a background thread.

        ``matches=None`` loops one match after another until stopped (the ``--demo`` feed).
        """
        with self._lock:
            if self.status != "Running":
                raise Unavailable("the UDP server is not running: start it to simulate a match")
            if self._simulation_thread is not None and self._simulation_thread.is_alive():
                raise Conflict("a simulation is already running (stop_simulation ends it)")
            session = self._running_session()
            target = (_loopback_for(self.settings.bind), session.port)
            self._simulation_stop = threading.Event()
            self._simulation_live = []
            first_seed = seed if seed is not None else int(time.time())
            self._simulation = {
                "running": True, "senders": senders, "speed": speed, "matches": matches,
                "demo": demo, "target": f"{target[0]}:{target[1]}", "started_at": now_iso(),
                "finished_at": None, "sent": 0, "errors": 0, "last_error": None,
                "matches_done": 0, "seed": first_seed,
            }
            self.session = session.model_copy(update={"simulated": True})
            self.app.hooks.udp_session(self.session, self.app)
            thread = threading.Thread(
                target=self._simulation_loop,
                args=(target, senders, speed, matches, first_seed, self._simulation_stop,
                      self._simulation),
                name="udp-simulator", daemon=True)
            self._simulation_thread = thread
            thread.start()
            self._emit_status()
            return dict(self._simulation)

    def _simulation_loop(self, target, senders, speed, matches, seed, stop, record) -> None:
        def run(count: int, seed: int, done_if_stopped: int) -> None:
            live: list = []
            self._simulation_live = live
            result = simulator.send(target, senders=senders, speed=speed, matches=count,
                                    seed=seed, stop=stop, progress=live)
            with self._simulation_count:
                self._simulation_live = []
                _add_result(record, result, done_if_stopped if result["stopped"] else count)

        try:
            if matches is not None:
                run(matches, seed, matches)
            else:
                while not stop.is_set():
                    run(1, seed + record["matches_done"], 0)
        except Exception as exc:
            record["last_error"] = f"{type(exc).__name__}: {exc}"
            log.exception("the simulator failed")
        finally:
            record["running"] = False
            record["finished_at"] = now_iso()
            self._emit_status()

    def _stop_simulation(self, timeout: float = 10.0) -> dict | None:
        self._simulation_stop.set()
        thread = self._simulation_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self.simulation_status()

    def stop_simulation(self) -> dict:
        """Stop the simulator (no-op when none runs); returns its final record."""
        with self._lock:
            record = self._stop_simulation()
        return record or {"running": False}

    def simulation_status(self) -> dict | None:
        """The simulation record; ``sent``/``errors`` include the run in progress."""
        with self._simulation_count:
            if not self._simulation:
                return None
            out = dict(self._simulation)
            for sender in list(self._simulation_live):
                out["sent"] += sender["sent"]
                out["errors"] += sender["errors"]
        return out

    # ------------------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        if udp_off(self.app.settings):
            self.error = OFF_MESSAGE  # the UDP screen says why nothing arrives
            log.info("UDP ingest is off (--no-udp): no UDP port bound")
            return
        if self.settings.autostart:
            try:
                self.start()
            except Unavailable:
                self._fall_back_to_default()
        if demo_requested(self.app.settings):
            if self.status == "Running":
                self.simulate(senders=1, speed=DEMO_SPEED, matches=None, demo=True)
            else:
                log.warning("--demo: the UDP server is not running (%s), no simulated feed",
                            self.error or "autostart is off")

    def _fall_back_to_default(self) -> None:
        """The start failed: if it was on the saved address, report that and listen on the
        default one instead of on nothing. Else an error state (get_udp_status says why), never
        a failed app start-up."""
        with self._lock:
            default, self._default_settings = self._default_settings, None
            if default is None:
                return
            saved = self.settings
            self.settings_problem = (
                f"The saved UDP address {_where(saved)} cannot be used ({self.error}); "
                f"listening on {_where(default)} instead. Save the settings to choose another "
                f"address.")
            log.error("%s", self.settings_problem)
            self.settings = default
            try:
                self.start()
            except Unavailable:
                pass  # the default does not bind either: the error state says why

    def shutdown(self) -> None:
        with self._lock:
            self._stop_simulation()
            self._stop_locked()

    # -------------------------------------------------------------------------- reading

    def stats(self) -> dict:
        """Every counter (see ``get_udp_stats``)."""
        receiver = self.receiver
        merged = dict(self.app.hooks.ingest_stats(self.app))
        counters = receiver.counters() if receiver else _session_counters(None)["counters"]
        merged.update(counters)
        merged.update({
            "status": self.status,
            "error": self.error,
            "settings_problem": self.settings_problem,
            "session": _public_session(self.session, receiver),
            "bind": self.settings.bind,
            "port": self.port,
            "receive_buffer_requested": self.settings.receive_buffer,
            "receive_buffer_granted": self.receive_buffer_granted,
            "allowed_sources": list(self.settings.allowed_sources),
            "clients": receiver.client_list() if receiver else [],
            "ui": {"pushed_events": self.pushed_events,
                   "trimmed": self.app.push.stats()["trimmed"].get("pss_event", 0),
                   "sources": self.feed.sources(), "evicted_sources": self.feed.evicted_sources,
                   "ring_dropped_for_bytes": self.feed.ring_dropped_for_bytes},
            "parse_cache": parse_cache_stats(),
            "simulation": self.simulation_status(),
        })
        return merged

    def performance(self) -> dict:
        """Measured rates, latency and queue figures of the current (or last) session."""
        receiver = self.receiver
        if receiver is None:
            return {"status": self.status, "session_id": None, "measured_at": now_iso()}
        elapsed_s = (time.monotonic_ns() - receiver.started_ns) / 1e9
        return {
            "status": self.status,
            "session_id": receiver.session_id,
            "measured_at": now_iso(),
            "uptime_s": round(elapsed_s, 3),
            "rates_5s": receiver.rates(5.0),
            "rates_60s": receiver.rates(60.0),
            "latency_receive_to_dispatch_10s": receiver.latency_percentiles(10.0),
            "queue": {"depth": len(receiver.queue), "bytes": receiver.queue.bytes,
                      "high_water": receiver.queue.high_water,
                      "high_water_bytes": receiver.queue.high_water_bytes,
                      "dropped": receiver.queue.dropped},
            "dispatch": {
                "batches": receiver.batches,
                "busy_ms": round(receiver.dispatch_busy_ns / 1e6, 3),
                "busy_share": round(receiver.dispatch_busy_ns / 1e9 / elapsed_s, 4)
                if elapsed_s > 0 else 0.0,
                "max_batch_ms": round(receiver.max_batch_ns / 1e6, 3),
                "mean_batch_events": round(receiver.events / receiver.batches, 1)
                if receiver.batches else 0.0,
            },
            "kernel": receiver.kernel_info(),
        }

    def memory(self) -> dict:
        """Process memory (psutil) and the sizes of this plugin's buffers, measured now."""
        info = psutil.Process().memory_info()
        receiver = self.receiver
        latency_samples = sum(len(a) for _, a in list(receiver.latencies)) if receiver else 0
        kernel = receiver.kernel_info() if receiver else None
        return {
            "measured_at": now_iso(),
            "process_rss_bytes": info.rss,
            "process_vms_bytes": info.vms,
            "queue_datagrams": len(receiver.queue) if receiver else 0,
            "queue_bytes": receiver.queue.bytes if receiver else 0,
            "queue_max_bytes": self.settings.queue_max_bytes,
            "latency_samples": latency_samples,
            "clients_tracked": len(receiver.clients) if receiver else 0,
            "kernel_receive_buffer_bytes": self.receive_buffer_granted,
            "kernel_queue_bytes": kernel["rx_queue_bytes"] if kernel else None,
            **self.feed.sizes(),
        }


def _where(settings: UdpSettings) -> str:
    """``address:port`` as an operator writes it (``[::1]:6000`` for IPv6)."""
    return f"[{settings.bind}]:{settings.port}" if ":" in settings.bind else (
        f"{settings.bind}:{settings.port}")


def _check_binds(settings: UdpSettings) -> None:
    """Open and close a socket on ``settings``' address; ``Unavailable`` if it does not bind."""
    try:
        sock, _ = open_socket(settings.bind, settings.port, settings.receive_buffer)
    except BindError as exc:
        raise Unavailable(f"settings not changed: {exc.strerror}") from None
    sock.close()


def _session_counters(receiver: Receiver | None) -> dict:
    """The counters of a ``UdpSession`` (zeros before anything arrived)."""
    if receiver is None:
        empty = {"datagrams": 0, "bytes": 0, "rejected": 0, "queue_dropped": 0, "events": 0,
                 "events_valid": 0, "events_invalid": 0, "events_unknown": 0,
                 "kernel_drops": None, "queue_high_water": 0}
        return {"packets_received": 0, "bytes_received": 0, "events": 0, "valid_events": 0,
                "invalid_events": 0, "unknown_events": 0, "counters": empty, "clients": []}
    counters = receiver.counters()
    return {
        "packets_received": counters["datagrams"],
        "bytes_received": counters["bytes"],
        "events": counters["events"],
        "valid_events": counters["events_valid"],
        "invalid_events": counters["events_invalid"],
        "unknown_events": counters["events_unknown"],
        "counters": counters,
        "clients": receiver.client_list(),
    }


def _public_session(session: UdpSession | None, receiver: Receiver | None) -> dict | None:
    """The session without its bulky parts; a running one with its live counters."""
    if session is None:
        return None
    out = session.model_dump(exclude={"counters", "clients"})
    if session.status == "running" and receiver is not None:
        live = _session_counters(receiver)
        out.update({k: v for k, v in live.items() if k not in ("counters", "clients")})
    return out


def _add_result(record: dict, result: dict, matches_done: int) -> None:
    record["sent"] += result["sent"]
    record["errors"] += result["errors"]
    record["matches_done"] += matches_done
    errors = [s["last_error"] for s in result["senders"] if s["last_error"]]
    if errors:
        record["last_error"] = errors[-1]


def _loopback_for(bind: str) -> str:
    """Where to send to reach a socket bound to ``bind`` from this machine."""
    if bind == "0.0.0.0":
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


def service_of(app) -> UdpService:
    """The app's UDP service (created on first use)."""
    service = app.extensions.get("udp")
    if service is None:
        service = app.extensions["udp"] = UdpService(app)
    return service


def _render_ui_event(entry: tuple) -> dict:
    return ui_event(*entry)
