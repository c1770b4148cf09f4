"""Clients of the loyalty ledger's gRPC API.

- `clients.sdk`: `LedgerClient`, a small typed Python SDK (API key, deadlines,
  retries that reuse the idempotency key, `LedgerApiError`).
- `clients.pos_example`: a runnable point-of-sale walkthrough built on the SDK
  (`python -m clients.pos_example --target HOST:PORT --key KEY`).
"""
