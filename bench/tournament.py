"""Tournament benchmark: many restrike instances (one per court) into one PostgreSQL; a table.

    .venv/bin/python bench/tournament.py                    # 12 courts, the issue's scenarios
    .venv/bin/python bench/tournament.py --courts 4 --duration 10 --flat 5000 --outage 10

Every court is a real ``python -m restrike --headless --court court-NN --database-url URL``
process on its own data dir and UDP port, fed over UDP on 127.0.0.1 by its own sender process
(the simulator's match streams, ``bench/ingest.py``'s senders). The server is a throwaway
cluster (``tests/pg_server.py``) unless ``--database-url`` names one. Scenarios, in order:

- ``paced``: ``--rate`` datagrams/s per court for ``--duration`` s (100/s is about 40 times what
  a real court sends);
- ``flat out``: ``--flat`` datagrams per court, sent as fast as the senders can;
- ``writer``: ``bench/database.py``'s writer benchmark (the real ``Writer`` in this process,
  ``--writer-rounds`` rounds of 12 interleaved courts' events) on a temporary SQLite file and on
  a fresh database of the server, side by side: events/s, the writer thread's CPU per event, and
  on PostgreSQL the server's CPU per event;
- ``outage``: ``--rate`` per court for ``--outage-feed`` s; ``--outage`` s into it the server is
  stopped (``pg_ctl -m immediate``, a crash to its clients) for ``--outage`` s, then started:
  every instance spools to its local SQLite file meanwhile and forwards when the server is
  back (``docs/deployment.md``).

Per scenario, counted in the central database (not from what the instances say): datagrams
sent, datagrams stored (distinct natural keys per court), lost (sent - stored), duplicates
(events - distinct natural keys), events committed per second in all (first datagram sent to
last event committed), and the worst court's p99 receive->commit (``processing_time_ms``). For
the outage: the peak spool depth over all courts and the catch-up time (server started ->
every spool empty and every event stored). The PostgreSQL server's CPU time over a scenario
(its processes' utime + stime from /proc) gives its cost per event, and from it, on paper, how
many courts one server takes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import psycopg  # noqa: E402
from database import SEED, interleaved_events, measure_inserts  # noqa: E402
from ingest import App, _fmt, run_senders  # noqa: E402

from restrike.plugins.plugin_database.service import (  # noqa: E402
    DB_FILE,
    DatabaseConfig,
    DatabaseService,
)
from tests.pg_server import ServerMissing, start_server  # noqa: E402

REAL_COURT_EVENTS_PER_S = 3.0
"""What one real court sends at its busiest (protocol.md: a clock tick a second, a few score,
hit-level and state lines): the unit of the "courts per server" estimate."""


class Court(App):
    """One restrike instance serving ``name``, writing to ``url``."""

    def __init__(self, data_dir: Path, name: str, url: str) -> None:
        self.name = name
        super().__init__(data_dir, _free(socket.SOCK_DGRAM), _free(socket.SOCK_STREAM),
                         "bench-token", extra=["--database-url", url, "--court", name])

    def spool_depth(self) -> int:
        storage = self.call("get_udp_stats").get("storage") or {}
        return int(((storage.get("spool") or {}).get("depth") or {}).get("events", 0))

    def settled(self) -> bool:
        """Everything received is parsed and committed (to the server, not the spool)."""
        stats = self.call("get_udp_stats")
        storage = stats.get("storage") or {}
        depth = (storage.get("spool") or {}).get("depth") or {}
        return (stats["dispatched_datagrams"] >= stats["datagrams"]
                and storage.get("pending", 0) == 0 and not storage.get("held")
                and not depth.get("events", 0))


@contextlib.contextmanager
def throwaway_server():
    """The tests' throwaway cluster, crash-safe as a real server (the outage scenario stops it
    with -m immediate), stopped at the end."""
    try:
        server = start_server(crash_safe=True)
    except ServerMissing as exc:
        raise SystemExit(str(exc)) from None
    try:
        yield server
    finally:
        server.close()


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cpu_s() -> float:
    """CPU seconds used so far by every process of the ``postgres`` user (the server)."""
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        uid = os.getuid()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def counts(url: str) -> dict[str, dict]:
    """Per court, from the central database: events, distinct natural keys, distinct
    datagrams, p99 receive->commit, last commit."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.court, COUNT(*), "
            "COUNT(DISTINCT (e.session_id, e.event_sequence, e.datagram_index)), "
            "COUNT(DISTINCT (e.session_id, e.event_sequence)), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY e.processing_time_ms), "
            "MAX(e.created_at) "
            "FROM pss_events_v2 e JOIN udp_server_sessions s ON s.session_id = e.session_id "
            "GROUP BY s.court").fetchall()
    return {court: {"events": n, "keys": keys, "datagrams": datagrams, "p99": p99, "last": last}
            for court, n, keys, datagrams, p99, last in rows}


