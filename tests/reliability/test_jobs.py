"""Commands never wait behind maintenance (issue 10, item 6).

The app under test is the real one (built-in plugins, real UDP feed, real SQLite file), served
over its own HTTP bridge (``host.http.create_http_app`` under uvicorn) in this process and
called with a real HTTP client, so the test can hold a long job at a checkpoint it controls:
a ``app.jobs`` listener (the hook that pushes ``job_progress`` to the page), which runs on the
database writer between two chunks of the archival and waits for an ``Event``. No sleeps: every
wait is on an event or a condition.

On the old main these fail: an archival and a few queued cleanups filled asyncio's default
thread pool, so ``get_udp_status`` waited behind them; a second maintenance command queued on
the writer instead of being refused; the archive commands waited for the writer without a
timeout.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from restrike.host.bridge import make_js_api
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.conftest import wait_for
from tests.e2e.conftest import goto_tab
from tests.reliability.conftest import send_all

ANSWERED_WITHIN = 5.0  # "answered at all": a generous functional bound, not a speed target


def fed_app(make_app, **config):
    """A started app with a real match fed through UDP and stored: events to archive."""
    app = make_app(config={"database": config} if config else {})
    app.start()
    datagrams = sender_datagrams(3, 0, 1)
    send_all(app.settings.config["udp"]["port"], datagrams)
    service = app.extensions["database"]
    wait_for(lambda: service.writer.stats()["stored"] >= len(datagrams), 20,
             message="the feed stored")
    return app


class Checkpoint:
    """Holds the named job at its first progress report (inside the archival's transaction,
    on the writer thread) until ``release()``."""

    def __init__(self, app, name: str):
        self.name = name
        self.reached = threading.Event()
        self._release = threading.Event()
        self.status: dict | None = None
        app.jobs.add_listener(self._listen)

    def _listen(self, status: dict) -> None:
        if status["name"] == self.name and status["total"] is not None \
                and not status.get("finished") and not self.reached.is_set():
            self.status = status
            self.reached.set()
            self._release.wait(60)

    def release(self) -> None:
        self._release.set()


def post(client: httpx.Client, name: str, args=None, timeout: float = 30.0) -> httpx.Response:
    return client.post(f"/api/invoke/{name}", json=[] if args is None else args, timeout=timeout)


def test_status_answers_while_an_archival_is_held_and_more_maintenance_is_refused(
        make_app, served):
    app = fed_app(make_app)
    client = served(app)
    stored = app.extensions["database"].writer.stats()["stored"]
    checkpoint = Checkpoint(app, "archive_old_events")
    calls = ThreadPoolExecutor(16)
    archival = calls.submit(post, client, "archive_old_events", {"daysOld": 0})
    assert checkpoint.reached.wait(20), "the archival did not reach its first chunk"
    try:
        # What froze the old app: more maintenance queued behind the archival. Each is refused
        # at once, naming the running job and its progress; none occupies a thread.
        refused = [calls.submit(post, client, name, args, ANSWERED_WITHIN)
                   for name, args in [("cleanup_old_archive_data", [0])] * 8 + [
                       ("optimize_archive_tables", None), ("database_run_integrity_check", None),
                       ("restore_from_archive", ["2000-01-01", "2100-01-01"])]]
        for future in refused:
            answer = future.result()
            assert answer.status_code == 409, answer.text
            error = answer.json()["error"]
            assert error["type"] == "conflict"
            assert "archive_old_events" in error["message"]
            assert f"0 of {stored:,} done" in error["message"], error["message"]
        # Status and read commands answer meanwhile, many at once.
        statuses = [calls.submit(post, client, "get_udp_status", None, ANSWERED_WITHIN)
                    for _ in range(24)]
        assert {f.result().status_code for f in statuses} == {200}
        assert post(client, "get_udp_stats", None, ANSWERED_WITHIN).status_code == 200
        job = post(client, "get_job_status", None, ANSWERED_WITHIN).json()
        assert job["running"]["name"] == "archive_old_events"
        assert (job["running"]["done"], job["running"]["total"]) == (0, stored)
        assert job["conflicts"] == 11
        # Bad arguments are still named as such, not hidden behind the conflict.
        bad = post(client, "cleanup_old_archive_data", {"daysOld": -1}, ANSWERED_WITHIN)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "daysOld"
    finally:
        checkpoint.release()
    done = archival.result(30)
    assert done.status_code == 200 and done.json() == stored  # the original command contract
    job = post(client, "get_job_status").json()
    assert job["running"] is None
    assert job["last"]["name"] == "archive_old_events" and job["last"]["ok"] is True
    # The slot is free again: the next maintenance runs.
    assert post(client, "cleanup_old_archive_data", [0]).json() == stored
    calls.shutdown()


def test_an_archival_the_writer_cannot_start_in_time_is_unavailable_and_frees_the_slot(
        make_app, served):
    app = fed_app(make_app, write_timeout=0.5)
    client = served(app)
    writer = app.extensions["database"].writer
    inside, gate = threading.Event(), threading.Event()

    def busy_writer(conn):
        inside.set()
        gate.wait(60)

    blocker = threading.Thread(target=writer.run, args=(busy_writer,), daemon=True)
    blocker.start()
    assert inside.wait(10)
    try:
        answer = post(client, "archive_old_events", [0], timeout=10)
        assert answer.status_code == 503, answer.text
        assert "within 0.5 s" in answer.json()["error"]["message"]
        job = post(client, "get_job_status").json()
        assert job["running"] is None and job["last"]["ok"] is False
        assert job["last"]["error"]["type"] == "unavailable"
    finally:
        gate.set()
    blocker.join(10)
    assert post(client, "archive_old_events", [0]).json() > 0  # nothing was left half-done


def test_the_window_bridge_keeps_one_job_at_a_time_too(make_app):
    app = fed_app(make_app)
    api = make_js_api(app.commands, app.jobs)  # what the window gets
    checkpoint = Checkpoint(app, "archive_old_events")
    calls = ThreadPoolExecutor(2)  # pywebview calls each method on its own thread
    archival = calls.submit(api.archive_old_events, 0)
    assert checkpoint.reached.wait(20)
    try:
        ok, refused = api.database_run_vacuum()  # each window method answers [ok, value]
        assert not ok and refused["type"] == "conflict"
        assert "archive_old_events" in refused["message"]
        assert api.get_udp_status() == [True, "Running"]
    finally:
        checkpoint.release()
    ok, archived = archival.result(30)
    assert ok and isinstance(archived, int) and archived > 0
    assert api.database_run_integrity_check()[1]["ok"] is True
    calls.shutdown()


@pytest.mark.e2e
def test_the_page_shows_a_job_it_did_not_start_and_the_conflict_it_causes(make_app, page_of):
    app = fed_app(make_app)
    stored = app.extensions["database"].writer.stats()["stored"]
    checkpoint = Checkpoint(app, "archive_old_events")
    page = page_of(app)
    goto_tab(page, "database")
    calls = ThreadPoolExecutor(1)
    archival = calls.submit(app.jobs.call, "archive_old_events", [0])  # another window's
    assert checkpoint.reached.wait(20)
    try:
        line = page.locator("#op-progress")
        expect(line).to_be_visible(timeout=20_000)
        expect(page.locator("#op-progress-label")).to_contain_text("Archiving (already running)")
        expect(page.locator("#op-progress-text")).to_contain_text(f"0 of {stored:,}")
        page.fill("#cleanup-days", "0")
        page.click("#cleanup-run")
        page.click("#confirm-ok")
        toast = page.locator(".toast-error .toast-text")
        expect(toast).to_contain_text("Not started (cleanup_old_archive_data): archive_old_events",
                                      timeout=20_000)
        expect(toast).to_contain_text("archive_old_events (running for")
        expect(page.locator("#op-progress-label")).to_contain_text("Archiving (already running)")
    finally:
        checkpoint.release()
    assert archival.result(30) == (True, stored)
    expect(page.locator("#op-progress")).to_be_hidden(timeout=20_000)
    calls.shutdown()


def test_the_automatic_archival_takes_the_one_job_slot_too(make_app, served):
    """``database.auto_archive_days`` archives through the same slot as the commands: skipped
    (and tried again soon) while an archive command runs, and an archive command started while
    it runs is refused at once with ``conflict`` naming it (not ``unavailable`` after the
    writer's timeout)."""
    from restrike.plugins.plugin_database.service import AUTO_ARCHIVE_JOB

    app = fed_app(make_app, auto_archive_days=1)
    auto = app.extensions["database"].auto_archiver
    client = served(app)

    checkpoint = Checkpoint(app, "archive_old_events")
    calls = ThreadPoolExecutor(1)
    archiving = calls.submit(post, client, "archive_old_events", [0])
    assert checkpoint.reached.wait(20)
    try:
        auto.trigger()
        wait_for(lambda: (auto.last_error or "").startswith("skipped"), 20,
                 message="the automatic archival skipped")
        assert auto.runs == 0 and "archive_old_events" in auto.last_error
    finally:
        checkpoint.release()
    assert archiving.result(30).status_code == 200

    started, release = threading.Event(), threading.Event()

    def hold(status: dict) -> None:  # the automatic archival's start, on its own thread
        if status["name"] == AUTO_ARCHIVE_JOB and not status.get("finished") \
                and not started.is_set():
            started.set()
            release.wait(60)

    app.jobs.add_listener(hold)
    auto.trigger()
    assert started.wait(20)
    try:
        refused = post(client, "archive_old_events", [0])
        assert refused.status_code == 409
        assert AUTO_ARCHIVE_JOB in refused.json()["error"]["message"]
    finally:
        release.set()
    wait_for(lambda: auto.runs == 1, 20, message="the automatic archival ran")
    assert app.jobs.status()["last"]["name"] == AUTO_ARCHIVE_JOB
    calls.shutdown()
