"""Hooks through the façade, with real plugin objects registered in a real PluginManager."""

from __future__ import annotations

import pluggy
import pytest

from restrike.host.commands import DuplicateCommand
from restrike.host.hooks import StartupError

hookimpl = pluggy.HookimplMarker("restrike")


class Recorder:
    """A plugin that records what it receives."""

    def __init__(self, name, log):
        self.__name__ = name
        self.log = log
        self.batches = []

    @hookimpl
    def restrike_startup(self, app):
        self.log.append(("start", self.__name__))

    @hookimpl
    def restrike_shutdown(self, app):
        self.log.append(("stop", self.__name__))

    @hookimpl
    def restrike_pss_events(self, events):
        self.batches.append(list(events))

    @hookimpl
    def restrike_udp_session(self, session):
        self.log.append(("session", session["session_id"]))

    @hookimpl
    def restrike_ingest_stats(self, app):
        return {self.__name__: {"seen": len(self.batches)}}


class Raiser(Recorder):
    @hookimpl
    def restrike_pss_events(self, events):
        raise ValueError("plugin bug")


class FailingStart(Recorder):
    @hookimpl
    def restrike_startup(self, app):
        self.log.append(("start", self.__name__))
        raise RuntimeError("cannot open the thing")


def test_a_plugin_raising_on_events_does_not_stop_the_others(make_app):
    log = []
    bad, good = Raiser("bad", log), Recorder("good", log)
    app = make_app(builtins=(), extra_plugins=(bad, good)).start()
    app.hooks.pss_events(["e1", "e2"], app)
    app.hooks.pss_events(["e3"], app)
    assert good.batches == [["e1", "e2"], ["e3"]]
    by_name = {p["name"]: p for p in app.list_plugins()}
    assert by_name["bad"]["errors"] == 2
    assert "plugin bug" in by_name["bad"]["last_error"]
    assert by_name["good"]["errors"] == 0
    assert "restrike_pss_events" in by_name["good"]["hooks"]


def test_shutdown_runs_in_reverse_order_after_a_failed_startup(make_app):
    log = []
    plugins = (Recorder("first", log), FailingStart("second", log), Recorder("third", log))
    app = make_app(builtins=(), extra_plugins=plugins)
    with pytest.raises(StartupError, match="plugin second failed to start: cannot open"):
        app.start()
    assert log == [("start", "first"), ("start", "second"), ("stop", "second"), ("stop", "first")]


def test_normal_lifecycle_order(make_app):
    log = []
    app = make_app(builtins=(), extra_plugins=(Recorder("a", log), Recorder("b", log)))
    with app:
        app.hooks.udp_session({"session_id": "s1"}, app)
        assert app.hooks.ingest_stats(app) == {"a": {"seen": 0}, "b": {"seen": 0}}
    assert log == [("start", "a"), ("start", "b"), ("session", "s1"), ("session", "s1"),
                   ("stop", "b"), ("stop", "a")]


def test_duplicate_command_from_two_plugins_fails_startup(make_app):
    class Registers:
        def __init__(self, name):
            self.__name__ = name

        @hookimpl
        def restrike_register_commands(self, register):
            register("same_name", lambda: 1)

    app = make_app(builtins=(), extra_plugins=(Registers("one"), Registers("two")))
    with pytest.raises(DuplicateCommand, match="plugin one and plugin two"):
        app.start()


def test_cli_subcommands_hook_collects_plugin_commands(make_app):
    class Cli:
        __name__ = "cli"

        @hookimpl
        def restrike_cli_subcommands(self):
            return {"hello": lambda argv: len(argv)}

    app = make_app(builtins=(), extra_plugins=(Cli(),))
    assert app.hooks.cli_subcommands()["hello"](["a", "b"]) == 2
