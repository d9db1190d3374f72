"""Network faults: a port that is taken, senders that vanish, ICMP errors on the listening
socket, and the whole app suspended (SIGSTOP) while a court keeps sending."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import pytest

from restrike.host.bridge import invoke
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.conftest import REPO
from tests.reliability.conftest import (
    CommandFailed,
    Sender,
    check_exact_prefix,
    expected_messages,
    open_db,
    send_all,
    stored_session,
    wait_for,
)

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # Linux; Python does not export it everywhere


def call(app, name, args=None):
    ok, value = invoke(app.commands, name, args)
    assert ok, f"{name}: {value}"
    return value


def test_a_port_in_use_is_an_error_state_with_a_reason_not_a_crash(headless_factory):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    taken = blocker.getsockname()[1]
    app = headless_factory("busy", udp_port=taken)
    try:
        app.start()  # the app (and its HTTP bridge) comes up although ingest cannot
        with pytest.raises(CommandFailed) as status:
            app.call("get_udp_status")
        assert status.value.status == 503 and status.value.error["type"] == "unavailable"
        assert "already in use" in status.value.error["message"]
        stats = app.stats()
        assert stats["status"] == "Error" and str(taken) in stats["error"]
        with pytest.raises(CommandFailed) as again:
            app.call("start_udp_server")
        assert again.value.error["type"] == "unavailable"
    finally:
        blocker.close()
    assert app.call("start_udp_server") == "Running"  # the port is free now
    send_all(taken, [b"pt1;2\r\n"])
    wait_for(lambda: app.stats()["storage"]["stored"] == 1, 10)

    # Moving a running server to a taken port changes nothing and says why.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        busy = other.getsockname()[1]
        with pytest.raises(CommandFailed) as moved:
            app.call("update_udp_settings", {"settings": {"port": busy}})
        assert moved.value.error["type"] == "unavailable"
        assert "already in use" in moved.value.error["message"]
    assert app.call("get_udp_status") == "Running"
    assert app.call("get_udp_settings")["port"] == taken
    send_all(taken, [b"pt2;1\r\n"])
    wait_for(lambda: app.stats()["storage"]["stored"] == 2, 10)


_KILLED_SENDER = """
import sys
from restrike.plugins.plugin_udp.simulator import send
print("ready", flush=True)
send(("127.0.0.1", int(sys.argv[1])), senders=1, rate=500, matches=2, seed=int(sys.argv[2]))
"""


def test_senders_that_vanish_mid_match_do_not_stop_the_listener(make_app):
    app = make_app()
    app.start()
    port = app.settings.config["udp"]["port"]
    session_id = call(app, "get_udp_stats")["session"]["session_id"]

    # Three sockets bound up front, so no two senders can share a source port.
    quitting = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quitting.bind(("127.0.0.1", 0))
    staying = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    staying.bind(("127.0.0.1", 0))
    quitter, stayer = quitting.getsockname()[1], staying.getsockname()[1]
    # A sender that stops half way through a match and closes its socket.
    half = sender_datagrams(21, 0, 1)
    half = half[: len(half) // 2]
    for d in half:
        quitting.sendto(d, ("127.0.0.1", port))
    # A sender process killed (SIGKILL) in the middle of its matches.
    killed = subprocess.Popen([sys.executable, "-c", _KILLED_SENDER, str(port), "22"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "ready"
    wait_for(lambda: len(call(app, "get_udp_stats")["clients"]) >= 2, 10)
    quitting.close()
    wait_for(lambda: call(app, "get_udp_stats")["datagrams"] >= len(half) + 100, 10)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    killed.stdout.close()
    # A sender that goes on to the end.
    full = sender_datagrams(23, 0, 1)
    with staying:
        for d in full:
            staying.sendto(d, ("127.0.0.1", port))

    def all_in(st):
        # get_udp_stats reads storage, then the counters, then the clients, and a client's
        # packets are counted before the session's datagrams: only when the datagrams read
        # earlier are every client's packets read later were all of them parsed and stored.
        packets = {c["port"]: c["packets"] for c in st["clients"]}
        return (packets.get(quitter) == len(half) and packets.get(stayer) == len(full)
                and st["datagrams"] == sum(packets.values())
                and st["dispatched_datagrams"] == st["datagrams"]
                and st["storage"]["stored"] == st["events"])

    wait_for(lambda: all_in(call(app, "get_udp_stats")), 15, message="every datagram stored")
    assert call(app, "get_udp_status") == "Running"
    clients = {c["port"]: c for c in call(app, "get_udp_stats")["clients"]}
    killed_port = next(p for p in clients if p not in (quitter, stayer))
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        rows = stored_session(conn, session_id)
    by_port = {p: [r for r in rows if r["port"] == str(p)] for p in clients}
    # seq counts the session's datagrams of every sender, so compare texts per sender.
    for port_, datagrams, whole in ((quitter, half, True), (stayer, full, True),
                                    (killed_port, sender_datagrams(22, 0, 2), False)):
        got = [r["raw"] for r in by_port[port_]]
        sent = [m for d in expected_messages(datagrams) for m in d]
        if whole:
            assert got == sent
        else:
            assert got == sent[: len(got)] and 0 < len(got) < len(sent)
        assert clients[port_]["events"] == len(got)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux's")
def test_an_icmp_error_on_the_listening_socket_is_counted_and_listening_goes_on(make_app):
    """Linux reports ICMP errors on an unconnected UDP socket only with IP_RECVERR; the app
    never sends from it, so the test turns that on and sends from the app's own socket to a
    closed port: the kernel then fails the receiver's next recvfrom with ECONNREFUSED."""
    app = make_app()
    app.start()
    service = app.extensions["udp"]
    sock = service.receiver._sockets[0]  # the real listening socket of the running session
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    sock.sendto(b"nobody listens here", ("127.0.0.1", closed_port))
    stats = wait_for(lambda: (st := call(app, "get_udp_stats"))["recv_errors"] and st, 10,
                     message="the ICMP error to reach the receiver")
    assert "ConnectionRefused" in stats["last_recv_error"]
    assert call(app, "get_udp_status") == "Running"
    datagrams = sender_datagrams(24, 0, 1)[:50]
    source = send_all(app.settings.config["udp"]["port"], datagrams)
    wait_for(lambda: call(app, "get_udp_stats")["storage"]["stored"]
             == sum(len(m) for m in expected_messages(datagrams)), 10)
    session_id = call(app, "get_udp_stats")["session"]["session_id"]
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert check_exact_prefix(stored_session(conn, session_id), expected_messages(datagrams),
                                  port=source) == len(datagrams)


