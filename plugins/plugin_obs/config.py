"""The ``obs`` section of ``--config`` and of the settings screen, validated here.

``{"obs": {"instances": [{"name": "cam-1", "host": "127.0.0.1", "port": 4455,
"password": "…"}], "replay_seconds": 20, "start_at_seconds": 10}}``. A change made on the
screen is saved to ``<data dir>/obs-settings.json`` (mode 0600: it holds the passwords) and wins
over the ``--config`` section at the next start. Passwords are ``SecretStr``: they never appear
in a repr, a log line, a push or a ``get_*`` result (``public()``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

SETTINGS_FILE = "obs-settings.json"
MAX_INSTANCES = 8

Name = Annotated[str, StringConstraints(min_length=1, max_length=40,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")]
Host = Annotated[str, StringConstraints(min_length=1, max_length=253,
                                        pattern=r"^[A-Za-z0-9.:\[\]-]+$")]


class InstanceConfig(BaseModel):
    """One OBS Studio: obs-websocket's address and password (Tools → WebSocket Server Settings)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    host: Host = "127.0.0.1"
    port: int = Field(4455, ge=1, le=65535)
    password: SecretStr | None = Field(None, max_length=256)


class ObsConfig(BaseModel):
    """Every key optional; no instance means the plugin idles (manual replay says so)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: list[InstanceConfig] = Field(default_factory=list, max_length=MAX_INSTANCES)
    replay_seconds: int = Field(20, ge=5, le=300)
    """Length of OBS's replay buffer (Settings → Output → Replay Buffer): a clip covers the
    events received in the ``replay_seconds`` before it was saved."""
    start_at_seconds: float = Field(10.0, ge=0, le=300)
    """Where playback starts in a clip."""
    autoplay: bool = True
    """Play the newest clip in mpv as soon as a challenge saved it."""
    clip_dir: str | None = Field(None, max_length=4096)
    """Where clips are moved after OBS saved them (default ``<data dir>/clips``); a file OBS
    wrote on another computer stays where OBS put it."""
    player: str = Field("mpv", min_length=1, max_length=4096)
    player_args: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=20)
    """Extra mpv options (``--fs``, ``--screen=1``...)."""
    save_timeout: float = Field(10.0, gt=0, le=60)
    """How long a save waits for OBS's ``ReplayBufferSaved`` before it is reported failed."""
    reconnect_max: float = Field(10.0, ge=0.1, le=300)
    """Longest wait between two connection attempts (the backoff doubles from 0.25 s)."""

    @model_validator(mode="after")
    def _check(self) -> ObsConfig:
        names = [i.name for i in self.instances]
        if len(set(names)) != len(names):
            raise ValueError("two OBS instances have the same name")
        if self.start_at_seconds >= self.replay_seconds:
            raise ValueError(f"start_at_seconds ({self.start_at_seconds:g}) must be less than "
                             f"replay_seconds ({self.replay_seconds})")
        return self

    def public(self) -> dict:
        """The settings as the screen sees them: ``password_set`` instead of each password."""
        data = self.model_dump(exclude={"instances"})
        data["instances"] = [
            {"name": i.name, "host": i.host, "port": i.port,
             "password_set": bool(i.password and i.password.get_secret_value())}
            for i in self.instances]
        return data

    def saved(self) -> dict:
        """The JSON the settings file holds (with the passwords)."""
        data = self.model_dump(exclude={"instances"})
        data["instances"] = [
            {"name": i.name, "host": i.host, "port": i.port,
             "password": i.password.get_secret_value() if i.password else None}
            for i in self.instances]
        return data


def load(config_section: dict, data_dir: Path) -> ObsConfig:
    """The saved settings if the screen saved some, else the ``--config`` section."""
    path = Path(data_dir) / SETTINGS_FILE
    if path.is_file():
        return ObsConfig.model_validate_json(path.read_bytes()[:1_000_000])
    return ObsConfig.model_validate(config_section)


def write_file(path: Path, data, mode: int = 0o600) -> None:
    """Write ``data`` as JSON beside ``path`` and rename it into place: the old file stays
    whole if anything fails (the temporary file is removed). ``OSError`` is the caller's."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(config: ObsConfig, data_dir: Path) -> None:
    """Write the settings file, readable by the owner only (it holds passwords)."""
    write_file(Path(data_dir) / SETTINGS_FILE, config.saved())
