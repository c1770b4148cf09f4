"""Referrals over real gRPC, on PostgreSQL and SQLite: attribution, reward, reversal, limits, reports.

What it proves:
- happy path: a member's referral code is shown by GetMember; a new member enrolls with it in any
  letter case; ListReferrals shows the referee ATTRIBUTED; the referee's first qualifying order
  posts one REFERRAL_REWARD that appears in both statements (each with its own points, a REFERRAL
  breakdown line carrying the decision text, the order id), pending for pending_days: balances
  are exact, ListReferrals shows QUALIFIED with the decision, points, order, reward transaction and
  mature_time = occur_time + pending_days; GetReferralReport figures are exact; retrying the Earn
  (same key) replays it without a second reward, and later orders reward nothing;
- an order backdated beyond pending_days matures its reward at once: REWARDED, available;
- refusals, each with its status and reason and nothing written: own code (FAILED_PRECONDITION
  SELF_REFERRAL), unknown code or a code of another program (NOT_FOUND REFERRAL_CODE_NOT_FOUND, the
  new member is not created), a member who already has orders (REFERRAL_AFTER_FIRST_ORDER), a second
  referrer (ALREADY_REFERRED); re-enrolling with the same code is idempotent (also after the reward);
  an over-long code is INVALID_ARGUMENT on referral_code;
- min_order_amount: a smaller first order does not qualify (still ATTRIBUTED), a later bigger one does;
- refunds: a full refund before maturity reverses both rewards (REVERSED, both balances back,
  a REVERSAL of the reward in both statements, report updated); a partial refund that keeps the
  order at or above the minimum does not, a second one that takes it below does; a refund after
  maturity (backdated order) reverses nothing;
- the cap: with max_rewarded_per_referrer=1 the second referee is NOT_REWARDED with the cap decision
  and no REFERRAL_REWARD; a reversed reward frees its slot for the next referee;
- the attribution window: an order within attribution_window_days is rewarded; the "too late" case
  is built by moving the in-process server's clock forward (ledger.service.clock.now), since no
  order may be dated after the real now; the domain tests cover it too;
- counts_toward_tiers with a QUALIFYING_POINTS basis: when true both members' tier progress moves by
  their referral points, when false it does not;
- ListReferrals: pagination (page_size/page_token, sorted by referee, no repeats), NOT_FOUND
  MEMBER_NOT_FOUND for an unknown referrer or one of another program; roles: storefront and pos may
  call ListReferrals, marketing may call GetReferralReport, storefront and pos may not;
- bugs found (strict xfail, details in each reason): a reversed reward keeps counting toward tiers;
  referral points that reach a threshold upgrade nobody; after support reverses a REFERRAL_REWARD the
  referral stays QUALIFIED and RefundOrder of its order is ABORTED forever; a qualifying order that
  earned 0 points cannot be returned so its rewards are never reversed; support reversing the
  qualifying earn leaves the rewards; the reward's internal idempotency key '<key>:referral' collides
  with client keys (ALREADY_EXISTS later, ABORTED / INTERNAL earlier); GetReferralReport.qualified
  leaves out matured rewards although programs.proto says it counts them;
- `verify` is clean after every scenario.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from ledger.service import clock
from tests.conftest import new_program
from tests.grpc_helpers import earn_request, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, member, outcome, statement

REFERRAL_REWARD = common_pb2.TRANSACTION_KIND_REFERRAL_REWARD
REVERSAL = common_pb2.TRANSACTION_KIND_REVERSAL
EARN = common_pb2.TRANSACTION_KIND_EARN
REFERRAL = common_pb2.POINTS_SOURCE_REFERRAL
Referral = ledger_pb2.Referral
FAILED = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND

REFERRER_POINTS, REFEREE_POINTS, MINIMUM = 500, 200, 2_000


# --------------------------------------------------------------------------- helpers


def configure(api, pending_days: int = 14, **referral):
    """The program's return window and referral rules (500 / 200 points, minimum 20.00 by default)."""
    referral.setdefault("referrer_points", REFERRER_POINTS)
    referral.setdefault("referee_points", REFEREE_POINTS)
    referral.setdefault("min_order_amount", MINIMUM)
    program = programs_pb2.Program(pending_days=pending_days, referral=programs_pb2.ReferralRules(**referral))
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=program, update_mask=field_mask_pb2.FieldMask(paths=["pending_days", "referral"])
        ),
        metadata=api.metadata,
    ).program


