"""The UDP plugin's hooks and commands, and the per-app service behind them.

The service (``app.extensions["udp"]``) owns the server's life (start/stop/settings, one session
per start), the live view of the feed (per-court ``MatchState``, a ring of recent events in the
UI's shape, the pushes) and the built-in simulator. Ingest itself runs in ``receiver.Receiver``.

Pushes: ``udp_status`` (latest only) when the server or the simulator starts, stops or fails;
``pss_match_state`` (latest only) with the snapshot of the court whose state just
changed; and ``pss_event`` with the UI events of each batch (at most ``PUSH_EVENTS_PER_BATCH``,
the newest; the rest are counted as ``ui_events_trimmed`` and are in ``pss_get_events`` and the
database).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Annotated, Literal

import psutil
from pydantic import Field

from host.errors import Conflict, NotFound, Unavailable
from host.hookspecs import hookimpl
from host.timeutil import now_iso

from . import simulator
from .protocol import athlete_side, describe
from .receiver import BindError, Receiver, open_socket
from .settings import UdpSettings, apply_update, settings_from_app
from .state import MatchState

log = logging.getLogger(__name__)

EVENT_RING = 1000
MAX_SOURCES = 64
"""Courts whose match state is kept; the least recently active one is forgotten beyond this."""
PUSH_EVENTS_PER_BATCH = 100
DEMO_SPEED = 1.0
"""The ``--demo`` feed runs in real time (one clock tick per second), as a real court would."""


# ---------------------------------------------------------------------------------- live feed


class LiveFeed:
    """Per-court match state and the ring of recent events; written by the dispatch thread."""

    def __init__(self, ring_size: int = EVENT_RING, max_sources: int = MAX_SOURCES):
        self._lock = threading.Lock()
        # source "ip:port" -> [MatchState, round, clock text, last active monotonic ns]
        self._courts: dict[str, list] = {}
        self._names: dict[tuple[str, int], str] = {}
        self._ring: deque[tuple] = deque(maxlen=ring_size)
        self._max_sources = max_sources
        self.active: str | None = None
        self.evicted_sources = 0

    def _court(self, ip: str, port: int, now_ns: int) -> tuple[str, list]:
        source = self._names.get((ip, port))
        if source is None:
            if len(self._names) > 4 * self._max_sources:
                self._names.clear()
            source = self._names[(ip, port)] = f"{ip}:{port}"
        court = self._courts.get(source)
        if court is None:
            if len(self._courts) >= self._max_sources:
                oldest = min(self._courts, key=lambda s: self._courts[s][3])
                del self._courts[oldest]
                self.evicted_sources += 1
            court = self._courts[source] = [MatchState(), None, None, now_ns]
        return source, court

    def apply(self, events: list) -> tuple[str | None, list[tuple]]:
        """Fold a batch in; returns (the court whose state changed last, the ring entries added)."""
        changed = None
        added = []
        with self._lock:
            for ev in events:
                source, court = self._court(ev.source_ip, ev.source_port, ev.received_ns)
                event = ev.event
                kind = event.type
                if kind == "fight_loaded":
                    court[1] = court[2] = None
                elif kind == "round":
                    court[1] = event.round
                elif kind == "clock":
                    court[2] = event.clock
                court[3] = ev.received_ns
                if court[0].apply(event, ev.received_ns, ev.received_at):
                    changed = source
                entry = (ev, source, court[1], court[2])
                self._ring.append(entry)
                added.append(entry)
            if events:
                self.active = source
        return changed, added

    def snapshot(self, source: str | None = None) -> dict | None:
        """The match state of ``source`` (default: the most recently active court), or None."""
        with self._lock:
            source = source or self.active
            court = self._courts.get(source) if source else None
            if court is None:
                return None
            return {**court[0].snapshot(), "source": source}

    def sources(self) -> list[str]:
        with self._lock:
            return sorted(self._courts, key=lambda s: self._courts[s][3], reverse=True)

    def recent(self, limit: int | None = None) -> list[dict]:
        """The most recent events in the UI's shape, newest last."""
        with self._lock:
            entries = list(self._ring)
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return [ui_event(*entry) for entry in entries]

    def sizes(self) -> dict:
        return {"event_ring": len(self._ring), "event_ring_capacity": self._ring.maxlen,
                "match_states": len(self._courts), "match_states_capacity": self._max_sources}


def ui_event(ev, source: str, round_: int | None, clock: str | None) -> dict:
    """One ingested event as the UI shows it (``pss_event`` pushes, ``pss_get_events``)."""
    event = ev.event
    kind = event.type
    try:
        text = describe(event)
    except Exception:  # a description must never cost the event
        text = kind
    return {
        "type": kind,
        "event_code": event.code,
        "athlete": athlete_side(event.athlete),
        "round": round_,
        "time": clock,
        "timestamp": ev.received_at,
        "raw_data": ev.raw,
        "raw_b64": ev.raw_b64,
        "description": text,
        "is_valid": kind not in ("invalid", "unknown"),
        "error": getattr(event, "error", None),
        "seq": ev.seq,
        "index": ev.index,
        "source": source,
        "session_id": ev.session_id,
    }


