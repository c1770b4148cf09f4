"""Expired points are never available, whether the expiry job has run or not (pure rules).

What they prove:
- Lot.past_expiry and Lot.pending at their boundaries (expired from expires_at on; a lot
  past its expiry is expired, not pending, even inside its return window);
- lot_totals partitions a member's open lots; live_balance counts as `expired` exactly the
  points the expiry job would write off at that instant (due_consumptions), all of an
  inactive member's, and nothing else;
- for any member (lots, holds, ROLLING dates, INACTIVITY), the balance and every spend or
  capture decision are the same before the job runs as after it: available, pending,
  posted less expired; a spend allowed before the job never consumes a lot past its expiry,
  and the job afterwards expires the same points it would have expired before the spend;
- a model of a member over time (credits, redemptions, holds authorized, captured and
  voided, time passing, the INACTIVITY clock), run twice in lockstep, once with the job
  never running but when asked and once with the job running before every step: both
  models take every decision alike and show the same available balance at every step;
- written_off/after_credit (an activity credit of an inactive member writes its expired
  points off first) agree with the job having run first;
- INSUFFICIENT_POINTS names the expired points in its message and metadata.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.domain import errors
from ledger.domain.balance import Balance
from ledger.domain.expiry import (
    LotTotals,
    after_credit,
    due_consumptions,
    is_inactive,
    live_balance,
    lot_totals,
    written_off,
)
from ledger.domain.lots import Consumption, Lot, new_lot_points, plan_consumption
from ledger.domain.program import ExpiryMode
from ledger.domain.spending import check_redeemable

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


def _allowed(balance: Balance, points: int) -> bool:
    try:
        check_redeemable(balance, points)
    except errors.LedgerError as refusal:
        assert refusal.reason == "INSUFFICIENT_POINTS"
        return False
    return True


def _apply(lots: list[Lot], plan) -> list[Lot]:
    taken: dict[str, int] = {}
    for c in plan:
        taken[c.lot_id] = taken.get(c.lot_id, 0) + c.points
    after = []
    for lot in lots:
        remaining = lot.remaining - taken.pop(lot.lot_id, 0)
        assert remaining >= 0
        after.append(Lot(lot.lot_id, remaining, lot.available_at, lot.expires_at))
    assert not taken
    return after


# --------------------------------------------------------------------------- the lot rules


def test_past_expiry_and_pending_at_their_boundaries():
    lot = Lot("l", 10, NOW + DAY, NOW + 2 * DAY)
    assert not lot.past_expiry(NOW + 2 * DAY - SECOND)
    assert lot.past_expiry(NOW + 2 * DAY)  # expired from expires_at on
    assert lot.pending(NOW) and lot.pending(NOW + DAY - SECOND)
    assert not lot.pending(NOW + DAY)  # matured at available_at
    never = Lot("n", 10, NOW - DAY, None)
    assert not never.past_expiry(NOW + 10_000 * DAY)
    # expiring inside its return window (pending_days > expiry_days): expired, not pending
    short = Lot("s", 10, NOW + 5 * DAY, NOW + DAY)
    assert short.pending(NOW) and not short.pending(NOW + DAY) and short.past_expiry(NOW + DAY)


@st.composite
def lots_of_a_member(draw, max_size: int = 10):
    lots = []
    for i in range(draw(st.integers(0, max_size))):
        expires = draw(st.one_of(st.none(), st.integers(-30, 30)))
        lots.append(
            Lot(
                f"lot-{i:02d}",
                draw(st.integers(0, 500)),
                NOW + timedelta(days=draw(st.integers(-30, 30)), seconds=draw(st.sampled_from([0, 1, -1]))),
                None if expires is None else NOW + timedelta(days=expires, seconds=draw(st.sampled_from([0, 1, -1]))),
            )
        )
    return lots


@given(lots_of_a_member())
def test_lot_totals_partition_the_open_lots(lots):
    totals = lot_totals(lots, NOW)
    open_lots = [lot for lot in lots if lot.remaining > 0]
    assert totals.total == sum(lot.remaining for lot in open_lots)
    matured_valid = sum(lot.remaining for lot in open_lots if not lot.pending(NOW) and not lot.past_expiry(NOW))
    assert totals.pending + totals.past_expiry + matured_valid == totals.total
    assert not [lot for lot in open_lots if lot.pending(NOW) and lot.past_expiry(NOW)]


@given(lots_of_a_member(), st.integers(0, 1000), st.booleans())
def test_expired_is_what_the_job_would_write_off(lots, held, inactive):
    posted = sum(lot.remaining for lot in lots)
    balance = live_balance(posted, held, lot_totals(lots, NOW), inactive=inactive)
    due = due_consumptions(lots, NOW, everything=inactive)
    assert balance.expired == sum(c.points for c in due)
    assert balance.available == posted - balance.pending - held - balance.expired
    if inactive:
        assert balance.pending == 0 and balance.expired == posted
        assert balance.available == -held  # nothing of an inactive member's is spendable


def test_live_balance_examples():
    lots = [
        Lot("due", 100, NOW - 3 * DAY, NOW - 2 * DAY),  # the issue's case: 1-day ROLLING, backdated 3 days
        Lot("ok", 40, NOW - DAY, NOW + DAY),
        Lot("pending", 7, NOW + DAY, NOW + 30 * DAY),
    ]
    totals = lot_totals(lots, NOW)
    assert totals == LotTotals(pending=7, past_expiry=100, total=147)
    assert live_balance(147, 10, totals, inactive=False) == Balance(147, 7, 10, 100)
    assert live_balance(147, 10, totals, inactive=False).available == 30
    assert live_balance(147, 10, totals, inactive=True) == Balance(147, 0, 10, 147)


@given(st.sampled_from(list(ExpiryMode)), st.integers(0, 400), st.integers(-500, 500))
def test_is_inactive(mode, days, idle_days):
    last = NOW - timedelta(days=idle_days)
    expected = mode is ExpiryMode.INACTIVITY and days > 0 and last <= NOW - timedelta(days=days)
    assert is_inactive(mode, days, last, NOW) is expected


# --------------------------------------------------------------------------- before or after the job


@given(
    lots_of_a_member(),
    st.integers(0, 600),
    st.integers(1, 1500),
    st.booleans(),
)
def test_a_spend_is_decided_the_same_before_and_after_the_job(lots, held, points, inactive):
    posted = sum(lot.remaining for lot in lots)
    # Not run: everything still in the lots.
    before = live_balance(posted, held, lot_totals(lots, NOW), inactive=inactive)
    # Run at the same instant: the due points written off.
    due = due_consumptions(lots, NOW, everything=inactive)
    swept = _apply(lots, due)
    swept_posted = posted - sum(c.points for c in due)
    after = live_balance(swept_posted, held, lot_totals(swept, NOW), inactive=inactive)
    assert after.expired == 0
    assert (before.available, before.pending, before.posted - before.expired) == (
        after.available,
        after.pending,
        after.posted,
    )
    assert _allowed(before, points) is _allowed(after, points)
    if not _allowed(before, points):
        return
    # Allowed: the spend takes no lot past its expiry, and covers itself fully ...
    plan = plan_consumption(lots, points, NOW)
    by_id = {lot.lot_id: lot for lot in lots}
    assert not [c for c in plan if by_id[c.lot_id].past_expiry(NOW)]
    assert sum(c.points for c in plan) == points
    # ... and spend-then-job leaves exactly what job-then-spend leaves.
    spent_first = _apply(lots, plan)
    spent_first = _apply(spent_first, due_consumptions(spent_first, NOW, everything=inactive))
    job_first = _apply(swept, plan_consumption(swept, points, NOW))
    assert [lot.remaining for lot in spent_first] == [lot.remaining for lot in job_first]


@given(lots_of_a_member(), st.integers(0, 600), st.integers(1, 600), st.integers(0, 600))
def test_a_capture_is_decided_the_same_before_and_after_the_job(lots, other_holds, hold, captured):
    """The hold's own points are reserved for it, but only lots not past expiry cover them."""
    captured = min(captured, hold) or hold
    posted = sum(lot.remaining for lot in lots)
    held = other_holds + hold
    before = live_balance(posted, held, lot_totals(lots, NOW), inactive=False)
    due = due_consumptions(lots, NOW, everything=False)
    swept = _apply(lots, due)
    after = live_balance(posted - sum(c.points for c in due), held, lot_totals(swept, NOW), inactive=False)

    def others(balance: Balance) -> Balance:
        return Balance(balance.posted, balance.pending, balance.held - hold, balance.expired)

    assert _allowed(others(before), captured) is _allowed(others(after), captured)
    if _allowed(others(before), captured):
        by_id = {lot.lot_id: lot for lot in lots}
        assert not [c for c in plan_consumption(lots, captured, NOW) if by_id[c.lot_id].past_expiry(NOW)]