def enroll(api, member_id: str | None = None, code: str = ""):
    member_id = member_id or f"m-{secrets.token_hex(4)}"
    response = api.ledger.EnrollMember(
        ledger_pb2.EnrollMemberRequest(member_id=member_id, referral_code=code), metadata=api.metadata
    )
    return member_id, response


def referrer(api) -> tuple[str, str]:
    """A new member and their referral code, as GetMember shows it."""
    member_id, _ = enroll(api)
    return member_id, member(api, member_id).referral_code


def referee(api, code: str) -> str:
    return enroll(api, code=code)[0]


def ago(days: float) -> Timestamp:
    return stamp(datetime.now(timezone.utc) - timedelta(days=days))


def stamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant.replace(microsecond=0))
    return message


def when(message: Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=timezone.utc)


def order(api, member_id: str, amount: int, *, occur_time: Timestamp | None = None, idempotency_key=None):
    """Earns for a new order; returns (order_id, request, response)."""
    order_id = f"o-{secrets.token_hex(5)}"
    extra = {"occur_time": occur_time} if occur_time is not None else {}
    request = earn_request(member_id, amount, order_id=order_id, idempotency_key=idempotency_key, **extra)
    return order_id, request, api.ledger.Earn(request, metadata=api.metadata)


def refund(api, member_id: str, order_id: str, amount: int):
    return api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(
            member_id=member_id, order_id=order_id, idempotency_key=key(), amount=amount, currency="USD"
        ),
        metadata=api.metadata,
    )


def referrals(api, member_id: str, page_size: int = 0, page_token: str = ""):
    return api.ledger.ListReferrals(
        ledger_pb2.ListReferralsRequest(member_id=member_id, page_size=page_size, page_token=page_token),
        metadata=api.metadata,
    )


def only_referral(api, referrer_id: str):
    found = list(referrals(api, referrer_id).referrals)
    assert len(found) == 1, found
    return found[0]


def report(api) -> tuple[int, ...]:
    r = api.programs.GetReferralReport(programs_pb2.GetReferralReportRequest(), metadata=api.metadata)
    return (r.attributed, r.qualified, r.rewarded, r.reversed, r.not_rewarded, r.points_awarded)


def balance_of(api, member_id: str) -> tuple[int, int, int, int]:
    b = member(api, member_id).balance
    return (b.posted, b.pending, b.held, b.available)


def kinds(api, member_id: str, kind) -> list:
    return [tx for tx in statement(api, member_id) if tx.kind == kind]


def decision_for(order_id: str, amount: int, minimum: int = MINIMUM) -> str:
    return (
        f"first qualifying order {order_id} ({amount} >= {minimum}): "
        f"{REFERRER_POINTS} to the referrer, {REFEREE_POINTS} to the new member"
    )


CAP_DECISION = "the referrer reached the cap of 1 rewarded referrals per 30 days"


# --------------------------------------------------------------------------- happy path


