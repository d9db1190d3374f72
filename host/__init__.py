"""restrike plugin host: plugin manager, hooks, commands, bridge, push, CLI.

Nothing in this package knows about taekwondo; the PSS feed lives in ``plugins``.
"""
