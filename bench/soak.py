"""Soak benchmark: a tournament's worth of courts against the real app for a long time.

    .venv/bin/python bench/soak.py                          # 12 courts, real time, 10 minutes
    .venv/bin/python bench/soak.py --duration 3600          # an hour
    .venv/bin/python bench/soak.py --duration 60 --interval 10
    .venv/bin/python bench/soak.py --speed 20 --duration 300  # 20x compressed match time

The app runs as ``python -m restrike --headless`` on a temporary data dir (both built-in plugins,
as shipped). Each court is one UDP socket sending the simulator's stream for it
(``simulator.sender_timeline``: exactly what ``simulator.send`` sends for the same seed), paced
by match time: a clock tick per second and bursts around every score, warning, injury and
challenge, about 1-5 datagrams/s per court (``--speed`` compresses match time). Every
``--interval`` seconds a row is printed; at the end the table again with the store latency,
and the totals.

Columns: ``sent`` (datagrams the courts sent), ``recv`` (received by the app), ``stored``
(events committed) - all three cumulative since the start -, ``rss MB`` (the app process),
``db MB`` (database + WAL), ``disp p99`` (receive→dispatch, ms, the app's last 10 s) and
``store p99`` (receive→insert, ms: the writer's own ``processing_time_ms`` of the events
received in that interval, read from the database at the end).

Totals: ``lost`` datagrams = sent - received (each one counted on the app's side as a kernel
drop, a queue drop or an allow-list rejection, or lost on the wire); ``lost`` events = the
events of the datagrams the courts sent minus the events stored. Memory: RSS after warm-up
(the first interval) and at the end; every buffer of the app is bounded, so growth beyond
``--rss-bound`` MiB (default 64) is reported as FAIL. The machine may be shared: latencies are
indicative.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psutil  # noqa: E402

from restrike.plugins.plugin_database.service import DB_FILE  # noqa: E402
from restrike.plugins.plugin_udp import simulator  # noqa: E402
from restrike.pss.protocol import parse_text  # noqa: E402

TOKEN = "soak"
MATCH_SECONDS = 420  # a simulated match with its breaks and the gap to the next, roughly


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """The headless app under test."""

    def __init__(self, data_dir: Path):
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port(socket.SOCK_STREAM)
        self.data_dir = data_dir
        self.log = open(data_dir.parent / "app.log", "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "restrike", "--headless", "--data-dir", str(data_dir),
             "--udp-bind", "127.0.0.1", "--udp-port", str(self.udp_port),
             "--http-port", str(self.http_port), "--token", TOKEN, "--log-level", "WARNING"],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""))
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=60,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the app exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if self.client.post("/api/invoke/list_plugins", json=[]).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the app did not answer within 60 s")
            time.sleep(0.1)  # start-up poll of a process we do not control
        self.process = psutil.Process(self.proc.pid)

    def call(self, name: str, args=None):
        response = self.client.post(f"/api/invoke/{name}", json=[] if args is None else args)
        response.raise_for_status()
        return response.json()

    def rss(self) -> int:
        return self.process.memory_info().rss

    def db_bytes(self) -> int:
        path = self.data_dir / DB_FILE
        return sum(p.stat().st_size for p in (path, path.with_name(DB_FILE + "-wal"))
                   if p.exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        self.log.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value}"


def store_latency_by_interval(db: Path, start_wall: float, interval: float) -> dict[int, float]:
    """p99 of ``processing_time_ms`` per interval of reception time."""
    buckets: dict[int, list[float]] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for ts, ms in conn.execute("SELECT timestamp, processing_time_ms FROM pss_events_v2 "
                                   "WHERE processing_time_ms IS NOT NULL"):
            at = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
            buckets.setdefault(int((at - start_wall) // interval), []).append(ms)
    return {k: percentile(v, 0.99) for k, v in buckets.items()}


class Courts:
    """One thread per court sending ``simulator.sender_timeline`` (exactly what
    ``simulator.send`` sends for the same seed), paced by match time / ``speed``; ``sent[i]``
    counts live."""

    def __init__(self, port: int, courts: int, speed: float, matches: int, seed: int):
        self.timelines = [simulator.sender_timeline(seed, i, matches) for i in range(courts)]
        self.sent = [0] * courts
        self.errors = [0] * courts
        self.stop = threading.Event()
        self.port, self.speed = port, speed
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(courts)]

    def start(self) -> None:
        self.start_at = time.monotonic()
        for thread in self.threads:
            thread.start()

    def _run(self, i: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for t, data in self.timelines[i]:
                delay = self.start_at + t / self.speed - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                if self.stop.is_set():
                    return
                try:
                    sock.sendto(data, ("127.0.0.1", self.port))
                    self.sent[i] += 1
                except OSError:
                    self.errors[i] += 1

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def expected_events(self) -> int:
        """Events in what the courts actually sent (each court's first ``sent`` datagrams)."""
        return sum(len(parse_text(data.decode("utf-8", "replace")))
                   for i, timeline in enumerate(self.timelines)
                   for _, data in timeline[: self.sent[i]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--courts", type=int, default=12, help="simulated courts (senders)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of feed")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="match-time compression (1: real time)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per table row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-bound", type=float, default=64.0,
                        help="allowed RSS growth after warm-up, MiB")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="restrike-soak-"))
    app = App(root / "data")
    matches = max(1, math.ceil(args.duration * args.speed / MATCH_SECONDS) + 1)
    courts = Courts(app.udp_port, args.courts, args.speed, matches, args.seed)
    print(f"soak: {args.courts} courts, speed {args.speed}, {args.duration:.0f} s, "
          f"app pid {app.proc.pid}, data {root}", flush=True)
    header = (f"{'t s':>6} {'sent':>8} {'recv':>8} {'stored':>8} {'rss MB':>7} {'db MB':>7} "
              f"{'disp p99':>9} {'store p99':>10}")
    print(header, flush=True)
    rows: list[list] = []
    pause = threading.Event()  # never set: waits below are the schedule, not synchronisation
    try:
        start_wall = time.time()
        courts.start()
        rss_start = None
        n_rows = max(1, math.ceil(args.duration / args.interval))
        for k in range(1, n_rows + 1):
            due = courts.start_at + min(k * args.interval, args.duration)
            pause.wait(max(0.0, due - time.monotonic()))
            stats = app.call("get_udp_stats")
            perf = app.call("get_udp_performance_metrics")
            rss = app.rss()
            if rss_start is None:
                rss_start = rss  # after the first interval: imports and caches are warm
            row = [round(time.monotonic() - courts.start_at), sum(courts.sent),
                   stats["datagrams"], stats["storage"]["stored"], rss / 2**20,
                   app.db_bytes() / 2**20, perf["latency_receive_to_dispatch_10s"]["p99_ms"]]
            rows.append(row)
            print(f"{row[0]:>6} {row[1]:>8} {row[2]:>8} {row[3]:>8} {row[4]:>7.1f} "
                  f"{row[5]:>7.2f} {fmt(row[6], 2):>9} {'':>10}", flush=True)
        courts.finish()
        # Everything sent is in the kernel or the app now: wait for the backlog to drain.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = app.call("get_udp_stats")
            if (stats["datagrams"] >= sum(courts.sent) - (stats["kernel_drops"] or 0)
                    and stats["dispatched_datagrams"] == stats["datagrams"]
                    and stats["storage"]["pending"] == 0 and stats["storage"]["held"] == 0):
                break
            pause.wait(0.2)  # polling a process we do not control
        rss_end = app.rss()
        integrity = app.call("database_run_integrity_check")["ok"]
        db_size = app.db_bytes()
    finally:
        courts.finish()
        app.stop()

    sent = sum(courts.sent)
    wanted = courts.expected_events()
    latencies = store_latency_by_interval(root / "data" / DB_FILE, start_wall, args.interval)
    print()
    print("per interval, with the store latency read from the database:")
    print(header)
    for i, row in enumerate(rows):
        print(f"{row[0]:>6} {row[1]:>8} {row[2]:>8} {row[3]:>8} {row[4]:>7.1f} "
              f"{row[5]:>7.2f} {fmt(row[6], 2):>9} {fmt(latencies.get(i), 2):>10}")
    storage = stats["storage"]
    growth = (rss_end - rss_start) / 2**20
    print()
    print(f"datagrams: sent {sent}, received {stats['datagrams']}, lost "
          f"{sent - stats['datagrams']} (kernel drops {stats['kernel_drops']}, queue drops "
          f"{stats['queue_dropped']}, rejected {stats['rejected']}, send errors "
          f"{sum(courts.errors)})")
    print(f"events: expected {wanted}, stored {storage['stored']}, lost "
          f"{wanted - storage['stored']} (writer dropped {storage['dropped']}, lost "
          f"{storage['lost']}, failed writes {storage['failed_writes']})")
    print(f"rss: {rss_start / 2**20:.1f} MB after warm-up, {rss_end / 2**20:.1f} MB at the end "
          f"({growth:+.1f} MB; bound {args.rss_bound:.0f} MB: "
          f"{'PASS' if growth <= args.rss_bound else 'FAIL'})")
    print(f"database: {db_size / 2**20:.2f} MB, integrity {'ok' if integrity else 'FAILED'}")
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    ok = (sent == stats["datagrams"] and wanted == storage["stored"] and integrity
          and growth <= args.rss_bound)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
