"""Browser / headless mode: ``frontend/`` and the command bridge over HTTP (Starlette).

- ``POST /api/invoke/<command>``: JSON body, an array (positional) or an object (named) →
  200 with the JSON result, or 4xx/5xx with ``{"error": {type, message, field}}``.
- ``GET /api/events``: Server-Sent Events; each message is one push batch (a JSON array).
- Every request needs the token: ``Authorization: Bearer <token>``, ``?token=`` (which also sets
  an HttpOnly cookie, so the page's own files and EventSource work), or that cookie. Wrong or
  missing → 401 and nothing runs. Tokens are compared in constant time.
- Only files under ``frontend/`` are served; anything else is 404. Responses carry a strict
  Content-Security-Policy; requests from another origin (``Origin`` header) or for another
  ``Host`` (DNS rebinding) are refused with 403.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import signal
import threading
import time
from collections import deque
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.responses import StreamingResponse
from starlette.routing import Route

from host.bridge import js_arguments

log = logging.getLogger(__name__)

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
COOKIE = "restrike_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class SseHub:
    """Connects the push service's flusher thread to the asyncio SSE responses."""

    def __init__(self, push, max_pending: int = 5_000):
        self._push = push
        self._max_pending = max_pending
        self.closing = threading.Event()

    async def stream(self, request: Request):
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        pending: deque[str] = deque()

        def deliver(batch: list[dict]) -> None:  # flusher thread
            pending.append(json.dumps(batch, default=str))
            loop.call_soon_threadsafe(ready.set)

        sink = self._push.add_sink("sse", deliver, max_pending=self._max_pending)
        try:
            yield ": connected\n\n"
            while not self.closing.is_set():
                try:
                    await asyncio.wait_for(ready.wait(), timeout=1.0)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                ready.clear()
                while pending:
                    yield f"data: {pending.popleft()}\n\n"
        finally:
            self._push.remove_sink(sink)


def create_http_app(app, token: str, allowed_hosts: set[str] | None = None) -> Starlette:
    """The Starlette application serving ``frontend/`` and the bridge of ``app``."""
    hub = SseHub(app.push)
    root = FRONTEND_DIR.resolve()

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        candidates = []
        if given.lower().startswith("bearer "):
            candidates.append(given[7:].strip())
        if "token" in request.query_params:
            candidates.append(request.query_params["token"])
        if COOKIE in request.cookies:
            candidates.append(request.cookies[COOKIE])
        return any(hmac.compare_digest(c.encode(), token.encode()) for c in candidates)

    def foreign(request: Request) -> bool:
        host = request.headers.get("host", "")
        if allowed_hosts is not None and host not in allowed_hosts:
            return True  # a DNS-rebinding page names its own host here
        origin = request.headers.get("origin")
        return origin is not None and origin != f"http://{host}"

    async def invoke_command(request: Request) -> Response:
        raw = await request.body()
        try:
            args = json.loads(raw) if raw.strip() else None
        except ValueError:
            return JSONResponse({"error": {"type": "validation_error", "field": None,
                                           "message": "request body is not valid JSON"}}, 400)
        name = request.path_params["name"]
        if isinstance(args, list):  # the page's api.x(...) shim: same rule as the window bridge
            args = js_arguments(app.commands, name, tuple(args))
        ok, value = await asyncio.wrap_future(app.jobs.submit(name, args))  # host/jobs.py
        if ok:
            return JSONResponse(value)
        status = {"validation_error": 422, "not_found": 404, "conflict": 409,
                  "unavailable": 503}.get(value["type"], 500)
        return JSONResponse({"error": value}, status)

    async def events(request: Request) -> Response:
        return StreamingResponse(hub.stream(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def static(request: Request) -> Response:
        rel = request.path_params.get("path") or "index.html"
        try:
            target = (root / rel).resolve()
            if target.is_dir():
                target = target / "index.html"
            found = target.is_relative_to(root) and target.is_file()
        except (OSError, ValueError):  # a NUL byte (%00), a name too long: no such file
            found = False
        if not found:
            return PlainTextResponse("not found", 404)
        return FileResponse(target, headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/api/invoke/{name}", invoke_command, methods=["POST"]),
        Route("/api/events", events, methods=["GET"]),
        Route("/{path:path}", static, methods=["GET", "HEAD"]),
    ]
    security_headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    class Guard:
        """Refuse foreign or unauthenticated requests before any route runs; add headers."""

        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            request = Request(scope)
            rejection: Response | None = None
            if foreign(request):
                rejection = PlainTextResponse("cross-origin request refused", 403)
            elif not authorised(request):
                rejection = JSONResponse({"error": {"type": "unauthorized", "field": "token",
                                                    "message": "a valid token is required"}}, 401)
            set_cookie = "token" in request.query_params and rejection is None

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", [])) + security_headers
                    if set_cookie:
                        headers.append((b"set-cookie", f"{COOKIE}={token}; HttpOnly; "
                                        "SameSite=Strict; Path=/".encode()))
                    message = {**message, "headers": headers}
                await send(message)

            target = rejection if rejection is not None else self.inner
            await target(scope, receive, send_with_headers)

    http_app = Starlette(routes=routes, middleware=[Middleware(Guard)])

    http_app.state.sse_hub = hub
    return http_app


def serve(app, host: str, port: int, token: str, *, on_ready=None) -> None:
    """Run the HTTP server on this thread until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn

    allowed = {f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}
    http_app = create_http_app(app, token, allowed_hosts=allowed if host != "0.0.0.0" else None)
    config = uvicorn.Config(http_app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=2, lifespan="off")
    server = uvicorn.Server(config)
    original = server.handle_exit

    def handle_exit(sig, frame):
        http_app.state.sse_hub.closing.set()  # let open event streams end so shutdown is quick
        original(sig, frame)

    server.handle_exit = handle_exit
    # uvicorn re-raises the signal it caught once it has stopped, which would kill the process
    # before the plugins shut down; with these handlers in place that re-raise is harmless.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: log.info("shutting down"))
    if on_ready is not None:
        threading.Thread(target=_when_started, args=(server, on_ready), daemon=True).start()
    server.run()


def _when_started(server, on_ready) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)  # uvicorn offers no start event; this only delays a log line
    if server.started:
        on_ready()
