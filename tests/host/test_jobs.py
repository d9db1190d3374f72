"""``host.jobs``: where commands run, with real functions, a real registry and real threads."""

from __future__ import annotations

import threading

import pytest

from restrike.host.commands import CommandRegistry, runs_as_job
from restrike.host.jobs import Jobs


@pytest.fixture
def gated():
    """A registry with a quick and a long command, both held until ``gate`` is set; each
    records the thread it ran on."""
    gate, started = threading.Event(), threading.Semaphore(0)
    threads: list[str] = []

    def held(tag: str) -> str:
        threads.append(threading.current_thread().name)
        started.release()
        assert gate.wait(30)
        return tag

    def wait_quick(tag: str) -> str:
        """Held until the test opens the gate."""
        return held(tag)

    @runs_as_job
    def wait_long(tag: str) -> str:
        """Held until the test opens the gate (a job)."""
        return held(tag)

    registry = CommandRegistry()
    registry.register("wait_quick", wait_quick)
    registry.register("wait_long", wait_long)
    yield registry, gate, started, threads
    gate.set()


def test_quick_commands_and_jobs_run_on_separate_threads(gated):
    registry, gate, started, threads = gated
    jobs = Jobs(registry, quick_workers=2)
    try:
        job = jobs.submit("wait_long", ["long"])
        assert started.acquire(timeout=10)
        quick = [jobs.submit("wait_quick", [str(i)]) for i in range(2)]
        for _ in quick:
            assert started.acquire(timeout=10)  # both run while the job is held
        assert sorted(threads) == ["cmd-job_0", "cmd-quick_0", "cmd-quick_1"]
        assert jobs.status()["quick"]["in_progress"] == 2
        gate.set()
        assert job.result(10) == (True, "long")
        assert [f.result(10) for f in quick] == [(True, "0"), (True, "1")]
    finally:
        jobs.close()


def test_quick_commands_beyond_the_bound_are_refused_and_counted(gated):
    registry, gate, started, _ = gated
    jobs = Jobs(registry, quick_workers=1, quick_max_waiting=1)
    try:
        running = jobs.submit("wait_quick", ["a"])
        assert started.acquire(timeout=10)
        waiting = jobs.submit("wait_quick", ["b"])
        refused = jobs.submit("wait_quick", ["c"]).result(1)
        assert refused[0] is False and refused[1]["type"] == "unavailable"
        assert "2 commands are already running or waiting" in refused[1]["message"]
        status = jobs.status()
        assert status["quick_refused"] == 1 and status["quick"]["waiting"] == 1
        gate.set()
        assert running.result(10) == (True, "a") and waiting.result(10) == (True, "b")
        assert jobs.submit("wait_quick", ["d"]).result(10) == (True, "d")
    finally:
        jobs.close()


def test_a_second_job_is_refused_naming_the_first_and_its_progress(gated):
    registry, gate, started, _ = gated
    jobs = Jobs(registry)
    try:
        first = jobs.submit("wait_long", ["first"])
        assert started.acquire(timeout=10)
        jobs.report(250, 1000)
        ok, error = jobs.call("wait_long", ["second"])
        assert not ok and error["type"] == "conflict"
        assert "wait_long (running for" in error["message"]
        assert "250 of 1,000 done, 25.0 %" in error["message"]
        gate.set()
        assert first.result(10) == (True, "first")
        assert jobs.call("wait_long", ["third"]) == (True, "third")
        assert jobs.status()["jobs_run"] == 2 and jobs.status()["conflicts"] == 1
    finally:
        jobs.close()
