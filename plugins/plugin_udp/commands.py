"""The UDP plugin's commands (names kept from the original app)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from restrike.host.errors import NotFound
from restrike.pss.match import MatchState

from .live import EVENT_RING
from .service import UdpService
from .settings import SettingsChange, UdpSettings, apply_update

Senders = Annotated[int, Field(ge=1, le=64)]
Speed = Annotated[float, Field(gt=0, le=10_000)]
Matches = Annotated[int, Field(ge=1, le=100)]
Port = Annotated[int, Field(ge=1, le=65535)]
Limit = Annotated[int, Field(ge=0, le=EVENT_RING)]


def commands(app) -> dict:
    """The commands of ``app``'s UDP service, by name."""

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

    def update_udp_settings(settings: SettingsChange) -> dict:
        """Change the settings (only the fields given); a running server restarts with them.

        ``bind`` must be 0.0.0.0 / :: (every interface) or a unicast IP address this computer
        has (not multicast, not broadcast), ``port`` 1..65535, ``receiveBuffer`` bytes (numbers
        are JSON numbers: ``"6000"`` or ``true`` is refused), ``allowedSources`` addresses or
        CIDR networks (empty: any). Returns the new settings. Bad values fail with
        ``validation_error`` naming the field and change nothing; an address that does not bind
        (a port in use), whether the server runs or not, fails with ``unavailable`` and changes
        nothing. The fields given are saved in the data dir, only once they bound, and used at
        the next start (an explicit ``--udp-bind``/``--udp-port`` still wins); a saved address
        that no longer binds at start-up is reported in ``get_udp_stats`` (``settings_problem``)
        and the default address is used.
        """
        service = svc()
        service.update_settings(settings)
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
