"""The UDP plugin's settings: a pydantic model at the edge (config file section and the UI).

Where each value comes from, the later winning: the defaults; what the operator saved with
``update_udp_settings`` (``udp-settings.json`` in the data dir, so a change made at the court
survives a restart); the ``"udp"`` section of the config file; and ``--udp-bind``/``--udp-port``
when given on the command line.

The UI sends camelCase keys (``receiveBuffer``), Python code uses snake_case; both are accepted.
Unknown keys are refused, so a typo is an error, not a silent default.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

log = logging.getLogger(__name__)

DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024
SAVED_FILE = "udp-settings.json"


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
    """The plugin's settings at start (see the module docstring for the order).

    ``app_settings.config["udp"]`` holds the config file's section with ``--udp-bind``/
    ``--udp-port`` merged in (the host does that, ``restrike_addoption``). Raises
    ``pydantic.ValidationError`` for a bad section; saved settings that are no longer valid are
    logged and ignored.
    """
    section = {key: value for key, value in (app_settings.config.get("udp", {}) or {}).items()
               if key not in ("demo",)}  # a start-up switch (options.START_ONLY), not a setting
    UdpSettings(**section)  # a bad section is the operator's error: raise it as such
    saved = saved_settings(app_settings.data_dir)
    if saved:
        try:
            return UdpSettings(**{**saved, **section})
        except ValidationError as exc:
            log.error("the UDP settings saved in %s are not valid any more and are ignored: %s",
                      Path(app_settings.data_dir) / SAVED_FILE, exc)
    return UdpSettings(**section)


def saved_settings(data_dir: Path) -> dict:
    """The fields saved by ``save_settings`` (snake_case), or {} when there are none; a file
    that cannot be read is logged and ignored (the defaults apply, nothing is lost but it)."""
    path = Path(data_dir) / SAVED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("the saved UDP settings in %s cannot be read and are ignored: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        log.error("the saved UDP settings in %s are not an object and are ignored", path)
        return {}
    return data


def save_settings(data_dir: Path, changes: dict) -> None:
    """Merge ``changes`` into the saved settings, atomically (a crash leaves the old file or the
    new one, never half of one). Raises ``OSError`` when the file cannot be written."""
    path = Path(data_dir) / SAVED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {**saved_settings(data_dir), **changes}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(merged, out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def changed_fields(update: UdpSettings) -> dict:
    """The fields the caller actually gave in ``update`` (snake_case, JSON types)."""
    return update.model_dump(mode="json", include=update.model_fields_set)


def apply_update(current: UdpSettings, update: UdpSettings) -> UdpSettings:
    """``current`` with the fields the caller actually gave in ``update`` (others unchanged)."""
    return UdpSettings.model_validate({**current.model_dump(), **changed_fields(update)})
