"""Ingest: read a collection in the canonical dataset layout into storage."""
