"""The live screens against real UDP: events table, scoreboard, UDP panel (both transports)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import FIXTURES, dd, goto_tab, load_datagrams, parsed

pytestmark = pytest.mark.e2e

TIMEOUT = 30_000  # ms: two shared cores, a Qt window and a browser

ROWS_JS = """() => [...document.querySelectorAll('#ev-body tr.ev')].map((tr) => ({
  code: tr.dataset.code, type: tr.dataset.type, title: tr.title, cls: tr.className,
  round: tr.cells[0].textContent, time: tr.cells[1].textContent,
  desc: tr.cells[3].textContent,
  detail: tr.nextElementSibling && tr.nextElementSibling.classList.contains('ev-detail')
    ? tr.nextElementSibling.textContent : null,
}))"""


def show_all(page):
    """Events tab, every colour and kind, live feed."""
    goto_tab(page, "events")
    page.select_option("#ev-kind", "all")
    page.select_option("#ev-match", "live")
    for chip in page.locator("#panel-events .chip").all():
        if chip.get_attribute("aria-pressed") != "true":
            chip.click()


def test_odd_datagrams_are_shown_and_invalid_ones_marked(app):
    page = app.page
    show_all(page)
    datagrams = load_datagrams("odd_datagrams.jsonl")
    events = parsed(datagrams)
    app.send(datagrams)
    last = events[-1]
    # The newest row is the last message sent.
    expect(page.locator("#ev-body tr.ev").first).to_have_attribute("title", last.raw,
                                                                  timeout=TIMEOUT)
    rows = page.evaluate(ROWS_JS)[: len(events)][::-1]
    assert [r["code"] for r in rows] == [e.event.code for e in events]
    invalid = [(r, e) for r, e in zip(rows, events, strict=True) if e.event.type == "invalid"]
    unknown = [(r, e) for r, e in zip(rows, events, strict=True) if e.event.type == "unknown"]
    assert len(invalid) >= 3 and len(unknown) >= 2  # the fixture is made of odd ones
    for row, event in invalid:
        assert "ev-invalid" in row["cls"], row
        assert event.event.error in row["title"]          # on hover
        assert event.event.error in row["detail"]         # and in the detail row
    for row, _event in unknown:
        assert "ev-unknown" in row["cls"] and "ev-invalid" not in row["cls"], row
        assert row["detail"] is not None
    valid = [r for r, e in zip(rows, events, strict=True)
             if e.event.type not in ("invalid", "unknown")]
    assert valid and all("ev-invalid" not in r["cls"] and r["detail"] is None for r in valid)
    # The "problems" filter keeps exactly the invalid and unknown ones (of what is shown).
    page.select_option("#ev-kind", "problems")
    shown = page.evaluate(ROWS_JS)
    assert shown and all(r["type"] in ("invalid", "unknown") for r in shown)
    page.select_option("#ev-kind", "all")


def test_match_over_udp_fills_table_in_order_and_scoreboard(app):
    page = app.page
    show_all(page)
    expected = json.loads((FIXTURES / "match_basic.expect.json").read_text(encoding="utf-8"))
    datagrams = load_datagrams("match_basic.jsonl")
    assert len(datagrams) == expected["datagrams"]
    events = parsed(datagrams)
    app.send(datagrams)  # one burst: the UI must cope with trimmed pushes (it refills)

    tail = [[e.event.code, e.raw] for e in events][-500:]
    page.wait_for_function(
        """(tail) => {
          const rows = [...document.querySelectorAll('#ev-body tr.ev')]
            .slice(0, tail.length).reverse();
          return rows.length === tail.length
            && rows.every((tr, i) => tr.dataset.code === tail[i][0] && tr.title === tail[i][1]);
        }""", arg=tail, timeout=TIMEOUT)
    expect(page.locator("#ev-count")).to_have_text("500")
    # Status line: the round and clock of the match's end.
    last_clock = [e.event.clock for e in events if e.event.type == "clock"][-1]
    expect(page.locator("#ev-round")).to_have_text(str(expected["round"]), timeout=TIMEOUT)
    expect(page.locator("#ev-time")).to_have_text(last_clock)
    rows = page.evaluate(ROWS_JS)
    score_row = next(r for r in rows if r["code"] == "sc1")
    assert score_row["round"] == "3" and score_row["time"] == "0:02"  # sc1;14;sc2;5 at 0:02
    colours = {r["code"]: r["cls"] for r in rows}
    assert "ev-blue" in colours["pt1"] and "ev-red" in colours["hl2"]
    assert "ev-yellow" in colours["clk"]
    # Colour filter: without blue, no blue row is left (and the others stay).
    page.click("#panel-events .chip-blue")
    page.wait_for_function("() => document.querySelectorAll('#ev-body tr.ev-blue').length === 0")
    assert page.locator("#ev-body tr.ev-red").count() > 0
    page.click("#panel-events .chip-blue")
    expect(page.locator("#ev-count")).to_have_text("500")

    goto_tab(page, "scoreboard")
    for side in ("blue", "red"):
        athlete = expected[side]
        expect(page.locator(f"#sb-{side}-short")).to_have_text(athlete["short"], timeout=TIMEOUT)
        expect(page.locator(f"#sb-{side}-long")).to_have_text(athlete["long"])
        expect(page.locator(f"#sb-{side}-country")).to_have_text(athlete["country"])
        expect(page.locator(f"#sb-{side}-score")).to_have_text(
            str(expected["current_scores"][side]))
        expect(page.locator(f"#sb-{side}-warnings")).to_have_text(str(expected["warnings"][side]))
        expect(page.locator(f"#sb-rounds-{side} td")).to_have_text(
            [str(v) for v in expected["round_scores"][side]])
    expect(page.locator("#sb-rounds-winner td")).to_have_text(
        [{1: "BLUE", 2: "RED"}[w] for w in expected["round_winners"]])
    expect(page.locator("#sb-round")).to_have_text(f"Round {expected['round']} of 3")
    winner = page.locator("#sb-winner")
    expect(winner).to_be_visible()
    expect(winner).to_contain_text(expected["winner_name"])
    expect(winner).to_contain_text(expected["classification"])
    expect(winner).to_contain_text(expected["winner_side"].lower())
    expect(page.locator("#sb-match")).to_contain_text(f"Match {expected['match_number']}")
    # Challenges as the app's match state has them (the fixture has some).
    from restrike.pss.match import MatchState
    state = MatchState()
    for ns, event in enumerate(events):
        state.apply(event.event, ns)
    challenges = state.snapshot()["challenges"]
    assert challenges
    items = page.locator("#sb-challenges li.ch")
    expect(items).to_have_count(len(challenges))
    for item, challenge in zip(items.all(), challenges, strict=True):
        expect(item).to_contain_text(challenge["state"])
    # The match colours of the configuration reach the name bars (mch: #0000ff / #ff0000).
    assert page.eval_on_selector("#sb-blue-bar", "e => getComputedStyle(e).backgroundColor") \
        == "rgb(0, 0, 255)"

    # The stored match can be reloaded from the database in the events table.
    goto_tab(page, "events")
    page.click("#ev-matches-refresh")
    option = page.locator("#ev-match option", has_text=f"#{expected['match_number']}").first
    expect(option).to_be_attached(timeout=TIMEOUT)
    page.select_option("#ev-match", option.get_attribute("value"))
    # Every event from pre;FightLoaded on belongs to the match (hel; came before it).
    expect(page.locator("#ev-source")).to_have_text(f"stored match: {len(events) - 1} events",
                                                    timeout=TIMEOUT)
    stored = page.evaluate(ROWS_JS)[::-1]
    assert [[r["code"], r["title"]] for r in stored] == tail
    page.select_option("#ev-match", "live")
    expect(page.locator("#ev-source")).to_have_text("live")


def test_stop_stops_ingest_and_start_resumes(app):
    page = app.page
    show_all(page)
    goto_tab(page, "udp")
    status = page.locator("#udp-status")
    expect(status).to_contain_text(f"Listening on 127.0.0.1:{app.udp_port}", timeout=TIMEOUT)
    received = dd(page, "#udp-counters", "received")
    expect(received).not_to_have_text("", timeout=TIMEOUT)

    page.click("#udp-stop")
    expect(status).to_have_text("Stopped", timeout=TIMEOUT)
    expect(page.locator("#top-udp")).to_have_text("UDP stopped")
    before = app.invoke("get_udp_stats")["datagrams"]
    app.send([b"zzq;sent-while-stopped"])

    page.click("#udp-start")
    expect(status).to_contain_text(f"Listening on 127.0.0.1:{app.udp_port}", timeout=TIMEOUT)
    app.send([b"zzq;sent-after-restart"])
    goto_tab(page, "events")
    expect(page.locator("#ev-body tr.ev").first).to_have_attribute(
        "title", "Unknown message, kept as received:\nzzq;sent-after-restart", timeout=TIMEOUT)
    titles = [r["title"] for r in page.evaluate(ROWS_JS)]
    assert not any("sent-while-stopped" in t for t in titles)
    recent = app.invoke("pss_get_events")
    assert not any("sent-while-stopped" in e["raw_data"] for e in recent)
    # a new session: its counter holds the one datagram sent after the restart
    assert app.invoke("get_udp_stats")["datagrams"] == 1
    assert before >= 1


def test_datagrams_over_the_parser_limits_are_counted_on_the_udp_screen(app):
    page = app.page
    goto_tab(page, "udp")
    over_message = dd(page, "#udp-counters", "over_message_limits")
    over_cap = dd(page, "#udp-counters", "over_message_cap")
    before = app.invoke("get_udp_stats")["over_limits"]  # the app is shared by the tests
    expect(over_message).to_have_text(str(before["max_fields_per_message"]
                                          + before["max_field_length"]), timeout=TIMEOUT)
    app.send([("zz00001;" + "ab;" * 20_000).encode(), "\r\n".join(["w"] * 21_835).encode()])
    expect(over_message).to_have_text(str(before["max_fields_per_message"]
                                          + before["max_field_length"] + 1), timeout=TIMEOUT)
    expect(over_cap).to_have_text(str(before["max_messages_per_datagram"] + 1), timeout=TIMEOUT)


def test_bad_port_is_shown_next_to_the_field_and_changes_nothing(app):
    page = app.page
    goto_tab(page, "udp")
    expect(page.locator("#udp-status")).to_contain_text("Listening", timeout=TIMEOUT)
    page.fill("#udp-port", "70000")
    page.click("#udp-start")
    error = page.locator("#udp-port-error")
    expect(error).to_have_text("Port must be a whole number from 1 to 65535.", timeout=TIMEOUT)
    expect(page.locator("#udp-port")).to_have_attribute("aria-invalid", "true")
    page.fill("#udp-bind", "not-an-address")
    page.fill("#udp-port", str(app.udp_port))
    page.click("#udp-start")
    expect(page.locator("#udp-bind-error")).to_have_text(
        "Bind address must be an address of this computer, e.g. 0.0.0.0 for all of them.",
        timeout=TIMEOUT)
    expect(error).to_be_hidden()
    settings = app.invoke("get_udp_settings")
    assert (settings["bind"], settings["port"]) == ("127.0.0.1", app.udp_port)
    page.fill("#udp-bind", "127.0.0.1")
    expect(page.locator("#udp-status")).to_contain_text(f"127.0.0.1:{app.udp_port}")


def test_simulated_match_is_marked_and_can_be_stopped(app):
    page = app.page
    goto_tab(page, "udp")
    expect(page.locator("#udp-status")).to_contain_text("Listening", timeout=TIMEOUT)
    before = app.invoke("get_udp_stats")["events"]
    page.click("#udp-simulate")
    banner = page.locator("#udp-sim-banner")
    expect(banner).to_be_visible(timeout=TIMEOUT)
    expect(banner).to_contain_text("SIMULATED")
    expect(page.locator("#top-udp")).to_contain_text("SIMULATED")
    expect(page.locator("#udp-sessions-body td.sim").first).to_have_text("SIMULATED",
                                                                         timeout=TIMEOUT)
    page.wait_for_function(
        "(n) => window.restrikeInvoke('get_udp_stats').then((s) => s.events > n + 20)",
        arg=before, timeout=TIMEOUT, polling=250)
    page.click("#udp-simulate-stop")
    expect(page.locator("#udp-simulate")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#udp-simulate-stop")).to_be_hidden()
