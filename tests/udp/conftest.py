"""Loaders for the shared feed fixtures (``shared/fixtures``, beside the repository).

``RESTRIKE_SHARED_DIR`` overrides where ``shared/`` is. A missing folder fails the tests that need
it with a message saying where it was looked for (a silent skip would hide lost coverage).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    """The ``shared/`` folder: $RESTRIKE_SHARED_DIR, else the sibling of the repository root."""
    override = os.environ.get("RESTRIKE_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


def load_datagrams(name: str) -> list[dict]:
    """A fixtures ``.jsonl`` file as ``[{"data": bytes, "note": str | None, "line": int}]``."""
    path = shared_dir() / "fixtures" / name
    if not path.is_file():
        pytest.fail(f"fixture {path} not found (set RESTRIKE_SHARED_DIR to the shared/ folder)")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            item = json.loads(line)
            if "datagram_b64" in item:
                data = base64.b64decode(item["datagram_b64"])
            else:
                data = item["datagram"].encode("utf-8")
            rows.append({"data": data, "note": item.get("note"), "line": number})
    return rows


def load_json(name: str):
    path = shared_dir() / "fixtures" / name
    if not path.is_file():
        pytest.fail(f"fixture {path} not found (set RESTRIKE_SHARED_DIR to the shared/ folder)")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def odd_datagrams() -> list[dict]:
    return load_datagrams("odd_datagrams.jsonl")


@pytest.fixture(scope="session")
def match_basic() -> list[dict]:
    return load_datagrams("match_basic.jsonl")


@pytest.fixture(scope="session")
def match_basic_expect() -> dict:
    return load_json("match_basic.expect.json")
