"""Receiving the PSS feed: a thread per socket that only reads, a bounded queue, one dispatcher.

``udp-recv-<port>`` does nothing but read (on Linux ``recvmmsg``, up to 64 datagrams of up to
64 KiB per call, made without releasing the GIL - see ``make_reader``; elsewhere ``recvfrom``),
take two clock readings, check the optional allow-list, count, and append
``(bytes, ip, port, wall_ns, mono_ns, seq)`` to the queue. It never parses, never logs per
datagram and never blocks on the queue. ``udp-dispatch`` parses
(``ingested.ingest_datagram``) and hands batches (at most ``MAX_BATCH_EVENTS`` events, at most
``MAX_BATCH_DELAY_NS`` of work) to ``deliver`` — the plugin passes ``app.hooks.pss_events``.

Queue policy: the queue between the two is bounded by a datagram count and a byte total
(defaults 500,000 datagrams / 128 MiB: many minutes of a full tournament, whose real load is a
few datagrams per second per court). A datagram costs its payload plus ``ITEM_OVERHEAD`` bytes
(the Python objects that carry it), so the byte bound is the queue's memory, small datagrams
included. When a bound would be exceeded the NEWEST datagram is
refused and counted as ``queue_dropped``; the receive thread goes on reading, so the kernel
buffer never backs up because of us. This queue is also where a backlog waits when a plugin is
slower than the feed: the database plugin's hook waits for room in the writer's queue
(back-pressure), which slows the dispatcher, not the receive thread - and a raw datagram costs
far less memory here than its parsed events do there.

Parsing limits (``pss.protocol.Limits``, from the settings): a message beyond the field limits,
or the rest of a datagram beyond the message cap, is one raw ``invalid`` event naming the limit;
``over_limits`` counts them by limit.

Clocks: ``received_ns`` is ``host.timeutil.clock_ns()`` at reception, so any plugin in the process
can measure its own latency as ``clock_ns() - event.received_ns``; ``received_at`` is the
wall clock of the same moment in ``host.timeutil`` format.

Stopping reads what the kernel already holds for the socket, then dispatches everything in the
queue before ``stop()`` returns: a datagram that was accepted is never lost by a stop.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import logging
import os
import select
import socket
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable

from restrike.host.timeutil import clock_ns, to_iso
from restrike.pss.ingested import ingest_datagram
from restrike.pss.protocol import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

RECV_SIZE = 65536
ITEM_OVERHEAD = 256
"""Bytes a queued datagram costs besides its payload: its tuple, the bytes object's header and
three ints (220 measured with sys.getsizeof, rounded up)."""
MAX_BATCH_EVENTS = 512
MAX_BATCH_DELAY_NS = 5_000_000
MAX_CLIENTS = 1024
"""Sources tracked one by one; datagrams from more sources are summed in ``clients_overflow``."""
_TAKE = 256  # datagrams the dispatcher takes from the queue per lock hold
_IDLE_WAIT = 0.1  # dispatcher wake-up when idle: stop checks and rate history
_HISTORY_EVERY_NS = 500_000_000
_LATENCY_BATCHES = 4096  # batches of latency samples kept (each an array of int64)
_ERRORS_BEFORE_GIVING_UP = 10_000
_FINAL_DRAIN_NS = 1_000_000_000  # at stop, read the kernel's backlog for at most this long

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux") else None)


class BindError(OSError):
    """The socket could not be opened; the message says why in the user's terms."""


# ------------------------------------------------------------------------------------ socket


