"""What the UDP plugin tests share: the plugin alone in a real app (``UDP_ONLY``), a third-party
plugin that records what it is handed (``Recorder``), a datagram sender and a command call."""

from __future__ import annotations

import socket
import threading

import pluggy

hookimpl = pluggy.HookimplMarker("restrike")
UDP_ONLY = (("udp", "restrike.plugins.plugin_udp.plugin"),)


class Recorder:
    """A third-party plugin that records events and sessions and adds a stats section."""

    def __init__(self, name="recorder"):
        self.__name__ = name
        self.events = []
        self.sessions = []
        self._lock = threading.Lock()

    @hookimpl
    def restrike_pss_events(self, events):
        with self._lock:
            self.events.extend(events)

    @hookimpl
    def restrike_udp_session(self, session):
        self.sessions.append(session)

    @hookimpl
    def restrike_ingest_stats(self, app):
        return {"recorder": {"seen": len(self.events)}}


def send(address, *datagrams: bytes, source=None):
    """Send ``datagrams`` to ``address`` from one new socket (bound to ``source`` if given);
    returns the socket's own address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if source:
            s.bind(source)
        for data in datagrams:
            s.sendto(data, address)
        return s.getsockname()


def call(app, name, args=None):
    """A command through the app's registry, validation included."""
    return app.commands.call(name, args)
