"""Persistent records in SQLite (WAL) and per-object locks."""
