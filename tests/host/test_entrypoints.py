"""The example third-party plugin, discovered from its ``restrike`` entry point."""

from __future__ import annotations

import importlib.metadata

import pytest

from restrike.host.plugins import LOAD_ENV

DIST = "restrike-event-counter"


@pytest.fixture(autouse=True)
def installed():
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed: `make venv` installs examples/{DIST}")


def test_example_plugin_is_discovered_and_its_command_callable(make_app, monkeypatch):
    from restrike.pss.ingested import ingest_datagram

    monkeypatch.setenv(LOAD_ENV, DIST)
    app = make_app(builtins=(), load_entrypoints=True).start()
    info = {p["name"]: p for p in app.list_plugins()}["event_counter"]
    assert info["builtin"] is False and info["distribution"] == DIST
    assert info["version"] == "0.1.0"
    assert "restrike_pss_events" in info["hooks"]

    events = ingest_datagram(b"pt1;3\r\n", session_id="s", seq=1, received_at="t",
                             received_ns=0, source_ip="127.0.0.1", source_port=1)
    app.hooks.pss_events(events, app)
    assert app.commands.call("event_counter_stats") == {
        "total": 1, "batches": 1, "by_type": {"points": 1}}


@pytest.mark.parametrize("value", ["", "some-other-dist"])
def test_restrike_load_plugins_restricts_entry_points(make_app, monkeypatch, value):
    monkeypatch.setenv(LOAD_ENV, value)
    app = make_app(builtins=(), load_entrypoints=True).start()
    assert "event_counter" not in {p["name"] for p in app.list_plugins()}
    assert "event_counter_stats" not in app.commands.names()
