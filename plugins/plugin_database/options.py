"""The database plugin's command-line options (``restrike_addoption``).

- ``--database-url URL`` lands in ``config["database"]["url"]`` (winning over the config file's
  ``database.url``). A URL that cannot be used is refused at parsing, as one line naming the
  option and the reason (exit 2); the password is never echoed (``backend.DatabaseUrl``).
- ``--court NAME`` lands in ``config["database"]["court"]``, where ``service.DatabaseConfig``
  validates it like the config file's key.
"""

from __future__ import annotations

import argparse

from .backend import BadDatabaseUrl, DatabaseUrl
from .court import MAX_CHARS, court_name, default_court


def database_url(text: str) -> str:
    """An argparse type: a URL ``DatabaseUrl.parse`` accepts (returned as given)."""
    try:
        DatabaseUrl.parse(text)
    except BadDatabaseUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _court(text: str) -> str:
    try:
        return court_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the court name {exc}") from None


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--database-url`` and ``--court`` in the database plugin's group."""
    group = parser.add_argument_group("storage (plugin database)")
    group.add_argument("--database-url", dest="database.url", metavar="URL", type=database_url,
                       default=argparse.SUPPRESS,
                       help="where the feed is stored: sqlite:///path/file.db or "
                            "postgresql://user:password@host:port/dbname (default: "
                            "restrike_vta.db in the data dir)")
    group.add_argument("--court", dest="database.court", metavar="NAME", type=_court,
                       default=argparse.SUPPRESS,
                       help=f"the court this instance serves, stored with every session and "
                            f"match (1-{MAX_CHARS} printable characters; default: the host "
                            f"name, now {default_court()!r})")
