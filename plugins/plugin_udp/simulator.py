"""A PSS sender simulator: realistic matches, framed as the real sender frames them, sent over UDP.

The datagrams follow ``shared/protocol.md``: CRLF after every message, mostly without a trailing
``;``, one ``clk`` per second of match time, a burst of hit level + points + per-round scores +
current scores per score, gam-jeoms (which give the opponent a point), one injury time with
``ij`` ticks, usually one video-replay challenge, breaks with one ``brk`` tick per second, round
winners, the winner side and the winner's name. Best of three rounds, so a match is 2 or 3 rounds
and about 450-700 datagrams.

Everything is deterministic for a seed: ``sender_datagrams(seed, i, matches)`` regenerates exactly
what sender ``i`` of ``send(..., seed=seed)`` sent, so tests and benchmarks can compare.
"""

from __future__ import annotations

import argparse
import math
import random
import socket
import sys
import threading
import time

from restrike.host.errors import InvalidArgument

__all__ = ["generate_match", "main", "send", "sender_datagrams", "sender_timeline"]

_ATHLETES = [
    ("K. ARSLAN", "Kerem ARSLAN", "TUR"), ("J. MORENO", "Jaime MORENO GARCÍA", "ESP"),
    ("N. O'BRIEN", "Niamh O'BRIEN", "IRL"), ("Z. ŻÓŁTY", "Zofia ŻÓŁTY", "POL"),
    ("L. NGUYỄN", "Linh NGUYỄN", "VIE"), ("M. DE LA CRUZ", "María DE LA CRUZ", "MEX"),
    ("A. JENDOUBI", "Ahmed JENDOUBI", "TUN"), ("H. KIM", "Hyun-woo KIM", "KOR"),
    ("S. MÜLLER", "Sven MÜLLER", "GER"), ("É. LEFÈVRE", "Élodie LEFÈVRE", "FRA"),
    ("D. DESMOND", "Dario DESMOND", "ITA"), ("R. DA SILVA", "Rafael DA SILVA", "BRA"),
    ("Y. TANAKA", "Yui TANAKA", "JPN"), ("O. PETRENKO", "Oleksandr PETRENKO", "UKR"),
    ("F. AL-HASHIMI", "Fatima AL-HASHIMI", "JOR"), ("C. JOHNSON", "Chris JOHNSON", "USA"),
    ("M. ÇELIK", "Merve ÇELIK", "TUR"), ("B. SØRENSEN", "Bjørn SØRENSEN", "DEN"),
    ("A. RAHIMI", "Arman RAHIMI", "IRI"), ("P. NOVÁK", "Petr NOVÁK", "CZE"),
]
_PHASES = ["Round of 32", "Round of 16", "Quarterfinal", "Semifinal", "Final", "Repechage"]
_CATEGORIES = ["M- 58 kg", "M- 68 kg", "M- 80 kg", "M+ 80 kg",
               "W- 49 kg", "W- 57 kg", "W- 67 kg", "W+ 67 kg"]
_DIVISIONS = ["Senior", "Senior", "Senior", "Junior"]
# point type -> weight: body kicks dominate, technical head kicks are rare
_POINT_WEIGHTS = [(1, 30), (2, 40), (3, 15), (4, 10), (5, 5)]

# Per-second probabilities during a running round (tuned for ~11 scores per round).
_P_SCORE = 0.09
_P_LOW_HIT = 0.04       # a sensor hit below the scoring threshold: hl alone
_P_WARNING = 0.012
_P_TIME_OUT = 0.006     # referee "kye-shi": clock stopped, then restarted
_P_CORRECTION = 0.003   # operator clock correction
_P_GLUED = 0.06         # of kick scores: both hit levels glued into one datagram
_P_SEMICOLON = 0.03     # documented form: trailing ';' before CRLF
_P_CHALLENGE = 0.7      # per match
_ROUNDS = 3
_BREAK_SECONDS = 60
_MATCH_GAP_SECONDS = 20.0  # between two matches of the same court


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


class _Writer:
    """Accumulates (match time, datagram) pairs; time only moves forward."""

    def __init__(self, rng: random.Random, t0: float) -> None:
        self.rng = rng
        self.now = t0
        self.out: list[tuple[float, bytes]] = []

    def at(self, t: float) -> None:
        self.now = max(self.now, t)

    def emit(self, text: str, after: float = 0.0) -> None:
        self.now += after
        if not text.endswith(";") and self.rng.random() < _P_SEMICOLON:
            text += ";"
        self.out.append((self.now, (text + "\r\n").encode("utf-8")))


