"""The receiver on its own: real UDP sockets on 127.0.0.1, a recording ``deliver``, no app."""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading

import pytest

from restrike.plugins.plugin_udp.receiver import (
    ITEM_OVERHEAD,
    BindError,
    DatagramQueue,
    Receiver,
    kernel_socket_info,
    make_reader,
    open_socket,
)
from tests.conftest import free_port, wait_for

BOTH_READERS = pytest.mark.parametrize("batch", [True, False], ids=["recvmmsg", "recvfrom"])


def odd_datagrams(shared_dir) -> list[bytes]:
    rows = [json.loads(line) for line in
            (shared_dir / "fixtures" / "odd_datagrams.jsonl").read_text("utf-8").splitlines()
            if line.strip()]
    return [base64.b64decode(r["datagram_b64"]) if "datagram_b64" in r
            else r["datagram"].encode("utf-8") for r in rows]


class Delivered:
    """A ``deliver`` that records every batch; can be held shut to stall the dispatcher."""

    def __init__(self):
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch):
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(batch))

    @property
    def events(self):
        return [e for b in self.batches for e in b]


def delivered_all(receiver, deliver, datagrams: int):
    """A condition: ``datagrams`` were parsed and every event of them was delivered."""
    return lambda: (receiver.dispatched_datagrams == datagrams
                    and len(deliver.events) == receiver.events)


@pytest.fixture
def start_receiver():
    receivers = []

    def start(deliver, batch=True, bind="127.0.0.1", receive_buffer=1 << 20, **kwargs):
        sock, granted = open_socket(bind, 0, receive_buffer)
        receiver = Receiver("session-1", deliver, batch_receive=batch, **kwargs)
        receiver.start([(sock, granted)])
        receivers.append(receiver)
        return receiver, sock.getsockname()[:2]

    yield start
    for receiver in receivers:
        receiver.stop()


def sender(family=socket.AF_INET):
    return socket.socket(family, socket.SOCK_DGRAM)


@BOTH_READERS
def test_odd_datagrams_are_all_counted_and_none_stops_the_receiver(start_receiver, shared_dir,
                                                                    batch):
    deliver = Delivered()
    receiver, address = start_receiver(deliver, batch)
    datagrams = odd_datagrams(shared_dir)
    with sender() as s:
        for data in datagrams:
            s.sendto(data, address)
        s.sendto(b"pt1;3\r\n", address)  # still listening after all of them
    n = len(datagrams) + 1
    wait_for(delivered_all(receiver, deliver, n), message="all datagrams delivered")
    assert receiver.datagrams == n
    assert receiver.bytes == sum(map(len, datagrams)) + 7
    seqs = sorted({e.seq for e in deliver.events})
    assert seqs == list(range(1, n + 1))  # every datagram gave at least one event
    by_seq = {}
    for e in deliver.events:
        by_seq.setdefault(e.seq, []).append(e)
    empty = by_seq[datagrams.index(b"") + 1]
    assert [e.event.type for e in empty] == ["invalid"]
    not_utf8 = by_seq[next(i for i, d in enumerate(datagrams) if d.startswith(b"pt1;\xff")) + 1]
    assert base64.b64decode(not_utf8[0].raw_b64) == b"pt1;\xff\xfe3;"
    big = next(d for d in datagrams if len(d) > 8192)
    assert any(e.raw == big.decode() for e in deliver.events)
    assert receiver.events == len(deliver.events)
    assert receiver.events == (receiver.events_valid + receiver.events_invalid
                               + receiver.events_unknown)
    assert receiver.events_invalid >= 4 and receiver.events_unknown >= 2
    assert deliver.events[-1].raw == "pt1;3" and deliver.events[-1].event.type == "points"


