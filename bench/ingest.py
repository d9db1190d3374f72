"""Ingest benchmark: the real app, headless, fed by simulated PSS senders; prints a table.

    .venv/bin/python bench/ingest.py                       # the full targets (about 2 minutes)
    .venv/bin/python bench/ingest.py --duration 5 --burst 10000 --latency-duration 5
    .venv/bin/python bench/ingest.py --repo ../previous-release   # another checkout's app (A/B)

The app runs as ``python -m restrike --headless`` on a temporary data dir (database and UDP plugins,
as shipped). Senders run in a separate process: one UDP socket per simulated court, sending the
simulator's match streams (``simulator.sender_datagrams``, each sender in its own order), paced
in 2 ms slices so that pacing costs little CPU. Scenarios, in order:

- ``ceiling``: a bare loop in this process that does nothing but ``recvfrom``, fed by the same
  senders as fast as they can send: what any receiver could get on this machine;
- ``max``: the same unpaced senders against the app (the ratio to the ceiling is printed);
- ``sustained``: ``--rate`` datagrams/s from ``--senders`` senders for ``--duration`` s;
- ``burst``: ``--burst`` datagrams within 1 s;
- ``latency``: ``--latency-rate`` datagrams/s for ``--latency-duration`` s.

Per scenario: datagrams sent, received by the app, stored (events committed by the database,
against events parsed), lost (sent but never received), the sustained rate (events committed
per second from the first datagram to the last commit), and receive→store latency p50/p99 from
the database's own ``processing_time_ms`` (set by the writer thread when it inserts an event:
``time.monotonic_ns() - received_ns``; the commit of the batch follows within the same
transaction). Peak RSS is the app process's ``VmHWM``. The machine may be shared: numbers are
indicative; a target marked FAIL on a loaded machine deserves a rerun before a conclusion.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import select
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from restrike.plugins.plugin_database.service import DB_FILE  # noqa: E402
from restrike.plugins.plugin_udp import simulator  # noqa: E402

SLICE_S = 0.002


# ------------------------------------------------------------------------------------ senders


def _sender_process(target, senders, per_sender, rate, seed, ready, results) -> None:
    """``senders`` sockets in one thread, round-robin: each sends its own stream in order."""
    streams = []
    for i in range(senders):
        data = simulator.sender_datagrams(seed, i, max(1, math.ceil(per_sender / 450)))
        while len(data) < per_sender:
            data = data + data
        streams.append(data[:per_sender])
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ready.set()
    sent = [0] * senders
    errors = 0
    start = time.monotonic()
    while True:
        due = per_sender if rate is None else min(
            per_sender, int((time.monotonic() - start) * rate) + 1)
        busy = False
        for i, s in enumerate(socks):
            stream = streams[i]
            n = sent[i]
            while n < due:
                try:
                    s.sendto(stream[n], target)
                except OSError:
                    errors += 1  # ENOBUFS under a flood: counted, the datagram is not sent
                n += 1
                if rate is None and n - sent[i] >= 64:
                    break  # unpaced: take turns, so every court makes progress
            sent[i] = n
            busy |= n < per_sender
        if not busy:
            break
        if rate is not None:
            time.sleep(SLICE_S)
    elapsed = time.monotonic() - start
    for s in socks:
        s.close()
    results.put({"sent": sum(sent) - errors, "errors": errors, "elapsed_s": elapsed})


def run_senders(target, senders: int, total: int, rate: float | None, seed: int) -> dict:
    """Send ``total`` datagrams from ``senders`` courts at ``rate`` datagrams/s in all."""
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    ready, results = ctx.Event(), ctx.Queue()
    per_sender = max(1, total // senders)
    per_rate = None if rate is None else rate / senders
    proc = ctx.Process(target=_sender_process,
                       args=(target, senders, per_sender, per_rate, seed, ready, results))
    proc.start()
    ready.wait(120)
    result = results.get(timeout=3600)
    proc.join()
    return result


# ------------------------------------------------------------------------------- the app


class App:
    """``python -m restrike --headless`` in a subprocess, driven through its HTTP command bridge."""

    def __init__(self, data_dir: Path, udp_port: int, http_port: int, token: str,
                 extra: list[str] | None = None, repo: Path = REPO):
        self.data_dir, self.udp_port, self.token = data_dir, udp_port, token
        self.base = f"http://127.0.0.1:{http_port}"
        # A file, not a pipe: a pipe nobody reads would block the app once it is full.
        self.log_path = data_dir / "app.log"
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", _app_module(repo), "--headless", "--data-dir", str(data_dir),
             "--udp-bind", "127.0.0.1", "--udp-port", str(udp_port),
             "--http-port", str(http_port), "--token", token, "--log-level", "WARNING",
             *(extra or [])],
            cwd=repo, env={**os.environ, "RESTRIKE_LOAD_PLUGINS": ""},
            stdout=self._log, stderr=subprocess.STDOUT, text=True)
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the app exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.call("get_udp_status") == "Running":
                    return
            except (httpx.HTTPError, RuntimeError):
                pass
            time.sleep(0.1)
        raise SystemExit("the app did not start within 60 s")

    def call(self, name: str, args=None):
        response = self.client.post(f"{self.base}/api/invoke/{name}", json=args)
        if response.status_code != 200:
            raise RuntimeError(f"{name}: {response.text}")
        return response.json()

    def cpu_seconds(self) -> float | None:
        """CPU time the app process has used so far (all its threads), from ``/proc``."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def peak_rss(self) -> int | None:
        """The app process's peak resident set (``VmHWM``), else its current RSS."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            import psutil

            return psutil.Process(self.proc.pid).memory_info().rss
        except Exception:  # noqa: BLE001 - no psutil, or the process is gone: no figure
            return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def log_errors(self) -> list[str]:
        """The app's ERROR log lines (e.g. the database's dropped batches)."""
        return [line for line in self.log_path.read_text("utf-8").splitlines()
                if " ERROR " in line]


def _app_module(repo: Path) -> str:
    """The module that runs the app of a checkout: ``restrike``, or ``host`` in releases from
    before the ``restrike`` namespace (run from the checkout, the same database file and API)."""
    return "restrike" if (repo / "restrike").is_dir() else "host"


def _counters(app: App) -> dict:
    stats = app.call("get_udp_stats")
    storage = stats.get("storage") or {}
    return {"datagrams": stats["datagrams"], "events": stats["events"],
            "dispatched": stats["dispatched_datagrams"],
            "queue_dropped": stats["queue_dropped"], "kernel_drops": stats["kernel_drops"] or 0,
            "stored": storage.get("stored", 0), "db_dropped": storage.get("dropped", 0),
            "db_lost": storage.get("lost", 0), "pending": storage.get("pending", 0)}


def _max_event_id(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM pss_events_v2").fetchone()[0]


def _latency(data_dir: Path, after_id: int) -> tuple[float | None, float | None]:
    with sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True) as conn:
        values = [r[0] for r in conn.execute(
            "SELECT processing_time_ms FROM pss_events_v2 WHERE id > ? "
            "AND processing_time_ms IS NOT NULL ORDER BY processing_time_ms", (after_id,))]
    if not values:
        return None, None
    n = len(values)
    return values[(n - 1) // 2], values[min(n - 1, int(n * 0.99))]


def scenario(app: App, name: str, senders: int, total: int, rate: float | None,
             seed: int) -> dict:
    """Run one sending scenario against the app and wait until it is all stored."""
    before = _counters(app)
    first_id = _max_event_id(app.data_dir)
    cpu_before = app.cpu_seconds()
    started = time.monotonic()
    sent = run_senders(("127.0.0.1", app.udp_port), senders, total, rate, seed)
    # Wait for the app to receive, parse and commit; give up after 10 s without progress.
    last, last_change = None, time.monotonic()
    while True:
        now = _counters(app)
        received = now["datagrams"] - before["datagrams"]
        # Datagrams the kernel dropped (unpaced senders) never arrive: do not wait for them.
        arrived = received + now["kernel_drops"] - before["kernel_drops"]
        settled = arrived >= sent["sent"] and now["dispatched"] >= now["datagrams"] and now[
            "stored"] - before["stored"] >= (
            now["events"] - before["events"]) - (now["db_dropped"] - before["db_dropped"])
        if settled and now["pending"] == 0:
            break
        progress = (now["datagrams"], now["dispatched"], now["stored"])
        if progress != last:
            last, last_change = progress, time.monotonic()
        elif time.monotonic() - last_change > 10:
            break
        time.sleep(0.05)
    done = time.monotonic()
    cpu_after = app.cpu_seconds()
    after = _counters(app)
    p50, p99 = _latency(app.data_dir, first_id)
    stored = after["stored"] - before["stored"]
    return {
        "scenario": name, "senders": senders, "rate": rate, "sent": sent["sent"],
        "send_s": sent["elapsed_s"], "send_errors": sent["errors"],
        "received": after["datagrams"] - before["datagrams"],
        "events": after["events"] - before["events"], "stored": stored,
        "lost": sent["sent"] - (after["datagrams"] - before["datagrams"]),
        "kernel_drops": after["kernel_drops"] - before["kernel_drops"],
        "queue_dropped": after["queue_dropped"] - before["queue_dropped"],
        "db_dropped": after["db_dropped"] - before["db_dropped"],
        "events_per_s": stored / (done - started) if done > started else 0.0,
        "p50_ms": p50, "p99_ms": p99,
        # CPU of the app per stored event: unlike the rates, barely moved by other work on a
        # shared machine (receiving, parsing and storing; the polling of this bench included)
        "cpu_us": ((cpu_after - cpu_before) / stored * 1e6
                   if stored and cpu_before is not None and cpu_after is not None else None),
    }


# ------------------------------------------------------------------------------- ceiling


def ceiling(senders: int, total: int, seed: int) -> dict:
    """A loop that does nothing but ``recvfrom``, fed by the same unpaced senders."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 * 1024 * 1024)  # SO_RCVBUFFORCE (root)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    received = [0]
    stop = threading.Event()

    def loop() -> None:
        recv = sock.recvfrom
        n = 0
        while not stop.is_set():
            if not select.select([sock], [], [], 0.2)[0]:
                continue
            while True:
                try:
                    recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                n += 1
            received[0] = n

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    sent = run_senders(sock.getsockname(), senders, total, None, seed)
    time.sleep(0.5)  # let the loop read what the kernel still holds
    stop.set()
    thread.join()
    sock.close()
    return {"scenario": "ceiling (bare recvfrom)", "senders": senders, "rate": None,
            "sent": sent["sent"], "send_s": sent["elapsed_s"], "received": received[0],
            "lost": sent["sent"] - received[0]}


