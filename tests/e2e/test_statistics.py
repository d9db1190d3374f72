"""The Statistics screen in the real window and in the browser: each view draws its charts with
the numbers of what the simulator sent (read from the charts' data and from the Chart.js
objects themselves, not only "a canvas exists"), the live event-rate chart follows the push
stream, and every view is captured (``RESTRIKE_SCREENSHOTS``)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from restrike.plugins.plugin_database.court import default_court
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.database.match_oracle import POINT_KEYS, assert_match_sheet, expected_match, oracle
from tests.e2e.conftest import SCREENSHOTS, goto_tab, parsed, wait_for
from tests.e2e.xkeys import Display, save_in

TIMEOUT = 30_000
SEED = 77
COURTS = (6, 7)  # simulator senders: match numbers 701 and 801


def chart(page, canvas_id: str) -> dict:
    """The numbers a chart draws: its data-chart attribute, checked against the Chart.js
    object bound to the canvas (what is really on screen)."""
    return page.evaluate(
        """(id) => {
          const canvas = document.getElementById(id);
          const drawn = window.Chart.getChart(canvas);
          const attr = JSON.parse(canvas.dataset.chart);
          return {attr, labels: drawn.data.labels,
                  data: drawn.data.datasets.map((d) => d.data),
                  names: drawn.data.datasets.map((d) => d.label),
                  width: canvas.width, height: canvas.height,
                  x: drawn.options.scales.x.title.text, y: drawn.options.scales.y.title.text};
        }""", canvas_id)


def drawn(page, canvas_id: str) -> dict:
    c = chart(page, canvas_id)
    assert c["labels"] == c["attr"]["labels"]
    assert c["data"] == [d["data"] for d in c["attr"]["datasets"]]
    assert c["width"] > 100 and c["height"] > 100  # really laid out
    assert c["x"] and c["y"]  # axis titles (units in them)
    return c


def send_and_wait(app, datagrams: list[bytes], port_offset: int) -> None:
    """Send in chunks from one sender, each stored before the next (no loss in the kernel's
    receive buffer, whatever the machine's speed)."""
    base = app.invoke("database_get_info")["row_counts"]["pss_events_v2"]
    sender_port = 30000 + port_offset
    for start in range(0, len(datagrams), 100):
        chunk = datagrams[start:start + 100]
        base += len(parsed(chunk))
        app.send(chunk, from_port=sender_port)
        wait_for(lambda base=base: app.invoke("database_get_info")["row_counts"]["pss_events_v2"]
                 >= base,
                 30, 0.1, "the chunk stored")


def send_once(app) -> dict:
    """The simulated matches of COURTS, sent to this app once per session."""
    sent = {court: sender_datagrams(SEED, court, 1) for court in COURTS}
    if not app.extra.get("statistics_sent"):
        for court, datagrams in sent.items():
            send_and_wait(app, datagrams, court)
        app.extra["statistics_sent"] = True
    return sent


def newest_match_id(app, number: str) -> int:
    return max(m["id"] for m in app.invoke("pss_get_matches", [500])
               if m["match_number"] == number)


def shot(app, page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    prefix = "" if app.mode == "browser" else "window-"
    page.screenshot(path=str(SCREENSHOTS / f"{prefix}statistics-{name}-1600x900.png"))


def open_match(page, match_id: int) -> None:
    """The match view showing ``match_id``, once its list holds it and the view has drawn it."""
    page.click("#st-view-match")
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('#st-match-select option')]"
        ".some((o) => o.value === String(id))", arg=match_id, timeout=TIMEOUT)
    page.select_option("#st-match-select", str(match_id))
    expect(page.locator("#st-match")).to_have_attribute("data-match-id", str(match_id),
                                                        timeout=TIMEOUT)


