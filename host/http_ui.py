"""What the HTTP mode adds for a person at a browser: a page instead of raw JSON when the token
is missing, the favicon, and file downloads.

- ``GET /`` (or ``/index.html``) without the token: a small HTML page (401) saying how to open
  the app (the address printed at start-up, which ends in ``?token=…``). Nothing else is shown.
- ``GET /favicon.ico``: the icon, with or without the token (it reveals nothing).
- ``POST /api/download/<command>?filename=NAME``: runs a command that writes a file (it takes a
  ``path`` argument; the JSON body holds its other, named arguments) into a fresh directory in
  the data directory, then streams that file as an attachment named ``NAME`` and removes it.
  Errors are the command's, as from ``/api/invoke``; the command's (small) result is in the
  ``X-Command-Result`` header. The file is complete before the first
  byte is sent, so a failure is always an error response, never a truncated download.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from restrike.host.errors import CommandError, InvalidArgument, StorageFull, status_of

# resolve(): from the restrike/host link back to the folder; in a wheel, restrike/frontend
FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
FAVICON = FRONTEND_DIR / "favicon.svg"
MAX_DOWNLOAD_BODY = 64 * 1024  # named arguments of a command, not data
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

NO_TOKEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>restrike</title>
<link rel="icon" href="/favicon.ico"></head>
<body><h1>restrike is running</h1>
<p>This address needs the access token. Open the address restrike printed when it started:
it ends in <code>?token=</code> followed by the token, e.g.
<code>http://127.0.0.1:8765/?token=…</code>.</p>
<p>Lost it? Start restrike again (it prints the address again), or start it with
<code>--token</code> to choose the token yourself.</p></body></html>
"""


def public_response(request: Request) -> Response | None:
    """The answer to a request without a valid token, when there is a friendlier one than 401
    JSON (``None`` otherwise)."""
    if request.method not in ("GET", "HEAD"):
        return None
    if request.url.path in ("/", "/index.html"):
        return HTMLResponse(NO_TOKEN_PAGE, 401, headers={"Cache-Control": "no-store"})
    return favicon(request)


def favicon(request: Request) -> Response | None:
    """The icon for ``/favicon.ico`` (public), else ``None``."""
    if request.url.path != "/favicon.ico":
        return None
    return FileResponse(FAVICON, media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


def _error(error: dict) -> JSONResponse:
    return JSONResponse({"error": error}, status_of(error["type"]))


def ui_routes(app) -> list[Route]:
    """The routes of this module for ``app``: downloads and the icon. Download directories a
    previous run left behind (it was killed mid-download) are removed first."""
    for stale in Path(app.settings.data_dir).glob(".download-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return [Route("/api/download/{name}", _downloader(app), methods=["POST"]),
            Route("/favicon.ico", favicon, methods=["GET", "HEAD"])]


def _downloader(app):
    """``POST /api/download/{name}`` for ``app`` (see the module docstring)."""

    async def download(request: Request) -> Response:
        try:
            filename, args = await _download_request(request)
            folder = _download_folder(app.settings.data_dir)
        except CommandError as exc:
            return _error(exc.to_dict())
        name = request.path_params["name"]
        # where it runs (an export is a job: one at a time) is host.jobs' choice
        ok, value = await asyncio.wrap_future(
            app.jobs.submit(name, {**args, "path": str(folder / filename)}))
        if ok and not (folder / filename).is_file():
            ok, value = False, InvalidArgument(f"{name} does not write a file").to_dict()
        if not ok:
            shutil.rmtree(folder, ignore_errors=True)
            return _error(value)
        summary = json.dumps(value)  # e.g. {path, rows}: ASCII, so a valid header value
        headers = {"Cache-Control": "no-store"}
        if len(summary) <= 1000:
            headers["X-Command-Result"] = summary
        return FileResponse(folder / filename, filename=filename, headers=headers,
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    return download


async def _download_request(request: Request) -> tuple[str, dict]:
    """The file name and the command's named arguments of a download; ``InvalidArgument``."""
    filename = request.query_params.get("filename", "")
    if not _FILENAME.fullmatch(filename):
        raise InvalidArgument("filename must be 1-100 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit", "filename")
    raw = b""
    async for chunk in request.stream():  # bounded: stop reading past the limit
        raw += chunk
        if len(raw) > MAX_DOWNLOAD_BODY:
            raise InvalidArgument("the request body is too large")
    try:
        args = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise InvalidArgument("request body is not valid JSON") from None
    if not isinstance(args, dict) or "path" in args:
        raise InvalidArgument("the body must be an object of named arguments without path "
                              "(the server chooses where the file is written)")
    return filename, args


def _download_folder(data_dir) -> Path:
    """A fresh folder in the data dir for one download's file; ``StorageFull`` on a full disk."""
    try:
        return Path(os.path.realpath(tempfile.mkdtemp(prefix=".download-", dir=data_dir)))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("nothing was prepared for the download") from None
        raise CommandError("cannot prepare the download") from None