class _Match:
    """One match's score keeping, so every snapshot message is consistent with the points."""

    def __init__(self, w: _Writer, number: int) -> None:
        self.w = w
        self.rng = w.rng
        self.number = number
        self.round = 1
        self.scores = {1: [0] * (_ROUNDS + 1), 2: [0] * (_ROUNDS + 1)}  # index = round
        self.current = {1: 0, 2: 0}
        self.warnings = {1: 0, 2: 0}
        self.round_winners = [0] * (_ROUNDS + 1)

    # ------------------------------------------------------------------------ snapshot messages

    def scores_msg(self) -> str:
        parts = []
        for r in range(1, _ROUNDS + 1):
            parts.append(f"s1{r};{self.scores[1][r]};s2{r};{self.scores[2][r]}")
        return ";".join(parts)

    def add_points(self, athlete: int, points: int) -> None:
        self.scores[athlete][self.round] += points
        self.current[athlete] += points
        self.w.emit(self.scores_msg(), self.rng.uniform(0.01, 0.05))
        self.w.emit(f"sc1;{self.current[1]};sc2;{self.current[2]}", self.rng.uniform(0.005, 0.03))

    # ------------------------------------------------------------------------------ happenings

    def score(self) -> None:
        rng, w = self.rng, self.w
        athlete = rng.choice((1, 2))
        point_type = rng.choices([p for p, _ in _POINT_WEIGHTS],
                                 weights=[x for _, x in _POINT_WEIGHTS])[0]
        if point_type >= 2 and rng.random() < 0.92:  # kicks register on the sensors
            level = rng.randint(20, 100)
            if rng.random() < _P_GLUED:
                levels = {athlete: level, 3 - athlete: rng.randint(5, 60)}
                w.emit(f"hl1;{levels[1]}hl2;{levels[2]}")
            else:
                w.emit(f"hl{athlete};{level}")
        w.emit(f"pt{athlete};{point_type}", rng.uniform(0.02, 0.1))
        self.add_points(athlete, point_type)

    def warning(self) -> None:
        athlete = self.rng.choice((1, 2))
        if self.warnings[athlete] >= 9:
            return  # 10 gam-jeoms end the match; the simulator keeps matches ordinary
        self.warnings[athlete] += 1
        self.w.emit(f"wg1;{self.warnings[1]};wg2;{self.warnings[2]}")
        self.add_points(3 - athlete, 1)

    def injury(self, clock: int) -> None:
        rng, w = self.rng, self.w
        athlete = rng.choice((1, 2))
        w.emit(f"clk;{_clock(clock)};stop", 0.2)
        w.emit(f"ij{athlete};1:00;show", rng.uniform(1.0, 4.0))
        left = 60
        for _ in range(rng.randint(5, 40)):
            left -= 1
            w.emit(f"ij{athlete};{_clock(left)}", 1.0)
        w.emit(f"ij{athlete};{_clock(left)};hide", rng.uniform(0.3, 1.0))

    def challenge(self, clock: int) -> None:
        rng, w = self.rng, self.w
        who = rng.choices((1, 2, 0), weights=(45, 45, 10))[0]
        w.emit(f"clk;{_clock(clock)};stop", 0.2)
        w.emit(f"ch{who};", rng.uniform(0.5, 2.0))
        if rng.random() < 0.15:
            w.emit(f"ch{who};-1", rng.uniform(2.0, 6.0))
        else:
            w.emit(f"ch{who};1;{rng.choice((0, 1))}", rng.uniform(8.0, 25.0))

    def time_out(self, clock: int) -> None:
        self.w.emit(f"clk;{_clock(clock)};stop", 0.3)
        self.w.now += self.rng.uniform(3.0, 15.0)

    # ----------------------------------------------------------------------------------- flow

    def run(self, duration: int, injury_at: tuple[int, int], challenge_at: tuple[int, int] | None,
            athletes: tuple[tuple[str, str, str], tuple[str, str, str]]) -> None:
        rng, w = self.rng, self.w
        (b_short, b_long, b_cty), (r_short, r_long, r_cty) = athletes
        w.emit("hel;")
        w.emit("pre;FightLoaded", rng.uniform(0.5, 3.0))
        w.emit(f"at1;{b_short};{b_long};{b_cty};at2;{r_short};{r_long};{r_cty};", 0.05)
        w.emit(f"mch;{self.number};{rng.choice(_PHASES)};{rng.choice(_CATEGORIES)};;#0000ff;"
               f"#FFFFFF;#ff0000;#FFFFFF;{rng.getrandbits(32):08x};{rng.choice(_DIVISIONS)};"
               f"{_ROUNDS};{duration};cntDown;{rng.randint(18, 30)};{rng.randint(10, 20)}", 0.05)
        w.emit("wg1;0;wg2;0", 0.02)
        w.emit("wrd;rd1;0;rd2;0;rd3;0", 0.02)
        w.emit(self.scores_msg(), 0.02)
        w.emit("sc1;0;sc2;0", 0.02)
        w.emit("avt;0", 0.02)
        w.emit(f"clk;{_clock(duration)}", 0.02)
        w.emit("rnd;1", 0.02)
        w.emit("rdy;FightReady", rng.uniform(2.0, 10.0))
        wins = {1: 0, 2: 0}
        for rnd in range(1, _ROUNDS + 1):
            self.round = rnd
            if rnd > 1:
                self.between_rounds(rnd, duration)
            w.emit(f"clk;{_clock(duration)};start", rng.uniform(2.0, 8.0))
            self.fight_round(duration, injury_at, challenge_at)
            winner = self.round_winner()
            wins[winner] += 1
            self.round_winners[rnd] = winner
            w.emit("wrd;" + ";".join(f"rd{r};{self.round_winners[r]}"
                                     for r in range(1, _ROUNDS + 1)), rng.uniform(0.5, 2.0))
            if wins[winner] == 2:
                break
        winner = 1 if wins[1] > wins[2] else 2
        w.emit(f"win;{'BLUE' if winner == 1 else 'RED'}", rng.uniform(1.0, 3.0))
        name = b_short if winner == 1 else r_short
        w.emit(f"wmh;{name};{wins[winner]}-{wins[3 - winner]} PTF", rng.uniform(0.2, 1.0))
        w.emit("bye;", rng.uniform(5.0, 15.0))

    def between_rounds(self, rnd: int, duration: int) -> None:
        rng, w = self.rng, self.w
        w.emit(f"brk;{_clock(_BREAK_SECONDS)}", rng.uniform(1.0, 3.0))
        for left in range(_BREAK_SECONDS - 1, 0, -1):
            w.emit(f"brk;{_clock(left)}", 1.0)
        w.emit("brk;0:00;stopEnd", 1.0)
        w.emit(f"rnd;{rnd}", rng.uniform(0.2, 1.0))
        self.current = {1: 0, 2: 0}
        w.emit("sc1;0;sc2;0", 0.05)

    def fight_round(self, duration: int, injury_at, challenge_at) -> None:
        rng, w = self.rng, self.w
        clock = duration
        tick = w.now  # the clock started now; one clk per second of running time
        while clock > 0:
            second = tick
            if (self.round, clock) == injury_at:
                self.injury(clock)
                w.emit(f"clk;{_clock(clock)};start", rng.uniform(1.0, 3.0))
                second = w.now
            elif (self.round, clock) == challenge_at:
                self.challenge(clock)
                w.emit(f"clk;{_clock(clock)};start", rng.uniform(1.0, 3.0))
                second = w.now
            elif rng.random() < _P_TIME_OUT:
                self.time_out(clock)
                w.emit(f"clk;{_clock(clock)};start")
                second = w.now
            elif rng.random() < _P_CORRECTION:
                w.emit(f"clk;{_clock(clock)};corr", rng.uniform(0.1, 0.5))
            if rng.random() < _P_SCORE:
                w.at(second + rng.uniform(0.1, 0.6))
                self.score()
            elif rng.random() < _P_LOW_HIT:
                w.at(second + rng.uniform(0.1, 0.8))
                athlete = rng.choice((1, 2))
                w.emit(f"hl{athlete};{rng.randint(1, 30)}")
            if rng.random() < _P_WARNING:
                w.at(second + rng.uniform(0.1, 0.8))
                self.warning()
            clock -= 1
            tick = max(second + 1.0, w.now + 0.01)
            w.at(tick)
            w.emit("clk;0:00;stop" if clock == 0 else f"clk;{_clock(clock)}")

    def round_winner(self) -> int:
        blue, red = self.scores[1][self.round], self.scores[2][self.round]
        if blue != red:
            return 1 if blue > red else 2
        return self.rng.choice((1, 2))  # tie broken by the referees' criteria


