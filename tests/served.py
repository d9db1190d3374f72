"""The app's own HTTP bridge served from this process: a test keeps the ``App`` object in hand
(to take space from its writer, hold a job at a checkpoint) while a real HTTP client or chromium
talks to it."""

from __future__ import annotations

import threading

from tests.conftest import free_port, wait_for


def serve_in_thread(app, token: str):
    """``app``'s own HTTP bridge (``host.http.create_http_app``) under uvicorn on a thread of
    this process, once it listens: ``(server, thread, port)``; stop with
    ``server.should_exit = True`` and ``thread.join()``."""
    import uvicorn

    from restrike.host.http import create_http_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_http_app(app, token, allowed_hosts={f"127.0.0.1:{port}"}),
        host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, message="the HTTP server")
    return server, thread, port
