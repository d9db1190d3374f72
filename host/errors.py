"""Errors a command raises on purpose; the bridge turns them into ``{type, message, field}``.

Each class is one row of the one error table: its ``type`` (stable; the page maps it to the
operator's words) and its HTTP ``status``, which ``host.http`` answers with.

Anything else a command raises is an ``internal_error``: logged in full on the Python side, and
reported to the page only as a plain sentence (no traceback, no file path).
"""

from __future__ import annotations


class CommandError(Exception):
    """Base of the errors the frontend sees as-is. ``type`` is the machine-readable kind."""

    type = "internal_error"
    status = 500

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"type": self.type, "message": self.message, "field": self.field}


class InvalidArgument(CommandError):
    """An argument has a wrong type or value: ``validation_error``, names the argument."""

    type = "validation_error"
    status = 422


class NotFound(CommandError):
    """The command or the thing the arguments name does not exist."""

    type = "not_found"
    status = 404


class Conflict(CommandError):
    """The request is valid but clashes with the current state (duplicate, already running)."""

    type = "conflict"
    status = 409


class Unavailable(CommandError):
    """A service the command needs is not running or failed (the message says which)."""

    type = "unavailable"
    status = 503


class StorageFull(CommandError):
    """The disk (or the database's size limit) is full: nothing was written. ``storage_full``;
    the message is "The disk is full: " and what was not done."""

    type = "storage_full"
    status = 507

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(f"The disk is full: {detail}", field)


class PermissionDenied(CommandError):
    """The operating system does not allow the command to write (or read) where it was asked."""

    type = "permission_denied"
    status = 403


def status_of(error_type: str) -> int:
    """The HTTP status of an error ``type``: the ``status`` of the ``CommandError`` class (a
    plugin's own subclasses included) that names it; 500 for a type no class names."""
    classes = [CommandError]
    while classes:
        cls = classes.pop()
        if cls.type == error_type:
            return cls.status
        classes.extend(cls.__subclasses__())
    return 500