def _timeline(rng: random.Random, match_number: int, t0: float) -> list[tuple[float, bytes]]:
    w = _Writer(rng, t0)
    match = _Match(w, match_number)
    duration = 120
    blue, red = rng.sample(_ATHLETES, 2)
    injury_at = (rng.randint(1, 2), rng.randint(10, duration - 10))
    challenge_at = None
    if rng.random() < _P_CHALLENGE:
        challenge_at = (rng.randint(1, 2), rng.randint(10, duration - 10))
        if challenge_at == injury_at:
            challenge_at = (challenge_at[0], challenge_at[1] - 1)
    match.run(duration, injury_at, challenge_at, (blue, red))
    return w.out


def generate_match(rng: random.Random, match_number: int) -> list[bytes]:
    """The datagrams of one realistic match, in sending order (deterministic for a seeded rng)."""
    return [data for _, data in _timeline(rng, match_number, 0.0)]


def _sender_rng(seed: int, sender_index: int) -> random.Random:
    # A string seed is hashed the same way on every run and platform (unlike hash()).
    return random.Random(f"restrike-simulator:{seed}:{sender_index}")


def sender_timeline(seed: int, sender_index: int, matches: int) -> list[tuple[float, bytes]]:
    """(match-time seconds from the start, datagram) pairs of one sender's matches.

    Sender ``i`` is court ``i + 1``; its match numbers are ``(i + 1) * 100 + 1``, ``+ 2``, ...
    """
    rng = _sender_rng(seed, sender_index)
    out: list[tuple[float, bytes]] = []
    t = 0.0
    for k in range(matches):
        timeline = _timeline(rng, (sender_index + 1) * 100 + k + 1, t)
        out.extend(timeline)
        t = timeline[-1][0] + _MATCH_GAP_SECONDS
    return out


