"""Benchmark of the database plugin (not a test): prints a table.

    .venv/bin/python bench/database.py                      # quick: 200 000 stored events
    .venv/bin/python bench/database.py --events 10000000    # the issue's figure (minutes, GBs)

Rows:
- writer insert rate: events/s the real ``Writer`` commits through ``submit()`` (batches of
  ``--batch`` ``IngestedEvent`` built with ``ingest_datagram`` from the simulator's datagrams of
  ``--courts`` courts, ``--matches`` matches each, interleaved by their send time) to ``flush()``,
  each with its details rows and the match state (parsing is done before the clock starts: this
  measures storage only). Target: well over 25 000 events/s. The feed is stored ``--rounds``
  times, each round new matches (another simulator seed, so the writer's caches see a real
  mix of repeated and new messages); the median round is reported, and the range;
- writer CPU per event: the ``db-writer`` thread's own CPU time over the same rounds (median).
  On a machine busy with other work it says what the rate would be on an idle one, and the
  budget left for receiving and parsing on the same cores (target: at least 40 000 events per
  CPU second);
- both with the garbage collector tuned as the app tunes it at start-up (``host.cli.tune_gc``):
  with Python's default thresholds the writer would pay for collections the app never runs;
- ``pss_get_events_for_match`` p50/p99 over ``--queries`` random matches once ``--events``
  events are stored (target p99 < 5 ms), through the real command (pool checkout included).
  To get there fast, the measured 12-court block is cloned with ``INSERT ... SELECT`` (same rows,
  new match ids, details too unless ``--no-fill-details``), so the file has the real shape;
- the rows of ``bench/database_archive.py`` (archival of ``--archive-events`` events, pool
  checkout p99 under ``--readers`` concurrent readers), on their own files, when it exists.
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restrike.host.cli import tune_gc
from restrike.host.timeutil import now_iso
from restrike.plugins.plugin_database import queries
from restrike.plugins.plugin_database.running import EXTENSION
from restrike.plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService
from restrike.plugins.plugin_udp.simulator import sender_timeline
from restrike.pss.ingested import ingest_datagram

COURTS = 12
P99_TARGET_MS = 5.0
RATE_TARGET = 25_000
CPU_RATE_TARGET = 40_000
SEED = 7


def interleaved_events(courts: int = COURTS, matches: int = 1, seed: int = SEED) -> list:
    """The simulator's feed of ``courts`` courts (``matches`` matches each) as the UDP plugin
    hands it to the database: datagrams in order of their send time, one session, one sender
    address per court, parsed with ``ingest_datagram``."""
    session_id = str(uuid.uuid4())
    timelines = [[(t, court, data) for t, data in sender_timeline(seed, court, matches)]
                 for court in range(courts)]
    events = []
    for seq, (_, court, data) in enumerate(heapq.merge(*timelines), start=1):
        events += ingest_datagram(
            data, session_id=session_id, seq=seq, received_at=now_iso(),
            received_ns=time.monotonic_ns(), source_ip=f"10.0.0.{court + 1}", source_port=6000)
    return events


def thread_cpu(thread) -> float | None:
    """CPU seconds ``thread`` has used so far (None where the platform cannot say)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):
        return None


def measure_inserts(service: DatabaseService, events: list, batch: int) -> tuple[float, float]:
    """(events/s of wall time, writer-thread CPU seconds per event or nan) from the first
    ``submit()`` to the ``flush()`` that says all is committed."""
    writer = service.writer
    stored0 = writer.stats()["stored"]
    cpu0 = thread_cpu(writer._thread)  # the bench reads the thread's clock
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        if not writer.submit(events[i:i + batch]):
            raise RuntimeError("the writer's queue was full: raise --queue-max")
    if not writer.flush(600):
        raise RuntimeError("the writer did not finish in 10 minutes")
    wall = time.perf_counter() - started
    cpu1 = thread_cpu(writer._thread)
    stats = writer.stats()
    if stats["stored"] - stored0 != len(events) or stats["lost"] or stats["dropped"]:
        raise RuntimeError(f"the writer did not store every event: {stats}")
    cpu = (cpu1 - cpu0) / len(events) if cpu0 is not None and cpu1 is not None else float("nan")
    return len(events) / wall, cpu


