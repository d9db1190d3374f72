"""The push service: coalescing, rate limit, bounded and counted drops, a stuck sink."""

from __future__ import annotations

import threading

from restrike.host.push import PushService
from tests.conftest import wait_for


def test_bursts_coalesce_into_few_deliveries_in_order():
    push = PushService(rate=30)
    got: list[list[dict]] = []
    push.add_sink("t", got.append)
    push.start()
    try:
        for i in range(1000):
            push.emit("pss_event", i)
        wait_for(lambda: sum(len(b) for b in got) == 1000, 5)
    finally:
        push.stop()
    assert [item["payload"] for batch in got for item in batch] == list(range(1000))
    assert len(got) < 50  # 1000 emits, coalesced


def test_latest_only_keeps_the_newest_snapshot():
    push = PushService()
    got: list[list[dict]] = []
    push.add_sink("t", got.append)
    push.emit("pss_match_state", {"v": 1}, latest_only=True)
    push.emit("pss_event", "e")
    push.emit("pss_match_state", {"v": 2}, latest_only=True)
    push.flush()
    assert got == [[{"event": "pss_match_state", "payload": {"v": 2}},
                    {"event": "pss_event", "payload": "e"}]]


def test_a_stuck_sink_never_blocks_emit_and_its_drops_are_counted():
    push = PushService(rate=1000)
    release = threading.Event()
    fast: list = []
    stuck_calls = []

    def stuck(batch):
        stuck_calls.append(len(batch))
        release.wait(10)

    sink = push.add_sink("stuck", stuck, max_pending=100, threaded=True)
    push.add_sink("fast", fast.append)
    push.start()
    try:
        for i in range(5000):
            push.emit("x", i)  # returns at once although the stuck sink never finishes
        wait_for(lambda: sum(len(b) for b in fast) == 5000, 5)
        wait_for(lambda: sink.dropped > 0, 5)
    finally:
        release.set()
        push.stop()
    assert push.stats()["dropped"] >= sink.dropped > 0


def test_the_global_buffer_is_bounded():
    push = PushService(max_pending=10)
    for i in range(15):
        push.emit("x", i)
    assert push.stats()["dropped"] == 5


def test_stream_items_are_bounded_per_delivery_newest_kept_rest_counted():
    push = PushService()
    got: list[list[dict]] = []
    push.add_sink("t", got.append)
    rendered: list[int] = []

    def render(item: int) -> dict:
        rendered.append(item)
        return {"n": item}

    push.emit_items("pss_event", list(range(5)), limit=8, render=render)
    push.emit("pss_match_state", "s", latest_only=True)
    push.emit_items("pss_event", list(range(5, 12)), limit=8, render=render)
    push.flush()
    # one push for both emits, in the place of the first, with the 8 newest items
    assert got == [[{"event": "pss_event", "payload": [{"n": i} for i in range(4, 12)]},
                    {"event": "pss_match_state", "payload": "s"}]]
    assert rendered == list(range(4, 12))  # the trimmed ones were never rendered
    assert push.stats()["trimmed"] == {"pss_event": 4}

    push.emit_items("pss_event", [12], limit=8, render=render)  # a new delivery starts empty
    push.flush()
    assert got[-1] == [{"event": "pss_event", "payload": [{"n": 12}]}]
    assert push.stats()["trimmed"] == {"pss_event": 4}


def test_a_failing_renderer_drops_its_push_and_the_flusher_goes_on():
    push = PushService()
    got: list[list[dict]] = []
    push.add_sink("t", got.append)
    push.emit_items("pss_event", [1, 2], limit=10, render=lambda item: 1 / 0)
    push.emit("other", "kept")
    push.flush()
    assert got == [[{"event": "pss_event", "payload": []}, {"event": "other", "payload": "kept"}]]
    assert push.stats()["dropped"] == 1
