"""Instant video replay from OBS Studio (issue 15).

``connection`` keeps one obs-websocket v5 link per OBS instance (reconnects with backoff,
starts the replay buffer), ``triggers`` decides which PSS events save a replay (a data table),
``service`` saves on every connected instance at once and stores the clips through the database
plugin's ``ClipStore`` methods (reached through ``app.extensions["database"]``, never imported),
``player`` plays a clip in mpv over its JSON IPC. Nothing else in restrike imports this package.
"""
