"""Every hook is documented in docs/plugins.md and exercised by a test (as datasette does)."""

from __future__ import annotations

import inspect
import re

import pytest

from restrike.host import hookspecs
from tests.conftest import REPO

HOOKS = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("restrike_")
)
FACADE = {  # how tests reach a hook through the typed façade / app
    "restrike_register_commands": "app.start(",
    "restrike_startup": "restrike_startup",
    "restrike_shutdown": "restrike_shutdown",
    "restrike_pss_events": "restrike_pss_events",
    "restrike_udp_session": "restrike_udp_session",
    "restrike_ingest_stats": "restrike_ingest_stats",
    "restrike_cli_subcommands": "restrike_cli_subcommands",
}


def test_hooks_found():
    assert len(HOOKS) >= 6


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_and_documentation(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"
    docs = (REPO / "docs" / "plugins.md").read_text()
    section = re.search(rf"^### {hook}\(.*?\)\n(.*?)(?=^### |^## |\Z)", docs, re.M | re.S)
    assert section, f"docs/plugins.md has no section for {hook}"
    assert "```python" in section.group(1), f"{hook}: the docs have no example"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook):
    tests = "".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py")
                    if p.name != "test_hook_docs.py")
    assert f"def {hook}(" in tests, f"no test implements {hook}"
    assert FACADE[hook] in tests
