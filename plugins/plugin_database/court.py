"""The name of the court an instance serves (``--court``, ``database.court``).

Every UDP session and every match this instance's writer stores carries it (``court`` columns
of ``udp_server_sessions`` and ``pss_matches``, schema version 8); an event is attributable to
its court through its session. The default is the machine's host name: one court PC, one court.
"""

from __future__ import annotations

import socket

MAX_CHARS = 64
"""A court name's length bound (characters)."""


def court_name(text: str) -> str:
    """``text`` as a court name: stripped, 1-64 printable characters (no control characters).
    Raises ``ValueError`` with the reason (the caller names the field)."""
    if not isinstance(text, str):
        raise ValueError("must be text")
    name = text.strip()
    if not name:
        raise ValueError("must not be empty")
    if len(name) > MAX_CHARS:
        raise ValueError(f"must be at most {MAX_CHARS} characters, not {len(name)}")
    if not name.isprintable():
        raise ValueError("must be printable characters only (no control characters)")
    return name


def default_court() -> str:
    """The host name, bounded to a valid court name (``"court"`` when it has none)."""
    try:
        return court_name(socket.gethostname()[:MAX_CHARS])
    except ValueError:
        return "court"
