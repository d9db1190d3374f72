"""The database plugin's command-line options (``restrike_addoption``).

``--court NAME`` lands in ``config["database"]["court"]`` (winning over the config file), where
``service.DatabaseConfig`` validates it like the config file's key.
"""

from __future__ import annotations

import argparse

from .court import MAX_CHARS, court_name, default_court


def _court(text: str) -> str:
    try:
        return court_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the court name {exc}") from None


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--court`` in the database plugin's group."""
    group = parser.add_argument_group("storage (plugin database)")
    group.add_argument("--court", dest="database.court", metavar="NAME", type=_court,
                       default=argparse.SUPPRESS,
                       help=f"the court this instance serves, stored with every session and "
                            f"match (1-{MAX_CHARS} printable characters; default: the host "
                            f"name, now {default_court()!r})")