def test_the_issues_example_is_refused_and_left_for_the_job():
    """ROLLING expiry of 1 day, an earn backdated 3 days: the 100 points are not available,
    a redeem of them is refused, and the job still expires all 100."""
    lots = [Lot("earn", 100, NOW - 3 * DAY, NOW - 2 * DAY)]
    balance = live_balance(100, 0, lot_totals(lots, NOW), inactive=False)
    assert (balance.posted, balance.pending, balance.held, balance.expired, balance.available) == (100, 0, 0, 100, 0)
    with pytest.raises(errors.LedgerError) as refused:
        check_redeemable(balance, 100)
    assert refused.value.category is errors.Category.FAILED_PRECONDITION
    assert refused.value.reason == "INSUFFICIENT_POINTS"
    assert refused.value.recorded
    assert refused.value.metadata == {"requested": "100", "available": "0", "expired": "100"}
    assert refused.value.message == "100 points requested but only 0 available; 100 expired points are not available"
    assert due_consumptions(lots, NOW, everything=False) == (Consumption("earn", 100),)


def test_a_refusal_without_expired_points_says_what_it_said_before():
    with pytest.raises(errors.LedgerError) as refused:
        check_redeemable(Balance(posted=10, pending=3), 8)
    assert refused.value.metadata == {"requested": "8", "available": "7"}
    assert refused.value.message == "8 points requested but only 7 available"