# --------------------------------------------------------------------------------- output


def _fmt(value, digits=0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def print_table(rows: list[dict], peak_rss: int | None, ceiling_row: dict, max_row: dict,
                targets: list[tuple[str, bool, str]]) -> None:
    header = ("scenario", "senders", "rate/s", "sent", "received", "events", "stored", "lost",
              "kern.drop", "q.drop", "events/s", "p50 ms", "p99 ms", "CPU us/event")
    lines = [header]
    for r in rows:
        lines.append((r["scenario"], _fmt(r["senders"]), _fmt(r["rate"]) if r["rate"] else "max",
                      _fmt(r["sent"]), _fmt(r["received"]), _fmt(r.get("events")),
                      _fmt(r.get("stored")), _fmt(r["lost"]), _fmt(r.get("kernel_drops")),
                      _fmt(r.get("queue_dropped")), _fmt(r.get("events_per_s")),
                      _fmt(r.get("p50_ms"), 1), _fmt(r.get("p99_ms"), 1),
                      _fmt(r.get("cpu_us"), 1)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for k, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=False))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()
    # The same unpaced senders offer each receiver as much as they can; what matters is the
    # share of it that was received (the bare loop's share is the ceiling).
    def offered(row):
        return row["sent"] / max(row["send_s"], 1e-9)

    bare_share = ceiling_row["received"] / max(ceiling_row["sent"], 1)
    app_share = max_row["received"] / max(max_row["sent"], 1)
    print(f"ceiling: a bare recvfrom loop received {offered(ceiling_row) * bare_share:,.0f} "
          f"datagrams/s: {bare_share:.1%} of the {offered(ceiling_row):,.0f}/s the unpaced "
          f"senders offered ({ceiling_row['lost']:,} lost; 0 lost means the senders, not the "
          f"loop, were the limit)")
    print(f"app: received {offered(max_row) * app_share:,.0f} datagrams/s: {app_share:.1%} of "
          f"the {offered(max_row):,.0f}/s the same senders offered ({max_row['lost']:,} lost), "
          f"stored {max_row['events_per_s']:,.0f} events/s")
    print(f"ratio app/ceiling (share of the offered datagrams received): "
          f"{app_share / max(bare_share, 1e-9):.2f}")
    print(f"peak RSS of the app: {peak_rss / 2**20:,.1f} MiB" if peak_rss else "peak RSS: -")
    print("latency: receive (monotonic clock in the UDP receive thread) -> insert by the "
          "database writer (its processing_time_ms), committed in the same transaction")
    print()
    for name, ok, detail in targets:
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=16, help="simulated courts")
    parser.add_argument("--rate", type=float, default=25_000, help="sustained datagrams/s")
    parser.add_argument("--duration", type=float, default=30, help="sustained seconds")
    parser.add_argument("--burst", type=int, default=50_000, help="datagrams sent within 1 s")
    parser.add_argument("--latency-rate", type=float, default=1_000, help="datagrams/s")
    parser.add_argument("--latency-duration", type=float, default=10, help="seconds")
    parser.add_argument("--max-datagrams", type=int, default=None,
                        help="datagrams of the unpaced ceiling/max runs (default 5 s of --rate)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose app is measured (default: this one), e.g. the "
                             "previous release for an A/B comparison; same venv")
    args = parser.parse_args(argv)

    unpaced = args.max_datagrams or int(args.rate * 5)
    print(f"ingest bench: {args.senders} senders; sustained {args.rate:,.0f}/s for "
          f"{args.duration:g} s; burst {args.burst:,} in 1 s; latency at "
          f"{args.latency_rate:,.0f}/s for {args.latency_duration:g} s; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; app from {args.repo}",
          flush=True)
    ceiling_row = ceiling(args.senders, unpaced, args.seed)
    with tempfile.TemporaryDirectory(prefix="restrike-bench-") as tmp:
        udp_port, http_port = _free(socket.SOCK_DGRAM), _free(socket.SOCK_STREAM)
        app = App(Path(tmp), udp_port, http_port, "bench-token", repo=args.repo.resolve())
        try:
            rows = [
                scenario(app, "latency", args.senders,
                         int(args.latency_rate * args.latency_duration), args.latency_rate,
                         args.seed),
                scenario(app, "sustained", args.senders, int(args.rate * args.duration),
                         args.rate, args.seed + 1),
                scenario(app, "burst (1 s)", args.senders, args.burst, float(args.burst),
                         args.seed + 2),
                scenario(app, "max (unpaced)", args.senders, unpaced, None, args.seed + 3),
            ]
            peak = app.peak_rss()
        finally:
            app.stop()
        errors = app.log_errors()
    latency, sustained, burst, max_row = rows
    targets = [
        (f"0 lost at {args.rate:,.0f}/s from {args.senders} senders for {args.duration:g} s",
         sustained["lost"] == 0 and sustained["queue_dropped"] == 0
         and sustained["db_dropped"] == 0 and sustained["stored"] == sustained["events"],
         (f"lost {sustained['lost']}, stored {sustained['stored']:,} of "
          f"{sustained['events']:,} events")),
        (f"{args.burst:,}-datagram burst in 1 s with 0 lost",
         burst["lost"] == 0 and burst["stored"] == burst["events"],
         f"lost {burst['lost']}, burst sent in {burst['send_s']:.2f} s"),
        (f"p99 receive->commit < 50 ms at {args.latency_rate:,.0f}/s",
         latency["p99_ms"] is not None and latency["p99_ms"] < 50,
         f"p99 {_fmt(latency['p99_ms'], 1)} ms"),
    ]
    print()
    print_table([ceiling_row] + rows, peak, ceiling_row, max_row, targets)
    if errors:
        print(f"\nthe app logged {len(errors)} error(s); the first ones:")
        for line in errors[:5]:
            print("  " + line[:200])
    return 0


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
