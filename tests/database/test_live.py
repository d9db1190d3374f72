"""Several instances on one PostgreSQL (issue 13, items 4 and 6): LISTEN/NOTIFY carries every
court's commits to every instance's Courts screen (a results desk that writes nothing too), and
the UDP tournament context set on one instance is stamped by all. A real server
(``tests/pg_server.py``), real host apps, the real push."""

from __future__ import annotations

import threading

import psycopg

from restrike.plugins.plugin_database import courts as courts_module
from restrike.plugins.plugin_database.listen import APPLICATION_NAME, NOTIFY, POLLING, Listener
from tests.conftest import free_port, wait_for
from tests.database.conftest import DATABASE_ONLY, Feed, call, match_datagrams, read, store


def _app(make_app, url: str, court: str):
    app = make_app(builtins=DATABASE_ONLY, config={"database": {
        "url": url, "court": court, "pool_max_size": 4}})
    app.start()
    wait_for(lambda: call(app, "get_courts")["live"] == NOTIFY, 10,
             message=f"{court} listening")
    return app


def _pushes(app) -> threading.Semaphore:
    """Released once per courts_changed push the app emits."""
    got = threading.Semaphore(0)

    def sink(batch):
        for item in batch:
            if item["event"] == courts_module.PUSH:
                got.release()

    app.push.add_sink("test", sink, max_pending=1000)
    return got


def test_a_courts_commit_reaches_a_desk_that_writes_nothing_through_notify(make_app,
                                                                          pg_server):
    url = pg_server.database()
    court = _app(make_app, url, "Court 1")
    desk = _app(make_app, url, "Results desk")
    received = call(desk, "get_courts")["listen"]["notifications"]
    pushed = _pushes(desk)
    while pushed.acquire(timeout=0):  # the start-up's own refresh
        pass
    store(court.extensions["database"], Feed("c1").events(match_datagrams("101")[:20]))
    assert pushed.acquire(timeout=10), "the desk got no courts_changed push"
    answer = call(desk, "get_courts")
    assert answer["live"] == "notify" and answer["listen"]["notifications"] > received
    (shown,) = answer["courts"]
    assert (shown["court"], shown["local"], shown["match"]["number"]) == ("Court 1", False,
                                                                          "101")
    assert shown["match"]["scores"] == {"blue": 3, "red": 0}
    # the desk wrote nothing: the push came from the court's NOTIFY, not from a commit here
    assert desk.extensions["database"].writer.stats()["batches"] == 0


def test_the_listener_reconnects_after_its_connection_is_killed(make_app, pg_server):
    url = pg_server.database()
    court = _app(make_app, url, "Court 2")
    desk = _app(make_app, url, "Desk")
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
            "%s AND datname = current_database()", (APPLICATION_NAME,)).fetchall()
    assert len(killed) == 2  # one listening connection per instance
    wait_for(lambda: call(desk, "get_courts")["listen"]["breaks"] == 1, 10,
             message="the break seen")
    wait_for(lambda: call(desk, "get_courts")["listen"]["connects"] == 2
             and call(desk, "get_courts")["live"] == NOTIFY, 20, message="listening again")
    assert call(desk, "get_courts")["listen"]["last_error"]
    pushed = _pushes(desk)
    store(court.extensions["database"], Feed("c2").events(match_datagrams("202")[:12]))
    wait_for(lambda: (call(desk, "get_courts")["courts"] or [{}])[0].get("match"), 10)
    assert pushed.acquire(timeout=10)


def test_an_unreachable_server_leaves_the_listener_polling_and_says_why():
    port = free_port()  # nothing listens there: connections are refused at once
    listener = Listener(f"postgresql://postgres@127.0.0.1:{port}/restrike", {"x": print},
                        retry_initial=0.05, retry_max=0.2).start()
    try:
        wait_for(lambda: listener.stats()["last_error"], 10, message="the refused connect")
        stats = listener.stats()
        assert stats["live"] == POLLING and stats["connects"] == 0
        assert "OperationalError" in stats["last_error"] and stats["listening_since"] is None
    finally:
        listener.stop()
    assert listener.live == POLLING


def test_the_tournament_context_set_on_one_instance_is_stamped_by_every_instance(make_app,
                                                                                  pg_server):
    url = pg_server.database()
    desk = _app(make_app, url, "Desk")
    court = _app(make_app, url, "Court 3")
    court_service = court.extensions["database"]
    tournament = call(desk, "tournament_create", name="German Open", duration_days=2)
    day = tournament["days"][0]["id"]
    call(desk, "tournament_start_day", day)
    call(desk, "set_udp_tournament_context", tournament["id"], day)
    wait_for(lambda: court_service.writer.context == (tournament["id"], day), 10,
             message="the court following the desk's context")
    assert call(court, "get_udp_tournament_context")["tournament"]["name"] == "German Open"
    store(court_service, Feed("c3").events(match_datagrams("303")[:5]))
    assert set(read(court_service, "SELECT tournament_id, tournament_day_id FROM "
                                   "pss_events_v2")) == {(tournament["id"], day)}
    call(desk, "clear_udp_tournament_context")
    wait_for(lambda: court_service.writer.context == (None, None), 10,
             message="the court following the cleared context")
    store(court_service, Feed("c3").events(["clk;1:00\r\n"]))
    assert read(court_service, "SELECT tournament_id FROM pss_events_v2 ORDER BY id DESC "
                               "LIMIT 1") == [(None,)]
