"""The Python SDK of the loyalty ledger: `LedgerClient` (blocking) and `AsyncLedgerClient`
(asyncio), one method per RPC of both services, retries under one idempotency key, an
overall deadline per operation, and `LedgerApiError` with the ErrorInfo reason.

    from loyalty.client import LedgerClient

    with LedgerClient("127.0.0.1:50051", key) as ledger:
        ledger.enroll_member(member_id="m-1")
"""

from loyalty.client.aio import AsyncLedgerClient
from loyalty.client.errors import LedgerApiError
from loyalty.client.requests import build, timestamp
from loyalty.client.retries import RETRYABLE_CODES, RetryPolicy
from loyalty.client.sync import LedgerClient

__all__ = [
    "AsyncLedgerClient",
    "LedgerApiError",
    "LedgerClient",
    "RETRYABLE_CODES",
    "RetryPolicy",
    "build",
    "timestamp",
]
