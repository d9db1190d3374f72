"""The database plugin's command-line option (``restrike_addoption``): ``--database-url``.

It lands in ``config["database"]["url"]`` (winning over the config file's ``database.url``).
A URL that cannot be used is refused at parsing, as one line naming the option and the reason
(exit 2); the password is never echoed (``backend.DatabaseUrl``).
"""

from __future__ import annotations

import argparse

from .backend import BadDatabaseUrl, DatabaseUrl


def database_url(text: str) -> str:
    """An argparse type: a URL ``DatabaseUrl.parse`` accepts (returned as given)."""
    try:
        DatabaseUrl.parse(text)
    except BadDatabaseUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--database-url`` in its own group."""
    group = parser.add_argument_group("storage (plugin database)")
    group.add_argument("--database-url", dest="database.url", metavar="URL", type=database_url,
                       default=argparse.SUPPRESS,
                       help="where the feed is stored: sqlite:///path/file.db or "
                            "postgresql://user:password@host:port/dbname (default: "
                            "restrike_vta.db in the data dir)")