# ------------------------------------------------------------------------------------ service


class UdpService:
    """The UDP plugin of one app: server life, sessions, live view, simulator."""

    def __init__(self, app):
        self.app = app
        self.settings: UdpSettings = settings_from_app(app.settings)
        self.status = "Stopped"
        self.error: str | None = None
        self.receiver: Receiver | None = None
        self.session: dict | None = None
        self.receive_buffer_granted: int | None = None
        self.feed = LiveFeed()
        self.pushed_events = 0
        self.ui_events_trimmed = 0
        self._lock = threading.RLock()  # start/stop/settings, one at a time
        self._simulation: dict | None = None
        self._simulation_stop = threading.Event()
        self._simulation_thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- server

    def start(self) -> str:
        """Start receiving (a new session); idempotent. Raises ``Unavailable`` if it cannot."""
        with self._lock:
            if self.status == "Running":
                return self.status
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
                log.error("UDP server not started: %s", self.error)
                self._emit_status()
                raise Unavailable(self.error) from None
        sock, granted = opened
        session_id = str(uuid.uuid4())
        self.receiver = Receiver(
            session_id, self._deliver, allowed_sources=s.allowed_sources,
            queue_max_datagrams=s.queue_max_datagrams, queue_max_bytes=s.queue_max_bytes)
        self.receive_buffer_granted = granted
        session = {
            "session_id": session_id,
            "bind": s.bind,
            "port": sock.getsockname()[1],
            "started_at": now_iso(),
            "stopped_at": None,
            "simulated": False,
            "status": "running",
            "receive_buffer_requested": s.receive_buffer,
            "receive_buffer_granted": granted,
            "allowed_sources": list(s.allowed_sources),
            **_session_counters(None),
        }
        self.session = session
        # Every plugin knows the session before its first event is dispatched.
        self.app.hooks.udp_session(dict(session), self.app)
        try:
            self.receiver.start([(sock, granted)])
        except Exception as exc:  # e.g. no thread could be started: an error state, not a hang
            self.receiver.stop()
            sock.close()
            self.status = "Error"
            self.error = f"the UDP receiver could not start: {exc}"
            log.exception("UDP receiver not started")
            session.update(stopped_at=now_iso(), status="error")
            self.app.hooks.udp_session(dict(session), self.app)
            self._emit_status()
            raise Unavailable(self.error) from None
        self.status = "Running"
        self._emit_status()
        log.info("UDP server listening on %s:%s (session %s, receive buffer %d bytes granted)",
                 s.bind, self.session["port"], session_id, granted)

    def _stop_locked(self) -> None:
        receiver = self.receiver
        if receiver is None or not receiver.running:
            if self.status != "Stopped":
                self.status = "Stopped"  # stopping also acknowledges an error state
                self.error = None
                self._emit_status()
            return
        receiver.stop()
        self.session.update(stopped_at=now_iso(), status="stopped", **_session_counters(receiver))
        self.status = "Stopped"
        self.app.hooks.udp_session(dict(self.session), self.app)
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
                self.settings = new
                if start:
                    self._start_locked()
                return
            old = self.settings
            opened = None
            if (new.bind, new.port) != (old.bind, self.session["port"]):
                try:
                    opened = open_socket(new.bind, new.port, new.receive_buffer)
                except BindError as exc:
                    raise Unavailable(f"settings not changed: {exc.strerror}") from None
            self._stop_simulation()  # it feeds the session that ends here
            self._stop_locked()
            self.settings = new
            self._start_locked(opened)

    def _emit_status(self) -> None:
        """Push ``udp_status`` (latest only) so that the UI refreshes at once."""
        self.app.push.emit("udp_status", {
            "status": self.status, "error": self.error, "port": self.port,
            "session_id": self.session["session_id"] if self.session else None,
            "simulated": bool(self.session and self.session["simulated"]),
            "simulating": bool(self._simulation and self._simulation["running"]),
        }, latest_only=True)

    def current_status(self) -> str:
        """The status; the error state raises ``Unavailable`` with its message."""
        if self.status == "Error":
            raise Unavailable(self.error or "the UDP server failed")
        return self.status

    @property
    def port(self) -> int | None:
        return self.session["port"] if self.session and self.status == "Running" else None

    # --------------------------------------------------------------------------- ingest

    def _deliver(self, batch: list) -> None:
        self.app.hooks.pss_events(batch, self.app)

    def on_events(self, events: list) -> None:
        """Our own ``restrike_pss_events``: match state, recent events, pushes."""
        changed, added = self.feed.apply(events)
        if changed is not None:
            self.app.push.emit("pss_match_state", self.feed.snapshot(changed), latest_only=True)
        if added:
            shown = added[-PUSH_EVENTS_PER_BATCH:]
            self.ui_events_trimmed += len(added) - len(shown)
            self.pushed_events += len(shown)
            self.app.push.emit("pss_event", [ui_event(*entry) for entry in shown])

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
            target = (_loopback_for(self.settings.bind), self.session["port"])
            self._simulation_stop = threading.Event()
            first_seed = seed if seed is not None else int(time.time())
            self._simulation = {
                "running": True, "senders": senders, "speed": speed, "matches": matches,
                "demo": demo, "target": f"{target[0]}:{target[1]}", "started_at": now_iso(),
                "finished_at": None, "sent": 0, "errors": 0, "last_error": None,
                "matches_done": 0, "seed": first_seed,
            }
            self.session["simulated"] = True
            self.app.hooks.udp_session(dict(self.session), self.app)
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
        try:
            if matches is not None:
                result = simulator.send(target, senders=senders, speed=speed, matches=matches,
                                        seed=seed, stop=stop)
                _add_result(record, result, matches)
            else:
                while not stop.is_set():
                    result = simulator.send(target, senders=senders, speed=speed, matches=1,
                                            seed=seed + record["matches_done"], stop=stop)
                    _add_result(record, result, 0 if result["stopped"] else 1)
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
        return dict(self._simulation) if self._simulation else None

    def stop_simulation(self) -> dict:
        """Stop the simulator (no-op when none runs); returns its final record."""
        with self._lock:
            record = self._stop_simulation()
        return record or {"running": False}

    def simulation_status(self) -> dict | None:
        return dict(self._simulation) if self._simulation else None

    # ------------------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        if self.settings.autostart:
            try:
                self.start()
            except Unavailable:
                pass  # an error state (get_udp_status says why), never a failed app start-up
        if self.app.settings.demo:
            if self.status == "Running":
                self.simulate(senders=1, speed=DEMO_SPEED, matches=None, demo=True)
            else:
                log.warning("--demo: the UDP server is not running (%s), no simulated feed",
                            self.error or "autostart is off")

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
            "session": _public_session(self.session, receiver),
            "bind": self.settings.bind,
            "port": self.port,
            "receive_buffer_requested": self.settings.receive_buffer,
            "receive_buffer_granted": self.receive_buffer_granted,
            "allowed_sources": list(self.settings.allowed_sources),
            "clients": receiver.client_list() if receiver else [],
            "ui": {"pushed_events": self.pushed_events, "trimmed": self.ui_events_trimmed,
                   "sources": self.feed.sources(), "evicted_sources": self.feed.evicted_sources},
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


