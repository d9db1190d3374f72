"""The UDP plugin's settings: a pydantic model at the edge (config file section and the UI).

``bind``/``port`` come from the host settings (``--udp-bind``/``--udp-port``); the rest from the
``"udp"`` section of the config file. The UI sends camelCase keys (``receiveBuffer``), Python code
uses snake_case; both are accepted. Unknown keys are refused, so a typo is an error, not a silent
default.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024


class UdpSettings(BaseModel):
    """Where and how the PSS feed is received."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              frozen=True)

    bind: str = Field("0.0.0.0", description="local IPv4/IPv6 address to listen on")
    port: int = Field(6000, ge=0, le=65535,
                      description="UDP port of the PSS feed (0: any free port, for tests)")
    receive_buffer: int = Field(DEFAULT_RECEIVE_BUFFER, ge=64 * 1024, le=1024 * 1024 * 1024,
                                description="kernel receive buffer (SO_RCVBUF) in bytes")
    allowed_sources: tuple[str, ...] = Field(
        (), description="source addresses or networks (CIDR) accepted; empty: any")
    autostart: bool = Field(True, description="start receiving when the app starts")
    queue_max_datagrams: int = Field(500_000, ge=1_000, le=10_000_000,
                                     description="datagrams waiting for the dispatch thread")
    queue_max_bytes: int = Field(128 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024 ** 3,
                                 description="payload bytes waiting for the dispatch thread")

    @field_validator("bind")
    @classmethod
    def _bind_is_an_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 or IPv6 address (use 0.0.0.0 for every interface)"
            ) from None

    @field_validator("allowed_sources", mode="before")
    @classmethod
    def _sources_are_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if not isinstance(value, (list, tuple)):
            return value  # pydantic names the type error
        out = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} is not an address (text such as 192.168.1.20)")
            try:
                network = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (192.168.1.20, 10.0.0.0/24)"
                ) from None
            # a single host shows as the plain address the user typed, not as a /32
            single = network.num_addresses == 1
            out.append(str(network.network_address) if single else str(network))
        return tuple(out)

    def public(self) -> dict:
        """The settings as the UI shows them (snake_case keys)."""
        return self.model_dump()


def settings_from_app(app_settings) -> UdpSettings:
    """The plugin's settings from the host settings and the config file's ``udp`` section.

    The config section may not carry ``bind``/``port``: those are the host's ``--udp-bind`` and
    ``--udp-port``, so there is one place that sets them. Raises ``pydantic.ValidationError``.
    """
    section = dict(app_settings.config.get("udp", {}) or {})
    for key in ("bind", "port"):
        if key in section:
            raise ValueError(f"udp.{key}: set it with --udp-{key} (the config file's udp "
                             f"section holds receive_buffer, allowed_sources, autostart)")
    return UdpSettings(bind=app_settings.udp_bind, port=app_settings.udp_port, **section)


def apply_update(current: UdpSettings, update: UdpSettings) -> UdpSettings:
    """``current`` with the fields the caller actually gave in ``update`` (others unchanged)."""
    changes = {name: getattr(update, name) for name in update.model_fields_set}
    return UdpSettings.model_validate({**current.model_dump(), **changes})
