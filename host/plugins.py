"""The one place that creates restrike's PluginManager, and the guards around implementations.

Built-in plugins come first, in start-up order (the database before UDP ingest, so the writer
exists before the first datagram), then third-party plugins from the ``restrike`` entry-point
group, then objects passed by the embedder (tests). ``RESTRIKE_LOAD_PLUGINS`` restricts the
third-party ones to a comma list of distribution names (empty: none); tests set it empty unless
a test asks for plugins.

Hooks are called by pluggy (``pm.hook.<name>``), with pluggy's rules: ``tryfirst``/``trylast``,
``wrapper=True`` and old-style ``hookwrapper`` implementations, ``pm.trace``. pluggy calls the
plain implementations of a hook last-registered first, so plugins are registered in the reverse
of the order above: without ``tryfirst``/``trylast`` they are called database, UDP, third-party.

Each plain (non-wrapper) implementation is guarded once, at registration: its ``HookImpl``
function is replaced by a wrapper that knows the plugin (``current_plugin()`` during the call)
and applies the hook's policy (``GUARDS``):

- ``isolate``: an exception is logged with the plugin's name, counted in ``list_plugins()``
  (``errors``, ``last_error``) and the implementation returns None: the other plugins (and the
  database) still get the call. The ingest hooks, ``restrike_shutdown`` and the CLI hook.
- ``startup``: the plugin is recorded as started before it runs; an exception is counted and
  raised as ``StartupError`` naming the plugin, which stops start-up.
- ``propagate``: an exception goes to the caller (``restrike_register_commands``: a duplicate
  command name is a start-up error).

A plugin that implements a ``restrike_*`` hook no spec declares (``restrike_pss_event``) is not
loaded: it is unregistered again (pluggy's ``check_pending`` rule, for this one plugin), the log
says which hook, and ``list_plugins()`` shows it with ``loaded: False`` and that error. The same
holds for a plugin that cannot be imported or whose implementation has arguments the spec lacks.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from restrike.host import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "restrike"
LOAD_ENV = "RESTRIKE_LOAD_PLUGINS"

BUILTIN_PLUGINS = (
    ("database", "restrike.plugins.plugin_database.plugin"),
    ("udp", "restrike.plugins.plugin_udp.plugin"),
)

Guard = Literal["isolate", "startup", "propagate"]

GUARDS: dict[str, Guard] = {
    "restrike_register_commands": "propagate",
    "restrike_startup": "startup",
    "restrike_shutdown": "isolate",
    "restrike_pss_events": "isolate",
    "restrike_udp_session": "isolate",
    "restrike_ingest_stats": "isolate",
    "restrike_cli_subcommands": "isolate",
}
"""How a failing implementation of each hook is treated; a hook missing here is isolated."""

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("restrike_plugin",
                                                                      default=None)
_STARTED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("restrike_started",
                                                                            default=None)


class StartupError(RuntimeError):
    """A plugin failed to start; the message names the plugin.

    ``started`` lists the plugins whose start-up ran (the failing one last), in order.
    """

    def __init__(self, message: str, started: list[str] | None = None):
        super().__init__(message)
        self.started: list[str] = list(started or [])


def current_plugin() -> str | None:
    """The name of the plugin whose hook implementation is running on this thread, else None."""
    return _CURRENT.get()


@dataclass
class PluginInfo:
    """What ``list_plugins`` says about a plugin: registered, or refused with ``last_error``."""

    name: str
    version: str | None
    builtin: bool
    distribution: str | None = None
    errors: int = 0
    last_error: str | None = None
    loaded: bool = True
    extra: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_error(self, hook_name: str, exc: BaseException) -> None:
        """Count an exception the plugin raised in ``hook_name`` (any thread)."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{hook_name}: {type(exc).__name__}: {exc}"


def _guarded(hook_name: str, info: PluginInfo, function: Callable[..., Any]) -> Callable[..., Any]:
    policy = GUARDS.get(hook_name, "isolate")
    name = info.name

    @functools.wraps(function)
    def guarded(*args: Any) -> Any:
        token = _CURRENT.set(name)
        try:
            if policy == "startup":
                started = _STARTED.get()
                if started is not None:
                    started.append(name)
            return function(*args)
        except Exception as exc:
            if policy == "propagate":
                raise
            info.record_error(hook_name, exc)
            if policy == "startup":
                raise StartupError(f"plugin {name} failed to start: {exc}") from exc
            log.exception("plugin %s failed in %s", name, hook_name)
            return None
        finally:
            _CURRENT.reset(token)

    return guarded


def _guard_implementations(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> None:
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                # pluggy read the argument names from the original function at registration and
                # passes them positionally, so the guard takes *args.
                impl.function = _guarded(caller.name, info, impl.function)  # type: ignore[misc]


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements that no spec declares (pluggy's check_pending rule)."""
    return sorted(
        caller.name for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    )


def register_plugin(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> bool:
    """Register ``plugin`` under ``info.name`` and guard its implementations; False (and
    ``info.loaded`` False with the reason in ``info.last_error``) when it is refused."""
    try:
        pm.register(plugin, name=info.name)
    except pluggy.PluginValidationError as exc:
        return _refuse(info, str(exc))
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        pm.unregister(plugin)
        return _refuse(info, f"unknown hook {', '.join(unknown)} (not a restrike hook; "
                             f"misspelled?)")
    _guard_implementations(pm, plugin, info)
    return True


def _refuse(info: PluginInfo, reason: str) -> bool:
    info.loaded = False
    info.last_error = reason
    log.error("plugin %s is not loaded: %s", info.name, reason)
    return False


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
    extra_plugins: Iterable[object] = (),
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Create the PluginManager with the built-in plugins, the allowed third-party ones and
    ``extra_plugins`` (objects, named by their ``__name__``).

    Returns the manager and the ``PluginInfo`` of every plugin (refused ones too), by name, in
    call order.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    plugins: list[tuple[object, PluginInfo]] = []
    for name, module_name in builtins:
        info = infos[name] = PluginInfo(name=name, version=_restrike_version(), builtin=True)
        plugins.append((importlib.import_module(module_name), info))
    if load_entrypoints:
        plugins.extend(_entrypoint_plugins(infos))
    for plugin in extra_plugins:  # objects registered directly (tests, embedding)
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        info = infos[name] = PluginInfo(name=name, version=None, builtin=False)
        plugins.append((plugin, info))
    for plugin, info in reversed(plugins):  # pluggy calls the last registered first
        register_plugin(pm, plugin, info)
    return pm, infos


def _entrypoint_plugins(infos: dict[str, PluginInfo]) -> list[tuple[object, PluginInfo]]:
    wanted = _wanted_distributions()
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        if wanted is not None and (dist or "").lower() not in wanted:
            continue
        if ep.name in infos:
            log.error("plugin %s from %s: the name is taken, not loaded", ep.name, dist)
            continue
        info = PluginInfo(name=ep.name, version=ep.dist.version if ep.dist else None,
                          builtin=False, distribution=dist)
        try:
            plugin = ep.load()
        except Exception as exc:
            # A broken third-party package must not keep the app (and ingest) from starting.
            log.exception("plugin %s from %s is not loaded: it cannot be imported", ep.name, dist)
            info.loaded = False
            info.last_error = f"cannot be imported: {type(exc).__name__}: {exc}"
            infos[ep.name] = info
            continue
        infos[ep.name] = info
        found.append((plugin, info))
        log.info("found plugin %s (%s %s)", ep.name, dist, info.version)
    return found
