"""The one place that creates restrike's PluginManager.

Built-in plugins are registered explicitly, in start-up order (the database before UDP ingest,
so the writer exists before the first datagram). Third-party plugins come from the ``restrike``
entry-point group; ``RESTRIKE_LOAD_PLUGINS`` restricts them to a comma list of distribution
names (empty: none). Tests set it to empty unless a test asks for plugins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass, field

import pluggy

from host import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "restrike"
LOAD_ENV = "RESTRIKE_LOAD_PLUGINS"

BUILTIN_PLUGINS = (
    ("database", "plugins.plugin_database.plugin"),
    ("udp", "plugins.plugin_udp.plugin"),
    ("obs", "plugins.plugin_obs.plugin"),
)


@dataclass
class PluginInfo:
    """What ``list_plugins`` says about a registered plugin."""

    name: str
    version: str | None
    builtin: bool
    distribution: str | None = None
    errors: int = 0
    last_error: str | None = None
    extra: dict = field(default_factory=dict)


def _wanted_distributions() -> set[str] | None:
    """None means every installed plugin; an empty set means none."""
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def _restrike_version() -> str | None:
    try:
        return importlib.metadata.version("restrike")
    except importlib.metadata.PackageNotFoundError:
        return None


def make_plugin_manager(
    builtins: tuple[tuple[str, str], ...] = BUILTIN_PLUGINS,
    load_entrypoints: bool = True,
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Create the PluginManager with the built-in plugins and the allowed third-party ones.

    Returns the manager and the ``PluginInfo`` of every registered plugin, by name.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    for name, module_name in builtins:
        pm.register(importlib.import_module(module_name), name=name)
        infos[name] = PluginInfo(name=name, version=_restrike_version(), builtin=True)
    if load_entrypoints:
        _load_entrypoints(pm, infos)
    return pm, infos


def _load_entrypoints(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    wanted = _wanted_distributions()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        if wanted is not None and (dist or "").lower() not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in infos:
            log.error("plugin %s from %s: the name is taken, not loaded", ep.name, dist)
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception:
            # A broken third-party package must not keep the app (and ingest) from starting.
            log.exception("plugin %s from %s could not be loaded", ep.name, dist)
            continue
        infos[ep.name] = PluginInfo(
            name=ep.name,
            version=ep.dist.version if ep.dist else None,
            builtin=False,
            distribution=dist,
        )
        log.info("loaded plugin %s (%s %s)", ep.name, dist, infos[ep.name].version)
