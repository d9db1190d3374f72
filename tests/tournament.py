"""A restrike instance of a tournament for the tests: a real ``python -m restrike --headless``
subprocess (``tests.reliability.conftest.Headless``) on a shared ``--database-url`` with its
``--court``, fed over real UDP from one socket (one scoring PC)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.reliability.conftest import Headless


class Instance(Headless):
    """A headless restrike on the shared database: ``--database-url``, ``--court`` and any
    further arguments (``--no-udp``) on its command line."""

    def __init__(self, data_dir: Path, url: str, court: str, *args: str):
        super().__init__(data_dir)
        self.court = court
        self.args = ("--database-url", url, "--court", court, *args)
        self.sender: socket.socket | None = None

    def command_line(self) -> list[str]:
        return [*super().command_line(), *self.args]

    def send(self, datagrams: list[str]) -> None:
        """The datagrams in order, always from the same socket (one scoring PC: a match is
        followed per sender)."""
        if self.sender is None:
            self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in datagrams:
            self.sender.sendto(data.encode("utf-8"), ("127.0.0.1", self.udp_port))

    def kill(self) -> None:
        super().kill()
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def stored(self) -> int:
        return self.stats()["storage"]["stored"]
