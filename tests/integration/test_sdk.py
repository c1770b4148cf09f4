"""The Python SDK (`loyalty.client`, blocking and asyncio) and the POS example against a real
server on loopback, on both backends.

- One scenario calls every RPC of both services through each client; a recording
  interceptor proves that every method of the service descriptors was sent.
- Retries are exercised with a client-side interceptor (a grpc one for the blocking client,
  a grpc.aio one for the asyncio client) that fails chosen attempts with a chosen code,
  either before the request leaves the client or after the server has applied it (the
  answer "lost on the way back"), and records the idempotency key and deadline every
  attempt carried.
- The generated methods follow the service descriptors: one per RPC, both clients, the
  request's fields as keyword arguments, so an RPC added to the protos reaches the SDK the
  same way (tests/test_generated_stubs.py checks the committed file is fresh).
"""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import re
import secrets
import time
import typing
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf import field_mask_pb2
import pytest

from clients import pos_example
from ledger.domain.kinds import Role
from loyalty.client import (
    RETRYABLE_CODES,
    AsyncLedgerClient,
    LedgerApiError,
    LedgerClient,
    RetryPolicy,
    timestamp,
)
from loyalty.client import _methods, retries
from loyalty.client.connection import Rpc
from loyalty.v1 import common_pb2, events_pb2, ledger_pb2, programs_pb2

SERVICES = [ledger_pb2.DESCRIPTOR.services_by_name["Ledger"], programs_pb2.DESCRIPTOR.services_by_name["Programs"]]
# Every service the SDK's methods are generated for (the Events service's are tested on their own below).
GENERATED_SERVICES = [*SERVICES, events_pb2.DESCRIPTOR.services_by_name["Events"]]
ALL_RPCS = {method.name for service in SERVICES for method in service.methods}
FAST = RetryPolicy(initial_backoff=0.001)


def member() -> str:
    return f"m-{secrets.token_hex(6)}"


def order_id() -> str:
    return f"o-{secrets.token_hex(6)}"


def order(amount: int, channel: int = common_pb2.CHANNEL_POS, **fields) -> common_pb2.Order:
    return common_pb2.Order(order_id=fields.pop("order_id", None) or order_id(), channel=channel, amount=amount,
                            currency="USD", **fields)


# --------------------------------------------------------------------------- the network


class _InjectedFailure(grpc.RpcError):
    """What a failed call looks like to a blocking caller, minus rich details."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"injected {self._code.name}"

    def trailing_metadata(self):
        return ()


class Network:
    """Records every attempt (method, idempotency key or request id, deadline, when) and fails
    the first `failures` attempts of each RPC named in `methods` with `code`.

    before_server=True: the attempt never reaches the server.
    before_server=False: the server applies the attempt, then its answer is lost.
    """

    def __init__(self, methods=(), failures=1, code=grpc.StatusCode.UNAVAILABLE, before_server=True) -> None:
        self.methods = set(methods)
        self.failures = failures
        self.code = code
        self.before_server = before_server
        self.attempts: list[tuple[str, str, float | None, float]] = []
        self._failed: dict[str, int] = {}

    def fails(self, details, request) -> bool:
        """Records an attempt; whether it is to fail."""
        method = details.method
        method = (method.decode() if isinstance(method, bytes) else method).rsplit("/", 1)[-1]
        key = getattr(request, "idempotency_key", "") or getattr(request, "request_id", "")
        self.attempts.append((method, key, details.timeout, time.monotonic()))
        if method in self.methods and self._failed.get(method, 0) < self.failures:
            self._failed[method] = self._failed.get(method, 0) + 1
            return True
        return False

    def keys(self, method: str) -> list[str]:
        return [key for name, key, _, _ in self.attempts if name == method]

    def names(self) -> list[str]:
        return [name for name, _, _, _ in self.attempts]

    def timeouts(self, method: str) -> list[float | None]:
        return [timeout for name, _, timeout, _ in self.attempts if name == method]


class Intercepted(grpc.UnaryUnaryClientInterceptor):
    """A blocking client's way through the network (a grpc client interceptor)."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def intercept_unary_unary(self, continuation, client_call_details, request):
        network = self.network
        if network.fails(client_call_details, request):
            if not network.before_server:
                continuation(client_call_details, request).result()  # applied on the server
            raise _InjectedFailure(network.code)
        return continuation(client_call_details, request)


