"""The one argument binder: what a caller sent, parsed from JSON → a command's keyword arguments.

The window bridge (``window.pywebview.api.<command>(...)``) and HTTP
(``POST /api/invoke/<command>``) both hand the binder the arguments exactly as the caller sent
them, and nothing else decides their shape:

- a list is the call's argument list, positional. One exception, so that
  ``api.archive_old_events({daysOld: 30})`` works: a list holding a single object is *named* when
  every key of the object names a parameter, or when the first parameter cannot take an object
  (then a misspelled name is reported as "not an argument" instead of as a wrong value);
- an object is named; each name in snake_case or camelCase (pydantic's alias generator);
- nothing (``None``) is no argument.

The named arguments are then validated as JSON in pydantic's strict mode: an ``int`` parameter
takes a JSON integer only (``true``, ``"16000"`` and ``1.0`` are refused), a ``bool`` only
``true``/``false``, a ``str`` only a string. Types that have a documented text form in JSON keep
it (dates and times as ISO strings, enums by value, tuples as arrays), as pydantic's strict JSON
mode defines them. Errors name the field as the caller spelled it (camelCase for positional
arguments: the page's spelling).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
import pydantic_core
from pydantic.alias_generators import to_camel, to_snake

from restrike.host.errors import InvalidArgument

_CONFIG = pydantic.ConfigDict(
    extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
    arbitrary_types_allowed=True,
)


@dataclass(frozen=True)
class Binder:
    """How one command's JSON arguments bind to its parameters (built once, at registration)."""

    command: str
    params: tuple[str, ...]
    model: type[pydantic.BaseModel]
    first_takes_object: bool

    @classmethod
    def of(cls, command: str, function: Callable[..., Any]) -> Binder:
        """The binder of ``function``; ``*args``/``**kwargs`` cannot be validated (TypeError)."""
        hints = inspect.get_annotations(function, eval_str=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"command {command}: *args/**kwargs cannot be validated")
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
        model = pydantic.create_model(f"{command}_arguments", __config__=_CONFIG, **fields)
        params = tuple(fields)
        first = _takes_object(fields[params[0]][0]) if params else False
        return cls(command, params, model, first)

    def bind(self, args: Any) -> dict[str, Any]:
        """Validated keyword arguments from ``args``; ``InvalidArgument`` naming the field."""
        if args is None:
            named: Mapping[str, Any] = {}
        elif isinstance(args, (list, tuple)):
            if len(args) == 1 and isinstance(args[0], dict) and self._is_named(args[0]):
                named = args[0]
            else:
                named = self._positional(args)
        elif isinstance(args, dict):
            named = args
        else:
            raise InvalidArgument("arguments must be a list (positional) or an object (named)")
        self._check_names(named)
        try:
            data = pydantic_core.to_json(named)
        except pydantic_core.PydanticSerializationError:
            raise InvalidArgument("arguments must be JSON values") from None
        try:
            validated = self.model.model_validate_json(data, strict=True)
        except pydantic.ValidationError as exc:
            raise validation_error(exc, camel=False) from None
        return {p: getattr(validated, p) for p in self.params}

    def _parameter(self, key: Any) -> str | None:
        key = str(key)
        if key in self.params:
            return key
        snake = to_snake(key)
        return snake if snake in self.params and to_camel(snake) == key else None

    def _is_named(self, only: dict) -> bool:
        if not self.first_takes_object:
            return True
        return bool(only) and all(self._parameter(k) is not None for k in only)

    def _positional(self, args: list | tuple) -> dict[str, Any]:
        if len(args) > len(self.params):
            raise InvalidArgument(
                f"{self.command} takes {len(self.params)} argument(s), got {len(args)}")
        return {to_camel(p): value for p, value in zip(self.params, args)}

    def _check_names(self, named: Mapping[str, Any]) -> None:
        seen: set[str] = set()
        for key in named:
            param = self._parameter(key)
            if param is None:
                takes = ", ".join(map(to_camel, self.params)) or "nothing"
                raise InvalidArgument(
                    f"{key}: is not an argument of {self.command} (it takes: {takes})",
                    field=str(key))
            if param in seen:
                raise InvalidArgument(f"{key}: given twice", field=str(key))
            seen.add(param)


def _takes_object(annotation: Any) -> bool:
    """Whether a JSON object is a valid value of ``annotation`` (unknown types: assume yes)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _takes_object(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_takes_object(arg) for arg in typing.get_args(annotation))
    target = origin or annotation
    if target is Any or not isinstance(target, type):
        return target is Any
    return (issubclass(target, (pydantic.BaseModel, Mapping)) or dataclasses.is_dataclass(target)
            or typing.is_typeddict(target))


def _plain_reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a known field"
    return error["msg"][0].lower() + error["msg"][1:]


def validation_error(exc: pydantic.ValidationError, *, camel: bool = True) -> InvalidArgument:
    """The first pydantic error as an ``InvalidArgument``: ``"<field>: <reason>"``.

    ``camel``: the location is in Python names (a model a command builds itself), shown in the
    page's camelCase; otherwise it is already the caller's own spelling.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [to_camel(part) if camel and isinstance(part, str) else str(part)
           for part in first["loc"]]
    field = ".".join(loc) or None
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    reason = _plain_reason(first)
    return InvalidArgument(f"{field}: {reason}{tail}" if field else f"{reason}{tail}",
                           field=field)
