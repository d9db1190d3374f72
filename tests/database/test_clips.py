"""Instant-replay clips in the database (migration 6, ``clips.py``): a clip's row, its match and
court, its timeline of the events received inside it; archival keeps the clip whole; cleanup of
archived events takes only their marks."""

from __future__ import annotations

import datetime as _dt

from restrike.host.timeutil import parse_iso, to_iso
from restrike.plugins.plugin_database import archive
from tests.database.conftest import Feed, match_datagrams, read, store


def _clip(db, feed: Feed, events, trigger_ev=None, seconds=20.0, **kw):
    saved_at = to_iso(parse_iso(events[-1].received_at) + _dt.timedelta(milliseconds=5))
    ref = None
    if trigger_ev is not None:
        ref = {"session_id": trigger_ev.session_id, "seq": trigger_ev.seq,
               "received_at": trigger_ev.received_at, "raw": trigger_ev.raw}
    return db.store_clip(path=kw.pop("path", "/clips/cam-1_a.mkv"), instance="cam-1",
                         duration_s=seconds, saved_at=saved_at, trigger="ch1",
                         trigger_ref=ref, **kw)


def test_a_clip_links_the_match_the_court_and_the_events_inside_it(db, feed):
    other = Feed("session-1", ("10.0.0.6", 50001))   # another court, same time
    events = feed.events(match_datagrams()[:14])
    store(db, events + other.events(match_datagrams("777")[:6]))
    challenge = feed.events(["ch1\r\n"])
    store(db, challenge)
    stored = _clip(db, feed, events + challenge, challenge[0], court="10.0.0.5:50000")
    match_id = read(db, "SELECT id FROM pss_matches WHERE match_number = '101'")[0][0]
    assert stored["match_id"] == match_id and stored["court"] == "10.0.0.5:50000"

    clip = db.clip(stored["id"])
    assert clip["match_number"] == "101" and clip["blue"]["short_name"] == "K. ARSLAN"
    assert clip["trigger_event_id"] == read(db, "SELECT MAX(id) FROM pss_events_v2")[0][0]
    # only this court's match: none of the other court's events, all of ours since its load
    raws = [m["raw"] for m in clip["events"]]
    assert "ch1" in raws and "mch;777" not in " ".join(raws)
    assert len(raws) == len(read(db, "SELECT id FROM pss_events_v2 WHERE match_id = ?",
                                 (match_id,)))
    offsets = [m["offset_ms"] for m in clip["events"]]
    assert offsets == sorted(offsets) and all(0 <= o <= 20_000 for o in offsets)
    assert db.clips(match_id=match_id)[0]["id"] == stored["id"]
    assert db.clips(athlete="arslan")[0]["id"] == stored["id"]
    assert db.clips(athlete="%") == []          # LIKE wildcards are literal
    assert clip["file_exists"] is False          # the path is not a file here: said, no error


def test_events_before_the_clip_are_not_on_its_timeline(db, feed):
    early = feed.events(match_datagrams()[:6])
    store(db, early)
    late = feed.events(["clk;1:59\r\n", "pt1;2\r\n"])
    store(db, late)
    # a 1 ms clip ending just after the last event: only the events of that last millisecond
    start_of_late = parse_iso(late[0].received_at)
    saved_at = to_iso(parse_iso(late[-1].received_at) + _dt.timedelta(microseconds=1))
    seconds = (parse_iso(saved_at) - start_of_late).total_seconds()
    stored = db.store_clip(path="/c/x.mkv", instance="cam-1", duration_s=seconds,
                           saved_at=saved_at, trigger="manual")
    assert {m["raw"] for m in db.clip(stored["id"])["events"]} == {"clk;1:59", "pt1;2"}


def test_archival_keeps_the_clip_and_its_timeline_cleanup_takes_only_the_marks(db, feed):
    events = feed.events(match_datagrams()[:14] + ["ch1\r\n"])
    store(db, events)
    stored = _clip(db, feed, events, events[-1])
    before = db.clip(stored["id"])
    later = _dt.datetime.now(_dt.UTC) + _dt.timedelta(days=3)
    moved = db.write(lambda conn: archive.archive_old_events(conn, 1, now=later))
    assert moved == len(events) and read(db, "SELECT COUNT(*) FROM pss_events_v2")[0][0] == 0
    after = db.clip(stored["id"])
    assert after["events"] == before["events"] and after["match_id"] == before["match_id"]
    db.write(lambda conn: archive.cleanup_old_archive_data(conn, 1, now=later))
    gone = db.clip(stored["id"])
    assert gone is not None and gone["events"] == [] and gone["path"] == before["path"]


def test_delete_clip_removes_the_row_and_its_timeline(db, feed):
    events = feed.events(match_datagrams()[:5])
    store(db, events)
    stored = _clip(db, feed, events)
    assert db.delete_clip(stored["id"]) == "/clips/cam-1_a.mkv"
    assert db.clip(stored["id"]) is None and db.delete_clip(stored["id"]) is None
    assert read(db, "SELECT COUNT(*) FROM recorded_video_events")[0][0] == 0
