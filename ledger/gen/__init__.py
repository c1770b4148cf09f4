"""Python stubs generated from proto/ by `python -m ledger.gen`; never edit them by hand.

tests/test_generated_stubs.py fails when they are stale.
"""