def test_statistics_views_draw_what_the_simulator_sent(app):
    page = app.page
    if app.mode == "browser":
        page.set_viewport_size({"width": 1600, "height": 900})
    sent = send_once(app)
    goto_tab(page, "statistics")

    # -- match view: timeline, techniques per round, hit levels ------------------------------
    for datagrams in sent.values():
        (m,) = oracle(datagrams)
        want = expected_match(m)
        match_id = newest_match_id(app, m["number"])
        open_match(page, match_id)
        timeline = drawn(page, "st-timeline")
        assert timeline["data"] == [[t["blue"] for t in want["timeline"]],
                                    [t["red"] for t in want["timeline"]]]
        no_round = "\N{EN DASH}"  # what the chart shows for a score before the first round
        assert timeline["labels"] == [f"R{t['round'] or no_round} {t['clock'] or ''}".strip()
                                      for t in want["timeline"]]
        techniques = drawn(page, "st-techniques")
        columns = [(r, side) for r in want["rounds"] for side in ("blue", "red")]
        assert techniques["labels"] == [f"R{r['round']} {side}" for r, side in columns]
        assert techniques["data"] == [[r[side]["points_by_type"][k] for r, side in columns]
                                      for k in POINT_KEYS]
        hits = drawn(page, "st-hits")
        assert hits["data"] == [want["total"]["blue"]["hit_levels"]["histogram"],
                                want["total"]["red"]["hit_levels"]["histogram"]]
        rows = page.locator("#st-rounds-body tr")
        expect(rows).to_have_count(len(want["rounds"]) + 1)
        total = rows.last.locator("td")
        expect(total.nth(2)).to_have_text(str(want["total"]["blue"]["points"]))
        expect(total.nth(3)).to_have_text(str(want["total"]["red"]["points"]))
    shot(app, page, "match")

    # -- athlete view: search, record, technique mix -----------------------------------------
    page.click("#st-view-athlete")
    blue = m["athletes"][1]
    page.fill("#st-athlete-search", blue)
    page.wait_for_function(
        "(name) => { const o = [...document.querySelectorAll('#st-athlete-select option')];"
        " return o.length > 0 && o.every((x) => x.textContent.startsWith(name)); }",
        arg=blue, timeout=TIMEOUT)
    athlete_id = int(page.locator("#st-athlete-select").input_value())
    expect(page.locator("#st-athlete")).to_have_attribute("data-athlete-id", str(athlete_id),
                                                          timeout=TIMEOUT)
    stats = app.invoke("get_athlete_statistics", [athlete_id])
    assert stats["athlete"]["short"] == blue and stats["matches"] >= 1
    mix = drawn(page, "st-athlete-mix")
    assert mix["data"] == [[stats["points_scored_by_type"][k] for k in POINT_KEYS],
                           [stats["points_conceded_by_type"][k] for k in POINT_KEYS]]
    expect(page.locator("#st-athlete-record dd[data-key='matches']")).to_have_text(
        str(stats["matches"]))
    expect(page.locator("#st-athlete-matches-body tr")).to_have_count(len(stats["match_list"]))
    # the simulator's match of this athlete is in the list, with its result
    listed = [x for x in stats["match_list"] if x["match_id"] == newest_match_id(app, m["number"])]
    assert listed and listed[0]["result"] == ("win" if m["winner"] == "blue" else "loss")
    shot(app, page, "athlete")

    # -- tournament view: matches per court per hour, win types, live event rates -------------
    page.click("#st-view-tournament")
    page.wait_for_function(
        "() => document.getElementById('st-rates').dataset.chart !== undefined",
        timeout=TIMEOUT)
    stats = app.invoke("get_tournament_statistics")
    per_hour = drawn(page, "st-per-hour")
    courts = [c["court"] for c in stats["per_court"]]
    assert per_hour["names"] == courts
    assert per_hour["data"] == [[h["by_court"].get(c, 0) for h in stats["per_hour"]]
                                for c in courts]
    # one instance serves one court (--court, default the host name): the simulated senders'
    # finished matches are all its own
    (only,) = stats["per_court"]
    assert only["court"] == default_court() and only["finished"] >= len(COURTS)
    win_types = drawn(page, "st-win-types")
    assert dict(zip(win_types["labels"], win_types["data"][0], strict=True)) == stats["win_types"]
    assert stats["win_types"].get("PTF", 0) >= 2
    rates = drawn(page, "st-rates")
    before = sum(sum(d) for d in rates["data"])
    assert before == sum(r["events"] for rs in stats["event_rates"]["per_court"].values()
                         for r in rs)
    # live: new events reach the chart through the push stream, without a click
    extra = [b"clk;1:00\r\n"] * 5
    app.send(extra, from_port=30000 + COURTS[0])
    wait_for(lambda: sum(sum(d) for d in chart(page, "st-rates")["data"]) >= before + 5,
             30, 0.2, "the event-rate chart to follow the push stream")
    shot(app, page, "tournament")
    goto_tab(page, "events")


OVERFLOW = """() => {
  const panel = document.getElementById('panel-statistics');
  const bad = [];
  if (document.documentElement.scrollWidth > innerWidth) bad.push('page');
  for (const el of panel.querySelectorAll('.card, .toolbar')) {
    if (el.offsetParent && el.scrollWidth > el.clientWidth + 1) bad.push(el.id || el.className);
  }
  const top = document.querySelector('.topbar');
  if (top.scrollWidth > top.clientWidth + 1) bad.push('topbar');
  return bad;
}"""


def test_statistics_screen_fits_1024_wide_without_overflow(browser_app):
    page = browser_app.page
    try:
        page.set_viewport_size({"width": 1024, "height": 700})
        goto_tab(page, "statistics")
        for view in ("match", "athlete", "tournament"):
            page.click(f"#st-view-{view}")
            # charts follow the new width when their resize observer fires: wait for it
            try:
                page.wait_for_function(f"() => ({OVERFLOW})().length === 0", timeout=5000)
            except PlaywrightTimeout:
                pass
            overflow = page.evaluate(OVERFLOW)
            assert overflow == [], f"{view} overflows: {overflow}"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"statistics-{view}-1024x700.png"))
    finally:
        page.set_viewport_size({"width": 1600, "height": 900})
        goto_tab(page, "events")