def test_referral_happy_path_pending_reward_in_both_statements(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    assert len(code) == 10 and code == code.upper()
    bob, enrolled = enroll(api, code=code.lower())  # codes are case-insensitive
    assert enrolled.created and enrolled.member.member_id == bob
    assert enrolled.member.referral_code and enrolled.member.referral_code != code

    listed = referrals(api, alice)
    assert listed.referral_code == code and listed.next_page_token == ""
    [attributed] = listed.referrals
    assert (attributed.referee_member_id, attributed.state) == (bob, Referral.STATE_ATTRIBUTED)
    assert attributed.decision == f"attributed to {alice}"
    assert (attributed.qualifying_order_id, attributed.reward_transaction_id) == ("", "")
    assert not attributed.HasField("mature_time")
    assert abs(when(attributed.attribute_time) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert report(api) == (1, 0, 0, 0, 0, 0)

    order_id, request, earned = order(api, bob, 5_000)
    assert earned.transaction.kind == EARN and earned.transaction.points == 50
    # the Earn answer's balance already includes the referee's (pending) reward
    b = earned.balance
    assert (b.posted, b.pending, b.held, b.available) == (250, 250, 0, 0)

    [bob_reward] = kinds(api, bob, REFERRAL_REWARD)
    [alice_reward] = kinds(api, alice, REFERRAL_REWARD)
    assert bob_reward.transaction_id == alice_reward.transaction_id
    assert (bob_reward.member_id, bob_reward.points) == (bob, REFEREE_POINTS)
    assert (alice_reward.member_id, alice_reward.points) == (alice, REFERRER_POINTS)
    for tx in (bob_reward, alice_reward):
        assert tx.order_id == order_id
        assert [(line.source, line.points) for line in tx.breakdown] == [(REFERRAL, REFEREE_POINTS)]
        assert tx.breakdown[0].description == decision_for(order_id, 5_000)
        assert tx.reason == f"referral of {bob} by {alice}: {decision_for(order_id, 5_000)}"
        assert tx.occur_time == earned.transaction.occur_time
    assert balance_of(api, bob) == (250, 250, 0, 0)
    assert balance_of(api, alice) == (500, 500, 0, 0)

    qualified = only_referral(api, alice)
    assert qualified.state == Referral.STATE_QUALIFIED
    assert qualified.qualifying_order_id == order_id
    assert (qualified.referrer_points, qualified.referee_points) == (REFERRER_POINTS, REFEREE_POINTS)
    assert qualified.reward_transaction_id == bob_reward.transaction_id
    assert qualified.decision == decision_for(order_id, 5_000)
    assert when(qualified.mature_time) == when(earned.transaction.occur_time) + timedelta(days=14)
    assert report(api) == (1, 1, 0, 0, 0, 700)

    # the same Earn retried: replayed, no second reward; a later order rewards nothing more
    again = api.ledger.Earn(request, metadata=api.metadata)
    assert again.transaction.transaction_id == earned.transaction.transaction_id
    order(api, bob, 9_000)
    assert len(kinds(api, bob, REFERRAL_REWARD)) == 1 and len(kinds(api, alice, REFERRAL_REWARD)) == 1
    assert balance_of(api, alice) == (500, 500, 0, 0)
    assert balance_of(api, bob) == (340, 340, 0, 0)
    assert only_referral(api, alice).qualifying_order_id == order_id
    assert report(api) == (1, 1, 0, 0, 0, 700)
    assert_verify_clean(program)


def test_order_backdated_beyond_the_return_window_is_rewarded_at_once(program, api):
    configure(api, pending_days=7)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, earned = order(api, bob, 3_000, occur_time=ago(10))
    assert balance_of(api, bob) == (230, 0, 0, 230)
    assert balance_of(api, alice) == (500, 0, 0, 500)
    rewarded = only_referral(api, alice)
    assert rewarded.state == Referral.STATE_REWARDED
    assert rewarded.decision == decision_for(order_id, 3_000)
    assert when(rewarded.mature_time) == when(earned.transaction.occur_time) + timedelta(days=7)
    attributed, _qualified, matured, reversed_, not_rewarded, points = report(api)
    assert (attributed, matured, reversed_, not_rewarded, points) == (1, 1, 0, 0, 700)
    assert_verify_clean(program)


# --------------------------------------------------------------------------- refusals


def test_attribution_refusals(program, api):
    configure(api)
    alice, code = referrer(api)
    dave, dave_code = referrer(api)

    with expect_error(FAILED, "SELF_REFERRAL"):
        enroll(api, alice, code)

    newcomer = f"m-{secrets.token_hex(4)}"
    with expect_error(NOT_FOUND, "REFERRAL_CODE_NOT_FOUND"):
        enroll(api, newcomer, "ZZZZZZZZZZ")
    with expect_error(NOT_FOUND, "MEMBER_NOT_FOUND"):  # a refused enrollment writes nothing
        member(api, newcomer)

    other = new_program(program.backend).api(Role.ADMIN)
    try:
        _, foreign_code = referrer(other)
        with expect_error(NOT_FOUND, "REFERRAL_CODE_NOT_FOUND"):
            enroll(api, code=foreign_code)
    finally:
        other.close()

    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="referral_code"):
        enroll(api, code="X" * 33)

    carol, _ = enroll(api)
    order(api, carol, 5_000)
    with expect_error(FAILED, "REFERRAL_AFTER_FIRST_ORDER"):
        enroll(api, carol, code)

    bob = referee(api, code)
    with expect_error(FAILED, "ALREADY_REFERRED"):
        enroll(api, bob, dave_code)
    _, again = enroll(api, bob, code)  # the same code again: idempotent
    assert not again.created and again.member.member_id == bob

    [only] = referrals(api, alice).referrals
    assert only.referee_member_id == bob and only.state == Referral.STATE_ATTRIBUTED
    assert list(referrals(api, dave).referrals) == []
    assert report(api) == (1, 0, 0, 0, 0, 0)

    # still idempotent once the referee has ordered and been rewarded
    order(api, bob, 5_000)
    _, after = enroll(api, bob, code.lower())
    assert not after.created
    assert len(kinds(api, bob, REFERRAL_REWARD)) == 1
    assert only_referral(api, alice).state == Referral.STATE_QUALIFIED
    assert_verify_clean(program)


def test_a_small_first_order_does_not_qualify_a_later_bigger_one_does(program, api):
    configure(api)
    alice, code = referrer(api)
    bob = referee(api, code)
    order(api, bob, MINIMUM - 1)
    assert kinds(api, bob, REFERRAL_REWARD) == [] and kinds(api, alice, REFERRAL_REWARD) == []
    waiting = only_referral(api, alice)
    assert waiting.state == Referral.STATE_ATTRIBUTED and waiting.qualifying_order_id == ""
    assert report(api) == (1, 0, 0, 0, 0, 0)

    big, _, _ = order(api, bob, MINIMUM)
    qualified = only_referral(api, alice)
    assert (qualified.state, qualified.qualifying_order_id) == (Referral.STATE_QUALIFIED, big)
    assert qualified.decision == decision_for(big, MINIMUM)
    assert balance_of(api, bob) == (19 + 20 + 200, 239, 0, 0)
    assert balance_of(api, alice) == (500, 500, 0, 0)
    assert_verify_clean(program)


# --------------------------------------------------------------------------- refunds


def test_refund_before_maturity_reverses_both_rewards(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000)
    reward_id = only_referral(api, alice).reward_transaction_id

    refund(api, bob, order_id, 5_000)
    assert balance_of(api, bob) == (0, 0, 0, 0)
    assert balance_of(api, alice) == (0, 0, 0, 0)
    [bob_reversal] = kinds(api, bob, REVERSAL)
    [alice_reversal] = kinds(api, alice, REVERSAL)
    assert bob_reversal.transaction_id == alice_reversal.transaction_id
    assert (bob_reversal.points, alice_reversal.points) == (-REFEREE_POINTS, -REFERRER_POINTS)
    for tx in (bob_reversal, alice_reversal):
        assert tx.reverses_transaction_id == reward_id and tx.order_id == order_id
        assert [(line.source, line.points) for line in tx.breakdown] == [(REFERRAL, -REFEREE_POINTS)]

    reversed_ = only_referral(api, alice)
    assert reversed_.state == Referral.STATE_REVERSED
    assert reversed_.decision == f"reversed: order {order_id} was returned within its return window"
    assert report(api) == (1, 0, 0, 1, 0, 0)
    # a second (over-)refund is refused and reverses nothing more
    with expect_error(FAILED):
        refund(api, bob, order_id, 1)
    assert len(kinds(api, alice, REVERSAL)) == 1
    assert_verify_clean(program)


def test_partial_refund_keeping_the_minimum_keeps_the_reward(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000)  # 50 points

    refund(api, bob, order_id, 3_000)  # net 2000: still at the minimum
    assert kinds(api, alice, REVERSAL) == [] and kinds(api, bob, REVERSAL) == []
    assert only_referral(api, alice).state == Referral.STATE_QUALIFIED
    assert balance_of(api, alice) == (500, 500, 0, 0)
    assert balance_of(api, bob) == (220, 220, 0, 0)  # 50 - 30 clawed back + 200
    assert report(api) == (1, 1, 0, 0, 0, 700)

    refund(api, bob, order_id, 1)  # net 1999: below the minimum
    assert only_referral(api, alice).state == Referral.STATE_REVERSED
    assert balance_of(api, alice) == (0, 0, 0, 0)
    assert balance_of(api, bob) == (19, 19, 0, 0)
    assert report(api) == (1, 0, 0, 1, 0, 0)
    assert_verify_clean(program)


def test_refund_after_maturity_does_not_reverse(program, api):
    configure(api, pending_days=7)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000, occur_time=ago(8))
    refund(api, bob, order_id, 5_000)
    assert kinds(api, alice, REVERSAL) == [] and kinds(api, bob, REVERSAL) == []
    assert only_referral(api, alice).state == Referral.STATE_REWARDED
    assert balance_of(api, alice) == (500, 0, 0, 500)
    assert balance_of(api, bob) == (200, 0, 0, 200)
    assert report(api)[3:] == (0, 0, 700)
    assert_verify_clean(program)


