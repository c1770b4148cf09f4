"""The service's notion of now (UTC), in one place so tests and rules agree."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
