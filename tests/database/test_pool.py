"""The read connection pool on a real SQLite file: bounds, health checks, timeouts, cleanup."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from restrike.host.errors import Unavailable
from restrike.plugins.plugin_database.pool import ConnectionPool, PoolClosed, PoolTimeout
from tests.conftest import wait_for


class FakeClock:
    """A monotonic clock the test moves by hand (ages connections without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds




@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "pool.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row{i}",) for i in range(100)])
    conn.commit()
    conn.close()
    return str(path)


@pytest.fixture
def make_pool(db_path):
    pools: list[ConnectionPool] = []

    def make(**kwargs) -> ConnectionPool:
        pool = ConnectionPool(db_path, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_reader_connections_are_read_only_rows_and_foreign_keys(make_pool):
    pool = make_pool()
    with pool.connection() as conn:
        row = conn.execute("SELECT id, v FROM t WHERE id = 7").fetchone()
        assert row["v"] == "row6"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO t (v) VALUES ('x')")


def test_fifty_threads_never_hold_more_than_max_connections(make_pool):
    """Synchronised, not left to the scheduler: five threads hold a connection each at once
    (the pool reaches its bound), then 45 more ask and must all wait; then everyone reads 20
    times. The bound is checked on every checkout."""
    pool = make_pool(min_size=1, max_size=5, timeout=60.0)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "conns": set(), "rows": 0, "errors": []}
    holding = threading.Barrier(5 + 1)  # the first five, each holding one, and the test
    release = threading.Event()

    def reader(first: bool) -> None:
        try:
            for i in range(20):
                with pool.connection() as conn:
                    with lock:
                        state["now"] += 1
                        state["peak"] = max(state["peak"], state["now"])
                        state["conns"].add(id(conn))
                    if first and i == 0:
                        holding.wait(60)
                        assert release.wait(60)
                    count = conn.execute("SELECT count(*) FROM t").fetchone()[0]
                    stats = pool.get_stats()
                    assert stats["in_use"] <= 5 and stats["size"] <= 5
                    with lock:
                        state["now"] -= 1
                        state["rows"] += count
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            state["errors"].append(exc)

    first = [threading.Thread(target=reader, args=(True,)) for _ in range(5)]
    for thread in first:
        thread.start()
    holding.wait(60)
    stats = pool.get_stats()
    assert (stats["in_use"], stats["size"], state["now"]) == (5, 5, 5)
    rest = [threading.Thread(target=reader, args=(False,)) for _ in range(45)]
    for thread in rest:
        thread.start()
    wait_for(lambda: pool.get_stats()["requests_waiting"] == 45, 60,
             message="the 45 others waiting for a connection")
    stats = pool.get_stats()
    assert (stats["in_use"], stats["size"], state["now"]) == (5, 5, 5)
    release.set()
    for thread in first + rest:
        thread.join(120)
    assert state["errors"] == []
    assert state["rows"] == 50 * 20 * 100
    assert state["peak"] == 5
    stats = pool.get_stats()
    assert stats["created"] <= 5
    assert stats["requests"] == 1000
    assert stats["in_use"] == 0
    assert stats["wait_count"] >= 45


def test_connection_broken_while_idle_is_replaced_never_handed_out(make_pool):
    pool = make_pool(min_size=2, max_size=2)
    with pool.connection() as a, pool.connection() as b:
        pass
    a.close()  # both idle connections are now unusable
    b.close()
    with pool.connection() as c1, pool.connection() as c2:
        for conn in (c1, c2):
            assert conn is not a and conn is not b
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 100
    stats = pool.get_stats()
    assert stats["health_failures"] == 2
    assert stats["created"] == 4  # each broken one replaced in its own slot
    assert stats["size"] == 2


