"""Hostile datagrams through a real UDP socket into the real app (database and UDP plugins):
every one is stored raw and counted, none is expanded into large structures, and every cache
on the way stays within its bytes (issue 10, items 1 and 2)."""

from __future__ import annotations

import socket
import sqlite3

from restrike.plugins.plugin_database.service import DB_FILE
from restrike.pss.protocol import DEFAULT_LIMITS
from tests.conftest import wait_for

FIELDS = "zz00001;" + "ab;" * 20_000  # about 60 KB: 20,001 fields
LINES = "\r\n".join(["w"] * 21_835)  # 65,503 bytes: 21,835 one-word messages


def send_paced(app, datagrams: list[bytes], chunk: int = 20) -> None:
    """Send in chunks, each once the app has received the one before (no kernel drops)."""
    address = (app.settings.config["udp"]["bind"], app.settings.config["udp"]["port"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for start in range(0, len(datagrams), chunk):
            for data in datagrams[start:start + chunk]:
                sock.sendto(data, address)
            done = start + len(datagrams[start:start + chunk])
            wait_for(lambda n=done: app.commands.call("get_udp_stats")["datagrams"] >= n,
                     message=f"{done} datagrams received")


def stored_all(app) -> dict:
    """Wait until every received datagram is parsed and every event committed; the stats."""
    def settled():
        s = app.commands.call("get_udp_stats")
        return (s["dispatched_datagrams"] == s["datagrams"]
                and s["storage"]["stored"] == s["events"] and s["storage"]["pending"] == 0)

    wait_for(settled, timeout=60, message="everything received is stored")
    return app.commands.call("get_udp_stats")


def rows(app, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(app.settings.data_dir / DB_FILE) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_message_of_20000_fields_is_stored_raw_invalid_and_never_expanded(make_app):
    app = make_app().start()
    count = 200  # more than the live ring's bytes hold (8 MiB / 61 KB each)
    send_paced(app, [FIELDS.encode()] * count)
    stats = stored_all(app)

    assert stats["events"] == count and stats["events_invalid"] == count
    assert stats["over_limits"]["max_fields_per_message"] == count
    stored = rows(app, "SELECT raw_data, is_valid, error_message, length(parsed_data) "
                       "FROM pss_events_v2")
    assert len(stored) == count
    for raw, valid, error, parsed_size in stored:
        assert raw == FIELDS  # the message, whole
        assert valid == 0 and "max_fields_per_message (64)" in error
        assert parsed_size < 1000  # not a list of 20,000 values
    # no detail row carries the values either: the biggest is the error text
    [(biggest,)] = rows(app, "SELECT MAX(length(detail_value)) FROM pss_event_details")
    assert biggest < 1000

    shapes, parse = stats["storage"]["shape_cache"], stats["parse_cache"]
    assert shapes["too_long"] >= count and shapes["bytes"] <= shapes["max_bytes"]
    assert parse["too_long"] >= count and parse["bytes"] <= parse["max_bytes"]
    memory = app.commands.call("get_udp_memory_usage")
    assert memory["event_ring_bytes"] <= memory["event_ring_max_bytes"]
    assert memory["event_ring_dropped_for_bytes"] > 0
    assert stats["ui"]["ring_dropped_for_bytes"] == memory["event_ring_dropped_for_bytes"]

    # what the UDP screen shows: the event, its error, a bounded part of its raw text
    [shown] = app.commands.call("pss_get_events", {"limit": 1})
    assert shown["type"] == "invalid" and "max_fields_per_message" in shown["error"]
    assert shown["raw_truncated"] is True and len(shown["raw_data"]) <= 1024


def test_a_datagram_of_21835_lines_gives_at_most_cap_plus_one_events(make_app):
    app = make_app().start()
    send_paced(app, [LINES.encode()] * 3, chunk=1)
    stats = stored_all(app)

    cap = DEFAULT_LIMITS.max_messages_per_datagram
    assert stats["datagrams"] == 3 and stats["events"] == 3 * (cap + 1)
    assert stats["over_limits"]["max_messages_per_datagram"] == 3
    for seq in (1, 2, 3):
        stored = rows(app, "SELECT raw_data, is_valid, error_message FROM pss_events_v2 "
                           "WHERE event_sequence = ? ORDER BY id", seq)
        assert len(stored) == cap + 1
        assert "\r\n".join(raw for raw, _, _ in stored) == LINES  # nothing lost
        _raw, valid, error = stored[-1]
        assert valid == 0 and f"max_messages_per_datagram ({cap})" in error
    [(sessions_events,)] = rows(app, "SELECT events_stored FROM udp_server_sessions")
    assert sessions_events == 3 * (cap + 1)


def test_the_limits_come_from_the_udp_settings(make_app):
    app = make_app(config={"udp": {"max_messages_per_datagram": 2,
                                   "max_field_length": 64}}).start()
    send_paced(app, [b"clk;1:00\r\nclk;0:59\r\nclk;0:58\r\nclk;0:57", b"wmh;" + b"N" * 65])
    stats = stored_all(app)
    assert stats["limits"]["max_messages_per_datagram"] == 2
    assert stats["over_limits"] == {"max_messages_per_datagram": 1, "max_fields_per_message": 0,
                                    "max_field_length": 1}
    stored = rows(app, "SELECT raw_data, error_message FROM pss_events_v2 ORDER BY id")
    assert [raw for raw, _ in stored] == ["clk;1:00", "clk;0:59", "clk;0:58\r\nclk;0:57",
                                          "wmh;" + "N" * 65]
    assert "max_messages_per_datagram (2)" in stored[2][1]
    assert "max_field_length (64)" in stored[3][1]
