"""Window mode: the pywebview window (Qt backend) showing ``frontend/index.html``.

Commands reach Python through ``host.bridge.make_js_api``; pushes reach the page through
``window.run_js`` on the window sink's own thread. ``RESTRIKE_CDP_PORT`` exposes the Chrome
DevTools Protocol on 127.0.0.1 (how the end-to-end tests drive the real window).
"""

from __future__ import annotations

import json
import logging
import os

from restrike.host.bridge import make_js_api
from restrike.host.http import FRONTEND_DIR

log = logging.getLogger(__name__)


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

    cdp_port = os.environ.get("RESTRIKE_CDP_PORT")
    if cdp_port:
        webview.settings["REMOTE_DEBUGGING_PORT"] = int(cdp_port)
    window = webview.create_window(
        "restrike", str(FRONTEND_DIR / "index.html"), js_api=make_js_api(app.commands),
        width=1280, height=800, min_size=(1024, 700), background_color="#0d1117",
    )

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
        app.push.remove_sink(sink)