def test_custom_check_rejects_connection_and_pool_replaces_it(make_pool):
    rejected: set[int] = set()

    def check(conn: sqlite3.Connection) -> None:
        if id(conn) in rejected:
            raise RuntimeError("marked bad by the test")

    pool = make_pool(min_size=1, max_size=3, check=check)
    with pool.connection() as first:
        rejected.add(id(first))
    with pool.connection() as second:
        assert second is not first
        second.execute("SELECT 1")
    assert pool.get_stats()["health_failures"] == 1


def test_many_threads_after_breaking_every_idle_connection_all_get_working_ones(make_pool):
    pool = make_pool(min_size=0, max_size=4, timeout=5.0)
    held = [pool.getconn() for _ in range(4)]
    for conn in held:
        pool.putconn(conn)
    for conn in held:
        conn.close()
    failures: list[BaseException] = []
    handed: list[sqlite3.Connection] = []

    def reader() -> None:
        try:
            with pool.connection() as conn:
                handed.append(conn)
                conn.execute("SELECT count(*) FROM t").fetchone()
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert len(handed) == 12
    assert not any(conn is bad for conn in handed for bad in held)
    four = [pool.getconn() for _ in range(4)]  # reaches every slot: each broken one is met
    assert not any(conn is bad for conn in four for bad in held)
    for conn in four:
        pool.putconn(conn)
    assert pool.get_stats()["health_failures"] == 4


def test_exhaustion_times_out_with_a_clear_error(make_pool):
    pool = make_pool(min_size=0, max_size=2, timeout=0.2)
    a, b = pool.getconn(), pool.getconn()
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        pool.getconn()
    elapsed = time.monotonic() - started
    assert isinstance(info.value, Unavailable)
    assert info.value.type == "unavailable"
    assert str(info.value) == "database pool exhausted: all 2 connections in use for 0.2 s"
    assert elapsed >= 0.19  # (the timed wait may end a hair early; no upper bound)
    assert pool.get_stats()["timeouts"] == 1
    pool.putconn(a)
    with pool.connection() as conn:  # free again after one is returned
        conn.execute("SELECT 1")
    pool.putconn(b)


def test_waiter_gets_the_connection_released_by_another_thread(make_pool):
    pool = make_pool(min_size=1, max_size=1, timeout=5.0)
    held = pool.getconn()
    got: list[sqlite3.Connection] = []
    waiter = threading.Thread(target=lambda: got.append(pool.getconn()))
    waiter.start()
    assert wait_for(lambda: pool.get_stats()["requests_waiting"] == 1)
    pool.putconn(held)
    waiter.join(5)
    assert got == [held]
    stats = pool.get_stats()
    assert stats["wait_count"] == 1
    assert stats["wait_ms_p99"] > 0
    pool.putconn(got[0])


def test_waiters_are_served_first_come_first_served(make_pool):
    pool = make_pool(min_size=1, max_size=1, timeout=5.0)
    held = pool.getconn()
    order: list[str] = []

    def waiter(name: str) -> None:
        conn = pool.getconn()
        order.append(name)
        pool.putconn(conn)

    threads = []
    for count, name in enumerate("BCD", start=1):
        thread = threading.Thread(target=waiter, args=(name,))
        thread.start()
        threads.append(thread)
        assert wait_for(lambda n=count: pool.get_stats()["requests_waiting"] == n)
    pool.putconn(held)
    again = pool.getconn()  # returned and asked again at once: queues behind B, C and D
    order.append("A")
    pool.putconn(again)
    for thread in threads:
        thread.join(5)
    assert order == ["B", "C", "D", "A"]


def test_connection_older_than_max_lifetime_is_recycled(make_pool):
    clock = FakeClock()
    pool = make_pool(min_size=1, max_size=2, max_lifetime=3600.0, clock=clock)
    with pool.connection() as first:
        pass
    clock.advance(3601)
    with pool.connection() as second:
        assert second is not first
        second.execute("SELECT 1")
    stats = pool.get_stats()
    assert stats["recycled"] == 1
    assert stats["health_failures"] == 0
    with pytest.raises(sqlite3.ProgrammingError):
        first.execute("SELECT 1")  # the recycled one was really closed


