"""Exactly-once execution of a mutating use case under its idempotency key.

Order inside the one database transaction:
  1. lock the rows the use case will change (member row lock, member_id order),
  2. look up the key: a stored outcome is replayed (or ALREADY_EXISTS if the
     request differs),
  3. decide and write,
  4. record the key with the outcome (on PostgreSQL it goes out with the COMMIT); a
     transaction's answer is recorded as its id and the balance then, and read back from
     the (append-only) transaction on a replay.
Because same-key retries of one request lock the same member, they queue on the
lock and the later ones find the first one's record in step 2. A key reused at the
same moment for another member loses in step 4: its commit fails on the record's
primary key, nothing of it is written, and unit_of_work's retry answers from the
winner's record in step 2.
Business refusals (FAILED_PRECONDITION, ALREADY_EXISTS) are stored like
successes so a retry gets the same answer even after the state changed.
Programs calls whose AIP-155 request_id is optional (CreateCampaign, CreateReward,
SetTiers) run without a Mutation when none was given: once, in one transaction,
recording nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Protocol, TypeVar, cast

from ledger.store.database import Database, Transaction

from ledger.domain import errors
from ledger.domain.balance import Balance
from ledger.domain.records import TransactionResult
from ledger.domain.errors import Category, LedgerError
from ledger.service import clock, keys
from ledger.store import member_group_commit, unit_of_work
from ledger.service.caller import Caller
from ledger.store import idempotency, transactions


class JsonResult(Protocol):
    def to_json(self) -> dict: ...


R = TypeVar("R", bound=JsonResult)
L = TypeVar("L")  # what lock() hands to apply(), e.g. the locked member state


@dataclass(frozen=True)
class Mutation:
    """The identity of one mutating request: its key, RPC and a hash of its content."""

    idempotency_key: str
    method: str
    request_hash: str


@dataclass
class _Outcome(Generic[R]):
    result: R | None = None
    error: LedgerError | None = None


def _error_to_json(error: LedgerError) -> dict:
    return {
        "category": error.category.value,
        "reason": error.reason,
        "message": error.message,
        "metadata": error.metadata,
    }


def _error_from_json(data: dict) -> LedgerError:
    return LedgerError(Category(data["category"]), data["reason"], data["message"], metadata=data["metadata"])


def _recorded_result(result: JsonResult) -> dict:
    """What the key's record keeps of a success. A ledger write's answer is its transaction, which
    the ledger keeps anyway (append-only, never changed), and the member's balance then: the
    record keeps only the transaction's id and the balance, and a replay reads the transaction
    back (the full answer was 850 bytes written twice per Earn)."""
    if isinstance(result, TransactionResult):
        view = result.transaction
        return {
            "result_of": {
                "transaction_id": view.transaction_id,
                "member_id": view.member_id,
                "balance": dict(vars(result.balance)),
            }
        }
    return {"result": result.to_json()}


def _replay(
    conn: Transaction, program_id: str, stored: idempotency.StoredOutcome, mutation: Mutation, decode: Callable[[dict], R]
) -> _Outcome[R]:
    if stored.method != mutation.method or stored.request_hash != mutation.request_hash:
        raise errors.already_exists(
            "IDEMPOTENCY_KEY_REUSED",
            f"idempotency key {mutation.idempotency_key!r} was already used for a different request",
            original_method=stored.method,
        )
    if "error" in stored.outcome:
        return _Outcome(error=_error_from_json(stored.outcome["error"]))
    if "result_of" in stored.outcome:
        ref = stored.outcome["result_of"]
        view = transactions.view_of(conn, program_id, ref["transaction_id"], ref["member_id"])
        return _Outcome(result=cast(R, TransactionResult(view, Balance(**ref["balance"]))))
    return _Outcome(result=decode(stored.outcome["result"]))


def _once(
    conn: Transaction, caller: Caller, mutation: Mutation | None, locked: L, apply: Callable[[Transaction, L], R],
    decode: Callable[[dict], R],
) -> _Outcome[R]:
    """Steps 2 to 4 (above), once the rows are locked; a refusal that is not recorded is raised."""
    program = caller.program_id
    keys.require_live(conn, caller)  # before any answer, stored or new
    if mutation is None:
        return _Outcome(result=apply(conn, locked))  # no key: a refusal is raised, not recorded
    stored = idempotency.find(conn, program, mutation.idempotency_key)
    if stored is not None:
        return _replay(conn, program, stored, mutation, decode)
    try:
        result = apply(conn, locked)
        outcome: _Outcome[R] = _Outcome(result=result)
        recorded = _recorded_result(result)
    except LedgerError as error:
        if not error.recorded:
            raise
        outcome = _Outcome(error=error)
        recorded = {"error": _error_to_json(error)}
    idempotency.record(
        conn, program, mutation.idempotency_key, mutation.method, mutation.request_hash, recorded, clock.now()
    )
    return outcome


def within(
    conn: Transaction, caller: Caller, mutation: Mutation, locked: L, apply: Callable[[Transaction, L], R],
    decode: Callable[[dict], R],
) -> R:
    """execute() for one of several operations sharing a database transaction whose rows the
    caller has locked already (a batch of imported orders): the stored answer replayed, or apply
    run and its answer recorded. A refusal is raised whether it was recorded or not."""
    outcome = _once(conn, caller, mutation, locked, apply, decode)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result


def execute(
    db: Database,
    caller: Caller,
    mutation: Mutation | None,
    *,
    lock: Callable[[Transaction], L],
    apply: Callable[[Transaction, L], R],
    decode: Callable[[dict], R],
    member_id: str = "",
) -> R:
    """lock(conn) returns what apply needs (e.g. the locked member state).
    member_id: the member whose row lock is taken first; the operation may then share its
    transaction with that member's concurrent operations (ledger.store.member_group_commit).
    mutation None (a call sent without its optional request_id): lock and apply run once,
    and nothing is recorded."""
    program = caller.program_id

    def work(conn: Transaction) -> _Outcome[R]:
        locked = lock(conn)  # a refusal here reaches the caller through keys.refusal_for
        return _once(conn, caller, mutation, locked, apply, decode)

    if member_id:
        outcome = member_group_commit.run(db, (program, member_id), work)
    else:
        outcome = unit_of_work.run(db, work)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result
