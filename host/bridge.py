"""The command bridge: how the page reaches the command registry.

Window mode: ``make_js_api`` builds the ``js_api`` object given to ``webview.create_window``;
each registered command is a method of exactly that name, so the page calls
``window.pywebview.api.archive_old_events(30)``. pywebview would reject a failing call with the
Python traceback in ``error.stack``, so the methods never raise: they return an error envelope
``{"__restrike_error__": {type, message, field}}`` that ``frontend/api.js`` turns into a rejected
Promise whose error carries ``type``, ``message`` and ``field``.

Browser mode uses ``invoke`` through ``host.http``; both transports share ``invoke``.
"""

from __future__ import annotations

import logging
from typing import Any

from host.commands import CommandRegistry, to_snake
from host.errors import CommandError
from host.jobs import Jobs, outcome

log = logging.getLogger(__name__)

ERROR_KEY = "__restrike_error__"
NAMED_KEY = "__named__"


def invoke(registry: CommandRegistry, name: str, args: Any) -> tuple[bool, Any]:
    """Run a command on this thread; ``(True, result)`` or ``(False, {type, message, field})``.
    Never raises. The app's transports go through ``app.jobs`` instead (``host.jobs``), which
    also keeps long commands to one at a time."""
    return outcome(name, lambda: registry.call(name, args))


def js_arguments(registry: CommandRegistry, name: str, args: tuple) -> Any:
    """Interpret the arguments of a pywebview call.

    ``api.x({"__named__": {...}})`` (what ``invoke(name, args)`` in api.js sends) is named;
    ``api.x({daysOld: 30})`` is named too when every key names a parameter; anything else is
    positional.
    """
    if len(args) == 1 and isinstance(args[0], dict):
        only = args[0]
        if set(only) == {NAMED_KEY} and isinstance(only[NAMED_KEY], dict):
            return only[NAMED_KEY]
        try:
            params = registry.get(name).params
        except CommandError:
            return list(args)
        if only and all((k if k in params else to_snake(str(k))) in params for k in only):
            return only
    return list(args)


def make_js_api(registry: CommandRegistry, jobs: Jobs | None = None) -> object:
    """An object whose public methods are exactly the registered commands. With ``jobs``
    (the app's), each call runs through it: pywebview gives every call its own thread, where a
    quick command runs; a long one takes the one job slot (``conflict`` while another runs)."""

    def method_for(name: str):
        def method(self, *args):
            arguments = js_arguments(registry, name, args)
            ok, value = (jobs.call(name, arguments) if jobs is not None
                         else invoke(registry, name, arguments))
            return value if ok else {ERROR_KEY: value}

        method.__name__ = name
        method.__doc__ = registry.get(name).doc
        return method

    namespace = {name: method_for(name) for name in registry.names()}
    return type("RestrikeApi", (), namespace)()
