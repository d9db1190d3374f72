"""Benchmark of the statistics (not a test): prints a table.

    .venv/bin/python bench/statistics.py                     # quick: 300 000 stored events
    .venv/bin/python bench/statistics.py --events 10000000   # the issue's figure (~20 min fill)

Rows:
- writer insert rate with the aggregates kept (``update_aggregates`` in every batch) and
  without (the call replaced by a no-op), on two new files, the same simulated feed of
  ``--courts`` courts stored ``--rounds`` times alternately: medians, and their ratio
  (target: within 10 %);
- ``rebuild_statistics`` on the filled file: every event folded again (main table);
- ``get_match_statistics`` p50/p99 over random matches (target p99 < 10 ms),
  ``get_athlete_statistics`` over random athletes and ``get_tournament_statistics`` (all
  matches, and one tournament day) (target p99 < 50 ms), through the real commands (pool
  checkout included).

The file is filled like ``bench/database.py`` does (the measured block cloned with
``INSERT ... SELECT``), plus the clones' athletes, rounds and results, so athletes have many
matches; ``--keep FILE`` reuses a filled file.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# This file's directory comes first on sys.path when it runs as a script, where its name would
# hide the standard library's ``statistics``: the repository root takes its place.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.database import (  # noqa: E402
    clone_block,
    interleaved_events,
    measure_inserts,
    percentile,
    print_table,
)
from restrike.plugins.plugin_database import batch as batch_module  # noqa: E402
from restrike.plugins.plugin_database import statistics_commands  # noqa: E402
from restrike.plugins.plugin_database.running import EXTENSION  # noqa: E402
from restrike.plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService  # noqa: E402

SEED = 11
MATCH_P99_MS = 10.0
OTHER_P99_MS = 50.0
OVERHEAD_TARGET = 0.10


def open_service(path: Path) -> DatabaseService:
    return DatabaseService.open(path, DatabaseConfig(queue_max_events=1_000_000,
                                                     pool_max_size=4))


def writer_rates(tmp: Path, args) -> tuple[list[tuple], list[tuple]]:
    """(events/s, writer CPU s per event) with and without the aggregates, rounds
    alternated."""
    feeds = [interleaved_events(args.courts, 1, SEED + r) for r in range(args.rounds)]
    kept, bare = [], []
    real = batch_module.update_aggregates
    with_aggregates = open_service(tmp / "with.db")
    without = open_service(tmp / "without.db")
    try:
        for feed in feeds:
            kept.append(measure_inserts(with_aggregates, feed, args.batch))
            batch_module.update_aggregates = lambda cur, events=None: None
            try:
                bare.append(measure_inserts(without, feed, args.batch))
            finally:
                batch_module.update_aggregates = real
    finally:
        with_aggregates.close()
        without.close()
    return kept, bare


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def writer_row(what: str, measured: list[tuple]) -> tuple[str, str, str]:
    rates = sorted(rate for rate, _ in measured)
    cpus = sorted(cpu for _, cpu in measured)
    return (f"writer, {what}", f"{median(rates):,.0f} events/s",
            (f"median of {len(rates)} ({rates[0]:,.0f}-{rates[-1]:,.0f}); CPU "
             f"{median(cpus) * 1e6:.1f} us/event ({cpus[0] * 1e6:.1f}-{cpus[-1] * 1e6:.1f})"))


def clone_with_results(conn, block_hi: int) -> int:
    """``clone_block`` plus what it leaves out and the statistics read: the clones' athletes,
    rounds (winners) and results."""
    offset = conn.execute("SELECT MAX(id) FROM pss_matches").fetchone()[0]
    added = clone_block(conn, 1, block_hi, details=False)
    conn.execute("BEGIN IMMEDIATE")
    originals = "(SELECT DISTINCT match_id FROM pss_events_v2 WHERE id BETWEEN 1 AND ?)"
    conn.execute(f"INSERT INTO pss_match_athletes SELECT match_id + ?, athlete_position, "
                 f"athlete_id FROM pss_match_athletes WHERE match_id IN {originals}",
                 (offset, block_hi))
    conn.execute(f"INSERT INTO pss_rounds (match_id, round_number, started_at, ended_at, "
                 f"blue_score, red_score, winner) SELECT match_id + ?, round_number, started_at, "
                 f"ended_at, blue_score, red_score, winner FROM pss_rounds "
                 f"WHERE match_id IN {originals}", (offset, block_hi))
    conn.execute("UPDATE pss_matches SET (winner, winner_name, win_classification, ended_at, "
                 "tournament_id, tournament_day_id) = (SELECT o.winner, o.winner_name, "
                 "o.win_classification, o.ended_at, o.tournament_id, o.tournament_day_id "
                 "FROM pss_matches o WHERE o.id = pss_matches.id - ?) WHERE id > ?",
                 (offset, offset))
    conn.execute("COMMIT")
    return added


def timed(fn, args_list: list) -> list[float]:
    out = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events in the file")
    parser.add_argument("--courts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5, help="writer rounds per variant")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, metavar="FILE")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kept, bare = writer_rates(Path(tmp), args)
        rows += [writer_row("aggregates kept", kept), writer_row("without aggregates", bare)]
        k = median([cpu for _, cpu in kept])
        b = median([cpu for _, cpu in bare])
        overhead = k / b - 1
        rows.append(("cost of the aggregates (writer CPU)", f"{overhead * 100:+.1f} %",
                     (f"< {OVERHEAD_TARGET * 100:.0f} %: "
                      f"{'ok' if overhead < OVERHEAD_TARGET else 'MISSED'} (CPU per event: "
                      "the wall-clock rate swings with the other work on the machine)")))
        path = args.keep or Path(tmp) / DB_FILE
        service = open_service(path)
        try:
            rows += filled(service, args)
        finally:
            service.close()
    print_table(rows, "target / notes", result_width=18)
    return 0


def filled(service: DatabaseService, args) -> list[tuple[str, str, str]]:
    block = interleaved_events(args.courts, 2, SEED)
    with service.pool.connection() as conn:
        total = conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0]
    if total == 0:
        tournament = service.writer.run(lambda conn: _tournament(conn))
        service.writer.run(lambda conn: service.writer.set_context(*tournament))
        measure_inserts(service, block, args.batch)
        total = len(block)
    started = time.perf_counter()
    while total < args.events:
        total += service.writer.run(lambda conn: clone_with_results(conn, len(block)))
    fill_s = time.perf_counter() - started
    service.writer.run(lambda conn: (conn.execute("ANALYZE"),
                                     conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")))
    app = SimpleNamespace(extensions={EXTENSION: service})  # what the commands look up
    commands = statistics_commands.commands(app)
    rebuilt = commands["rebuild_statistics"]()
    rng = random.Random(5)
    with service.pool.connection() as conn:
        matches = conn.execute("SELECT MAX(id) FROM pss_matches").fetchone()[0]
        athletes = [r[0] for r in conn.execute("SELECT id FROM pss_athletes")]
        day = conn.execute("SELECT MAX(tournament_day_id) FROM pss_matches").fetchone()[0]
        per_athlete = conn.execute("SELECT COUNT(*) * 1.0 / COUNT(DISTINCT athlete_id) "
                                   "FROM pss_match_athletes").fetchone()[0]
    match_ms = timed(commands["get_match_statistics"],
                     [(rng.randint(1, matches),) for _ in range(args.queries)])
    athlete_ms = timed(commands["get_athlete_statistics"],
                       [(rng.choice(athletes),) for _ in range(args.queries)])
    all_ms = timed(commands["get_tournament_statistics"], [()] * max(20, args.queries // 10))
    day_ms = timed(lambda: commands["get_tournament_statistics"](day_id=day),
                   [()] * max(20, args.queries // 10))

    def verdict(values, target):
        p99 = percentile(values, 0.99)
        return (f"p50 {percentile(values, 0.5):.2f} / p99 {p99:.2f} ms",
                f"p99 < {target:.0f} ms: {'ok' if p99 < target else 'MISSED'}")

    return [
        ("stored events (bulk clone of the block)", f"{total:,}",
         f"filled in {fill_s:.1f} s; {matches:,} matches, {per_athlete:.0f} per athlete"),
        ("rebuild_statistics", f"{rebuilt['seconds']:.1f} s",
         (f"{rebuilt['events']:,} events, {rebuilt['events'] / max(rebuilt['seconds'], 1e-9):,.0f}"
          f" events/s, {rebuilt['matches']:,} matches")),
        ("get_match_statistics", *verdict(match_ms, MATCH_P99_MS)),
        ("get_athlete_statistics", *verdict(athlete_ms, OTHER_P99_MS)),
        ("get_tournament_statistics (all matches)", *verdict(all_ms, OTHER_P99_MS)),
        ("get_tournament_statistics (one day)", *verdict(day_ms, OTHER_P99_MS)),
    ]


def _tournament(conn) -> tuple[int, int]:
    from restrike.plugins.plugin_database import tournaments

    t = tournaments.create(conn, name="Bench", duration_days=1, city=None, country=None,
                           country_code=None, start_date=None)
    return t["id"], t["days"][0]["id"]


if __name__ == "__main__":
    sys.exit(main())
