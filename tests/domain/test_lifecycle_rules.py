"""Property tests of the pure points-lifecycle rules (no database, no gRPC).

What they prove:
- refunds: for any earn E on an order of amount A and any sequence of partial
  refunds totalling at most A, every clawback is >= 0, the clawbacks sum to at
  most E and to exactly E once all of A is refunded, the total depends only on
  the amount refunded (not on how it was split), and the member never keeps
  more than the exact proportional share E*(A-R)/A, nor loses a whole point to
  rounding; refunding past A is refused (REFUND_EXCEEDS_ORDER, recorded);
  split_write_off splits a clawback into taken + written off, never taking more
  than is collectable;
- lots: plan_consumption takes the requested lot first, then matured lots
  before pending ones and lots past their expiry last of all, soonest expiry
  first (never-expiring last), greedily,
  never more than a lot's remaining nor more than asked; a model of a member
  (credits, debits that may overdraw, reversals of debits, expiries) keeps
  sum(lot remaining) == max(posted, 0) at every step;
- holds: effective_state lapses an open hold exactly at expires_at, check_open,
  capture_points (0 = all, more than held refused) and hold_expiry bounds;
- expiry: due_consumptions takes exactly the remaining points of due lots (all
  lots for an inactive member) and never a spent point; lot_dates/inactive_since.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.domain import errors
from ledger.domain.expiry import due_consumptions, inactive_since
from ledger.domain.holds import (
    MAX_HOLD_TTL_SECONDS,
    HoldFacts,
    HoldState,
    capture_points,
    check_open,
    hold_expiry,
)
from ledger.domain.lots import (
    Consumption,
    Lot,
    lot_dates,
    new_lot_points,
    pending_points,
    plan_consumption,
    restore_plan,
)
from ledger.domain.program import ExpiryMode, ProgramRules
from ledger.domain.refunds import decide_refund, kept_points, split_write_off

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

# --------------------------------------------------------------------------- refunds


@st.composite
def refund_scenarios(draw, full: bool | None = None):
    """(earned E, order amount A, [partial refund amounts]) with sum(refunds) <= A.

    full=True: the refunds add up to exactly A; full=False: strictly less; None: either.
    """
    earned = draw(st.integers(0, 10**9))
    amount = draw(st.one_of(st.integers(1, 1000), st.integers(1, 10**12)))
    # cut points in [0, A] give a random split of (part of) the order amount
    cuts = sorted(draw(st.lists(st.integers(0, amount), min_size=1, max_size=8)))
    if full is True:
        cuts[-1] = amount
    elif full is False:
        assume(cuts[-1] < amount)
    refunds, previous = [], 0
    for cut in cuts:
        if cut > previous:
            refunds.append(cut - previous)
            previous = cut
    return earned, amount, refunds


def _apply_refunds(earned: int, amount: int, refunds: list[int]) -> list[int]:
    clawbacks, refunded = [], 0
    for part in refunds:
        decision = decide_refund(earned, amount, refunded, part)
        assert decision.refunded_total_after == refunded + part
        refunded = decision.refunded_total_after
        clawbacks.append(decision.clawback)
    return clawbacks


@given(refund_scenarios())
def test_partial_refunds_claw_back_at_most_what_was_earned(scenario):
    earned, amount, refunds = scenario
    refunded, clawed = 0, 0
    for part in refunds:
        decision = decide_refund(earned, amount, refunded, part)
        refunded += part
        clawed += decision.clawback
        assert decision.clawback >= 0
        assert clawed <= earned
        kept = earned - clawed
        # never more than the exact proportional share (rounding creates no points) ...
        assert kept * amount <= earned * (amount - refunded)
        # ... and rounding costs the member less than one point
        assert (kept + 1) * amount > earned * (amount - refunded)
        assert kept == kept_points(earned, amount, refunded)


@given(refund_scenarios(full=True))
def test_refunding_the_whole_order_claws_back_exactly_what_was_earned(scenario):
    earned, amount, refunds = scenario
    assert sum(_apply_refunds(earned, amount, refunds)) == earned


@given(refund_scenarios(full=False))
def test_refunding_part_of_the_order_never_claws_back_everything_unless_rounding_says_so(scenario):
    earned, amount, refunds = scenario
    total = sum(_apply_refunds(earned, amount, refunds))
    refunded = sum(refunds)
    assert total == earned - (earned * (amount - refunded)) // amount
    assert total <= earned


@given(refund_scenarios(), st.data())
def test_clawback_total_depends_only_on_the_amount_refunded(scenario, data):
    earned, amount, refunds = scenario
    one_go = _apply_refunds(earned, amount, [sum(refunds)] if sum(refunds) else [])
    shuffled = data.draw(st.permutations(refunds))
    assert sum(_apply_refunds(earned, amount, refunds)) == sum(one_go) == sum(_apply_refunds(earned, amount, shuffled))


@given(
    st.integers(0, 10**9),
    st.integers(1, 10**12),
    st.data(),
)
def test_over_refund_is_refused_and_recorded(earned, amount, data):
    before = data.draw(st.integers(0, amount))
    extra = data.draw(st.integers(amount - before + 1, amount - before + 10**6))
    with pytest.raises(errors.LedgerError) as caught:
        decide_refund(earned, amount, before, extra)
    error = caught.value
    assert error.category is errors.Category.FAILED_PRECONDITION
    assert error.reason == "REFUND_EXCEEDS_ORDER"
    assert error.recorded
    assert error.metadata == {"order_amount": str(amount), "refunded": str(before)}


def test_refund_examples():
    # 1000 points on 100.00; refunding 33.33 three times then the last cent
    assert [decide_refund(1000, 10000, r, 3333).clawback for r in (0, 3333, 6666)] == [334, 333, 333]
    assert decide_refund(1000, 10000, 9999, 1).clawback == 0
    assert decide_refund(7, 3, 0, 1).clawback == 3  # keeps floor(14/3) = 4
    assert decide_refund(7, 3, 1, 2).clawback == 4


@given(st.integers(0, 10**12), st.integers(-(10**12), 10**12))
def test_split_write_off(clawback, collectable):
    taken, written_off = split_write_off(clawback, collectable)
    assert taken + written_off == clawback
    assert 0 <= taken <= max(collectable, 0)
    assert written_off >= 0
    assert taken == min(clawback, max(collectable, 0))
    if collectable >= clawback:
        assert written_off == 0


# --------------------------------------------------------------------------- lots

day_offsets = st.integers(-400, 400)


@st.composite
def lot_lists(draw, max_size: int = 12):
    count = draw(st.integers(0, max_size))
    lots = []
    for i in range(count):
        expires = draw(st.one_of(st.none(), day_offsets))
        lots.append(
            Lot(
                lot_id=f"lot-{i:03d}-{draw(st.integers(0, 999)):03d}",
                remaining=draw(st.integers(-5, 1000)),
                available_at=NOW + timedelta(days=draw(day_offsets), seconds=draw(st.integers(0, 59))),
                expires_at=None if expires is None else NOW + timedelta(days=expires),
            )
        )
    return lots


def _rank(lot: Lot) -> tuple:
    """Consumption rank per the documented rule: past expiry last of all, matured before
    pending, soonest expiry first, never-expiring last."""
    past = lot.expires_at is not None and lot.expires_at <= NOW
    return (past, lot.available_at > NOW, lot.expires_at is None, lot.expires_at or NOW)


@given(lot_lists(), st.integers(0, 15_000), st.data())
def test_plan_consumption(lots, points, data):
    first = data.draw(st.sampled_from([""] + [lot.lot_id for lot in lots]))
    plan = plan_consumption(lots, points, NOW, first_lot_id=first)
    by_id = {lot.lot_id: lot for lot in lots}
    ids = [c.lot_id for c in plan]
    assert len(set(ids)) == len(ids)
    for c in plan:
        assert 0 < c.points <= by_id[c.lot_id].remaining
    spendable = sum(lot.remaining for lot in lots if lot.remaining > 0)
    assert sum(c.points for c in plan) == min(points, spendable)
    # greedy: every lot but the last one taken is emptied
    for c in plan[:-1]:
        assert c.points == by_id[c.lot_id].remaining
    # the earn's own lot goes first when it has points left
    if first and by_id[first].remaining > 0 and points > 0:
        assert ids[0] == first
    # the rest: past expiry last, matured before pending, soonest expiry first, never-expiring last
    rest = [by_id[i] for i in ids if i != first]
    assert [_rank(lot) for lot in rest] == sorted(_rank(lot) for lot in rest)
    # no lot left untouched that should have gone before one that was taken
    if rest:
        last = _rank(rest[-1])
        for lot in lots:
            if lot.remaining > 0 and lot.lot_id not in ids and lot.lot_id != first:
                assert _rank(lot) >= last


def test_plan_consumption_examples():
    soon = Lot("a", 50, NOW - timedelta(days=10), NOW + timedelta(days=5))
    later = Lot("b", 50, NOW - timedelta(days=20), NOW + timedelta(days=50))
    never = Lot("c", 50, NOW - timedelta(days=30), None)
    pending = Lot("d", 50, NOW + timedelta(days=3), NOW + timedelta(days=1))
    lots = [never, pending, later, soon]
    assert plan_consumption(lots, 120, NOW) == (Consumption("a", 50), Consumption("b", 50), Consumption("c", 20))
    assert plan_consumption(lots, 500, NOW)[-1] == Consumption("d", 50)
    assert plan_consumption(lots, 60, NOW, first_lot_id="d") == (Consumption("d", 50), Consumption("a", 10))
    assert plan_consumption(lots, 0, NOW) == ()
    assert pending_points(lots, NOW) == 50
    # a lot past its expiry goes last of all, after pending lots, even with the soonest date;
    # the requested lot still goes first when it is the expired one
    expired = Lot("e", 50, NOW - timedelta(days=40), NOW - timedelta(days=1))
    lots = [expired, *lots]
    assert plan_consumption(lots, 120, NOW) == (Consumption("a", 50), Consumption("b", 50), Consumption("c", 20))
    assert plan_consumption(lots, 230, NOW)[-2:] == (Consumption("d", 50), Consumption("e", 30))
    assert plan_consumption(lots, 60, NOW, first_lot_id="e") == (Consumption("e", 50), Consumption("a", 10))
    # a pending lot past its expiry is expired, not pending
    assert pending_points([Lot("p", 9, NOW + timedelta(days=3), NOW)], NOW) == 0


class MemberLotsModel(RuleBasedStateMachine):
    """A member's posted balance and lots under credits, debits, reversals of debits and expiry.

    Every operation goes through the same pure rules the service uses
    (new_lot_points, plan_consumption, restore_plan, due_consumptions), applied
    the way store/ledger_writes.py applies them. Invariant: sum(remaining) == max(posted, 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.posted = 0
        self.lots: dict[str, dict] = {}  # lot_id -> {"points", "remaining", "available_at", "expires_at"}
        self.debits: dict[str, tuple[int, tuple[Consumption, ...]]] = {}  # debit id -> (points, consumed)
        self.counter = 0

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:05d}"

    def _lots(self) -> list[Lot]:
        return [
            Lot(lot_id, lot["remaining"], lot["available_at"], lot["expires_at"])
            for lot_id, lot in self.lots.items()
            if lot["remaining"] > 0
        ]

    def _new_lot(self, points: int, expires_in: int | None, pending_days: int = 0) -> None:
        if points > 0:
            self.lots[self._id("lot")] = {
                "points": points,
                "remaining": points,
                "available_at": self.now + timedelta(days=pending_days),
                "expires_at": None if expires_in is None else self.now + timedelta(days=expires_in),
            }

    def _consume(self, plan) -> None:
        for c in plan:
            assert 0 < c.points <= self.lots[c.lot_id]["remaining"]
            self.lots[c.lot_id]["remaining"] -= c.points

    @rule(points=st.integers(1, 500), expires_in=st.one_of(st.none(), st.integers(1, 60)), pending=st.integers(0, 20))
    def credit(self, points, expires_in, pending):
        self._new_lot(new_lot_points(points, self.posted), expires_in, pending)
        self.posted += points

    @rule(points=st.integers(1, 800), first=st.booleans())
    def debit(self, points, first):
        # a refund may overdraw (ALLOW policy); a redeem never does, both consume lots the same way
        first_lot = next(iter(self.lots), "") if first else ""
        plan = plan_consumption(self._lots(), points, self.now, first_lot_id=first_lot)
        self._consume(plan)
        self.posted -= points
        self.debits[self._id("debit")] = (points, plan)

    @precondition(lambda self: self.debits)
    @rule(data=st.data(), expires_in=st.one_of(st.none(), st.integers(1, 60)))
    def reverse_debit(self, data, expires_in):
        debit_id = data.draw(st.sampled_from(sorted(self.debits)))
        points, consumed = self.debits.pop(debit_id)
        restored, rest = restore_plan(list(consumed), new_lot_points(points, self.posted))
        assert rest >= 0
        assert sum(r.points for r in restored) + rest == new_lot_points(points, self.posted)
        for r, c in zip(restored, consumed):
            assert r.lot_id == c.lot_id and 0 < r.points <= c.points
            lot = self.lots[r.lot_id]
            lot["remaining"] += r.points
            assert lot["remaining"] <= lot["points"]
        self._new_lot(rest, expires_in)
        self.posted += points

    @rule(days=st.integers(0, 40), everything=st.booleans())
    def expire(self, days, everything):
        self.now += timedelta(days=days)
        due = due_consumptions(self._lots(), self.now, everything=everything)
        self._consume(due)
        self.posted -= sum(c.points for c in due)
        if everything:
            assert not self._lots()
        assert not [lot for lot in self._lots() if lot.expires_at is not None and lot.expires_at <= self.now]

    @invariant()
    def lots_hold_the_positive_part_of_posted(self):
        assert sum(lot["remaining"] for lot in self.lots.values()) == max(self.posted, 0)
        for lot in self.lots.values():
            assert 0 <= lot["remaining"] <= lot["points"]