def clone_block(conn, lo: int, hi: int, details: bool) -> int:
    """Copy events lo..hi (and their matches, and details) once more; returns events added."""
    conn.execute("BEGIN IMMEDIATE")
    match_offset = conn.execute("SELECT MAX(id) FROM pss_matches").fetchone()[0]
    conn.execute(
        "INSERT INTO pss_matches (id, session_id, source_ip, source_port, match_number, phase, "
        "category, division, status, blue_score, red_score, loaded_at, updated_at) "
        "SELECT id + ?, session_id, source_ip, source_port, match_number, phase, category, "
        "division, status, blue_score, red_score, loaded_at, updated_at FROM pss_matches "
        "WHERE id IN (SELECT DISTINCT match_id FROM pss_events_v2 WHERE id BETWEEN ? AND ?)",
        (match_offset, lo, hi))
    first_new = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'pss_events_v2'"
                             ).fetchone()[0] + 1
    cur = conn.execute(
        "INSERT INTO pss_events_v2 (session_id, match_id, round_id, event_type_id, timestamp, "
        "raw_data, parsed_data, event_sequence, processing_time_ms, is_valid, error_message, "
        "created_at, tournament_id, tournament_day_id, recognition_status, protocol_version, "
        "parser_confidence, validation_errors) "
        "SELECT session_id, match_id + ?, round_id, event_type_id, timestamp, raw_data, "
        "parsed_data, event_sequence, processing_time_ms, is_valid, error_message, created_at, "
        "tournament_id, tournament_day_id, recognition_status, protocol_version, "
        "parser_confidence, validation_errors FROM pss_events_v2 WHERE id BETWEEN ? AND ? "
        "ORDER BY id", (match_offset, lo, hi))
    added = cur.rowcount
    if details:
        conn.execute(
            "INSERT INTO pss_event_details SELECT event_id + ?, detail_key, detail_value, "
            "detail_type, created_at FROM pss_event_details WHERE event_id BETWEEN ? AND ?",
            (first_new - lo, lo, hi))
    conn.execute("COMMIT")
    return added


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def extra_rows(archive_events: int, readers: int) -> list[tuple[str, str, str]]:
    """The archival and pool rows of ``bench/database_archive.py`` (POOL/ARCHIVE's), if there."""
    try:
        module = importlib.import_module("bench.database_archive")
    except ImportError:
        return [("archival / pool checkout", "not run", "bench/database_archive.py missing")]
    rows = []
    for r in module.bench_archive(archive_events) + module.bench_pool(readers):
        if "p99_ms" in r:
            result = f"p99 {r['p99_ms']:.2f} ms"
        else:
            result = f"{r['seconds']:.2f} s ({r['rate']:,.0f}/s)"
        verdict = "" if r["ok"] is None else (": ok" if r["ok"] else ": MISSED")
        target = " ".join(x for x in (f"{r['target']}{verdict}", r.get("note", "")) if x)
        rows.append((f"{r['case']} (n={r['n']:,})", result, target))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000,
                        help="events stored before the query latency is measured")
    parser.add_argument("--batch", type=int, default=256, help="events per submitted batch")
    parser.add_argument("--courts", type=int, default=COURTS, help="simulated courts")
    parser.add_argument("--matches", type=int, default=2, help="matches per court in the "
                        "measured feed (about 600 events each)")
    parser.add_argument("--rounds", type=int, default=3, help="times the feed is measured, "
                        "each with new matches (the median is reported)")
    parser.add_argument("--queries", type=int, default=500, help="match queries to time")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL", "OFF"), default="NORMAL")
    parser.add_argument("--no-fill-details", action="store_true",
                        help="clone events without their details rows (faster, smaller file)")
    parser.add_argument("--archive-events", type=int, default=100_000,
                        help="events of the archival rows (bench/database_archive.py)")
    parser.add_argument("--readers", type=int, default=50,
                        help="concurrent readers of the pool checkout row")
    parser.add_argument("--dir", type=Path, default=None, help="where the file goes (a temp "
                        "dir by default, removed at the end)")
    parser.add_argument("--keep", type=Path, default=None, metavar="FILE",
                        help="use and keep this database file: filled up to --events the first "
                        "time, reused as it is after (to measure queries again quickly)")
    args = parser.parse_args(argv)
    tune_gc()  # the collector as the app runs it

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = args.keep or Path(tmp) / DB_FILE
        service = DatabaseService.open(path, DatabaseConfig(
            synchronous=args.synchronous, queue_max_events=1_000_000, pool_max_size=4))
        try:
            rows = run(service, args)
        finally:
            service.close()
    rows += extra_rows(args.archive_events, args.readers)
    print_table(rows, "target", result_width=22)
    return 0


