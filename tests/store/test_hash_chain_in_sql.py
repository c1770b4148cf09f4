"""The entry hash computed by PostgreSQL (ledger.store.postgres.hash_chain_sql) is the
one Python computes, for any entry: the expiry job's bulk writer (ledger.store.postgres.expiry_writes)
and the seeder hash entries in SQL, and `verify` checks them in Python.

Texts range over all of Unicode but NUL (PostgreSQL text cannot hold it), so multi-byte
characters test that each netstring counts bytes, not characters.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.hash_chain import GENESIS, EntryContent, entry_hash
from ledger.store.postgres.hash_chain_sql import postgres_expression
from tests.databases import connect, postgres_database

_FIELDS = ("previous_hash", "program_id", "member_id", "seq", "transaction_id", "kind", "points", "balance_after",
           "created_at")
_TYPES = {"seq": "bigint", "points": "bigint", "balance_after": "bigint", "created_at": "bigint"}
_SQL = "SELECT " + postgres_expression(
    *(f"CAST(%({name})s AS {_TYPES.get(name, 'text')})" for name in _FIELDS)
)

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_int = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_hash = st.one_of(st.just(GENESIS), st.text("0123456789abcdef", min_size=64, max_size=64))


@pytest.fixture(scope="module")
def cursor():
    with postgres_database() as url:
        conn = connect(url)
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()


@settings(max_examples=300, deadline=None)
@given(previous=_hash, texts=st.tuples(_text, _text, _text, _text), ints=st.tuples(_int, _int, _int, _int))
def test_postgres_hashes_every_entry_as_python_does(cursor, previous, texts, ints):
    program_id, member_id, transaction_id, kind = texts
    seq, points, balance_after, created_at = ints
    entry = EntryContent(program_id, member_id, seq, transaction_id, kind, points, balance_after, created_at)
    cursor.execute(_SQL, {"previous_hash": previous, **{name: getattr(entry, name) for name in _FIELDS[1:]}})
    assert cursor.fetchone()[0] == entry_hash(previous, entry)
