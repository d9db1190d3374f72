"""Built-in restrike plugins (registered explicitly by ``host.plugins``)."""