@BOTH_READERS
def test_events_carry_session_seq_source_and_utc_times(start_receiver, batch):
    deliver = Delivered()
    receiver, address = start_receiver(deliver, batch)
    with sender() as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(b"clk;2:00;start\r\nsc1;0;sc2;0\r\n", address)
        s.sendto(b"rnd;1\r\n", address)
        port = s.getsockname()[1]
    wait_for(lambda: len(deliver.events) == 3)
    first, second, third = deliver.events
    assert (first.seq, first.index, second.seq, second.index, third.seq) == (1, 0, 1, 1, 2)
    assert {e.session_id for e in deliver.events} == {"session-1"}
    assert {(e.source_ip, e.source_port) for e in deliver.events} == {("127.0.0.1", port)}
    assert first.received_at.endswith("Z") and len(first.received_at) == 27
    assert first.received_at <= third.received_at
    assert first.received_ns <= third.received_ns
    [client] = receiver.client_list()
    assert (client["address"], client["port"], client["packets"], client["events"]) == \
        ("127.0.0.1", port, 2, 3)
    assert client["first_seen"] <= client["last_seen"]


def test_allow_list_rejects_and_counts_without_parsing(start_receiver):
    deliver = Delivered()
    receiver, address = start_receiver(deliver, allowed_sources=("10.9.8.7", "192.168.0.0/16"))
    with sender() as s:
        for _ in range(3):
            s.sendto(b"pt1;3\r\n", address)
    wait_for(lambda: receiver.rejected == 3)
    assert receiver.datagrams == 3
    assert receiver.dispatched_datagrams == 0 and deliver.batches == []
    assert receiver.last_rejected.startswith("127.0.0.1:")
    assert receiver.client_list() == []


def test_allow_list_accepts_a_listed_network(start_receiver):
    deliver = Delivered()
    receiver, address = start_receiver(deliver, allowed_sources=("127.0.0.0/8",))
    with sender() as s:
        s.sendto(b"pt1;3\r\n", address)
    wait_for(lambda: receiver.dispatched_datagrams == 1)
    assert receiver.rejected == 0


def test_a_full_queue_drops_the_newest_counts_it_and_never_blocks(start_receiver):
    deliver = Delivered()
    deliver.gate.clear()  # the dispatcher stalls inside its first delivery
    receiver, address = start_receiver(deliver, queue_max_datagrams=10)
    with sender() as s:
        s.sendto(b"seq;1", address)
        assert deliver.entered.wait(5)
        for i in range(2, 22):
            s.sendto(f"seq;{i}".encode(), address)
        wait_for(lambda: receiver.datagrams == 21, message="the receive thread kept reading")
    assert receiver.queue.dropped == 10
    assert receiver.queue.high_water == 10
    deliver.gate.set()
    wait_for(delivered_all(receiver, deliver, 11))
    # the oldest ten waited in the queue; the newest ten were refused
    assert [e.raw for e in deliver.events] == [f"seq;{i}" for i in range(1, 12)]
    assert receiver.counters()["queue_dropped"] == 10


def test_queue_byte_bound():
    each = 4 + ITEM_OVERHEAD  # a datagram costs its payload and the objects that carry it
    queue = DatagramQueue(max_items=100, max_bytes=2 * each + 1)
    items = [(b"abcd", "ip", 1, 0, 0, i) for i in range(4)]
    assert queue.put_many(items) == 2
    assert (len(queue), queue.bytes, queue.dropped, queue.high_water_bytes) == (
        2, 2 * each, 2, 2 * each)
    assert [i[5] for i in queue.take(10, 0)] == [0, 1]
    assert queue.bytes == 0


def test_stop_dispatches_everything_already_received(start_receiver):
    deliver = Delivered()
    deliver.gate.clear()
    receiver, address = start_receiver(deliver)
    with sender() as s:
        for i in range(300):
            s.sendto(f"clk;{i}".encode(), address)
    wait_for(lambda: receiver.datagrams == 300)
    stopping = threading.Thread(target=receiver.stop)
    stopping.start()
    deliver.gate.set()
    stopping.join(10)
    assert not stopping.is_alive()
    assert len(deliver.events) == 300  # all of them were delivered before stop() returned
    assert not receiver.running


