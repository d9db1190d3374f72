"""The host's bridge inside the real pywebview window: raw ``window.pywebview.api`` calls."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_page_calls_commands_through_pywebview_api(window_page):
    plugins = window_page.evaluate("window.pywebview.api.list_plugins()")
    assert {p["name"] for p in plugins} >= {"database", "udp"}
    # Positional and Tauri-style named calls reach the same command.
    assert window_page.evaluate("window.pywebview.api.get_udp_status()") == "Running"
    named = window_page.evaluate("window.restrikeInvoke('pss_get_events', {limit: 1})")
    assert isinstance(named, list) and len(named) <= 1


def test_bad_argument_rejects_with_type_field_and_no_python_traceback(window_page):
    error = window_page.evaluate("""() => window.pywebview.api.archive_old_events(-1).then(
        () => null,
        (e) => ({type: e.type, field: e.field, message: e.message, stack: String(e.stack)}))""")
    assert error["type"] == "validation_error"
    assert error["field"] == "daysOld"
    assert "greater than or equal to 0" in error["message"]
    assert "Traceback" not in error["stack"] and ".py" not in error["stack"]
