"""UDP settings that cannot make the app deaf, through the real commands: only addresses this
computer can listen on, ports 1..65535 as JSON numbers, saved only once they bound; and the
simulation's live sent count."""

from __future__ import annotations

import contextlib
import json
import re
import socket

import psutil
import pytest

from restrike.host.errors import InvalidArgument, StorageFull, Unavailable
from tests.conftest import free_port, wait_for
from tests.tmpfs import fill
from tests.udp.recorder import UDP_ONLY, Recorder, call, send

NOT_THIS_COMPUTER = "198.51.100.7"  # TEST-NET-2: documentation only, never a real host


def saved_file(app):
    return app.settings.data_dir / "udp-settings.json"


@contextlib.contextmanager
def saved_address_taken(data_dir):
    """A data dir whose saved address is ::1, and another program holding that address on a
    port (yielded) until the block ends. The default (0.0.0.0, IPv4) on the port stays free."""
    data_dir.mkdir()
    (data_dir / "udp-settings.json").write_text(json.dumps({"bind": "::1"}))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.bind(("::1", 0))
        yield taken.getsockname()[1]


@pytest.fixture
def stopped_app(make_app):
    """A running app with the UDP plugin, its server stopped (the state in which the old code
    accepted anything)."""
    app = make_app(builtins=UDP_ONLY).start()
    assert call(app, "stop_udp_server") == "Stopped"
    return app


def test_the_test_address_is_not_one_of_this_computers():
    own = {snic.address.split("%")[0] for snics in psutil.net_if_addrs().values()
           for snic in snics}
    assert NOT_THIS_COMPUTER not in own


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
@pytest.mark.parametrize("change, field, reason", [
    ({"bind": "255.255.255.255"}, "settings.bind", "is the broadcast address"),
    ({"bind": "224.0.0.1"}, "settings.bind", "is a multicast (group) address"),
    ({"bind": "ff02::1"}, "settings.bind", "is a multicast (group) address"),
    ({"bind": NOT_THIS_COMPUTER}, "settings.bind", "is not an address of this computer"),
    ({"port": 0}, "settings.port", "greater than or equal to 1"),
    ({"port": "16000"}, "settings.port", "valid integer"),
    ({"port": True}, "settings.port", "valid integer"),
    ({"port": 6000.0}, "settings.port", "valid integer"),
    ({"receiveBuffer": "4194304"}, "settings.receiveBuffer", "valid integer"),
    ({"autostart": 1}, "settings.autostart", "valid boolean"),
])
def test_an_address_the_app_cannot_hear_on_is_refused_and_not_saved(make_app, running, change,
                                                                    field, reason):
    app = make_app(builtins=UDP_ONLY).start()
    if not running:
        call(app, "stop_udp_server")
    before = call(app, "get_udp_settings")
    with pytest.raises(InvalidArgument, match=re.escape(reason)) as caught:
        call(app, "update_udp_settings", {"settings": change})
    assert caught.value.field == field
    assert call(app, "get_udp_settings") == before
    assert not saved_file(app).exists()


def test_while_stopped_a_port_in_use_is_refused_and_not_saved(stopped_app):
    app = stopped_app
    before = call(app, "get_udp_settings")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(Unavailable, match=r"settings not changed: .* already in use"):
            call(app, "update_udp_settings", [{"port": taken.getsockname()[1]}])
    assert call(app, "get_udp_settings") == before and not saved_file(app).exists()
    assert call(app, "get_udp_status") == "Stopped"


def test_while_stopped_a_setting_that_binds_is_saved_and_used_by_start(stopped_app):
    app = stopped_app
    port = free_port(socket.SOCK_DGRAM)
    settings = call(app, "update_udp_settings", [{"bind": "127.0.0.1", "port": port}])
    assert (settings["bind"], settings["port"]) == ("127.0.0.1", port)
    assert call(app, "get_udp_status") == "Stopped"  # checked by a trial bind, not started
    assert json.loads(saved_file(app).read_text()) == {"bind": "127.0.0.1", "port": port}
    assert call(app, "start_udp_server") == "Running"
    assert call(app, "get_udp_stats")["port"] == port


