"""The ``restrike`` command line (also ``python -m restrike``)."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from restrike.host.app import App
from restrike.host.instance import DataDirInUse
from restrike.host.options import (
    OneLineParser,
    UsageError,
    config_from_args,
    fail,
    port_number,
    print_error,
)
from restrike.host.settings import (
    Settings,
    check_host_name,
    default_data_dir,
    host_config,
    load_config_file,
)

log = logging.getLogger("restrike")

PROG = "restrike"
DEFAULTS = Settings(data_dir=Path("."))  # the documented defaults (--help), never a data dir


def _host_name(text: str) -> str:
    try:
        return check_host_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(hooks=None) -> argparse.ArgumentParser:
    """The ``restrike`` parser; with ``hooks``, the plugins' options (``restrike_addoption``)."""
    parser = OneLineParser(
        prog=PROG,
        description="Receive, store and show the World Taekwondo PSS scoring feed.",
        epilog="Plugins may add commands: restrike simulate --help",
    )
    parser.add_argument("--headless", action="store_true",
                        help="no window: serve the UI and the command bridge over HTTP "
                             "(default: a window when there is a display)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help=f"where the database lives, one instance per directory "
                             f"(default {default_data_dir()})")
    parser.add_argument("--http-bind", default=None, metavar="ADDR",
                        help=f"address of the HTTP server (default {DEFAULTS.http_bind}; "
                             "needed explicitly for any other address)")
    parser.add_argument("--http-port", type=port_number, default=DEFAULTS.http_port,
                        metavar="PORT", help="HTTP port in headless mode (default %(default)s)")
    parser.add_argument("--allowed-host", dest="allowed_hosts", action="append", default=None,
                        type=_host_name, metavar="NAME",
                        help="another name the HTTP server answers to besides loopback, its "
                             "address and this machine's names; repeat for more (default: none)")
    parser.add_argument("--token", default=None,
                        help="HTTP access token (default: $RESTRIKE_TOKEN, else random)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.json",
                        help="JSON file of sections: {\"udp\": {...}, \"database\": {...}, "
                             "\"host\": {\"allowed_hosts\": [...]}} (default: none); "
                             "options given here win over it")
    parser.add_argument("--log-level", default=DEFAULTS.log_level,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="default %(default)s")
    if hooks is not None:
        hooks.addoption(parser)
    return parser


def settings_from_args(args: argparse.Namespace, headless: bool) -> Settings:
    """The app's settings from parsed arguments; ``UsageError`` naming the option if refused."""
    config: dict[str, dict] = {}
    if args.config is not None:
        try:
            config = load_config_file(args.config)
            hosts = host_config(config).allowed_hosts
        except ValueError as exc:
            fail(f"--config {args.config}: {exc}")
    else:
        hosts = []
    data_dir = args.data_dir or default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        fail(f"--data-dir {data_dir}: not a directory")
    return Settings(
        data_dir=data_dir, headless=headless,
        http_bind=args.http_bind or DEFAULTS.http_bind, http_port=args.http_port,
        allowed_hosts=args.allowed_hosts if args.allowed_hosts is not None else hosts,
        token=args.token or os.environ.get("RESTRIKE_TOKEN"), log_level=args.log_level,
        config=config_from_args(args, config),
    )


_BIND_ERRORS = {  # errno -> (option, reason), for the HTTP server's address
    errno.EADDRINUSE: ("--http-port", "{where} is already in use by another program"),
    errno.EACCES: ("--http-port", "{where}: permission denied (ports below 1024 need root)"),
    errno.EADDRNOTAVAIL: ("--http-bind", "{host} is not an address of this machine"),
}


def check_http_address(host: str, port: int) -> None:
    """Refuse, before anything starts, an HTTP address that cannot be bound (``UsageError``).

    A probe: uvicorn binds it again right after (with ``SO_REUSEADDR``, as here)."""
    where = f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror:
        fail(f"--http-bind {host}: not an address or a known host name")
    except OSError as exc:
        log.debug("HTTP address %s cannot be bound", where, exc_info=True)
        option, reason = _BIND_ERRORS.get(
            exc.errno or 0,
            ("--http-port", "{where} cannot be opened: " + str(exc.strerror or exc)))
        value = host if option == "--http-bind" else port
        fail(f"{option} {value}: {reason.format(where=where, host=host)}")


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


def tune_gc() -> None:
    """Fewer, cheaper collections: with a deep ingest backlog (many live event objects) the
    default thresholds made the collector pause every thread, receive included, for ~0.5 s at
    a time (measured with bench/ingest.py). Objects alive after start-up are frozen out of it.
    The app calls it once at start-up; benchmarks that run a part of the app in-process call it
    too, so they measure what the app pays."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    """``restrike [options]``: run the app; ``restrike <command> ...``: a plugin's command.

    Exit status 0 after a normal stop, 2 (with one line on stderr naming the option and the
    reason) for a refused option, config file, data dir or port, or an app that cannot start.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        return _subcommand(argv)
    # Plugins are loaded first, so that their options are part of the parser (and of --help);
    # the app gets its real settings once the arguments are parsed.
    app = App(Settings())
    args = build_parser(app.hooks).parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    headless = args.headless
    if not headless and _no_display():
        print("restrike: no display found: starting --headless (open the URL below in a browser)",
              flush=True)
        headless = True
    try:
        app.settings = settings_from_args(args, headless)
        _lock(app)
        if headless:
            check_http_address(app.settings.http_bind, app.settings.http_port)
    except UsageError as exc:
        return print_error(PROG, str(exc))

    tune_gc()
    stop = threading.Event()
    if headless:
        return _run_headless(app)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Thread(target=_signal_thread, args=(stop,), name="signals", daemon=True).start()
    status = _start(app)
    if status:
        return status
    try:
        from restrike.host.window import run_window

        run_window(app, stop)
    finally:
        app.stop()
    return 0


def _lock(app: App) -> None:
    """Take the data dir for this process before anything in it is touched."""
    data_dir = app.settings.data_dir
    try:
        app.lock_data_dir()
    except DataDirInUse as exc:
        fail(str(exc))
    except OSError as exc:
        log.debug("data dir %s", data_dir, exc_info=True)
        fail(f"--data-dir {data_dir}: {exc.strerror or exc}")


def _start(app: App) -> int:
    """Start ``app``: 0, or 2 after one line on stderr saying why it could not start (plugins
    already stopped; the traceback is in the log at DEBUG)."""
    try:
        app.start()
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)
        return print_error(PROG, f"cannot start: {exc}")
    return 0


def _run_headless(app: App) -> int:
    from restrike.host.http import new_token, serve

    settings = app.settings
    token = settings.token or new_token()
    status = _start(app)
    if status:
        return status
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
        return print_error(PROG, f"unknown command {name!r} (commands: {known}; "
                                 f"options start with --, see {PROG} --help)")
    return int(commands[name](rest) or 0)
