"""Generated from proto/loyalty/v1 by `python -m ledger.codegen`; never edited by hand."""