def open_socket(bind: str, port: int, receive_buffer: int) -> tuple[socket.socket, int]:
    """A bound, non-blocking UDP socket and the receive buffer size the OS granted (bytes).

    As root on Linux ``SO_RCVBUFFORCE`` may exceed ``net.core.rmem_max``; otherwise the kernel
    caps ``SO_RCVBUF`` there. Linux reports twice the requested size (its bookkeeping share).
    Raises ``BindError`` with a plain message (port in use, address not local, ...).
    """
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        granted = set_receive_buffer(sock, receive_buffer)
        if sys.platform == "win32" and hasattr(socket, "SIO_UDP_CONNRESET"):
            # Windows reports an ICMP "port unreachable" as an error on the listening socket.
            sock.ioctl(socket.SIO_UDP_CONNRESET, False)
        # No SO_REUSEADDR: a second listener on the port must fail, not silently share datagrams.
        sock.bind((bind, port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, _bind_message(bind, port, exc)) from exc
    return sock, granted


def _bind_message(bind: str, port: int, exc: OSError) -> str:
    where = f"UDP port {port} on {bind}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use by another program"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{bind} is not an address of this computer"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied (ports below 1024 need administrator rights)"
    return f"{where} could not be opened: {exc.strerror or exc}"


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer; return what the OS granted."""
    if SO_RCVBUFFORCE is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            pass  # not root (no CAP_NET_ADMIN): the plain option, capped by rmem_max
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError:
        log.warning("could not set the UDP receive buffer to %d bytes", size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def kernel_socket_info(sock: socket.socket) -> dict | None:
    """Linux: the kernel's counters for this socket from ``/proc/net/udp[6]``, else None.

    ``drops`` counts datagrams the kernel discarded because the receive buffer was full;
    ``rx_queue_bytes`` is what waits in it now. The row is found by local port and inode.
    """
    try:
        inode = os.fstat(sock.fileno()).st_ino
        port = sock.getsockname()[1]
    except OSError:
        return None
    name = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
    try:
        with open(name, encoding="ascii") as f:
            lines = f.readlines()[1:]
    except OSError:
        return None
    for line in lines:
        cols = line.split()
        # sl local rem st tx:rx tr:when retr uid timeout inode ref pointer drops
        if len(cols) < 13:
            continue
        if int(cols[1].rsplit(":", 1)[1], 16) == port and int(cols[9]) == inode:
            return {"drops": int(cols[12]), "rx_queue_bytes": int(cols[4].split(":")[1], 16)}
    return None


# ------------------------------------------------------------------------------------- queue


class DatagramQueue:
    """Bounded FIFO between the receive threads and the dispatcher; ``put`` never blocks.

    Bounded by ``max_items`` datagrams and ``max_bytes`` bytes (payload plus ``item_overhead``
    each): when either would be exceeded, ``put`` refuses the newest datagram, counts it in
    ``dropped`` and returns False.
    """

    def __init__(self, max_items: int, max_bytes: int, item_overhead: int = ITEM_OVERHEAD):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.item_overhead = item_overhead
        self._items: deque = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiting = False
        self.dropped = 0
        self.high_water = 0
        self.high_water_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def put_many(self, items: list) -> int:
        """Append datagrams in order until a bound is reached; the rest are dropped (counted).

        Returns how many were accepted.
        """
        with self._lock:
            queue = self._items
            room = self.max_items - len(queue)
            accepted = 0
            overhead = self.item_overhead
            for item in items:
                size = len(item[0]) + overhead
                if accepted >= room or self._bytes + size > self.max_bytes:
                    break
                queue.append(item)
                self._bytes += size
                accepted += 1
            self.dropped += len(items) - accepted
            if len(queue) > self.high_water:
                self.high_water = len(queue)
            if self._bytes > self.high_water_bytes:
                self.high_water_bytes = self._bytes
            waiting = self._waiting
        if waiting:
            self._wake.set()
        return accepted

    def _pop(self, max_items: int) -> list:
        with self._lock:
            items = self._items
            count = min(max_items, len(items))
            if not count:
                return []
            out = [items.popleft() for _ in range(count)]
            self._bytes -= sum(len(item[0]) for item in out) + self.item_overhead * count
            return out

    def take(self, max_items: int, timeout: float) -> list:
        """Up to ``max_items`` datagrams, oldest first; waits up to ``timeout`` s for the first."""
        out = self._pop(max_items)
        if out or timeout <= 0:
            return out
        self._wake.clear()
        self._waiting = True  # announced before the re-check, so a put in between wakes us
        try:
            out = self._pop(max_items)
            if out:
                return out
            self._wake.wait(timeout)
        finally:
            self._waiting = False
        return self._pop(max_items)

    def wake(self) -> None:
        self._wake.set()


# ------------------------------------------------------------------------------------ reading


def make_reader(sock: socket.socket, batch: bool = True) -> Callable[[], list]:
    """A function that reads what the socket holds now: ``[(bytes, ip, port), ...]``.

    Raises ``BlockingIOError`` when nothing waits. With ``batch`` on Linux it is one
    ``recvmmsg`` call for up to ``MMSG_BATCH`` datagrams, made without releasing the GIL: a
    receive thread that released the GIL on every datagram would wait for it again each time
    while the dispatcher parses (the GIL "convoy"), and the kernel buffer would overflow. The
    plain path (other systems, or ``batch=False``) reads one datagram per call.
    """
    if batch:
        reader = _mmsg_reader(sock)
        if reader is not None:
            return reader
    recvfrom = sock.recvfrom

    def read_one() -> list:
        data, addr = recvfrom(RECV_SIZE)
        return [(data, addr[0], addr[1])]

    return read_one


MMSG_BATCH = 64
_MSG_DONTWAIT = 0x40
_SOCKADDR_SIZE = 128


def _mmsg_reader(sock: socket.socket) -> Callable[[], list] | None:
    libc = _libc()
    if libc is None:
        return None
    import ctypes

    class IoVec(ctypes.Structure):
        _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]

    class MsgHdr(ctypes.Structure):
        _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                    ("msg_iov", ctypes.POINTER(IoVec)), ("msg_iovlen", ctypes.c_size_t),
                    ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                    ("msg_flags", ctypes.c_int)]

    class MMsgHdr(ctypes.Structure):
        _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]

    n = MMSG_BATCH
    buffers = (ctypes.c_char * (RECV_SIZE * n))()
    names = (ctypes.c_char * (_SOCKADDR_SIZE * n))()
    iovecs = (IoVec * n)()
    msgs = (MMsgHdr * n)()
    base, name_base = ctypes.addressof(buffers), ctypes.addressof(names)
    for i in range(n):
        iovecs[i].iov_base = base + i * RECV_SIZE
        iovecs[i].iov_len = RECV_SIZE
        hdr = msgs[i].msg_hdr
        hdr.msg_name = name_base + i * _SOCKADDR_SIZE
        hdr.msg_namelen = _SOCKADDR_SIZE
        hdr.msg_iov = ctypes.pointer(iovecs[i])
        hdr.msg_iovlen = 1
    recvmmsg = libc["recvmmsg"]  # a new function object: its argtypes are ours alone
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                         ctypes.c_void_p]
    recvmmsg.restype = ctypes.c_int
    fd = sock.fileno()
    msgs_ptr = ctypes.addressof(msgs)
    string_at = ctypes.string_at
    get_errno = ctypes.get_errno
    addresses: dict[bytes, tuple[str, int]] = {}
    used = [n]  # entries whose msg_namelen the kernel overwrote last time
    keep_alive = (buffers, names, iovecs, msgs)  # the kernel writes there by address

    def read_many(_keep=keep_alive) -> list:
        for i in range(used[0]):
            msgs[i].msg_hdr.msg_namelen = _SOCKADDR_SIZE
        got = recvmmsg(fd, msgs_ptr, n, _MSG_DONTWAIT, None)
        if got < 0:
            used[0] = 0
            code = get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise BlockingIOError(code, os.strerror(code))
            raise OSError(code, os.strerror(code))
        used[0] = got
        out = []
        for i in range(got):
            msg = msgs[i]
            raw_name = string_at(name_base + i * _SOCKADDR_SIZE, msg.msg_hdr.msg_namelen)
            addr = addresses.get(raw_name)
            if addr is None:
                addr = _decode_sockaddr(raw_name)
                if len(addresses) > 4096:  # spoofed floods must not grow memory
                    addresses.clear()
                addresses[raw_name] = addr
            out.append((string_at(base + i * RECV_SIZE, msg.msg_len), addr[0], addr[1]))
        return out

    return read_many


@functools.cache
def _libc():
    """libc as a ``PyDLL`` (calls keep the GIL), if this is Linux and it has ``recvmmsg``.

    ``PyDLL(None)`` is the process's own symbol table, which holds libc: no
    ``ctypes.util.find_library``, which runs ``ldconfig`` in a subprocess (slow, and a fork of
    a busy process while datagrams arrive).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.PyDLL(None, use_errno=True)
        libc.recvmmsg  # noqa: B018 - raises AttributeError when missing
        return libc
    except (OSError, AttributeError):
        return None


def _decode_sockaddr(raw: bytes) -> tuple[str, int]:
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        ip = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        return ip, port
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


# ---------------------------------------------------------------------------------- matching


def source_filter(allowed: Iterable[str]) -> Callable[[str], bool] | None:
    """A predicate ``ip -> bool`` for an allow-list of addresses/networks (None: allow all)."""
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed]
    if not networks:
        return None
    cache: dict[str, bool] = {}

    def allowed_ip(ip: str) -> bool:
        verdict = cache.get(ip)
        if verdict is None:
            try:
                addr = ipaddress.ip_address(ip.split("%", 1)[0])
                if addr.version == 6 and addr.ipv4_mapped:  # dual-stack socket
                    addr = addr.ipv4_mapped
                verdict = any(addr in net for net in networks)
            except ValueError:
                verdict = False
            if len(cache) > 4096:  # spoofed floods must not grow memory
                cache.clear()
            cache[ip] = verdict
        return verdict

    return allowed_ip


