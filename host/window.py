"""Window mode: the pywebview window (Qt backend) showing ``frontend/index.html``.

Commands reach Python through ``host.bridge.make_js_api``; pushes reach the page through
``window.run_js`` on the window sink's own thread. ``RESTRIKE_CDP_PORT`` exposes the Chrome
DevTools Protocol on 127.0.0.1 (how the end-to-end tests drive the real window).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated

from pydantic import StringConstraints

from restrike.host.bridge import make_js_api
from restrike.host.errors import Unavailable
from restrike.host.http import FRONTEND_DIR

log = logging.getLogger(__name__)


def save_dialog_command(holder: list):
    """The window-only command ``choose_save_file`` (the page asks it before a path-taking
    command such as an export; a browser downloads instead)."""

    def choose_save_file(suggested_name: Annotated[str, StringConstraints(max_length=255)] = "",
                         directory: Annotated[str, StringConstraints(max_length=4096)] = ""
                         ) -> dict | None:
        """Open the native "Save as" dialog; ``{path, exists}`` of the file the operator chose,
        or ``None`` if they cancelled. ``suggested_name`` fills the name box; ``directory``
        (default: the home directory) is where the dialog opens. The dialog itself asks before
        an existing file is chosen, so ``exists`` means the operator agreed to replace it.
        """
        import webview

        if not holder:
            raise Unavailable("the window is not open yet")
        start = directory if directory and os.path.isdir(directory) else os.path.expanduser("~")
        chosen = holder[0].create_file_dialog(webview.FileDialog.SAVE, directory=start,
                                              save_filename=os.path.basename(suggested_name))
        if not chosen:
            return None
        path = chosen[0] if isinstance(chosen, (list, tuple)) else chosen
        return {"path": path, "exists": os.path.lexists(path)}

    return choose_save_file


def run_window(app, stop_requested) -> None:
    """Open the window and run the GUI loop on this (main) thread until it closes.

    ``stop_requested`` is a threading.Event set by the signal thread; it closes the window.
    """
    os.environ.setdefault("PYWEBVIEW_GUI", "qt")
    if os.geteuid() == 0:  # QtWebEngine refuses to start as root without it
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        if "--no-sandbox" not in flags:
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
    import webview

    holder: list = []  # the window, once created (the command is registered before it exists)
    app.commands.register("choose_save_file", save_dialog_command(holder), plugin="host")
    cdp_port = os.environ.get("RESTRIKE_CDP_PORT")
    if cdp_port:
        webview.settings["REMOTE_DEBUGGING_PORT"] = int(cdp_port)
    window = webview.create_window(
        "restrike", str(FRONTEND_DIR / "index.html"), js_api=make_js_api(app.commands, app.jobs),
        width=1280, height=800, min_size=(1024, 700), background_color="#0d1117",
    )
    if window is None:  # pywebview returns None only for a window made after start() fails
        raise RuntimeError("the window could not be created")
    holder.append(window)

    app.window = window  # plugins may hide it while they show something else (a replay)

    def deliver(batch: list[dict]) -> None:
        window.run_js(f"window.__restrikePush && window.__restrikePush({json.dumps(batch)})")

    sink = app.push.add_sink("window", deliver, threaded=True)

    def close_on_request() -> None:
        stop_requested.wait()
        log.info("closing the window")
        window.destroy()

    import threading

    threading.Thread(target=close_on_request, name="window-close", daemon=True).start()
    try:
        webview.start(gui="qt", private_mode=True)
    finally:
        app.window = None
        app.push.remove_sink(sink)
