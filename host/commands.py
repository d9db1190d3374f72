"""The command registry: what the frontend may call, with arguments validated by pydantic.

A command is a plain function with type hints. How the arguments a caller sent become its
keyword arguments (positional or named, snake_case or camelCase, strict JSON types) is decided in
one place, ``host.binder``. Validation happens before the function runs, so a bad argument
changes nothing. The registry is built at start-up and then only read; pywebview calls commands
concurrently from its own threads.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic_core import to_jsonable_python

from restrike.host.binder import Binder, validation_error
from restrike.host.errors import CommandError, NotFound

log = logging.getLogger(__name__)


class DuplicateCommand(RuntimeError):
    """Two plugins registered the same command name (a start-up error)."""


@dataclass(frozen=True)
class Command:
    name: str
    plugin: str
    function: Callable[..., Any]
    binder: Binder
    doc: str

    @property
    def params(self) -> tuple[str, ...]:
        return self.binder.params


class CommandRegistry:
    """Registered commands by name; ``call`` validates, runs and maps errors."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._lock = threading.Lock()

    def register(self, name: str, function: Callable[..., Any], plugin: str = "host") -> None:
        """Add a command; a name that exists already raises ``DuplicateCommand`` naming both."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"command name {name!r} from plugin {plugin} is not snake_case")
        command = Command(name, plugin, function, Binder.of(name, function),
                          inspect.getdoc(function) or "")
        with self._lock:
            existing = self._commands.get(name)
            if existing is not None:
                raise DuplicateCommand(
                    f"command {name!r} is registered by both plugin {existing.plugin} "
                    f"and plugin {plugin}"
                )
            self._commands[name] = command

    def names(self) -> list[str]:
        return sorted(self._commands)

    def get(self, name: str) -> Command:
        command = self._commands.get(name)
        if command is None:
            raise NotFound(f"there is no command named {name!r}", field=None)
        return command

    def call(self, name: str, args: Any = None) -> Any:
        """Bind ``args`` (see ``host.binder``), run the command; returns a JSON-ready result or
        raises ``CommandError``."""
        command = self.get(name)
        values = command.binder.bind(args)
        try:
            result = command.function(**values)
            return to_jsonable_python(result)
        except CommandError:
            raise
        except pydantic.ValidationError as exc:
            # A command that validates further inside (e.g. a settings model) reports the same way.
            raise validation_error(exc) from None
        except Exception as exc:
            log.exception("command %s (plugin %s) failed", name, command.plugin)
            raise CommandError(
                f"{name} failed: {type(exc).__name__}: {_safe_message(exc)}"
            ) from exc


def _safe_message(exc: Exception) -> str:
    """The exception's message without file system paths (the page never sees paths)."""
    text = str(exc) or "no details"
    return re.sub(r"(/[^\s'\"]+)+", "<path>", text)[:300]
