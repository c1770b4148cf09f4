"""Clients of the loyalty ledger's gRPC API, built on the SDK (`loyalty.client`, in the
loyalty-ledger-client distribution under clients/python).

- `clients.pos_example`: a runnable point-of-sale walkthrough
  (`python -m clients.pos_example --target HOST:PORT --key KEY`).
- `clients.marketing`: the marketing command line (tiers, campaigns and their preview,
  rewards, reports; plaintext, TLS or mutual TLS).
"""
