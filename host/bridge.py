"""The command bridge: how the page reaches the command registry, in the window and over HTTP.

Both transports pass what the caller sent to ``call`` unchanged; ``host.binder`` alone decides
how it binds to the command's parameters.

Window mode: ``make_js_api`` builds the ``js_api`` object given to ``webview.create_window``;
each registered command is a method of exactly that name, so the page calls
``window.pywebview.api.archive_old_events(30)``. pywebview would reject a failing call with the
Python traceback in ``error.stack``, so the methods never raise: they answer ``[ok, value]``
(``invoke``'s pair: the result, or ``{type, message, field}``), which ``frontend/api.js`` turns
back into the result or a rejected Promise whose error carries ``type``, ``message`` and
``field``.

Browser mode: ``host.http`` calls ``call`` and answers with the error's ``status``.
"""

from __future__ import annotations

import logging
from typing import Any

from restrike.host.commands import CommandRegistry
from restrike.host.errors import CommandError

log = logging.getLogger(__name__)


def call(registry: CommandRegistry, name: str, args: Any) -> Any:
    """Run a command; returns its JSON-ready result or raises ``CommandError`` (only)."""
    try:
        return registry.call(name, args)
    except CommandError:
        raise
    except Exception:  # the registry maps command failures; this is a bug in the host itself
        log.exception("bridge failure calling %s", name)
        raise CommandError(f"{name} failed") from None


def invoke(registry: CommandRegistry, name: str, args: Any) -> tuple[bool, Any]:
    """Run a command; ``(True, result)`` or ``(False, {type, message, field})``. Never raises."""
    try:
        return True, call(registry, name, args)
    except CommandError as exc:
        return False, exc.to_dict()


def make_js_api(registry: CommandRegistry) -> object:
    """An object whose public methods are exactly the registered commands."""

    def method_for(name: str):
        def method(self, *args):
            return list(invoke(registry, name, list(args)))

        method.__name__ = name
        method.__doc__ = registry.get(name).doc
        return method

    namespace = {name: method_for(name) for name in registry.names()}
    return type("RestrikeApi", (), namespace)()
