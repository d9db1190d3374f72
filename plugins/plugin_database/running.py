"""Where the database plugin's modules find the running service of an app (``service_of``).

The commands are registered before the service starts, so each looks it up when it is called.
A module of its own, importing nothing of the plugin: every command module can use it without an
import cycle (the service itself imports several of them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from restrike.host.errors import Unavailable

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService

EXTENSION = "database"
"""``app.extensions[EXTENSION]`` is the running ``DatabaseService``."""


def service_of(app: App) -> DatabaseService:
    """The running ``DatabaseService`` of ``app``; ``Unavailable`` when it is not started."""
    service = app.extensions.get(EXTENSION)
    if service is None:
        raise Unavailable("the database is not running")
    return cast("DatabaseService", service)  # app.extensions holds every plugin's objects