TestMemberLotsModel = MemberLotsModel.TestCase
TestMemberLotsModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**12))
def test_new_lot_points_repays_a_negative_balance_first(posted_before, credit):
    points = new_lot_points(credit, posted_before)
    assert 0 <= points <= credit
    assert points == max(posted_before + credit, 0) - max(posted_before, 0)


@given(st.lists(st.integers(1, 1000), max_size=10), st.integers(0, 12_000))
def test_restore_plan_gives_back_in_order_up_to_what_fits(amounts, restorable):
    consumed = [Consumption(f"lot-{i}", p) for i, p in enumerate(amounts)]
    plan, rest = restore_plan(consumed, restorable)
    assert sum(c.points for c in plan) + rest == restorable
    assert sum(c.points for c in plan) == min(restorable, sum(amounts))
    for given_back, taken in zip(plan, consumed):
        assert given_back.lot_id == taken.lot_id and 0 < given_back.points <= taken.points
    for given_back in plan[:-1]:
        assert given_back.points == amounts[int(given_back.lot_id.split("-")[1])]


@given(
    st.integers(-(10**6), 10**6),
    st.integers(0, 365),
    st.sampled_from(list(ExpiryMode)),
    st.integers(0, 3650),
    st.booleans(),
)
def test_lot_dates(offset_seconds, pending_days, mode, expiry_days, pending):
    occurred = NOW + timedelta(seconds=offset_seconds)
    rules = ProgramRules("p", "p", pending_days=pending_days, expiry_mode=mode, expiry_days=expiry_days)
    available_at, expires_at = lot_dates(occurred, rules, pending=pending)
    assert available_at == occurred + timedelta(days=pending_days if pending else 0)
    if mode is ExpiryMode.ROLLING and expiry_days > 0:
        assert expires_at == occurred + timedelta(days=expiry_days)
    else:
        assert expires_at is None


