"""RFM scoring and segment rules (ledger.domain.segments): quintile cut points, scores, conditions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.segments import (
    DAY_MICROS,
    CutPoints,
    Figures,
    Range,
    SegmentConditions,
    change,
    cut_points,
    matches,
    profile,
    score,
)

values = st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=200)


def _quintile_by_rank(vs: list[int]) -> list[int]:
    """An independent reading of the rule: a value's score is how many of the positions
    ceil(k*N/5) (k = 0..4, position 0 meaning none) hold a value below it, plus one."""
    ordered = sorted(vs)
    n = len(ordered)
    bounds = [ordered[-(-k * n // 5) - 1] for k in range(1, 5)]
    return [1 + sum(v > b for b in bounds) for v in vs]


@given(values)
def test_scores_are_1_to_5_ties_share_a_score_and_order_is_kept(vs):
    cuts = cut_points(vs)
    scored = [score(v, cuts) for v in vs]
    assert all(1 <= s <= 5 for s in scored)
    assert scored == _quintile_by_rank(vs)
    for a, sa in zip(vs, scored):
        for b, sb in zip(vs, scored):
            if a == b:
                assert sa == sb
            if a < b:
                assert sa <= sb


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=5, max_size=200, unique=True))
def test_distinct_values_fill_each_quintile_with_a_fifth(vs):
    scored = [score(v, cut_points(vs)) for v in vs]
    n = len(vs)
    for s in range(1, 6):
        # exactly the positions between ceil((s-1)N/5) and ceil(sN/5)
        assert scored.count(s) == -(-s * n // 5) - -(-(s - 1) * n // 5)


def test_no_cut_points_scores_0():
    assert score(10, ()) == 0 and cut_points([]) == ()


@given(st.integers(0, 10**6), st.integers(-(10**6), 10**6), st.booleans())
def test_an_order_adds_to_the_window_only_inside_it(spend, offset, has_last):
    start = 10**12
    before = Figures(start - 5 if has_last else None, 3, 100)
    after = before.with_order(start + offset, spend, start)
    assert after.last_order_at == max(start + offset, before.last_order_at or start + offset)
    if offset > 0:
        assert (after.orders, after.spend) == (4, 100 + spend)
    else:
        assert (after.orders, after.spend) == (3, 100)


ranges = st.builds(Range, st.none() | st.integers(0, 20), st.none() | st.integers(0, 20))


@given(ranges, st.integers(0, 20))
def test_a_range_holds_between_its_ends(r, value):
    assert r.holds(value) == ((r.low is None or value >= r.low) and (r.high is None or value <= r.high))


@given(st.integers(0, 400), st.booleans(), st.integers(0, 100))
def test_recency_conditions_never_match_a_member_without_an_order(days, ordered, low):
    now = 1000 * DAY_MICROS
    figures = Figures(now - days * DAY_MICROS if ordered else None, 1 if ordered else 0, 0)
    member = profile(figures, CutPoints(), now, 0, "", 0)
    lapsed = SegmentConditions(recency_days=Range(low, None))
    assert matches(lapsed, member) == (ordered and days >= low)
    assert matches(SegmentConditions(), member)  # no condition: everyone


def test_tiers_and_membership_changes():
    member = profile(Figures(), CutPoints(), 0, 0, "Gold", 0)
    assert matches(SegmentConditions(tiers=("Gold", "Silver")), member)
    assert not matches(SegmentConditions(tiers=("Silver",)), member)
    moved = change({"a", "b"}, {"b", "c"})
    assert moved.entered == ("c",) and moved.exited == ("a",) and moved
    assert not change({"a"}, {"a"})


@given(st.dictionaries(st.sampled_from(["orders", "spend", "recency_score"]), st.tuples(st.none() | st.integers(1, 5), st.none() | st.integers(1, 5))))
def test_conditions_survive_their_json(ranges_given):
    conditions = SegmentConditions(**{k: Range(*v) for k, v in ranges_given.items()}, tiers=("Gold",))
    assert SegmentConditions.from_json(conditions.to_json()) == conditions
