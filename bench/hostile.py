"""Hostile-feed benchmark: the real app, headless, under the traffic of issue 10; prints its
resident memory over time and a table, and exits 1 when it ever passes the ceiling.

    .venv/bin/python bench/hostile.py                 # about 2 minutes
    .venv/bin/python bench/hostile.py --ceiling-mb 300 --sse-seconds 20

The app runs as in ``bench/ingest.py`` (``python -m restrike --headless`` on a temporary data dir,
database and UDP plugins as shipped). Scenarios, one after the other on the same app:

- ``fields``: ``--fields-datagrams`` datagrams ``zz00001;`` + 20,000 fields ``ab;ab;...``
  (about 60 KB each), sent at ``--fields-rate`` datagrams/s: each must be stored raw, invalid,
  naming ``max_fields_per_message``;
- ``lines``: 10 datagrams of 21,835 one-word CRLF-separated lines: each must become at most
  ``max_messages_per_datagram`` + 1 events;
- ``sse``: three Server-Sent-Events clients that connect and never read, while the simulator's
  feed arrives at ``--sse-rate`` datagrams/s for ``--sse-seconds`` s.

After each scenario the benchmark waits until everything received is stored (or 120 s), then
samples the idle RSS. RSS is the app process's resident set (psutil), sampled every 0.25 s.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from bench.ingest import App, _free  # noqa: E402
from restrike.plugins.plugin_udp import simulator  # noqa: E402

MB = 1024 * 1024
FIELDS_DATAGRAM = ("zz00001;" + "ab;" * 20_000).encode()
LINES_DATAGRAM = "\r\n".join(["w"] * 21_835).encode()  # 65,503 bytes: one UDP payload


class Rss:
    """Samples the app's RSS every ``every`` s in a thread: ``timeline`` [(t, bytes)], ``peak``."""

    def __init__(self, pid: int, every: float = 0.25):
        self._proc = psutil.Process(pid)
        self._every = every
        self._stop = threading.Event()
        self.started = time.monotonic()
        self.timeline: list[tuple[float, int]] = []
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        rss = self._proc.memory_info().rss
        self.timeline.append((time.monotonic() - self.started, rss))
        self.peak = max(self.peak, rss)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.now()
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def send_paced(target, datagrams, rate: float) -> int:
    """Send ``datagrams`` at ``rate`` per second (2 ms slices); returns how many were sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MB)
    start = time.monotonic()
    sent = 0
    for data in datagrams:
        due = start + sent / rate
        delay = due - time.monotonic()
        if delay > 0.002:
            time.sleep(delay)
        try:
            sock.sendto(data, target)
            sent += 1
        except OSError:
            pass  # counted as not sent
    sock.close()
    return sent


def stuck_sse_clients(app: App, http_port: int, count: int) -> list[socket.socket]:
    """``count`` connections to the event stream that send their request and never read."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", http_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\n"
                  f"Authorization: Bearer {app.token}\r\n\r\n".encode())
        socks.append(s)
    return socks


