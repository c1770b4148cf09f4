"""A small typed Python SDK for the loyalty ledger's gRPC API (`loyalty.v1`).

`LedgerClient` wraps one gRPC channel and one API key and has a method per RPC
the server answers today. It takes care of what every caller of the ledger must
get right:

- every call carries `authorization: Bearer <key>` and a deadline (`timeout`
  seconds per attempt);
- every mutating operation gets an idempotency key (a uuid4, unless you pass
  your own) that is sent unchanged on every retry of that operation, so the
  ledger applies it exactly once;
- UNAVAILABLE and ABORTED (nothing applied, or a retry will win) are retried
  with exponential backoff and full jitter, up to `max_attempts` attempts in all;
- every failure is raised as `LedgerApiError` with the status code, the
  `google.rpc.ErrorInfo` reason and the `google.rpc.BadRequest` field violations.

DEADLINE_EXCEEDED is not retried: the outcome is unknown to the client. To find
out, retry the same operation with the same key (`error.idempotency_key`); the
ledger answers with the original result.

Methods return the generated response messages unchanged (see
proto/loyalty/v1/*.proto for their fields). A client is safe to share between
threads; create one per process and close it (or use it as a context manager).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Callable, TypeVar

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, programs_pb2, programs_pb2_grpc

__all__ = ["LedgerApiError", "LedgerClient", "RETRYABLE_CODES"]

# The codes a retry can fix: the call never reached the ledger (or its outcome is
# recorded under the idempotency key), or the ledger lost a race it will win next time.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})

Response = TypeVar("Response")
ChannelLike = int | str  # common_pb2.CHANNEL_POS, "CHANNEL_POS" or "POS"
KindLike = int | str  # common_pb2.TRANSACTION_KIND_EARN, "TRANSACTION_KIND_EARN" or "EARN"
LineLike = common_pb2.OrderLine | Mapping[str, Any]
TimeLike = datetime | timestamp_pb2.Timestamp


class LedgerApiError(Exception):
    """A failed call: gRPC status code, ErrorInfo reason, message and field violations.

    `reason` is the machine-readable `google.rpc.ErrorInfo.reason` (e.g.
    "INSUFFICIENT_POINTS"; empty when the server sent none, e.g. a transport
    failure); `field_violations` lists (field, description) pairs from
    `google.rpc.BadRequest`; `idempotency_key` is the key the failed operation
    was sent with (None for calls that take none).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(f"{code.name}{' ' + reason if reason else ''}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        self.idempotency_key = idempotency_key

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, idempotency_key: str | None = None) -> LedgerApiError:
        """Reads the status code, message and rich error details of a failed call."""
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        message = (error.details() if callable(getattr(error, "details", None)) else "") or str(error)
        reason, domain, metadata, violations = "", "", {}, []
        try:
            status = rpc_status.from_call(error)
        except (AttributeError, TypeError, ValueError):
            status = None  # not a completed call, or inconsistent details: keep code and message
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Unpack(bad_request):
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
        return cls(
            code or grpc.StatusCode.UNKNOWN,
            message,
            reason=reason,
            domain=domain,
            metadata=metadata,
            field_violations=violations,
            idempotency_key=idempotency_key,
        )