def sender_datagrams(seed: int, sender_index: int, matches: int) -> list[bytes]:
    """Exactly the datagrams sender ``sender_index`` sends in ``send(..., seed=seed)``."""
    return [data for _, data in sender_timeline(seed, sender_index, matches)]


# ------------------------------------------------------------------------------------ sending


def _check(target, senders, rate, matches, speed) -> tuple[int, tuple]:
    """Validate send() arguments; returns (address family, socket address)."""
    if (not isinstance(target, tuple) or len(target) != 2 or not isinstance(target[0], str)
            or not isinstance(target[1], int)):
        raise InvalidArgument(f"target must be a (host, port) tuple, got {target!r}", "target")
    if not 1 <= target[1] <= 65535:
        raise InvalidArgument(f"target port must be 1..65535, got {target[1]}", "target")
    if not isinstance(senders, int) or senders < 1:
        raise InvalidArgument(f"senders must be an integer >= 1, got {senders!r}", "senders")
    if not isinstance(matches, int) or matches < 1:
        raise InvalidArgument(f"matches must be an integer >= 1, got {matches!r}", "matches")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise InvalidArgument(f"rate must be a positive number of datagrams/s, got {rate!r}",
                              "rate")
    if not (speed >= 0):
        raise InvalidArgument(f"speed must be >= 0 (0 or inf: no pacing), got {speed!r}", "speed")
    try:
        info = socket.getaddrinfo(target[0], target[1], type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise InvalidArgument(f"target host {target[0]!r} cannot be resolved: {exc}",
                              "target") from exc
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr


def send(
    target: tuple[str, int],
    *,
    senders: int = 1,
    rate: float | None = None,
    matches: int = 1,
    seed: int = 0,
    speed: float = 1.0,
    stop: threading.Event | None = None,
    progress: list | None = None,
) -> dict:
    """Send simulated matches to ``target`` from ``senders`` sockets (one per court) in parallel.

    Pacing is by deadlines from the start (a late datagram is sent at once, so the average holds):
    ``rate`` datagrams/s per sender when given; otherwise the match time divided by ``speed``
    (1.0 real time: ~1 ``clk`` per second; 60: a minute of match per second; 0 or ``math.inf``:
    as fast as possible). ``stop`` ends all senders early. Blocks until done; Ctrl-C stops too.

    Returns ``{"target", "sent", "errors", "elapsed_s", "stopped", "senders": [{"index",
    "datagrams", "sent", "errors", "last_error", "source_port"}, ...]}``; socket errors are counted
    per sender and sending goes on. ``progress``, when given, gets those per-sender dicts before
    sending starts: their ``sent`` and ``errors`` count live (each written by its sender only).
    """
    family, sockaddr = _check(target, senders, rate, matches, speed)
    stop = stop if stop is not None else threading.Event()
    timelines = [sender_timeline(seed, i, matches) for i in range(senders)]
    results = [{"index": i, "datagrams": len(timelines[i]), "sent": 0, "errors": 0,
                "last_error": None, "source_port": None} for i in range(senders)]
    if progress is not None:
        progress.extend(results)
    start_box: list[float] = []
    # The common start is taken once every socket is bound, so no sender starts behind.
    ready = threading.Barrier(senders + 1, action=lambda: start_box.append(time.monotonic()))

    def run(index: int) -> None:
        result = results[index]
        sock = None
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))
            result["source_port"] = sock.getsockname()[1]
        except OSError as exc:
            result["errors"] += 1
            result["last_error"] = f"socket: {type(exc).__name__}: {exc}"
            if sock is not None:
                sock.close()
                sock = None
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            pass
        if sock is not None:
            with sock:
                _pace(sock, sockaddr, timelines[index], start_box[0], rate, speed, stop, result)

    threads = [threading.Thread(target=run, args=(i,), name=f"sim-sender-{i}", daemon=True)
               for i in range(senders)]
    for thread in threads:
        thread.start()
    interrupted = False
    try:
        ready.wait()
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        ready.abort()
        for thread in threads:
            thread.join()
    if not start_box:
        start_box.append(time.monotonic())
    elapsed = time.monotonic() - start_box[0]
    return {
        "target": f"{target[0]}:{target[1]}",
        "sent": sum(r["sent"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "elapsed_s": round(elapsed, 6),
        "stopped": interrupted or stop.is_set(),
        "senders": results,
    }


def _pace(sock, sockaddr, timeline, start, rate, speed, stop, result) -> None:
    paced_by_time = rate is None and 0 < speed < math.inf
    for i, (t, data) in enumerate(timeline):
        if stop.is_set():
            return
        if rate is not None:
            due = start + i / rate
        elif paced_by_time:
            due = start + t / speed
        else:
            due = None
        if due is not None:
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
        try:
            sock.sendto(data, sockaddr)
            result["sent"] += 1
        except OSError as exc:  # e.g. ICMP unreachable reported on a later send
            result["errors"] += 1
            result["last_error"] = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------- CLI


def _target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")  # [::1]:6000
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with port 1..65535, got {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """``restrike simulate``: send simulated PSS matches over UDP; prints a summary.

    Exit code 0 when everything was sent, 1 when some sends failed, 130 when interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="restrike simulate",
        description="Send realistic simulated WT PSS matches over UDP (one socket per court).")
    parser.add_argument("--target", type=_target, default=("127.0.0.1", 6000),
                        help="HOST:PORT to send to (default 127.0.0.1:6000)")
    parser.add_argument("--senders", type=int, default=1, help="courts sending in parallel")
    parser.add_argument("--rate", type=float, default=None,
                        help="datagrams/s per sender (default: paced by match time / --speed)")
    parser.add_argument("--matches", type=int, default=1, help="matches per sender")
    parser.add_argument("--seed", type=int, default=0, help="seed of the match streams")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="match-time compression when --rate is not given (0 or inf: "
                             "as fast as possible)")
    args = parser.parse_args(argv)
    try:
        result = send(args.target, senders=args.senders, rate=args.rate, matches=args.matches,
                      seed=args.seed, speed=args.speed)
    except InvalidArgument as exc:
        parser.error(f"--{exc.field}: {exc.message}" if exc.field else exc.message)
    print(f"sent {result['sent']} datagrams to {result['target']} from {args.senders} "
          f"sender(s) in {result['elapsed_s']:.3f} s, {result['errors']} error(s)"
          + (" (stopped)" if result["stopped"] else ""))
    for r in result["senders"]:
        if r["errors"]:
            print(f"  sender {r['index']}: {r['errors']} error(s), last: {r['last_error']}",
                  file=sys.stderr)
    if result["stopped"]:
        return 130
    return 1 if result["errors"] else 0
