"""The match simulator: realistic, parseable, deterministic, and really sent over UDP."""

from __future__ import annotations

import collections
import itertools
import math
import random
import socket
import statistics
import threading

import pytest

from restrike.host.errors import InvalidArgument
from restrike.plugins.plugin_udp.simulator import (
    generate_match,
    main,
    send,
    sender_datagrams,
    sender_timeline,
)
from restrike.pss.match import MatchState
from restrike.pss.protocol import parse_datagram


def parsed(datagrams):
    return [e for d in datagrams for e in parse_datagram(d)]


@pytest.fixture(scope="module")
def matches():
    return [generate_match(random.Random(seed), 100 + seed) for seed in range(20)]


def test_every_message_parses_to_a_known_event(matches):
    for datagrams in matches:
        for data in datagrams:
            assert data.endswith(b"\r\n")
            for event in parse_datagram(data):
                assert event.type not in ("invalid", "unknown"), (data, event)


def test_matches_look_like_the_real_sender(matches):
    sizes = [len(m) for m in matches]
    assert all(400 <= n <= 750 for n in sizes), sizes
    assert 500 <= statistics.mean(sizes) <= 700
    every = [d for m in matches for d in m]
    # mostly no trailing ';' (the real sender), some documented-form ones
    with_semicolon = sum(d.endswith(b";\r\n") for d in every)
    assert 0 < with_semicolon < 0.15 * len(every)
    assert any(b"hl2;" in d and d.startswith(b"hl1;") for d in every)  # glued hit levels
    types = collections.Counter(e.type for e in parsed(every))
    for needed in ("fight_loaded", "athletes", "match_config", "warnings", "winner_rounds",
                   "scores", "current_scores", "avt", "clock", "round", "fight_ready", "points",
                   "hit_level", "injury", "challenge", "break", "winner_side", "winner",
                   "hello", "bye"):
        assert types[needed] > 0, needed
    assert types["clock"] > 0.5 * len(every)
    actions = {e.action for e in parsed(every) if e.type == "clock"}
    assert {None, "start", "stop", "corr"} <= actions


def test_clock_ticks_once_per_second_of_match_time():
    timeline = sender_timeline(3, 0, 1)
    ticks = [t for t, d in timeline if d.startswith(b"clk;") and d.count(b";") == 1
             and not d.startswith(b"clk;2:00")]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert statistics.median(gaps) == pytest.approx(1.0, abs=0.02)
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert generate_match(random.Random(5), 7) == generate_match(random.Random(5), 7)
    assert generate_match(random.Random(5), 7) != generate_match(random.Random(6), 7)
    assert sender_datagrams(1, 0, 2) == sender_datagrams(1, 0, 2)
    assert sender_datagrams(1, 0, 1) != sender_datagrams(1, 1, 1)


def test_sender_stream_holds_its_matches_in_order():
    events = parsed(sender_datagrams(4, 2, 3))
    numbers = [e.number for e in events if e.type == "match_config"]
    assert numbers == ["301", "302", "303"]
    assert sum(e.type == "fight_loaded" for e in events) == 3


def test_replayed_match_is_consistent(matches):
    for datagrams in matches[:8]:
        state = MatchState()
        events = parsed(datagrams)
        per_round = {1: collections.Counter(), 2: collections.Counter()}
        warnings = {1: 0, 2: 0}
        rnd = 1
        for i, event in enumerate(events):
            state.apply(event, i * 10_000_000)
            if event.type == "round":
                rnd = event.round
            elif event.type == "points":
                per_round[event.athlete][rnd] += event.point_type
            elif event.type == "warnings":
                for athlete, side in ((1, "blue"), (2, "red")):
                    count = getattr(event, side)
                    if count is not None and count > warnings[athlete]:
                        per_round[3 - athlete][rnd] += count - warnings[athlete]
                        warnings[athlete] = count
        snap = state.snapshot()
        played = snap["round"]
        for athlete, side in ((1, "blue"), (2, "red")):
            want = [per_round[athlete][r] for r in range(1, 4)]
            assert snap["round_scores"][side] == want
            assert snap["current_scores"][side] == want[played - 1]
        winners = snap["round_winners"][:played]
        won = 1 if snap["winner"]["side"] == "BLUE" else 2
        assert winners.count(won) == 2 and winners.count(3 - won) == played - 2
        assert snap["winner"]["name"] == snap["athletes"]["blue" if won == 1 else "red"]["short"]
        assert snap["winner"]["classification"] == f"2-{played - 2} PTF"


