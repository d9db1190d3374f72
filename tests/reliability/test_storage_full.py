"""A command that writes while the disk is full answers with the typed ``storage_full`` error
(HTTP 507, "The disk is full: ..."), not a 500 with a traceback, and writes nothing of itself.

The database's size is capped with ``PRAGMA max_page_count`` on the writer's connection: SQLite's
real ``SQLITE_FULL`` path, as in ``test_disk_full.py``. The command goes through the app's own HTTP
bridge (``host.http.create_http_app``) served from this process, with a real HTTP client.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.full_database import UNLIMITED_PAGES, set_max_pages


def test_a_command_that_writes_on_a_full_disk_is_storage_full_and_writes_nothing(
        make_app, served, caplog):
    app = make_app()
    app.start()
    http = served(app)
    set_max_pages(app, None)  # the file may not grow beyond its size now

    def create(name: str) -> httpx.Response:
        return http.post("/api/invoke/tournament_create",
                         json={"name": name, "durationDays": 3})

    # What the file's pages still hold fills up first; the first create that needs a new
    # page fails (at most a few pages of rows: far below the bound).
    for number in range(2000):
        refused = create(f"Open {number}")
        if refused.status_code != 200:
            break
    else:
        pytest.fail("the capped database never became full")
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["type"] == "storage_full", error
    assert error["message"].startswith("The disk is full: nothing was saved."), error
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "logged with a traceback"

    # Nothing half-written: the refused tournament is not there, every other one has its days.
    listed = http.post("/api/invoke/tournament_get_all", json=[]).json()
    assert f"Open {number}" not in {t["name"] for t in listed}
    assert len(listed) == number and all(len(t["days"]) == 3 for t in listed)

    set_max_pages(app, UNLIMITED_PAGES)  # space is back: the same command works
    again = create(f"Open {number}")
    assert again.status_code == 200 and len(again.json()["days"]) == 3, again.text


def test_storage_full_is_logged_once_in_plain_words(make_app, caplog):
    from restrike.host.bridge import invoke

    app = make_app()
    app.start()
    set_max_pages(app, None)
    with caplog.at_level(logging.ERROR):
        for number in range(2000):
            ok, value = invoke(app.commands, "tournament_create", {"name": f"Cup {number}"})
            if not ok:
                break
    assert value["type"] == "storage_full", value
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "nothing written" in errors[0] and "full" in errors[0], errors
