"""The tournament screen: create, start a day, stamp incoming events, clear (both transports)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import goto_tab, wait_for

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000


def test_tournament_context_is_stamped_on_incoming_events(app, db):
    page = app.page
    goto_tab(page, "tournament")
    name = f"Test Open {app.mode}"

    # Errors of the command appear under the field they name; nothing is created.
    page.fill("#tour-name", "")
    page.click("#tour-create")
    expect(page.locator("#tour-name-error")).to_have_text("Name must be filled in.",
                                                          timeout=TIMEOUT)
    page.fill("#tour-name", name)
    page.fill("#tour-days", "0")
    page.click("#tour-create")
    expect(page.locator("#tour-days-error")).to_have_text(
        "Days must be a whole number of 1 or more.", timeout=TIMEOUT)
    expect(page.locator("#tour-name-error")).to_be_hidden()
    assert db.execute("SELECT count(*) FROM tournaments WHERE name = ?", (name,)).fetchone()[0] == 0

    page.fill("#tour-days", "2")
    page.fill("#tour-location", "Sofia")
    page.fill("#tour-country", "bul")
    page.fill("#tour-start", "2026-12-01")
    page.click("#tour-create")
    selected = page.locator("#ctx-tournament option:checked")
    expect(selected).to_contain_text(name, timeout=TIMEOUT)
    expect(selected).to_contain_text("Sofia, BUL")
    expect(page.locator("#ctx-days-body tr")).to_have_count(2)
    expect(page.locator("#ctx-days-body tr").first).to_contain_text("2026-12-01")

    page.click("#ctx-start-day")
    expect(page.locator("#ctx-days-body tr").first).to_contain_text("active", timeout=TIMEOUT)
    page.click("#ctx-set")
    expect(page.locator("#ctx-current")).to_have_text(f"{name} · day 1", timeout=TIMEOUT)
    expect(page.locator("#top-context")).to_have_text(f"{name} · day 1")

    raw = f"zzt;stamped-{app.mode}"
    app.send([raw.encode()])
    row = wait_for(lambda: db.execute(
        "SELECT e.tournament_id, d.day_number FROM pss_events_v2 e "
        "JOIN tournament_days d ON d.id = e.tournament_day_id WHERE e.raw_data = ?",
        (raw,)).fetchone(), 30, 0.1, "the stamped event")
    tournament_id = db.execute("SELECT id FROM tournaments WHERE name = ?", (name,)).fetchone()[0]
    assert row == (tournament_id, 1)

    page.click("#ctx-clear")
    page.click("#confirm-ok")
    expect(page.locator("#ctx-current")).to_contain_text("No tournament", timeout=TIMEOUT)
    expect(page.locator("#top-context")).to_have_text("No tournament")
    assert app.invoke("get_udp_tournament_context")["tournament_id"] is None
