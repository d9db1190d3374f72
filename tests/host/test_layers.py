"""The import layers (docs/architecture.md): host/ knows no plugin and no PSS, the PSS domain
(pss/) knows no plugin, and the two built-in plugins are peers that never import each other.

Read from the source with ``ast`` (every ``import`` and ``from … import``, also those inside
functions or under ``TYPE_CHECKING``), so an import that only runs on some path is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _package_of(path: Path, root: Path) -> str:
    # the folders are imported as restrike.host, restrike.plugins, restrike.pss (restrike/)
    parts = ("restrike", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


# The folders' own names are never imported: only their restrike.* names exist once installed,
# and importing both would load every module twice.
TOP_LEVEL = ("host", "plugins", "pss")

# folder -> module prefixes it must never import
FORBIDDEN = {
    "host": (*TOP_LEVEL, "restrike.plugins", "restrike.pss"),
    "pss": (*TOP_LEVEL, "restrike.plugins"),
    "plugins/plugin_database": (*TOP_LEVEL, "restrike.plugins.plugin_udp",
                                "restrike.plugins.plugin_obs"),
    "plugins/plugin_udp": (*TOP_LEVEL, "restrike.plugins.plugin_database",
                           "restrike.plugins.plugin_obs"),
    "plugins/plugin_obs": (*TOP_LEVEL, "restrike.plugins.plugin_database",
                           "restrike.plugins.plugin_udp"),
}


def _violations(folder: str, forbidden: tuple[str, ...], root: Path = REPO) -> list[str]:
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        for name in sorted(_imports(path, _package_of(path, root))):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_crosses_a_layer(folder):
    assert (REPO / folder).is_dir()
    assert _violations(folder, FORBIDDEN[folder]) == []


def test_the_walk_sees_relative_and_nested_imports(tmp_path):
    # the checker itself: a relative import climbing out of a plugin and one inside a function
    plugin = tmp_path / "plugins" / "plugin_database"
    plugin.mkdir(parents=True)
    (plugin / "bad.py").write_text(
        "from ..plugin_udp import live\n\n"
        "def f():\n    import restrike.plugins.plugin_udp.service\n")
    found = _violations("plugins/plugin_database", ("restrike.plugins.plugin_udp",), root=tmp_path)
    assert found == ["plugins/plugin_database/bad.py imports restrike.plugins.plugin_udp",
                     "plugins/plugin_database/bad.py imports restrike.plugins.plugin_udp.live",
                     "plugins/plugin_database/bad.py imports restrike.plugins.plugin_udp.service"]
