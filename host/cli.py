"""The ``restrike`` command line (also ``python -m restrike``)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from restrike.host.app import App
from restrike.host.settings import Settings, default_data_dir, load_config_file

log = logging.getLogger("restrike")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restrike",
        description="Receive, store and show the World Taekwondo PSS scoring feed.",
        epilog="Plugins may add commands: restrike simulate --help",
    )
    parser.add_argument("--headless", action="store_true",
                        help="no window: serve the UI and the command bridge over HTTP")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"where the database lives (default {default_data_dir()})")
    # No argparse defaults: a flag given wins over the settings saved from the UI, an absent
    # one does not (Settings knows which were given).
    parser.add_argument("--udp-bind", default=None,
                        help="address the PSS feed arrives on (default 0.0.0.0, or as saved "
                             "from the UDP screen)")
    parser.add_argument("--udp-port", type=int, default=None,
                        help="UDP port of the PSS feed (default 6000, or as saved from the UDP "
                             "screen)")
    parser.add_argument("--demo", action="store_true",
                        help="start the built-in simulated match feed against our own port")
    parser.add_argument("--http-bind", default=None,
                        help="address of the HTTP server (default 127.0.0.1; needed explicitly "
                             "for any other address)")
    parser.add_argument("--http-port", type=int, default=8765, help="HTTP port (headless mode)")
    parser.add_argument("--token", default=None,
                        help="HTTP access token (default: $RESTRIKE_TOKEN, else random)")
    parser.add_argument("--config", type=Path, default=None,
                        help="JSON file of per-plugin settings: {\"udp\": {...}, ...}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM") == "offscreen"
    )


def _signal_thread(stop: threading.Event) -> None:
    """Turn SIGINT/SIGTERM into ``stop`` even while a C++ GUI loop holds the main thread.

    The signals are blocked in every thread (the mask is set before any thread starts), and this
    thread takes them with sigwait, so they arrive however busy the Qt loop is.
    """
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    stop.set()


def _tune_gc() -> None:
    """Fewer, cheaper collections: with a deep ingest backlog (many live event objects) the
    default thresholds made the collector pause every thread, receive included, for ~0.5 s at
    a time (measured with bench/ingest.py). Objects alive after start-up are frozen out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        return _subcommand(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    headless = args.headless
    if not headless and _no_display():
        print("restrike: no display found: starting --headless (open the URL below in a browser)",
              flush=True)
        headless = True
    given = {name: value for name, value in (("udp_bind", args.udp_bind),
                                             ("udp_port", args.udp_port))
             if value is not None}
    settings = Settings(
        data_dir=args.data_dir or default_data_dir(),
        headless=headless, demo=args.demo, **given,
        http_bind=args.http_bind or "127.0.0.1", http_port=args.http_port,
        token=args.token or os.environ.get("RESTRIKE_TOKEN"), log_level=args.log_level,
        config=load_config_file(args.config) if args.config else {},
    )
    if settings.http_bind not in ("127.0.0.1", "localhost", "::1") and not args.http_bind:
        raise SystemExit("restrike: a non-loopback HTTP address needs --http-bind")

    _tune_gc()
    stop = threading.Event()
    if headless:
        return _run_headless(settings)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Thread(target=_signal_thread, args=(stop,), name="signals", daemon=True).start()
    app = _start(settings)
    if app is None:
        return 1
    try:
        from restrike.host.window import run_window

        run_window(app, stop)
    finally:
        app.stop()
    return 0


def _start(settings: Settings) -> App | None:
    """A started app, or None after logging why it could not start (plugins already stopped)."""
    app = App(settings)
    try:
        return app.start()
    except Exception as exc:
        log.error("restrike could not start: %s", exc)
        return None


def _run_headless(settings: Settings) -> int:
    from restrike.host.http import new_token, serve

    token = settings.token or new_token()
    app = _start(settings)
    if app is None:
        return 1
    host = settings.http_bind
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{settings.http_port}/?token={token}"
    try:
        serve(app, host, settings.http_port, token,
              on_ready=lambda: print(f"restrike is running: {url}", flush=True))
    finally:
        app.stop()
    return 0


def _subcommand(argv: list[str]) -> int:
    name, rest = argv[0], argv[1:]
    app = App(Settings(data_dir=default_data_dir()))
    commands = app.hooks.cli_subcommands()
    if name not in commands:
        known = ", ".join(sorted(commands)) or "none"
        print(f"restrike: unknown command {name!r} (commands: {known})", file=sys.stderr)
        return 2
    return int(commands[name](rest) or 0)
