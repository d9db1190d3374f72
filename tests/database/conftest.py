"""Fixtures of the database tests: a real service on a real SQLite file, a real host app with the
database plugin, and ingested events built by the real UDP parser."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from restrike.host.timeutil import clock_ns, now_iso
from restrike.plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService
from restrike.pss.ingested import ingest_datagram
from tests.database.archive_worker import create_database

DATABASE_ONLY = (("database", "restrike.plugins.plugin_database.plugin"),)


# The receiver numbers a session's datagrams once, whatever their sender: Feeds of one session
# share its counter (an event's natural key is session, datagram sequence, index in datagram).
# Per test (reset by ``_fresh_sequences``), so no test depends on which ran before it.
_SEQUENCES: dict[str, itertools.count] = {}


@pytest.fixture(autouse=True)
def _fresh_sequences():
    _SEQUENCES.clear()


class Feed:
    """Builds ``IngestedEvent`` batches like the UDP plugin does: one sequence per session."""

    def __init__(self, session_id: str = "session-1",
                 source: tuple[str, int] = ("10.0.0.5", 50000)):
        self.session_id = session_id
        self.source = source
        self._seq = _SEQUENCES.setdefault(session_id, itertools.count(1))

    def datagram(self, data: str | bytes, source: tuple[str, int] | None = None) -> list:
        """The events of one datagram."""
        ip, port = source or self.source
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return ingest_datagram(raw, session_id=self.session_id, seq=next(self._seq),
                               received_at=now_iso(), received_ns=clock_ns(),
                               source_ip=ip, source_port=port)

    def events(self, datagrams, source: tuple[str, int] | None = None) -> list:
        """The events of several datagrams, in order (one batch)."""
        return [ev for d in datagrams for ev in self.datagram(d, source)]


def match_datagrams(number: str = "101", blue=("K. ARSLAN", "Kerem ARSLAN", "TUR"),
                    red=("J. MORENO", "Jaime MORENO GARCÍA", "ESP")) -> list[str]:
    """A short but complete three-round match, as the real sender frames it (CR LF, no ';').

    Its final state is ``MATCH_EXPECTED``.
    """
    zero_rounds = "s11;0;s21;0;s12;0;s22;0;s13;0;s23;0"
    lines = [
        "hel;", "pre;FightLoaded",
        f"at1;{blue[0]};{blue[1]};{blue[2]};at2;{red[0]};{red[1]};{red[2]};",
        (f"mch;{number};Final;M- 68 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;7f3c21aa;Senior;3;120;"
         "cntDown;22;14"),
        "wg1;0;wg2;0", "wrd;rd1;0;rd2;0;rd3;0", zero_rounds, "sc1;0;sc2;0", "avt;0",
        "clk;2:00", "rnd;1", "rdy;FightReady", "clk;2:00;start", "clk;1:59",
        "hl1;45", "pt1;3", "s11;3;s21;0;s12;0;s22;0;s13;0;s23;0", "sc1;3;sc2;0", "clk;1:58",
        "wg1;0;wg2;1", "s11;4;s21;0;s12;0;s22;0;s13;0;s23;0", "sc1;4;sc2;0",
        "clk;1:57;stop", "wrd;rd1;1;rd2;0;rd3;0", "brk;0:59", "brk;0:00;stopEnd",
        "rnd;2", "clk;2:00;start", "clk;1:59", "pt2;2", "s11;4;s21;0;s12;0;s22;2;s13;0;s23;0",
        "sc1;0;sc2;2", "clk;1:58;stop", "wrd;rd1;1;rd2;2;rd3;0",
        "rnd;3", "clk;2:00;start", "pt1;4", "s11;4;s21;0;s12;0;s22;2;s13;4;s23;0",
        "sc1;4;sc2;0", "clk;1:30;stop", "wrd;rd1;1;rd2;2;rd3;1", "win;BLUE",
        f"wmh;{blue[0]};2-1 PTF", "bye;",
    ]
    return [line + "\r\n" for line in lines]


ODD = [  # odd but real datagrams: cut, glued, unknown, bad values, names that need quoting
    "pt1;3;",
    "pt2;5\r\n",
    "hl1;50hl2;40\r\n",
    "clk;2:00;start\r\nsc1;0;sc2;0\r\n",
    "rst;",
    "Udp Port 6000 connected;",
    "pt1;9;",
    "hl2;abc;",
    "",
    "at1;N. O'BRIEN;Niamh O'BRIEN;IRL;at2;Z. ŻÓŁTY;Zofia ŻÓŁTY;POL;",
    "wmh;Robert'); DROP TABLE pss_events_v2;--;2-0 PTF",
]


MATCH_EXPECTED = {
    "match_number": "101",
    "phase": "Final",
    "category": "M- 68 kg",
    "rounds": [(1, 4, 0, "blue"), (2, 0, 2, "red"), (3, 4, 0, "blue")],
    "blue_score": 4, "red_score": 0, "blue_warnings": 0, "red_warnings": 1,
    "current_round": 3, "winner": "blue", "winner_name": "K. ARSLAN",
    "win_classification": "2-1 PTF", "status": "finished",
    "scores": [(1, "blue", 3), (2, "red", 2), (3, "blue", 4)],
}


@pytest.fixture
def conn(tmp_path):
    """A new SQLite file at the current schema (``archive_worker.create_database``): its writing
    connection, closed at the end."""
    connection = create_database(tmp_path / "archive.db")
    yield connection
    connection.close()


@pytest.fixture
def feed() -> Feed:
    return Feed()


SQLITE_ONLY = pytest.mark.sqlite_only
"""``@SQLITE_ONLY(reason=...)``: a test about the SQLite file itself (runs on ``[sqlite]`` only)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The storage backend a database test runs on: every test runs on both (``[sqlite]``,
    ``[postgresql]``) unless marked ``sqlite_only``."""
    if request.param == "postgresql" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about the SQLite file itself")
    return request.param


@pytest.fixture
def open_db(tmp_path, backend, request):
    """Open services on files in tmp_path, or on fresh PostgreSQL databases (closed at the
    end); ``open_db(path=None, **config)``. The same ``path`` reopens the same database."""
    services: list[DatabaseService] = []
    databases: dict[Path, str] = {}

    def opener(path: Path | None = None, **config) -> DatabaseService:
        config.setdefault("pool_max_size", 4)
        target: Path | str = path or tmp_path / DB_FILE
        if backend == "postgresql":
            key = Path(target)
            if key not in databases:
                databases[key] = request.getfixturevalue("pg_server").database()
            target = databases[key]
        service = DatabaseService.open(target, DatabaseConfig(**config))
        services.append(service)
        return service

    yield opener
    for service in services:
        service.close()
    for url in databases.values():  # a copy of the template each: give the space back
        request.getfixturevalue("pg_server").drop(url)


@pytest.fixture
def db(open_db) -> DatabaseService:
    """A running database service on a new file."""
    return open_db()


@pytest.fixture
def db_app(make_app, backend, request):
    """A started host app with only the database plugin (real registry, hooks, push), on the
    test's backend."""
    section: dict = {"pool_max_size": 4}
    if backend == "postgresql":
        section["url"] = request.getfixturevalue("pg_server").database()
    app = make_app(builtins=DATABASE_ONLY, config={"database": section})
    app.start()
    return app


def call(app, command: str, /, *args, **kwargs):
    """Call a command through the host's registry, as the page does (validation included):
    positional arguments as a list, or named ones (snake_case or camelCase) as an object."""
    return app.commands.call(command, list(args) if args else kwargs)


def store(service: DatabaseService, events: list) -> None:
    """Submit a batch and wait until it is committed."""
    assert service.writer.submit(events)
    assert service.writer.flush(10.0)


def read(service: DatabaseService, sql: str, params=()) -> list[tuple]:
    """Rows of a query on a pool connection, as tuples."""
    with service.pool.connection() as conn:
        return [tuple(row) for row in conn.execute(sql, params)]
