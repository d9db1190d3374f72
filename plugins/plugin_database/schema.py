"""The database schema, as versioned migrations, and the seed of ``pss_event_types``.

The statements here are plain SQL that SQLite and PostgreSQL both understand (on PostgreSQL
through ``backend.pg_ddl`` and, for the few it cannot take, ``PG_SPELLINGS``), with three SQLite
spellings kept on purpose: ``INTEGER PRIMARY KEY AUTOINCREMENT`` (ids of events are never reused,
so an archived event keeps an id no new event can take; the writer assigns them itself, above
``sqlite_sequence`` and both tables' largest id, see ``writer.py``), ``WITHOUT ROWID`` on the
details tables (one b-tree insert per detail instead of two) and partial indexes. A CHECK on a
table the writer fills row by row is spelled with ``=``/``OR``, never ``IN (...)`` (see
``_V2``). Every pragma lives in ``maintenance.connect_writer`` and ``BatchStore.__init__`` (the
writing connection) and ``pool.connect_reader`` (the readers).

Conventions:
- every time is TEXT in ``host.timeutil`` format (``2026-11-28T12:00:00.123456Z``), so text order
  is time order; dates of tournaments are ``YYYY-MM-DD``;
- JSON columns (``parsed_data``, ``validation_errors``, ``match_config``, ``counters``) are TEXT;
  ``parsed_data`` is the parser's model without ``raw`` (it is ``raw_data``) and without its None
  fields, plus ``description``, ``match_round`` and ``match_clock`` (the match's round and clock
  when the event arrived), so ``EVENT_ADAPTER.validate_python({**parsed, "raw": raw_data})``
  rebuilds the event; ``NULL`` only for an event stored bare after a processing error;
- ``athlete``/``athlete_position`` follow the wire: 1 blue, 2 red, 0 referee;
- the archive tables ``pss_events_v2_archive`` and ``pss_event_details_archive`` have exactly the
  columns of ``pss_events_v2`` and ``pss_event_details`` (same names, same order) and no foreign
  keys, so archival is ``INSERT INTO x_archive SELECT * FROM x WHERE ...``;
- ``court`` (``udp_server_sessions``, ``pss_matches``, version 8) names the court whose instance
  wrote the row; ``(session_id, event_sequence, datagram_index)`` is unique (an event's natural
  key: session ids are UUIDs, unique across courts);
- ``pss_scores.event_id`` and ``pss_warnings.event_id`` have no foreign key on purpose: the event
  they name may live in the main table or, after archival, in the archive table (same id).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: applied in one transaction, recorded in ``schema_version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_EVENT_COLUMNS = """
    session_id TEXT{session_fk},
    match_id INTEGER{match_fk},
    round_id INTEGER,
    event_type_id INTEGER NOT NULL{type_fk},
    timestamp TEXT NOT NULL,
    raw_data TEXT NOT NULL,
    parsed_data TEXT,
    event_sequence INTEGER NOT NULL,
    processing_time_ms REAL,
    is_valid INTEGER NOT NULL,
    error_message TEXT,
    created_at TEXT NOT NULL,
    tournament_id INTEGER{tournament_fk},
    tournament_day_id INTEGER{day_fk},
    recognition_status TEXT NOT NULL,
    protocol_version TEXT,
    parser_confidence REAL,
    validation_errors TEXT
