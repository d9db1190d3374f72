"""Instant-replay benchmark: challenge datagram → clip stored → mpv showing it; CPU and memory.

    xvfb-run -a .venv/bin/python bench/replay.py                 # 20 challenges
    xvfb-run -a .venv/bin/python bench/replay.py --challenges 5 --gap 2

A real headless OBS Studio (the tests' ``ObsProcess``: 320x180 at 15 fps, a 20 s replay buffer)
and the real app in this process (database, UDP and OBS plugins, a temporary data dir, autoplay
on, mpv with ``--ao=null``). A simulated court loads a match, then sends one ``ch1`` every
``--gap`` seconds. Per challenge:

- *stored*: from the ``sendto`` of the challenge datagram to its ``recorded_videos`` row being
  readable (polled every 5 ms through the reader pool);
- *first frame*: from the same ``sendto`` to mpv reporting a playback position over its IPC
  (``time-pos`` is set once the first frame is decoded and shown).

Then, with the replay buffer running and nothing else happening for ``--idle`` s: CPU (% of
one core) and RSS of this process (restrike) and of OBS. The machine may be shared: numbers are
indicative.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restrike.host.app import App
from restrike.host.settings import Settings
from tests.obs.obs_process import ObsProcess


def wait(cond, timeout, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("timed out")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between challenges")
    parser.add_argument("--buffer", type=int, default=20, help="OBS replay buffer, seconds")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of CPU sampling")
    args = parser.parse_args()

    obs = ObsProcess(rb_seconds=args.buffer).start()
    tmp = tempfile.TemporaryDirectory(prefix="restrike-bench-replay-")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    udp.close()
    app = App(Settings(data_dir=Path(tmp.name), udp_bind="127.0.0.1", udp_port=port,
                       config={"obs": {"instances": [obs.instance()],
                                       "replay_seconds": args.buffer, "start_at_seconds": 1,
                                       "autoplay": True, "player_args": ["--ao=null"]}}),
              load_entrypoints=False).start()
    try:
        svc, db = app.extensions["obs"], app.extensions["database"]
        wait(svc.instances["cam-1"].ready.is_set, 60, 0.05)
        court = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", port)
        for line in ("pre;FightLoaded", "at1;A. BLUE;Ann BLUE;KOR;at2;B. RED;Bo RED;FRA;",
                     ("mch;1;Final;F- 49 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;x;Senior;3;120;"
                      "cntDown;22;14"), "rnd;1", "clk;2:00;start"):
            court.sendto(line.encode() + b"\r\n", target)
        stored, shown = [], []
        for i in range(args.challenges):
            known = {c["id"] for c in db.clips(limit=500)}
            t0 = time.monotonic()
            court.sendto(b"ch1\r\n", target)
            clip = wait(lambda known=known: next(
                (c for c in db.clips(limit=5) if c["id"] not in known), None), 30)
            stored.append(time.monotonic() - t0)

            def showing(clip=clip):
                st = svc.player.state()
                return st["clip_id"] == clip["id"] and st["position"] is not None

            wait(showing, 30)
            shown.append(time.monotonic() - t0)
            print(f"challenge {i + 1:2d}: stored {stored[-1] * 1000:7.0f} ms, first frame "
                  f"{shown[-1] * 1000:7.0f} ms", flush=True)
            time.sleep(args.gap)  # pacing of the challenges, not synchronisation
        svc.player.stop()
        me, obs_proc = psutil.Process(), psutil.Process(obs.proc.pid)
        me.cpu_percent(), obs_proc.cpu_percent()
        time.sleep(args.idle)
        cpu_me, cpu_obs = me.cpu_percent(), obs_proc.cpu_percent()
        rss_me, rss_obs = me.memory_info().rss, obs_proc.memory_info().rss
        print()
        print(f"| measure ({args.challenges} challenges) | p50 | p99 | max |")
        print("|---|---:|---:|---:|")
        for name, values in (("challenge datagram → clip row stored", stored),
                             ("challenge datagram → mpv shows the first frame", shown)):
            print(f"| {name} | {statistics.median(values):.2f} s | {pct(values, 99):.2f} s | "
                  f"{max(values):.2f} s |")
        print()
        print(f"idle with the replay buffer running ({args.idle:g} s): restrike "
              f"{cpu_me:.1f} % CPU, {rss_me / 2**20:.0f} MiB RSS; OBS {cpu_obs:.1f} % CPU, "
              f"{rss_obs / 2**20:.0f} MiB RSS")
        return 0
    finally:
        app.stop()
        obs.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
