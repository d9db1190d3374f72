"""Tests of the database plugin (real SQLite files in tmp_path)."""