"""

_DETAIL_COLUMNS = """
    event_id INTEGER NOT NULL{event_fk},
    detail_key TEXT NOT NULL,
    detail_value TEXT,
    detail_type TEXT NOT NULL CHECK (detail_type IN ('int', 'float', 'str', 'bool', 'json')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (event_id, detail_key)
"""

_MAIN_EVENT_FKS = dict(
    session_fk=" REFERENCES udp_server_sessions(session_id)",
    match_fk=" REFERENCES pss_matches(id) ON DELETE SET NULL",
    type_fk=" REFERENCES pss_event_types(id)",
    tournament_fk=" REFERENCES tournaments(id) ON DELETE SET NULL",
    day_fk=" REFERENCES tournament_days(id) ON DELETE SET NULL",
)
_NO_EVENT_FKS = {key: "" for key in _MAIN_EVENT_FKS}

_V1 = (
    """CREATE TABLE pss_event_types (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        description TEXT NOT NULL,
        is_known INTEGER NOT NULL DEFAULT 1
    )""",
    """CREATE TABLE tournaments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        duration_days INTEGER NOT NULL CHECK (duration_days >= 1),
        city TEXT,
        country TEXT,
        country_code TEXT,
        start_date TEXT,
        end_date TEXT,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'active', 'completed')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE tournament_days (
        id INTEGER PRIMARY KEY,
        tournament_id INTEGER NOT NULL REFERENCES tournaments(id) ON DELETE CASCADE,
        day_number INTEGER NOT NULL CHECK (day_number >= 1),
        date TEXT,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'active', 'completed')),
        start_time TEXT,
        end_time TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (tournament_id, day_number)
    )""",
    "CREATE INDEX idx_tournament_days_status ON tournament_days (status)",
    """CREATE TABLE udp_server_sessions (
        session_id TEXT PRIMARY KEY,
        bind_address TEXT,
        port INTEGER,
        started_at TEXT NOT NULL,
        stopped_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        is_simulated INTEGER NOT NULL DEFAULT 0,
        packets_received INTEGER NOT NULL DEFAULT 0,
        bytes_received INTEGER NOT NULL DEFAULT 0,
        events_stored INTEGER NOT NULL DEFAULT 0,
        invalid_events INTEGER NOT NULL DEFAULT 0,
        unknown_events INTEGER NOT NULL DEFAULT 0,
        first_event_at TEXT,
        last_event_at TEXT,
        counters TEXT,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX idx_udp_server_sessions_started ON udp_server_sessions (started_at)",
    """CREATE TABLE udp_client_connections (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES udp_server_sessions(session_id) ON DELETE CASCADE,
        source_ip TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        packets INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        UNIQUE (session_id, source_ip, source_port)
    )""",
    """CREATE TABLE pss_matches (
        id INTEGER PRIMARY KEY,
        session_id TEXT REFERENCES udp_server_sessions(session_id) ON DELETE SET NULL,
        source_ip TEXT,
        source_port INTEGER,
        tournament_id INTEGER REFERENCES tournaments(id) ON DELETE SET NULL,
        tournament_day_id INTEGER REFERENCES tournament_days(id) ON DELETE SET NULL,
        match_number TEXT,
        phase TEXT,
        category TEXT,
        division TEXT,
        internal_match_id TEXT,
        rounds_total INTEGER,
        round_duration_s INTEGER,
        countdown_type TEXT,
        blue_bg TEXT,
        blue_fg TEXT,
        red_bg TEXT,
        red_fg TEXT,
        match_config TEXT,
        status TEXT NOT NULL DEFAULT 'loaded'
            CHECK (status IN ('loaded', 'ready', 'running', 'finished')),
        current_round INTEGER,
        clock TEXT,
        blue_score INTEGER NOT NULL DEFAULT 0,
        red_score INTEGER NOT NULL DEFAULT 0,
        blue_warnings INTEGER NOT NULL DEFAULT 0,
        red_warnings INTEGER NOT NULL DEFAULT 0,
        winner TEXT CHECK (winner IN ('blue', 'red')),
        winner_name TEXT,
        win_classification TEXT,
        loaded_at TEXT NOT NULL,
        ended_at TEXT,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX idx_pss_matches_session ON pss_matches (session_id, id)",
    "CREATE INDEX idx_pss_matches_tournament ON pss_matches (tournament_id, id)",
    "CREATE INDEX idx_pss_matches_day ON pss_matches (tournament_day_id, id)",
    """CREATE TABLE pss_athletes (
        id INTEGER PRIMARY KEY,
        short_name TEXT NOT NULL,
        long_name TEXT NOT NULL DEFAULT '',
        country_code TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (short_name, long_name, country_code)
    )""",
    """CREATE TABLE pss_match_athletes (
        match_id INTEGER NOT NULL REFERENCES pss_matches(id) ON DELETE CASCADE,
        athlete_position INTEGER NOT NULL CHECK (athlete_position IN (1, 2)),
        athlete_id INTEGER NOT NULL REFERENCES pss_athletes(id),
        PRIMARY KEY (match_id, athlete_position)
    )""",
    "CREATE INDEX idx_pss_match_athletes_athlete ON pss_match_athletes (athlete_id)",
    """CREATE TABLE pss_rounds (
        id INTEGER PRIMARY KEY,
        match_id INTEGER NOT NULL REFERENCES pss_matches(id) ON DELETE CASCADE,
        round_number INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        blue_score INTEGER,
        red_score INTEGER,
        winner INTEGER CHECK (winner IN (0, 1, 2)),
        UNIQUE (match_id, round_number)
    )""",
    """CREATE TABLE pss_scores (
        id INTEGER PRIMARY KEY,
        match_id INTEGER NOT NULL REFERENCES pss_matches(id) ON DELETE CASCADE,
        round_id INTEGER REFERENCES pss_rounds(id) ON DELETE SET NULL,
        event_id INTEGER NOT NULL,
        athlete INTEGER NOT NULL CHECK (athlete IN (1, 2)),
        point_type INTEGER NOT NULL,
        points INTEGER NOT NULL,
        clock TEXT,
        scored_at TEXT NOT NULL
    )""",
    "CREATE INDEX idx_pss_scores_match ON pss_scores (match_id, id)",
    "CREATE INDEX idx_pss_scores_round ON pss_scores (round_id)",
    """CREATE TABLE pss_warnings (
        id INTEGER PRIMARY KEY,
        match_id INTEGER NOT NULL REFERENCES pss_matches(id) ON DELETE CASCADE,
        round_id INTEGER REFERENCES pss_rounds(id) ON DELETE SET NULL,
        event_id INTEGER NOT NULL,
        athlete INTEGER NOT NULL CHECK (athlete IN (1, 2)),
        warnings INTEGER NOT NULL,
        clock TEXT,
        issued_at TEXT NOT NULL
    )""",
    "CREATE INDEX idx_pss_warnings_match ON pss_warnings (match_id, id)",
    "CREATE INDEX idx_pss_warnings_round ON pss_warnings (round_id)",
    "CREATE TABLE pss_events_v2 (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,"
    + _EVENT_COLUMNS.format(**_MAIN_EVENT_FKS) + ")",
    # (column, id): a filter plus the id order the queries page by, straight from the index.
    "CREATE INDEX idx_pss_events_v2_match ON pss_events_v2 (match_id, id)",
    "CREATE INDEX idx_pss_events_v2_session ON pss_events_v2 (session_id, id)",
    "CREATE INDEX idx_pss_events_v2_type ON pss_events_v2 (event_type_id, id)",
    "CREATE INDEX idx_pss_events_v2_tournament ON pss_events_v2 (tournament_id, id)",
    "CREATE INDEX idx_pss_events_v2_day ON pss_events_v2 (tournament_day_id, id)",
    "CREATE INDEX idx_pss_events_v2_timestamp ON pss_events_v2 (timestamp)",
    # Archival selects by created_at (archive.py).
    "CREATE INDEX idx_pss_events_v2_created ON pss_events_v2 (created_at)",
    # Invalid events are rare: a partial index keeps "show me the invalid ones" cheap for free.
    "CREATE INDEX idx_pss_events_v2_invalid ON pss_events_v2 (id) WHERE is_valid = 0",
    # WITHOUT ROWID: the rows live in their primary key's b-tree, one insert per detail instead
    # of two (table + index); ~5 details per event make this the writer's biggest cost.
    "CREATE TABLE pss_event_details ("
    + _DETAIL_COLUMNS.format(event_fk=" REFERENCES pss_events_v2(id) ON DELETE CASCADE")
    + ") WITHOUT ROWID",
    "CREATE TABLE pss_events_v2_archive (\n    id INTEGER PRIMARY KEY,"
    + _EVENT_COLUMNS.format(**_NO_EVENT_FKS) + ")",
    "CREATE INDEX idx_pss_events_v2_archive_match ON pss_events_v2_archive (match_id, id)",
    "CREATE INDEX idx_pss_events_v2_archive_timestamp ON pss_events_v2_archive (timestamp)",
    "CREATE INDEX idx_pss_events_v2_archive_created ON pss_events_v2_archive (created_at)",
    "CREATE TABLE pss_event_details_archive (" + _DETAIL_COLUMNS.format(event_fk="")
    + ") WITHOUT ROWID",
)

# Version 2: pss_event_details rebuilt with the same columns, key and meaning, but its CHECK
# spelled as comparisons. ``detail_type IN ('int', ...)`` makes SQLite build a temporary
# lookup table every time the INSERT statement runs, and the writer runs it once per detail row
# (``executemany``): measured 4.5 us of the ~7 us a detail row cost, about 20 us per event.
_DETAIL_COLUMNS_V2 = _DETAIL_COLUMNS.replace(
    "CHECK (detail_type IN ('int', 'float', 'str', 'bool', 'json'))",
    "CHECK (detail_type = 'int' OR detail_type = 'float' OR detail_type = 'str' "
    "OR detail_type = 'bool' OR detail_type = 'json')",
)
assert _DETAIL_COLUMNS_V2 != _DETAIL_COLUMNS
_V2 = (
    "CREATE TABLE pss_event_details_v2 ("
    + _DETAIL_COLUMNS_V2.format(event_fk=" REFERENCES pss_events_v2(id) ON DELETE CASCADE")
    + ") WITHOUT ROWID",
    ("INSERT INTO pss_event_details_v2 (event_id, detail_key, detail_value, detail_type, "
     "created_at) SELECT event_id, detail_key, detail_value, detail_type, created_at "
     "FROM pss_event_details"),
    "DROP TABLE pss_event_details",
    "ALTER TABLE pss_event_details_v2 RENAME TO pss_event_details",
)

# Version 3: the same for pss_event_details_archive, which version 2 missed. Archival inserts
# its rows with INSERT ... SELECT, where the IN-list CHECK made each row cost five times as
# much (measured: 400,000 detail rows in 0.99 s instead of 0.19 s).
_V3 = (
    "CREATE TABLE pss_event_details_archive_v3 (" + _DETAIL_COLUMNS_V2.format(event_fk="")
    + ") WITHOUT ROWID",
    ("INSERT INTO pss_event_details_archive_v3 (event_id, detail_key, detail_value, detail_type, "
     "created_at) SELECT event_id, detail_key, detail_value, detail_type, created_at "
     "FROM pss_event_details_archive"),
    "DROP TABLE pss_event_details_archive",
    "ALTER TABLE pss_event_details_archive_v3 RENAME TO pss_event_details_archive",
)

# Version 4: what the app must remember across restarts (the UDP tournament context), one JSON
# value per key.
_V4 = (
    ("CREATE TABLE app_state (\n    key TEXT PRIMARY KEY,\n    value TEXT NOT NULL,\n"
     "    updated_at TEXT NOT NULL\n) WITHOUT ROWID"),
)

# Version 5: the match index carries the columns a match's event list reads, so that list is a
# walk along one part of one index (about 50 pages for a match) instead of a b-tree descent
# into the table for each event, scattered across ~12 times as many pages by the courts
# interleaving. Measured on 10 million events (bench/database.py): the file grows by 29%
# (8.1 to 10.5 GB), the writer's rate does not move, pss_get_events_for_match p50/p99 go from
# 3.1/5.1 ms to 2.4-2.6/4.3-4.6 ms. The columns are queries.EVENT_COLUMNS (a test checks the
# plan stays "COVERING INDEX"). On an existing file the index is built once at start-up.
_V5 = (
    "DROP INDEX idx_pss_events_v2_match",
    ("CREATE INDEX idx_pss_events_v2_match ON pss_events_v2 (match_id, id, session_id, "
     "timestamp, raw_data, parsed_data, is_valid, error_message, event_type_id)"),
)

# Version 6: the clips of the instant video replay (plugins/plugin_obs), the original app's
# ``recorded_videos`` table and each clip's timeline. ``recorded_video_events.event_id`` and
# ``trigger_event_id`` have no foreign key on purpose (like ``pss_scores.event_id``): archival
# moves an event to ``pss_events_v2_archive`` under the same id, and the clip keeps it. The
# match link is ON DELETE SET NULL: a clip outlives the match rows it was cut from.
_V6 = (
    """CREATE TABLE recorded_videos (
        id INTEGER PRIMARY KEY,
        file_path TEXT NOT NULL UNIQUE,
        instance TEXT NOT NULL,
        match_id INTEGER REFERENCES pss_matches(id) ON DELETE SET NULL,
        court TEXT,
        trigger TEXT NOT NULL,
        trigger_event_id INTEGER,
        start_time TEXT NOT NULL,
        created_at TEXT NOT NULL,
        duration_s REAL NOT NULL,
        file_size INTEGER
    )""",
    "CREATE INDEX idx_recorded_videos_match ON recorded_videos (match_id, id)",
    "CREATE INDEX idx_recorded_videos_created ON recorded_videos (created_at)",
    """CREATE TABLE recorded_video_events (
        video_id INTEGER NOT NULL REFERENCES recorded_videos(id) ON DELETE CASCADE,
        event_id INTEGER NOT NULL,
        offset_ms INTEGER NOT NULL,
        PRIMARY KEY (video_id, event_id)
    ) WITHOUT ROWID""",
)

# Version 7: the statistics' cached aggregates (``statistics.py``), kept by the writer in the
# same transaction as the events they summarise. Keyed by match (and athlete, minute), never by
# event, so archival and restore, which move events between the main and archive tables, leave
# them exact. ``stat_state.folded_up_to`` is the largest event id folded in; an existing file
# starts there at its largest id and ``pending_rebuild`` 1 when it already held events (their
# statistics come with ``rebuild_statistics``). No foreign keys: like pss_scores, they are
# bookkeeping the writer fills with its checks off.
_STAT_COUNTS = ("punch INTEGER NOT NULL DEFAULT 0, body INTEGER NOT NULL DEFAULT 0, "
                "head INTEGER NOT NULL DEFAULT 0, technical_body INTEGER NOT NULL DEFAULT 0, "
                "technical_head INTEGER NOT NULL DEFAULT 0")
_V7 = (
    ("CREATE TABLE stat_state (\n    key TEXT PRIMARY KEY,\n    value INTEGER NOT NULL\n"
    ") WITHOUT ROWID"),
    ("INSERT INTO stat_state (key, value) SELECT 'folded_up_to', MAX("
    "COALESCE((SELECT MAX(id) FROM pss_events_v2), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2_archive), 0))"),
    "INSERT INTO stat_state (key, value) VALUES ('generation', 0)",
    ("INSERT INTO stat_state (key, value) SELECT 'pending_rebuild', "
    "EXISTS (SELECT 1 FROM pss_events_v2) OR EXISTS (SELECT 1 FROM pss_events_v2_archive)"),
    f"""CREATE TABLE stat_match_rounds (
        match_id INTEGER NOT NULL,
        round_number INTEGER NOT NULL,
        athlete INTEGER NOT NULL CHECK (athlete = 1 OR athlete = 2),
        seen INTEGER NOT NULL DEFAULT 0,
        {_STAT_COUNTS},
        scored INTEGER NOT NULL DEFAULT 0,
        gam_jeom INTEGER NOT NULL DEFAULT 0,
        hl_count INTEGER NOT NULL DEFAULT 0,
        hl_sum INTEGER NOT NULL DEFAULT 0,
        hl_max INTEGER NOT NULL DEFAULT 0,
        hl_histogram TEXT NOT NULL,
        reported INTEGER,
        PRIMARY KEY (match_id, round_number, athlete)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE stat_matches (
        match_id INTEGER PRIMARY KEY,
        events INTEGER NOT NULL DEFAULT 0,
        blue_points INTEGER NOT NULL DEFAULT 0,
        red_points INTEGER NOT NULL DEFAULT 0,
        blue_gam_jeom INTEGER NOT NULL DEFAULT 0,
        red_gam_jeom INTEGER NOT NULL DEFAULT 0,
        {_STAT_COUNTS},
        hl_count INTEGER NOT NULL DEFAULT 0,
        hl_sum INTEGER NOT NULL DEFAULT 0,
        contribution TEXT NOT NULL
    )""",
    """CREATE TABLE stat_match_timeline (
        match_id INTEGER NOT NULL,
        event_id INTEGER NOT NULL,
        round_number INTEGER,
        clock TEXT,
        blue INTEGER NOT NULL,
        red INTEGER NOT NULL,
        PRIMARY KEY (match_id, event_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE stat_athletes (
        athlete_id INTEGER PRIMARY KEY,
        matches INTEGER NOT NULL DEFAULT 0,
        wins INTEGER NOT NULL DEFAULT 0,
        losses INTEGER NOT NULL DEFAULT 0,
        rounds_won INTEGER NOT NULL DEFAULT 0,
        rounds_lost INTEGER NOT NULL DEFAULT 0,
        scored_punch INTEGER NOT NULL DEFAULT 0,
        scored_body INTEGER NOT NULL DEFAULT 0,
        scored_head INTEGER NOT NULL DEFAULT 0,
        scored_technical_body INTEGER NOT NULL DEFAULT 0,
        scored_technical_head INTEGER NOT NULL DEFAULT 0,
        conceded_punch INTEGER NOT NULL DEFAULT 0,
        conceded_body INTEGER NOT NULL DEFAULT 0,
        conceded_head INTEGER NOT NULL DEFAULT 0,
        conceded_technical_body INTEGER NOT NULL DEFAULT 0,
        conceded_technical_head INTEGER NOT NULL DEFAULT 0,
        points_for INTEGER NOT NULL DEFAULT 0,
        points_against INTEGER NOT NULL DEFAULT 0,
        penalties_received INTEGER NOT NULL DEFAULT 0,
        penalties_given INTEGER NOT NULL DEFAULT 0,
        hl_count INTEGER NOT NULL DEFAULT 0,
        hl_sum INTEGER NOT NULL DEFAULT 0,
        hl_max INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE stat_athlete_win_types (
        athlete_id INTEGER NOT NULL,
        win_type TEXT NOT NULL,
        wins INTEGER NOT NULL DEFAULT 0,
        losses INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (athlete_id, win_type)
    ) WITHOUT ROWID""",
    """CREATE TABLE stat_event_rates (
        minute TEXT NOT NULL,
        match_id INTEGER NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (minute, match_id)
    ) WITHOUT ROWID""",
)

# Version 8: courts (issue 13). ``court`` on ``udp_server_sessions`` and ``pss_matches`` names
# the court (``--court``) whose instance wrote the row; an event belongs to its session's court.
# Rows written before this version have no court (NULL). ``datagram_index`` is the message's
# place in its datagram (``IngestedEvent.index``, so far only the ``index`` detail row), filled
# from that detail for the events already stored. The natural key of an event is (court,
# session, datagram sequence, index in datagram); session ids are random UUIDs, unique across
# courts and instances, so the UNIQUE index on (session_id, event_sequence, datagram_index) is
# that key: a batch stored twice (a retry after a reconnect) cannot store an event twice.
# Events without a datagram_index (NULL: written by hand, cloned by the benchmark) are not
# constrained (NULLs are distinct in a UNIQUE index, on SQLite and PostgreSQL alike). The archive
# tables get the same column at the same place (archival is INSERT ... SELECT *).
_V8 = (
    "ALTER TABLE udp_server_sessions ADD COLUMN court TEXT",
    "ALTER TABLE pss_matches ADD COLUMN court TEXT",
    "ALTER TABLE pss_events_v2 ADD COLUMN datagram_index INTEGER",
    "ALTER TABLE pss_events_v2_archive ADD COLUMN datagram_index INTEGER",
    *(f"""UPDATE {events} SET datagram_index = (
        SELECT CAST(d.detail_value AS INTEGER) FROM {details} d
        WHERE d.event_id = {events}.id AND d.detail_key = 'index')"""
      for events, details in (("pss_events_v2", "pss_event_details"),
                              ("pss_events_v2_archive", "pss_event_details_archive"))),
    ("CREATE UNIQUE INDEX idx_pss_events_v2_natural ON pss_events_v2 "
     "(session_id, event_sequence, datagram_index)"),
    # get_courts: the courts and their newest session, the newest match of a court.
    "CREATE INDEX idx_udp_server_sessions_court ON udp_server_sessions (court, started_at)",
    "CREATE INDEX idx_pss_matches_court ON pss_matches (court, id)",
)

# PostgreSQL's spelling of the statements above it does not take as they are (every other one
# only goes through ``backend.pg_ddl``: identity ids, BIGINT, DOUBLE PRECISION, no WITHOUT
# ROWID). Version 5's covering index holds raw_data and parsed_data: a PostgreSQL b-tree entry
# is limited to about 2.7 KB (a 64 KiB message would be refused), so there the index is the
# (match_id, id) one it replaces. Version 7: no multi-argument MAX, no boolean as an integer.
PG_SPELLINGS: dict[str, str] = {
    _V5[1]: "CREATE INDEX idx_pss_events_v2_match ON pss_events_v2 (match_id, id)",
    _V7[1]: ("INSERT INTO stat_state (key, value) SELECT 'folded_up_to', GREATEST("
             "COALESCE((SELECT MAX(id) FROM pss_events_v2), 0), "
             "COALESCE((SELECT MAX(id) FROM pss_events_v2_archive), 0))"),
    _V7[3]: ("INSERT INTO stat_state (key, value) SELECT 'pending_rebuild', CASE WHEN "
             "EXISTS (SELECT 1 FROM pss_events_v2) OR EXISTS (SELECT 1 FROM pss_events_v2_archive) "
             "THEN 1 ELSE 0 END"),
}

# Version 9 (8 is the courts' column): the tournament figures pre-aggregated by the writer.
# Each stat_matches row records the group it is counted in (tournament, day, court, hour of
# loading, finished, win classification: '' / 0 for none) and its duration in ms (finished
# matches); stat_tournament_groups sums the rows of each group and stat_court_rates the events
# per minute of each court, so get_tournament_statistics reads a few rows per court and hour
# instead of every match of the day. Filled here from the
# tracking tables for a file that already has statistics (its durations by SQLite's julianday;
# the writer's fold computes them from the ISO times, to the same millisecond).
_DURATION_MS = ("CAST(ROUND((julianday(m.ended_at) - julianday(m.loaded_at)) * 86400000.0) "
                "AS INTEGER)")
_V9 = (
    "ALTER TABLE stat_matches ADD COLUMN tournament_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE stat_matches ADD COLUMN tournament_day_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE stat_matches ADD COLUMN court TEXT NOT NULL DEFAULT 'unknown'",
    "ALTER TABLE stat_matches ADD COLUMN hour TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE stat_matches ADD COLUMN finished INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE stat_matches ADD COLUMN classification TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE stat_matches ADD COLUMN duration_ms INTEGER",
    ("UPDATE stat_matches SET (tournament_id, tournament_day_id, court, hour, finished, "
     "classification, duration_ms) = (SELECT COALESCE(m.tournament_id, 0), "
     "COALESCE(m.tournament_day_id, 0), "
     "COALESCE(m.court, m.source_ip || ':' || m.source_port, 'unknown'), "
     "COALESCE(substr(m.loaded_at, 1, 13), ''), "
     "CASE WHEN m.status = 'finished' THEN 1 ELSE 0 END, "
     "CASE WHEN m.status = 'finished' AND m.winner IS NOT NULL "
     "THEN COALESCE(m.win_classification, '') ELSE '' END, "
     f"CASE WHEN m.status = 'finished' AND m.ended_at IS NOT NULL THEN {_DURATION_MS} END "
     "FROM pss_matches m WHERE m.id = stat_matches.match_id) "
     "WHERE match_id IN (SELECT id FROM pss_matches)"),
    f"""CREATE TABLE stat_tournament_groups (
        tournament_id INTEGER NOT NULL,
        tournament_day_id INTEGER NOT NULL,
        court TEXT NOT NULL,
        hour TEXT NOT NULL,
        finished INTEGER NOT NULL,
        classification TEXT NOT NULL,
        matches INTEGER NOT NULL DEFAULT 0,
        durations INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        penalties INTEGER NOT NULL DEFAULT 0,
        {_STAT_COUNTS},
        PRIMARY KEY (tournament_id, tournament_day_id, court, hour, finished, classification)
    ) WITHOUT ROWID""",
    ("INSERT INTO stat_tournament_groups SELECT tournament_id, tournament_day_id, court, hour, "
     "finished, classification, COUNT(*), COUNT(duration_ms), COALESCE(SUM(duration_ms), 0), "
     "SUM(blue_gam_jeom + red_gam_jeom), SUM(punch), SUM(body), SUM(head), "
     "SUM(technical_body), SUM(technical_head) FROM stat_matches "
     "GROUP BY tournament_id, tournament_day_id, court, hour, finished, classification"),
    # Events per minute per court (and tournament, day): the last hour's rates are a row per
    # minute and court, however many matches were fought.
    """CREATE TABLE stat_court_rates (
        minute TEXT NOT NULL,
        tournament_id INTEGER NOT NULL,
        tournament_day_id INTEGER NOT NULL,
        court TEXT NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (minute, tournament_id, tournament_day_id, court)
    ) WITHOUT ROWID""",
    ("INSERT INTO stat_court_rates SELECT r.minute, COALESCE(s.tournament_id, 0), "
     "COALESCE(s.tournament_day_id, 0), COALESCE(s.court, 'unknown'), SUM(r.events) "
     "FROM stat_event_rates r LEFT JOIN stat_matches s ON s.match_id = r.match_id "
     "GROUP BY 1, 2, 3, 4"),
    # ... which replace the per-match rates (nothing else read them; one table less to write)
    "DROP TABLE stat_event_rates",
    # The p90 duration: the nearest rank read from an index, for all matches, a tournament or
    # a day (partial: only finished matches have a duration).
    ("CREATE INDEX idx_stat_matches_duration ON stat_matches (duration_ms) "
     "WHERE duration_ms IS NOT NULL"),
    ("CREATE INDEX idx_stat_matches_tournament_duration ON stat_matches "
     "(tournament_id, duration_ms) WHERE duration_ms IS NOT NULL"),
    ("CREATE INDEX idx_stat_matches_day_duration ON stat_matches "
     "(tournament_day_id, duration_ms) WHERE duration_ms IS NOT NULL"),
)

# Version 9's backfill on PostgreSQL: the same durations without SQLite's julianday.
PG_SPELLINGS[_V9[7]] = _V9[7].replace(_DURATION_MS, (
    "CAST(ROUND(EXTRACT(EPOCH FROM (CAST(m.ended_at AS timestamptz) - "
    "CAST(m.loaded_at AS timestamptz))) * 1000) AS BIGINT)"))

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "PSS events, details, archive, matches, sessions, tournaments", _V1),
    Migration(2, "pss_event_details with a CHECK that is cheap per inserted row", _V2),
    Migration(3, "pss_event_details_archive with a CHECK that is cheap per inserted row", _V3),
    Migration(4, "app_state: the UDP tournament context survives a restart", _V4),
    Migration(5, "the match index covers a match's event list", _V5),
    Migration(6, "recorded_videos and recorded_video_events: instant replay clips", _V6),
    Migration(7, "statistics: cached per-match, per-athlete and per-minute aggregates", _V7),
    Migration(8, "courts: the court of sessions and matches, the natural key of events", _V8),
    Migration(9, "statistics: tournament figures pre-aggregated per court and hour", _V9),
)
"""Every schema step, in order. Add a step; never edit one that has shipped."""


# The real wire codes (shared/protocol.md), their parser event type and a short description.
# ``unknown`` holds every message whose code is not listed (its text is kept in raw_data).
EVENT_TYPES: tuple[tuple[str, str, str, str], ...] = (
    ("pt1", "Points blue", "points",
     "Points scored by athlete 1 (blue); the value is the point type"),
    ("pt2", "Points red", "points",
     "Points scored by athlete 2 (red); the value is the point type"),
    ("hl1", "Hit level blue", "hit_level", "Sensor hit level of a hit on athlete 1 (1..100)"),
    ("hl2", "Hit level red", "hit_level", "Sensor hit level of a hit on athlete 2 (1..100)"),
    ("wg1", "Warnings", "warnings", "Gam-jeom counts of both athletes (wg1;a;wg2;b)"),
    ("wg2", "Warnings red", "warnings", "Gam-jeom count of athlete 2 sent alone"),
    ("ij0", "Injury time", "injury", "Injury time, athlete not identified"),
    ("ij1", "Injury time blue", "injury", "Injury time of athlete 1"),
    ("ij2", "Injury time red", "injury", "Injury time of athlete 2"),
    ("ch0", "Challenge referee", "challenge", "Video replay request by the referee"),
    ("ch1", "Challenge blue", "challenge", "Video replay request by athlete 1"),
    ("ch2", "Challenge red", "challenge", "Video replay request by athlete 2"),
    ("brk", "Break", "break", "Break between rounds, clock and optional action"),
    ("wrd", "Round winners", "winner_rounds", "Winner of each round (wrd;rd1;x;rd2;y;rd3;z)"),
    ("wmh", "Winner", "winner", "Winner name and optional classification"),
    ("win", "Winner side", "winner_side", "Winning side, BLUE or RED"),
    ("at1", "Athletes", "athletes", "Athletes of the loaded match (at1;...;at2;...)"),
    ("at2", "Athlete red", "athletes", "Athlete 2 sent alone"),
    ("mch", "Match configuration", "match_config", "Number, phase, category, colours, rounds"),
    ("s11", "Round scores", "scores", "Per-round scores (s11;a;s21;b;...)"),
    ("s21", "Round scores", "scores", "Per-round scores starting with s21"),
    ("s12", "Round scores", "scores", "Per-round scores starting with s12"),
    ("s22", "Round scores", "scores", "Per-round scores starting with s22"),
    ("s13", "Round scores", "scores", "Per-round scores starting with s13"),
    ("s23", "Round scores", "scores", "Per-round scores starting with s23"),
    ("sc1", "Current scores", "current_scores", "Scores of the round being fought (sc1;a;sc2;b)"),
    ("sc2", "Current score red", "current_scores", "Current score of athlete 2 sent alone"),
    ("avt", "AVT", "avt", "Value sent at match load"),
    ("clk", "Clock", "clock", "Match clock m:ss, optional action start/stop/corr/stopEnd"),
    ("rnd", "Round", "round", "Current round (4 is golden point)"),
    ("pre", "Fight loaded", "fight_loaded", "A match was loaded"),
    ("rdy", "Fight ready", "fight_ready", "The loaded match is ready"),
    ("sup", "Supremacy", "supremacy", "Supremacy / superiority decision value"),
    ("to1", "Time-out blue", "time_out", "PARA time-out of athlete 1"),
    ("to2", "Time-out red", "time_out", "PARA time-out of athlete 2"),
    ("ref", "Referees", "referees", "Referee and judges"),
    ("hwt", "Hardware test", "hardware_test", "Hardware test open/closed/test hits"),
    ("hel", "Hello", "hello", "The sender connected"),
    ("bye", "Bye", "bye", "The sender is closing"),
    ("inlb", "Scoreboard brightness", "scoreboard_setting", "LED scoreboard brightness"),
    ("insl", "Scoreboard on/off", "scoreboard_setting", "LED scoreboard on/off"),
    ("inth", "Scoreboard time", "scoreboard_setting", "LED scoreboard time in ms"),
    ("unknown", "Unknown", "unknown", "A message whose code is not known; kept as received"),
)
UNKNOWN_CODE = "unknown"
"""Code of the ``pss_event_types`` row of every message whose own code is not listed."""
