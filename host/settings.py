"""Start-up settings of the host (from the CLI and an optional JSON config file).

Plugins read their own section of ``config`` (``config["udp"]``, ``config["database"]``) and
validate it with their own pydantic model.
"""

from __future__ import annotations

import json
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict, Field


def default_data_dir() -> Path:
    """The platform's user data dir for restrike (``~/.local/share/restrike`` on Linux)."""
    return Path(platformdirs.user_data_dir("restrike", appauthor=False))


class Settings(BaseModel):
    """Everything the host and the built-in plugins need to start."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    headless: bool = False
    demo: bool = False
    udp_bind: str = "0.0.0.0"
    udp_port: int = Field(6000, ge=0, le=65535)
    http_bind: str = "127.0.0.1"
    http_port: int = Field(8765, ge=0, le=65535)
    token: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    log_level: str = "INFO"
    config: dict[str, dict] = Field(default_factory=dict)


def load_config_file(path: Path) -> dict[str, dict]:
    """Read a JSON config file of per-plugin sections: ``{"udp": {...}, "database": {...}}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: must be a JSON object of sections, each an object")
    return data
