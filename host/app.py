"""The running host: settings, plugin manager, hooks, commands and push service, together.

Start-up order: plugins register their commands, the push service starts, then each plugin's
``restrike_startup`` runs in order. ``stop()`` shuts down exactly the plugins whose start-up ran,
in reverse order, then the push service. Several apps can live in one process (tests): plugins
keep their state in ``app.extensions``, never in module globals.
"""

from __future__ import annotations

import logging
import threading

from restrike.host.commands import CommandRegistry
from restrike.host.hooks import Hooks, StartupError
from restrike.host.plugins import make_plugin_manager
from restrike.host.push import PushService
from restrike.host.settings import Settings

log = logging.getLogger(__name__)


class App:
    """One restrike host instance."""

    def __init__(self, settings: Settings, *, builtins=None, load_entrypoints: bool = True,
                 extra_plugins: tuple = ()):
        self.settings = settings
        kwargs = {} if builtins is None else {"builtins": builtins}
        # extra_plugins: objects registered directly (tests, embedding), called after the others
        self.pm, self.plugin_infos = make_plugin_manager(load_entrypoints=load_entrypoints,
                                                         extra_plugins=extra_plugins, **kwargs)
        self.hooks = Hooks(self.pm, self.plugin_infos)
        self.commands = CommandRegistry()
        self.push = PushService()
        self.extensions: dict[str, object] = {}
        self._started: list[str] = []
        self._stopped = threading.Event()
        self._register_host_commands()

    def _register_host_commands(self) -> None:
        self.commands.register("list_plugins", self.list_plugins, plugin="host")
        self.commands.register("get_push_stats", self.push.stats, plugin="host")

    def list_plugins(self) -> list[dict]:
        """The plugins: ``[{name, version, hooks, builtin, distribution, loaded, errors,
        last_error}]``.

        ``errors`` counts the exceptions the plugin raised in its hooks since start. A plugin
        that was found but refused (unknown hook, cannot be imported) has ``loaded`` False, no
        hooks and the reason in ``last_error``.
        """
        return [
            {
                "name": info.name,
                "version": info.version,
                "hooks": self.hooks.hook_names_of(info.name),
                "builtin": info.builtin,
                "distribution": info.distribution,
                "loaded": info.loaded,
                "errors": info.errors,
                "last_error": info.last_error,
            }
            for info in self.plugin_infos.values()
        ]

    def start(self) -> "App":
        """Register commands, start the push service and every plugin (in order)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.hooks.register_commands(
            lambda plugin: (lambda name, fn: self.commands.register(name, fn, plugin=plugin)),
            self,
        )
        self.push.start()
        try:
            self._started = self.hooks.startup(self)
        except StartupError as exc:
            self._started = exc.started
            self.stop()
            raise
        log.info("restrike started: plugins %s", ", ".join(self._started))
        return self

    def stop(self) -> None:
        """Shut the started plugins down in reverse order; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.hooks.shutdown(self, self._started)
        self.push.stop()
        log.info("restrike stopped")

    def __enter__(self) -> "App":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
