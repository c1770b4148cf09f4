"""Load generator for the loyalty ledger: scenarios, a seeding command and reports.

Run `python -m bench --help`.
"""