# --------------------------------------------------------------------------- an inactive member's credit


@given(lots_of_a_member(), st.integers(0, 300), st.integers(0, 500), st.booleans(), st.booleans(), st.booleans())
def test_a_credit_of_an_inactive_member_writes_off_what_the_job_would_have(
    lots, held, points, pending_lot, still_inactive, lot_expired
):
    posted = sum(lot.remaining for lot in lots)
    before = live_balance(posted, held, lot_totals(lots, NOW), inactive=True)
    lot_points = new_lot_points(points, posted)
    available_at = NOW + DAY if pending_lot else NOW - DAY
    lot = Lot("new", lot_points, available_at, NOW - SECOND if lot_expired else NOW + 9 * DAY) if lot_points else None
    computed = after_credit(written_off(before), points, lot, NOW, inactive=still_inactive)
    # the same as the job having written off everything first, then the credit
    swept = _apply(lots, due_consumptions(lots, NOW, everything=True))
    assert sum(lot.remaining for lot in swept) == 0
    after_lots = swept + ([lot] if lot else [])
    expected = live_balance(posted - before.expired + points, held, lot_totals(after_lots, NOW), inactive=still_inactive)
    assert computed == expected


def test_after_credit_of_an_active_member_adds_its_lot_where_it_belongs():
    before = Balance(posted=50, pending=5, held=10, expired=20)
    fresh = Lot("n", 30, NOW - DAY, NOW + DAY)
    backdated_past_expiry = Lot("n", 30, NOW - 3 * DAY, NOW - 2 * DAY)
    pending = Lot("n", 30, NOW + DAY, NOW + 9 * DAY)
    assert after_credit(before, 30, fresh, NOW, inactive=False) == Balance(80, 5, 10, 20)
    assert after_credit(before, 30, backdated_past_expiry, NOW, inactive=False) == Balance(80, 5, 10, 50)
    assert after_credit(before, 30, pending, NOW, inactive=False) == Balance(80, 35, 10, 20)
    assert after_credit(before, 30, None, NOW, inactive=False) == Balance(80, 5, 10, 20)  # repaid a debt


# --------------------------------------------------------------------------- a member over time


