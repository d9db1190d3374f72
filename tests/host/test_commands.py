"""The command registry and the window bridge, with real functions and real threads."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from restrike.host.bridge import invoke, make_js_api
from restrike.host.commands import CommandRegistry, DuplicateCommand
from restrike.host.errors import NotFound


class Window(BaseModel):
    start: int
    end: int = 10


def archive_old_events(days_old: Annotated[int, Field(ge=0)]) -> int:
    """Pretend to archive: returns the number of days."""
    return days_old


def pair(first_value: str, second_value: int = 2) -> dict:
    return {"first": first_value, "second": second_value}


def windowed(window: Window) -> int:
    return window.end - window.start


def settle(when: dt.date, speed: float = 1.0, overwrite: bool = False) -> list:
    return [when.isoformat(), speed, overwrite]


def lookup(key: str) -> str:
    raise NotFound(f"no item {key!r}", field="key")


def crash() -> None:
    raise RuntimeError("disk on fire at /secret/path/db.sqlite")


@pytest.fixture
def registry():
    reg = CommandRegistry()
    for fn in (archive_old_events, pair, windowed, settle, lookup, crash):
        reg.register(fn.__name__, fn, plugin="tests")
    return reg


def test_js_api_exposes_exactly_the_registered_names(registry):
    api = make_js_api(registry)
    public = sorted(n for n in dir(api) if not n.startswith("_"))
    assert public == sorted(["archive_old_events", "pair", "windowed", "settle", "lookup",
                             "crash"])


def test_positional_snake_and_camel_calls(registry):
    api = make_js_api(registry)
    assert api.archive_old_events(30) == [True, 30]
    assert api.archive_old_events({"days_old": 31}) == [True, 31]
    assert api.archive_old_events({"daysOld": 32}) == [True, 32]
    assert api.pair("a") == [True, {"first": "a", "second": 2}]
    assert api.pair({"firstValue": "b", "secondValue": 5}) == [True, {"first": "b", "second": 5}]
    # A single object that is not made of argument names is a positional model argument.
    assert api.windowed({"start": 3, "end": 7}) == [True, 4]
    assert api.windowed({}) == [False, {"type": "validation_error", "field": "window.start",
                                        "message": "window.start: is required"}]
    assert registry.call("windowed", {"window": {"start": 1}}) == 9
    # What HTTP receives as its body is bound by the same rule.
    assert registry.call("archive_old_events", [{"daysOld": 34}]) == 34
    assert registry.call("windowed", [{"start": 1, "end": 3}]) == 2


@pytest.mark.parametrize(
    "args, field, words",
    [
        ([-1], "daysOld", "greater than or equal to 0"),
        (["thirty"], "daysOld", "valid integer"),
        ({"daysOld": None}, "daysOld", "valid integer"),
        ([], "daysOld", "required"),
        ({"weeks": 3}, "weeks", "not an argument"),
    ],
)
def test_bad_arguments_reject_with_validation_error_naming_the_field(registry, args, field, words):
    ok, error = invoke(registry, "archive_old_events", args)
    assert not ok
    assert error["type"] == "validation_error"
    assert error["field"] == field
    assert words in error["message"]


@pytest.mark.parametrize(
    "name, args, field",
    [
        ("archive_old_events", [True], "daysOld"),
        ("archive_old_events", ["16000"], "daysOld"),
        ("archive_old_events", [1.0], "daysOld"),
        ("archive_old_events", {"days_old": False}, "days_old"),  # the caller's own spelling
        ("archive_old_events", [{"daysOld": "30"}], "daysOld"),
        ("pair", [7], "firstValue"),
        ("windowed", [{"start": True}], "window.start"),
        ("settle", ["2026-11-28", 1, "true"], "overwrite"),
        ("settle", {"when": "2026-11-28", "overwrite": 1}, "overwrite"),
        ("settle", ["2026-11-28", "2"], "speed"),
        ("settle", [20261128], "when"),
    ],
)
def test_json_types_are_strict_and_the_error_names_the_field(registry, name, args, field):
    ok, error = invoke(registry, name, args)
    assert not ok and error["type"] == "validation_error", error
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: input should be a valid ")


def test_documented_text_forms_and_json_numbers_still_bind(registry):
    # A date as an ISO string, an integer where a float is meant.
    assert registry.call("settle", ["2026-11-28", 2, True]) == ["2026-11-28", 2.0, True]
    assert registry.call("settle", {"when": "2026-11-28"}) == ["2026-11-28", 1.0, False]


def test_one_object_of_names_is_named_and_a_misspelled_one_says_so(registry):
    api = make_js_api(registry)
    ok, error = api.archive_old_events({"weeks": 3})
    assert not ok and error["field"] == "weeks" and "not an argument" in error["message"]
    assert "daysOld" in error["message"]  # it says what the command takes
    ok, error = api.archive_old_events({"daysOld": 1, "days_old": 2})
    assert not ok and error["field"] == "days_old" and "given twice" in error["message"]
    ok, error = api.pair("a", 2, 3)
    assert not ok and error["type"] == "validation_error" and "takes 2" in error["message"]


def test_nested_model_errors_name_the_nested_field(registry):
    ok, error = invoke(registry, "windowed", [{"start": "x"}])
    assert not ok and error["field"] == "window.start"


def test_errors_reach_the_page_as_envelopes_without_tracebacks(registry):
    api = make_js_api(registry)
    assert api.lookup("k") == [False, {"type": "not_found", "message": "no item 'k'",
                                       "field": "key"}]
    ok, internal = api.crash()
    assert not ok and internal["type"] == "internal_error"
    assert "Traceback" not in internal["message"] and "/secret" not in internal["message"]
    ok, unknown = invoke(registry, "no_such_command", [])
    assert not ok and unknown["type"] == "not_found"


def test_duplicate_name_is_an_error_naming_both_plugins(registry):
    with pytest.raises(DuplicateCommand, match="plugin tests and plugin other"):
        registry.register("pair", pair, plugin="other")


def test_fifty_concurrent_calls_from_threads_get_their_own_results(registry):
    api = make_js_api(registry)
    results: dict[int, object] = {}
    barrier = threading.Barrier(50)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = api.pair({"firstValue": f"v{i}", "secondValue": i})[1]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: {"first": f"v{i}", "second": i} for i in range(50)}


def test_every_command_of_the_real_app_has_a_docstring(make_app):
    """Command docstrings are the API reference of the frontend."""
    app = make_app().start()
    undocumented = [n for n in app.commands.names() if not app.commands.get(n).doc]
    assert undocumented == []
    assert {"archive_old_events", "get_udp_stats", "list_plugins"} <= set(app.commands.names())
