"""Persistence: SQLAlchemy Core tables, queries, locking and idempotency records."""
