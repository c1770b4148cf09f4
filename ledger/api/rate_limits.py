"""Per-key rate limits: one token bucket per API key id.

A bucket holds at most `burst` tokens and gains `per_second` tokens a second; a
call takes one token or is refused with how long until one is there. Buckets are
keyed by the authenticated key id (never the presented string, so garbage keys
cannot grow the table), share one lock, and read a monotonic clock that tests
may replace.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.domain.errors import Category, LedgerError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per key. `per_second` <= 0 means unlimited (every call allowed)."""

    def __init__(
        self, per_second: float, burst: int = 0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_second < 0 or burst < 0:
            raise ValueError("rate limit and burst must not be negative")
        self.per_second = float(per_second)
        # No burst given: one second's worth of calls, at least one.
        self.burst = float(burst or max(1, math.ceil(per_second)))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0

    def try_acquire(self, key: str) -> float:
        """Takes a token for `key`: 0.0 when allowed, else the seconds until a token is there."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.per_second)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.per_second

    def check(self, key: str) -> None:
        """Takes a token for `key` or raises RESOURCE_EXHAUSTED / RATE_LIMITED with retry_after_ms."""
        wait = self.try_acquire(key)
        if wait > 0:
            retry_after_ms = max(1, math.ceil(wait * 1000))
            raise LedgerError(
                Category.RESOURCE_EXHAUSTED,
                "RATE_LIMITED",
                f"this API key is over its rate limit of {self.per_second:g} calls a second; "
                f"retry in {retry_after_ms} ms",
                metadata={"retry_after_ms": str(retry_after_ms)},
            )


def from_settings(per_second: float, burst: int) -> RateLimiter | None:
    """None when unlimited, so the call path skips the limiter entirely."""
    if per_second <= 0:
        return None
    return RateLimiter(per_second, burst)