# --------------------------------------------------------------------------- cap and window


def test_per_referrer_cap(program, api):
    configure(api, pending_days=14, max_rewarded_per_referrer=1)
    alice, code = referrer(api)
    bob, carol, dave = referee(api, code), referee(api, code), referee(api, code)
    bob_order, _, _ = order(api, bob, 5_000)
    carol_order, _, _ = order(api, carol, 5_000)

    assert kinds(api, carol, REFERRAL_REWARD) == []
    assert len(kinds(api, alice, REFERRAL_REWARD)) == 1
    assert balance_of(api, alice) == (500, 500, 0, 0)
    assert balance_of(api, carol) == (50, 50, 0, 0)
    by_referee = {r.referee_member_id: r for r in referrals(api, alice).referrals}
    assert by_referee[bob].state == Referral.STATE_QUALIFIED
    capped = by_referee[carol]
    assert capped.state == Referral.STATE_NOT_REWARDED
    assert capped.decision == CAP_DECISION
    assert capped.qualifying_order_id == carol_order
    assert (capped.referrer_points, capped.referee_points, capped.reward_transaction_id) == (0, 0, "")
    assert by_referee[dave].state == Referral.STATE_ATTRIBUTED
    assert report(api) == (3, 1, 0, 0, 1, 700)

    # a reversed reward no longer counts against the cap: the next referee is rewarded
    refund(api, bob, bob_order, 5_000)
    order(api, dave, 5_000)
    by_referee = {r.referee_member_id: r for r in referrals(api, alice).referrals}
    assert by_referee[bob].state == Referral.STATE_REVERSED
    assert by_referee[carol].state == Referral.STATE_NOT_REWARDED  # a decision is final
    assert by_referee[dave].state == Referral.STATE_QUALIFIED
    assert balance_of(api, alice) == (500, 500, 0, 0)
    assert report(api) == (3, 1, 0, 1, 1, 700)
    assert_verify_clean(program)


