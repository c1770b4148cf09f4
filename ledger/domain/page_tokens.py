"""Page tokens: opaque, bound to the program, the list and the query, and impossible to forge.

A token is base64url (no padding) of: a version byte, a 16-byte MAC, and the position (the
last item served, as UTF-8). The MAC is HMAC-SHA256, truncated to 128 bits, under the
service's page-token secret, over the version, the scope (the RPC, the caller's program
and every filter of the query: member, kinds, times, state) and the position. So a token
is accepted only by the same list of the same program with the same query, and only as the
service wrote it: a token of another program or member, one reused with other filters, and
one altered or made up are all refused alike, without saying which (INVALID_ARGUMENT on
page_token).

Why a signature and not only a check of the fields carried in the token: a token that
repeats the program, member and filters can be checked against the request, but its
position cannot. Anyone could write a token of their own program that starts anywhere,
which the list contract does not promise and the README says is refused. Only a MAC makes
the whole token the service's own. The page size is not bound: a client may change it
between pages (AIP-158).

The secret is one per database (table service_secrets, written by migration 0010), not per
process: several servers behind a load balancer share a database, and a token issued by one
must be accepted by the next. Pure: no I/O; the service layer supplies the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Sequence

from ledger.domain import errors

VERSION = 1
_MAC_BYTES = 16
MAX_TOKEN_LENGTH = 1024  # characters; a position of 128 characters of 4 UTF-8 bytes each fits


def _mac(secret: bytes, scope: Sequence[str], position: str) -> bytes:
    message = json.dumps([VERSION, list(scope), position], separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def issue(secret: bytes, scope: Sequence[str], position: str) -> str:
    """The token of the page after `position` in the list named by scope."""
    return _encoded(bytes([VERSION]) + _mac(secret, scope, position) + position.encode())


def _encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read(secret: bytes, scope: Sequence[str], token: str) -> str:
    """The position a token issued for scope carries; anything else is INVALID_ARGUMENT."""
    try:
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # Only the one spelling issue() writes: the decoder skips foreign characters and
        # ignores the last character's spare bits, and an altered token is not the same token.
        if _encoded(raw) != token or len(raw) <= 1 + _MAC_BYTES or raw[0] != VERSION:
            raise ValueError("not a token")
        mac, position = raw[1 : 1 + _MAC_BYTES], raw[1 + _MAC_BYTES :].decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _refused() from exc
    if not hmac.compare_digest(mac, _mac(secret, scope, position)):
        raise _refused()
    return position


def _refused() -> errors.LedgerError:
    return errors.invalid_field(
        "page_token",
        "is not a next_page_token this list issued for this program and query (pass it back unchanged, "
        "with the same filters)",
    )
