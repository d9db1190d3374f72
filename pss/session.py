"""A UDP server session: what the UDP plugin tells every ``restrike_udp_session`` hook when its
server starts, is marked simulated, or stops (see docs/plugins.md).

One typed record instead of a dict whose keys each consumer lists again: the UDP plugin
(``plugins/plugin_udp/service.py``) builds it, the database plugin stores it in
``udp_server_sessions`` (the identity fields as columns, ``counters_record()`` as the
``counters`` JSON). Frozen: a change is a new record (``model_copy(update=...)``), so a hook
that keeps one never sees it change under it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SessionStatus = Literal["running", "stopped", "error"]

IDENTITY_FIELDS = frozenset(
    ("session_id", "bind", "port", "started_at", "stopped_at", "simulated", "status"))
"""The fields that are the session's own columns; every other field is one of its counters."""


class UdpSession(BaseModel):
    """One run of the UDP server, from start to stop (a restart is a new session)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str = Field(min_length=1, max_length=200)
    bind: str | None = None  # the address the server listens on ("0.0.0.0", "::", an IP)
    port: int | None = Field(default=None, ge=0, le=65535)
    started_at: str  # UTC ISO-8601 with Z (host.timeutil.now_iso)
    stopped_at: str | None = None  # None while running
    simulated: bool = False  # the built-in simulator feeds it
    status: SessionStatus = "running"
    # The counters: zeros when it starts, the receiver's totals when it stops.
    receive_buffer_requested: int | None = None
    receive_buffer_granted: int | None = None
    allowed_sources: list[str] = Field(default_factory=list)
    packets_received: int = 0
    bytes_received: int = 0
    events: int = 0
    valid_events: int = 0
    invalid_events: int = 0
    unknown_events: int = 0
    counters: dict[str, Any] = Field(default_factory=dict)  # the receiver's full counters
    clients: list[dict[str, Any]] = Field(default_factory=list)  # one entry per sender

    def counters_record(self) -> dict[str, Any]:
        """Every field but the identity ones (what ``udp_server_sessions.counters`` holds)."""
        return self.model_dump(exclude=set(IDENTITY_FIELDS))
