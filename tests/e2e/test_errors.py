"""Errors on screen in the operator's words (issue 11, item 7), export without typing a path
(item 4), and what a browser sees without the token.

Both transports for the forms; the window for the file the operator chooses (a browser
downloads instead); plain HTTP (httpx) for the token-less page and the icon.
"""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TOKEN, goto_tab, wait_for
from tests.e2e.xkeys import Display, save_as, save_in
from tests.tmpfs import fill, tmpfs

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000
API_WORDS = re.compile(r"daysOld|startDate|endDate|overwrite|\d{2}:\d{2}:\d{2}(\.\d+)?Z|pass ")


def no_api_words(page, selector: str) -> None:
    text = page.locator(selector).inner_text()
    assert not API_WORDS.search(text), text


def test_a_non_number_in_older_than_days_is_named_as_on_screen(app):
    page = app.page
    goto_tab(page, "database")
    page.fill("#archive-days", "x1")
    page.click("#archive-run")
    expect(page.locator("#archive-days-error")).to_have_text(
        "Older than (days) must be a whole number from 0 to 100000.", timeout=TIMEOUT)
    expect(page.locator("#archive-days")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#op-progress")).to_be_hidden()
    # The error goes as soon as the field changes.
    page.fill("#archive-days", "30")
    expect(page.locator("#archive-days-error")).to_have_text("")
    expect(page.locator("#archive-days")).not_to_have_attribute("aria-invalid", "true")


def test_delete_checks_its_input_before_asking_to_confirm(app):
    page = app.page
    goto_tab(page, "database")
    page.fill("#cleanup-days", "x1")
    page.click("#cleanup-run")
    expect(page.locator("#cleanup-days-error")).to_have_text(
        "Older than (days) must be a whole number from 0 to 100000.", timeout=TIMEOUT)
    expect(page.locator("#confirm-dialog")).to_have_count(0)
    page.fill("#cleanup-days", "-3")
    page.click("#cleanup-run")
    expect(page.locator("#cleanup-days-error")).to_contain_text("whole number")
    expect(page.locator("#confirm-dialog")).to_have_count(0)


def test_an_end_date_before_the_start_date_shows_the_dates_as_typed(app):
    page = app.page
    goto_tab(page, "database")
    page.fill("#restore-start", "2026-11-30")
    page.fill("#restore-end", "2026-11-01")
    page.click("#restore-run")
    expect(page.locator("#restore-end-error")).to_have_text(
        "To (2026-11-01) is before From (2026-11-30). "
        "The end must be the same day as the start or later.", timeout=TIMEOUT)
    no_api_words(page, "#restore-end-error")
    page.fill("#restore-start", "30.11.2026")
    page.click("#restore-run")
    expect(page.locator("#restore-start-error")).to_have_text(
        "From must be a date written YYYY-MM-DD, e.g. 2026-11-30.")
    # The export's optional dates follow the same rules.
    page.fill("#export-start", "2026-11-30")
    page.fill("#export-end", "2026-11-29")
    page.click("#export-run")
    expect(page.locator("#export-end-error")).to_have_text(
        "To, inclusive (optional) (2026-11-29) is before From (optional) (2026-11-30). "
        "The end must be the same day as the start or later.")
    page.fill("#export-start", "")
    page.fill("#export-end", "")


def test_an_error_clears_when_another_action_succeeds(app):
    page = app.page
    goto_tab(page, "database")
    page.fill("#archive-days", "many")
    page.click("#archive-run")
    expect(page.locator("#archive-days-error")).to_contain_text("whole number", timeout=TIMEOUT)
    page.fill("#cleanup-days", "99999")  # nothing that old: a quick, harmless success
    page.click("#cleanup-run")
    page.click("#confirm-ok")
    expect(page.locator("#op-result")).to_contain_text("Nothing deleted", timeout=TIMEOUT)
    expect(page.locator("#archive-days-error")).to_have_text("")
    expect(page.locator("#archive-days")).not_to_have_attribute("aria-invalid", "true")
    page.fill("#archive-days", "30")


def test_an_error_the_command_finds_is_in_the_operators_words(window_app, tmp_path):
    page = window_app.page
    goto_tab(page, "database")
    page.fill("#export-path", "events.csv")
    page.click("#export-run")
    expect(page.locator("#export-path-error")).to_have_text(
        "File must be a full path starting with “/”, e.g. /home/operator/events.csv.",
        timeout=TIMEOUT)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    page.fill("#export-path", str(tmp_path / "link" / "events.csv"))
    page.click("#export-run")
    expect(page.locator("#export-path-error")).to_contain_text("is a symbolic link",
                                                               timeout=TIMEOUT)
    assert list((tmp_path / "real").iterdir()) == []


def test_an_existing_file_without_replace(window_app, tmp_path):
    page = window_app.page
    goto_tab(page, "database")
    expect(page.locator("#export-path")).to_be_visible()
    expect(page.locator("#export-choose")).to_be_visible()  # the native "Save as" dialog
    target = tmp_path / "events.csv"
    target.write_text("precious")
    page.fill("#export-path", str(target))
    page.select_option("#export-format", "csv")
    page.uncheck("#export-overwrite")
    page.click("#export-run")
    expect(page.locator("#export-path-error")).to_have_text(
        "A file with this name exists. Tick “Replace” to overwrite it.", timeout=TIMEOUT)
    assert target.read_text() == "precious"
    page.check("#export-overwrite")
    page.click("#export-run")
    expect(page.locator("#export-result")).to_contain_text(f"to {target}", timeout=TIMEOUT)
    expect(page.locator("#export-path-error")).to_have_text("")
    assert target.read_text().startswith("id,timestamp")
    page.uncheck("#export-overwrite")


def test_a_full_disk(window_app, tmp_path):
    page = window_app.page
    window_app.send([f"zzd;{'x' * 300};{i}".encode() for i in range(300)])
    wait_for(lambda: window_app.invoke("database_get_info")["row_counts"]["pss_events_v2"] >= 300,
             30, 0.2, "stored events")
    goto_tab(page, "database")
    with tmpfs(tmp_path / "small", "size=64k") as disk:
        target = disk / "events.csv"
        target.write_text("precious")
        fill(disk)
        page.fill("#export-path", str(target))
        page.check("#export-overwrite")
        page.click("#export-run")
        expect(page.locator("#export-path-error")).to_have_text(
            "The disk is full. Free some space, or choose another disk, and try again. "
            "Nothing was changed.", timeout=TIMEOUT)
        assert target.read_text() == "precious"
        assert sorted(p.name for p in disk.iterdir()) == ["events.csv", "filler"]
    page.uncheck("#export-overwrite")
    page.fill("#export-path", "")


def test_a_browser_downloads_the_export(browser_app):
    page = browser_app.page
    browser_app.send([f"zzw;download-{i}".encode() for i in range(3)])
    with sqlite3.connect(browser_app.db_path, timeout=30) as db:
        wait_for(lambda: db.execute("SELECT count(*) FROM pss_events_v2 WHERE raw_data LIKE "
                                    "'zzw;download-%'").fetchone()[0] == 3, 30, 0.1, "stored")
    goto_tab(page, "database")
    expect(page.locator("#export-path")).to_be_hidden()  # nothing to type
    expect(page.locator("#export-choose")).to_be_hidden()
    expect(page.locator("#export-overwrite")).to_be_hidden()
    page.select_option("#export-format", "jsonl")
    with page.expect_download(timeout=TIMEOUT) as info:
        page.click("#export-run")
    download = info.value
    assert re.fullmatch(r"restrike-events-\d{4}-\d{2}-\d{2}\.jsonl", download.suggested_filename)
    lines = open(download.path(), encoding="utf-8").read().splitlines()
    assert sum("zzw;download-" in line for line in lines) == 3
    expect(page.locator("#export-result")).to_contain_text(f"Exported {len(lines):,} event")
    # The temporary file on the server side is gone once the download is complete.
    wait_for(lambda: not list(browser_app.data_dir.glob(".download-*")), 10, 0.05,
             "the server's temporary copy removed")


def test_without_the_token_a_page_says_how_to_open_the_app(browser_app):
    with httpx.Client(base_url=browser_app.http_base, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert "?token=" in page.text and "printed" in page.text
        assert "content-security-policy" in page.headers
        api = client.post("/api/invoke/list_plugins", json=[])
        assert api.status_code == 401 and api.json()["error"]["type"] == "unauthorized"
        assert client.get("/styles.css").status_code == 401  # nothing else without the token
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            icon = client.get("/favicon.ico", headers=headers)
            assert icon.status_code == 200, headers
            assert icon.headers["content-type"].startswith("image/svg+xml")
            assert icon.content.startswith(b"<svg")


def test_a_refused_download_is_an_error_answer_not_a_file(browser_app):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=browser_app.http_base, timeout=10, headers=auth) as client:
        url = "/api/download/export_events?filename=events.csv"
        bad_format = client.post(url, json={"filters": None, "format": "xlsx"})
        assert bad_format.status_code == 422
        assert bad_format.json()["error"]["field"] == "format"
        assert "content-disposition" not in bad_format.headers
        chosen_path = client.post(url, json={"format": "csv", "path": "/etc/passwd"})
        assert chosen_path.status_code == 422
        bad_name = client.post("/api/download/export_events?filename=../x.csv",
                               json={"format": "csv"})
        assert bad_name.status_code == 422 and bad_name.json()["error"]["field"] == "filename"
        too_big = client.post(url, content=b"{" + b" " * 70_000 + b"}")
        assert too_big.status_code == 422
        assert client.post(url, json={"format": "csv"}, headers={"Authorization": ""}
                           ).status_code == 401
    wait_for(lambda: not list(browser_app.data_dir.glob(".download-*")), 10, 0.05,
             "no download directory left")


def test_choose_opens_the_native_save_as_dialog(window_app, tmp_path):
    page = window_app.page
    goto_tab(page, "database")
    page.select_option("#export-format", "csv")
    page.uncheck("#export-overwrite")
    display = Display()
    try:
        # The dialog opens in the folder typed so far, with a suggested name; Return accepts.
        save_in(display, page, "#export-path", "#export-choose", tmp_path,
                r"restrike-events-\d{4}-\d{2}-\d{2}\.csv")
        chosen = page.locator("#export-path")
        expect(page.locator("#export-overwrite")).not_to_be_checked()
        page.click("#export-run")
        expect(page.locator("#export-result")).to_contain_text(f"to {chosen.input_value()}",
                                                               timeout=TIMEOUT)
        assert open(chosen.input_value(), encoding="utf-8").readline().startswith("id,")
        # Escape cancels: nothing changes, no message.
        save_as(display, page, "#export-choose", "Escape")
        expect(page.locator("#export-choose")).to_be_enabled(timeout=TIMEOUT)
        expect(chosen).to_have_value(re.compile(r".*\.csv$"))
        expect(page.locator("#export-path-error")).to_have_text("")
    finally:
        display.close()
    page.fill("#export-path", "")