@BOTH_READERS
def test_icmp_errors_on_the_socket_do_not_stop_the_listener(batch):
    # A connected UDP socket gets the ICMP "port unreachable" of its own send as an error on
    # the next receive: the same thing Windows does to a listening socket.
    sock, granted = open_socket("127.0.0.1", 0, 1 << 20)
    peer_port = free_port(socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", peer_port))
    sock.send(b"resync")  # nobody listens there: the kernel queues ECONNREFUSED
    deliver = Delivered()
    receiver = Receiver("s", deliver, batch_receive=batch)
    receiver.start([(sock, granted)])
    try:
        wait_for(lambda: receiver.recv_errors >= 1, message="the ICMP error was read")
        with sender() as peer:
            peer.bind(("127.0.0.1", peer_port))
            peer.sendto(b"pt2;1\r\n", sock.getsockname())
        wait_for(lambda: receiver.dispatched_datagrams == 1)
        assert "Refused" in receiver.last_recv_error or "refused" in receiver.last_recv_error
        assert receiver.running
    finally:
        receiver.stop()


def test_a_port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"UDP port {port} on 127.0.0.1 is already in use"):
            open_socket("127.0.0.1", port, 1 << 20)


def test_an_address_that_is_not_local_is_a_clear_error():
    with pytest.raises(BindError, match=r"192\.0\.2\.1 is not an address of this computer"):
        open_socket("192.0.2.1", 0, 1 << 20)


def test_receive_buffer_is_granted_and_reported():
    requested = 8 * 1024 * 1024
    sock, granted = open_socket("127.0.0.1", 0, requested)
    with sock:
        assert granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if sys.platform.startswith("linux"):
            rmem_max = int(open("/proc/sys/net/core/rmem_max").read())
            can_force = hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0
            assert granted >= (requested if can_force else min(requested, rmem_max))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux")
def test_kernel_drops_of_the_socket_are_read_from_proc():
    sock, _ = open_socket("127.0.0.1", 0, 64 * 1024)  # small, and nobody reads it
    with sock, sender() as s:
        assert kernel_socket_info(sock)["drops"] == 0
        for _ in range(2000):
            s.sendto(b"x" * 200, sock.getsockname())
        info = kernel_socket_info(sock)
        assert info["drops"] > 0
        assert info["rx_queue_bytes"] > 0


@BOTH_READERS
def test_ipv6_sources_are_decoded(batch):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sock, granted = open_socket("::1", 0, 1 << 20)
    except BindError:
        pytest.skip("no IPv6 loopback")
    deliver = Delivered()
    receiver = Receiver("s", deliver, batch_receive=batch)
    receiver.start([(sock, granted)])
    try:
        with sender(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            s.sendto(b"hel;\r\n", sock.getsockname()[:2])
            port = s.getsockname()[1]
        wait_for(delivered_all(receiver, deliver, 1))
        assert (deliver.events[0].source_ip, deliver.events[0].source_port) == ("::1", port)
    finally:
        receiver.stop()


def test_batch_reader_returns_up_to_its_batch_and_then_would_block():
    sock, _ = open_socket("127.0.0.1", 0, 1 << 20)
    read = make_reader(sock, batch=True)
    with sock, sender() as s:
        for i in range(70):
            s.sendto(f"m{i}".encode(), sock.getsockname())
        got = []
        while len(got) < 70:
            got.extend(read())
        assert [d for d, _, _ in got] == [f"m{i}".encode() for i in range(70)]
        with pytest.raises(BlockingIOError):
            read()


def test_latency_and_rates_are_measured(start_receiver):
    deliver = Delivered()
    receiver, address = start_receiver(deliver)
    with sender() as s:
        for _ in range(50):
            s.sendto(b"clk;1:00\r\n", address)
    wait_for(delivered_all(receiver, deliver, 50))
    latency = receiver.latency_percentiles(60)
    assert latency["samples"] == 50
    assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    rates = receiver.rates(60)
    assert rates["datagrams_per_s"] > 0 and rates["events_per_s"] > 0