class LedgerClient:
    """A connection to one loyalty ledger server with one API key.

    `target` is "host:port" (ignored when you pass your own `channel`, e.g. an
    intercepted one; the client then does not close it). To talk TLS pass
    `root_certificates` (PEM bytes of the CA that signed the server's certificate;
    None with `tls=True` uses the system roots); for mutual TLS also pass the
    client's `private_key` and `certificate_chain` (PEM bytes). `timeout` is
    the deadline of each attempt in seconds; `max_attempts` counts the first
    attempt; `initial_backoff` and `max_backoff` bound the random pause
    (full jitter) before each retry, which doubles per attempt.
    """

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        channel: grpc.Channel | None = None,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        tls: bool | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if timeout <= 0:
            raise ValueError("timeout must be positive: every call carries a deadline")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain go together (mutual TLS)")
        secure = tls if tls is not None else any(
            pem is not None for pem in (root_certificates, private_key, certificate_chain)
        )
        if not secure and (root_certificates or private_key or certificate_chain):
            raise ValueError("certificates given with tls=False")
        self._owns_channel = channel is None
        if channel is not None:
            self._channel = channel
        elif secure:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates, private_key=private_key, certificate_chain=certificate_chain
            )
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._ledger = ledger_pb2_grpc.LedgerStub(self._channel)
        self._programs = programs_pb2_grpc.ProgramsStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel if this client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Ledger service ----------------------------------------------------------

    def enroll_member(self, member_id: str, referral_code: str = "") -> ledger_pb2.EnrollMemberResponse:
        """Enrolls a shopper; enrolling an existing member answers it with `created=False`."""
        request = ledger_pb2.EnrollMemberRequest(member_id=member_id, referral_code=referral_code)
        return self._call(self._ledger.EnrollMember, request)

    def get_member(self, member_id: str) -> ledger_pb2.GetMemberResponse:
        """A member with balance, tier and referral code."""
        return self._call(self._ledger.GetMember, ledger_pb2.GetMemberRequest(member_id=member_id))

    def earn(
        self,
        member_id: str,
        order_id: str,
        amount: int,
        currency: str,
        channel: ChannelLike,
        *,
        lines: Iterable[LineLike] = (),
        occurred_at: TimeLike | None = None,
        store_id: str = "",
        idempotency_key: str | None = None,
    ) -> ledger_pb2.EarnResponse:
        """Earns points for an order (`amount` in minor units of `currency`).

        `occurred_at` (timezone-aware; sent as the order's `occur_time`) is when
        the sale happened; the ledger applies the rules in force then. Defaults
        to now on the server.
        """
        key = idempotency_key or new_idempotency_key()
        order = _order(order_id, amount, currency, channel, lines, occurred_at, store_id)
        request = ledger_pb2.EarnRequest(member_id=member_id, idempotency_key=key, order=order)
        return self._call(self._ledger.Earn, request, idempotency_key=key)

    def quote_earn(
        self,
        member_id: str,
        order_id: str,
        amount: int,
        currency: str,
        channel: ChannelLike,
        *,
        lines: Iterable[LineLike] = (),
        occurred_at: TimeLike | None = None,
        store_id: str = "",
    ) -> ledger_pb2.QuoteEarnResponse:
        """What `earn` would answer now for this order; writes nothing."""
        order = _order(order_id, amount, currency, channel, lines, occurred_at, store_id)
        request = ledger_pb2.QuoteEarnRequest(member_id=member_id, order=order)
        return self._call(self._ledger.QuoteEarn, request)

    def redeem(
        self,
        member_id: str,
        points: int,
        *,
        order_id: str = "",
        channel: ChannelLike = common_pb2.CHANNEL_UNSPECIFIED,
        store_id: str = "",
        idempotency_key: str | None = None,
    ) -> ledger_pb2.RedeemResponse:
        """Debits `points` now; FAILED_PRECONDITION / INSUFFICIENT_POINTS when fewer are available."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.RedeemRequest(
            member_id=member_id,
            idempotency_key=key,
            points=points,
            order_id=order_id,
            channel=_channel(channel),
            store_id=store_id,
        )
        return self._call(self._ledger.Redeem, request, idempotency_key=key)

    def authorize_redemption(
        self,
        member_id: str,
        points: int,
        *,
        order_id: str = "",
        ttl_seconds: int = 0,
        channel: ChannelLike = common_pb2.CHANNEL_UNSPECIFIED,
        store_id: str = "",
        idempotency_key: str | None = None,
    ) -> ledger_pb2.AuthorizeRedemptionResponse:
        """Reserves `points` at the till; the hold lapses by itself at `hold.expire_time`.

        `ttl_seconds` 0 means the program's default hold lifetime.
        """
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.AuthorizeRedemptionRequest(
            member_id=member_id,
            idempotency_key=key,
            points=points,
            order_id=order_id,
            ttl_seconds=ttl_seconds,
            channel=_channel(channel),
            store_id=store_id,
        )
        return self._call(self._ledger.AuthorizeRedemption, request, idempotency_key=key)

    def capture_redemption(
        self, hold_id: str, points: int = 0, *, idempotency_key: str | None = None
    ) -> ledger_pb2.CaptureRedemptionResponse:
        """Debits `points` of an open hold (0: all of it) and releases the rest."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.CaptureRedemptionRequest(hold_id=hold_id, idempotency_key=key, points=points)
        return self._call(self._ledger.CaptureRedemption, request, idempotency_key=key)

    def void_redemption(self, hold_id: str, *, idempotency_key: str | None = None) -> ledger_pb2.VoidRedemptionResponse:
        """Releases an open hold."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.VoidRedemptionRequest(hold_id=hold_id, idempotency_key=key)
        return self._call(self._ledger.VoidRedemption, request, idempotency_key=key)

    def refund_order(
        self,
        member_id: str,
        order_id: str,
        amount: int,
        currency: str = "",
        *,
        reason: str = "",
        idempotency_key: str | None = None,
    ) -> ledger_pb2.RefundOrderResponse:
        """Claws back the order's earned points in proportion to the refunded `amount` (minor units
        of the order's currency; `currency`, when given, must be the order's)."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.RefundOrderRequest(
            member_id=member_id, order_id=order_id, idempotency_key=key, amount=amount, currency=currency, reason=reason
        )
        return self._call(self._ledger.RefundOrder, request, idempotency_key=key)

    def adjust_points(
        self, member_id: str, points: int, reason: str, *, idempotency_key: str | None = None
    ) -> ledger_pb2.AdjustPointsResponse:
        """Support: a signed, non-zero adjustment with a required reason."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.AdjustPointsRequest(member_id=member_id, idempotency_key=key, points=points, reason=reason)
        return self._call(self._ledger.AdjustPoints, request, idempotency_key=key)

    def reverse_transaction(
        self, transaction_id: str, reason: str = "", *, idempotency_key: str | None = None
    ) -> ledger_pb2.ReverseTransactionResponse:
        """Support: an exact reversing transaction of `transaction_id`."""
        key = idempotency_key or new_idempotency_key()
        request = ledger_pb2.ReverseTransactionRequest(transaction_id=transaction_id, idempotency_key=key, reason=reason)
        return self._call(self._ledger.ReverseTransaction, request, idempotency_key=key)

    def list_transactions(
        self,
        member_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        kinds: Iterable[KindLike] = (),
        created_after: TimeLike | None = None,
        created_before: TimeLike | None = None,
    ) -> ledger_pb2.ListTransactionsResponse:
        """One page of a member's statement, newest first (page_size 0 means the server's default);
        `created_after` (inclusive) and `created_before` (exclusive) are sent as the request's
        `start_create_time` and `end_create_time`."""
        request = ledger_pb2.ListTransactionsRequest(
            member_id=member_id,
            page_size=page_size,
            page_token=page_token,
            kinds=[_kind(k) for k in kinds],
            start_create_time=_timestamp(created_after),
            end_create_time=_timestamp(created_before),
        )
        return self._call(self._ledger.ListTransactions, request)

    def iter_transactions(
        self,
        member_id: str,
        *,
        page_size: int = 100,
        kinds: Iterable[KindLike] = (),
        created_after: TimeLike | None = None,
        created_before: TimeLike | None = None,
    ) -> Iterator[common_pb2.Transaction]:
        """Every transaction of the statement, newest first, fetching pages as it goes."""
        kinds = list(kinds)
        token = ""
        while True:
            page = self.list_transactions(
                member_id,
                page_size=page_size,
                page_token=token,
                kinds=kinds,
                created_after=created_after,
                created_before=created_before,
            )
            yield from page.transactions
            token = page.next_page_token
            if not token:
                return

    # -- Programs service ----------------------------------------------------------

    def get_program(self) -> programs_pb2.GetProgramResponse:
        """The settings of the key's program."""
        return self._call(self._programs.GetProgram, programs_pb2.GetProgramRequest())

    def update_program(
        self, program: programs_pb2.Program, update_mask: Iterable[str]
    ) -> programs_pb2.UpdateProgramResponse:
        """Changes the fields of `program` named in `update_mask` (e.g. ["earn_rate"])."""
        request = programs_pb2.UpdateProgramRequest(
            program=program, update_mask=field_mask_pb2.FieldMask(paths=list(update_mask))
        )
        return self._call(self._programs.UpdateProgram, request)

    # -- plumbing --------------------------------------------------------------------

    def _call(
        self,
        method: Callable[..., Response],
        request: Any,
        *,
        idempotency_key: str | None = None,
    ) -> Response:
        """Sends `request` (the same message, hence the same key, on every attempt)."""
        attempt = 1
        while True:
            try:
                return method(request, metadata=self._metadata, timeout=self.timeout)
            except grpc.RpcError as error:
                if attempt >= self.max_attempts or error.code() not in RETRYABLE_CODES:
                    raise LedgerApiError.from_rpc_error(error, idempotency_key) from None
            time.sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Full jitter: a random pause up to initial_backoff * 2^(attempt-1), capped."""
        return random.uniform(0, min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))


def new_idempotency_key() -> str:
    """A fresh key for one logical operation."""
    return str(uuid.uuid4())


def _enum_value(enum_type: Any, prefix: str, value: int | str) -> int:
    if isinstance(value, int):
        return value
    name = value.upper()
    return enum_type.Value(name if name.startswith(prefix) else prefix + name)


def _channel(value: ChannelLike) -> int:
    return _enum_value(common_pb2.Channel, "CHANNEL_", value)


def _kind(value: KindLike) -> int:
    return _enum_value(common_pb2.TransactionKind, "TRANSACTION_KIND_", value)


def _timestamp(value: TimeLike | None) -> timestamp_pb2.Timestamp | None:
    if value is None or isinstance(value, timestamp_pb2.Timestamp):
        return value
    if value.tzinfo is None:
        raise ValueError("datetimes sent to the ledger must be timezone-aware")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _order(
    order_id: str,
    amount: int,
    currency: str,
    channel: ChannelLike,
    lines: Iterable[LineLike],
    occurred_at: TimeLike | None,
    store_id: str,
) -> common_pb2.Order:
    return common_pb2.Order(
        order_id=order_id,
        channel=_channel(channel),
        amount=amount,
        currency=currency,
        lines=[line if isinstance(line, common_pb2.OrderLine) else common_pb2.OrderLine(**line) for line in lines],
        occur_time=_timestamp(occurred_at),
        store_id=store_id,
    )