# --------------------------------------------------------------------------- holds

hold_states = st.sampled_from(list(HoldState))


@st.composite
def holds(draw):
    points = draw(st.integers(1, 10**9))
    return HoldFacts(
        hold_id="hold_1",
        member_id="m-1",
        points=points,
        state=draw(hold_states),
        expires_at=NOW + timedelta(seconds=draw(st.integers(-10**6, 10**6))),
        order_id=draw(st.sampled_from(["", "o-1"])),
        captured_points=0,
        created_at=NOW - timedelta(days=1),
    )


@given(holds(), st.integers(-(10**6), 10**6))
def test_effective_state_lapses_an_open_hold_exactly_at_expires_at(hold, seconds):
    now = hold.expires_at + timedelta(seconds=seconds)
    state = hold.effective_state(now)
    if hold.state is HoldState.OPEN:
        assert state is (HoldState.LAPSED if now >= hold.expires_at else HoldState.OPEN)
    else:
        assert state is hold.state  # captured / voided / lapsed stay so forever
    if state is HoldState.OPEN:
        check_open(hold, now)
    else:
        with pytest.raises(errors.LedgerError) as caught:
            check_open(hold, now)
        assert caught.value.category is errors.Category.FAILED_PRECONDITION
        assert caught.value.reason == "HOLD_NOT_OPEN"
        assert caught.value.metadata["state"] == state.value
        assert caught.value.recorded


