"""The hash chain over a member's entries (ledger.domain.hash_chain): what each hash covers.

Every field of an entry, and the previous hash, changes the hash; the encoding is
unambiguous (moving a character between adjacent text fields changes it too); a chain
links each entry to the one before, so the same entries in another order or with one
removed give different hashes from that point on.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from ledger.domain.hash_chain import GENESIS, EntryContent, chain, encode, entry_hash

ENTRY = EntryContent(
    program_id="prog_1",
    member_id="m-1",
    seq=1,
    transaction_id="tx_1",
    kind="ADJUST",
    points=500,
    balance_after=500,
    created_at=1_764_000_000_000_000,
)

CHANGED = {
    "program_id": "prog_2",
    "member_id": "m-2",
    "seq": 2,
    "transaction_id": "tx_2",
    "kind": "EARN",
    "points": 501,
    "balance_after": -500,
    "created_at": 1_764_000_000_000_001,
}


def test_genesis_is_64_zeros():
    assert GENESIS == "0" * 64


def test_hash_is_sha256_of_the_documented_netstrings():
    expected = (
        b"16:loyalty-entry-v1,"
        + b"64:" + b"0" * 64 + b","
        + b"6:prog_1,3:m-1,1:1,4:tx_1,6:ADJUST,3:500,3:500,16:1764000000000000,"
    )
    assert encode(GENESIS, ENTRY) == expected
    assert entry_hash(GENESIS, ENTRY) == hashlib.sha256(expected).hexdigest()


def test_hash_is_deterministic_lowercase_hex():
    digest = entry_hash(GENESIS, ENTRY)
    assert digest == entry_hash(GENESIS, dataclasses.replace(ENTRY))
    assert len(digest) == 64 and digest == digest.lower()
    int(digest, 16)


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_every_field_changes_the_hash(field):
    assert set(CHANGED) == {f.name for f in dataclasses.fields(EntryContent)}
    changed = dataclasses.replace(ENTRY, **{field: CHANGED[field]})
    assert entry_hash(GENESIS, changed) != entry_hash(GENESIS, ENTRY)


def test_previous_hash_changes_the_hash():
    assert entry_hash("f" * 64, ENTRY) != entry_hash(GENESIS, ENTRY)


def test_sign_of_points_changes_the_hash():
    assert entry_hash(GENESIS, dataclasses.replace(ENTRY, points=-500)) != entry_hash(GENESIS, ENTRY)


def test_encoding_is_unambiguous_across_field_boundaries():
    # Plain concatenation would make these equal: "ab" + "c" == "a" + "bc".
    one = dataclasses.replace(ENTRY, program_id="ab", member_id="c")
    two = dataclasses.replace(ENTRY, program_id="a", member_id="bc")
    assert entry_hash(GENESIS, one) != entry_hash(GENESIS, two)
    three = dataclasses.replace(ENTRY, member_id="m,1:", transaction_id="x")
    four = dataclasses.replace(ENTRY, member_id="m", transaction_id=",1:x")
    assert entry_hash(GENESIS, three) != entry_hash(GENESIS, four)


def test_non_ascii_text_is_length_prefixed_in_bytes():
    entry = dataclasses.replace(ENTRY, member_id="müller")
    assert b"7:m\xc3\xbcller," in encode(GENESIS, entry)


@pytest.mark.parametrize(
    "field, value",
    [("points", True), ("points", 1.0), ("points", "500"), ("seq", None), ("member_id", 1), ("kind", b"EARN")],
)
def test_wrong_types_are_refused(field, value):
    with pytest.raises(TypeError):
        entry_hash(GENESIS, dataclasses.replace(ENTRY, **{field: value}))


@pytest.mark.parametrize("previous", ["", "0" * 63, "0" * 65, "F" * 64, "g" * 64, None])
def test_malformed_previous_hash_is_refused(previous):
    with pytest.raises(ValueError):
        entry_hash(previous, ENTRY)


def _entries(count: int) -> list[EntryContent]:
    return [
        dataclasses.replace(ENTRY, seq=seq, transaction_id=f"tx_{seq}", points=10, balance_after=10 * seq)
        for seq in range(1, count + 1)
    ]


def test_chain_links_each_entry_to_the_previous_hash():
    entries = _entries(4)
    hashes = list(chain(entries))
    previous = GENESIS
    for entry, digest in zip(entries, hashes):
        assert digest == entry_hash(previous, entry)
        previous = digest
    assert len(set(hashes)) == 4


def test_chain_continues_from_a_given_head():
    entries = _entries(5)
    whole = list(chain(entries))
    assert list(chain(entries[2:], previous_hash=whole[1])) == whole[2:]


def test_editing_an_entry_changes_its_hash_and_every_later_one():
    entries = _entries(5)
    original = list(chain(entries))
    edited = list(entries)
    edited[2] = dataclasses.replace(edited[2], points=11)
    rehashed = list(chain(edited))
    assert rehashed[:2] == original[:2]
    assert all(a != b for a, b in zip(rehashed[2:], original[2:]))


def test_removing_or_reordering_entries_changes_the_head():
    entries = _entries(4)
    head = list(chain(entries))[-1]
    assert list(chain(entries[:1] + entries[2:]))[-1] != head
    assert list(chain([entries[1], entries[0], *entries[2:]]))[-1] != head
    assert list(chain([])) == []
