"""The hooks a restrike plugin can implement (pluggy project ``restrike``).

Every hook receives only the arguments it names, so ``def restrike_startup(app)`` and
``def restrike_pss_events(events)`` are both valid implementations. ``docs/plugins.md`` documents
each hook with an example; ``tests/host/test_hook_docs.py`` fails when one is missing there or
has no test.
"""

from __future__ import annotations

import pluggy

PROJECT = "restrike"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def restrike_addoption(parser):
    """Add this plugin's command-line options to ``restrike`` (as pytest's ``pytest_addoption``).

    ``parser`` is the ``argparse.ArgumentParser`` of ``restrike``; add your options to your own
    group (``parser.add_argument_group("my plugin")``). Give each option
    ``dest="<section>.<key>"`` and ``default=argparse.SUPPRESS``: a value given on the command
    line then reaches your plugin as ``app.settings.config[section][key]``, winning over the
    config file's value, and an absent option leaves the section as the file has it (validate
    the section with your own pydantic model). Use an argparse ``type`` that checks the value,
    so a bad one is refused with one line naming the option. Called once, before the arguments
    are parsed and before the app is created or started; not called for subcommands.
    """


@hookspec
def restrike_register_commands(register, app):
    """Register the commands this plugin offers to the frontend.

    Call ``register(name, function)`` once per command. ``function`` is a plain function with
    type hints: the host validates the arguments from them (positional, snake_case or camelCase
    names) and exposes it as ``window.pywebview.api.<name>`` and ``POST /api/invoke/<name>``.
    A name another plugin already registered is a startup error naming both plugins.
    Called once, before ``restrike_startup``.
    """


@hookspec
def restrike_startup(app):
    """Start this plugin's services (threads, sockets, files).

    Called in registration order: built-in plugins first (database, then UDP), third-party
    plugins after them. If one plugin raises, start-up stops there, and ``restrike_shutdown`` is
    still called for every plugin whose start-up had run.
    """


@hookspec
def restrike_shutdown(app):
    """Stop this plugin's services and release what it holds.

    Called in the reverse order of ``restrike_startup``, only for plugins whose start-up ran
    (also after another plugin's start-up failed). Must not raise; an exception is logged and the
    remaining plugins are still shut down.
    """


@hookspec
def restrike_pss_events(events, app):
    """A batch of ingested PSS events, in arrival order.

    ``events`` is a list of ``pss.ingested.IngestedEvent`` (datagram sequence,
    reception time, source address, exact raw text and the parsed event). Called on the UDP
    dispatch thread: return quickly (hand slow work to your own bounded queue). While an
    implementation blocks, every plugin gets its batches later and the backlog waits in the
    receiver's bounded queue; the database plugin does that on purpose when storage falls
    behind (back-pressure), nothing else should.
    An exception is logged with the plugin's name and counted (``list_plugins()``); the other
    plugins still receive the batch, and ingest goes on.
    """


@hookspec
def restrike_udp_session(session, app):
    """A UDP server session started, was marked simulated, or stopped.

    ``session`` is a ``pss.session.UdpSession`` (a frozen pydantic model, a new one per call):
    ``session_id``, ``bind``, ``port``, ``started_at``, ``stopped_at`` (None while running),
    ``simulated`` (the built-in simulator feeds it), ``status`` (running, stopped, error) and
    the session's counters (``packets_received``, ``events``, ``counters``, ``clients``...).
    Called on the thread that started or stopped the server.
    """


@hookspec
def restrike_ingest_stats(app):
    """Counters this plugin adds to ``get_udp_stats()``.

    Return a dict of sections (e.g. ``{"storage": {"stored": 10, "dropped": 0}}``) or None.
    Called on a command thread whenever the UI asks for statistics: keep it cheap.
    """


@hookspec
def restrike_cli_subcommands():
    """Extra command-line commands: return ``{name: main}``, where ``main(argv) -> int``.

    ``restrike <name> ARGS...`` then runs ``main(ARGS)`` instead of the app (for example the
    UDP plugin's ``restrike simulate``).
    """
