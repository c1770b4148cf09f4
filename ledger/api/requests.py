"""Proto requests -> validated service commands. Nothing here touches the database."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message

from ledger.api import enums
from ledger.api.fields import Fields
from ledger.domain.earning import OrderFacts, OrderLine
from ledger.domain.holds import MAX_HOLD_TTL_SECONDS
from ledger.domain.kinds import Channel
from ledger.domain.limits import (
    MAX_LINE_QUANTITY,
    MAX_ORDER_LINES,
    MAX_REASON_LENGTH,
)
from loyalty.v1 import ledger_pb2
from ledger.service import clock
from ledger.service.activities import ActivityCommand
from ledger.service.earning import EarnCommand
from ledger.service.holds import AuthorizeCommand
from ledger.service.idempotent import Mutation
from ledger.service.redemption import RedeemCommand
from ledger.service.refunds import RefundCommand
from ledger.service.statement import StatementQuery
from ledger.service.transfers import TransferCommand
from ledger.service.directory import MemberQuery
from ledger.domain.profiles import (
    PROFILE_FIELDS,
    Profile,
    birth_date_problem,
    email_problem,
    locale_problem,
    name_problem,
)


def mutation(method: str, request: Message, key: str) -> Mutation:
    digest = hashlib.sha256(method.encode() + b"\0" + request.SerializeToString(deterministic=True)).hexdigest()
    return Mutation(key, method, digest)


def member_id(request) -> str:
    fields = Fields()
    value = fields.identifier("member_id", request.member_id)
    fields.done()
    return value


def enroll(request: ledger_pb2.EnrollMemberRequest) -> tuple[str, str, Profile | None]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    code = fields.identifier("referral_code", request.referral_code, required=False, max_length=32)
    profile = None
    if request.HasField("profile"):
        changes = _profile_fields(fields, request.profile, PROFILE_FIELDS)
        profile = Profile().changed(changes, clock.now())
    fields.done()
    return member, code.upper(), profile


def _profile_fields(fields: Fields, message: ledger_pb2.MemberProfile, paths) -> dict:
    """Validated profile values of the named fields (ledger.domain.profiles)."""
    checks = {
        "email": lambda v: email_problem(v),
        "name": lambda v: name_problem(v),
        "birth_date": lambda v: birth_date_problem(v, clock.now().date()),
        "locale": lambda v: locale_problem(v),
    }
    changes: dict = {}
    for path in paths:
        if path == "marketing_consent":
            changes[path] = message.marketing_consent
            continue
        value = getattr(message, path)
        problem = checks[path](value)
        if problem:
            fields.bad(f"profile.{path}", problem)
        changes[path] = value
    return changes


def update_member(request: ledger_pb2.UpdateMemberRequest) -> tuple[str, dict]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    paths = list(dict.fromkeys(request.update_mask.paths))
    if not paths:
        fields.bad("update_mask", "name at least one profile field to change")
    known = [path for path in paths if path in PROFILE_FIELDS]
    for path in paths:
        if path not in PROFILE_FIELDS:
            fields.bad("update_mask", f"{path[:64]!r} is not a profile field ({', '.join(PROFILE_FIELDS)})")
    changes = _profile_fields(fields, request.profile, known)
    fields.done()
    return member, changes


def list_members(request: ledger_pb2.ListMembersRequest) -> MemberQuery:
    fields = Fields()
    size = fields.page_size(request.page_size)
    token = fields.page_token(request.page_token)
    tier = fields.identifier("tier", request.tier, required=False, max_length=64)
    status = fields.enum("status", request.status, enums.MEMBER_STATUSES, required=False)
    start = fields.timestamp("start_enroll_time", request.start_enroll_time, request.HasField("start_enroll_time"))
    end = fields.timestamp("end_enroll_time", request.end_enroll_time, request.HasField("end_enroll_time"))
    segment = fields.identifier("segment_id", request.segment_id, required=False, max_length=64)
    fields.done()
    return MemberQuery(size, token, tier, status, start, end, segment)


def close_member(request: ledger_pb2.CloseMemberRequest | ledger_pb2.EraseMemberRequest) -> tuple[str, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    reason = fields.text("reason", request.reason, max_length=MAX_REASON_LENGTH)
    fields.done()
    return member, reason


def earn(request: ledger_pb2.EarnRequest | ledger_pb2.QuoteEarnRequest, *, key_required: bool) -> tuple[EarnCommand, str]:
    fields = Fields()
    # A quote may leave out the member: it then answers for a new member (marketing's preview).
    member = fields.identifier("member_id", request.member_id, required=key_required)
    key = fields.identifier("idempotency_key", request.idempotency_key, required=key_required)
    order = request.order
    if not request.HasField("order"):
        fields.bad("order", "is required")
    order_id = fields.identifier("order.order_id", order.order_id)
    channel = fields.enum("order.channel", order.channel, enums.CHANNELS, required=True)
    amount = fields.amount("order.amount", order.amount)
    currency = fields.currency("order.currency", order.currency)
    store_id = fields.identifier("order.store_id", order.store_id, required=False)
    lines = []
    if len(order.lines) > MAX_ORDER_LINES:
        fields.bad("order.lines", f"has more than {MAX_ORDER_LINES} lines")
    else:
        for i, line in enumerate(order.lines):
            sku = fields.identifier(f"order.lines[{i}].sku", line.sku)
            category = fields.identifier(f"order.lines[{i}].category", line.category, required=False)
            if not 0 < line.quantity <= MAX_LINE_QUANTITY:
                fields.bad(f"order.lines[{i}].quantity", f"must be between 1 and {MAX_LINE_QUANTITY}")
            line_amount = fields.amount(f"order.lines[{i}].amount", line.amount, allow_zero=True)
            lines.append(OrderLine(sku, category, line.quantity, line_amount))
    if order.paid_with_points_amount < 0 or order.paid_with_points_amount > max(order.amount, 0):
        fields.bad("order.paid_with_points_amount", "must be between 0 and the order amount")
    occurred = fields.timestamp("order.occur_time", order.occur_time, order.HasField("occur_time"))
    fields.done()
    assert channel is not None  # required: done() raised without one
    facts = OrderFacts(
        order_id,
        amount,
        currency,
        occurred or clock.now(),
        channel,
        tuple(lines),
        order.paid_with_points_amount,
    )
    return EarnCommand(member, facts, channel, store_id), key


def redeem(request: ledger_pb2.RedeemRequest) -> tuple[RedeemCommand, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    # The oneof `debit`: which of points and reward_id was set, not whether it is non-zero.
    debit = request.WhichOneof("debit")
    reward = ""
    if debit is None:
        fields.bad("points", "give points or reward_id")
    elif debit == "reward_id":
        reward = fields.identifier("reward_id", request.reward_id)
    else:
        fields.positive_points("points", request.points)
    order_id = fields.identifier("order_id", request.order_id, required=False)
    channel = fields.enum("channel", request.channel, enums.CHANNELS, required=False, default=Channel.OTHER)
    store_id = fields.identifier("store_id", request.store_id, required=False)
    fields.done()
    return RedeemCommand(member, request.points, reward, order_id, channel, store_id), key


def adjust(request: ledger_pb2.AdjustPointsRequest) -> tuple[str, str, int, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    points = fields.nonzero_points("points", request.points)
    reason = fields.text("reason", request.reason, max_length=MAX_REASON_LENGTH, required=True)
    fields.done()
    return member, key, points, reason


def transfer(request: ledger_pb2.TransferPointsRequest) -> tuple[TransferCommand, str]:
    fields = Fields()
    sender = fields.identifier("from_member_id", request.from_member_id)
    receiver = fields.identifier("to_member_id", request.to_member_id)
    points = fields.positive_points("points", request.points)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    reason = fields.text("reason", request.reason, max_length=MAX_REASON_LENGTH)
    fields.done()
    return TransferCommand(sender, receiver, points, reason), key


def reverse(request: ledger_pb2.ReverseTransactionRequest) -> tuple[str, str, str]:
    fields = Fields()
    transaction_id = fields.identifier("transaction_id", request.transaction_id, max_length=64)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    reason = fields.text("reason", request.reason, max_length=MAX_REASON_LENGTH)
    fields.done()
    return transaction_id, key, reason


def statement(request: ledger_pb2.ListTransactionsRequest) -> StatementQuery:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    page_size = fields.page_size(request.page_size)
    token = fields.page_token(request.page_token)
    kinds = []
    if len(request.kinds) > 20:
        fields.bad("kinds", "lists more than 20 kinds")
    for i, number in enumerate(request.kinds[:20]):
        kind = fields.enum(f"kinds[{i}]", number, enums.KINDS, required=True)
        if kind is not None:
            kinds.append(kind)
    after = fields.timestamp("start_create_time", request.start_create_time, request.HasField("start_create_time"))
    before = fields.timestamp("end_create_time", request.end_create_time, request.HasField("end_create_time"))
    fields.done()
    return StatementQuery(
        member_id=member,
        page_size=page_size,
        page_token=token,
        kinds=tuple(dict.fromkeys(kinds)),
        created_after=after,
        created_before=before,
    )




def authorize(request: ledger_pb2.AuthorizeRedemptionRequest) -> tuple[AuthorizeCommand, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    points = fields.positive_points("points", request.points)
    order_id = fields.identifier("order_id", request.order_id, required=False)
    if not 0 <= request.ttl_seconds <= MAX_HOLD_TTL_SECONDS:
        fields.bad("ttl_seconds", f"must be between 0 (program default) and {MAX_HOLD_TTL_SECONDS}")
    channel = fields.enum("channel", request.channel, enums.CHANNELS, required=False, default=Channel.POS)
    store_id = fields.identifier("store_id", request.store_id, required=False)
    fields.done()
    return AuthorizeCommand(member, points, order_id, request.ttl_seconds, channel, store_id), key


def capture(request: ledger_pb2.CaptureRedemptionRequest) -> tuple[str, str, int]:
    fields = Fields()
    hold_id = fields.identifier("hold_id", request.hold_id, max_length=64)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    if request.points:
        fields.positive_points("points", request.points)
    fields.done()
    return hold_id, key, request.points


def void(request: ledger_pb2.VoidRedemptionRequest) -> tuple[str, str]:
    fields = Fields()
    hold_id = fields.identifier("hold_id", request.hold_id, max_length=64)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    fields.done()
    return hold_id, key


def refund(request: ledger_pb2.RefundOrderRequest) -> tuple[RefundCommand, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    order_id = fields.identifier("order_id", request.order_id)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    amount = fields.amount("amount", request.amount)
    # Optional: the order's own currency applies; one given must be the order's (checked against it).
    currency = fields.currency("currency", request.currency) if request.currency else ""
    reason = fields.text("reason", request.reason, max_length=MAX_REASON_LENGTH)
    fields.done()
    return RefundCommand(member, order_id, amount, currency, reason), key


def activity(request: ledger_pb2.RecordActivityRequest) -> tuple[ActivityCommand, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    key = fields.identifier("idempotency_key", request.idempotency_key)
    activity_type = fields.identifier("activity_type", request.activity_type, max_length=64)
    occurred = fields.timestamp("occur_time", request.occur_time, request.HasField("occur_time"))
    channel = fields.enum("channel", request.channel, enums.CHANNELS, required=False, default=Channel.OTHER)
    fields.done()
    return ActivityCommand(member, activity_type, occurred or clock.now(), channel), key


def referrals(request: ledger_pb2.ListReferralsRequest) -> tuple[str, int, str]:
    fields = Fields()
    member = fields.identifier("member_id", request.member_id)
    page_size = fields.page_size(request.page_size)
    token = fields.page_token(request.page_token)
    fields.done()
    return member, page_size, token