def test_effective_state_boundary():
    hold = HoldFacts("h", "m", 10, HoldState.OPEN, NOW, "", 0, NOW - timedelta(minutes=1))
    assert hold.effective_state(NOW - timedelta(microseconds=1)) is HoldState.OPEN
    assert hold.effective_state(NOW) is HoldState.LAPSED


@given(holds(), st.integers(0, 2 * 10**9))
def test_capture_points(hold, requested):
    if requested > hold.points:
        with pytest.raises(errors.LedgerError) as caught:
            capture_points(hold, requested)
        assert caught.value.reason == "CAPTURE_EXCEEDS_HOLD"
        assert caught.value.category is errors.Category.FAILED_PRECONDITION
        assert caught.value.metadata["held"] == str(hold.points)
    else:
        captured = capture_points(hold, requested)
        assert captured == (hold.points if requested == 0 else requested)
        assert 0 < captured <= hold.points


@given(holds(), st.integers(0, 10**9))
def test_hold_json_round_trip_and_close(hold, captured):
    assert HoldFacts.from_json(hold.to_json()) == hold
    closed = hold.closed(HoldState.CAPTURED, captured)
    assert (closed.state, closed.captured_points, closed.points, closed.expires_at) == (
        HoldState.CAPTURED,
        captured,
        hold.points,
        hold.expires_at,
    )


