"""The command registry: what the frontend may call, with arguments validated by pydantic.

A command is a plain function with type hints. Callers pass positional arguments (a list) or
named ones (a dict, names in snake_case or camelCase, so a Tauri-style
``invoke('archive_old_events', {daysOld: 30})`` works). Validation happens before the function
runs, so a bad argument changes nothing. The registry is built at start-up and then only read;
pywebview calls commands concurrently from its own threads.
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

from host.errors import CommandError, InvalidArgument, NotFound

log = logging.getLogger(__name__)

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def to_snake(name: str) -> str:
    """``daysOld`` → ``days_old`` (snake_case names are returned unchanged)."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def to_camel(name: str) -> str:
    """``days_old`` → ``daysOld``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


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
    params: tuple[str, ...]
    model: type[pydantic.BaseModel]
    doc: str
    job: bool = False
    """Marked with ``runs_as_job``: runs as a job (``host.jobs``)."""


def _arguments_model(name: str, function: Callable) -> tuple[tuple[str, ...], type]:
    fields: dict[str, Any] = {}
    params = []
    hints = inspect.get_annotations(function, eval_str=True)
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"command {name}: *args/**kwargs cannot be validated")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
        params.append(param.name)
    model = pydantic.create_model(
        f"{name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    return tuple(params), model


def _plain_reason(error: dict) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        nested = len(error["loc"]) > 1
        return "is not a known field" if nested else "is not an argument of this command"
    return error["msg"][0].lower() + error["msg"][1:]


def validation_error(exc: pydantic.ValidationError, prefix: str = "") -> InvalidArgument:
    """The first pydantic error as an ``InvalidArgument`` naming the (camelCase) field."""
    first = exc.errors(include_url=False)[0]
    loc = [to_camel(str(part)) if isinstance(part, str) else str(part) for part in first["loc"]]
    field = ".".join(([prefix] if prefix else []) + loc) or None
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return InvalidArgument(f"{field}: {_plain_reason(first)}{tail}", field=field)


class CommandRegistry:
    """Registered commands by name; ``call`` validates, runs and maps errors."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._lock = threading.Lock()

    def register(self, name: str, function: Callable[..., Any], plugin: str = "host") -> None:
        """Add a command; a name that exists already raises ``DuplicateCommand`` naming both."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"command name {name!r} from plugin {plugin} is not snake_case")
        params, model = _arguments_model(name, function)
        command = Command(name, plugin, function, params, model, inspect.getdoc(function) or "",
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

    def bind(self, command: Command, args: Any) -> dict[str, Any]:
        """Turn positional or named JSON arguments into the function's keyword arguments."""
        if args is None:
            return {}
        if isinstance(args, (list, tuple)):
            if len(args) > len(command.params):
                raise InvalidArgument(
                    f"{command.name} takes {len(command.params)} argument(s), got {len(args)}"
                )
            return dict(zip(command.params, args))
        if isinstance(args, dict):
            named = {}
            for key, value in args.items():
                key = str(key)
                snake = key if key in command.params else to_snake(key)
                if snake not in command.params:
                    raise InvalidArgument(
                        f"{key}: is not an argument of {command.name} "
                        f"(it takes: {', '.join(map(to_camel, command.params)) or 'nothing'})",
                        field=key,
                    )
                if snake in named:
                    raise InvalidArgument(f"{key}: given twice", field=to_camel(snake))
                named[snake] = value
            return named
        raise InvalidArgument("arguments must be a list (positional) or an object (named)")

    def call(self, name: str, args: Any = None) -> Any:
        """Validate and run a command; returns a JSON-ready result or raises ``CommandError``."""
        return self.prepare(name, args)[1]()

    def prepare(self, name: str, args: Any = None) -> tuple[Command, Callable[[], Any]]:
        """Validate the arguments now (``CommandError`` if bad) and return the command and a
        function that runs it (``call`` = ``prepare`` then run): the executor decides where
        and when it runs (``host.jobs``) only after the arguments were found good."""
        command = self.get(name)
        kwargs = self.bind(command, args)
        try:
            validated = command.model.model_validate(kwargs)
        except pydantic.ValidationError as exc:
            raise validation_error(exc) from None
        values = {p: getattr(validated, p) for p in command.params}
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
