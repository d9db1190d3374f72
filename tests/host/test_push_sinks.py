"""A sink's bound keeps the newest snapshot of each name; a removed sink's drops stay counted."""

from __future__ import annotations

from restrike.host.push import PushService


def test_a_full_sink_drops_old_stream_pushes_but_keeps_the_newest_snapshot():
    push = PushService()
    woken = []
    sink = push.add_sink("sse", notify=lambda: woken.append(1), max_pending=10)
    push.emit("status", {"n": 0}, latest_only=True)
    push.flush()
    for i in range(1, 31):
        push.emit("x", i)
        push.flush()
    push.emit("status", {"n": 1}, latest_only=True)
    push.emit("x", 31)
    push.flush()
    assert woken and sink.pending == 11  # 10 stream pushes + 1 snapshot name
    items = sink.take()
    assert [i["payload"] for i in items if i["event"] == "x"] == list(range(22, 32))
    assert [i["payload"] for i in items if i["event"] == "status"] == [{"n": 1}]
    assert items[-2]["event"] == "status", "in the order emitted"
    assert sink.dropped == 21 and sink.delivered == 11


def test_drops_of_a_removed_sink_stay_counted_and_a_stuck_removal_is_counted():
    push = PushService()
    sink = push.add_sink("sse", notify=lambda: None, max_pending=10)
    for i in range(25):
        push.emit("x", i)
        push.flush()
    push.remove_sink(sink, stuck=True)
    push.remove_sink(sink, stuck=True)  # twice: counted once
    stats = push.stats()
    assert stats["dropped"] == 15 and stats["disconnected_stuck"] == 1 and stats["sinks"] == []
