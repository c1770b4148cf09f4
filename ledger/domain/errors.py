"""Every refusal of the ledger is a named outcome: a category plus a reason.

The category says what kind of refusal it is (it maps 1:1 to a gRPC status in
api/errors.py); the reason names exactly which rule refused (ErrorInfo.reason).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Category(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    OUT_OF_RANGE = "OUT_OF_RANGE"


# Outcomes that depend on ledger state are recorded under the idempotency key,
# so a retry gets the same answer even if the state changed meanwhile.
RECORDED_CATEGORIES = frozenset({Category.FAILED_PRECONDITION, Category.ALREADY_EXISTS})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class LedgerError(Exception):
    category: Category
    reason: str
    message: str
    violations: tuple[FieldViolation, ...] = field(default=())
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.category.value}/{self.reason}: {self.message}"

    @property
    def recorded(self) -> bool:
        return self.category in RECORDED_CATEGORIES


def invalid(violations: list[FieldViolation] | tuple[FieldViolation, ...]) -> LedgerError:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return LedgerError(
        Category.INVALID_ARGUMENT,
        "INVALID_FIELD",
        f"{first.field}: {first.description}{more}",
        tuple(violations),
    )


def invalid_field(field_path: str, description: str) -> LedgerError:
    return invalid([FieldViolation(field_path, description)])


def not_found(reason: str, message: str) -> LedgerError:
    return LedgerError(Category.NOT_FOUND, reason, message)


def refused(reason: str, message: str, **metadata: str) -> LedgerError:
    """A business rule refused the request (FAILED_PRECONDITION)."""
    return LedgerError(Category.FAILED_PRECONDITION, reason, message, metadata=metadata)


def permission_denied(reason: str, message: str, **metadata: str) -> LedgerError:
    """The key may call the RPC but not for this (PERMISSION_DENIED; never recorded)."""
    return LedgerError(Category.PERMISSION_DENIED, reason, message, metadata=metadata)


def already_exists(reason: str, message: str, **metadata: str) -> LedgerError:
    return LedgerError(Category.ALREADY_EXISTS, reason, message, metadata=metadata)


def conflict_retry(message: str = "lost a race with a concurrent request; retry") -> LedgerError:
    return LedgerError(Category.ABORTED, "CONFLICT_RETRY", message)


def store_unavailable(message: str = "the ledger database is unreachable") -> LedgerError:
    return LedgerError(Category.UNAVAILABLE, "STORE_UNAVAILABLE", message)


def unimplemented(what: str, issue: str) -> LedgerError:
    return LedgerError(Category.UNIMPLEMENTED, "NOT_YET_AVAILABLE", f"{what} is not available yet ({issue})")
