"""Where commands run: quick ones on a small pool, long ones as jobs, one job at a time.

A long command (marked ``@runs_as_job`` in ``host.commands``: archive, restore, cleanup,
optimize, vacuum, integrity check, export...) must never make a status command wait. So:

- **Jobs** run on the single ``cmd-job`` thread, one at a time. A second job asked for while
  one runs is refused at once with ``conflict`` naming the running job and its progress (it is
  never queued: a queue of maintenance behind maintenance is what froze the app for 17 s). The
  caller waits for its own job's result, so ``archive_old_events(days)`` still returns the
  number archived. A job reports progress with ``app.jobs.report(done, total)``;
  ``get_job_status`` and the ``job_progress`` push show it.
- **Quick commands** (everything else) run on the ``cmd-quick`` pool (``QUICK_WORKERS``
  threads), which no job ever occupies. Over HTTP that replaces asyncio's default pool, which
  long commands used to fill. At most ``QUICK_MAX_WAITING`` quick commands wait for a worker;
  beyond that a command is refused with ``unavailable`` and counted (``quick.refused``).
- The window (pywebview) already runs each call on its own thread: a quick command runs right
  there; a job still goes through the one ``cmd-job`` slot (pywebview's threads are unbounded,
  so without it two archivals would both start and queue on the database writer).

Arguments are validated before any of this: a bad call gets ``validation_error``, not
``conflict``, and changes nothing. Nothing here knows what a job does.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from restrike.host.commands import CommandRegistry
from restrike.host.errors import CommandError, Conflict, Unavailable
from restrike.host.timeutil import now_iso

log = logging.getLogger(__name__)

T = TypeVar("T")

QUICK_WORKERS = 8
"""Threads answering quick commands over HTTP (a quick command that writes may wait up to the
database's ``write_timeout`` for the writer, so a few more than the cores)."""
QUICK_MAX_WAITING = 256
"""Quick commands accepted while all workers are busy; more are refused (``unavailable``)."""

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, {type, message, field})``: what the bridges send."""


def outcome(name: str, run: Callable[[], Any]) -> Outcome:
    """Run ``run()`` and turn its result or error into an ``Outcome``. Never raises."""
    try:
        return True, run()
    except CommandError as exc:
        return False, exc.to_dict()
    except Exception:  # the registry maps command failures; this is a bug in the host itself
        log.exception("bridge failure calling %s", name)
        return False, {"type": "internal_error", "message": f"{name} failed", "field": None}


@dataclass
class Job:
    """The running job: its command name and what it last reported."""

    id: int
    name: str
    started_at: str
    started: float = field(default_factory=time.monotonic)
    done: int | None = None
    total: int | None = None

    def status(self) -> dict:
        percent = None
        if self.total is not None and self.done is not None:
            percent = round(self.done * 100.0 / self.total, 1) if self.total else 100.0
        return {"id": self.id, "name": self.name, "started_at": self.started_at,
                "elapsed_s": round(time.monotonic() - self.started, 3),
                "done": self.done, "total": self.total, "percent": percent}

    def describe(self) -> str:
        """``archive_old_events (running for 3.2 s, 40,000 of 100,000 done, 40.0 %)``."""
        s = self.status()
        progress = ""
        if s["total"] is not None:
            progress = f", {s['done']:,} of {s['total']:,} done, {s['percent']} %"
        return f"{self.name} (running for {s['elapsed_s']:.1f} s{progress})"


class Jobs:
    """The executors of one app (``app.jobs``); see the module docstring."""

    def __init__(self, registry: CommandRegistry, *, quick_workers: int = QUICK_WORKERS,
                 quick_max_waiting: int = QUICK_MAX_WAITING):
        self._registry = registry
        self._quick = concurrent.futures.ThreadPoolExecutor(quick_workers, "cmd-quick")
        self._job_thread = concurrent.futures.ThreadPoolExecutor(1, "cmd-job")
        self._quick_workers = quick_workers
        self._quick_max = quick_workers + quick_max_waiting
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._last: dict | None = None
        self._listeners: list[Callable[[dict], None]] = []
        self._ids = 0
        self._quick_in = 0  # quick commands submitted and not finished
        self._counts = {"jobs_run": 0, "conflicts": 0, "quick_refused": 0}

    # -- running commands ------------------------------------------------------------------

    def submit(self, name: str, args: Any) -> concurrent.futures.Future:
        """Start command ``name`` where it belongs; the future's result is an ``Outcome``
        (it never raises). HTTP awaits it; errors found before it runs (bad arguments,
        ``conflict``, a full quick pool) are already in the returned future."""
        try:
            command, run = self._registry.prepare(name, args)
        except CommandError as exc:
            return _resolved((False, exc.to_dict()))
        return self._start(name, command.job, run)

    def call(self, name: str, args: Any) -> Outcome:
        """Run command ``name`` for a caller that has its own thread (the window's bridge):
        a quick command runs on the calling thread, a job on the job thread (waited for)."""
        try:
            command, run = self._registry.prepare(name, args)
        except CommandError as exc:
            return False, exc.to_dict()
        if not command.job:
            return outcome(name, run)
        return self._start(name, True, run).result()

    def _start(self, name: str, job: bool, run: Callable[[], Any]) -> concurrent.futures.Future:
        try:
            if job:
                admitted = self._admit(name)
                return self._job_thread.submit(self._run_job, admitted, run)
            self._admit_quick(name)
            return self._quick.submit(self._run_quick, name, run)
        except CommandError as exc:
            return _resolved((False, exc.to_dict()))
        except RuntimeError:  # the executor was shut down: the app is stopping
            self._release(job)
            return _resolved((False, {"type": "unavailable", "field": None,
                                      "message": f"Not started ({name}): restrike is stopping"}))

    def _release(self, job: bool) -> None:
        with self._lock:
            if job:
                self._current = None
            else:
                self._quick_in -= 1

    def _admit(self, name: str) -> Job:
        with self._lock:
            running = self._current
            if running is not None:
                self._counts["conflicts"] += 1
                raise Conflict(f"Not started ({name}): {running.describe()} is still "
                               "running; one long operation runs at a time, try again when "
                               "it has finished")
            self._ids += 1
            self._current = Job(self._ids, name, now_iso())
            job = self._current
        self._notify(job.status())
        return job

    def _admit_quick(self, name: str) -> None:
        with self._lock:
            if self._quick_in >= self._quick_max:
                self._counts["quick_refused"] += 1
                raise Unavailable(f"Not started ({name}): {self._quick_in} commands are "
                                  "already running or waiting; try again in a moment")
            self._quick_in += 1

    def _run_quick(self, name: str, run: Callable[[], Any]) -> Outcome:
        try:
            return outcome(name, run)
        finally:
            self._release(job=False)

    def run(self, name: str, work: Callable[[], T]) -> T:
        """Run ``work()`` as the job ``name`` on the calling thread: for work a plugin starts
        by itself (the automatic archival's timer), which must take the one job slot like a
        command does. ``Conflict`` at once while another job runs (never queued); progress
        reports and ``get_job_status`` as for any job. Returns its result or raises its error.
        """
        job = self._admit(name)
        failure: dict | None = {"type": "internal_error", "field": None,
                                "message": f"{name} failed"}
        try:
            result = work()
            failure = None
            return result
        except CommandError as exc:
            failure = exc.to_dict()
            raise
        finally:
            self._finish(job, failure is None, failure)

    def _run_job(self, job: Job, run: Callable[[], Any]) -> Outcome:
        result = (False, {"type": "internal_error", "field": None,
                          "message": f"{job.name} failed"})
        try:
            result = outcome(job.name, run)
        finally:
            ok, value = result
            self._finish(job, ok, None if ok else value)
        return result

    def _finish(self, job: Job, ok: bool, error: dict | None) -> None:
        """The job ended: free the slot, keep it as ``last``, tell the listeners."""
        status = job.status()
        with self._lock:
            self._current = None
            self._counts["jobs_run"] += 1
            self._last = {"id": job.id, "name": job.name, "started_at": job.started_at,
                          "finished_at": now_iso(), "duration_s": status["elapsed_s"],
                          "ok": ok, "error": error}
        self._notify({**status, "finished": True, "ok": ok})

    # -- progress --------------------------------------------------------------------------

    def report(self, done: int, total: int | None) -> None:
        """The running job has done ``done`` of ``total`` steps (any thread may call it, e.g.
        the database writer between chunks). Ignored when no job runs. Listeners run right
        here."""
        with self._lock:
            job = self._current
            if job is None:
                return
            job.done, job.total = int(done), None if total is None else int(total)
            status = job.status()
        self._notify(status)

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        """Call ``listener(status)`` when a job starts, reports progress and finishes (then
        with ``finished: True`` and ``ok``), on the thread that caused it - for a report, the
        thread doing the work, which waits for it: a listener must return quickly. The app
        uses it to push ``job_progress`` to the page. Its errors are logged, never raised."""
        self._listeners.append(listener)

    def _notify(self, status: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                log.exception("job listener failed")

    def status(self) -> dict:
        """What ``get_job_status`` returns (see there)."""
        with self._lock:
            running = self._current.status() if self._current is not None else None
            return {"running": running, "last": dict(self._last) if self._last else None,
                    **self._counts,
                    "quick": {"workers": self._quick_workers,
                              "in_progress": min(self._quick_in, self._quick_workers),
                              "waiting": max(0, self._quick_in - self._quick_workers),
                              "max_waiting": self._quick_max - self._quick_workers}}

    def close(self) -> None:
        """Stop taking commands; a job still running finishes on its thread."""
        self._quick.shutdown(wait=False, cancel_futures=True)
        self._job_thread.shutdown(wait=False, cancel_futures=True)


def _resolved(value: Outcome) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future