def test_order_within_the_attribution_window_is_rewarded(program, api):
    configure(api, attribution_window_days=30)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000)
    rewarded = only_referral(api, alice)
    assert rewarded.state == Referral.STATE_QUALIFIED
    assert rewarded.decision == decision_for(order_id, 5_000)
    assert_verify_clean(program)


def test_order_after_the_attribution_window_is_not_rewarded(program, api, monkeypatch):
    """Built by moving the in-process server's clock: no order may be dated after the real now."""
    configure(api, attribution_window_days=30)
    alice, code = referrer(api)
    bob = referee(api, code)
    real_now = clock.now
    later = real_now() + timedelta(days=31)
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=32))
    order_id, _, _ = order(api, bob, 5_000, occur_time=stamp(later))
    late = only_referral(api, alice)
    assert late.state == Referral.STATE_NOT_REWARDED
    assert late.decision == f"order {order_id} came after the 30-day attribution window"
    assert kinds(api, alice, REFERRAL_REWARD) == [] and kinds(api, bob, REFERRAL_REWARD) == []
    assert report(api) == (1, 0, 0, 0, 1, 0)
    monkeypatch.setattr(clock, "now", real_now)
    assert_verify_clean(program)


# --------------------------------------------------------------------------- tiers


def _tier_setup(api, counts: bool) -> None:
    configure(api, counts_toward_tiers=counts)
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(tier_basis=programs_pb2.TIER_BASIS_QUALIFYING_POINTS),
            update_mask=field_mask_pb2.FieldMask(paths=["tier_basis"]),
        ),
        metadata=api.metadata,
    )
    tiers = [programs_pb2.Tier(name="Member", threshold=0), programs_pb2.Tier(name="Silver", threshold=10_000)]
    api.programs.SetTiers(programs_pb2.SetTiersRequest(tiers=tiers), metadata=api.metadata)


