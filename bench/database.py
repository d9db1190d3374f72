"""Benchmark of the database plugin (not a test): prints a table.

    .venv/bin/python bench/database.py                      # quick: 200 000 stored events
    .venv/bin/python bench/database.py --events 10000000    # the issue's figure (minutes, GBs)

Rows:
- writer insert rate: events/s the writer commits, each with its details rows and the match
  state, from batches of ``--batch`` events of 12 interleaved courts (parsing is done before the
  clock starts: this measures storage only);
- ``pss_get_events_for_match`` p50/p99 over ``--queries`` random matches once ``--events``
  events are stored (target p99 < 5 ms), through the real command (pool checkout included).
  To get there fast, the measured 12-court block is cloned with ``INSERT ... SELECT`` (same rows,
  new match ids, details too unless ``--no-fill-details``), so the file has the real shape;
- the rows of ``bench/database_archive.py`` (archival of ``--archive-events`` events, pool
  checkout p99 under ``--readers`` concurrent readers), on their own files, when it exists.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.timeutil import now_iso  # noqa: E402
from plugins.plugin_database import queries  # noqa: E402
from plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService  # noqa: E402
from plugins.plugin_udp.ingested import ingest_datagram  # noqa: E402

COURTS = 12
P99_TARGET_MS = 5.0


def match_datagrams(number: int) -> list[str]:
    """A realistic match: ~600 datagrams (a clock tick per second, bursts on scores)."""
    rng = random.Random(number)
    out = ["pre;FightLoaded", f"at1;B. BLUE{number};Blue ATHLETE;KOR;at2;R. RED{number};"
           "Red ATHLETE;FRA;",
           f"mch;{number};Round of 16;M- 68 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;{number:08x};"
           "Senior;3;120;cntDown;22;14",
           "wg1;0;wg2;0", "wrd;rd1;0;rd2;0;rd3;0", "s11;0;s21;0;s12;0;s22;0;s13;0;s23;0",
           "sc1;0;sc2;0", "avt;0", "clk;2:00"]
    totals = {1: [0, 0, 0], 2: [0, 0, 0]}
    for rnd in (1, 2, 3):
        out += [f"rnd;{rnd}", "rdy;FightReady", "clk;2:00;start"]
        for second in range(119, -1, -1):
            out.append(f"clk;{second // 60}:{second % 60:02d}")
            if rng.random() < 0.06:
                athlete = rng.choice((1, 2))
                point = rng.choice((1, 2, 2, 3, 4))
                totals[athlete][rnd - 1] += point
                s = totals
                out += [f"hl{athlete};{rng.randint(20, 99)}", f"pt{athlete};{point}",
                        f"s11;{s[1][0]};s21;{s[2][0]};s12;{s[1][1]};s22;{s[2][1]};"
                        f"s13;{s[1][2]};s23;{s[2][2]}",
                        f"sc1;{s[1][rnd - 1]};sc2;{s[2][rnd - 1]}"]
        out += ["clk;0:00;stop", f"wrd;rd1;1;rd2;{2 if rnd > 1 else 0};rd3;"
                f"{1 if rnd > 2 else 0}", "brk;0:59", "brk;0:00;stopEnd"]
    out += ["win;BLUE", f"wmh;B. BLUE{number};2-1 PTF"]
    return [line + "\r\n" for line in out]


def interleaved_events(first_match: int) -> list:
    """One match per court, 12 courts, their datagrams interleaved as they would arrive."""
    courts = [match_datagrams(first_match + c) for c in range(COURTS)]
    seq = 0
    events = []
    for i in range(max(len(c) for c in courts)):
        for c, datagrams in enumerate(courts):
            if i < len(datagrams):
                seq += 1
                events += ingest_datagram(
                    datagrams[i].encode(), session_id="bench", seq=seq, received_at=now_iso(),
                    received_ns=time.monotonic_ns(), source_ip=f"10.0.0.{c + 1}",
                    source_port=6000)
    return events


def measure_inserts(service: DatabaseService, events: list, batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        if not service.writer.submit(events[i:i + batch]):
            raise RuntimeError("the writer's queue was full: raise --queue-max")
    if not service.writer.flush(600):
        raise RuntimeError("the writer did not finish in 10 minutes")
    return len(events) / (time.perf_counter() - started)


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
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / DB_FILE
        service = DatabaseService.open(path, DatabaseConfig(
            synchronous=args.synchronous, queue_max_events=1_000_000, pool_max_size=4))
        try:
            rows = run(service, args)
        finally:
            service.close()
    rows += extra_rows(args.archive_events, args.readers)
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'result':>22}  target")
    print("-" * (width + 40))
    for metric, result, target in rows:
        print(f"{metric:<{width}}  {result:>22}  {target}")
    return 0


def run(service: DatabaseService, args) -> list[tuple[str, str, str]]:
    block = interleaved_events(1)
    rate = measure_inserts(service, block, args.batch)
    with service.pool.connection() as conn:
        details = conn.execute("SELECT COUNT(*) FROM pss_event_details").fetchone()[0]
    rows = [(f"writer insert rate ({args.synchronous}, batches of {args.batch})",
             f"{rate:,.0f} events/s", f"{details / len(block):.1f} details/event, "
                                      f"{COURTS} courts interleaved")]

    total = len(block)
    started = time.perf_counter()
    while total < args.events:
        total += service.writer.run(
            lambda conn: clone_block(conn, 1, len(block), not args.no_fill_details))
    fill_s = time.perf_counter() - started
    # The steady state: statistics fresh, the bulk fill's WAL checkpointed.
    service.writer.run(lambda conn: (conn.execute("ANALYZE"),
                                     conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")))

    get_events = queries.commands(lambda: service)["pss_get_events_for_match"]
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
