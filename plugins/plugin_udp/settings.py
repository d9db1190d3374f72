"""The UDP plugin's settings: a pydantic model at the edge (config file section and the UI).

Where each value comes from, the later winning: the defaults; what the operator saved with
``update_udp_settings`` (``udp-settings.json`` in the data dir, so a change made at the court
survives a restart); the ``"udp"`` section of the config file; and ``--udp-bind``/``--udp-port``
when given on the command line.

The UI sends camelCase keys (``receiveBuffer``), Python code uses snake_case; both are accepted.
Unknown keys are refused, so a typo is an error, not a silent default. Numbers must be JSON
numbers (``"6000"`` and ``true`` are refused), whole where a count is meant.

What the operator sets (``SettingsChange``) must keep the app able to hear the feed: the address
is 0.0.0.0, :: or a unicast address this computer has now, the port 1..65535. A saved file is
checked the same way at start-up (the computer's addresses may have changed since): a saved
setting that is no longer valid, or no longer binds, is reported (``StartSettings.problem``) and
the app listens on the default address instead.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from restrike.host.commands import validation_error
from restrike.pss.protocol import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024
SAVED_FILE = "udp-settings.json"


class UdpSettings(BaseModel):
    """Where and how the PSS feed is received."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              frozen=True)

    bind: str = Field("0.0.0.0", description="local IPv4/IPv6 address to listen on")
    port: int = Field(6000, ge=0, le=65535, strict=True,
                      description="UDP port of the PSS feed (0, from --udp-port only: any free "
                                  "port, for tests)")
    receive_buffer: int = Field(DEFAULT_RECEIVE_BUFFER, ge=64 * 1024, le=1024 * 1024 * 1024,
                                strict=True,
                                description="kernel receive buffer (SO_RCVBUF) in bytes")
    allowed_sources: tuple[str, ...] = Field(
        (), description="source addresses or networks (CIDR) accepted; empty: any")
    autostart: bool = Field(True, strict=True,
                            description="start receiving when the app starts")
    queue_max_datagrams: int = Field(500_000, ge=1_000, le=10_000_000, strict=True,
                                     description="datagrams waiting for the dispatch thread")
    queue_max_bytes: int = Field(
        128 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024 ** 3, strict=True,
        description="bytes waiting for the dispatch thread (payload + 256 per datagram)")
    # The parser's limits (protocol.Limits, which explains the defaults): beyond them a message
    # or the rest of a datagram is stored raw as an invalid event naming the limit.
    max_messages_per_datagram: int = Field(
        DEFAULT_LIMITS.max_messages_per_datagram, ge=1, le=65_536, strict=True,
        description="messages parsed per datagram; the rest is stored raw as one invalid event")
    max_fields_per_message: int = Field(
        DEFAULT_LIMITS.max_fields_per_message, ge=16, le=65_536, strict=True,
        description="';'-separated fields of a message; beyond: stored raw, invalid")
    max_field_length: int = Field(
        DEFAULT_LIMITS.max_field_length, ge=64, le=65_536, strict=True,
        description="characters of one field; beyond: the message is stored raw, invalid")

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

    def limits(self) -> Limits:
        """The parser's limits these settings give."""
        return Limits(self.max_messages_per_datagram, self.max_fields_per_message,
                      self.max_field_length)

    def public(self) -> dict:
        """The settings as the UI shows them (snake_case keys)."""
        return self.model_dump()


