"""Field validation for incoming requests: every problem becomes a BadRequest field violation.

A request is checked completely before any business logic runs; all violations
are reported together and nothing is written.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Mapping, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain import errors
from ledger.domain.currency import is_known_currency
from ledger.domain.errors import FieldViolation
from ledger.domain.limits import (
    DEFAULT_PAGE_SIZE,
    MAX_AMOUNT_MINOR,
    MAX_ID_LENGTH,
    MAX_PAGE_SIZE,
    MAX_POINTS_PER_REQUEST,
)

E = TypeVar("E")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z, the Timestamp range in the protobuf spec
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f]")  # below space, except tab and newline


class Fields:
    """Collects violations; call done() to raise them all at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def bad(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def done(self) -> None:
        if self.violations:
            raise errors.invalid(self.violations)

    def identifier(self, path: str, value: str, *, required: bool = True, max_length: int = MAX_ID_LENGTH) -> str:
        if not value:
            if required:
                self.bad(path, "is required")
            return ""
        if len(value) > max_length:
            self.bad(path, f"is longer than {max_length} characters")
        elif value != value.strip() or not value.isprintable():
            self.bad(path, "must be printable text without leading or trailing spaces")
        return value

    def text(self, path: str, value: str, *, max_length: int, required: bool = False) -> str:
        if not value.strip():
            if required:
                self.bad(path, "is required")
            return value.strip()
        if len(value) > max_length:
            self.bad(path, f"is longer than {max_length} characters")
        elif _CONTROL_CHARACTER.search(value):
            self.bad(path, "contains control characters")
        return value.strip()

    def positive_points(self, path: str, value: int) -> int:
        if value <= 0:
            self.bad(path, "must be a positive number of points")
        elif value > MAX_POINTS_PER_REQUEST:
            self.bad(path, f"must be at most {MAX_POINTS_PER_REQUEST}")
        return value

    def nonzero_points(self, path: str, value: int) -> int:
        if value == 0:
            self.bad(path, "must not be zero")
        elif abs(value) > MAX_POINTS_PER_REQUEST:
            self.bad(path, f"must be between -{MAX_POINTS_PER_REQUEST} and {MAX_POINTS_PER_REQUEST}")
        return value

    def amount(self, path: str, value: int, *, allow_zero: bool = False) -> int:
        if value < 0 or (value == 0 and not allow_zero):
            self.bad(path, "must be a positive amount in minor units")
        elif value > MAX_AMOUNT_MINOR:
            self.bad(path, f"must be at most {MAX_AMOUNT_MINOR} minor units")
        return value

    def currency(self, path: str, value: str) -> str:
        if not value:
            self.bad(path, "is required (an ISO-4217 code such as USD)")
        elif not is_known_currency(value):
            self.bad(path, f"{value[:8]!r} is not an ISO-4217 currency code")
        return value

    def enum(self, path: str, value: int, mapping: Mapping[int, E], *, required: bool, default: E | None = None) -> E | None:
        if value == 0:
            if required:
                self.bad(path, "is required")
            return default
        if value not in mapping:
            self.bad(path, f"{value} is not a known value")
            return default
        return mapping[value]

    def page_size(self, value: int) -> int:
        """A list request's page size: 0 means the default, at most MAX_PAGE_SIZE."""
        if not 0 <= value <= MAX_PAGE_SIZE:
            self.bad("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        return value or DEFAULT_PAGE_SIZE

    def timestamp(self, path: str, message: Timestamp, present: bool) -> datetime | None:
        if not present:
            return None
        if not (_MIN_SECONDS <= message.seconds <= _MAX_SECONDS) or not (0 <= message.nanos < 1_000_000_000):
            self.bad(path, "is not a valid timestamp")
            return None
        return _EPOCH + timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)
