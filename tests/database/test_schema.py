"""Schema and migrations on real SQLite files."""

from __future__ import annotations

import re
import sqlite3

import pytest

from restrike.plugins.plugin_database.maintenance import connect_writer
from restrike.plugins.plugin_database.migrations import (
    SchemaTooNew,
    apply_migrations,
    current_version,
)
from restrike.plugins.plugin_database.queries import EVENT_COLUMNS, EventFilters, _where
from restrike.plugins.plugin_database.schema import EVENT_TYPES, MIGRATIONS, Migration

TABLES = {
    "pss_events_v2", "pss_event_details", "pss_events_v2_archive", "pss_event_details_archive",
    "pss_event_types", "udp_server_sessions", "udp_client_connections", "pss_matches",
    "pss_athletes", "pss_match_athletes", "pss_rounds", "pss_scores", "pss_warnings",
    "tournaments", "tournament_days", "schema_version",
}


@pytest.fixture
def conn(tmp_path):
    connection = connect_writer(str(tmp_path / "schema.db"))
    yield connection
    connection.close()


def columns(conn, table):
    return [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]


def test_new_file_gets_every_table_the_latest_version_and_the_wire_codes(conn):
    assert current_version(conn) == 0
    version = apply_migrations(conn)
    assert version == MIGRATIONS[-1].version == current_version(conn)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= names
    codes = {r[0] for r in conn.execute("SELECT code FROM pss_event_types")}
    assert {"pt1", "pt2", "hl1", "wg1", "ij0", "ch1", "brk", "wrd", "wmh", "win", "at1", "mch",
            "s11", "s23", "sc1", "avt", "clk", "rnd", "pre", "rdy", "sup", "to1", "ref", "hwt",
            "hel", "bye", "inlb", "unknown"} <= codes
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert "is_simulated" in [c[0] for c in columns(conn, "udp_server_sessions")]


def test_applying_again_changes_nothing(conn):
    apply_migrations(conn)
    before = conn.execute("SELECT COUNT(*) FROM pss_event_types").fetchone()[0]
    assert apply_migrations(conn) == MIGRATIONS[-1].version
    assert conn.execute("SELECT COUNT(*) FROM pss_event_types").fetchone()[0] == before == len(
        EVENT_TYPES)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_archive_tables_have_exactly_the_main_columns_and_no_foreign_keys(conn):
    apply_migrations(conn)
    assert columns(conn, "pss_events_v2_archive") == columns(conn, "pss_events_v2")
    assert columns(conn, "pss_event_details_archive") == columns(conn, "pss_event_details")
    assert conn.execute("PRAGMA foreign_key_list(pss_event_details_archive)").fetchall() == []
    assert conn.execute("PRAGMA foreign_key_list(pss_events_v2_archive)").fetchall() == []
    main_fk = {r[2] for r in conn.execute("PRAGMA foreign_key_list(pss_event_details)")}
    assert main_fk == {"pss_events_v2"}


def test_a_failing_migration_leaves_the_previous_version(conn):
    apply_migrations(conn)
    broken = MIGRATIONS + (Migration(
        MIGRATIONS[-1].version + 1, "half a migration",
        ("CREATE TABLE half_done (id INTEGER PRIMARY KEY)", "THIS IS NOT SQL")),)
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, broken)
    assert current_version(conn) == MIGRATIONS[-1].version
    assert conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_a_file_from_a_newer_release_is_refused(conn):
    apply_migrations(conn)
    conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01T00:00:00.000000Z')")
    with pytest.raises(SchemaTooNew, match="999"):
        apply_migrations(conn)


def test_detail_keys_are_unique_per_event(conn):
    apply_migrations(conn)
    conn.execute("INSERT INTO udp_server_sessions (session_id, started_at, updated_at) "
                 "VALUES ('s', 't', 't')")
    conn.execute(
        "INSERT INTO pss_events_v2 (session_id, event_type_id, timestamp, raw_data, "
        "event_sequence, is_valid, created_at, recognition_status) "
        "VALUES ('s', 1, 't', 'pt1;3', 1, 1, 't', 'recognized')")
    conn.execute("INSERT INTO pss_event_details VALUES (1, 'k', 'v', 'str', 't')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO pss_event_details VALUES (1, 'k', 'w', 'str', 't')")
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced
        conn.execute("INSERT INTO pss_event_details VALUES (42, 'k', 'v', 'str', 't')")


def plan(conn, sql, params):
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize("filters", [
    {"match_id": 1}, {"tournament_id": 1}, {"tournament_day_id": 1}, {"session_id": "s"},
    {"event_type": "pt1"}, {"is_valid": False},
    {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
])
def test_every_event_filter_uses_an_index(conn, filters):
    apply_migrations(conn)
    where, params = _where(conn, EventFilters(**filters))
    sql = (f"SELECT {EVENT_COLUMNS} FROM pss_events_v2 e WHERE {' AND '.join(where)} "
           "ORDER BY e.id DESC LIMIT 100")
    text = plan(conn, sql, params)
    # "SCAN e USING INDEX" of the partial index reads only the invalid rows: fine.
    assert not re.search(r"SCAN e(?! USING (COVERING )?INDEX)", text), text
    assert "idx_pss_events_v2" in text, text


@pytest.mark.parametrize("sql", [
    "SELECT * FROM pss_events_v2 WHERE match_id = 1 ORDER BY id",
    "SELECT * FROM pss_events_v2_archive WHERE match_id = 1 ORDER BY id",
    "SELECT * FROM pss_events_v2 WHERE created_at < 'x'",
    "SELECT * FROM pss_events_v2_archive WHERE created_at < 'x'",
    "SELECT * FROM pss_scores WHERE match_id = 1 ORDER BY id",
    "SELECT * FROM pss_warnings WHERE match_id = 1 ORDER BY id",
    "SELECT * FROM pss_rounds WHERE match_id = 1 ORDER BY round_number",
    "SELECT * FROM udp_client_connections WHERE session_id = 's'",
    "SELECT * FROM pss_matches WHERE session_id = 's'",
    "SELECT * FROM tournament_days WHERE tournament_id = 1 ORDER BY day_number",
    "SELECT * FROM tournament_days WHERE status = 'active'",
])
def test_every_lookup_uses_an_index(conn, sql):
    apply_migrations(conn)
    text = plan(conn, sql, ())
    assert "SEARCH" in text and "SCAN" not in text, text


def test_a_matchs_event_list_is_read_from_the_match_index_alone(conn):
    apply_migrations(conn)
    sql = f"SELECT {EVENT_COLUMNS} FROM pss_events_v2 e WHERE e.match_id = ? ORDER BY e.id"
    text = plan(conn, sql, (1,))
    assert "SEARCH e USING COVERING INDEX idx_pss_events_v2_match" in text, text
    assert "TEMP B-TREE" not in text, text  # no sort either
