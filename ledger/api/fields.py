"""Field validation for incoming requests: every problem becomes a BadRequest field violation.

A request is checked completely before any business logic runs; all violations
are reported together and nothing is written.

No string of a request may hold a control character (NUL, tab, newline, DEL, C1) or a
Unicode line or paragraph separator: identifiers must be printable (str.isprintable),
free text (reasons) and display names (tiers, campaigns, rewards) one line. Ledger
requests check each string they carry; Programs requests are also walked whole
(no_control_characters), so output-only ids and fields outside an update mask are covered.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Mapping, TypeVar, overload

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
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
from ledger.domain.page_tokens import MAX_TOKEN_LENGTH as MAX_PAGE_TOKEN_LENGTH

E = TypeVar("E")
V = TypeVar("V", bound=int)  # a proto enum's number (its mypy-protobuf ValueType)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z, the Timestamp range in the protobuf spec
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
# Control characters (Unicode category Cc: C0 with NUL, tab and newline, DEL, C1) and the Unicode
# line and paragraph separators. No text field of a request may hold one: PostgreSQL cannot store
# NUL at all, and a name, reason or id is one line of text on receipts, statements and logs.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
        """Free text such as a reason: one line, no control characters; outer spaces are dropped."""
        if _CONTROL_CHARACTER.search(value):
            self.bad(path, "must be one line of text without control characters")
            return ""
        if not value.strip():
            if required:
                self.bad(path, "is required")
            return ""
        if len(value) > max_length:
            self.bad(path, f"is longer than {max_length} characters")
        return value.strip()

    def no_control_characters(self, message: Message, prefix: str = "") -> None:
        """Control characters in any string field of message, nested ones included, also those the
        request does not read (output-only ids, fields outside the update mask): no text of a request
        may hold one. A field already reported is not reported twice."""
        reported = {violation.field for violation in self.violations}
        for field, value in message.ListFields():
            path = f"{prefix}{field.name}"
            items = list(enumerate(value)) if field.is_repeated else [(None, value)]
            for index, item in items:
                at = path if index is None else f"{path}[{index}]"
                if field.type == FieldDescriptor.TYPE_STRING:
                    if at not in reported and _CONTROL_CHARACTER.search(item):
                        self.bad(at, "must be one line of text without control characters")
                elif (
                    field.type == FieldDescriptor.TYPE_MESSAGE
                    and field.message_type is not None
                    and not field.message_type.full_name.startswith("google.protobuf.")
                ):
                    self.no_control_characters(item, f"{at}.")

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

    @overload
    def enum(self, path: str, value: V, mapping: Mapping[V, E], *, required: bool, default: E) -> E: ...

    @overload
    def enum(self, path: str, value: V, mapping: Mapping[V, E], *, required: bool, default: None = None) -> E | None: ...

    def enum(self, path: str, value: V, mapping: Mapping[V, E], *, required: bool, default: E | None = None) -> E | None:
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

    def page_token(self, value: str) -> str:
        """A list request's page_token as text; whether it is one this list issued is the
        service's check (ledger/domain/page_tokens.py)."""
        return self.identifier("page_token", value, required=False, max_length=MAX_PAGE_TOKEN_LENGTH)

    def timestamp(self, path: str, message: Timestamp, present: bool) -> datetime | None:
        if not present:
            return None
        if not (_MIN_SECONDS <= message.seconds <= _MAX_SECONDS) or not (0 <= message.nanos < 1_000_000_000):
            self.bad(path, "is not a valid timestamp")
            return None
        return _EPOCH + timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)
