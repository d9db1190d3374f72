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
from restrike.host.jobs import Jobs, outcome

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
    """Run a command on this thread; ``(True, result)`` or ``(False, {type, message, field})``.
    Never raises. The app's transports go through ``app.jobs`` instead (``host.jobs``), which
    also keeps long commands to one at a time."""
    return outcome(name, lambda: call(registry, name, args))


def make_js_api(registry: CommandRegistry, jobs: Jobs | None = None) -> object:
    """An object whose public methods are exactly the registered commands. With ``jobs``
    (the app's), each call runs through it: pywebview gives every call its own thread, where a
    quick command runs; a long one takes the one job slot (``conflict`` while another runs)."""

    def method_for(name: str):
        def method(self, *args):
            ok, value = (jobs.call(name, list(args)) if jobs is not None
                         else invoke(registry, name, list(args)))
            return [ok, value]

        method.__name__ = name
        method.__doc__ = registry.get(name).doc
        return method

    namespace = {name: method_for(name) for name in registry.names()}
    return type("RestrikeApi", (), namespace)()
