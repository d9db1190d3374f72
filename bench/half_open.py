"""How fast the operator's command is answered while 2,000 half-open connections are held.

Starts the real app headless on a temporary data dir, opens ``--connections`` connections that
send ``GET / HTTP/1.1\\r\\nHost: …\\r\\n`` and never finish their head, then times ``--calls``
``list_plugins`` calls over HTTP (a new connection each, like a browser tab opening). Fails
(exit 1) when the slowest call takes 1 s or more.

    python bench/half_open.py [--connections 2000] [--calls 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 512)),
                                                hard))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restrike", "--headless", "--data-dir", f"{tmp}/data",
             "--udp-bind", "127.0.0.1", "--udp-port", "0", "--http-port", str(port),
             "--token", TOKEN, "--log-level", "WARNING"],
            cwd=REPO, env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}/api/invoke"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.post(f"{base}/list_plugins", json=[], headers=auth).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("the app did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
            held = []
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(head)
                held.append(s)
            times = []
            for _ in range(args.calls):
                started = time.perf_counter()
                answer = httpx.post(f"{base}/list_plugins", json=[], headers=auth, timeout=30)
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            stats = httpx.post(f"{base}/get_http_stats", json=[], headers=auth).json()
            times.sort()
            print(f"{args.connections} half-open connections held "
                  f"(server open connections: {stats['open_connections']}); list_plugins over "
                  f"{args.calls} calls: p50 {times[len(times) // 2] * 1000:.1f} ms, "
                  f"max {times[-1] * 1000:.1f} ms")
            for s in held:
                s.close()
            return 0 if times[-1] < 1.0 else 1
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
