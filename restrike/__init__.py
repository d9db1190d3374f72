"""restrike: receive, store and show the World Taekwondo PSS scoring feed.

The source keeps its folders (``host/``, ``plugins/``, ``pss/``, ``frontend/`` at the top of the
repository); this package maps them under one import name, ``restrike.host``,
``restrike.plugins``, ``restrike.pss`` (``restrike/host`` etc. are links to those folders, and a
built wheel holds real copies), so an installed restrike cannot clash with another
distribution's ``host`` or ``plugins``.

The plugin API (as ``from datasette import hookimpl``)::

    from restrike import hookimpl

    @hookimpl
    def restrike_pss_events(events, app): ...
"""

from restrike.host.hookspecs import hookimpl

__all__ = ["hookimpl"]