# ---------------------------------------------------------------------------- time format


class _IsoClock:
    """``host.timeutil`` format from nanoseconds, formatting the date part once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, wall_ns: int) -> str:
        second, rest = divmod(wall_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = to_iso(float(second))[:-7]  # "YYYY-mm-ddTHH:MM:SS."
        return f"{self._prefix}{rest // 1000:06d}Z"


def iso_from_ns(wall_ns: int) -> str:
    """A ``time.time_ns()`` value in the stored time format."""
    second, rest = divmod(wall_ns, 1_000_000_000)
    return f"{to_iso(float(second))[:-7]}{rest // 1000:06d}Z"


# --------------------------------------------------------------------------------- receiver


class Receiver:
    """One session of listening: sockets, their receive threads, the queue and the dispatcher.

    ``deliver(batch)`` is called on the dispatch thread with lists of ``IngestedEvent``. Counters
    are plain attributes written by one thread each and read by anyone (approximate while
    running, exact after ``stop()``).
    """

    def __init__(self, session_id: str, deliver: Callable[[list], None], *,
                 allowed_sources: Iterable[str] = (), queue_max_datagrams: int = 500_000,
                 queue_max_bytes: int = 128 * 1024 * 1024, batch_receive: bool = True,
                 limits: Limits = DEFAULT_LIMITS):
        self.session_id = session_id
        self.limits = limits
        self.batch_receive = batch_receive
        self._deliver = deliver
        self.queue = DatagramQueue(queue_max_datagrams, queue_max_bytes)
        self._allowed = source_filter(allowed_sources)
        self.allowed_sources = tuple(allowed_sources)
        self._sockets: list[socket.socket] = []
        self.receive_buffers: list[int] = []
        self._recv_threads: list[threading.Thread] = []
        self._dispatch_thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._running = False
        self._receivers_done = threading.Event()
        self._seq = itertools.count(1)  # next() is atomic: safe for several receive threads
        self._iso = _IsoClock()
        self.started_ns = time.monotonic_ns()
        # receive-thread counters
        self.datagrams = 0
        self.bytes = 0
        self.rejected = 0
        self.last_rejected: str | None = None
        self.recv_errors = 0
        self.last_recv_error: str | None = None
        # (ip, port) -> [first_ns, last_ns, packets, bytes, events]
        self.clients: dict[tuple[str, int], list] = {}
        self.clients_overflow = 0
        # dispatch-thread counters
        self.dispatched_datagrams = 0
        self.events = 0
        self.events_valid = 0
        self.events_invalid = 0
        self.events_unknown = 0
        # invalid events kept raw because they broke a parser limit, by limit (Limits fields)
        self.over_limits = dict.fromkeys(Limits._fields, 0)
        self.batches = 0
        self.deliver_errors = 0
        self.last_deliver_error: str | None = None
        self.dispatch_busy_ns = 0
        self.max_batch_ns = 0
        self.latencies: deque[tuple[int, array]] = deque(maxlen=_LATENCY_BATCHES)
        # (monotonic ns, datagrams, bytes, events, dispatched) every ~0.5 s, for the rates
        self.history: deque[tuple[int, int, int, int, int]] = deque(maxlen=240)
        self.history.append((self.started_ns, 0, 0, 0, 0))
        self._last_history_ns = self.started_ns
        self.kernel_final: dict | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self, sockets: list[tuple[socket.socket, int]]) -> None:
        """Start the receive threads (one per ``(socket, granted buffer)``) and the dispatcher."""
        self._running = True
        self._dispatch_thread = threading.Thread(target=self._dispatch_loop, name="udp-dispatch",
                                                 daemon=True)
        self._dispatch_thread.start()
        for sock, granted in sockets:
            self._sockets.append(sock)
            self.receive_buffers.append(granted)
            port = sock.getsockname()[1]
            thread = threading.Thread(target=self._receive_loop, args=(sock,),
                                      name=f"udp-recv-{port}", daemon=True)
            self._recv_threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop reading, dispatch everything already received, close the sockets."""
        if not self._running:
            return
        self._running = False
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        for thread in self._recv_threads:
            thread.join(timeout)
        infos = [kernel_socket_info(s) for s in self._sockets]
        if any(infos):
            self.kernel_final = _sum_kernel(infos)
        for sock in self._sockets:
            sock.close()
        self._receivers_done.set()
        self.queue.wake()
        if self._dispatch_thread is not threading.current_thread():
            self._dispatch_thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------------------- receive loop

    def _receive_loop(self, sock: socket.socket) -> None:
        read = make_reader(sock, self.batch_receive)
        put_many = self.queue.put_many
        clients = self.clients
        allowed = self._allowed
        wall = time.time_ns
        mono = clock_ns
        next_seq = self._seq.__next__
        wait_for = [sock, self._wake_r]
        consecutive_errors = 0
        final_drain = False
        drain_deadline = None
        while True:
            try:
                chunk = read()
            except BlockingIOError:
                if final_drain or not self._running:
                    if final_drain:
                        return
                    final_drain = True  # read what the kernel already holds, then leave
                    continue
                try:
                    select.select(wait_for, [], [], 1.0)
                except (OSError, ValueError):
                    return
                continue
            except OSError as exc:
                # ICMP errors (ConnectionRefused/Reset) and the like: the socket is still good.
                if not self._running and sock.fileno() == -1:
                    return
                self.recv_errors += 1
                self.last_recv_error = f"{type(exc).__name__}: {exc}"
                consecutive_errors += 1
                if consecutive_errors > _ERRORS_BEFORE_GIVING_UP:
                    log.error("UDP receive on port %s keeps failing (%s); receiving stopped",
                              sock.getsockname()[1], exc)
                    return
                continue
            consecutive_errors = 0
            wall_ns = wall()
            mono_ns = mono()
            if not self._running:
                # Stopping: take what the kernel already holds, but not a flood for ever.
                if drain_deadline is None:
                    drain_deadline = mono_ns + _FINAL_DRAIN_NS
                elif mono_ns > drain_deadline:
                    return
            items = []
            total = 0
            for data, ip, port in chunk:
                size = len(data)
                total += size
                if allowed is not None and not allowed(ip):
                    self.rejected += 1
                    self.last_rejected = f"{ip}:{port}"
                    continue
                client = clients.get((ip, port))
                if client is None:
                    if len(clients) < MAX_CLIENTS:
                        clients[(ip, port)] = [wall_ns, wall_ns, 1, size, 0]
                    else:
                        self.clients_overflow += 1
                else:
                    client[1] = wall_ns
                    client[2] += 1
                    client[3] += size
                items.append((data, ip, port, wall_ns, mono_ns, next_seq()))
            self.datagrams += len(chunk)
            self.bytes += total
            if items:
                put_many(items)

    # ------------------------------------------------------------------------ dispatch loop

    def _dispatch_loop(self) -> None:
        take = self.queue.take
        while True:
            items = take(_TAKE, _IDLE_WAIT)
            if not items:
                self._record_history()
                if self._receivers_done.is_set() and not len(self.queue):
                    return
                continue
            batch: list = []
            started = time.monotonic_ns()
            while items:
                for item in items:
                    self._parse_into(batch, item)
                    if (len(batch) >= MAX_BATCH_EVENTS
                            or time.monotonic_ns() - started >= MAX_BATCH_DELAY_NS):
                        self._flush(batch)
                        batch = []
                        started = time.monotonic_ns()
                items = take(_TAKE, 0)
            if batch:
                self._flush(batch)
            self._record_history()

    def _parse_into(self, batch: list, item: tuple) -> None:
        data, ip, port, wall_ns, mono_ns, seq = item
        events = ingest_datagram(data, session_id=self.session_id, seq=seq,
                                 received_at=self._iso(wall_ns), received_ns=mono_ns,
                                 source_ip=ip, source_port=port, limits=self.limits)
        for ev in events:
            kind = ev.event.type
            if kind == "invalid":
                self.events_invalid += 1
                limit = ev.event.limit
                if limit is not None:
                    self.over_limits[limit] += 1
            elif kind == "unknown":
                self.events_unknown += 1
            else:
                self.events_valid += 1
        self.events += len(events)
        self.dispatched_datagrams += 1
        client = self.clients.get((ip, port))
        if client is not None:
            client[4] += len(events)
        batch.extend(events)

    def _flush(self, batch: list) -> None:
        start = clock_ns()
        # receive -> hand-over latency, one sample per datagram (its first message)
        self.latencies.append(
            (start, array("q", [start - ev.received_ns for ev in batch if ev.index == 0])))
        try:
            self._deliver(batch)
        except Exception as exc:  # the hooks isolate plugins; this guards the dispatcher itself
            self.deliver_errors += 1
            self.last_deliver_error = f"{type(exc).__name__}: {exc}"
            if self.deliver_errors == 1 or self.deliver_errors % 1000 == 0:
                log.exception("delivering a batch of %d events failed", len(batch))
        took = time.monotonic_ns() - start
        self.batches += 1
        self.dispatch_busy_ns += took
        if took > self.max_batch_ns:
            self.max_batch_ns = took

    def _record_history(self) -> None:
        now = time.monotonic_ns()
        if now - self._last_history_ns >= _HISTORY_EVERY_NS:
            self._last_history_ns = now
            self.history.append((now, self.datagrams, self.bytes, self.events,
                                 self.dispatched_datagrams))

    # ------------------------------------------------------------------------------ reading

    def kernel_info(self) -> dict | None:
        """Kernel drop count and queued bytes of the sockets (final values once stopped)."""
        if not self._running:
            return self.kernel_final
        infos = [kernel_socket_info(s) for s in self._sockets]
        return _sum_kernel(infos) if any(infos) else None

    def counters(self) -> dict:
        """Every counter of this session (JSON-ready)."""
        kernel = self.kernel_info()
        return {
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "rejected": self.rejected,
            "last_rejected": self.last_rejected,
            "queue_dropped": self.queue.dropped,
            "dispatched_datagrams": self.dispatched_datagrams,
            "events": self.events,
            "events_valid": self.events_valid,
            "events_invalid": self.events_invalid,
            "events_unknown": self.events_unknown,
            "over_limits": dict(self.over_limits),
            "limits": self.limits._asdict(),
            "batches": self.batches,
            "deliver_errors": self.deliver_errors,
            "last_deliver_error": self.last_deliver_error,
            "recv_errors": self.recv_errors,
            "last_recv_error": self.last_recv_error,
            "queue_depth": len(self.queue),
            "queue_bytes": self.queue.bytes,
            "queue_high_water": self.queue.high_water,
            "queue_high_water_bytes": self.queue.high_water_bytes,
            "queue_max_datagrams": self.queue.max_items,
            "queue_max_bytes": self.queue.max_bytes,
            "kernel_drops": kernel["drops"] if kernel else None,
            "kernel_queue_bytes": kernel["rx_queue_bytes"] if kernel else None,
            "clients_tracked": len(self.clients),
            "clients_overflow": self.clients_overflow,
        }

    def client_list(self) -> list[dict]:
        """Per source address: first/last seen, datagrams, bytes and events."""
        rows = []
        for (ip, port), (first, last, packets, size, events) in list(self.clients.items()):
            rows.append({"address": ip, "port": port, "first_seen": iso_from_ns(first),
                         "last_seen": iso_from_ns(last), "packets": packets, "bytes": size,
                         "events": events})
        rows.sort(key=lambda r: r["last_seen"], reverse=True)
        return rows

    def latency_percentiles(self, window_s: float = 10.0) -> dict:
        """Receive→dispatch latency (ms) of the datagrams dispatched in the last ``window_s``."""
        since = time.monotonic_ns() - int(window_s * 1e9)
        values = array("q")
        for at, samples in list(self.latencies):
            if at >= since:
                values.extend(samples)
        if not values:
            return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        ordered = sorted(values)
        n = len(ordered)
        return {
            "samples": n,
            "p50_ms": round(ordered[(n - 1) // 2] / 1e6, 3),
            "p99_ms": round(ordered[min(n - 1, int(n * 0.99))] / 1e6, 3),
            "max_ms": round(ordered[-1] / 1e6, 3),
        }

    def rates(self, window_s: float = 5.0) -> dict:
        """Datagrams, bytes and events per second over about the last ``window_s`` seconds."""
        now = time.monotonic_ns()
        current = (now, self.datagrams, self.bytes, self.events, self.dispatched_datagrams)
        history = list(self.history)
        base = None
        for point in history:
            if now - point[0] <= window_s * 1e9:
                base = point
                break
        if base is None:
            base = history[-1]
        seconds = (now - base[0]) / 1e9
        if seconds <= 0:
            return {"window_s": 0.0, "datagrams_per_s": 0.0, "bytes_per_s": 0.0,
                    "events_per_s": 0.0, "dispatched_per_s": 0.0}
        return {
            "window_s": round(seconds, 3),
            "datagrams_per_s": round((current[1] - base[1]) / seconds, 1),
            "bytes_per_s": round((current[2] - base[2]) / seconds, 1),
            "events_per_s": round((current[3] - base[3]) / seconds, 1),
            "dispatched_per_s": round((current[4] - base[4]) / seconds, 1),
        }


def _sum_kernel(infos: list[dict | None]) -> dict:
    present = [i for i in infos if i]
    return {"drops": sum(i["drops"] for i in present),
            "rx_queue_bytes": sum(i["rx_queue_bytes"] for i in present)}
