"""Durable state: uploaded files and batches (SQLite plus files on disk)."""
