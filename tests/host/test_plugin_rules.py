"""pluggy's rules hold for third-party plugins installed through the ``restrike`` entry points
(``tests/plugins/restrike-test-probes``, installed by ``make venv``): call order by
``tryfirst``/``trylast``, ``wrapper=True`` around the others, a raising implementation isolated
and counted, and a plugin with a misspelled hook refused with its reason."""

from __future__ import annotations

import importlib.metadata
import logging

import pytest

from restrike.host.plugins import LOAD_ENV

DIST = "restrike-test-probes"


@pytest.fixture
def probes(make_app, monkeypatch):
    """A started app with the probe plugins (and no built-in ones)."""
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed: `make venv` installs tests/plugins/{DIST}")
    monkeypatch.setenv(LOAD_ENV, DIST)
    return make_app(builtins=(), load_entrypoints=True).start()


def test_tryfirst_trylast_and_wrapper_run_in_pluggys_order(probes):
    app = probes
    app.hooks.pss_events(["e1"], app)
    # a_plain raised: isolated (None), so the wrapper sees the others' results and ingest goes on
    assert app.extensions["probe_order"] == [
        "wrapper before", "tryfirst", "plain", "trylast", "wrapper after ['first', 'last']"]


def test_a_raising_implementation_is_counted_with_its_plugin(probes, caplog):
    app = probes
    with caplog.at_level(logging.ERROR, logger="host.plugins"):
        app.hooks.pss_events(["e1"], app)
        app.hooks.pss_events(["e2"], app)
    info = {p["name"]: p for p in app.list_plugins()}["probe_order"]
    assert info["loaded"] is True and info["errors"] == 2
    assert info["last_error"] == "restrike_pss_events: RuntimeError: probe failure"
    assert "plugin probe_order failed in restrike_pss_events" in caplog.text
    assert app.extensions["probe_order"].count("trylast") == 2


def test_a_misspelled_hook_is_listed_with_its_error_and_not_loaded(make_app, monkeypatch,
                                                                    caplog):
    monkeypatch.setenv(LOAD_ENV, DIST)
    with caplog.at_level(logging.ERROR, logger="host.plugins"):
        app = make_app(builtins=(), load_entrypoints=True).start()  # the app starts
    info = {p["name"]: p for p in app.list_plugins()}["probe_misspelled"]
    assert info["loaded"] is False and info["hooks"] == []
    assert info["distribution"] == DIST
    assert "unknown hook restrike_pss_event " in info["last_error"]
    assert "plugin probe_misspelled is not loaded: unknown hook restrike_pss_event" in caplog.text
    assert "probe_misspelled" not in app.extensions  # its start-up never ran
    assert app.pm.get_plugin("probe_misspelled") is None


def test_hook_calls_can_be_traced(probes):
    app = probes
    traced = []
    undo = app.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: traced.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: None)
    try:
        app.hooks.pss_events(["e1"], app)
    finally:
        undo()
    assert traced == [("restrike_pss_events", ["probe_order"] * 4)]