def test_cleanup_thread_closes_idle_connections_beyond_min_size(make_pool):
    clock = FakeClock()
    pool = make_pool(min_size=1, max_size=5, max_idle=300.0, cleanup_interval=60.0, clock=clock)
    held = [pool.getconn() for _ in range(5)]
    for conn in held:
        pool.putconn(conn)
    assert pool.get_stats()["idle"] == 5
    clock.advance(120)
    pool.wake_cleanup()  # a round that finds nothing idle long enough
    assert wait_for(lambda: pool.get_stats()["last_cleanup"] is not None)
    assert pool.get_stats()["idle"] == 5
    clock.advance(200)
    pool.wake_cleanup()
    assert wait_for(lambda: pool.get_stats()["idle"] == 1)
    stats = pool.get_stats()
    assert stats["size"] == 1
    assert stats["last_cleanup"].endswith("Z")
    closed = [conn for conn in held if _is_closed(conn)]
    assert len(closed) == 4


def test_cleanup_thread_runs_on_its_own_every_interval(make_pool):
    clock = FakeClock()
    pool = make_pool(min_size=0, max_size=3, max_idle=300.0, cleanup_interval=0.05, clock=clock)
    with pool.connection(), pool.connection():
        pass
    assert pool.get_stats()["idle"] == 2
    clock.advance(301)
    assert wait_for(lambda: pool.get_stats()["idle"] == 0)
    assert pool.get_stats()["size"] == 0


def test_manual_cleanup_recycles_old_idle_and_refills_min_size(make_pool):
    clock = FakeClock()
    pool = make_pool(min_size=2, max_size=4, max_lifetime=3600.0, cleanup_interval=600, clock=clock)
    assert pool.get_stats()["idle"] == 2
    clock.advance(4000)
    pool.cleanup()
    stats = pool.get_stats()
    assert stats["recycled"] == 2
    assert stats["idle"] == 2 and stats["size"] == 2
    assert stats["created"] == 4
    assert stats["last_cleanup"] is not None


def test_stats_move_as_connections_are_used(make_pool):
    pool = make_pool(min_size=1, max_size=4)
    before = pool.get_stats()
    assert before["in_use"] == 0 and before["pool_utilization"] == 0.0
    assert before["max_connections"] == 4 and before["available_connections"] == 4
    assert before["last_cleanup"] is None
    a, b, c = pool.getconn(), pool.getconn(), pool.getconn()
    during = pool.get_stats()
    assert during["in_use"] == 3
    assert during["pool_utilization"] == 75.0
    assert during["available_connections"] == 1
    assert during["created"] == 3
    assert during["requests"] == before["requests"] + 3
    for conn in (a, b, c):
        pool.putconn(conn)
    after = pool.get_stats()
    assert after["in_use"] == 0 and after["idle"] == 3


def test_open_transaction_is_rolled_back_on_return(make_pool):
    pool = make_pool(min_size=1, max_size=1)
    with pool.connection() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM t").fetchall()
        assert conn.in_transaction
    with pool.connection() as again:
        assert again is conn and not again.in_transaction


def test_close_fails_waiters_and_later_checkouts(make_pool):
    pool = make_pool(min_size=1, max_size=1, timeout=5.0)
    held = pool.getconn()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            pool.getconn()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_for(lambda: pool.get_stats()["requests_waiting"] == 1)
    pool.close()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], PoolClosed)
    with pytest.raises(PoolClosed):
        pool.getconn()
    pool.putconn(held)
    assert _is_closed(held)


def test_bad_sizes_are_rejected(db_path):
    with pytest.raises(ValueError, match="max_size"):
        ConnectionPool(db_path, max_size=0)
    with pytest.raises(ValueError, match="min_size"):
        ConnectionPool(db_path, min_size=3, max_size=2)


def _is_closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False