# ------------------------------------------------------------------------------- real sockets


class Receiver:
    """A plain UDP socket on 127.0.0.1 draining into a list on its own thread."""

    def __init__(self, expected: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.expected = expected
        self.got: list[tuple[bytes, int]] = []
        self.enough = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.closing.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.got.append((data, addr[1]))
            if len(self.got) >= self.expected:
                self.enough.set()

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_real_socket_receives_every_datagram_in_order_per_sender():
    expected = {i: sender_datagrams(11, i, 1) for i in range(2)}
    receiver = Receiver(sum(len(v) for v in expected.values()))
    try:
        result = send(("127.0.0.1", receiver.port), senders=2, rate=4000, matches=1, seed=11)
        assert receiver.enough.wait(timeout=10), f"got {len(receiver.got)}"
    finally:
        receiver.close()
    assert [r["sent"] for r in result["senders"]] == [len(expected[0]), len(expected[1])]
    assert result["errors"] == 0 and result["stopped"] is False
    by_port = collections.defaultdict(list)
    for data, port in receiver.got:
        by_port[port].append(data)
    for r in result["senders"]:
        assert by_port[r["source_port"]] == expected[r["index"]]


def test_rate_paces_by_deadline():
    count = len(sender_datagrams(2, 0, 1))
    receiver = Receiver(count)
    try:
        result = send(("127.0.0.1", receiver.port), rate=3000, seed=2)
        assert receiver.enough.wait(timeout=10)
    finally:
        receiver.close()
    # the last datagram is due (count - 1) / rate after the start, never earlier
    assert result["elapsed_s"] >= (count - 1) / 3000
    assert result["sent"] == count


def test_speed_compresses_match_time():
    timeline = sender_timeline(9, 0, 1)
    receiver = Receiver(len(timeline))
    try:
        result = send(("127.0.0.1", receiver.port), seed=9, speed=3000)
        assert receiver.enough.wait(timeout=10)
    finally:
        receiver.close()
    assert result["elapsed_s"] >= timeline[-1][0] / 3000
    assert result["sent"] == len(timeline)


def test_stop_event_ends_sending_early():
    receiver = Receiver(20)
    stop = threading.Event()
    watcher = threading.Thread(target=lambda: receiver.enough.wait(10) and stop.set())
    watcher.start()
    try:
        result = send(("127.0.0.1", receiver.port), rate=200, seed=1, stop=stop)
    finally:
        watcher.join()
        receiver.close()
    assert result["stopped"] is True
    assert 20 <= result["sent"] < len(sender_datagrams(1, 0, 1))


@pytest.mark.parametrize("kwargs, field", [
    (dict(senders=0), "senders"),
    (dict(matches=0), "matches"),
    (dict(rate=0), "rate"),
    (dict(rate=-5.0), "rate"),
    (dict(speed=-1.0), "speed"),
    (dict(speed=math.nan), "speed"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(InvalidArgument) as info:
        send(("127.0.0.1", 9), **kwargs)
    assert info.value.field == field


def test_bad_target_is_rejected():
    with pytest.raises(InvalidArgument) as info:
        send(("127.0.0.1", 0))
    assert info.value.field == "target" and "port" in info.value.message


def test_cli_sends_and_reports(capsys):
    count = len(sender_datagrams(3, 0, 1))
    receiver = Receiver(count)
    try:
        code = main(["--target", f"127.0.0.1:{receiver.port}", "--rate", "5000", "--seed", "3"])
        assert receiver.enough.wait(timeout=10)
    finally:
        receiver.close()
    assert code == 0
    assert f"sent {count} datagrams to 127.0.0.1:{receiver.port}" in capsys.readouterr().out
    assert [d for d, _ in receiver.got] == sender_datagrams(3, 0, 1)


def test_cli_rejects_a_bad_target(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--target", "localhost"])
    assert info.value.code == 2
    assert "--target" in capsys.readouterr().err


@pytest.mark.parametrize("speed", [0, math.inf])
def test_speed_zero_or_inf_sends_unpaced(speed):
    count = len(sender_datagrams(5, 0, 1))
    receiver = Receiver(count)
    try:
        result = send(("127.0.0.1", receiver.port), seed=5, speed=speed)
    finally:
        receiver.close()
    # a full match spans ~10 min of match time; unpaced it is one quick burst
    assert result["sent"] == count and result["errors"] == 0
    assert result["elapsed_s"] < 30
