"""The built-in UDP plugin: receives the WT PSS scoring feed and hands it to the other plugins.

The PSS vocabulary (parser, events, match state) lives in the ``pss`` package, shared with the
database plugin. Here ``receiver`` reads the sockets and dispatches batches, ``live`` keeps each
court's match state and the recent events for the UI, ``simulator`` sends
realistic matches, ``settings`` validates the configuration, and ``plugin`` holds the hooks and
the commands (registered by ``host.plugins`` as ``udp``).
"""
