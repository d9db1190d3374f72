"""Browser / headless mode: ``frontend/`` and the command bridge over HTTP (Starlette).

- ``POST /api/invoke/<command>``: JSON body, an array (positional) or an object (named) →
  200 with the JSON result, or 4xx/5xx with ``{"error": {type, message, field}}``.
- ``GET /api/events``: Server-Sent Events; each message is one push batch (a JSON array).
- Every request needs the token: ``Authorization: Bearer <token>``, ``?token=`` (which also sets
  an HttpOnly cookie, so the page's own files and EventSource work), or that cookie. Wrong or
  missing → 401 and nothing runs. Tokens are compared in constant time.
- Only files under ``frontend/`` are served; anything else is 404. Responses carry a strict
  Content-Security-Policy; requests from another origin (``Origin`` header) or for another
  ``Host`` (DNS rebinding: any name but loopback, the bind address, this machine's names and
  addresses and ``Settings.allowed_hosts``, whatever the bind address) are refused with 403.
- Connections, request heads and bodies are bounded in number, bytes and seconds
  (``host.http_guard``; the ``"http"`` section of the config file, ``get_http_stats``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import signal
import sys
import threading
import time

import pydantic
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from restrike.host.errors import status_of
from restrike.host.http_guard import (
    LOOPBACK_NAMES,
    HttpLimits,
    HttpStats,
    allowed_host_names,
    connection_limit,
    guarded_protocol,
    host_name,
    rate_limit_server_logs,
    read_json_body,
    write_stalled,
)
from restrike.host.http_ui import FRONTEND_DIR, public_response, ui_routes

log = logging.getLogger(__name__)

COOKIE = "restrike_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class SseHub:
    """Connects the push service's flusher thread to the asyncio SSE responses.

    Each client is a pulling sink of the push service: its response takes what waits only when
    the previous write has gone out, so a client that stops reading holds at most
    ``max_pending`` pushes (the oldest dropped and counted, the newest snapshot of each name
    kept) plus one write in the transport; the server disconnects it once its writes have been
    stuck for ``write_timeout`` (``host.http_guard``), counted in ``disconnected_stuck``.
    """

    def __init__(self, push, max_pending: int = 1_000):
        self._push = push
        self._max_pending = max_pending
        self.closing = threading.Event()

    async def stream(self, request: Request):
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def notify() -> None:  # flusher thread
            loop.call_soon_threadsafe(ready.set)

        sink = self._push.add_sink("sse", notify=notify, max_pending=self._max_pending)
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
                items = sink.take()
                if items:
                    yield f"data: {json.dumps(items, default=str)}\n\n"
        finally:
            self._push.remove_sink(sink, stuck=write_stalled(request.scope))


def create_http_app(app, token: str, allowed_hosts: set[str] | frozenset[str] | None = None,
                    limits: HttpLimits | None = None) -> Starlette:
    """The Starlette application serving ``frontend/`` and the bridge of ``app``.

    ``allowed_hosts``: the names a request's ``Host`` may give (a port is ignored; loopback
    names only when None); ``limits``: the request bounds (``host.http_guard.HttpLimits``).
    """
    limits = limits or HttpLimits()
    stats = HttpStats()
    hub = SseHub(app.push, limits.sse_max_pending)
    root = FRONTEND_DIR.resolve()
    allowed = frozenset(host_name(h) for h in (allowed_hosts or LOOPBACK_NAMES))
    if "get_http_stats" not in app.commands.names():
        app.commands.register("get_http_stats", stats.snapshot, plugin="host")

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
        if host_name(host) not in allowed:
            return True  # a DNS-rebinding page names its own host here
        origin = request.headers.get("origin")
        return origin is not None and origin.lower() != f"http://{host.lower()}"

    async def invoke_command(request: Request) -> Response:
        # The body is the arguments as the caller sent them; host.binder decides their shape.
        args, refused = await read_json_body(request, limits, stats)
        if refused is not None:
            return refused
        # where it runs (quick pool or the one job slot) is host.jobs' choice
        ok, value = await asyncio.wrap_future(app.jobs.submit(request.path_params["name"], args))
        if ok:
            return JSONResponse(value)
        return JSONResponse({"error": value}, status_of(value["type"]))

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
        *ui_routes(app),  # downloads, the icon (host.http_ui)
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
                rejection = public_response(request) or JSONResponse(  # a page, the icon
                    {"error": {"type": "unauthorized", "field": "token",
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
    http_app.state.http_stats = stats
    return http_app


def serve(app, host: str, port: int, token: str, *, on_ready=None) -> None:
    """Run the HTTP server on this thread until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn

    limits = http_limits(app.settings)
    allowed = allowed_host_names(host, getattr(app.settings, "allowed_hosts", []))
    http_app = create_http_app(app, token, allowed_hosts=allowed, limits=limits)
    limits = limits.model_copy(update={"max_connections":
                                       connection_limit(limits.max_connections)})
    rate_limit_server_logs()
    config = uvicorn.Config(http_app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=2, lifespan="off", loop="asyncio",
                            http=guarded_protocol(limits, http_app.state.http_stats))

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            http_app.state.sse_hub.closing.set()  # let open event streams end: a quick shutdown
            super().handle_exit(sig, frame)

    server = Server(config)
    # uvicorn re-raises the signal it caught once it has stopped, which would kill the process
    # before the plugins shut down; with these handlers in place that re-raise is harmless.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: log.info("shutting down"))
    if on_ready is not None:
        threading.Thread(target=_when_started, args=(server, on_ready), daemon=True).start()
    server.run()


def http_limits(settings) -> HttpLimits:
    """The ``"http"`` section of the config file, validated; one line and exit 2 if wrong."""
    try:
        return HttpLimits.model_validate(settings.config.get("http", {}))
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'http'}: {e['msg']}"
                             for e in exc.errors())
        print(f"restrike: config section http: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


def _when_started(server, on_ready) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)  # uvicorn offers no start event; this only delays a log line
    if server.started:
        on_ready()
