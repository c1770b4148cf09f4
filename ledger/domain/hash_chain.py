"""Tamper evidence: each member's entries form a hash chain.

An entry's hash is SHA-256 over its content and the previous entry's hash of the
same member (the first entry links to GENESIS, 64 zeros). Changing any field of a
stored entry, or removing one, breaks the chain from that point: `verify`
recomputes it. members.last_entry_hash caches the chain head, so removing the
last entries is caught as well (unless whoever removed them also rewrote the
head; anchoring heads outside the database is what would catch that).

Canonical encoding (version 1), unambiguous by construction: a sequence of
netstrings, each `<length>:<bytes>,` where length is the byte count in decimal
and bytes are the UTF-8 text of the field, in this fixed order:

    "loyalty-entry-v1", previous_hash, program_id, member_id, seq, transaction_id,
    kind, points, balance_after, created_at

Integers are written in decimal (a leading "-" for negatives, no leading zeros);
created_at is the stored instant, integer microseconds since the Unix epoch (UTC).
The digest is written as 64 lowercase hex digits. The encoding is simple enough to
reproduce in SQL (ledger.store.postgres.hash_chain_sql), which the set-based writers rely on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

GENESIS = "0" * 64
DOMAIN_TAG = "loyalty-entry-v1"

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class EntryContent:
    """What an entry's hash covers, besides the previous hash."""

    program_id: str
    member_id: str
    seq: int
    transaction_id: str
    kind: str
    points: int
    balance_after: int
    created_at: int  # microseconds since the Unix epoch


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _int(value: object, name: str) -> str:
    # bool is an int subclass; True would silently hash as "1".
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return str(value)


_TAG_NETSTRING = b"%d:%s," % (len(DOMAIN_TAG), DOMAIN_TAG.encode("ascii"))


def _netstrings(fields: tuple[str, ...]) -> bytes:
    # One %-format per field: this runs once per entry written in bulk and once per entry
    # `verify` walks, so it avoids a function call per field.
    encoded = [field.encode("utf-8") for field in fields]
    return b"".join([b"%d:%s," % (len(data), data) for data in encoded])


def encode(previous_hash: str, entry: EntryContent) -> bytes:
    """The canonical bytes the entry's hash is taken over."""
    if not isinstance(previous_hash, str) or not _HEX64.fullmatch(previous_hash):
        raise ValueError("previous_hash must be 64 lowercase hex digits")
    fields = (
        previous_hash,
        _text(entry.program_id, "program_id"),
        _text(entry.member_id, "member_id"),
        _int(entry.seq, "seq"),
        _text(entry.transaction_id, "transaction_id"),
        _text(entry.kind, "kind"),
        _int(entry.points, "points"),
        _int(entry.balance_after, "balance_after"),
        _int(entry.created_at, "created_at"),
    )
    return _TAG_NETSTRING + _netstrings(fields)


def entry_hash(previous_hash: str, entry: EntryContent) -> str:
    return hashlib.sha256(encode(previous_hash, entry)).hexdigest()


def chain(entries: Iterable[EntryContent], previous_hash: str = GENESIS) -> Iterator[str]:
    """The hash of each entry in turn, each linked to the one before (one member's entries, in seq order)."""
    for entry in entries:
        previous_hash = entry_hash(previous_hash, entry)
        yield previous_hash
