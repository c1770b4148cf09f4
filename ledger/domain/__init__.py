"""Pure ledger rules: no SQLAlchemy, no gRPC, no clock or database access."""
