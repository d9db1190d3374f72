"""The unit the UDP plugin hands to every ``restrike_pss_events`` hook: one parsed message with
where and when its datagram arrived (see docs/architecture.md, "An ingested event")."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .protocol import DEFAULT_LIMITS, Limits, PssEvent, parse_text


@dataclass(frozen=True, slots=True)
class IngestedEvent:
    """One message of one received datagram.

    ``seq`` is the per-session datagram number (from 1), ``index`` the message's place in its
    datagram (from 0), ``received_ns`` the receiver's ``host.timeutil.clock_ns()`` reading (only
    differences are meaningful; 0 means none), ``raw`` the exact message text, ``raw_b64`` the
    whole datagram in base64 when it is not valid UTF-8 (else None), ``event`` the parsed
    pydantic model.
    """

    session_id: str
    seq: int
    index: int
    received_at: str
    received_ns: int
    source_ip: str
    source_port: int
    raw: str
    raw_b64: str | None
    event: PssEvent


def ingest_datagram(
    data: bytes,
    *,
    session_id: str,
    seq: int,
    received_at: str,
    received_ns: int,
    source_ip: str,
    source_port: int,
    limits: Limits = DEFAULT_LIMITS,
) -> list[IngestedEvent]:
    """Parse one datagram and wrap each message as an ``IngestedEvent`` (never raises on content,
    always at least one event, so every datagram is stored; ``limits``: see ``protocol.Limits``)."""
    data = bytes(data)
    try:
        text = data.decode("utf-8")
        raw_b64 = None
    except UnicodeDecodeError:
        # The text keeps U+FFFD markers for display; the exact bytes survive in raw_b64.
        text = data.decode("utf-8", "replace")
        raw_b64 = base64.b64encode(data).decode("ascii")
    return [
        IngestedEvent(session_id, seq, index, received_at, received_ns, source_ip, source_port,
                      event.raw, raw_b64, event)
        for index, event in enumerate(parse_text(text, limits))
    ]
