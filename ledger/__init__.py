"""Loyalty and referral points ledger.

Layers, outermost first: api/ (gRPC transport), service/ (one use case, one
database transaction), domain/ (pure rules, no I/O), store/ (SQLAlchemy tables
and queries). gen/ holds the stubs generated from proto/.
"""