def test_the_wildcard_and_this_computers_addresses_are_accepted(stopped_app):
    for bind in ("0.0.0.0", "::", "127.0.0.1", "::1"):
        assert call(stopped_app, "update_udp_settings", [{"bind": bind}])["bind"] == bind


def test_the_simulation_banner_counts_what_is_sent_while_it_runs(make_app):
    """The sent count is live: while the run goes on, it is never behind what was received
    (it was 0 until a run finished)."""
    app = make_app(builtins=UDP_ONLY).start()
    # real time: one match takes minutes, so the run is still going when we look
    call(app, "simulate_match", {"speed": 1.0})
    try:
        wait_for(lambda: call(app, "get_udp_stats")["datagrams"] >= 3, 30)
        stats = call(app, "get_udp_stats")  # counters read before the simulation record
        assert stats["simulation"]["running"], "the run ended before it could be observed"
        assert stats["simulation"]["sent"] >= stats["datagrams"] >= 3
    finally:
        record = call(app, "stop_simulation")
    assert record["running"] is False and record["sent"] >= 3


def test_a_saved_bind_address_that_is_gone_is_reported_and_the_default_used(make_app, tmp_path,
                                                                             caplog):
    data_dir = tmp_path / "moved"
    data_dir.mkdir()
    (data_dir / "udp-settings.json").write_text(json.dumps(
        {"bind": NOT_THIS_COMPUTER, "receive_buffer": 2 * 1024 * 1024}))
    app = make_app(builtins=UDP_ONLY, data_dir=data_dir).start()
    stats = call(app, "get_udp_stats")
    assert stats["status"] == "Running"
    assert NOT_THIS_COMPUTER in stats["settings_problem"]
    assert "is not an address of this computer" in stats["settings_problem"]
    assert "not valid any more" in caplog.text and NOT_THIS_COMPUTER in caplog.text
    send((app.settings.config["udp"]["bind"], stats["port"]), b"hel;\r\n")
    wait_for(lambda: call(app, "get_udp_stats")["datagrams"] == 1)
    # saving settings that bind clears the report
    call(app, "update_udp_settings", [{"receiveBuffer": 4 * 1024 * 1024}])
    assert call(app, "get_udp_stats")["settings_problem"] is None


def test_at_start_up_a_saved_address_that_does_not_bind_is_reported_and_the_default_used(
        tmp_path):
    """The real CLI: the saved address (::1 on the port) is taken by another program, so the
    app says so on the UDP screen and in its log and listens on the default address (0.0.0.0,
    the same port) instead of on nothing."""
    import httpx

    from tests.cli import TOKEN, start_headless, stop

    data = tmp_path / "data"
    with saved_address_taken(data) as port:
        proc, base = start_headless(data, "--udp-port", str(port))
        try:
            def stats():
                return httpx.post(f"{base}/api/invoke/get_udp_stats", json=[],
                                  headers={"Authorization": f"Bearer {TOKEN}"}).json()

            first = stats()
            assert (first["status"], first["bind"], first["port"]) == ("Running", "0.0.0.0", port)
            problem = first["settings_problem"]
            assert f"[::1]:{port}" in problem and "already in use" in problem, problem
            assert f"listening on 0.0.0.0:{port} instead" in problem, problem
            send(("127.0.0.1", port), b"hel;\r\n")
            wait_for(lambda: stats()["datagrams"] == 1)
        finally:
            stop(proc)
    log = proc.stdout.read()
    assert "ERROR" in log and f"The saved UDP address [::1]:{port} cannot be used" in log, log
    assert "Traceback" not in log, log