def print_table(rows: list[tuple[str, str, str]], last: str, result_width: int) -> None:
    """``(metric, result, note)`` rows as the benchmarks print them."""
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'result':>{result_width}}  {last}")
    print("-" * (width + 40))
    for metric, result, note in rows:
        print(f"{metric:<{width}}  {result:>{result_width}}  {note}")


def run(service: DatabaseService, args) -> list[tuple[str, str, str]]:
    feeds = [interleaved_events(args.courts, args.matches, SEED + r)
             for r in range(max(1, args.rounds))]
    block = feeds[0]

    def counts() -> tuple[int, int]:  # details and matches (a --keep file has more before)
        with service.pool.connection() as conn:
            return (conn.execute("SELECT COUNT(*) FROM pss_event_details").fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM pss_matches").fetchone()[0])

    before = counts()
    measured = [measure_inserts(service, feed, args.batch) for feed in feeds]
    rates = sorted(rate for rate, _ in measured)
    cpus = sorted(cpu for _, cpu in measured)
    rate, cpu = rates[len(rates) // 2], cpus[len(cpus) // 2]
    details, matches = (after - first for after, first in zip(counts(), before, strict=True))
    stored = sum(len(feed) for feed in feeds)
    cpu_rate = 1.0 / cpu if cpu == cpu and cpu > 0 else float("nan")
    rows = [
        (f"writer insert rate ({args.synchronous}, batches of {args.batch})",
         f"{rate:,.0f} events/s",
         (f"> {RATE_TARGET:,}/s: {'ok' if rate > RATE_TARGET else 'MISSED'} (median of "
          f"{len(rates)} rounds, {rates[0]:,.0f}-{rates[-1]:,.0f}; {len(block):,} events each, "
          f"{details / stored:.1f} details/event, {matches // len(feeds)} matches, "
          f"{args.courts} courts interleaved)")),
        ("writer CPU per event (db-writer thread)", f"{cpu * 1e6:.1f} us",
         (f"{cpu_rate:,.0f} events/CPU-s; >= {CPU_RATE_TARGET:,}: "
          f"{'ok' if cpu_rate >= CPU_RATE_TARGET else 'MISSED'} (rounds "
          f"{cpus[0] * 1e6:.1f}-{cpus[-1] * 1e6:.1f} us)")),
    ]

    with service.pool.connection() as conn:  # more than the rounds' when --keep reuses a file
        total = conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0]
    started = time.perf_counter()
    while total < args.events:
        total += service.writer.run(
            lambda conn: clone_block(conn, 1, len(block), not args.no_fill_details))
    fill_s = time.perf_counter() - started
    # The steady state: statistics fresh, the bulk fill's WAL checkpointed.
    service.writer.run(lambda conn: (conn.execute("ANALYZE"),
                                     conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")))

    app = SimpleNamespace(extensions={EXTENSION: service})  # what the commands look up
    get_events = queries.commands(app)["pss_get_events_for_match"]
    with service.pool.connection() as conn:
        match_count = conn.execute("SELECT MAX(id) FROM pss_matches").fetchone()[0]
    rng = random.Random(7)
    latencies = []
    sizes = []
    for _ in range(args.queries):
        match_id = rng.randint(1, match_count)
        t0 = time.perf_counter()
        sizes.append(len(get_events(match_id)))
        latencies.append((time.perf_counter() - t0) * 1000.0)
    p99 = percentile(latencies, 0.99)
    with service.pool.connection() as conn:
        sample = conn.execute("SELECT parsed_data FROM pss_events_v2 WHERE id = 100").fetchone()[0]
    t0 = time.perf_counter()
    for _ in range(10_000):
        json.loads(sample)
    loads_us = (time.perf_counter() - t0) * 100.0
    rows += [
        ("stored events (bulk clone of the block)", f"{total:,}", f"filled in {fill_s:.1f} s"),
        ("pss_get_events_for_match p50",
         f"{percentile(latencies, 0.50):.2f} ms", f"{sum(sizes) / len(sizes):.0f} events/match"),
        ("pss_get_events_for_match p99", f"{p99:.2f} ms",
         f"< {P99_TARGET_MS:.0f} ms: {'ok' if p99 < P99_TARGET_MS else 'MISSED'}"),
        # The query's cost is mostly Python per row: this says how fast this machine is.
        ("calibration: json.loads of one stored row", f"{loads_us:.2f} us",
         "about 1.5 us on a current laptop"),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