@pytest.mark.slow
def test_suspended_app_loses_only_what_the_kernel_buffer_cannot_hold_and_counts_it(
        headless_factory):
    """SIGSTOP for 5 s while a court sends 1,000 datagrams/s into a 128 KiB receive buffer:
    the kernel keeps what fits and drops the rest, counting each drop for the socket
    (/proc/net/udp). Afterwards ``datagrams + kernel_drops == sent`` exactly, and every
    datagram that was received is stored, in order."""
    app = headless_factory("stopped", config={"udp": {"receive_buffer": 64 * 1024}})
    app.start()
    sender = Sender(app.udp_port, seed=31, matches=16, rate=1_000).start()
    wait_for(lambda: app.stats()["datagrams"] >= 300, 20)
    app.signal(signal.SIGSTOP)
    try:
        threading.Event().wait(5.0)  # the fault itself: the app is suspended for 5 s
    finally:
        app.signal(signal.SIGCONT)
    resumed_at = app.stats()["datagrams"]
    wait_for(lambda: app.stats()["datagrams"] >= resumed_at + 500, 20)
    result = sender.finish()
    sent = result["sent"]
    stats = wait_for(lambda: (st := app.stats())["datagrams"] + (st["kernel_drops"] or 0) == sent
                     and st["storage"]["stored"] == st["events"] and st, 20,
                     message="received + kernel drops to add up to what was sent")
    assert stats["kernel_drops"] > 0, "a 5 s stop at 1,000/s must overflow a 128 KiB buffer"
    assert stats["queue_dropped"] == 0 and stats["storage"]["dropped"] == 0

    # What was received is stored in order: the sender's datagrams minus the kernel's drops.
    per_datagram = expected_messages(sender.datagrams())
    with open_db(app.db_path) as conn:
        rows = stored_session(conn, stats["session"]["session_id"])
    stored_datagrams: list[list[str]] = []
    for row in rows:
        if row["idx"] == "0":
            stored_datagrams.append([])
        stored_datagrams[-1].append(row["raw"])
    assert len(stored_datagrams) == stats["datagrams"]
    position = 0
    for messages in stored_datagrams:  # a subsequence, in the order sent
        while position < sent and per_datagram[position] != messages:
            position += 1
        assert position < sent, "a stored datagram is out of order or was never sent"
        position += 1
