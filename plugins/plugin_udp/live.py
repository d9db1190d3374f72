"""The live view of the feed: per-court match state and a ring of recent events in the UI's shape.

Kept by the UDP service, fed on the dispatch thread, read by commands on pywebview's threads.
"""

from __future__ import annotations

import threading
from collections import deque

from pss.describe import describe
from pss.match import MatchState
from pss.sides import athlete_side

EVENT_RING = 1000
MAX_SOURCES = 64
"""Courts whose match state is kept; the least recently active one is forgotten beyond this."""


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