def feed(courts: list[Court], per_court: int, rate: float | None, seed: int) -> list[int]:
    """Feed every court at once (a sender process each); returns what each one sent."""
    sent = [0] * len(courts)

    def one(i: int) -> None:
        result = run_senders(("127.0.0.1", courts[i].udp_port), 1, per_court, rate, seed + i)
        sent[i] = result["sent"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(courts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent


def wait_settled(courts: list[Court], timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.settled() for c in courts):
            return time.monotonic()
        time.sleep(0.1)
    raise SystemExit("the courts did not settle within the timeout")


def scenario(name: str, url: str, courts: list[Court], per_court: int, rate: float | None,
             seed: int, before: dict) -> dict:
    got = received(courts)
    cpu0 = server_cpu_s()
    started = time.monotonic()
    sent = feed(courts, per_court, rate, seed)
    done = wait_settled(courts)
    cpu = server_cpu_s() - cpu0
    return summarize(name, url, courts, sent, before, done - started, cpu, got)


def received(courts: list[Court]) -> int:
    """Datagrams the courts' UDP receivers got so far (their own counters)."""
    return sum(c.call("get_udp_stats")["datagrams"] for c in courts)


def summarize(name: str, url: str, courts: list[Court], sent: list[int], before: dict,
              elapsed: float, cpu: float, received_before: int, **extra) -> dict:
    after = counts(url)

    def delta(court: str, key: str) -> int:
        return after.get(court, {}).get(key, 0) - before.get(court, {}).get(key, 0)

    events = sum(delta(c.name, "events") for c in courts)
    keys = sum(delta(c.name, "keys") for c in courts)
    datagrams = sum(delta(c.name, "datagrams") for c in courts)
    p99 = max((after.get(c.name, {}).get("p99") or 0.0) for c in courts)
    return {"scenario": name, "courts": len(courts), "sent": sum(sent),
            "received": received(courts) - received_before, "stored": datagrams,
            "lost": sum(sent) - datagrams, "duplicates": events - keys, "events": events,
            "events_per_s": events / elapsed if elapsed else 0.0, "p99_ms": p99,
            "server_cpu_us_per_event": cpu / events * 1e6 if events else None, **extra}


def outage(url: str, server, courts: list[Court], rate: float, feed_s: float,
           down_s: float, seed: int, before: dict) -> dict:
    per_court = int(rate * feed_s)
    got = received(courts)
    peak = [0]
    result: dict = {}
    started = time.monotonic()

    def sender() -> None:
        result["sent"] = feed(courts, per_court, rate, seed)

    feeding = threading.Thread(target=sender)
    feeding.start()
    time.sleep(min(5.0, feed_s / 4))  # a bench, not a test: the outage starts mid-feed
    server.stop("immediate")
    down_until = time.monotonic() + down_s
    while time.monotonic() < down_until:
        peak[0] = max(peak[0], sum(c.spool_depth() for c in courts))
        time.sleep(0.5)
    peak[0] = max(peak[0], sum(c.spool_depth() for c in courts))
    server.start()
    back = time.monotonic()
    feeding.join()
    done = wait_settled(courts)
    return summarize(f"outage ({down_s:g} s)", url, courts, result["sent"], before,
                     done - started, 0.0, got, peak_spool=peak[0], catch_up_s=done - back)


def writer_side_by_side(url: str, rounds: int) -> list[tuple[str, float, float, float | None]]:
    """``(backend, events/s, writer CPU µs/event, server CPU µs/event)``, medians of ``rounds``
    rounds of the same feed on each backend."""
    results = []
    feeds = [interleaved_events(12, 1, SEED + r) for r in range(rounds)]
    with tempfile.TemporaryDirectory(prefix="restrike-writer-") as tmp:
        for name, target in (("SQLite", str(Path(tmp) / DB_FILE)), ("PostgreSQL", url)):
            service = DatabaseService.open(target, DatabaseConfig(
                queue_max_events=1_000_000, pool_max_size=4))
            try:
                measured = []
                for feed in feeds:
                    cpu0 = server_cpu_s()
                    rate, cpu = measure_inserts(service, feed, 256)
                    measured.append((rate, cpu, (server_cpu_s() - cpu0) / len(feed)))
            finally:
                service.close()
            measured.sort()
            rate, cpu, server = measured[len(measured) // 2]
            results.append((name, rate, cpu * 1e6,
                            server * 1e6 if name == "PostgreSQL" else None))
    return results


def print_table(rows: list[dict]) -> None:
    header = ("scenario", "courts", "sent", "received", "stored", "lost", "dup.", "events",
              "events/s", "p99 ms (worst court)", "server µs/event", "peak spool", "catch-up s")
    lines = [header] + [(
        r["scenario"], _fmt(r["courts"]), _fmt(r["sent"]), _fmt(r["received"]),
        _fmt(r["stored"]), _fmt(r["lost"]),
        _fmt(r["duplicates"]), _fmt(r["events"]), _fmt(r["events_per_s"]),
        _fmt(r["p99_ms"], 1), _fmt(r.get("server_cpu_us_per_event"), 1),
        _fmt(r.get("peak_spool")), _fmt(r.get("catch_up_s"), 1)) for r in rows]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for line in lines[1:]:
        print("| " + " | ".join(str(c) for c in line) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--courts", type=int, default=12)
    parser.add_argument("--rate", type=float, default=100, help="datagrams/s per court")
    parser.add_argument("--duration", type=float, default=30, help="paced seconds")
    parser.add_argument("--flat", type=int, default=20_000, help="datagrams per court, unpaced")
    parser.add_argument("--outage", type=float, default=30, help="seconds the server is down")
    parser.add_argument("--outage-feed", type=float, default=60, help="seconds of feed")
    parser.add_argument("--database-url", default=None, help="an existing server (its "
                        "database is written to); default: a throwaway cluster")
    parser.add_argument("--writer-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    print(f"tournament bench: {args.courts} courts; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    own = contextlib.nullcontext(None) if args.database_url else throwaway_server()
    with own as server, tempfile.TemporaryDirectory(prefix="restrike-") as tmp:
        url = args.database_url or server.database()
        writer = writer_side_by_side(
            server.database() if server is not None else url, args.writer_rounds)
        courts: list[Court] = []
        try:
            for i in range(args.courts):
                data_dir = Path(tmp) / f"court-{i + 1:02d}"
                data_dir.mkdir()
                courts.append(Court(data_dir, f"court-{i + 1:02d}", url))
            rows = []
            rows.append(scenario(f"paced {args.rate:g}/s per court", url, courts,
                                 int(args.rate * args.duration), args.rate, args.seed,
                                 counts(url)))
            rows.append(scenario("flat out", url, courts, args.flat, None, args.seed + 100,
                                 counts(url)))
            if server is not None:  # only a throwaway server is stopped
                rows.append(outage(url, server, courts, args.rate, args.outage_feed,
                                   args.outage, args.seed + 200, counts(url)))
        finally:
            for court in courts:
                court.stop()
    print()
    print("| writer (bench/database.py's feed) | events/s | writer CPU µs/event | "
          "server CPU µs/event |")
    print("|---|---:|---:|---:|")
    for name, rate, cpu, server_cpu in writer:
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {_fmt(server_cpu, 1)} |")
    print()
    print_table(rows)
    flat = rows[1]
    cost = flat.get("server_cpu_us_per_event")
    if cost:
        per_core = 1e6 / cost
        print(f"\non paper: the server spent {cost:,.1f} µs of CPU per event flat out, i.e. "
              f"{per_core:,.0f} events/s per core; a real court sends about "
              f"{REAL_COURT_EVENTS_PER_S:g} events/s at its busiest, so one core takes about "
              f"{per_core / REAL_COURT_EVENTS_PER_S:,.0f} courts' feeds (a tournament has 8-12)")
    bad = [r["scenario"] for r in rows if r["lost"] or r["duplicates"]]
    print(f"\n[{'FAIL' if bad else 'PASS'}] lost = 0 and duplicates = 0 in every scenario"
          + (f" (not in: {', '.join(bad)})" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