def progress(api, member_id: str) -> int:
    return member(api, member_id).tier_progress.qualifying_value


@pytest.mark.parametrize("counts", [True, False], ids=["counts", "does-not-count"])
def test_counts_toward_tiers(program, api, counts):
    _tier_setup(api, counts)
    alice, code = referrer(api)
    bob = referee(api, code)
    assert (progress(api, alice), progress(api, bob)) == (0, 0)
    order(api, bob, 5_000)  # 50 base points
    if counts:
        assert (progress(api, alice), progress(api, bob)) == (REFERRER_POINTS, 50 + REFEREE_POINTS)
        assert member(api, alice).tier_progress.remaining == 10_000 - REFERRER_POINTS
    else:
        assert (progress(api, alice), progress(api, bob)) == (0, 50)
    assert_verify_clean(program)


# --------------------------------------------------------------------------- listing, report, roles


def test_list_referrals_pagination(program, api):
    configure(api)
    alice, code = referrer(api)
    referees = sorted(referee(api, code) for _ in range(5))
    seen, token, pages = [], "", 0
    while True:
        page = referrals(api, alice, page_size=2, page_token=token)
        assert len(page.referrals) <= 2 and page.referral_code == code
        seen.extend(r.referee_member_id for r in page.referrals)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == referees and pages == 3
    assert [r.referee_member_id for r in referrals(api, alice).referrals] == referees  # default page size
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="page_size"):
        referrals(api, alice, page_size=-1)
    assert_verify_clean(program)


def test_list_referrals_of_an_unknown_referrer_is_not_found(program, api):
    with expect_error(NOT_FOUND, "MEMBER_NOT_FOUND"):
        referrals(api, "nobody")
    other = new_program(program.backend).api(Role.ADMIN)
    try:
        foreign, _ = referrer(other)
        with expect_error(NOT_FOUND, "MEMBER_NOT_FOUND"):
            referrals(api, foreign)
    finally:
        other.close()


def test_roles_for_referral_rpcs(program, api):
    configure(api)
    alice, code = referrer(api)
    referee(api, code)
    clients = {role: program.api(role) for role in (Role.STOREFRONT, Role.POS, Role.MARKETING)}
    try:
        for role in (Role.STOREFRONT, Role.POS, Role.MARKETING):
            listed = referrals(clients[role], alice)
            assert listed.referral_code == code and len(listed.referrals) == 1
        assert report(clients[Role.MARKETING]) == (1, 0, 0, 0, 0, 0)
        for role in (Role.STOREFRONT, Role.POS):
            with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
                report(clients[role])
        # storefront enrolls with a code (sign-up page)
        _, enrolled = enroll(clients[Role.STOREFRONT], code=code)
        assert enrolled.created
        assert report(api)[0] == 2
        assert_verify_clean(program)
    finally:
        for client in clients.values():
            client.close()


# --------------------------------------------------------------------------- bugs (strict xfail)


def reverse(api, transaction_id: str):
    return api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(transaction_id=transaction_id, idempotency_key=key(), reason="wrong"),
        metadata=api.metadata,
    )


def test_reversed_reward_leaves_tier_progress(program, api):
    _tier_setup(api, True)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000)
    assert (progress(api, alice), progress(api, bob)) == (500, 250)
    refund(api, bob, order_id, 5_000)
    assert only_referral(api, alice).state == Referral.STATE_REVERSED
    assert_verify_clean(program)
    assert (progress(api, alice), progress(api, bob)) == (0, 0)