@given(st.integers(-100, MAX_HOLD_TTL_SECONDS + 100), st.integers(-100, MAX_HOLD_TTL_SECONDS + 100))
def test_hold_expiry_bounds(requested, default):
    ttl = requested or default
    if 0 < ttl <= MAX_HOLD_TTL_SECONDS:
        expires = hold_expiry(NOW, requested, default)
        assert expires == NOW + timedelta(seconds=ttl)
        assert NOW < expires <= NOW + timedelta(days=7)
    else:
        with pytest.raises(errors.LedgerError) as caught:
            hold_expiry(NOW, requested, default)
        assert caught.value.category is errors.Category.INVALID_ARGUMENT
        assert [v.field for v in caught.value.violations] == ["ttl_seconds"]
        assert not caught.value.recorded


def test_hold_expiry_examples():
    assert hold_expiry(NOW, 0, 900) == NOW + timedelta(seconds=900)
    assert hold_expiry(NOW, 1, 900) == NOW + timedelta(seconds=1)
    assert hold_expiry(NOW, MAX_HOLD_TTL_SECONDS, 900) == NOW + timedelta(days=7)


# --------------------------------------------------------------------------- expiry


@given(lot_lists(), st.booleans())
def test_due_consumptions(lots, everything):
    due = due_consumptions(lots, NOW, everything=everything)
    by_id = {lot.lot_id: lot for lot in lots}
    assert len({c.lot_id for c in due}) == len(due)
    expected = {
        lot.lot_id
        for lot in lots
        if lot.remaining > 0 and (everything or (lot.expires_at is not None and lot.expires_at <= NOW))
    }
    assert {c.lot_id for c in due} == expected
    for c in due:
        # exactly what is left of the lot: points already spent are never expired
        assert c.points == by_id[c.lot_id].remaining > 0
    keys = [(by_id[c.lot_id].expires_at or NOW, c.lot_id) for c in due]
    assert keys == sorted(keys)


def test_due_consumptions_examples():
    lots = [
        Lot("spent", 0, NOW - timedelta(days=60), NOW - timedelta(days=1)),
        Lot("due", 30, NOW - timedelta(days=60), NOW - timedelta(days=1)),
        Lot("now", 5, NOW - timedelta(days=60), NOW),
        Lot("later", 40, NOW - timedelta(days=60), NOW + timedelta(seconds=1)),
        Lot("never", 50, NOW - timedelta(days=60), None),
    ]
    assert due_consumptions(lots, NOW, everything=False) == (Consumption("due", 30), Consumption("now", 5))
    assert sum(c.points for c in due_consumptions(lots, NOW, everything=True)) == 125


@given(st.sampled_from(list(ExpiryMode)), st.integers(0, 3650))
def test_inactive_since(mode, days):
    rules = ProgramRules("p", "p", expiry_mode=mode, expiry_days=days)
    cutoff = inactive_since(rules, NOW)
    if mode is ExpiryMode.INACTIVITY and days > 0:
        assert cutoff == NOW - timedelta(days=days)
    else:
        assert cutoff is None
