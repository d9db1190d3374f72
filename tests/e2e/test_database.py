"""The database screen against the app's real SQLite file (both transports)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from restrike.host.timeutil import now_iso, to_iso
from tests.e2e.conftest import dd, goto_tab, wait_for

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000
OLD = 40  # days: older than the 30 the operator types
BULK = 20_000  # old events inserted directly: the move takes long enough to show progress


def archived(page):
    return dd(page, "#archive-stats", "archived_events")


def test_archive_restore_cleanup_optimize(app, db):
    page = app.page
    marker = f"zza;old-{app.mode}-"
    app.send([f"{marker}{i}".encode() for i in range(40)])
    count_old = f"SELECT count(*) FROM pss_events_v2 WHERE raw_data LIKE '{marker}%'"
    wait_for(lambda: db.execute(count_old).fetchone()[0] == 40, 30, 0.1, "40 stored events")
    # Age them: the app keeps running (WAL), as an operator's database ages in real life.
    old_moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=OLD)
    old_iso = to_iso(old_moment)
    db.execute(f"UPDATE pss_events_v2 SET created_at = ?, timestamp = ? "
               f"WHERE raw_data LIKE '{marker}%'", (old_iso, old_iso))
    type_id = db.execute("SELECT id FROM pss_event_types WHERE code = 'clk'").fetchone()[0]
    db.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BULK}) "
        "INSERT INTO pss_events_v2 (event_type_id, timestamp, raw_data, event_sequence, "
        "is_valid, created_at, recognition_status) "
        "SELECT ?, ?, ? || 'bulk-' || i, i, 1, ?, 'recognized' FROM n",
        (type_id, old_iso, marker, old_iso))
    total = 40 + BULK
    total_text = f"{total:,}"

    goto_tab(page, "database")
    page.click("#archive-stats-refresh")
    expect(archived(page)).to_have_text("0", timeout=TIMEOUT)

    # -1 days: a sentence naming the field as on screen, and nothing changes.
    page.fill("#archive-days", "-1")
    page.click("#archive-run")
    expect(page.locator("#archive-days-error")).to_contain_text(
        "Older than (days) must be a whole number", timeout=TIMEOUT)
    expect(page.locator("#archive-days")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#op-result")).to_have_text("")
    assert db.execute(count_old).fetchone()[0] == total
    expect(archived(page)).to_have_text("0")

    # Watch the progress bar while it runs (archive_progress pushes between chunks).
    page.evaluate("""() => {
      window.__progress = [];
      const text = document.getElementById('op-progress-text');
      new MutationObserver(() => window.__progress.push(text.textContent))
        .observe(text, { childList: true, characterData: true, subtree: true });
    }""")
    page.fill("#archive-days", "30")
    page.click("#archive-run")
    expect(page.locator("#op-result")).to_contain_text(f"Archived {total_text} events",
                                                       timeout=TIMEOUT)
    expect(page.locator("#archive-days-error")).to_be_hidden()
    expect(archived(page)).to_have_text(total_text, timeout=TIMEOUT)
    assert db.execute(count_old).fetchone()[0] == 0
    seen = page.evaluate("() => window.__progress")
    assert any(f"of {total_text}" in t for t in seen), seen
    expect(dd(page, "#archive-stats", "oldest_archived")).to_contain_text(old_iso[:10])

    # Restore that day: the events are back, the archive empty again.
    day = old_moment.date().isoformat()
    page.fill("#restore-start", "not a date")
    page.fill("#restore-end", day)
    page.click("#restore-run")
    expect(page.locator("#restore-start-error")).to_contain_text(
        "From must be a date written YYYY-MM-DD", timeout=TIMEOUT)
    page.fill("#restore-start", day)
    page.click("#restore-run")
    expect(page.locator("#op-result")).to_contain_text(f"Restored {total_text} events",
                                                       timeout=TIMEOUT)
    expect(archived(page)).to_have_text("0", timeout=TIMEOUT)
    assert db.execute(count_old).fetchone()[0] == total

    # Archive again, then delete for good (after a confirmation; Cancel changes nothing).
    page.click("#archive-run")
    expect(archived(page)).to_have_text(total_text, timeout=TIMEOUT)
    page.fill("#cleanup-days", "30")
    page.click("#cleanup-run")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-cancel")
    expect(page.locator("#confirm-dialog")).to_have_count(0)
    expect(archived(page)).to_have_text(total_text)
    page.click("#cleanup-run")
    page.click("#confirm-ok")
    expect(page.locator("#op-result")).to_contain_text(f"Deleted {total_text} events",
                                                       timeout=TIMEOUT)
    expect(archived(page)).to_have_text("0", timeout=TIMEOUT)
    assert db.execute(
        f"SELECT count(*) FROM pss_events_v2_archive WHERE raw_data LIKE '{marker}%'"
    ).fetchone()[0] == 0

    page.click("#optimize-run")
    page.click("#confirm-ok")
    expect(page.locator("#op-result")).to_contain_text("Archive tables optimized",
                                                       timeout=TIMEOUT)
    expect(page.locator("#op-progress")).to_be_hidden()


def test_info_integrity_and_export(app, db, tmp_path):
    page = app.page
    marker = f"zze;export-{app.mode}-"
    app.send([f"{marker}{i}".encode() for i in range(5)])
    wait_for(lambda: db.execute("SELECT count(*) FROM pss_events_v2 WHERE raw_data LIKE ?",
                                (f"{marker}%",)).fetchone()[0] == 5, 30, 0.1, "stored events")
    goto_tab(page, "database")
    page.click("#db-info-refresh")
    expect(dd(page, "#db-info", "path")).to_contain_text("restrike_vta.db", timeout=TIMEOUT)
    # The WAL's checkpoints beside the pool: the commits above ran at least one, none failed.
    expect(dd(page, "#pool-stats", "checkpoint.runs")).to_have_text(re.compile(r"^[1-9][\d,]*$"),
                                                                    timeout=TIMEOUT)
    expect(dd(page, "#pool-stats", "checkpoint.errors")).to_have_text("0")
    expect(dd(page, "#pool-stats", "checkpoint.wal_flush_errors")).to_have_text("0")
    page.click("#db-integrity")
    expect(page.locator("#db-integrity-result")).to_contain_text("Integrity check passed",
                                                                timeout=TIMEOUT)
    if app.mode == "browser":
        return  # a browser downloads the file: test_errors.py
    # A relative path: a sentence under the File field, no file written.
    page.fill("#export-path", "events.csv")
    page.click("#export-run")
    expect(page.locator("#export-path-error")).to_contain_text("full path", timeout=TIMEOUT)
    target = tmp_path / f"events-{app.mode}.jsonl"
    page.fill("#export-path", str(target))
    page.select_option("#export-format", "jsonl")
    page.fill("#export-start", "2000-01-01")
    page.click("#export-run")
    expect(page.locator("#export-result")).to_contain_text(f"to {target}", timeout=TIMEOUT)
    expect(page.locator("#export-path-error")).to_be_hidden()
    text = page.locator("#export-result").inner_text()
    rows = int(text.split("Exported ")[1].split(" event")[0].replace(",", ""))
    lines = target.read_text(encoding="utf-8").splitlines()
    assert rows >= 5 and len(lines) == rows
    assert sum(marker in line for line in lines) == 5
    # The same path again without "Replace": a conflict, named on the File field.
    page.click("#export-run")
    expect(page.locator("#export-path-error")).to_contain_text("exists", timeout=TIMEOUT)
    page.fill("#export-start", "")


def test_pool_statistics_change_while_connections_are_held(app, db):
    page = app.page
    goto_tab(page, "database")
    in_use = dd(page, "#pool-stats", "in_use")
    requests = dd(page, "#pool-stats", "requests")
    expect(in_use).to_have_text("0", timeout=TIMEOUT)
    before = int(requests.inner_text().replace(",", ""))
    # Enough rows that an integrity check (a read command: it checks out a pool connection and
    # holds it while SQLite reads every page) is not instantaneous.
    type_id = db.execute("SELECT id FROM pss_event_types WHERE code = 'clk'").fetchone()[0]
    now = now_iso()
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) "
        "INSERT INTO pss_events_v2 (event_type_id, timestamp, raw_data, event_sequence, "
        "is_valid, created_at, recognition_status) "
        "SELECT ?, ?, 'clk;1:00;' || ? || i, i, 1, ?, 'recognized' FROM n",
        (type_id, now, "x" * 200, now))
    # Integrity checks back to back (a job now: one at a time, each holding a connection while
    # SQLite reads every page) and 3 loops of database_get_info (quick reads on connections of
    # their own) until the screen (polling the pool every second) has shown what they hold.
    page.evaluate("""() => {
      const hold = window.__hold = { stop: false, done: 0, rounds: 0, ok: true };
      const loop = async (name, check) => {
        while (!hold.stop) {
          const r = await window.restrikeInvoke(name);
          hold.rounds += 1;
          hold.ok = hold.ok && check(r);
        }
        hold.done += 1;
      };
      loop('database_run_integrity_check', (r) => r.ok);
      for (let i = 0; i < 3; i += 1) {
        loop('database_get_info', (r) => r.row_counts.pss_events_v2 >= 40000);
      }
    }""")
    page.wait_for_function(
        """() => Number(document.querySelector("#pool-stats dd[data-key='in_use']")
                   .textContent) >= 1""", timeout=TIMEOUT, polling=50)
    assert page.locator("#pool-meter").evaluate("e => e.value") > 0
    page.evaluate("() => { window.__hold.stop = true; }")
    page.wait_for_function("() => window.__hold.done === 4", timeout=TIMEOUT)
    assert page.evaluate("() => window.__hold.ok") is True
    rounds = page.evaluate("() => window.__hold.rounds")
    expect(in_use).to_have_text("0", timeout=TIMEOUT)
    page.wait_for_function(
        """(n) => Number(document.querySelector("#pool-stats dd[data-key='requests']")
                   .textContent.replace(/,/g, '')) >= n""", arg=before + rounds,
        timeout=TIMEOUT)
