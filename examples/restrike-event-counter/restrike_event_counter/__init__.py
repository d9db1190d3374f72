"""Example restrike plugin: counts ingested PSS events by type.

Registered through the ``restrike`` entry-point group (see pyproject.toml). State lives in
``app.extensions`` so that several apps in one process keep separate counts.
"""

from collections import Counter
from threading import Lock

from restrike import hookimpl

KEY = "event_counter"


class _Counts:
    def __init__(self):
        self.lock = Lock()
        self.by_type = Counter()
        self.batches = 0


@hookimpl
def restrike_startup(app):
    app.extensions[KEY] = _Counts()


@hookimpl
def restrike_register_commands(register, app):
    def event_counter_stats() -> dict:
        """Events counted since start: ``{total, batches, by_type: {type: n}}``."""
        counts = app.extensions[KEY]
        with counts.lock:
            return {"total": sum(counts.by_type.values()), "batches": counts.batches,
                    "by_type": dict(counts.by_type)}

    register("event_counter_stats", event_counter_stats)


@hookimpl
def restrike_pss_events(events, app):
    counts = app.extensions[KEY]
    with counts.lock:
        counts.batches += 1
        counts.by_type.update(e.event.type for e in events)