def settle(app: App, timeout: float = 120.0) -> dict:
    """Wait until every received datagram is dispatched and stored; the final stats."""
    deadline = time.monotonic() + timeout
    while True:
        stats = app.call("get_udp_stats")
        storage = stats.get("storage") or {}
        done = (stats["dispatched_datagrams"] + stats["queue_dropped"] >= stats["datagrams"]
                and storage.get("pending", 0) == 0)
        if done or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def scenario(app: App, rss: Rss, name: str, run) -> dict:
    before = app.call("get_udp_stats")
    started = time.monotonic() - rss.started
    peak_before = rss.peak
    rss.peak = 0
    sent = run()
    stats = settle(app)
    time.sleep(2.0)  # idle: what stays resident once the feed stopped
    idle = rss.now()
    peak = rss.peak
    rss.peak = max(peak, peak_before)
    storage, storage_before = stats.get("storage") or {}, before.get("storage") or {}
    over = {k: stats["over_limits"][k] - before["over_limits"][k] for k in stats["over_limits"]}
    return {
        "name": name, "sent": sent, "from_s": started,
        "received": stats["datagrams"] - before["datagrams"],
        "events": stats["events"] - before["events"],
        "stored": storage.get("stored", 0) - storage_before.get("stored", 0),
        "queue_dropped": stats["queue_dropped"] - before["queue_dropped"],
        "kernel_drops": (stats["kernel_drops"] or 0) - (before["kernel_drops"] or 0),
        "over_limits": {k: v for k, v in over.items() if v},
        "peak": peak, "idle": idle,
        "shape_cache": storage.get("shape_cache"), "parse_cache": stats.get("parse_cache"),
        "ring_bytes": app.call("get_udp_memory_usage").get("event_ring_bytes"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ceiling-mb", type=float, default=300.0)
    parser.add_argument("--fields-datagrams", type=int, default=4_000)
    parser.add_argument("--fields-rate", type=float, default=400.0)
    parser.add_argument("--lines-datagrams", type=int, default=10)
    parser.add_argument("--sse-rate", type=float, default=3_000.0)
    parser.add_argument("--sse-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    ceiling = int(args.ceiling_mb * MB)

    with tempfile.TemporaryDirectory(prefix="restrike-hostile-") as tmp:
        udp_port, http_port = _free(socket.SOCK_DGRAM), _free(socket.SOCK_STREAM)
        app = App(Path(tmp), udp_port, http_port, "hostile-bench")
        target = ("127.0.0.1", udp_port)
        rss = Rss(app.proc.pid)
        start_rss = rss.now()
        rows = []
        sse: list[socket.socket] = []
        try:
            rows.append(scenario(app, rss, "fields", lambda: send_paced(
                target, [FIELDS_DATAGRAM] * args.fields_datagrams, args.fields_rate)))
            rows.append(scenario(app, rss, "lines", lambda: send_paced(
                target, [LINES_DATAGRAM] * args.lines_datagrams, 5.0)))
            sse = stuck_sse_clients(app, http_port, 3)
            feed = simulator.sender_datagrams(seed=1, sender_index=0, matches=1)
            total = int(args.sse_rate * args.sse_seconds)
            rows.append(scenario(app, rss, "sse", lambda: send_paced(
                target, (feed[i % len(feed)] for i in range(total)), args.sse_rate)))
        finally:
            for s in sse:
                s.close()
            rss.stop()
            app.stop()
    print_report(rows, rss, start_rss, ceiling)
    return 1 if rss.peak > ceiling else 0


def print_report(rows: list[dict], rss: Rss, start_rss: int, ceiling: int) -> None:
    print(f"RSS over time (MiB), started at {start_rss / MB:.0f}:")
    step = max(1, len(rss.timeline) // 60)
    for t, value in rss.timeline[::step]:
        print(f"  {t:6.1f} s  {value / MB:7.1f}  {'#' * int(value / MB / 5)}")
    print()
    print("| scenario | sent | received | events | stored | over limits | dropped (queue / "
          "kernel) | peak RSS | idle RSS |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        over = ", ".join(f"{k} {v:,}" for k, v in r["over_limits"].items()) or "-"
        print(f"| {r['name']} | {r['sent']:,} | {r['received']:,} | {r['events']:,} | "
              f"{r['stored']:,} | {over} | {r['queue_dropped']:,} / {r['kernel_drops']:,} | "
              f"{r['peak'] / MB:.0f} MiB | {r['idle'] / MB:.0f} MiB |")
    last = rows[-1] if rows else {}
    print()
    print(f"at the end: parse cache {last.get('parse_cache')}, shape cache "
          f"{last.get('shape_cache')}, live ring {last.get('ring_bytes')} bytes")
    verdict = "pass" if rss.peak <= ceiling else "FAIL"
    print(f"peak RSS {rss.peak / MB:.0f} MiB, ceiling {ceiling / MB:.0f} MiB: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
