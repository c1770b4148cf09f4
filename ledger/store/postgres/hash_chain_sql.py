"""The entry hash of ledger.domain.hash_chain, as a PostgreSQL expression, for the writers that
build rows in SQL (the expiry job's batches, bench seed). tests/store/test_hash_chain_in_sql.py
holds it to the Python definition."""

from __future__ import annotations

from ledger.domain.hash_chain import DOMAIN_TAG


def postgres_expression(
    previous_hash: str,
    program_id: str,
    member_id: str,
    seq: str,
    transaction_id: str,
    kind: str,
    points: str,
    balance_after: str,
    created_at: str,
) -> str:
    """A PostgreSQL (11+) SQL expression computing entry_hash from SQL expressions for each field.

    For set-based writers such as bench/seed.py; the database encoding must be UTF8.
    """
    parts = [f"'{DOMAIN_TAG}'"] + [
        f"({expression})::text"
        for expression in (
            previous_hash,
            program_id,
            member_id,
            seq,
            transaction_id,
            kind,
            points,
            balance_after,
            created_at,
        )
    ]
    netstrings = " || ".join(f"octet_length({part}) || ':' || {part} || ','" for part in parts)
    return f"encode(sha256(convert_to({netstrings}, 'UTF8')), 'hex')"
