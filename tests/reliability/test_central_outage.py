"""The central PostgreSQL server goes down in the middle of a match, restrike is SIGKILLed and
restarted while it is down, the feed never stops; when the server is back, every datagram the
court sent is on it exactly once, in order (issue 13, store-and-forward, "done when").

Real parts only: the ``restrike --headless`` CLI as a subprocess with ``--database-url`` and
``--court``, the simulator's datagrams over real UDP, a real server of this module alone
(``own_pg_server``) stopped with ``pg_ctl stop -m immediate`` and started again. Counted from
the server itself.
"""

from __future__ import annotations

import re

import psycopg
import pytest

from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.reliability.conftest import Headless, expected_messages, send_all, wait_for
from tests.tournament import Instance

COURT = "court-3"


def durable(app: Headless, messages: int) -> bool:
    """Every message this process received is acknowledged: on the server or in the spool."""
    storage = app.stats()["storage"]
    return storage["pending"] == 0 and \
        storage["stored"] + storage["spool"]["spooled"] == messages


def on_server(url: str, session: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT COUNT(*) FROM pss_events_v2 WHERE session_id = %s",
                            (session,)).fetchone()[0]


def test_a_server_outage_and_a_sigkill_during_it_lose_and_repeat_nothing(stoppable_pg_server,
                                                                          tmp_path):
    url = stoppable_pg_server.database()  # empty: the first start migrates it
    datagrams = sender_datagrams(seed=13, sender_index=0, matches=2)
    quarter = len(datagrams) // 4
    chunks = [datagrams[i * quarter:(i + 1) * quarter] for i in range(3)] \
        + [datagrams[3 * quarter:]]
    counts = [sum(map(len, expected_messages(chunk))) for chunk in chunks]
    app = Instance(tmp_path / "court", url, COURT)
    try:
        app.start()
        first_session = app.stats()["session"]["session_id"]

        # 1. the server answers
        send_all(app.udp_port, chunks[0])
        wait_for(lambda: app.stats()["storage"]["stored"] == counts[0], 20,
                 message="the first quarter stored on the server")

        # 2. the server crashes mid-feed: half of the quarter before, half after
        half = len(chunks[1]) // 2
        send_all(app.udp_port, chunks[1][:half])
        stoppable_pg_server.stop("immediate")
        send_all(app.udp_port, chunks[1][half:])
        wait_for(lambda: durable(app, counts[0] + counts[1]), 30,
                 message="the second quarter on the server or in the spool")
        spool = app.stats()["storage"]["spool"]
        assert spool["unreachable"] and spool["depth"]["events"] > 0

        # 3. SIGKILL during the outage, and a restart while the server is still down
        app.kill()
        app.start()
        second_session = app.stats()["session"]["session_id"]
        assert second_session != first_session
        assert app.stats()["storage"]["spool"]["depth"]["events"] > 0  # the killed run's
        send_all(app.udp_port, chunks[2])
        wait_for(lambda: durable(app, counts[2]), 30,
                 message="the third quarter in the spool")
        unavailable = app.invoke("get_courts")  # reads say so plainly
        assert unavailable.status_code == 503
        assert unavailable.json()["error"]["type"] == "unavailable"
        assert unavailable.json()["error"]["message"] == "central database unavailable"

        # 4. the server is back; the feed goes on
        stoppable_pg_server.start()
        send_all(app.udp_port, chunks[3])
        wait_for(lambda: on_server(url, second_session) >= counts[2] + counts[3]
                 and (s := app.stats()["storage"])["spool"]["depth"]["events"] == 0
                 and not s["spool"]["unreachable"] and s["pending"] == 0, 60,
                 message="the spool forwarded and the last quarter stored")
        stats = app.stats()
        assert stats["datagrams"] == len(chunks[2]) + len(chunks[3])
        assert stats["storage"]["lost"] == stats["storage"]["dropped"] == 0
    finally:
        app.kill()

    with psycopg.connect(url) as conn:
        for session, sent in ((first_session, chunks[0] + chunks[1]),
                              (second_session, chunks[2] + chunks[3])):
            rows = conn.execute(
                "SELECT event_sequence, datagram_index, raw_data FROM pss_events_v2 "
                "WHERE session_id = %s ORDER BY id", (session,)).fetchall()
            # datagrams sent vs stored, counted by the server
            assert len({seq for seq, _, _ in rows}) == len(sent), session
            # in order and exactly once: ids follow the datagrams and their messages
            assert [(seq, index) for seq, index, _ in rows] == [
                (seq, index) for seq, messages in enumerate(expected_messages(sent), 1)
                for index in range(len(messages))]
            assert [raw for _, _, raw in rows] == [
                m for messages in expected_messages(sent) for m in messages]
        sessions = dict(conn.execute(
            "SELECT session_id, status FROM udp_server_sessions WHERE court = %s", (COURT,)))
        # the killed run's session was closed, its spooled "running" record did not revive it
        assert sessions[first_session] == "interrupted"
        assert sessions[second_session] == "running"


@pytest.mark.e2e
def test_the_page_says_the_central_database_is_unreachable_and_how_much_waits(
        stoppable_pg_server, make_app, page_of):
    """In chromium, on the screen the page opens with: the banner appears during a real outage
    with the number of events waiting, and goes away once they are forwarded."""
    app = make_app(config={"database": {"url": stoppable_pg_server.database(), "court": COURT}})
    app.start()
    page = page_of(app)
    banner = page.locator("#central-banner")
    assert banner.is_hidden()
    port = app.settings.config["udp"]["port"]
    datagrams = sender_datagrams(seed=21, sender_index=0, matches=1)
    half = len(datagrams) // 2
    send_all(port, datagrams[:half])
    stoppable_pg_server.stop("immediate")
    send_all(port, datagrams[half:])
    waiting = sum(map(len, expected_messages(datagrams[half:])))
    storage = app.extensions["database"].writer
    wait_for(lambda: app.commands.call("get_udp_stats", [])["dispatched_datagrams"]
             == len(datagrams)
             and storage.stats()["pending"] == 0
             and storage.stats()["spool"]["depth"]["events"] >= waiting, 30,
             message="the second half in the spool")
    depth = storage.stats()["spool"]["depth"]["events"]

    def shown() -> str | None:
        text = banner.inner_text() if banner.is_visible() else ""
        found = re.search(r"central database unreachable — ([\d,.\s]+) events waiting", text,
                          re.I)
        return text if found and int(re.sub(r"\D", "", found[1])) == depth else None

    wait_for(shown, 20, 0.1, f"the banner saying {depth} events wait")

    stoppable_pg_server.start()
    banner.wait_for(state="hidden", timeout=60_000)
    assert storage.stats()["spool"]["depth"]["events"] == 0
    assert not storage.stats()["spool"]["unreachable"]
