"""Browser mode only: the OBS overlay, the CSP, and a screenshot of every screen at two sizes
(checked for horizontal overflow; written to docs/screenshots/ by `make screenshots`)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.e2e.conftest import (
    FIXTURES,
    SCREENSHOTS,
    TOKEN,
    goto_tab,
    load_datagrams,
    overlay_page,
    parsed,
)

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000
SIZES = [(1024, 700), (1600, 900)]
SCREENS = ["events", "scoreboard", "udp", "database", "tournament", "replay", "courts"]


def test_overlay_shows_the_live_score(browser_app):
    page, problems = overlay_page(browser_app)
    try:
        browser_app.send([
            b"pre;FightLoaded\r\n",
            b"at1;A. ONE;Alpha ONE;KOR;at2;B. TWO;Beta TWO;USA\r\n",
            (b"mch;301;Final;W- 57 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;x1;Senior;3;120;"
             b"cntDown;22;14"),
            b"rnd;2\r\n", b"clk;1:31\r\n", b"wg1;1;wg2;2\r\n", b"sc1;3;sc2;1\r\n",
        ])
        expect(page.locator("#ov")).to_be_visible(timeout=TIMEOUT)
        expect(page.locator("#ov-blue-name")).to_have_text("A. ONE", timeout=TIMEOUT)
        expect(page.locator("#ov-red-country")).to_have_text("USA")
        expect(page.locator("#ov-blue-score")).to_have_text("3")
        expect(page.locator("#ov-red-score")).to_have_text("1")
        expect(page.locator("#ov-red-gj")).to_have_text("2")
        expect(page.locator("#ov-round")).to_have_text("R2")
        expect(page.locator("#ov-clock")).to_have_text("1:31")
        browser_app.send([b"pt1;2\r\n", b"sc1;5;sc2;1\r\n"])  # live: the next score
        expect(page.locator("#ov-blue-score")).to_have_text("5", timeout=TIMEOUT)
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") \
            == "rgba(0, 0, 0, 0)"  # transparent for OBS
        assert problems == []
    finally:
        page.close()
    # Without the token the overlay gets nothing.
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{browser_app.http_base}/overlay/scoreboard.html", timeout=5)
    assert denied.value.code == 401


def test_overlay_can_follow_one_court(browser_app):
    court_a, court_b = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    page, problems = overlay_page(browser_app, f"&source=127.0.0.1:{court_a}")
    try:
        browser_app.send([b"pre;FightLoaded\r\n",
                          b"at1;C. AAA;Court AAA;FRA;at2;C. BBB;Court BBB;GER",
                          b"sc1;7;sc2;2\r\n"], from_port=court_a)
        expect(page.locator("#ov-blue-name")).to_have_text("C. AAA", timeout=TIMEOUT)
        browser_app.send([b"pre;FightLoaded\r\n", b"at1;X. OTHER;Other;ITA;at2;Y. OTHER;Other;ESP",
                          b"sc1;1;sc2;9\r\n"], from_port=court_b)
        browser_app.send([b"sc1;8;sc2;2\r\n"], from_port=court_a)  # court A goes on
        expect(page.locator("#ov-blue-score")).to_have_text("8", timeout=TIMEOUT)
        expect(page.locator("#ov-blue-name")).to_have_text("C. AAA")  # never court B
        assert problems == []
    finally:
        page.close()


def test_pages_load_under_the_csp_without_errors(browser_app):
    page = browser_app.context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{browser_app.http_base}/?token={TOKEN}")
        page.wait_for_function("() => document.documentElement.dataset.ui === 'ready'",
                               timeout=TIMEOUT)
        for name in SCREENS:
            goto_tab(page, name)
        # Keyboard: arrows move between tabs, and the focused tab shows.
        page.focus("#tab-events")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#tab-scoreboard")).to_be_focused()
        expect(page.locator("#panel-scoreboard")).to_be_visible()
        page.keyboard.press("Alt+4")
        expect(page.locator("#panel-database")).to_be_visible()
        assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p]
        assert problems == []
    finally:
        page.close()


def test_screenshots_of_every_screen(browser_app):
    """Fill the screens with a real match, then capture each one at 1024x700 and 1600x900."""
    page = browser_app.page
    expected = json.loads((FIXTURES / "match_basic.expect.json").read_text(encoding="utf-8"))
    # The match in its last round, then a few odd datagrams from the same sender (same court):
    # greyed on top of the table, with their error.
    odd = [d for d in load_datagrams("odd_datagrams.jsonl")
           if {e.event.type for e in parsed([d])} <= {"invalid", "unknown"}]
    browser_app.send(load_datagrams("match_basic.jsonl")[:-40] + odd[:6])
    goto_tab(page, "scoreboard")
    expect(page.locator("#sb-blue-short")).to_have_text(expected["blue"]["short"],
                                                       timeout=TIMEOUT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    overlay, problems = overlay_page(browser_app)
    try:
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            for name in SCREENS:
                goto_tab(page, name)
                if name == "events":
                    expect(page.locator("#ev-count")).not_to_have_text("0", timeout=TIMEOUT)
                if name == "database":
                    expect(page.locator("#pool-stats dd").first).to_be_visible(timeout=TIMEOUT)
                    expect(page.locator("#db-info dd").first).to_be_visible(timeout=TIMEOUT)
                if name == "udp":
                    expect(page.locator("#udp-counters dd").first).to_be_visible(timeout=TIMEOUT)
                overflow = page.evaluate(
                    """(name) => {
                      const panel = document.getElementById(`panel-${name}`);
                      const bad = [];
                      if (document.documentElement.scrollWidth > innerWidth) bad.push('page');
                      if (panel.scrollWidth > panel.clientWidth + 1) bad.push('panel');
                      for (const el of panel.querySelectorAll('.card, .sb-side, .op, .toolbar')) {
                        if (el.scrollWidth > el.clientWidth + 1) bad.push(el.id || el.className);
                      }
                      const top = document.querySelector('.topbar');
                      if (top.scrollWidth > top.clientWidth + 1) bad.push('topbar');
                      return bad;
                    }""", name)
                assert overflow == [], f"{name} at {width}x{height} overflows: {overflow}"
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"))
            overlay.set_viewport_size({"width": width, "height": height})
            expect(overlay.locator("#ov-blue-name")).to_have_text(expected["blue"]["short"],
                                                                 timeout=TIMEOUT)
            overlay.screenshot(path=str(SCREENSHOTS / f"overlay-{width}x{height}.png"),
                               omit_background=True)
        assert problems == []
    finally:
        overlay.close()
        page.set_viewport_size({"width": 1600, "height": 900})
