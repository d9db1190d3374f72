"""The real ``restrike`` command line as a subprocess: one plain line and exit status 2 for every
refused option, file, data dir or port; every default in ``--help``; one instance per data dir;
plugins' own options (``restrike_addoption``); ``restrike simulate`` says what it does."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sqlite3

import pytest

from tests.cli import assert_one_line, run_cli, start_headless, stop
from tests.conftest import free_port, wait_for


def headless_args(data_dir, *args: str) -> list[str]:
    return ["--headless", "--data-dir", str(data_dir), "--udp-bind", "127.0.0.1",
            "--udp-port", str(free_port(socket.SOCK_DGRAM)), "--http-port", str(free_port()),
            "--log-level", "WARNING", *args]


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return str(path)


BAD_OPTIONS = {
    "udp port": (["--udp-port", "99999"], ["--udp-port: 99999 is not a port number"]),
    "http port": (["--http-port", "99999"], ["--http-port: 99999 is not a port number"]),
    "port text": (["--http-port", "web"], ["--http-port: 'web' is not a port number"]),
    "udp bind": (["--udp-bind", "court-3"], ["--udp-bind: 'court-3' is not an IPv4"]),
    "allowed host": (["--allowed-host", "a host:80"], ["--allowed-host: 'a host:80'"]),
    "unknown option": (["--udp-prot", "6000"], ["unrecognized arguments: --udp-prot"]),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_a_bad_option_value_is_one_line_naming_the_option(tmp_path, case):
    args, expected = BAD_OPTIONS[case]
    done = run_cli(*headless_args(tmp_path / "data", *args))
    assert_one_line(done, *expected)
    assert not (tmp_path / "data").exists()  # refused before anything was touched


CONFIGS = {
    "missing": (None, ["no such file"]),
    "malformed": ('{"udp": {"port": 6000,}}', ["is not valid JSON (line 1, column 23"]),
    "not an object": ('["udp"]', ["must be a JSON object of sections"]),
    "section not an object": ('{"udp": 6000}', ["section 'udp' must be an object"]),
    "bad host section": ('{"host": {"allowed_hosts": ["x/y"]}}', ["allowed_hosts", "'x/y'"]),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_bad_config_file_is_one_line_naming_the_option(tmp_path, case):
    content, expected = CONFIGS[case]
    path = tmp_path / "restrike.json"
    if content is not None:
        write(path, content)
    done = run_cli(*headless_args(tmp_path / "data", "--config", str(path)))
    assert_one_line(done, f"--config {path}: ", *expected)
    assert not (tmp_path / "data").exists()


def test_a_config_section_a_plugin_refuses_is_one_line_naming_the_key(tmp_path):
    path = write(tmp_path / "c.json", json.dumps({"udp": {"receive_buffer": "lots"}}))
    done = run_cli(*headless_args(tmp_path / "data", "--config", path))
    assert_one_line(done, "config section 'udp' is invalid: receive_buffer")


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    not_a_dir = tmp_path / "passwd"
    write(not_a_dir, "root:x:0:0\n")
    done = run_cli(*headless_args(not_a_dir))
    assert_one_line(done, f"--data-dir {not_a_dir}: not a directory")
    assert not_a_dir.read_text() == "root:x:0:0\n"


def test_an_http_port_in_use_is_one_line_naming_the_option(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(*headless_args(tmp_path / "data", "--http-port", str(port)))
    assert_one_line(done, f"--http-port {port}: 127.0.0.1:{port} is already in use")
    assert not (tmp_path / "data" / "restrike_vta.db").exists()  # no plugin started


def help_text(*args: str) -> str:
    """The option descriptions of ``--help`` (after the usage block), on one line."""
    done = run_cli(*args, "--help")
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split("options:", 1)[1].split())


def test_help_shows_every_default():
    text = help_text()
    for option, default in (("--http-port PORT", "default 8765"),
                            ("--http-bind ADDR", "default 127.0.0.1"),
                            ("--udp-port PORT", "default 6000"),  # the UDP plugin's own option
                            ("--udp-bind ADDR", "default 0.0.0.0"),
                            ("--log-level", "default INFO"),
                            ("--allowed-host NAME", "default: none")):
        assert option in text and default in text.split(option, 1)[1].split(" --")[0], option
    text = help_text("simulate")
    for option, default in (("--target HOST:PORT", "default 127.0.0.1:6000"),
                            ("--senders N", "default 1"), ("--matches N", "default 1"),
                            ("--seed SEED", "default 0"), ("--rate PER_S", "default: paced"),
                            ("--speed SPEED", "default 1.0")):
        assert option in text and default in text.split(option, 1)[1].split(" --")[0], option


def test_simulate_says_where_it_sends_and_warns_when_the_target_refuses():
    port = free_port(socket.SOCK_DGRAM)  # nothing listens: the kernel answers port unreachable
    done = run_cli("simulate", "--target", f"127.0.0.1:{port}", "--rate", "2000")
    first = done.stdout.splitlines()[0]
    assert first.startswith("sending 1 match(es)") and f"to 127.0.0.1:{port}" in first
    assert f"{port} refuses the datagrams (ICMP port unreachable)" in done.stderr
    assert "Traceback" not in done.stderr and done.returncode == 1


def test_simulate_refuses_a_bad_option_in_one_line():
    done = run_cli("simulate", "--matches", "0")
    assert_one_line(done, "--matches: 0 must be 1 or more")
    assert done.stdout == ""


def _sessions(db) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT session_id, status FROM udp_server_sessions").fetchall()


def test_a_second_instance_on_the_same_data_dir_changes_nothing_and_says_who_holds_it(tmp_path):
    data = tmp_path / "data"
    first, _base = start_headless(data, "--udp-bind", "127.0.0.1", "--udp-port",
                                  str(free_port(socket.SOCK_DGRAM)))
    try:
        db = data / "restrike_vta.db"
        running = wait_for(lambda: [s for s in _sessions(db) if s[1] == "running"],
                           message="the first instance's session")
        files = {p.name: p.read_bytes() for p in data.iterdir() if not p.name.startswith(
            "restrike_vta.db")}  # the database files change with the first one's own work
        assert files["restrike.lock"] == f"{first.pid}\n".encode()

        done = run_cli(*headless_args(data))
        assert_one_line(done, f"{data} is in use by another restrike (process {first.pid})")
        assert {p.name: p.read_bytes() for p in data.iterdir()
                if not p.name.startswith("restrike_vta.db")} == files
        assert _sessions(db) == running  # not marked interrupted
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel let the lock go with the process: the next start runs (and owns the file).
    again, _base = start_headless(data)
    try:
        assert (data / "restrike.lock").read_text() == f"{again.pid}\n"
    finally:
        stop(again)


def test_plugins_add_their_own_options_which_reach_their_config_section(make_app, tmp_path):
    from restrike.host.cli import build_parser, settings_from_args
    from restrike.host.hookspecs import hookimpl
    from restrike.host.options import port_number

    class RelayPlugin:
        """A plugin with one option of its own."""

        @hookimpl
        def restrike_addoption(self, parser):
            parser.add_argument_group("relay").add_argument(
                "--relay-port", dest="relay.port", type=port_number, default=argparse.SUPPRESS)

    app = make_app(extra_plugins=(RelayPlugin(),))
    parser = build_parser()
    app.hooks.addoption(parser)
    path = write(tmp_path / "c.json", json.dumps({"relay": {"port": 7000, "colour": "blue"}}))

    def config(*argv: str) -> dict:
        args = parser.parse_args(["--config", path, *argv])
        return settings_from_args(args, headless=True).config

    # Given: wins over the config file's value, the file's other keys stay.
    assert config("--relay-port", "7001")["relay"] == {"port": 7001, "colour": "blue"}
    assert config("--udp-port", "6002")["udp"] == {"port": 6002}  # the UDP plugin's, the same way
    # Absent: the sections are as the file has them.
    assert config() == {"relay": {"port": 7000, "colour": "blue"}}
    with pytest.raises(SystemExit) as refused:
        parser.parse_args(["--relay-port", "70000"])
    assert refused.value.code == 2


def test_allowed_hosts_from_the_command_line_win_over_the_config_file(tmp_path):
    from restrike.host.cli import build_parser, settings_from_args

    path = write(tmp_path / "c.json", json.dumps({"host": {"allowed_hosts": ["Scores.Local"]}}))
    parser = build_parser()
    from_file = settings_from_args(parser.parse_args(["--config", path]), headless=True)
    assert from_file.allowed_hosts == ["scores.local"]
    given = settings_from_args(parser.parse_args(
        ["--config", path, "--allowed-host", "tv.local", "--allowed-host", "10.0.0.5"]),
        headless=True)
    assert given.allowed_hosts == ["tv.local", "10.0.0.5"]
    assert settings_from_args(parser.parse_args([]), headless=True).allowed_hosts == []