def test_referral_points_crossing_a_threshold_upgrade(program, api):
    _tier_setup(api, True)
    tiers = [programs_pb2.Tier(name="Member", threshold=0), programs_pb2.Tier(name="Silver", threshold=240)]
    api.programs.SetTiers(programs_pb2.SetTiersRequest(tiers=tiers), metadata=api.metadata)
    alice, code = referrer(api)
    bob = referee(api, code)
    order(api, bob, 5_000)  # bob: 50 base + 200 referral = 250; alice: 500
    assert_verify_clean(program)
    assert member(api, bob).tier.name == "Silver"
    assert member(api, alice).tier.name == "Silver"


def test_refund_after_support_reversed_the_reward(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, _ = order(api, bob, 5_000)
    reverse(api, only_referral(api, alice).reward_transaction_id)
    assert balance_of(api, alice) == (0, 0, 0, 0) and balance_of(api, bob) == (50, 50, 0, 0)
    refund(api, bob, order_id, 5_000)
    assert balance_of(api, alice) == (0, 0, 0, 0) and balance_of(api, bob) == (0, 0, 0, 0)
    assert len(kinds(api, alice, REVERSAL)) == 1
    assert_verify_clean(program)


def test_support_reversal_of_the_reward_marks_the_referral_reversed(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    bob = referee(api, code)
    order(api, bob, 5_000)
    reverse(api, only_referral(api, alice).reward_transaction_id)
    assert_verify_clean(program)
    assert only_referral(api, alice).state == Referral.STATE_REVERSED
    assert report(api) == (1, 0, 0, 1, 0, 0)


def test_refund_of_a_qualifying_order_that_earned_no_points_reverses_the_reward(program, api):
    configure(api, pending_days=14)
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(min_order_amount=10_000),
            update_mask=field_mask_pb2.FieldMask(paths=["min_order_amount"]),
        ),
        metadata=api.metadata,
    )
    alice, code = referrer(api)
    bob = referee(api, code)
    order_id, _, earned = order(api, bob, 5_000)
    assert earned.transaction.points == 0
    assert only_referral(api, alice).state == Referral.STATE_QUALIFIED
    outcome(api.ledger.RefundOrder, ledger_pb2.RefundOrderRequest(
        member_id=bob, order_id=order_id, idempotency_key=key(), amount=5_000, currency="USD"
    ), api.metadata)
    assert_verify_clean(program)
    assert only_referral(api, alice).state == Referral.STATE_REVERSED
    assert balance_of(api, alice) == (0, 0, 0, 0) and balance_of(api, bob) == (0, 0, 0, 0)


def test_support_reversal_of_the_qualifying_earn_reverses_the_reward(program, api):
    configure(api, pending_days=14)
    alice, code = referrer(api)
    bob = referee(api, code)
    _, _, earned = order(api, bob, 5_000)
    reverse(api, earned.transaction.transaction_id)
    assert_verify_clean(program)
    assert only_referral(api, alice).state == Referral.STATE_REVERSED
    assert balance_of(api, alice) == (0, 0, 0, 0) and balance_of(api, bob) == (0, 0, 0, 0)


def test_client_key_ending_in_referral_after_the_reward(program, api):
    configure(api)
    alice, code = referrer(api)
    bob = referee(api, code)
    first_key = key()
    order(api, bob, 5_000, idempotency_key=first_key)
    order(api, bob, 3_000, idempotency_key=f"{first_key}:referral")
    assert len(kinds(api, bob, EARN)) == 2


def test_client_key_ending_in_referral_before_the_reward(program, api):
    configure(api)
    alice, code = referrer(api)
    bob = referee(api, code)
    first_key = key()
    order(api, bob, MINIMUM - 1, idempotency_key=f"{first_key}:referral")  # below the minimum: no reward
    order(api, bob, 5_000, idempotency_key=first_key)
    assert only_referral(api, alice).state == Referral.STATE_QUALIFIED


def test_report_qualified_counts_matured_rewards_as_the_proto_says(program, api):
    configure(api, pending_days=7)
    _alice, code = referrer(api)
    bob = referee(api, code)
    order(api, bob, 3_000, occur_time=ago(10))
    assert report(api) == (1, 1, 1, 0, 0, 700)
