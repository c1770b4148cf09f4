"""API keys and referral codes: their formats and how keys are checked.

A key reads `lk_<key id>_<secret>`. Only the key id (public, also the prefix
operators revoke by) and a SHA-256 of the whole key are stored; keys carry 192
random bits, so a fast hash is enough and no salt or KDF is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

KEY_PREFIX = "lk_"
_REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    secret_hash: str
    plaintext: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_key() -> IssuedKey:
    key_id = KEY_PREFIX + secrets.token_hex(6)
    plaintext = f"{key_id}_{secrets.token_urlsafe(24)}"
    return IssuedKey(key_id, hash_key(plaintext), plaintext)


def key_id_of(plaintext: str) -> str | None:
    """The public key id of a presented key, or None if it is not shaped like one."""
    id_length = len(KEY_PREFIX) + 12
    if len(plaintext) > 200 or not plaintext.startswith(KEY_PREFIX) or plaintext[id_length : id_length + 1] != "_":
        return None
    if len(plaintext) <= id_length + 1:
        return None
    return plaintext[:id_length]


def key_matches(plaintext: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), secret_hash)


def new_referral_code() -> str:
    """10 characters from a 30-symbol alphabet: ~49 bits, not enumerable."""
    return "".join(secrets.choice(_REFERRAL_ALPHABET) for _ in range(10))


def new_id(prefix: str) -> str:
    return new_ids(prefix, 1)[0]


def new_ids(prefix: str, count: int) -> list[str]:
    """count fresh ids: the prefix, then 12 hex digits of the Unix time in milliseconds, then
    80 random bits (as a UUIDv7 orders them). Ids made later sort later, so each index they
    lead grows at its right edge: random ids spread every insert over the whole index, whose
    pages a big ledger cannot keep in memory (and each page touched after a checkpoint is
    written to the WAL whole). One read of the system's random source serves all of them:
    bulk jobs make thousands at once, and a read per id was a tenth of the expiry job's time."""
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    random = secrets.token_bytes(10 * count)
    return [f"{prefix}_{stamp}{random[start:start + 10].hex()}" for start in range(0, 10 * count, 10)]


SYSTEM_KEY_MARK = "\x1f"


def system_key(purpose: str, source: str) -> str:
    """An idempotency key for a transaction the ledger makes itself from a source it must not
    act on twice (a referral reward, a tier change, a closed member's forfeit). It starts with
    a control character that client keys may not contain, and is short whatever the source,
    so it can never clash with a client's key."""
    digest = hashlib.sha256(f"{purpose}\0{source}".encode()).hexdigest()[:40]
    return f"{SYSTEM_KEY_MARK}{purpose}:{digest}"


def fresh_system_key(purpose: str, transaction_id: str) -> str:
    """The idempotency key of a transaction the ledger makes afresh, with nothing to deduplicate
    on (an expiry): system_key's mark and purpose, then the transaction's own id, so the keys
    follow the ids' time order (new_ids) and the index they lead grows at its right edge."""
    return f"{SYSTEM_KEY_MARK}{purpose}:{transaction_id}"
