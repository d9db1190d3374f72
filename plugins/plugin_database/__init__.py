"""The database plugin: stores the PSS feed in SQLite and serves it back.

Modules, one job each: ``schema`` (tables as migrations), ``migrations`` (apply them),
``maintenance`` (SQLite pragmas, VACUUM & co.), ``writer`` (the only writing thread),
``tracking`` (matches/rounds/scores from events), ``pool`` (read connections), ``queries``,
``tournaments``, ``export`` (commands), ``archive`` (old events to the archive tables),
``recovery`` (a damaged file, an unopenable path, sessions a crash cut short, at start-up),
``service`` (what ``app.extensions["database"]`` holds), ``plugin`` (the hook implementations).
"""