class _Member:
    """One member's ledger in the pure rules: posted, lots, open holds, activity clock."""

    def __init__(self, mode: ExpiryMode, days: int) -> None:
        self.mode, self.days = mode, days
        self.posted = 0
        self.lots: list[Lot] = []
        self.holds: dict[str, int] = {}
        self.last_activity = NOW - 1000 * DAY
        self.expired_total = 0

    def inactive(self, now: datetime) -> bool:
        return is_inactive(self.mode, self.days, self.last_activity, now)

    def balance(self, now: datetime) -> Balance:
        return live_balance(self.posted, sum(self.holds.values()), lot_totals(self.lots, now), inactive=self.inactive(now))

    def run_job(self, now: datetime) -> None:
        due = due_consumptions(self.lots, now, everything=self.inactive(now))
        self._consume(due, now, spend=False)
        self.expired_total += sum(c.points for c in due)
        self.posted -= sum(c.points for c in due)

    def _consume(self, plan, now: datetime, *, spend: bool) -> None:
        by_id = {lot.lot_id: lot for lot in self.lots}
        if spend:  # a spend never takes a lot past its expiry
            assert not [c for c in plan if by_id[c.lot_id].past_expiry(now)]
        self.lots = [lot for lot in _apply(self.lots, plan) if lot.remaining > 0]

    def credit(self, lot_id: str, points: int, now: datetime, expires_in: int | None, pending_days: int) -> None:
        if self.inactive(now):  # as the service does before an activity credit
            self.run_job(now)
        lot_points = new_lot_points(points, self.posted)
        if lot_points:
            expires = None if expires_in is None else now + timedelta(days=expires_in)
            self.lots.append(Lot(lot_id, lot_points, now + timedelta(days=pending_days), expires))
        self.posted += points
        self.last_activity = max(self.last_activity, now)

    def redeem(self, points: int, now: datetime) -> bool:
        if not _allowed(self.balance(now), points):
            return False
        plan = plan_consumption(self.lots, points, now)
        assert sum(c.points for c in plan) == points
        self._consume(plan, now, spend=True)
        self.posted -= points
        self.last_activity = max(self.last_activity, now)
        return True

    def authorize(self, hold_id: str, points: int, now: datetime) -> bool:
        if not _allowed(self.balance(now), points):
            return False
        self.holds[hold_id] = points
        return True

    def capture(self, hold_id: str, points: int, now: datetime) -> bool:
        balance = self.balance(now)
        held = self.holds[hold_id]
        if not _allowed(Balance(balance.posted, balance.pending, balance.held - held, balance.expired), points):
            return False
        del self.holds[hold_id]
        plan = plan_consumption(self.lots, points, now)
        assert sum(c.points for c in plan) == points
        self._consume(plan, now, spend=True)
        self.posted -= points
        self.last_activity = max(self.last_activity, now)
        return True


class JobLagModel(RuleBasedStateMachine):
    """The same member twice: `lazy` runs the expiry job only when the `run_job` rule says so
    (or never), `eager` runs it before every step. Every decision must come out the same,
    and the available balance must agree at every step."""

    @initialize(mode=st.sampled_from([ExpiryMode.ROLLING, ExpiryMode.INACTIVITY]), days=st.integers(1, 20))
    def start(self, mode, days):
        self.now = NOW
        self.lazy = _Member(mode, days)
        self.eager = _Member(mode, days)
        self.count = 0

    def _id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count:04d}"

    def _both(self, act):
        self.eager.run_job(self.now)
        lazy, eager = act(self.lazy), act(self.eager)
        assert lazy == eager
        return lazy

    @rule(hours=st.integers(0, 24 * 15))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)

    @rule()
    def run_job(self):
        self.lazy.run_job(self.now)

    @rule(
        points=st.integers(1, 400),
        expires_in=st.one_of(st.none(), st.integers(-5, 20)),
        pending_days=st.integers(0, 10),
    )
    def credit(self, points, expires_in, pending_days):
        lot_id = self._id("lot")
        self._both(lambda m: m.credit(lot_id, points, self.now, expires_in, pending_days))

    @rule(points=st.integers(1, 600))
    def redeem(self, points):
        self._both(lambda m: m.redeem(points, self.now))

    @rule(points=st.integers(1, 400))
    def authorize(self, points):
        hold_id = self._id("hold")
        self._both(lambda m: m.authorize(hold_id, points, self.now))

    @precondition(lambda self: self.lazy.holds)
    @rule(data=st.data(), part=st.integers(0, 400))
    def capture(self, data, part):
        hold_id = data.draw(st.sampled_from(sorted(self.lazy.holds)))
        points = min(part, self.lazy.holds[hold_id]) or self.lazy.holds[hold_id]
        self._both(lambda m: m.capture(hold_id, points, self.now))

    @precondition(lambda self: self.lazy.holds)
    @rule(data=st.data())
    def void(self, data):
        hold_id = data.draw(st.sampled_from(sorted(self.lazy.holds)))
        self._both(lambda m: m.holds.pop(hold_id))

    @invariant()
    def the_job_changes_no_balance_but_posted(self):
        if not hasattr(self, "lazy"):
            return
        self.eager.run_job(self.now)
        lazy, eager = self.lazy.balance(self.now), self.eager.balance(self.now)
        assert eager.expired == 0
        assert lazy.available == eager.available
        assert lazy.pending == eager.pending and lazy.held == eager.held
        assert lazy.posted - lazy.expired == eager.posted
        # and in the end the same points expire, whenever the job runs
        assert self.lazy.expired_total + lazy.expired == self.eager.expired_total
        for member in (self.lazy, self.eager):
            assert sum(lot.remaining for lot in member.lots) == max(member.posted, 0)


TestJobLagModel = JobLagModel.TestCase
TestJobLagModel.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
