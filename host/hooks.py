"""The typed façade through which core code calls hooks (core code never spells ``pm.hook.x``).

Each implementation is called on its own, in registration order, so that one failing plugin is
logged with its name, counted in ``list_plugins()``, and cannot keep the others from running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from host.plugins import PluginInfo

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A plugin failed to start; the message names the plugin."""


class Hooks:
    """Calls the ``restrike_*`` hooks of every registered plugin."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]):
        self._pm = pm
        self._infos = infos
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------
    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        # pluggy keeps implementations in registration order (and calls them in reverse).
        return list(getattr(self._pm.hook, hook_name).get_hookimpls())

    @staticmethod
    def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        return impl.function(*[kwargs[name] for name in impl.argnames])

    def _count_error(self, plugin_name: str, hook_name: str, exc: BaseException) -> None:
        with self._lock:
            info = self._infos.get(plugin_name)
            if info is not None:
                info.errors += 1
                info.last_error = f"{hook_name}: {type(exc).__name__}: {exc}"

    def _call_isolated(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        results = []
        for impl in self._impls(hook_name):
            try:
                results.append((impl.plugin_name, self._call(impl, kwargs)))
            except Exception as exc:
                log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)
                self._count_error(impl.plugin_name, hook_name, exc)
        return results

    def hook_names_of(self, plugin_name: str) -> list[str]:
        plugin = self._pm.get_plugin(plugin_name)
        return sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])

    # -- the hooks ------------------------------------------------------------------------
    def addoption(self, parser: Any) -> None:
        """Let every plugin add its command-line options to ``parser`` (before parsing)."""
        self._pm.hook.restrike_addoption(parser=parser)

    def register_commands(self, register_for: Callable[[str], Callable], app: Any) -> None:
        """Let every plugin register its commands; ``register_for(plugin)`` gives its register."""
        for impl in self._impls("restrike_register_commands"):
            self._call(impl, {"register": register_for(impl.plugin_name), "app": app})

    def startup(self, app: Any) -> list[str]:
        """Start plugins in order; return the names whose start-up ran (also the failing one).

        On failure the plugins that ran are recorded in ``StartupError.started`` so that the
        caller can shut exactly those down.
        """
        started: list[str] = []
        for impl in self._impls("restrike_startup"):
            started.append(impl.plugin_name)
            try:
                self._call(impl, {"app": app})
            except Exception as exc:
                self._count_error(impl.plugin_name, "restrike_startup", exc)
                error = StartupError(f"plugin {impl.plugin_name} failed to start: {exc}")
                error.started = started
                raise error from exc
        return started

    def shutdown(self, app: Any, started: Sequence[str]) -> None:
        """Shut down, in reverse order, the plugins whose start-up ran; never raises."""
        started_set = set(started)
        for impl in reversed(self._impls("restrike_shutdown")):
            if impl.plugin_name not in started_set and self._has_startup(impl.plugin_name):
                continue
            try:
                self._call(impl, {"app": app})
            except Exception as exc:
                log.exception("plugin %s failed in restrike_shutdown", impl.plugin_name)
                self._count_error(impl.plugin_name, "restrike_shutdown", exc)

    def _has_startup(self, plugin_name: str) -> bool:
        return any(i.plugin_name == plugin_name for i in self._impls("restrike_startup"))

    def pss_events(self, events: list, app: Any) -> None:
        """Hand a batch of ingested events to every plugin; failures are isolated and counted."""
        self._call_isolated("restrike_pss_events", events=events, app=app)

    def udp_session(self, session: dict, app: Any) -> None:
        """Tell every plugin that a UDP session started or stopped."""
        self._call_isolated("restrike_udp_session", session=session, app=app)

    def ingest_stats(self, app: Any) -> dict:
        """The merged statistics sections the plugins contribute to ``get_udp_stats``."""
        merged: dict = {}
        for _name, result in self._call_isolated("restrike_ingest_stats", app=app):
            if result:
                merged.update(result)
        return merged

    def cli_subcommands(self) -> dict[str, Callable[[list[str]], int]]:
        """Extra ``restrike <name> ...`` commands that plugins offer."""
        merged: dict = {}
        for _name, result in self._call_isolated("restrike_cli_subcommands"):
            if result:
                merged.update(result)
        return merged
