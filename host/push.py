"""Push service: plugins emit named events; the UI receives them in coalesced batches.

``emit`` never blocks and never waits for a window: it appends to a bounded buffer. A flusher
thread delivers what accumulated at most ``rate`` times per second (default 30) to every sink
(the pywebview window, each SSE client) as one batch ``[{"event": name, "payload": ...}, ...]``.
Each sink has its own bounded buffer, so a slow or closed window cannot make ingest wait or grow
memory: when a buffer is full the OLDEST pushes are dropped and counted (``stats()``), except
the newest snapshot (``latest_only``) of each name, which a sink always keeps. Only UI pushes are
ever dropped; stored data never goes through here. A receiver disconnected because it stopped
taking its pushes (an event stream whose client stopped reading) is counted in
``disconnected_stuck``.

Two kinds of payload are bounded per delivery rather than per push: a snapshot
(``emit(..., latest_only=True)``: only the newest survives) and a stream (``emit_items``: the
items of every push between two deliveries go out as one list of at most ``limit``, the newest;
the rest are counted as ``trimmed``). So a producer hands over everything and the host decides
what a page can take, in one place.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Any

log = logging.getLogger(__name__)


class Sink:
    """One receiver of batches, with its own bounded buffer and drop counter.

    Pushed (``deliver(batch)`` is called with what accumulated) or pulled (``notify()`` says
    something is waiting and the receiver calls ``take()`` when it can write: an SSE response
    whose client reads slowly). Either way at most ``max_pending`` stream pushes wait, the
    oldest are dropped and counted, and each snapshot name keeps only its newest payload, which
    is never dropped (their number is bounded by the names the code emits).
    """

    def __init__(self, name: str, deliver: Callable[[list[dict]], None] | None, max_pending: int,
                 threaded: bool = False, notify: Callable[[], None] | None = None):
        self.name = name
        self._deliver = deliver
        self._notify = notify
        self._pending: deque[tuple[int, dict]] = deque()  # (sequence, push), oldest first
        self._snapshots: dict[str, tuple[int, dict]] = {}  # name -> its newest (sequence, push)
        self._seq = 0
        self._max = max_pending
        self.dropped = 0
        self.delivered = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._ready: threading.Event | None = None
        if threaded:
            # A deliver that may block (pywebview's run_js waits for the page) gets its own
            # thread, so one stuck window cannot delay the other sinks.
            self._ready = threading.Event()
            threading.Thread(target=self._drain_loop, args=(self._ready,), name=f"push-{name}",
                             daemon=True).start()

    def _drain_loop(self, ready: threading.Event) -> None:
        while True:
            ready.wait()
            ready.clear()
            self._drain_now()

    @property
    def pending(self) -> int:
        """Pushes waiting for this receiver (stream pushes plus one per snapshot name)."""
        with self._lock:
            return len(self._pending) + len(self._snapshots)

    def offer(self, items: list[dict], latest: frozenset[str] = frozenset()) -> None:
        """Queue ``items``; those whose event name is in ``latest`` are snapshots."""
        with self._lock:
            for item in items:
                self._seq += 1
                if item["event"] in latest:
                    self._snapshots[item["event"]] = (self._seq, item)
                else:
                    self._pending.append((self._seq, item))
            overflow = len(self._pending) - self._max
            for _ in range(max(overflow, 0)):
                self._pending.popleft()
            self.dropped += max(overflow, 0)

    def take(self) -> list[dict]:
        """Everything waiting, in the order emitted (counted as delivered)."""
        with self._lock:
            merged = heapq.merge(self._pending, sorted(self._snapshots.values()),
                                 key=itemgetter(0))
            items = [item for _, item in merged]
            self._pending.clear()
            self._snapshots.clear()
            self.delivered += len(items)
        return items

    def drain(self) -> None:
        if self._notify is not None:
            if self.pending:
                self._call(self._notify, 0)
        elif self._ready is not None:
            self._ready.set()
        else:
            self._drain_now()

    def _drain_now(self) -> None:
        deliver = self._deliver
        if deliver is None:  # a pulled sink (notify): its receiver calls take() itself
            return
        items = self.take()
        if items:
            self._call(deliver, len(items), items)

    def _call(self, function: Callable, count: int, *args) -> None:
        try:
            function(*args)
        except Exception:
            self.failures += 1
            self.dropped += count
            self.delivered -= count
            log.warning("push sink %s failed; %d pushes dropped", self.name, count,
                        exc_info=True)


class PushService:
    """Coalescing, rate-limited, bounded fan-out of named events to UI sinks."""

    def __init__(self, rate: float = 30.0, max_pending: int = 20_000):
        self._interval = 1.0 / rate
        self._max_pending = max_pending
        self._buffer: list[dict] = []
        self._latest: dict[str, int] = {}  # name -> index in _buffer of its latest-only payload
        # name -> (index in _buffer, its items, render) of the stream pushes of this delivery
        self._streams: dict[str, tuple[int, deque, Callable[[Any], Any] | None]] = {}
        self.trimmed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sinks: dict[int, Sink] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.emitted = 0
        self.dropped = 0
        self.flushes = 0
        self.disconnected_stuck = 0

    def emit(self, name: str, payload: Any, *, latest_only: bool = False) -> None:
        """Queue a push for the UI. Never blocks.

        ``latest_only`` keeps only the newest payload of this name until the next delivery
        (snapshots such as the match state), in the place of the first one.
        """
        item = {"event": name, "payload": payload}
        with self._lock:
            self.emitted += 1
            if latest_only and name in self._latest:
                self._buffer[self._latest[name]] = item
                return
            if len(self._buffer) >= self._max_pending:
                self.dropped += 1
                return
            if latest_only:
                self._latest[name] = len(self._buffer)
            self._buffer.append(item)
        self._wake.set()

    def emit_items(self, name: str, items: list, *, limit: int,
                   render: Callable[[Any], Any] | None = None) -> None:
        """Queue items of a stream push (its payload is a list). Never blocks.

        Every item emitted under ``name`` between two deliveries goes out in one push of at
        most ``limit`` items, the newest, in order; the older ones are counted in
        ``stats()["trimmed"][name]`` (a page that needs them reads them back with a command).
        ``render`` turns each delivered item into its payload on the flusher thread, so an
        item that is trimmed costs nothing more.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        with self._lock:
            self.emitted += 1
            stream = self._streams.get(name)
            if stream is None:
                if len(self._buffer) >= self._max_pending:
                    self.dropped += 1
                    return
                stream = (len(self._buffer), deque(maxlen=limit), render)
                self._streams[name] = stream
                self._buffer.append({"event": name, "payload": stream[1]})
            pending = stream[1]
            bound = pending.maxlen  # always set: every stream's deque is made with maxlen
            overflow = 0 if bound is None else len(pending) + len(items) - bound
            if overflow > 0:
                self.trimmed[name] = self.trimmed.get(name, 0) + overflow
            pending.extend(items)
        self._wake.set()

    def add_sink(self, name: str, deliver: Callable[[list[dict]], None] | None = None,
                 max_pending: int = 5_000, threaded: bool = False,
                 notify: Callable[[], None] | None = None) -> Sink:
        """Register a receiver; ``deliver(batch)`` runs on the flusher thread (or its own).

        With ``notify`` instead, the receiver pulls: ``notify()`` runs on the flusher thread
        when pushes wait, and the receiver calls ``sink.take()`` when it can write them.
        """
        sink = Sink(name, deliver, max_pending, threaded, notify)
        with self._lock:
            self._sinks[id(sink)] = sink
        return sink

    def remove_sink(self, sink: Sink, stuck: bool = False) -> None:
        """Forget a receiver; its drops stay in the totals of ``stats()``. ``stuck``: it goes
        because it stopped taking its pushes (counted in ``disconnected_stuck``)."""
        with self._lock:
            if self._sinks.pop(id(sink), None) is None:
                return
            self.dropped += sink.dropped
            self.disconnected_stuck += stuck

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="push-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)
        self.flush()

    def flush(self) -> None:
        """Deliver what is buffered now (the flusher calls this; tests may too)."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            latest = frozenset(self._latest)
            self._latest.clear()
            streams, self._streams = self._streams, {}
            sinks = list(self._sinks.values())
        for name, (index, items, render) in streams.items():
            batch[index] = {"event": name, "payload": self._render(name, items, render)}
        if batch:
            self.flushes += 1
            for sink in sinks:
                sink.offer(batch, latest)
        for sink in sinks:
            sink.drain()

    def _render(self, name: str, items: deque, render: Callable[[Any], Any] | None) -> list:
        if render is None:
            return list(items)
        try:
            return [render(item) for item in items]
        except Exception:  # a bug in a renderer must not stop the flusher: the push is dropped
            log.exception("rendering the %s push failed; %d items dropped", name, len(items))
            with self._lock:
                self.dropped += 1
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
            # The rate limit: at most one delivery per interval, bursts coalesce meanwhile.
            self._stop.wait(self._interval)

    def stats(self) -> dict:
        """UI push counters: ``emitted``, ``dropped`` (buffer full or slow sinks, also those
        since removed), ``flushes``, ``trimmed`` (per stream name, items beyond a delivery's
        ``limit``), ``disconnected_stuck`` (receivers disconnected because they stopped taking
        their pushes: an event stream whose client stopped reading), and per sink
        ``{name, delivered, dropped, failures, pending}``."""
        with self._lock:
            sinks = list(self._sinks.values())
            trimmed = dict(self.trimmed)
        return {
            "emitted": self.emitted,
            "dropped": self.dropped + sum(s.dropped for s in sinks),
            "flushes": self.flushes,
            "trimmed": trimmed,
            "disconnected_stuck": self.disconnected_stuck,
            "sinks": [
                {"name": s.name, "delivered": s.delivered, "dropped": s.dropped,
                 "failures": s.failures, "pending": s.pending}
                for s in sinks
            ],
        }
