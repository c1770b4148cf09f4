"""Use cases for API keys: issue, revoke, and authenticate a presented key.

A key's row never changes but for its revocation. The till's calls and the member reads
(TRUSTED_UNTIL_THEIR_TRANSACTION) therefore authenticate against the row as this process
last read it, and check revocation inside their own unit of work instead, in the round trip
that reads what they need (after the member's lock, for a write: lookups.read_ahead),
before any answer, stored or new (require_live); a call refused before that check (a
malformed request, a rate limit) is answered UNAUTHENTICATED if the key was revoked
meanwhile (refusal_for). A revoked key is still refused on its very next call, and each such
call saves a round trip and a connection checkout. Every other call reads the key's row.
"""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.kinds import Role
from ledger.service import clock, lookups
from ledger.store import unit_of_work
from ledger.service.caller import Caller
from ledger.store import api_keys
from ledger.store.postgres import prefetch


def create_key(db: Database, program_id: str, role: Role) -> str:
    def work(conn) -> str:
        lookups.program_rules(conn, program_id)
        key = credentials.issue_key()
        api_keys.insert_key(conn, key.key_id, program_id, role, key.secret_hash, clock.now())
        return key.plaintext

    return unit_of_work.run(db, work)


def list_keys(db: Database, program_id: str) -> list[api_keys.KeyListing]:
    """A program's keys (ids, roles, when created and revoked; never secrets);
    NOT_FOUND / PROGRAM_NOT_FOUND for an unknown program."""

    def work(conn) -> list[api_keys.KeyListing]:
        lookups.program_rules(conn, program_id)
        return api_keys.of_program(conn, program_id)

    return unit_of_work.run(db, work, read_only=True)


def revoke_keys(db: Database, prefix: str) -> list[str]:
    """Revokes by key id prefix; a whole key (e.g. one that leaked) revokes exactly that key."""
    prefix = credentials.key_id_of(prefix) or prefix
    if len(prefix) < len(credentials.KEY_PREFIX) + 4:
        raise errors.invalid_field("key_prefix", "give at least 4 characters after 'lk_' so one key is meant")
    return unit_of_work.run(db, lambda conn: api_keys.revoke_by_prefix(conn, prefix, clock.now()))


# Methods whose use case calls require_live in its transaction (idempotent.execute does, for
# the till's writes; get_member and list_transactions, for the storefront's frequent reads).
TRUSTED_UNTIL_THEIR_TRANSACTION = frozenset(
    {
        "Ledger.Earn",
        "Ledger.Redeem",
        "Ledger.AuthorizeRedemption",
        "Ledger.CaptureRedemption",
        "Ledger.GetMember",
        "Ledger.ListTransactions",
    }
)
_KNOWN_LIMIT = 10_000
_known: dict[str, api_keys.StoredKey] = {}  # unrevoked keys as last read, by key id


def _unauthenticated(message: str) -> errors.LedgerError:
    return errors.LedgerError(errors.Category.UNAUTHENTICATED, "API_KEY_INVALID", message)


def authenticate(db: Database, presented: str, method: str = "") -> Caller:
    """The caller of a presented key; UNAUTHENTICATED for unknown, malformed or revoked keys.
    method ("Service.Method"): one of TRUSTED_UNTIL_THEIR_TRANSACTION may take the key's row
    as last read; its revocation is then checked by require_live."""
    key_id = credentials.key_id_of(presented)
    if key_id is None:
        raise _unauthenticated("the API key is malformed")
    stored = _known.get(key_id) if method in TRUSTED_UNTIL_THEIR_TRANSACTION else None
    revocation_checked = stored is None
    if stored is None:
        stored = unit_of_work.run(db, lambda conn: api_keys.get(conn, key_id), read_only=True)
        _remember(key_id, stored)
    if stored is None or not credentials.key_matches(presented, stored.secret_hash):
        raise _unauthenticated("the API key is not known")
    if stored.revoked:
        raise _unauthenticated("the API key was revoked")
    return Caller(stored.program_id, stored.key_id, stored.role, revocation_checked)


def require_live(conn: Transaction, caller: Caller) -> None:
    """Inside the call's transaction: UNAUTHENTICATED if its key, taken as last read, has been
    revoked since (then the transaction rolls back and nothing is answered from it)."""
    if not caller.revocation_checked and not api_keys.is_live(conn, caller.key_id):
        raise _revoked(caller.key_id)


def read_ahead_live(
    conn: Transaction,
    caller: Caller,
    member_id: str,
    reads: tuple[prefetch.Read, ...],
    *,
    now: datetime | None = None,
    **more,
) -> datetime:
    """How a member read starts: its reads in one round trip (lookups.read_ahead, without a
    lock or an idempotency key, with the key's revocation among them), then require_live,
    before anything is answered. Returns read_ahead's instant."""
    now = lookups.read_ahead(conn, caller, member_id, "", reads, now=now, **more)
    require_live(conn, caller)
    return now


def refusal_for(db: Database, caller: Caller, error: errors.LedgerError) -> errors.LedgerError:
    """What a call refused with `error` answers: UNAUTHENTICATED instead when its key, taken as
    last read, has been revoked since (a refusal before require_live ran: a malformed request,
    a rate limit, a member or hold not found, a lost lock race). Read only on this refusal
    path."""
    if caller.revocation_checked or error.category is errors.Category.UNAUTHENTICATED:
        return error
    try:
        live = unit_of_work.run(db, lambda conn: api_keys.is_live(conn, caller.key_id), read_only=True)
    except errors.LedgerError:
        return error  # the database is unreachable: the original refusal stands
    return error if live else _revoked(caller.key_id)


def _revoked(key_id: str) -> errors.LedgerError:
    _known.pop(key_id, None)  # read again on its next call (and refused there)
    return _unauthenticated("the API key was revoked")


def _remember(key_id: str, stored: api_keys.StoredKey | None) -> None:
    if stored is None or stored.revoked:
        _known.pop(key_id, None)
        return
    if len(_known) >= _KNOWN_LIMIT:
        _known.clear()  # a guard against a flood of distinct keys, not a policy
    _known[key_id] = stored