def test_rebuild_from_the_screen(browser_app):
    page = browser_app.page
    goto_tab(page, "statistics")
    before = browser_app.invoke("get_tournament_statistics")
    page.click("#st-rebuild")
    expect(page.locator(".toast-ok").last).to_contain_text("Statistics rebuilt", timeout=TIMEOUT)
    after = browser_app.invoke("get_tournament_statistics")
    for key in ("matches", "finished", "technique_mix", "win_types", "penalties"):
        assert after[key] == before[key]
    json.dumps(after)  # JSON-ready
    goto_tab(page, "events")


def test_a_browser_downloads_the_statistics_export(browser_app):
    """The statistics export goes the event export's way in a browser: POST
    /api/download/export_statistics, the file saved as a download, nothing to type."""
    page = browser_app.page
    sent = send_once(browser_app)
    goto_tab(page, "statistics")
    for hidden in ("#st-export-path", "#st-export-choose", "#st-export-overwrite"):
        expect(page.locator(hidden)).to_be_hidden()
    page.select_option("#st-export-kind", "matches")
    page.select_option("#st-export-format", "xlsx")
    with page.expect_download(timeout=TIMEOUT) as info:
        page.click("#st-export")
    download = info.value
    assert re.fullmatch(r"restrike-statistics-matches-\d{4}-\d{2}-\d{2}\.xlsx",
                        download.suggested_filename)
    ids = assert_match_sheet(download.path(),
                             lambda m: browser_app.invoke("get_match_statistics", [m]))
    for court in COURTS:
        (m,) = oracle(sent[court])
        assert newest_match_id(browser_app, m["number"]) in ids
    expect(page.locator(".toast-ok").last).to_contain_text(
        f"{len(ids)} rows written to the browser's downloads", timeout=TIMEOUT)
    wait_for(lambda: not list(browser_app.data_dir.glob(".download-*")), 10, 0.05,
             "the server's temporary copy removed")
    goto_tab(page, "events")


def test_the_window_saves_the_statistics_export_where_the_dialog_says(window_app, tmp_path):
    """In the window the statistics export goes the event export's way: Choose… opens the
    native "Save as" dialog, the file is written where it says, and an existing one is
    refused under the File field until Replace is ticked."""
    page = window_app.page
    sent = send_once(window_app)
    goto_tab(page, "statistics")
    page.select_option("#st-export-kind", "matches")
    page.select_option("#st-export-format", "xlsx")
    page.uncheck("#st-export-overwrite")
    display = Display()
    try:
        path = save_in(display, page, "#st-export-path", "#st-export-choose", tmp_path,
                       r"restrike-statistics-matches-\d{4}-\d{2}-\d{2}\.xlsx")
        page.click("#st-export")
        expect(page.locator(".toast-ok").last).to_contain_text(f"rows written to {path}",
                                                               timeout=TIMEOUT)
        ids = assert_match_sheet(path, lambda m: window_app.invoke("get_match_statistics", [m]))
        for court in COURTS:
            (m,) = oracle(sent[court])
            assert newest_match_id(window_app, m["number"]) in ids
        page.click("#st-export")  # again, without Replace
        expect(page.locator("#st-export-path-error")).to_have_text(
            "A file with this name exists. Tick “Replace” to overwrite it.", timeout=TIMEOUT)
    finally:
        display.close()
    page.fill("#st-export-path", "")
    goto_tab(page, "events")


def test_the_match_report_prints_on_one_a4_page(browser_app):
    page = browser_app.page
    sent = send_once(browser_app)
    (m,) = oracle(sent[COURTS[0]])
    match_id = newest_match_id(browser_app, m["number"])
    goto_tab(page, "statistics")
    open_match(page, match_id)
    want = expected_match(m)
    rows = page.locator("#st-tech-body tr")
    expect(rows).to_have_count(2 * (len(want["rounds"]) + 1))
    for i, k in enumerate(POINT_KEYS):  # the total row of blue
        expect(rows.nth(2 * len(want["rounds"])).locator("td").nth(2 + i)).to_have_text(
            str(want["total"]["blue"]["points_by_type"][k]))
    try:
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        page.emulate_media(media="screen")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 1, f"the report takes {pages} pages"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "statistics-match-report.pdf").write_bytes(pdf)
    page.emulate_media(media="print")
    try:
        page.screenshot(path=str(SCREENSHOTS / "statistics-match-report.png"), full_page=True)
        assert page.locator("#tab-statistics").is_hidden()  # the report alone
        expect(page.locator("#st-match-summary")).to_contain_text(m["athletes"][1])
    finally:
        page.emulate_media(media="screen")
    goto_tab(page, "events")
