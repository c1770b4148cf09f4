"""The loyalty ledger's gRPC API for Python: `loyalty.v1` (messages and service stubs
generated from the contract's proto files) and `loyalty.client` (the SDK)."""
