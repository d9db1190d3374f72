"""The live view of the feed: per-court match state and a ring of recent events in the UI's shape.

Kept by the UDP service, fed on the dispatch thread, read by commands on pywebview's threads.

Bounds: the ring keeps at most ``EVENT_RING`` events and ``EVENT_RING_BYTES`` bytes (an event
costs its raw text, its ``raw_b64`` and ``RING_ENTRY_OVERHEAD``); beyond either the oldest
events leave it (they are in the database), and those that left because of the byte bound are
counted in ``ring_dropped_for_bytes``. A UI event carries at most ``UI_RAW_CHARS`` characters of
its raw text (``raw_truncated`` says so; the database keeps it whole), so every push and page
of events is small whatever arrived.
"""

from __future__ import annotations

import threading
from collections import deque

from restrike.pss.describe import describe
from restrike.pss.match import MatchState
from restrike.pss.sides import athlete_side

EVENT_RING = 1000
EVENT_RING_BYTES = 8 * 1024 * 1024
RING_ENTRY_OVERHEAD = 1024
"""Bytes of a ring entry besides its text: the ingested event, its parsed model, the tuple."""
UI_RAW_CHARS = 1024
"""Raw text a UI event shows; a real message is a few dozen characters."""
MAX_SOURCES = 64
"""Courts whose match state is kept; the least recently active one is forgotten beyond this."""


class LiveFeed:
    """Per-court match state and the ring of recent events; written by the dispatch thread."""

    def __init__(self, ring_size: int = EVENT_RING, max_sources: int = MAX_SOURCES,
                 ring_bytes: int = EVENT_RING_BYTES):
        self._lock = threading.Lock()
        # source "ip:port" -> [MatchState, round, clock text, last active monotonic ns]
        self._courts: dict[str, list] = {}
        self._names: dict[tuple[str, int], str] = {}
        # (entry, its bytes): entry is (IngestedEvent, source, round, clock)
        self._ring: deque[tuple] = deque()
        self._ring_size = ring_size
        self._ring_max_bytes = ring_bytes
        self._ring_bytes = 0
        self.ring_dropped_for_bytes = 0
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
        """Fold a batch in; returns (the court whose state changed last, the ring entries added).

        Runs for every event of the feed on the dispatch thread: the court lookup and the ring's
        bounds are spelled out here, on local names. The ring drops its oldest entries beyond
        ``ring_size`` events or ``ring_bytes`` bytes (an entry costs its raw text, its
        ``raw_b64`` and ``RING_ENTRY_OVERHEAD``).
        """
        changed = None
        added = []
        names, courts, ring = self._names, self._courts, self._ring
        ring_size, ring_max_bytes = self._ring_size, self._ring_max_bytes
        with self._lock:
            ring_bytes = self._ring_bytes
            try:
                for ev in events:
                    received_ns = ev.received_ns
                    source = names.get((ev.source_ip, ev.source_port))
                    court = courts.get(source) if source is not None else None
                    if court is None:
                        source, court = self._court(ev.source_ip, ev.source_port, received_ns)
                    event = ev.event
                    kind = event.type
                    if kind == "fight_loaded":
                        court[1] = court[2] = None
                    elif kind == "round":
                        court[1] = event.round
                    elif kind == "clock":
                        court[2] = event.clock
                    court[3] = received_ns
                    if court[0].apply(event, received_ns, ev.received_at):
                        changed = source
                    entry = (ev, source, court[1], court[2])
                    added.append(entry)
                    raw_b64 = ev.raw_b64
                    size = RING_ENTRY_OVERHEAD + len(ev.raw) + (len(raw_b64) if raw_b64 else 0)
                    ring.append((entry, size))
                    ring_bytes += size
                    while len(ring) > ring_size:
                        ring_bytes -= ring.popleft()[1]
                    while ring_bytes > ring_max_bytes and len(ring) > 1:
                        ring_bytes -= ring.popleft()[1]
                        self.ring_dropped_for_bytes += 1
            finally:
                self._ring_bytes = ring_bytes
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
            entries = [entry for entry, _ in self._ring]
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return [ui_event(*entry) for entry in entries]

    def sizes(self) -> dict:
        return {"event_ring": len(self._ring), "event_ring_capacity": self._ring_size,
                "event_ring_bytes": self._ring_bytes,
                "event_ring_max_bytes": self._ring_max_bytes,
                "event_ring_dropped_for_bytes": self.ring_dropped_for_bytes,
                "match_states": len(self._courts), "match_states_capacity": self._max_sources}


def ui_event(ev, source: str, round_: int | None, clock: str | None) -> dict:
    """One ingested event as the UI shows it (``pss_event`` pushes, ``pss_get_events``)."""
    event = ev.event
    kind = event.type
    try:
        text = describe(event)
    except Exception:  # noqa: BLE001 - a description must never cost the event
        text = kind
    raw, raw_b64 = ev.raw, ev.raw_b64
    truncated = len(raw) > UI_RAW_CHARS or (raw_b64 is not None and len(raw_b64) > UI_RAW_CHARS)
    if truncated:
        raw = raw[:UI_RAW_CHARS]
        raw_b64 = None if raw_b64 is None else raw_b64[:UI_RAW_CHARS]
    return {
        "type": kind,
        "event_code": event.code,
        "athlete": athlete_side(event.athlete),
        "round": round_,
        "time": clock,
        "timestamp": ev.received_at,
        "raw_data": raw,
        "raw_b64": raw_b64,
        "raw_truncated": truncated,
        "description": text,
        "is_valid": kind not in ("invalid", "unknown"),
        # a field (only Invalid has one): getattr on a model without it raises and catches
        # an AttributeError in pydantic's __getattr__, for every event rendered
        "error": event.__dict__.get("error"),
        "seq": ev.seq,
        "index": ev.index,
        "source": source,
        "session_id": ev.session_id,
    }
