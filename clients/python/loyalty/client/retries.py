"""What the sync and asyncio clients share about sending one operation: its idempotency key,
which failures a retry can fix, the pause before the next attempt, and each attempt's
deadline within the operation's overall deadline."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

# The codes a retry can fix: the call never reached the ledger (or its outcome is recorded
# under the idempotency key), or the ledger lost a race it will win next time.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
# Request fields that make a request safe to send again: the ledger applies it once.
KEY_FIELDS = ("idempotency_key", "request_id")


def new_key() -> str:
    return str(uuid.uuid4())


def with_key(request: Message) -> str | None:
    """Gives a request that carries an idempotency key (or a request id) one if it has none,
    so every attempt of the operation sends the same; returns it (None for requests that
    take no key: reads)."""
    for name in KEY_FIELDS:
        if name in request.DESCRIPTOR.fields_by_name:
            if not getattr(request, name):
                setattr(request, name, new_key())
            return str(getattr(request, name))
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """max_attempts counts the first; each attempt has attempt_timeout seconds and the
    whole operation, pauses included, at most deadline seconds (None: max_attempts x
    attempt_timeout). The pause before retry n is random up to initial_backoff x 2^(n-1),
    capped at max_backoff (full jitter)."""

    max_attempts: int = 4
    attempt_timeout: float = 5.0
    deadline: float | None = None
    initial_backoff: float = 0.05
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.attempt_timeout <= 0 or (self.deadline is not None and self.deadline <= 0):
            raise ValueError("timeouts must be positive: every call carries a deadline")

    def start(self, timeout: float | None = None) -> Operation:
        """The attempts of one operation; timeout overrides the overall deadline."""
        total = timeout if timeout is not None else self.deadline
        if total is None:
            total = self.max_attempts * self.attempt_timeout
        return Operation(self, time.monotonic() + total)


class Operation:
    """One operation's attempts: `timeout()` is the next attempt's deadline, `retry(error)`
    says whether to try again and, if so, how long to pause first."""

    def __init__(self, policy: RetryPolicy, ends_at: float) -> None:
        self._policy = policy
        self._ends_at = ends_at
        self.attempt = 1

    def timeout(self) -> float:
        return max(0.001, min(self._policy.attempt_timeout, self._ends_at - time.monotonic()))

    def retry(self, code: grpc.StatusCode) -> float | None:
        """The pause before the next attempt, or None when there is none to make."""
        if code not in RETRYABLE_CODES or self.attempt >= self._policy.max_attempts:
            return None
        pause = random.uniform(0, min(self._policy.max_backoff, self._policy.initial_backoff * 2 ** (self.attempt - 1)))
        if time.monotonic() + pause >= self._ends_at:
            return None
        self.attempt += 1
        return pause
