"""Command-line parsing shared by the host and plugins: one-line errors, ports, plugin options.

Plugins add options in ``restrike_addoption(parser)`` with ``dest="<section>.<key>"`` and
``default=argparse.SUPPRESS``; a value given on the command line then lands in
``settings.config[section][key]`` (``config_from_args``), winning over the config file, and an
absent option leaves the section untouched.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

USAGE_ERROR = 2
"""Exit status of every refused option, file or port (as argparse and the shell use it)."""


class UsageError(Exception):
    """An operator error found after parsing: ``str()`` is the one line to print."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2 (no usage
    block: the line names the option and the reason; ``--help`` has the rest)."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")  # "--udp-port: 99999 is not a port ..."
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    """An argparse type: a TCP/UDP port 0-65535 (0: any free port)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def fail(message: str) -> NoReturn:
    """Raise the one-line operator error ``message``; ``main`` prints it and exits 2."""
    raise UsageError(message)


def print_error(prog: str, message: str) -> int:
    """Print ``prog: message`` as one line on stderr; returns the exit status 2."""
    print(f"{prog}: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return USAGE_ERROR


def config_from_args(args: argparse.Namespace, config: dict[str, dict]) -> dict[str, dict]:
    """``config`` with every given ``<section>.<key>`` option of ``args`` set in its section
    (a new dict: the command line wins over the config file)."""
    merged = {name: dict(section) for name, section in config.items()}
    for dest, value in vars(args).items():
        section, dot, key = dest.partition(".")
        if dot:
            merged.setdefault(section, {})[key] = value
    return merged

