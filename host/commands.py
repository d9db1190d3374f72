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


JOB_MARK = "__restrike_job__"


def runs_as_job(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a command as long (archive, vacuum, export...): it then runs as a *job*, one at a
    time on its own thread, never on the pool that answers the quick commands; a second one
    while it runs fails with ``conflict`` naming it (``host.jobs``). Put it above the ``def``."""
    setattr(function, JOB_MARK, True)
    return function


class DuplicateCommand(RuntimeError):
    """Two plugins registered the same command name (a start-up error)."""


@dataclass(frozen=True)
class Command:
    name: str
    plugin: str
    function: Callable[..., Any]
    binder: Binder
    doc: str
    job: bool = False
    """Marked with ``runs_as_job``: runs as a job (``host.jobs``)."""

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
                          inspect.getdoc(function) or "",
                          job=bool(getattr(function, JOB_MARK, False)))
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
        return self.prepare(name, args)[1]()

    def prepare(self, name: str, args: Any = None) -> tuple[Command, Callable[[], Any]]:
        """Validate the arguments now (``CommandError`` if bad) and return the command and a
        function that runs it (``call`` = ``prepare`` then run): the executor decides where
        and when it runs (``host.jobs``) only after the arguments were found good."""
        command = self.get(name)
        values = command.binder.bind(args)
        return command, lambda: self._run(command, values)

    def _run(self, command: Command, values: dict[str, Any]) -> Any:
        name = command.name
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
