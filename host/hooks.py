"""The typed façade through which core code calls hooks (core code never spells ``pm.hook.x``).

Every call goes through pluggy (``pm.hook.<name>(...)``), so pluggy's rules hold for plugin
authors as they know them from pytest: ``tryfirst``/``trylast``, ``wrapper=True`` (and old-style
``hookwrapper``) implementations around the others, and ``pm.trace`` for tracing. What keeps a
court running is added at registration, not here: each plain implementation is guarded
(``host.plugins``), so a failing plugin is logged with its name, counted in ``list_plugins()``,
and cannot keep the others from running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from restrike.host.plugins import _STARTED, PluginInfo, StartupError, current_plugin

if TYPE_CHECKING:
    from restrike.host.app import App

__all__ = ["Hooks", "StartupError"]

log = logging.getLogger(__name__)

CliMain = Callable[[list[str]], int]
Register = Callable[[str, Callable[..., Any]], None]


class Hooks:
    """Calls the ``restrike_*`` hooks of every registered plugin, through pluggy."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]):
        self._pm = pm
        self._infos = infos

    def hook_names_of(self, plugin_name: str) -> list[str]:
        """The hooks a registered plugin implements (none for a refused one)."""
        plugin = self._pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])

    def _call_order(self, hook_name: str) -> list[str]:
        """The plugins with a plain implementation of ``hook_name``, in pluggy's call order."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        return [i.plugin_name for i in reversed(impls) if not (i.wrapper or i.hookwrapper)]

    # -- the hooks ------------------------------------------------------------------------
    def register_commands(self, register_for: Callable[[str], Register], app: App) -> None:
        """Let every plugin register its commands; ``register_for(plugin)`` gives its register.

        The ``register`` a plugin receives knows which plugin calls it (during the hook call).
        """
        def register(name: str, fn: Callable[..., Any]) -> None:
            plugin = current_plugin()
            if plugin is None:
                raise RuntimeError("register() is only valid during restrike_register_commands")
            register_for(plugin)(name, fn)

        self._pm.hook.restrike_register_commands(register=register, app=app)

    def startup(self, app: App) -> list[str]:
        """Start plugins (pluggy's order); return the names whose start-up ran, in order.

        On failure ``StartupError.started`` lists the plugins that ran (the failing one last),
        so that the caller can shut exactly those down.
        """
        started: list[str] = []
        token = _STARTED.set(started)
        try:
            self._pm.hook.restrike_startup(app=app)
        except StartupError as exc:
            exc.started = list(started)
            raise
        except Exception as exc:  # a wrapper=True implementation failed around the others
            raise StartupError(f"a restrike_startup wrapper failed: {exc}", started) from exc
        finally:
            _STARTED.reset(token)
        return started

    def shutdown(self, app: App, started: Sequence[str]) -> None:
        """Shut down, in reverse order, the plugins whose start-up ran (and those without a
        start-up); never raises. Each plugin's shutdown is its own pluggy call (a subset hook
        caller), so the order is exactly the reverse of start-up, whatever pluggy's order."""
        with_startup = set(self._call_order("restrike_startup"))
        order = [*reversed(started),
                 *(p for p in self._call_order("restrike_shutdown") if p not in with_startup)]
        others = self._pm.get_plugins()
        for name in order:
            plugin = self._pm.get_plugin(name)
            if plugin is None:
                continue
            caller = self._pm.subset_hook_caller(
                "restrike_shutdown", remove_plugins=[p for p in others if p is not plugin])
            self._isolated("restrike_shutdown", caller, app=app)

    def pss_events(self, events: Sequence[object], app: App) -> None:
        """Hand a batch of ingested events (``pss.ingested.IngestedEvent``) to every plugin;
        failures are isolated and counted."""
        self._isolated("restrike_pss_events", self._pm.hook.restrike_pss_events,
                       events=events, app=app)

    def udp_session(self, session: object, app: App) -> None:
        """Tell every plugin that a UDP session (``pss.session.UdpSession``) started or
        stopped."""
        self._isolated("restrike_udp_session", self._pm.hook.restrike_udp_session,
                       session=session, app=app)

    def ingest_stats(self, app: App) -> dict[str, Any]:
        """The merged statistics sections the plugins contribute to ``get_udp_stats``."""
        merged: dict[str, Any] = {}
        for result in self._isolated("restrike_ingest_stats",
                                     self._pm.hook.restrike_ingest_stats, app=app):
            merged.update(result)
        return merged

    def cli_subcommands(self) -> dict[str, CliMain]:
        """Extra ``restrike <name> ...`` commands that plugins offer."""
        merged: dict[str, CliMain] = {}
        for result in self._isolated("restrike_cli_subcommands",
                                     self._pm.hook.restrike_cli_subcommands):
            merged.update(result)
        return merged

    @staticmethod
    def _isolated(hook_name: str, caller: Callable[..., list[Any]], **kwargs: Any) -> list[Any]:
        """The non-None results of a hook call in call order. Plain implementations are
        guarded already; this catches what a wrapper implementation raises, so it cannot
        stop ingest either (logged, not attributed: a wrapper wraps every plugin)."""
        try:
            results = caller(**kwargs)
        except Exception:
            log.exception("a hook wrapper failed in %s", hook_name)
            return []
        # pluggy drops None results; a firstresult-less hook returns a list
        return [r for r in results if r]
