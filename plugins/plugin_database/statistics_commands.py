"""The statistics commands: match, athlete and tournament statistics, rebuild, export.

``commands(app)`` returns ``{name: function}``; the database plugin registers them.
Reads go through the pool and read only the aggregates ``statistics.py`` keeps (plus the
tracking tables); ``rebuild_statistics`` runs on the writer thread. Exports write CSV or XLSX
(openpyxl) to a path the user picked, the way ``export_events`` writes (``export.write_file``:
absolute, no ``..``, no symbolic link, beside the target then moved into place, ``overwrite`` to
replace). Rebuild and export are jobs (``@runs_as_job``): one long operation at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

from pydantic import Field, StringConstraints

from restrike.host.commands import runs_as_job
from restrike.host.errors import NotFound
from restrike.pss.statistics import POINT_KEYS

from . import statistics
from .export import FilePath, csv_cell, write_file
from .queries import Id
from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService

Search = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Court = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Limit = Annotated[int, Field(ge=1, le=1000)]

_REBUILD_TIMEOUT = 3600.0  # s to wait for the writer to start the rebuild

EXPORT_KINDS = ("athletes", "matches", "tournament")


def _athlete_rows(conn, tournament_id, day_id) -> Iterator[list]:
    yield ["athlete_id", "short_name", "long_name", "country", "matches", "wins", "losses",
           "rounds_won", "rounds_lost", "points_for", "points_against",
           *(f"scored_{k}" for k in POINT_KEYS), *(f"conceded_{k}" for k in POINT_KEYS),
           "penalties_received", "penalties_given", "hit_level_count", "hit_level_mean",
           "hit_level_max"]
    ids = [r[0] for r in conn.execute("SELECT id FROM pss_athletes ORDER BY id")]
    for athlete_id in ids:
        s = statistics.athlete_statistics(conn, athlete_id, 0)
        if s is None:  # removed since the list was read
            continue
        a = s["athlete"]
        yield [a["id"], a["short"], a["long"], a["country"], s["matches"], s["wins"],
               s["losses"], s["rounds_won"], s["rounds_lost"], s["points_for"],
               s["points_against"], *s["points_scored_by_type"].values(),
               *s["points_conceded_by_type"].values(), s["penalties_received"],
               s["penalties_given"], s["hit_levels"]["count"], s["hit_levels"]["mean"],
               s["hit_levels"]["max"]]


def _match_rows(conn, tournament_id, day_id) -> Iterator[list]:
    sides = ("blue", "red")
    yield ["match_id", "match_number", "category", "phase", "status", "blue_athlete",
           "red_athlete", "winner", "win_type", "classification", "loaded_at", "ended_at",
           *(f"{side}_{what}" for side in sides for what in (
               "points", "gam_jeom", *POINT_KEYS, "hit_level_count", "hit_level_mean",
               "hit_level_max"))]
    where, params = statistics.match_filter(tournament_id, day_id)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    ids = [r[0] for r in conn.execute(f"SELECT id FROM pss_matches {clause} ORDER BY id",
                                      params)]
    for match_id in ids:
        s = statistics.match_statistics(conn, match_id)
        if s is None:  # removed since the list was read
            continue
        names = [(s["athletes"].get(side) or {}).get("short") for side in sides]
        row = [s["match_id"], s["match_number"], s["category"], s["phase"], s["status"],
               *names, s["winner"], s["win_type"], s["win_classification"], s["loaded_at"],
               s["ended_at"]]
        for side in sides:
            t = s["total"][side]
            row += [t["points"], t["gam_jeom"], *t["points_by_type"].values(),
                    t["hit_levels"]["count"], t["hit_levels"]["mean"], t["hit_levels"]["max"]]
        yield row


def _tournament_rows(conn, tournament_id, day_id) -> Iterator[list]:
    s = statistics.tournament_statistics(conn, tournament_id, day_id)
    yield ["section", "key", "value"]
    for key in ("matches", "finished", "in_progress", "penalties", "penalties_per_match"):
        yield ["summary", key, s[key]]
    for key, value in s["duration_s"].items():
        yield ["duration_s", key, value]
    for key, value in s["technique_mix"].items():
        yield ["technique_mix", key, value]
    for key, value in s["win_types"].items():
        yield ["win_types", key, value]
    for court in s["per_court"]:
        yield ["court_finished", court["court"], court["finished"]]
        yield ["court_in_progress", court["court"], court["in_progress"]]
    for hour in s["per_hour"]:
        yield ["hour_matches", hour["hour"], hour["finished"] + hour["in_progress"]]


_EXPORTS = {"athletes": _athlete_rows, "matches": _match_rows, "tournament": _tournament_rows}


def write_export(rows: Iterator[list], fmt: str, path: str, overwrite: bool) -> int:
    """Write ``rows`` (a header first) to the file ``path`` as CSV or XLSX; returns the data
    rows. The file is written as ``export_events`` writes one (``export.write_file``: never
    through a symbolic link, beside the target then moved into place, typed errors). Text
    cells a spreadsheet would run as a formula get a leading apostrophe in CSV; in XLSX every
    text is written as a string cell, which a spreadsheet never evaluates."""

    def write(binary: BinaryIO) -> int:
        count = -1
        if fmt == "csv":
            out = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            writer = csv.writer(out)
            for row in rows:
                writer.writerow([csv_cell(v) for v in row])
                count += 1
            out.flush()
            out.detach()  # write_file closes it, after its fsync
        else:
            from openpyxl import Workbook
            from openpyxl.cell import WriteOnlyCell

            book = Workbook(write_only=True)
            sheet = book.create_sheet((PurePosixPath(path).stem or "statistics")[:31])
            for row in rows:
                cells = []
                for value in row:
                    cell = WriteOnlyCell(sheet, value=value)
                    if isinstance(value, str):
                        cell.data_type = "s"  # text, never a formula
                    cells.append(cell)
                sheet.append(cells)
                count += 1
            book.save(binary)
        return max(count, 0)

    return write_file(path, overwrite, write)


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The statistics commands, bound to the running service."""

    def get_service() -> DatabaseService:
        return service_of(app)

    def get_match_statistics(match_id: Id) -> dict:
        """Statistics of one match (archived events included: they are aggregates).

        ``{match_id, status, winner, winner_name, win_classification, win_type, match_number,
        category, phase, loaded_at, ended_at, athletes: {blue, red: {id, short, long, country}
        | null}, rounds: [{round, winner, blue: S, red: S}], total: {blue: S, red: S},
        timeline: [{round, clock, event_id, blue, red}]}`` where ``S = {points_by_type:
        {punch, body, head, technical_body, technical_head}, points, gam_jeom, hit_levels:
        {count, mean, max, histogram}}``. ``points_by_type`` counts scoring actions
        (``pt1;3`` is one head kick for blue); ``points`` is what the scoring system reported
        (the round's ``s1n``/``s2n`` snapshot; without one, actions plus the opponent's
        gam-jeoms); ``gam_jeom`` the penalties given to that side (increases of its running
        count); ``hit_levels`` the side's sensor hit levels, ``histogram`` in ten buckets
        1-10 .. 91-100. ``rounds`` lists the rounds fought or with something counted (round
        0: before round 1); ``total`` sums every round. ``timeline`` is the reported match
        score after each score snapshot that changed it (round and clock when it arrived).
        Raises ``not_found`` (field ``matchId``) when there is no such match.
        """
        with get_service().pool.connection() as conn:
            result = statistics.match_statistics(conn, match_id)
        if result is None:
            raise NotFound(f"there is no match {match_id}", field="matchId")
        return result

    def get_athletes(search: Search | None = None, limit: Limit = 200) -> list[dict]:
        """Athletes whose short or long name or country code contains ``search`` (case
        insensitive for ASCII; all when empty), by name, at most ``limit``:
        ``[{id, short, long, country, matches, wins, losses}]``."""
        with get_service().pool.connection() as conn:
            return statistics.athletes(conn, search or None, limit)

    def get_athlete_statistics(athlete_id: Id, match_limit: Limit = 200) -> dict:
        """One athlete's record over every stored match: ``{athlete, matches, wins, losses,
        rounds_won, rounds_lost, points_scored_by_type, points_conceded_by_type, points_for,
        points_against, penalties_received, penalties_given, hit_levels {count, mean, max},
        win_types [{win_type, wins, losses}], match_list}``; ``match_list`` holds the newest
        ``match_limit`` matches ``{match_id, side, status, result (win/loss/null), win_type,
        classification, opponent, points_for, points_against, match_number, category, phase,
        loaded_at, ended_at}``. ``win_type`` is the last word of the scoring system's
        classification (``PTF``, ``PTG``, ``GDP``, ``SUP``, ``DSQ``...). Raises ``not_found``
        (field ``athleteId``) for an unknown athlete."""
        with get_service().pool.connection() as conn:
            result = statistics.athlete_statistics(conn, athlete_id, match_limit)
        if result is None:
            raise NotFound(f"there is no athlete {athlete_id}", field="athleteId")
        return result

    def get_tournament_statistics(tournament_id: Id | None = None, day_id: Id | None = None,
                                  court: Court | None = None) -> dict:
        """Statistics of the matches of a tournament (or of one of its days; all matches when
        neither is given): ``{matches, finished, in_progress, per_court [{court, finished,
        in_progress}], per_hour [{hour, finished, in_progress, by_court}], duration_s {mean,
        p90, count} (load to end of finished matches), win_types {type: count},
        technique_mix {punch..technical_head}, penalties, penalties_per_match, event_rates
        {since, per_court {court: [{minute, events}]}}}`` (events per minute over the last
        hour, for trend charts). ``court`` keeps only the matches of that court (``--court``
        of the instance that stored them). A court is named by its ``--court``; a match stored
        before courts existed (schema 8) by its sender's address (``ip:port``)."""
        with get_service().pool.connection() as conn:
            return statistics.tournament_statistics(conn, tournament_id, day_id, court=court)

    @runs_as_job
    def rebuild_statistics() -> dict:
        """Recompute every statistics aggregate from the stored events (main and archive
        tables) in one transaction on the writer thread (ingest waits in its queue
        meanwhile); returns ``{events, matches, athletes, seconds}``."""
        return get_service().writer.run(statistics.rebuild, timeout=_REBUILD_TIMEOUT)

    @runs_as_job
    def export_statistics(kind: Literal["athletes", "matches", "tournament"],
                          format: Literal["csv", "xlsx"],  # noqa: A002 - the API's name
                          path: FilePath, overwrite: bool = False,
                          tournament_id: Id | None = None,
                          day_id: Id | None = None) -> dict:
        """Write statistics to the file ``path`` as ``csv`` or ``xlsx``; returns ``{path,
        rows}``. ``athletes``: one row per athlete (record, points by type, penalties, hit
        levels); ``matches``: one row per match (of ``tournament_id``/``day_id`` when given)
        with both sides' totals as ``get_match_statistics`` gives them; ``tournament``:
        ``section, key, value`` rows of ``get_tournament_statistics``. ``path`` follows
        ``export_events``' rules (absolute, existing directory, no ``..``, no symbolic link;
        an existing file is a ``conflict`` unless ``overwrite``)."""
        with get_service().pool.connection() as conn:
            rows = _EXPORTS[kind](conn, tournament_id, day_id)
            count = write_export(rows, format, path, overwrite)
        return {"path": path, "rows": count}

    return {fn.__name__: fn for fn in (
        get_match_statistics, get_athletes, get_athlete_statistics, get_tournament_statistics,
        rebuild_statistics, export_statistics,
    )}