class SettingsChange(UdpSettings):
    """What ``update_udp_settings`` accepts (and what a saved file must still be at start-up):
    only what can be listened on, so that no setting leaves the app deaf."""

    port: int = Field(6000, ge=1, le=65535, strict=True, description="UDP port of the PSS feed")

    @field_validator("bind")
    @classmethod
    def _bind_is_this_computers(cls, value: str) -> str:
        address = ipaddress.ip_address(value)  # already an address: UdpSettings checked it
        if address.is_unspecified:
            return value  # 0.0.0.0 / ::, every interface
        for applies, reason in _NOT_A_LISTENING_ADDRESS:
            if applies(address):
                raise ValueError(f"{value} {reason}; use 0.0.0.0 (every interface) or an "
                                 f"address of this computer")
        own = local_addresses()
        if address not in own:
            listed = ", ".join(sorted(map(str, own), key=len)) or "none found"
            raise ValueError(f"{value} is not an address of this computer (its addresses: "
                             f"{listed}; 0.0.0.0 means every interface)")
        return value


# An address that datagrams can be sent to but that a listener on it would never hear the feed
# of a scoring system on (it sends to one computer): refused with the reason.
_NOT_A_LISTENING_ADDRESS = (
    (lambda a: a.is_multicast, "is a multicast (group) address, not one computer's"),
    (lambda a: a == ipaddress.IPv4Address("255.255.255.255"),
     "is the broadcast address, not one computer's"),
)


def local_addresses() -> set:
    """The IP addresses this computer has now (every interface, loopback included)."""
    out = set()
    for snics in psutil.net_if_addrs().values():
        for snic in snics:
            try:  # IPv6 link-local ones carry their interface (fe80::1%eth0)
                out.add(ipaddress.ip_address(snic.address.split("%", 1)[0]))
            except ValueError:
                continue  # a hardware (MAC) address
    return out


@dataclass(frozen=True, slots=True)
class StartSettings:
    """What the plugin starts with (``settings_from_app``)."""

    settings: UdpSettings
    """The settings to start with."""
    default: UdpSettings | None
    """The same without the saved address, when the saved file moved it: what to listen on if
    the saved address does not bind any more (None: the address is not the saved one)."""
    problem: str | None
    """Why saved settings were ignored, in the operator's words (None: they were not)."""


def settings_from_app(app_settings) -> StartSettings:
    """The plugin's settings at start (see the module docstring for the order).

    ``app_settings.config["udp"]`` holds the config file's section with ``--udp-bind``/
    ``--udp-port`` merged in (the host does that, ``restrike_addoption``). Raises
    ``pydantic.ValidationError`` for a bad section; saved settings that are no longer valid are
    logged, reported in ``problem`` and ignored.
    """
    section = {key: value for key, value in (app_settings.config.get("udp", {}) or {}).items()
               if key not in ("demo", "off")}  # start-up switches (options.START_ONLY)
    default = UdpSettings(**section)  # a bad section is the operator's error: raise it as such
    saved = saved_settings(app_settings.data_dir)
    if not saved:
        return StartSettings(default, None, None)
    try:
        SettingsChange.model_validate(saved)  # as update_udp_settings would take it now
        chosen = UdpSettings(**{**saved, **section})
    except ValidationError as exc:
        reason = validation_error(exc).message
        log.error("the UDP settings saved in %s are not valid any more and are ignored: %s",
                  Path(app_settings.data_dir) / SAVED_FILE, reason)
        return StartSettings(default, None, f"The saved UDP settings are not valid any more "
                                            f"and are not used: {reason}")
    if (chosen.bind, chosen.port) == (default.bind, default.port):
        return StartSettings(chosen, None, None)
    unmoved = {key: value for key, value in saved.items() if key not in ("bind", "port")}
    return StartSettings(chosen, UdpSettings(**{**unmoved, **section}), None)


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
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(merged, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # no half-written file left behind (e.g. the disk is full)
        raise


def changed_fields(update: UdpSettings) -> dict:
    """The fields the caller actually gave in ``update`` (snake_case, JSON types)."""
    return update.model_dump(mode="json", include=update.model_fields_set)


def apply_update(current: UdpSettings, update: UdpSettings) -> UdpSettings:
    """``current`` with the fields the caller actually gave in ``update`` (others unchanged)."""
    return UdpSettings.model_validate({**current.model_dump(), **changed_fields(update)})
