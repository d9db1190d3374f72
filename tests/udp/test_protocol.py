"""The PSS parser: every stream of shared/protocol.md, every odd fixture, and fuzzing."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from restrike.pss import describe as describing
from restrike.pss.describe import describe
from restrike.pss.ingested import IngestedEvent, ingest_datagram
from restrike.pss.protocol import (
    DEFAULT_LIMITS,
    EVENT_ADAPTER,
    EVENT_MODELS,
    Limits,
    parse_cache_stats,
    parse_datagram,
    parse_text,
)
from restrike.pss.sides import athlete_side


def check(events, expected: list[dict]) -> None:
    """Every expected field of every event, in order, and no extra events."""
    assert len(events) == len(expected), [e.model_dump() for e in events]
    for event, want in zip(events, expected, strict=True):
        got = event.model_dump()
        for key, value in want.items():
            assert got[key] == value, f"{key}: {got[key]!r} != {value!r} in {got}"


MCH = ("mch;214;Quarterfinal;M- 68 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;7f3c21aa;Senior;3;120;"
       "cntDown;22;14")

# One or more cases per row of the stream table in shared/protocol.md.
STREAM_TABLE = [
    # pt1, pt2
    ("pt1;3;", [dict(type="points", code="pt1", athlete=1, point_type=3, raw="pt1;3;")]),
    ("pt2;1\r\n", [dict(type="points", code="pt2", athlete=2, point_type=1, raw="pt2;1")]),
    ("pt1;5", [dict(type="points", athlete=1, point_type=5)]),
    # hl1, hl2 (and glued)
    ("hl1;45\r\n", [dict(type="hit_level", code="hl1", athlete=1, level=45)]),
    ("hl2;100", [dict(type="hit_level", code="hl2", athlete=2, level=100)]),
    ("hl1;50hl2;40\r\n", [dict(type="hit_level", athlete=1, level=50, raw="hl1;50"),
                          dict(type="hit_level", athlete=2, level=40, raw="hl2;40")]),
    ("hl2;7;hl1;9", [dict(type="hit_level", athlete=2, level=7, raw="hl2;7"),
                     dict(type="hit_level", athlete=1, level=9, raw="hl1;9")]),
    # wg1;a;wg2;b
    ("wg1;1;wg2;0\r\n", [dict(type="warnings", code="wg1", athlete=None, blue=1, red=0)]),
    ("wg2;3;", [dict(type="warnings", code="wg2", athlete=2, blue=None, red=3)]),
    ("wg1;4", [dict(type="warnings", athlete=1, blue=4, red=None)]),
    ("wg2;2;wg1;5", [dict(type="warnings", blue=5, red=2)]),
    # ij0, ij1, ij2
    ("ij0;1:00;show", [dict(type="injury", code="ij0", athlete=0, clock="1:00", seconds=60,
                            action="show")]),
    ("ij1;0:59\r\n", [dict(type="injury", athlete=1, clock="0:59", seconds=59, action=None)]),
    ("ij2;45;hide", [dict(type="injury", athlete=2, clock="45", seconds=45, action="hide")]),
    ("ij1;1:00;reset", [dict(type="injury", athlete=1, seconds=60, action="reset")]),
    # ch0, ch1, ch2
    ("ch1;", [dict(type="challenge", code="ch1", athlete=1, accepted=None, won=None)]),
    ("ch0;", [dict(type="challenge", code="ch0", athlete=0, accepted=None, won=None)]),
    ("ch1;1;0", [dict(type="challenge", athlete=1, accepted=1, won=0)]),
    ("ch2;1;1\r\n", [dict(type="challenge", athlete=2, accepted=1, won=1)]),
    ("ch2;0", [dict(type="challenge", athlete=2, accepted=0, won=None)]),
    ("ch2;-1", [dict(type="challenge", athlete=2, accepted=-1, won=None)]),
    # brk
    ("brk;0:59\r\n", [dict(type="break", code="brk", clock="0:59", seconds=59, action=None,
                           athlete=None)]),
    ("brk;0:00;stopEnd", [dict(type="break", seconds=0, action="stopEnd")]),
    ("brk;0:30;stop", [dict(type="break", seconds=30, action="stop")]),
    # wrd
    ("wrd;rd1;1;rd2;0;rd3;0\r\n", [dict(type="winner_rounds", code="wrd",
                                        winners={1: 1, 2: 0, 3: 0})]),
    ("wrd;rd3;2;rd1;1", [dict(type="winner_rounds", winners={1: 1, 3: 2})]),
    # wmh
    ("wmh;N. DESMOND;2-1 PTF", [dict(type="winner", code="wmh", name="N. DESMOND",
                                     classification="2-1 PTF")]),
    ("wmh;N. DESMOND", [dict(type="winner", name="N. DESMOND", classification=None)]),
    # win
    ("win;BLUE\r\n", [dict(type="winner_side", code="win", side="BLUE", athlete=1)]),
    ("win;RED", [dict(type="winner_side", side="RED", athlete=2)]),
    # at1..at2
    ("at1;K. ARSLAN;Kerem ARSLAN;TUR;at2;J. MORENO;Jaime MORENO GARCÍA;ESP;\r\n",
     [dict(type="athletes", code="at1", athlete=None,
           blue={"short": "K. ARSLAN", "long": "Kerem ARSLAN", "country": "TUR"},
           red={"short": "J. MORENO", "long": "Jaime MORENO GARCÍA", "country": "ESP"})]),
    ("at2;J. MORENO;Jaime MORENO;ESP", [dict(type="athletes", code="at2", athlete=2, blue=None,
                                             red={"short": "J. MORENO", "long": "Jaime MORENO",
                                                  "country": "ESP"})]),
    # mch
    (MCH + "\r\n", [dict(type="match_config", code="mch", number="214", phase="Quarterfinal",
                         category="M- 68 kg", doc_rounds=None, blue_bg="#0000ff",
                         blue_fg="#FFFFFF", red_bg="#ff0000", red_fg="#FFFFFF",
                         match_id="7f3c21aa", division="Senior", rounds=3, round_duration=120,
                         countdown="cntDown", body_level="22", head_level="14", extra=[],
                         complete=True)]),
    (MCH.replace(";;", ";3;") + ";1;x", [dict(type="match_config", doc_rounds="3",
                                              extra=["1", "x"], complete=True)]),
    # s11..s23
    ("s11;3;s21;0;s12;0;s22;0;s13;0;s23;0\r\n",
     [dict(type="scores", code="s11", athlete=None, blue={1: 3, 2: 0, 3: 0},
           red={1: 0, 2: 0, 3: 0})]),
    ("s22;7", [dict(type="scores", code="s22", athlete=2, blue={}, red={2: 7})]),
    ("s14;1;s24;0", [dict(type="scores", blue={4: 1}, red={4: 0})]),
    # sc1, sc2
    ("sc1;3;sc2;0\r\n", [dict(type="current_scores", code="sc1", blue=3, red=0, athlete=None)]),
    ("sc1;4", [dict(type="current_scores", blue=4, red=None, athlete=1)]),
    ("sc2;9", [dict(type="current_scores", blue=None, red=9, athlete=2)]),
    # avt
    ("avt;0\r\n", [dict(type="avt", code="avt", value=0)]),
    # clk
    ("clk;2:00\r\n", [dict(type="clock", code="clk", clock="2:00", seconds=120, action=None)]),
    ("clk;2:00;start", [dict(type="clock", seconds=120, action="start")]),
    ("clk;1:50;stop", [dict(type="clock", seconds=110, action="stop")]),
    ("clk;1:23;corr\r\n", [dict(type="clock", seconds=83, action="corr")]),
    ("clk;0:00;stopEnd", [dict(type="clock", seconds=0, action="stopEnd")]),
    ("clk;45", [dict(type="clock", clock="45", seconds=45)]),
    # rnd
    ("rnd;1\r\n", [dict(type="round", code="rnd", round=1)]),
    ("rnd;4", [dict(type="round", round=4)]),
    # pre, rdy
    ("pre;FightLoaded\r\n", [dict(type="fight_loaded", code="pre", text="FightLoaded")]),
    ("rdy;FightReady\r\n", [dict(type="fight_ready", code="rdy", text="FightReady")]),
    # sup
    ("sup;2", [dict(type="supremacy", code="sup", value=2)]),
    # to1, to2
    ("to1;0:45\r\n", [dict(type="time_out", code="to1", athlete=1, clock="0:45", seconds=45)]),
    ("to2;", [dict(type="time_out", code="to2", athlete=2, clock=None, seconds=None)]),
    # ref
    ("ref;Ana SILVA;BRA;ju1;Li WEI;CHN;ju2;Tom BAKER;GBR;ju3;Ona KIM;KOR",
     [dict(type="referees", code="ref", officials=[
         {"role": "ref", "name": "Ana SILVA", "country": "BRA"},
         {"role": "ju1", "name": "Li WEI", "country": "CHN"},
         {"role": "ju2", "name": "Tom BAKER", "country": "GBR"},
         {"role": "ju3", "name": "Ona KIM", "country": "KOR"}])]),
    # hwt
    ("hwt;1\r\n", [dict(type="hardware_test", code="hwt", value=1)]),
    ("hwt;0", [dict(type="hardware_test", value=0)]),
    ("hwt;3", [dict(type="hardware_test", value=3)]),
    # hel, bye
    ("hel;\r\n", [dict(type="hello", code="hel", athlete=None)]),
    ("bye;", [dict(type="bye", code="bye")]),
    # inlb, insl, inth
    ("inlb;80:\r\n", [dict(type="scoreboard_setting", code="inlb", setting="brightness",
                           value="80", number=80)]),
    ("insl;1:", [dict(type="scoreboard_setting", code="insl", setting="on_off", number=1)]),
    ("inth;500:", [dict(type="scoreboard_setting", code="inth", setting="time_ms", number=500)]),
    # rst, rsr, rcl, vid, anything else
    ("rst;", [dict(type="unknown", code="rst", kind="code", values=[])]),
    ("rsr;1", [dict(type="unknown", code="rsr", kind="code", values=["1"])]),
    ("rcl;", [dict(type="unknown", code="rcl", kind="code")]),
    ("vid;1;2", [dict(type="unknown", code="vid", kind="code", values=["1", "2"])]),
    # status line
    ("Udp Port 6000 connected;", [dict(type="unknown", code="", kind="status",
                                       raw="Udp Port 6000 connected;")]),
]


@pytest.mark.parametrize("datagram, expected", STREAM_TABLE, ids=[c[0][:24] for c in STREAM_TABLE])
def test_stream_table(datagram, expected):
    check(parse_datagram(datagram.encode("utf-8")), expected)


def test_stream_table_covers_every_event_model():
    covered = {e["type"] for _, exp in STREAM_TABLE for e in exp}
    assert covered | {"invalid"} == set(EVENT_MODELS)


# Keyed by the fixture's datagram bytes, so a new fixture line fails until it has expectations.
ODD_EXPECTED = {
    b"pt1;3;": [dict(type="points", athlete=1, point_type=3, raw="pt1;3;", code="pt1")],
    b"pt2;5\r\n": [dict(type="points", athlete=2, point_type=5, raw="pt2;5")],
    b"hl1;50hl2;40\r\n": [dict(type="hit_level", athlete=1, level=50, raw="hl1;50"),
                          dict(type="hit_level", athlete=2, level=40, raw="hl2;40")],
    b"clk;1:23;corr\r\n": [dict(type="clock", clock="1:23", seconds=83, action="corr")],
    b"brk;59;": [dict(type="break", clock="59", seconds=59, action=None)],
    b"ch1;-1;": [dict(type="challenge", athlete=1, accepted=-1, won=None)],
    b"ch0;": [dict(type="challenge", athlete=0, accepted=None, won=None)],
    b"wg2;3;": [dict(type="warnings", athlete=2, blue=None, red=3)],
    b"to1;0:45\r\n": [dict(type="time_out", athlete=1, clock="0:45", seconds=45, action=None)],
    b"ref;Ana SILVA;BRA;ju1;Li WEI;CHN;ju2;Tom BAKER;GBR;ju3;Ona KIM;KOR\r\n": [
        dict(type="referees", officials=[
            {"role": "ref", "name": "Ana SILVA", "country": "BRA"},
            {"role": "ju1", "name": "Li WEI", "country": "CHN"},
            {"role": "ju2", "name": "Tom BAKER", "country": "GBR"},
            {"role": "ju3", "name": "Ona KIM", "country": "KOR"}])],
    b"hwt;1\r\n": [dict(type="hardware_test", value=1)],
    b"inlb;80:\r\n": [dict(type="scoreboard_setting", setting="brightness", value="80",
                           number=80)],
    b"Udp Port 6000 connected;": [dict(type="unknown", kind="status", code="",
                                       raw="Udp Port 6000 connected;")],
    b"rst;": [dict(type="unknown", kind="code", code="rst", raw="rst;")],
    b"clk;2:00;start\r\nsc1;0;sc2;0\r\n": [
        dict(type="clock", seconds=120, action="start", raw="clk;2:00;start"),
        dict(type="current_scores", blue=0, red=0, raw="sc1;0;sc2;0")],
    b"": [dict(type="invalid", code="", raw="", error="datagram is empty")],
    b";;;;": [dict(type="invalid", code="", raw=";;;;",
                   error="message has no stream code (empty or only ';')")],
    b"pt1;9;": [dict(type="invalid", code="pt1", athlete=1, raw="pt1;9;",
                     error="pt1: point type must be 1..5, got '9'")],
    b"hl2;abc;": [dict(type="invalid", code="hl2", athlete=2,
                       error="hl2: hit level must be an integer 1..100, got 'abc'")],
    b"mch;101;Round of 16": [dict(type="match_config", number="101", phase="Round of 16",
                                  category=None, rounds=None, round_duration=None,
                                  countdown=None, complete=False)],
    b"pt1;\xff\xfe3;": [dict(type="invalid", code="pt1", athlete=1, raw="pt1;\ufffd\ufffd3;",
                             error="pt1: point type must be an integer 1..5, got "
                                   "'\ufffd\ufffd3'")],
    # one field of 9000 characters: beyond max_field_length, kept raw and unparsed
    b"x" * 9000: [dict(type="invalid", code="", raw="x" * 9000, limit="max_field_length")],
    "at1;N. O'BRIEN;Niamh O'BRIEN;IRL;at2;Z. ŻÓŁTY;Zofia ŻÓŁTY;POL;".encode(): [
        dict(type="athletes",
             blue={"short": "N. O'BRIEN", "long": "Niamh O'BRIEN", "country": "IRL"},
             red={"short": "Z. ŻÓŁTY", "long": "Zofia ŻÓŁTY", "country": "POL"})],
    b"wmh;Robert'); DROP TABLE pss_events_v2;--;2-0 PTF": [
        dict(type="winner", name="Robert'); DROP TABLE pss_events_v2;--",
             classification="2-0 PTF")],
}


def test_every_odd_fixture_field_by_field(odd_datagrams):
    assert len(odd_datagrams) == len(ODD_EXPECTED)
    for row in odd_datagrams:
        assert row["data"] in ODD_EXPECTED, f"no expectation for fixture line {row['line']}"
        check(parse_datagram(row["data"]), ODD_EXPECTED[row["data"]])


INVALID = [
    ("pt1;", "pt1: point type is missing"),
    ("pt2;0", "pt2: point type must be 1..5, got '0'"),
    ("hl1;101", "hl1: hit level must be 1..100, got '101'"),
    ("hl1;1_0", "hl1: hit level must be an integer 1..100, got '1_0'"),
    ("wg1;x;wg2;0", "wg1: wg1 warning count must be an integer 0..10, got 'x'"),
    ("wg1;11", "wg1: wg1 warning count must be 0..10, got '11'"),
    ("wg1;;wg2;1", "wg1: value of wg1 is missing"),
    ("sc1;3;foo;2", "sc1: unexpected token 'foo'"),
    ("ij1;9:99", "ij1: injury clock seconds must be 0..59, got '9:99'"),
    ("ch1;2", "ch1: accepted flag must be -1..1, got '2'"),
    ("ch1;1;x", "ch1: won flag must be an integer 0..1, got 'x'"),
    ("brk;soon", "brk: break clock must be m:ss or ss, got 'soon'"),
    ("wrd;rd1;5", "wrd: rd1 winner must be 0..2, got '5'"),
    ("wrd;", "wrd: round winners (rd1..) are missing"),
    ("wmh;", "wmh: winner name is missing"),
    ("win;GREEN", "win: side must be BLUE or RED, got 'GREEN'"),
    ("at1;;long;TUR", "at1: short name of at1 is missing"),
    ("mch;;Final", "mch: match number is missing"),
    ("mch;1;F;C;;a;b;c;d;id;Senior;three;120", "mch: rounds must be an integer 0..99, got 'three'"),
    ("mch;1;F;C;;a;b;c;d;id;Senior;100;120", "mch: rounds must be 0..99, got '100'"),
    ("mch;1;F;C;;a;b;c;d;id;Senior;100000000000000000000;120",
     "mch: rounds must be 0..99, got '100000000000000000000'"),
    ("mch;1;F;C;;a;b;c;d;id;Senior;3;3601", "mch: round duration must be 0..3600, got '3601'"),
    ("mch;1;F;C;;a;b;c;d;id;Senior;3;-1", "mch: round duration must be 0..3600, got '-1'"),
    ("s11;-1", "s11: s11 score must be >= 0, got '-1'"),
    ("avt;", "avt: value is missing"),
    ("clk;", "clk: clock is missing"),
    ("clk;1:2:3", "clk: clock must be m:ss or ss, got '1:2:3'"),
    ("rnd;x", "rnd: round must be an integer 0..99, got 'x'"),
    ("sup;", "sup: value is missing"),
    ("to2;abc", "to2: time-out clock must be m:ss or ss, got 'abc'"),
    ("ref;", "ref: name of ref is missing"),
    ("hwt;-1", "hwt: value must be >= 0, got '-1'"),
    ("inth;", "inth: value is missing"),
]


@pytest.mark.parametrize("message, error", INVALID, ids=[m for m, _ in INVALID])
def test_invalid_messages_name_the_field_and_reason(message, error):
    (event,) = parse_datagram(message.encode())
    assert event.type == "invalid"
    assert event.error == error
    assert event.raw == message
    assert event.code == message.split(";")[0]


@pytest.mark.parametrize("framing", ["pt1;3", "pt1;3;", "pt1;3\r\n", "pt1;3;\r\n", "pt1;3\n",
                                     "pt1;3;\n", "pt1;3\r"])
def test_framing_variants_parse_the_same(framing):
    (event,) = parse_datagram(framing.encode())
    assert (event.type, event.athlete, event.point_type) == ("points", 1, 3)
    assert event.raw == framing.rstrip("\r\n")


def test_several_messages_one_event_per_line_in_order():
    events = parse_datagram(b"hl1;45\r\npt1;3\npt2;1\r\n\r\nsc1;3;sc2;1;")
    assert [e.type for e in events] == ["hit_level", "points", "points", "current_scores"]
    assert [e.raw for e in events] == ["hl1;45", "pt1;3", "pt2;1", "sc1;3;sc2;1;"]


def test_code_is_matched_case_insensitively_as_fallback():
    (event,) = parse_datagram(b"PT1;3")
    assert (event.type, event.code, event.raw) == ("points", "pt1", "PT1;3")


def test_unknown_mch_fields_stay_strings():
    (event,) = parse_datagram(b"mch;7;Final;W- 49 kg;;#00f;#fff;#f00;#fff;id;Cadet;2;90;cntUp;"
                              b"a;b;c;d")
    assert (event.rounds, event.round_duration, event.countdown) == (2, 90, "cntUp")
    assert (event.body_level, event.head_level, event.extra) == ("a", "b", ["c", "d"])


def test_match_config_numbers_at_their_bounds_are_accepted():
    (event,) = parse_datagram(b"mch;7;Final;W- 49 kg;;#00f;#fff;#f00;#fff;id;Cadet;99;3600")
    assert (event.type, event.rounds, event.round_duration) == ("match_config", 99, 3600)
    (event,) = parse_datagram(b"mch;7;Final;W- 49 kg;;#00f;#fff;#f00;#fff;id;Cadet;0;0")
    assert (event.type, event.rounds, event.round_duration) == ("match_config", 0, 0)


@pytest.mark.parametrize("event", [
    {"type": "match_config", "raw": "", "number": "1", "rounds": 100},
    {"type": "match_config", "raw": "", "number": "1", "round_duration": 3601},
    {"type": "round", "raw": "", "round": 100},
    {"type": "scores", "raw": "", "blue": {"100": 1}},
    {"type": "scores", "raw": "", "red": {"0": 1}},
    {"type": "winner_rounds", "raw": "", "winners": {"1000000": 1}},
], ids=["rounds", "round_duration", "round", "score-round", "score-round-0", "winner-round"])
def test_the_models_bound_every_number_that_sizes_per_round_data(event):
    """Events also come back from storage and from plugins: the bound is in the model, not
    only in the parser."""
    with pytest.raises(Exception, match=r"less than or equal|greater than or equal"):
        EVENT_ADAPTER.validate_python(event)


def test_datagram_of_64_kib_is_kept_whole_in_at_most_cap_plus_one_events():
    data = (b"clk;1:00\r\n" * 6553)[:65507]  # the largest UDP payload, cut mid-message
    events = parse_datagram(data)
    cap = DEFAULT_LIMITS.max_messages_per_datagram
    assert len(events) == cap + 1
    assert "\r\n".join(e.raw for e in events) == data.decode()  # nothing lost
    assert {e.type for e in events[:cap]} == {"clock"}
    assert events[cap].type == "invalid" and events[cap].limit == "max_messages_per_datagram"
    assert f"max_messages_per_datagram ({cap})" in events[cap].error


@pytest.mark.parametrize("text, limit", [
    ("zz00001;" + ";".join(["ab"] * 20_000), "max_fields_per_message"),
    ("Udp Port 6000 connected " + "y" * 300, "max_field_length"),
    ("hl1;5" * 100, "max_fields_per_message"),  # a glued line is checked before it is split
])
def test_a_message_beyond_a_limit_is_one_raw_invalid_event_naming_it(text, limit):
    events = parse_text(text)
    assert len(events) == 1
    event = events[0]
    assert (event.type, event.raw, event.limit) == ("invalid", text, limit)
    assert limit in event.error
    assert len(event.__dict__) == len(type(event).model_fields)  # no list of values kept


def test_glued_parts_count_towards_the_message_cap():
    text = "pt1;3\r\nhl1;5hl2;6;pt1;3hl1;7\r\nclk;1:00"
    events = parse_text(text, Limits(max_messages_per_datagram=3))
    assert [e.raw for e in events] == ["pt1;3", "hl1;5", "hl2;6", "pt1;3hl1;7\r\nclk;1:00"]
    assert events[-1].limit == "max_messages_per_datagram"


def test_the_parse_cache_is_bounded_in_bytes():
    before = parse_cache_stats()
    for i in range(20_000):
        parse_text(f"clk;{i // 60}:{i % 60:02d}")
        parse_text(f"zz{i};" + "q" * 200)
    after = parse_cache_stats()
    assert after["bytes"] <= after["max_bytes"]
    assert after["clears"] > before["clears"]
    parse_text("zz;" + "a" * 600)
    assert parse_cache_stats()["too_long"] == after["too_long"] + 1


def test_every_event_round_trips_through_the_adapter(odd_datagrams):
    for row in odd_datagrams:
        for event in parse_datagram(row["data"]):
            as_json = EVENT_ADAPTER.dump_json(event)
            again = EVENT_ADAPTER.validate_json(as_json)
            assert again == event
            assert json.loads(as_json)["type"] == event.type


def test_events_are_immutable():
    (event,) = parse_datagram(b"pt1;3")
    with pytest.raises(ValidationError, match="frozen"):
        event.point_type = 5


DESCRIPTIONS = [
    ("pt1;3", "Blue scores 3 (head)"),
    ("pt2;4", "Red scores 4 (technical body)"),
    ("hl2;40", "Red hit level 40"),
    ("wg1;1;wg2;0", "Warnings: blue 1, red 0"),
    ("ij1;0:55;hide", "Injury time blue 0:55 (hide)"),
    ("ch2;1;0", "Red challenge accepted, lost"),
    ("ch0;", "Referee challenge requested"),
    ("ch1;-1", "Blue challenge cancelled"),
    ("brk;0:59", "Break 0:59"),
    ("wrd;rd1;1;rd2;2;rd3;0", "Round winners: R1 blue, R2 red, R3 none"),
    ("wmh;K. ARSLAN;2-1 PTF", "Winner K. ARSLAN (2-1 PTF)"),
    ("win;RED", "Winner: red"),
    ("at1;A;Aa;TUR;at2;B;Bb;ESP", "Athletes: A (TUR) vs B (ESP)"),
    (MCH, "Match 214: Quarterfinal, M- 68 kg"),
    ("s11;1;s21;2;s12;3;s22;4", "Round scores: blue 1/3, red 2/4"),
    ("sc1;4;sc2;2", "Score blue 4, red 2"),
    ("clk;1:50;stop", "Clock 1:50 (stop)"),
    ("rnd;2", "Round 2"),
    ("pre;FightLoaded", "Match loaded"),
    ("rdy;FightReady", "Match ready"),
    ("to1;0:45", "Time-out blue 0:45"),
    ("hwt;1", "Hardware test open"),
    ("hel;", "Sender connected"),
    ("bye;", "Sender closing"),
    ("inlb;80:", "Scoreboard brightness 80"),
    ("rst;", "Unknown message rst"),
    ("Udp Port 6000 connected;", "Status: Udp Port 6000 connected;"),
    ("pt1;9", "Invalid: pt1: point type must be 1..5, got '9'"),
]


@pytest.mark.parametrize("message, text", DESCRIPTIONS, ids=[m[:20] for m, _ in DESCRIPTIONS])
def test_describe(message, text):
    (event,) = parse_datagram(message.encode())
    assert describe(event) == text


def test_describe_covers_every_stream_table_event():
    for datagram, _ in STREAM_TABLE:
        for event in parse_datagram(datagram.encode()):
            text = describe(event)
            assert text and text != event.type


def test_every_event_type_has_a_description_row():
    assert set(describing.DESCRIPTIONS) == set(EVENT_MODELS)


def test_athlete_side():
    assert [athlete_side(a) for a in (1, 2, 0, None, 7)] == ["blue", "red", "referee", None, None]


# ------------------------------------------------------------------------------------ ingest


def test_ingest_wraps_each_message_with_its_datagram_facts():
    events = ingest_datagram(b"hl1;50hl2;40\r\n", session_id="s1", seq=7,
                             received_at="2026-11-28T12:00:00.000000Z", received_ns=123,
                             source_ip="10.0.0.5", source_port=6001)
    assert [type(e) for e in events] == [IngestedEvent, IngestedEvent]
    assert [(e.index, e.raw, e.event.level) for e in events] == [(0, "hl1;50", 50),
                                                                 (1, "hl2;40", 40)]
    first = events[0]
    assert (first.session_id, first.seq, first.received_at, first.received_ns, first.source_ip,
            first.source_port, first.raw_b64) == ("s1", 7, "2026-11-28T12:00:00.000000Z", 123,
                                                   "10.0.0.5", 6001, None)
    with pytest.raises(AttributeError):
        first.seq = 8


def test_ingest_keeps_non_utf8_bytes_in_base64():
    data = base64.b64decode("cHQxO//+Mzs=")
    (event,) = ingest_datagram(data, session_id="s", seq=1, received_at="t", received_ns=0,
                               source_ip="127.0.0.1", source_port=1)
    assert base64.b64decode(event.raw_b64) == data
    assert event.event.type == "invalid"
    assert event.raw == "pt1;\ufffd\ufffd3;"


def test_ingest_of_empty_datagram_still_yields_an_event():
    (event,) = ingest_datagram(b"", session_id="s", seq=1, received_at="t", received_ns=0,
                               source_ip="127.0.0.1", source_port=1)
    assert (event.index, event.raw, event.event.type) == (0, "", "invalid")


# ---------------------------------------------------------------------------------- fuzzing

VOCAB = sorted({
    "pt1", "pt2", "hl1", "hl2", "wg1", "wg2", "ij0", "ij1", "ij2", "ch0", "ch1", "ch2", "brk",
    "wrd", "rd1", "rd2", "rd3", "wmh", "win", "at1", "at2", "mch", "s11", "s21", "s12", "s22",
    "s13", "s23", "sc1", "sc2", "avt", "clk", "rnd", "pre", "rdy", "sup", "to1", "to2", "ref",
    "ju1", "ju2", "hwt", "hel", "bye", "inlb", "insl", "inth", "rst", "vid",
    "0", "1", "2", "3", "5", "9", "10", "-1", "100", "101", "abc", "", " ", "2:00", "0:59",
    "1:2:3", "9:99", "59", "start", "stop", "corr", "stopEnd", "show", "hide", "reset", "BLUE",
    "RED", "FightLoaded", "FightReady", "cntDown", "#0000ff", "K. ARSLAN", "ŻÓŁTY", "80:",
    "2-1 PTF", "50hl2", "3hl1", "\r\n", "\n", "\r", "\ufffd", "Udp Port 6000 connected",
})
token_soup = st.lists(st.sampled_from(VOCAB), max_size=40).map(";".join)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_parse_contract(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    events = parse_datagram(data)
    assert len(events) >= 1
    for event in events:
        assert event.raw in text
        assert event.type in EVENT_MODELS
        if event.type == "invalid":
            assert event.error
        describe(event)  # the UI must be able to show anything the parser produced


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_arbitrary_bytes(data):
    assert_parse_contract(data)


@FUZZ
@given(token_soup, st.sampled_from(["", ";", "\r\n", ";\r\n"]))
def test_fuzz_token_soup(soup, ending):
    assert_parse_contract((soup + ending).encode("utf-8"))


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_text_without_surrogates(text):
    assert_parse_contract(text.encode("utf-8"))
    events = parse_text(text)
    assert events and all(e.raw in text for e in events)


def test_a_repeated_line_shares_its_immutable_event_and_never_a_mutable_one():
    first, again = parse_text("clk;1:59\r\n")[0], parse_text("clk;1:59\r\n")[0]
    assert first is again and first.raw == "clk;1:59"  # parsed once: the feed repeats itself
    other = parse_text("clk;1:58\r\n")[0]
    assert other.clock == "1:58" and other is not first
    # an event holding a list (here an unknown code's values) is parsed afresh each time
    unknown_1, unknown_2 = parse_text("zzz;1;2\r\n")[0], parse_text("zzz;1;2\r\n")[0]
    assert unknown_1 == unknown_2 and unknown_1 is not unknown_2
    assert isinstance(unknown_1.values, list)
