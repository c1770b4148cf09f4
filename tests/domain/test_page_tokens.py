"""The page token rules (ledger/domain/page_tokens.py), pure: no database, no gRPC.

- issue then read gives the position back, for any position and scope, and the token is
  base64url without padding;
- a token is refused (INVALID_FIELD on page_token) under any other scope (another RPC,
  program, member or filter), under another secret, and when any character is changed,
  dropped or added: only the exact spelling issue() wrote is read.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import errors
from ledger.domain.page_tokens import MAX_TOKEN_LENGTH, issue, read

SECRET = bytes(range(32))
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
scopes = st.lists(_text, min_size=1, max_size=6).map(tuple)
positions = st.one_of(st.integers(1, 2**63 - 1).map(str), st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=128))


def refused(scope, token, secret=SECRET) -> None:
    with pytest.raises(errors.LedgerError) as caught:
        read(secret, scope, token)
    assert caught.value.reason == "INVALID_FIELD"
    assert [v.field for v in caught.value.violations] == ["page_token"]


@given(scope=scopes, position=positions)
def test_a_token_reads_back_its_position_and_is_base64url(scope, position):
    token = issue(SECRET, scope, position)
    assert BASE64URL.match(token) and len(token) <= MAX_TOKEN_LENGTH
    assert read(SECRET, scope, token) == position


@given(scope=scopes, other=scopes, position=positions)
def test_a_token_is_refused_under_another_scope(scope, other, position):
    token = issue(SECRET, scope, position)
    if other != scope:
        refused(other, token)


@given(scope=scopes, position=positions, secret=st.binary(min_size=32, max_size=32))
def test_a_token_is_refused_under_another_secret(scope, position, secret):
    if secret != SECRET:
        refused(scope, issue(SECRET, scope, position), secret)


@given(scope=scopes, position=positions, data=st.data())
def test_a_changed_token_is_refused(scope, position, data):
    token = issue(SECRET, scope, position)
    i = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.!é"))
    for changed in (token[:i] + char + token[i + 1 :], token[:i] + token[i + 1 :], token[:i] + char + token[i:]):
        if changed != token:
            refused(scope, changed)


def test_the_scope_parts_do_not_run_into_each_other():
    """("a,b", "c") and ("a", "b,c") are different queries."""
    token = issue(SECRET, ("ListTransactions", "p", "a|b", "c"), "5")
    refused(("ListTransactions", "p", "a", "b|c"), token)
    refused(("ListTransactions", "p", "a|b", "c", ""), token)
