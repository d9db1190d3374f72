"""Start-up settings of the host (from the CLI and an optional JSON config file).

Plugins read their own section of ``config`` (``config["udp"]``, ``config["database"]``) and
validate it with their own pydantic model; their command-line options (``restrike_addoption``)
land in the same section. The host knows none of their keys. The config file's ``"host"``
section holds the host's own keys (``allowed_hosts``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_MAX_BYTES = 1024 * 1024
"""A config file is a few hundred bytes; anything beyond this is refused unread."""
HOST_SECTION = "host"

# A host name or an IP address as it appears in an HTTP Host header (without the port).
_HOST_NAME = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9_.-]{1,253})$")


def default_data_dir() -> Path:
    """The platform's user data dir for restrike (``~/.local/share/restrike`` on Linux)."""
    return Path(platformdirs.user_data_dir("restrike", appauthor=False))


def check_host_name(value: str) -> str:
    """``value`` as an allowed Host name (lower case); ``ValueError`` saying why if not one."""
    name = value.strip()
    if not _HOST_NAME.match(name):
        raise ValueError(f"{value!r} is not a host name or IP address (e.g. scores.local, "
                         "192.168.1.10), without a port")
    return name.lower()


class HostConfig(BaseModel):
    """The config file's ``"host"`` section."""

    model_config = ConfigDict(extra="forbid")

    allowed_hosts: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("allowed_hosts")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return [check_host_name(name) for name in value]


class Settings(BaseModel):
    """Everything the host needs to start; plugins' settings are in ``config``."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    headless: bool = False
    http_bind: str = "127.0.0.1"
    http_port: int = Field(8765, ge=0, le=65535)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra names the HTTP server answers to (its Host check), besides loopback, "
                    "the bind address and this machine's names (--allowed-host)")
    token: str | None = None
    log_level: str = "INFO"
    config: dict[str, dict] = Field(default_factory=dict)


def load_config_file(path: Path) -> dict[str, dict]:
    """Read a JSON config file of sections: ``{"udp": {...}, "database": {...}}``.

    Raises ``ValueError`` with a one-line reason (missing, unreadable, too large, not JSON, not
    an object of objects); the caller names the option.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(CONFIG_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a JSON file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise ValueError(f"larger than {CONFIG_MAX_BYTES // 1024} KiB: not a config file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"must be a JSON object of sections, e.g. {{\"udp\": {{...}}}}, "
                         f"not {type(data).__name__}")
    for name, section in data.items():
        if not isinstance(section, dict):
            raise ValueError(f"section {name!r} must be an object, not {type(section).__name__}")
    return data


def host_config(config: dict[str, dict]) -> HostConfig:
    """The validated ``"host"`` section of ``config``; ``ValueError`` naming the key if bad."""
    try:
        return HostConfig.model_validate(config.get(HOST_SECTION, {}))
    except ValidationError as exc:
        raise section_error(exc, HOST_SECTION) from None



def section_error(exc: ValidationError, section: str) -> ValueError:
    """A config section's pydantic error as one line naming each key (the keys as the config
    file spells them): ``config section 'udp' is invalid: receive_buffer: ...``."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or section}: "
                         f"{e['msg'].removeprefix('Value error, ')}"
                         for e in exc.errors(include_url=False))
    return ValueError(f"config section {section!r} is invalid: {problems}")