class AioIntercepted(grpc.aio.UnaryUnaryClientInterceptor):
    """An asyncio client's way through the network (a grpc.aio client interceptor)."""

    def __init__(self, network: Network) -> None:
        self.network = network

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        network = self.network
        if network.fails(client_call_details, request):
            if not network.before_server:
                await (await continuation(client_call_details, request))  # applied on the server
            raise grpc.aio.AioRpcError(
                network.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"injected {network.code.name}"
            )
        return await continuation(client_call_details, request)


def sync_client(target: str, key: str, network: Network, policy: RetryPolicy = FAST) -> LedgerClient:
    channel = grpc.intercept_channel(grpc.insecure_channel(target), Intercepted(network))
    return LedgerClient("unused", key, channel=channel, policy=policy)


def async_client(target: str, key: str, network: Network, policy: RetryPolicy = FAST) -> AsyncLedgerClient:
    """Call from inside the event loop: a grpc.aio channel belongs to the loop it is made in."""
    channel = grpc.aio.insecure_channel(target, interceptors=[AioIntercepted(network)])
    return AsyncLedgerClient("unused", key, channel=channel, policy=policy)


class Blocking:
    """The blocking client seen through coroutine methods, so that one scenario drives both
    clients; each call is still the blocking client's own method, run to completion."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        async def call(*args, **kwargs):
            return method(*args, **kwargs)

        return call


async def collect(items) -> list:
    """The items of an iter_* method of either client (an iterator, or an async one)."""
    if inspect.isawaitable(items):
        items = await items
    if hasattr(items, "__aiter__"):
        return [item async for item in items]
    return list(items)


both = pytest.mark.parametrize("flavour", ["sync", "async"])


def runner(program, flavour: str, network: Network | None = None, key: str | None = None, policy=FAST):
    """A coroutine runner: `run(scenario)` calls scenario(ledger, network) with the chosen client."""
    key = key or program.admin_key
    target = program.backend.target
    network = network or Network()

    def run(scenario):
        if flavour == "sync":
            with sync_client(target, key, network, policy) as client:
                return asyncio.run(scenario(Blocking(client), network))

        async def on_asyncio():
            async with async_client(target, key, network, policy) as client:
                return await scenario(client, network)

        return asyncio.run(on_asyncio())

    return run


# --------------------------------------------------------------------------- every RPC


async def every_rpc(ledger, network: Network) -> None:
    """Calls all 42 RPCs of Ledger and Programs once or more, checking each answer."""
    now = datetime.now(timezone.utc)

    # -- Programs: settings, tiers, a campaign, a reward
    program = (await ledger.get_program()).program
    assert program.currency == "USD"
    rules = programs_pb2.Program(
        activity_rules=[programs_pb2.ActivityRule(activity_type="review_submitted", points=5)],
        referral=programs_pb2.ReferralRules(referrer_points=50, referee_points=20),
    )
    updated = (await ledger.update_program(program=rules, update_mask=["activity_rules", "referral"])).program
    assert [r.activity_type for r in updated.activity_rules] == ["review_submitted"]
    assert (updated.referral.referrer_points, updated.referral.referee_points) == (50, 20)

    tiers = [
        programs_pb2.Tier(name="Member", threshold=0, earn_multiplier_bps=10_000),
        programs_pb2.Tier(name="Silver", threshold=10_000_000, earn_multiplier_bps=12_500),
    ]
    assert [t.name for t in (await ledger.set_tiers(tiers=tiers)).tiers] == ["Member", "Silver"]
    assert [t.name for t in (await ledger.list_tiers()).tiers] == ["Member", "Silver"]

    weekend = programs_pb2.Campaign(
        name=f"sdk bonus {secrets.token_hex(3)}",
        start_time=timestamp(now - timedelta(hours=1)),
        end_time=timestamp(now + timedelta(days=1)),
        bonus_points=10,
    )
    rid = f"rq-{secrets.token_hex(6)}"
    campaign = (await ledger.create_campaign(campaign=weekend, request_id=rid)).campaign
    assert campaign.state == programs_pb2.Campaign.STATE_ACTIVE and campaign.bonus_points == 10
    again = (await ledger.create_campaign(campaign=weekend, request_id=rid)).campaign
    assert again.campaign_id == campaign.campaign_id  # AIP-155: the retry answers the first result
    renamed = f"{weekend.name}, renamed"
    campaign_id = campaign.campaign_id
    changed = programs_pb2.Campaign(campaign_id=campaign_id, name=renamed)
    assert (await ledger.update_campaign(campaign=changed, update_mask=["name"])).campaign.name == renamed
    assert (await ledger.get_campaign(campaign_id=campaign_id)).campaign.name == renamed
    page = await ledger.list_campaigns(page_size=1)
    assert len(page.campaigns) == 1
    assert [c.campaign_id for c in await collect(ledger.iter_campaigns(state="ACTIVE", page_size=1))] == [campaign_id]

    reward = (await ledger.create_reward(
        reward=programs_pb2.Reward(name="mug", points_price=30, unlimited_stock=True)
    )).reward
    assert reward.reward_id and reward.points_price == 30
    assert reward.reward_id in [r.reward_id for r in (await ledger.list_rewards(page_size=10)).rewards]
    assert [r.reward_id for r in await collect(ledger.iter_rewards(page_size=1))] == [reward.reward_id]

    # -- Ledger: a referrer, a referred member, an order under the campaign
    referrer, shopper = member(), member()
    assert (await ledger.enroll_member(member_id=referrer)).created
    code = (await ledger.get_member(member_id=referrer)).member.referral_code
    enrolled = await ledger.enroll_member(member_id=shopper, referral_code=code)
    assert enrolled.created and enrolled.member.member_id == shopper

    sale = order(10_000, store_id="store-9")
    quote = (await ledger.quote_earn(member_id=shopper, order=sale)).transaction
    assert quote.points == 110 and quote.transaction_id == ""  # 100 base + 10 campaign, written nowhere
    earned = await ledger.earn(member_id=shopper, order=sale)
    tx = earned.transaction
    assert (tx.kind, tx.points, tx.order_id, tx.store_id) == (common_pb2.TRANSACTION_KIND_EARN, 110, sale.order_id, "store-9")
    assert {(b.source, b.points) for b in tx.breakdown} == {
        (common_pb2.POINTS_SOURCE_BASE, 100), (common_pb2.POINTS_SOURCE_CAMPAIGN, 10),
    }
    assert tx.idempotency_key  # the SDK made one
    paused = (await ledger.pause_campaign(campaign_id=campaign_id)).campaign
    assert paused.state == programs_pb2.Campaign.STATE_PAUSED and paused.points_awarded == 10

    available = (await ledger.get_member(member_id=shopper)).member.balance.available
    assert available >= 110
    redeemed = await ledger.redeem(member_id=shopper, reward_id=reward.reward_id, channel="POS")
    assert redeemed.transaction.points == -30 and redeemed.balance.available == available - 30

    hold = (await ledger.authorize_redemption(member_id=shopper, points=10, ttl_seconds=600, channel="POS")).hold
    assert hold.state == ledger_pb2.Hold.STATE_OPEN and hold.points == 10
    captured = await ledger.capture_redemption(hold_id=hold.hold_id, points=4)
    assert captured.hold.state == ledger_pb2.Hold.STATE_CAPTURED
    assert captured.balance.available == available - 34
    other = (await ledger.authorize_redemption(member_id=shopper, points=5)).hold
    voided = await ledger.void_redemption(hold_id=other.hold_id)
    assert voided.hold.state == ledger_pb2.Hold.STATE_VOIDED and voided.balance.held == 0

    refunded = await ledger.refund_order(
        member_id=shopper, order_id=sale.order_id, amount=5_000, currency="USD", reason="half returned"
    )
    assert refunded.transaction.kind == common_pb2.TRANSACTION_KIND_REFUND and refunded.transaction.points == -55

    activity = await ledger.record_activity(member_id=shopper, activity_type="review_submitted",
                                           occur_time=datetime.now(timezone.utc))
    assert activity.transaction.points == 5

    adjusted = await ledger.adjust_points(member_id=shopper, points=7, reason="goodwill: late delivery")
    assert adjusted.transaction.reason == "goodwill: late delivery"
    reversal = await ledger.reverse_transaction(
        transaction_id=adjusted.transaction.transaction_id, reason="entered twice"
    )
    assert reversal.transaction.reverses_transaction_id == adjusted.transaction.transaction_id
    assert reversal.balance.posted == adjusted.balance.posted - 7

    first = await ledger.list_transactions(member_id=shopper, page_size=2)
    assert len(first.transactions) == 2 and first.next_page_token
    statement = await collect(ledger.iter_transactions(member_id=shopper, page_size=2))
    assert statement[0].transaction_id == reversal.transaction.transaction_id  # newest first
    assert len({t.transaction_id for t in statement}) == len(statement) >= 7
    earns = await ledger.list_transactions(member_id=shopper, kinds=["EARN"], start_create_time=now - timedelta(minutes=5))
    assert [t.transaction_id for t in earns.transactions] == [tx.transaction_id]
    moved = await ledger.transfer_points(from_member_id=shopper, to_member_id=referrer, points=3, reason="family")
    assert (moved.transaction.points, moved.to_transaction.points) == (-3, 3)
    assert moved.balance.posted == reversal.balance.posted - 3
    profiled = await ledger.update_member(member_id=referrer, profile=ledger_pb2.MemberProfile(locale="fr-CA"),
                                          update_mask=field_mask_pb2.FieldMask(paths=["locale"]))
    assert profiled.member.profile.locale == "fr-CA"
    listed = await ledger.list_members(page_size=500)
    assert {shopper, referrer} <= {m.member_id for m in listed.members}
    leaver = member()
    await ledger.enroll_member(member_id=leaver)
    assert (await ledger.close_member(member_id=leaver)).member.status == ledger_pb2.MEMBER_STATUS_CLOSED
    assert (await ledger.erase_member(member_id=leaver)).member.HasField("erase_time")

    referrals = await ledger.list_referrals(member_id=referrer)
    assert [r.referee_member_id for r in referrals.referrals] == [shopper]
    walked = await collect(ledger.iter_referrals(member_id=referrer, page_size=1))
    assert [r.referee_member_id for r in walked] == [shopper]
    assert walked[0].qualifying_order_id == sale.order_id
    report = await ledger.get_referral_report()
    liability = (await ledger.get_liability_report()).report
    assert liability.posted_points >= 0 and liability.months
    assert report.attributed >= 1 and report.qualified + report.rewarded >= 1

    # -- Programs: segments and webhooks
    big_spenders = programs_pb2.Segment(
        name=f"sdk-{secrets.token_hex(3)}",
        conditions=programs_pb2.SegmentConditions(spend=programs_pb2.IntRange(min=5_000)),
    )
    segment = (await ledger.create_segment(segment=big_spenders)).segment
    assert segment.segment_id and not segment.preset
    described = programs_pb2.Segment(segment_id=segment.segment_id, description="spent 50 or more")
    assert (await ledger.update_segment(segment=described, update_mask=["description"])).segment.description
    assert (await ledger.get_segment(segment=segment.segment_id)).segment.name == big_spenders.name
    names = {s.name for s in (await ledger.list_segments(page_size=100)).segments}
    assert {big_spenders.name, "lapsed", "champions"} <= names
    assert (await ledger.list_segment_members(segment=segment.segment_id, page_size=10)).members is not None

    hook = (await ledger.create_webhook(url="http://127.0.0.1:9/hook", event_types=["points.earned"])).webhook
    assert hook.webhook_id and hook.signing_secret  # shown once, at creation
    listed_hooks = (await ledger.list_webhooks()).webhooks
    assert [h.webhook_id for h in listed_hooks] == [hook.webhook_id] and not listed_hooks[0].signing_secret
    assert (await ledger.list_webhook_deliveries(webhook_id=hook.webhook_id, page_size=10)).deliveries is not None
    await ledger.redeliver_events(webhook_id=hook.webhook_id, after_event_id="")
    await ledger.delete_webhook(webhook_id=hook.webhook_id)
    assert (await ledger.list_webhooks()).webhooks == []

    assert set(network.names()) == ALL_RPCS


@both
def test_every_rpc_of_both_services(program, flavour):
    """With the answers of a capture and a refund lost once on the way back: each retry
    replays the first result (the balances above are those of one capture, one refund)."""
    assert len(ALL_RPCS) == 42
    network = Network({"CaptureRedemption", "RefundOrder"}, failures=1, before_server=False)
    runner(program, flavour, network)(every_rpc)
    for method in ("CaptureRedemption", "RefundOrder"):
        keys = network.keys(method)
        assert len(keys) == 2 and len(set(keys)) == 1, method


async def pos_walkthrough(ledger, network: Network) -> None:
    m, o = member(), order_id()
    enrolled = await ledger.enroll_member(member_id=m)
    assert enrolled.created and enrolled.member.member_id == m
    assert not (await ledger.enroll_member(member_id=m)).created
    earned = await ledger.earn(
        member_id=m,
        order=order(2599, order_id=o, lines=[common_pb2.OrderLine(sku="A1", category="shoes", quantity=1, amount=2599)],
                    occur_time=timestamp(datetime.now(timezone.utc) - timedelta(hours=1))),
    )
    assert earned.transaction.points == 25
    redeemed = await ledger.redeem(member_id=m, points=10, order_id=o, channel="CHANNEL_POS")
    assert redeemed.balance.available == 15
    assert (await ledger.get_member(member_id=m)).member.balance.posted == 15


@both
def test_a_pos_key_can_do_the_tills_work(program, flavour):
    runner(program, flavour, key=program.key(Role.POS))(pos_walkthrough)


@both
def test_a_whole_request_message_is_sent_as_given(program, flavour):
    async def scenario(ledger, network):
        m = member()
        request = ledger_pb2.EnrollMemberRequest(member_id=m)
        assert (await ledger.enroll_member(request)).member.member_id == m
        with pytest.raises(TypeError, match="not both"):
            await ledger.enroll_member(request, member_id=m)

    runner(program, flavour)(scenario)


# --------------------------------------------------------------------------- refusals


@both
def test_refusal_is_raised_with_its_reason(program, flavour):
    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        await ledger.earn(member_id=m, order=order(500))
        with pytest.raises(LedgerApiError) as caught:
            await ledger.redeem(member_id=m, points=6, idempotency_key="redeem-too-much")
        return caught.value

    error = runner(program, flavour)(scenario)
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "INSUFFICIENT_POINTS"
    assert error.domain == "loyalty.v1"
    assert error.metadata == {"requested": "6", "available": "5"}
    assert "5 available" in error.message
    assert error.field_violations == []
    assert error.idempotency_key == "redeem-too-much"


@both
def test_invalid_argument_carries_every_field_violation(program, flavour):
    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        with pytest.raises(LedgerApiError) as caught:
            await ledger.earn(member_id=m, order=common_pb2.Order(amount=-5, currency="ABC", channel=common_pb2.CHANNEL_POS))
        return caught.value

    error = runner(program, flavour)(scenario)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FIELD"
    assert {"order.order_id", "order.amount", "order.currency"} <= {field for field, _ in error.field_violations}
    assert all(description for _, description in error.field_violations)


@both
def test_unknown_key_and_unknown_member(program, flavour):
    async def stranger(ledger, network):
        with pytest.raises(LedgerApiError) as caught:
            await ledger.get_member(member_id=member())
        return caught.value

    error = runner(program, flavour, key="lk_nope_nope")(stranger)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    error = runner(program, flavour)(stranger)
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND")


@both
def test_naive_datetimes_are_refused_before_sending(program, flavour):
    naive = datetime(2026, 1, 1, 12, 0)

    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        sent = len(network.attempts)
        for call in (
            lambda: ledger.record_activity(member_id=m, activity_type="review_submitted", occur_time=naive),
            lambda: ledger.list_transactions(member_id=m, start_create_time=naive),
            lambda: collect(ledger.iter_transactions(member_id=m, end_create_time=naive)),
        ):
            with pytest.raises(ValueError, match="naive datetime 2026-01-01T12:00:00: .*timezone-aware"):
                await call()
        assert len(network.attempts) == sent  # refused before anything was sent

    runner(program, flavour)(scenario)
    with pytest.raises(ValueError, match="timezone-aware"):
        timestamp(naive)
    assert timestamp(naive.replace(tzinfo=timezone(timedelta(hours=1)))).ToDatetime() == datetime(2026, 1, 1, 11, 0)


# --------------------------------------------------------------------------- retries


@both
@pytest.mark.parametrize("before_server", [True, False], ids=["lost-request", "lost-answer"])
@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES, key=lambda c: c.name), ids=lambda c: c.name)
def test_retries_reuse_the_idempotency_key_and_apply_once(program, flavour, code, before_server):
    network = Network({"Earn", "Redeem", "CreateCampaign"}, failures=2, code=code, before_server=before_server)

    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        earned = await ledger.earn(member_id=m, order=order(10_000))
        redeemed = await ledger.redeem(member_id=m, points=30)
        now = datetime.now(timezone.utc)
        campaign = programs_pb2.Campaign(
            name=f"retried {secrets.token_hex(3)}", start_time=timestamp(now), end_time=timestamp(now + timedelta(days=1)),
            bonus_points=1,
        )
        created = await ledger.create_campaign(campaign=campaign)
        kinds = [t.kind for t in await collect(ledger.iter_transactions(member_id=m))]
        campaigns = [c.campaign_id for c in await collect(ledger.iter_campaigns()) if c.name == campaign.name]
        balance = (await ledger.get_member(member_id=m)).member.balance.posted
        return earned, redeemed, created, kinds, campaigns, balance

    earned, redeemed, created, kinds, campaigns, balance = runner(program, flavour, network)(scenario)
    earn_keys, redeem_keys, campaign_ids = network.keys("Earn"), network.keys("Redeem"), network.keys("CreateCampaign")
    assert len(earn_keys) == 3 and len(set(earn_keys)) == 1
    assert len(redeem_keys) == 3 and len(set(redeem_keys)) == 1
    assert len(campaign_ids) == 3 and len(set(campaign_ids)) == 1 and campaign_ids[0]  # a request_id, made once
    assert earn_keys[0] != redeem_keys[0]  # one key per logical operation
    assert earned.transaction.idempotency_key == earn_keys[0]
    assert (earned.balance.posted, redeemed.balance.posted, balance) == (100, 70, 70)
    assert kinds == [common_pb2.TRANSACTION_KIND_REDEEM, common_pb2.TRANSACTION_KIND_EARN]  # each applied once
    assert campaigns == [created.campaign.campaign_id]


NOT_RETRIED = [
    grpc.StatusCode.DEADLINE_EXCEEDED,  # the outcome is unknown: the caller decides, with error.idempotency_key
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
]


@both
@pytest.mark.parametrize("code", NOT_RETRIED, ids=lambda c: c.name)
def test_only_unavailable_and_aborted_are_retried(program, flavour, code):
    network = Network({"Redeem"}, failures=100, code=code)

    async def scenario(ledger, network):
        with pytest.raises(LedgerApiError) as caught:
            await ledger.redeem(member_id=member(), points=1, idempotency_key="only-once")
        return caught.value

    error = runner(program, flavour, network)(scenario)
    assert error.code is code and error.idempotency_key == "only-once"
    assert network.names() == ["Redeem"]


@both
def test_a_real_refusal_is_not_retried(program, flavour):
    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        with pytest.raises(LedgerApiError) as caught:
            await ledger.redeem(member_id=m, points=1)
        return caught.value

    network = Network()
    assert runner(program, flavour, network)(scenario).reason == "INSUFFICIENT_POINTS"
    assert network.names() == ["EnrollMember", "Redeem"]


@both
def test_attempts_are_bounded_and_each_has_a_deadline(program, flavour):
    network = Network({"GetMember"}, failures=100)
    policy = RetryPolicy(max_attempts=3, attempt_timeout=2.5, initial_backoff=0.001)

    async def scenario(ledger, network):
        with pytest.raises(LedgerApiError) as caught:
            await ledger.get_member(member_id=member())
        return caught.value

    assert runner(program, flavour, network, policy=policy)(scenario).code is grpc.StatusCode.UNAVAILABLE
    assert network.names() == ["GetMember"] * 3
    assert all(timeout is not None and 2.4 < timeout <= 2.5 for timeout in network.timeouts("GetMember"))


@both
def test_backoff_doubles_with_full_jitter_up_to_its_cap(program, flavour, monkeypatch):
    caps: list[float] = []

    def uniform(low: float, high: float) -> float:
        caps.append(high)
        assert low == 0  # full jitter: anywhere from no pause to the cap
        return high

    monkeypatch.setattr(retries.random, "uniform", uniform)
    network = Network({"GetMember"}, failures=100)
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.02, max_backoff=0.05)

    async def scenario(ledger, network):
        with pytest.raises(LedgerApiError):
            await ledger.get_member(member_id=member())

    runner(program, flavour, network, policy=policy)(scenario)
    assert caps == [0.02, 0.04, 0.05, 0.05]
    sent = [at for name, _, _, at in network.attempts]
    pauses = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert all(pause >= cap * 0.9 for pause, cap in zip(pauses, caps))


@both
def test_the_deadline_bounds_the_whole_operation_not_each_attempt(program, flavour):
    """Every attempt is cut to what is left of the operation's deadline, and no retry starts
    once the next pause would run past it: the caller waits about `deadline`, not
    max_attempts x attempt_timeout."""
    network = Network({"GetMember"}, failures=1000)
    policy = RetryPolicy(max_attempts=1000, attempt_timeout=5.0, deadline=0.6, initial_backoff=0.05, max_backoff=0.1)

    async def scenario(ledger, network):
        started = time.monotonic()
        with pytest.raises(LedgerApiError) as caught:
            await ledger.get_member(member_id=member())
        return caught.value, time.monotonic() - started

    error, waited = runner(program, flavour, network, policy=policy)(scenario)
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert waited < 1.5  # about the deadline (0.6 s), nowhere near max_attempts x attempt_timeout
    timeouts = network.timeouts("GetMember")
    assert 3 <= len(timeouts) < 1000
    assert all(timeout is not None and timeout <= 0.6 for timeout in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)  # each attempt gets what is left

    async def per_call(ledger, network):  # `timeout=` on a call is that operation's deadline
        with pytest.raises(LedgerApiError):
            await ledger.get_member(member_id=member(), timeout=0.2)

    network = Network({"GetMember"}, failures=1000)
    runner(program, flavour, network, policy=policy)(per_call)
    assert all(timeout is not None and timeout <= 0.2 for timeout in network.timeouts("GetMember"))


@both
def test_a_lost_answer_is_recovered_by_retrying_with_the_errors_key(program, flavour):
    """DEADLINE_EXCEEDED is not retried (the outcome is unknown); sending the operation again
    under error.idempotency_key answers the original result and applies nothing twice."""
    network = Network({"AdjustPoints"}, failures=1, code=grpc.StatusCode.DEADLINE_EXCEEDED, before_server=False)

    async def scenario(ledger, network):
        m = member()
        await ledger.enroll_member(member_id=m)
        with pytest.raises(LedgerApiError) as caught:
            await ledger.adjust_points(member_id=m, points=40, reason="goodwill")
        key = caught.value.idempotency_key
        again = await ledger.adjust_points(member_id=m, points=40, reason="goodwill", idempotency_key=key)
        return key, again, (await ledger.get_member(member_id=m)).member.balance.posted

    key, again, posted = runner(program, flavour, network)(scenario)
    assert key and again.transaction.idempotency_key == key
    assert posted == 40
    assert network.keys("AdjustPoints") == [key, key]


# --------------------------------------------------------------------------- pagination


def test_iter_transactions_walks_every_page(program):
    with LedgerClient(program.backend.target, program.admin_key) as client:
        m = member()
        client.enroll_member(member_id=m)
        earned = [
            client.earn(member_id=m, order=order(100 * (i + 1))).transaction.transaction_id for i in range(7)
        ]
        first = client.list_transactions(member_id=m, page_size=3)
        assert len(first.transactions) == 3 and first.next_page_token

        walked = list(client.iter_transactions(member_id=m, page_size=3))
        assert [t.transaction_id for t in walked] == earned[::-1]  # newest first, each once
        assert [t.points for t in walked] == [7, 6, 5, 4, 3, 2, 1]
        assert [t.transaction_id for t in client.iter_transactions(member_id=m, page_size=7)] == earned[::-1]
        assert list(client.iter_transactions(member_id=m, kinds=["REDEEM"])) == []


# --------------------------------------------------------------------------- the generated methods


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _rpcs() -> Iterator[tuple[str, object]]:
    for service in GENERATED_SERVICES:
        for method in service.methods:
            yield f"/{service.full_name}/{method.name}", method


def test_the_generated_methods_follow_the_service_descriptors():
    """Every RPC of the descriptors, and nothing else, is a method of both clients, named in
    snake_case, taking the request message or its fields (every one, as keyword arguments)
    and `timeout`, answering the response message; a List RPC that pages also gets an
    iter_* method. An RPC added to a proto reaches the SDK by `python -m ledger.codegen`."""
    constants = {value.path: value for value in vars(_methods).values() if isinstance(value, Rpc)}
    assert set(constants) == {path for path, _ in _rpcs()}
    expected_methods = set()
    for path, method in _rpcs():
        rpc = constants[path]
        assert rpc.request.DESCRIPTOR is method.input_type and rpc.response.DESCRIPTOR is method.output_type
        name = snake(method.name)
        expected_methods.add(name)
        fields = [field.name for field in method.input_type.fields]
        for client in (LedgerClient, AsyncLedgerClient):
            function = getattr(client, name)
            streams = method.server_streaming  # an iterator of the responses, in both clients
            assert inspect.iscoroutinefunction(function) == (client is AsyncLedgerClient and not streams), name
            parameters = inspect.signature(function).parameters
            assert list(parameters) == ["self", "request", *fields, "timeout"], name
            assert all(parameters[f].kind is inspect.Parameter.KEYWORD_ONLY for f in [*fields, "timeout"]), name
            hints = typing.get_type_hints(function)
            if streams:
                iterator = collections.abc.AsyncIterator if client is AsyncLedgerClient else collections.abc.Iterator
                assert hints["return"] == iterator[rpc.response], name
            else:
                assert hints["return"] is rpc.response, name
            assert hints["request"] == rpc.request | None, name
            assert (function.__doc__ or "").startswith(f"{path.split('/')[1].split('.')[-1]}.{method.name}"), name
        response_fields = {f.name for f in method.output_type.fields}
        if {"page_token", "page_size"} <= set(fields) and "next_page_token" in response_fields:
            pager = f"iter_{name.removeprefix('list_')}"
            expected_methods.add(pager)
            for client in (LedgerClient, AsyncLedgerClient):
                parameters = inspect.signature(getattr(client, pager)).parameters
                assert list(parameters) == ["self", *[f for f in fields if f != "page_token"], "timeout"], pager
    for generated in (_methods.LedgerMethods, _methods.AsyncLedgerMethods):
        public = {name for name, value in vars(generated).items() if callable(value) and not name.startswith("_")}
        assert public == expected_methods, public ^ expected_methods
    assert {"iter_transactions", "iter_referrals", "iter_campaigns", "iter_rewards"} <= expected_methods


def test_enums_take_their_number_full_name_or_short_name():
    from loyalty.client import build

    for value in (common_pb2.CHANNEL_POS, "CHANNEL_POS", "POS", "pos"):
        assert build(ledger_pb2.RedeemRequest, channel=value).channel == common_pb2.CHANNEL_POS
    with pytest.raises(ValueError, match="not a Channel: one of CHANNEL_UNSPECIFIED, CHANNEL_POS"):
        build(ledger_pb2.RedeemRequest, channel="TILL")


def test_client_options_are_checked():
    with pytest.raises(ValueError, match="api_key"):
        LedgerClient("127.0.0.1:1", "")
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline=0)


# --------------------------------------------------------------------------- the POS example


@pytest.mark.parametrize("role", [Role.POS, Role.ADMIN])
def test_pos_example_runs_end_to_end(program, role, capsys):
    key = program.admin_key if role is Role.ADMIN else program.key(role)
    m = member()
    argv = ["--target", program.backend.target, "--key", key, "--member", m]
    assert pos_example.main(argv) == 0
    out = capsys.readouterr().out
    assert f"member {m}: enrolled" in out
    assert "earned 25 points" in out
    assert "INSUFFICIENT_POINTS" in out
    assert "EARN" in out and "REDEEM" in out

    assert pos_example.main(argv) == 0  # a second run finds the member and earns on a new order
    assert f"member {m}: already enrolled" in capsys.readouterr().out


def test_pos_example_reports_a_bad_key(program, capsys):
    assert pos_example.main(["--target", program.backend.target, "--key", "lk_bad_key"]) == 1
    assert "API_KEY_INVALID" in capsys.readouterr().err



def test_several_targets_make_one_round_robin_channel_with_health_checking():
    from loyalty.client import connection

    assert connection.channel_target("127.0.0.1:50051") == ("127.0.0.1:50051", [])
    target, options = connection.channel_target(["10.0.0.1:50051", "10.0.0.2:50051"])
    assert target == "ipv4:10.0.0.1:50051,10.0.0.2:50051"
    config = dict(options)["grpc.service_config"]
    assert '"round_robin"' in config and '"healthCheckConfig"' in config
    assert connection.channel_target(["[::1]:1", "[::1]:2"])[0] == "ipv6:[::1]:1,[::1]:2"
    for bad in ([], ["ledger.internal:50051"], ["10.0.0.1:1", "[::1]:2"]):
        with pytest.raises(ValueError):
            connection.channel_target(bad)


def test_a_client_given_a_dead_server_among_several_calls_the_live_ones(program):
    from tests.cli.processes import free_port

    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with LedgerClient([dead, program.backend.target], program.admin_key) as ledger:
        for number in range(6):
            ledger.enroll_member(member_id=f"m-rr-{number}", timeout=10)
        assert ledger.get_member(member_id="m-rr-5", timeout=10).member.member_id == "m-rr-5"


def test_events_through_both_clients(program):
    """list_events, iter_events and watch_events (an iterator of the stream's messages, sync
    and asyncio) read what the ledger wrote; an events key reads them."""
    events_key = program.key(Role.EVENTS)
    with LedgerClient(program.backend.target, program.admin_key, policy=FAST) as admin:
        member_id = member()
        admin.enroll_member(member_id=member_id)
        admin.adjust_points(member_id=member_id, points=40, reason="goodwill")
    with LedgerClient(program.backend.target, events_key, policy=FAST) as reader:
        page = reader.list_events(page_size=1)
        assert [e.type for e in page.events] == ["member.enrolled"] and page.next_page_token
        listed = list(reader.iter_events(page_size=1))
        assert [e.type for e in listed] == ["member.enrolled", "points.adjusted"]
        stream = reader.watch_events(after_event_id=listed[0].event_id, timeout=10)
        first = next(iter(stream))
        assert [e.points_adjusted.points for e in first.events] == [40]

    async def watch() -> list[str]:
        async with AsyncLedgerClient(program.backend.target, events_key, policy=FAST) as reader:
            async for message in reader.watch_events(types=["points.adjusted"], timeout=10):
                return [e.event_id for e in message.events]
        return []

    assert asyncio.run(watch()) == [listed[1].event_id]