def _session_counters(receiver: Receiver | None) -> dict:
    """The counters a session dict carries (zeros before anything arrived)."""
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


def _public_session(session: dict | None, receiver: Receiver | None) -> dict | None:
    """The session without its bulky parts; a running one with its live counters."""
    if session is None:
        return None
    out = {k: v for k, v in session.items() if k not in ("counters", "clients")}
    if session["status"] == "running" and receiver is not None:
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


# ----------------------------------------------------------------------------------- commands


Senders = Annotated[int, Field(ge=1, le=64)]
Speed = Annotated[float, Field(gt=0, le=10_000)]
Matches = Annotated[int, Field(ge=1, le=100)]
Port = Annotated[int, Field(ge=1, le=65535)]
Limit = Annotated[int, Field(ge=0, le=EVENT_RING)]


def _commands(app) -> dict:
    def svc() -> UdpService:
        return app.extensions["udp"]

    def start_udp_server() -> str:
        """Start receiving the PSS feed (a new session); returns the status ("Running").

        Idempotent. A port in use or an address that is not local puts the server in the error
        state and fails with ``unavailable`` and the reason.
        """
        return svc().start()

    def stop_udp_server() -> str:
        """Stop receiving; everything already received is dispatched and the session ends.

        Also stops a running simulation. Returns "Stopped".
        """
        return svc().stop()

    def get_udp_status() -> str:
        """"Stopped", "Starting" or "Running"; the error state fails with its message."""
        return svc().current_status()

    def get_udp_settings() -> dict:
        """The current settings: bind, port, receive_buffer, allowed_sources, autostart, ..."""
        return svc().settings.public()

    def update_udp_settings(settings: UdpSettings) -> dict:
        """Change the settings (only the fields given); a running server restarts with them.

        ``bind`` must be an IP address of this computer (0.0.0.0: all), ``port`` 1..65535,
        ``receiveBuffer`` bytes, ``allowedSources`` addresses or CIDR networks (empty: any).
        Returns the new settings. Bad values fail with ``validation_error`` naming the field and
        change nothing; a new port that is in use fails with ``unavailable`` and changes nothing.
        """
        service = svc()
        service.reconfigure(apply_update(service.settings, settings))
        return service.settings.public()

    def pss_start_listener(port: Port) -> str:
        """Listen on ``port`` (restarting if the server runs on another one); returns the status."""
        service = svc()
        service.reconfigure(apply_update(service.settings, UdpSettings(port=port)), start=True)
        return service.status

    def pss_stop_listener() -> str:
        """Stop listening (same as ``stop_udp_server``); returns "Stopped"."""
        return svc().stop()

    def pss_get_events(limit: Limit | None = None) -> list[dict]:
        """The most recent events (at most 1000, or ``limit``), newest last.

        Each: type, event_code, athlete ("blue"/"red"/"referee"/None), round, time (match clock
        then), timestamp, raw_data, raw_b64, description, is_valid, error, seq, index, source,
        session_id.
        """
        return svc().feed.recent(limit)

    def pss_get_match_state(source: str | None = None) -> dict:
        """The live match state of a court (``source`` "ip:port"; default the most recently
        active one). Before any event arrived: the empty state with ``source`` None."""
        service = svc()
        snapshot = service.feed.snapshot(source)
        if snapshot is not None:
            return snapshot
        if source:
            known = ", ".join(service.feed.sources()) or "none yet"
            raise NotFound(f"source: no events from {source!r} (sources: {known})",
                           field="source")
        return {**MatchState().snapshot(), "source": None}

    def get_live_data(subsystem: Literal["pss", "udp", "obs"]) -> dict:
        """Live data of a subsystem: "pss" (match state and recent events), "udp" (status and
        rates) or "obs" (not part of restrike: reported as unavailable)."""
        service = svc()
        if subsystem == "pss":
            return {"subsystem": "pss", "match_state": pss_get_match_state(),
                    "events": service.feed.recent(50), "sources": service.feed.sources()}
        if subsystem == "udp":
            receiver = service.receiver
            return {"subsystem": "udp", "status": service.status, "error": service.error,
                    "port": service.port,
                    "rates": receiver.rates(5.0) if receiver else None,
                    "counters": receiver.counters() if receiver else None,
                    "simulation": service.simulation_status()}
        return {"subsystem": "obs", "available": False,
                "message": "restrike has no OBS connection; no OBS plugin is installed"}

    def get_udp_performance_metrics() -> dict:
        """Measured now: datagram/byte/event rates over the last 5 and 60 s, receive→dispatch
        latency p50/p99 over the last 10 s, queue depth and high-water mark, dispatch load,
        the kernel's drop count."""
        return svc().performance()

    def get_udp_memory_usage() -> dict:
        """Measured now: process RSS/VMS (psutil), queue bytes, ring and state sizes, kernel
        receive buffer."""
        return svc().memory()

    def get_udp_stats() -> dict:
        """All counters: datagrams, bytes, events valid/invalid/unknown, rejected, queue_dropped,
        queue high-water, kernel drops, per-client list, session, plus the sections other
        plugins add (the database's ``storage``)."""
        return svc().stats()

    def simulate_match(senders: Senders = 1, speed: Speed = 20.0, matches: Matches = 1) -> dict:
        """Send simulated matches (one court per sender) to our own port in the background.

        ``speed`` compresses match time (20: a 2-minute round in 6 s). Marks the session as
        simulated. Fails with ``unavailable`` when the server is not running and ``conflict``
        when a simulation runs already.
        """
        return svc().simulate(senders, speed, matches)

    def stop_simulation() -> dict:
        """Stop the running simulation; returns what it sent."""
        return svc().stop_simulation()

    return {f.__name__: f for f in (
        start_udp_server, stop_udp_server, get_udp_status, get_udp_settings, update_udp_settings,
        pss_start_listener, pss_stop_listener, pss_get_events, pss_get_match_state, get_live_data,
        get_udp_performance_metrics, get_udp_memory_usage, get_udp_stats, simulate_match,
        stop_simulation)}


# -------------------------------------------------------------------------------------- hooks


@hookimpl
def restrike_register_commands(register, app):
    service_of(app)  # reads and validates the settings: a bad config section fails here
    for name, function in _commands(app).items():
        register(name, function)


@hookimpl
def restrike_startup(app):
    service_of(app).startup()


@hookimpl
def restrike_shutdown(app):
    service = app.extensions.get("udp")
    if service is not None:
        service.shutdown()


@hookimpl
def restrike_pss_events(events, app):
    service = app.extensions.get("udp")
    if service is not None:
        service.on_events(events)


@hookimpl
def restrike_cli_subcommands():
    return {"simulate": simulator.main}


__all__ = ["LiveFeed", "UdpService", "service_of", "ui_event"]
