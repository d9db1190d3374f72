"""The built-in UDP plugin: receives the WT PSS scoring feed and hands it to the other plugins.

``protocol`` parses, ``ingested`` wraps a message with where and when it arrived, ``receiver``
reads the sockets and dispatches batches, ``state`` keeps each court's match, ``simulator`` sends
realistic matches, ``settings`` validates the configuration, and ``plugin`` holds the hooks and
the commands (registered by ``host.plugins`` as ``udp``).
"""
