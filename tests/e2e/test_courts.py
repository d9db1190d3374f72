"""The Courts screen (issue 13) in the real window and in the browser: a match fed over real
UDP appears on this instance's court card and its score changes live (courts_changed push, no
reload); the OBS overlay follows a court by name (?court=NAME)."""

from __future__ import annotations

import socket

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.e2e.conftest import goto_tab, overlay_page

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000


def match_start(number: str) -> list[bytes]:
    return [
        b"pre;FightLoaded\r\n",
        b"at1;C. COURT;Chen COURT;TPE;at2;D. DESK;Dana DESK;CAN\r\n",
        f"mch;{number};Semifinal;M- 80 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;x9;Senior;3;120;"
        "cntDown;22;14".encode(),
        b"rnd;2\r\n", b"clk;1:31\r\n", b"wg1;0;wg2;1\r\n", b"sc1;3;sc2;1\r\n",
    ]


def test_the_courts_screen_shows_this_courts_match_and_updates_live(app):
    court = app.invoke("get_courts")["court"]
    goto_tab(app.page, "courts")
    sender = free_port(socket.SOCK_DGRAM)  # one scoring PC: one source, one match
    app.send(match_start("411"), from_port=sender)
    card = app.page.locator(f'.ct-card[data-court="{court}"]')
    expect(card.locator(".ct-match")).to_contain_text("Match 411", timeout=TIMEOUT)
    expect(card.locator('[data-score="blue"]')).to_have_text("3", timeout=TIMEOUT)
    expect(card.locator('[data-score="red"]')).to_have_text("1")
    expect(card.locator(".ct-blue .ct-name")).to_have_text("C. COURT")
    expect(card.locator(".ct-red .ct-country")).to_have_text("CAN")
    expect(card.locator(".ct-round")).to_have_text("Round 2 of 3")
    expect(card.locator(".ct-clock")).to_have_text("1:31")
    expect(card.locator(".ct-health")).to_have_attribute("data-health", "connected")
    app.page.evaluate("window.__noReload = true")
    app.send([b"clk;1:20\r\n", b"pt1;2\r\n", b"sc1;5;sc2;1\r\n"], from_port=sender)
    expect(card.locator('[data-score="blue"]')).to_have_text("5", timeout=TIMEOUT)
    expect(card.locator(".ct-clock")).to_have_text("1:20")
    assert app.page.evaluate("window.__noReload === true")  # the same page: updated live
    app.send([b"win;BLUE\r\n", b"wmh;C. COURT;2-0 PTF\r\n"], from_port=sender)
    expect(card.locator(".ct-winner")).to_have_text("Winner: C. COURT (blue) · 2-0 PTF",
                                                    timeout=TIMEOUT)


def test_the_overlay_follows_a_court_by_name(browser_app):
    court = browser_app.invoke("get_courts")["court"]
    sender = free_port(socket.SOCK_DGRAM)
    browser_app.send(match_start("512"), from_port=sender)
    page, problems = overlay_page(browser_app, f"&court={court}")
    try:
        expect(page.locator("#ov-blue-name")).to_have_text("C. COURT", timeout=TIMEOUT)
        expect(page.locator("#ov-red-country")).to_have_text("CAN")
        expect(page.locator("#ov-blue-score")).to_have_text("3", timeout=TIMEOUT)
        expect(page.locator("#ov-red-gj")).to_have_text("1")
        expect(page.locator("#ov-round")).to_have_text("R2")
        browser_app.send([b"sc1;3;sc2;4\r\n"], from_port=sender)
        expect(page.locator("#ov-red-score")).to_have_text("4", timeout=TIMEOUT)
        assert problems == []
    finally:
        page.close()
    other, problems = overlay_page(browser_app, "&court=No%20such%20court")
    try:
        expect(other.locator("#ov")).to_be_hidden()
        assert problems == []
    finally:
        other.close()


def test_a_results_desk_on_postgresql_shows_another_courts_match_live(tmp_path, pw, pg_server):
    """The real window of a ``--no-udp`` results desk on a PostgreSQL database, while a
    separate headless court instance on the same database is fed over UDP: the desk's Courts
    screen shows the court's match and its score changes without a reload, each change carried
    by a ``courts_changed`` push that came from the court's NOTIFY (the desk writes nothing)."""
    from tests.e2e.conftest import SCREENSHOTS, launch_window
    from tests.tournament import Instance

    url = pg_server.database()
    court = Instance(tmp_path / "mat7", url, "Mat 7").start()
    (tmp_path / "desk").mkdir()
    try:
        with launch_window(tmp_path / "desk", pw, ("--database-url", url, "--court",
                                                    "Results desk", "--no-udp")) as desk:
            page = desk.page
            goto_tab(page, "courts")
            expect(page.locator("#ct-live")).to_have_attribute("data-live", "notify",
                                                               timeout=TIMEOUT)
            # count the pushes the window delivers (host/window.py calls __restrikePush)
            page.evaluate("""() => {
              const deliver = window.__restrikePush;
              window.__courtsPushes = 0;
              window.__restrikePush = (batch) => {
                if (batch.some((item) => item.event === 'courts_changed')) window.__courtsPushes++;
                return deliver(batch);
              };
            }""")
            court.send([d.decode() for d in match_start("707")])
            card = page.locator('.ct-card[data-court="Mat 7"]')
            expect(card.locator(".ct-match")).to_contain_text("Match 707", timeout=TIMEOUT)
            expect(card.locator('[data-score="blue"]')).to_have_text("3", timeout=TIMEOUT)
            expect(card.locator(".ct-blue .ct-name")).to_have_text("C. COURT")
            expect(card.locator(".ct-health")).to_have_attribute("data-health", "connected")
            page.evaluate("window.__noReload = true")
            pushes = page.evaluate("window.__courtsPushes")
            heard = desk.invoke("get_courts")["listen"]["notifications"]
            court.send(["clk;1:20\r\n", "pt1;2\r\n", "sc1;5;sc2;1\r\n"])
            page.wait_for_function(f"() => window.__courtsPushes > {pushes}", timeout=TIMEOUT)
            expect(card.locator('[data-score="blue"]')).to_have_text("5", timeout=TIMEOUT)
            expect(card.locator(".ct-clock")).to_have_text("1:20")
            assert page.evaluate("window.__noReload === true")  # the same page: updated live
            answer = desk.invoke("get_courts")
            assert answer["listen"]["notifications"] > heard and answer["live"] == "notify"
            assert (answer["court"], answer["courts"][0]["local"]) == ("Results desk", False)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "courts-postgresql-desk.png"))
    finally:
        court.kill()
