"""The database plugin: stores the PSS feed in SQLite and serves it back.

Modules, one job each: ``schema`` (tables as migrations), ``migrations`` (apply them),
``maintenance`` (SQLite pragmas, VACUUM & co.), ``writer`` (the only writing thread),
``tracking`` (matches/rounds/scores from events), ``pool`` (read connections), ``queries``,
``tournaments``, ``export`` (commands), ``archive`` (old events to the archive tables), ``service`` (what ``app.extensions["database"]`` holds),
``plugin`` (the hook implementations).
"""