def test_saving_settings_on_a_full_disk_is_storage_full_and_leaves_no_half_file(make_app,
                                                                                 small_fs):
    """A real full file system (a 1 MiB tmpfs, filled): the typed error, no file left half
    written, the saved settings as they were."""
    data = small_fs.path / "data"
    app = make_app(builtins=UDP_ONLY, data_dir=data).start()
    try:
        call(app, "update_udp_settings", [{"receiveBuffer": 2 * 1024 * 1024}])
        before = (data / "udp-settings.json").read_bytes()
        fill(small_fs.path)  # every block left
        with pytest.raises(StorageFull, match=r"^The disk is full: ") as caught:
            call(app, "update_udp_settings", [{"receiveBuffer": 4 * 1024 * 1024}])
        assert caught.value.type == "storage_full" and caught.value.status == 507
        assert (data / "udp-settings.json").read_bytes() == before
        assert sorted(p.name for p in data.iterdir()) == ["restrike.lock", "udp-settings.json"]
    finally:
        app.stop()  # before the file system is unmounted


@pytest.mark.parametrize("allowed, heard", [
    (["127.0.0.1"], True), (["127.0.0.0/8"], True), (["10.20.30.40"], False),
    (["::1"], False),
])
def test_the_allow_list_judges_ipv4_senders_on_a_dual_stack_bind(make_app, allowed, heard):
    """Bound to :: the kernel hands IPv4 senders over as ::ffff:a.b.c.d: the allow-list still
    compares them with the IPv4 addresses the operator typed."""
    recorder = Recorder()
    port = free_port(socket.SOCK_DGRAM)
    app = make_app(builtins=UDP_ONLY, extra_plugins=(recorder,), udp_bind="::", udp_port=port,
                   config={"udp": {"allowed_sources": allowed}}).start()
    assert call(app, "get_udp_status") == "Running"
    send(("127.0.0.1", port), b"pt1;3\r\n", b"pt2;1\r\n")
    wait_for(lambda: call(app, "get_udp_stats")["datagrams"] == 2)
    stats = call(app, "get_udp_stats")
    if heard:
        wait_for(lambda: len(recorder.events) == 2)
        assert stats["rejected"] == 0
        assert {ev.source_ip for ev in recorder.events} <= {"127.0.0.1", "::ffff:127.0.0.1"}
    else:
        assert stats["rejected"] == 2 and stats["events"] == 0 and recorder.events == []


@pytest.mark.e2e
def test_the_udp_screen_shows_the_saved_address_that_did_not_bind_and_counts_sent_live(
        tmp_path, page_of):
    """In chromium: the UDP screen says the saved address could not be used and where the app
    listens instead; the simulation banner's sent count grows while the run goes on."""
    from restrike.host.app import App
    from restrike.host.settings import Settings

    data = tmp_path / "data"
    with saved_address_taken(data) as port:
        # started as the CLI does with --udp-port only: the bind address is the saved one
        app = App(Settings(data_dir=data, config={"udp": {"port": port}}),
                  load_entrypoints=False)
        try:
            app.start()
            page = page_of(app)
            page.click("#tab-udp")
            problem = page.locator("#udp-settings-problem")
            problem.wait_for(state="visible", timeout=20_000)
            text = problem.inner_text()
            assert f"[::1]:{port} cannot be used" in text and "already in use" in text, text
            assert f"listening on 0.0.0.0:{port} instead" in text, text
            page.wait_for_function(
                "() => document.querySelector('#udp-status').textContent.startsWith("
                f"'Listening on 0.0.0.0:{port}')", timeout=20_000)

            app.commands.call("simulate_match", {"speed": 1.0})  # minutes long
            page.wait_for_function(
                """() => {
                  const b = document.querySelector('#udp-sim-banner');
                  const m = !b.hidden && /is sending.*\\(([\\d,.\\s]+) datagrams sent/.exec(
                    b.textContent);
                  return m && Number(m[1].replace(/\\D/g, '')) >= 2;
                }""", timeout=30_000)
            assert app.commands.call("get_udp_stats")["simulation"]["running"]
        finally:
            app.stop()
