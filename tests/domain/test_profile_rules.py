"""ledger.domain.profiles: field checks, consent stamping; ledger.domain.liability: months fold
so that issued - redeemed - expired - forfeited - reversed is each month's net change."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.liability import PointValue, months
from ledger.domain.profiles import Profile, birth_date_problem, email_problem, locale_problem, name_problem

NOW = datetime(2026, 12, 4, tzinfo=timezone.utc)


def test_field_checks():
    assert email_problem("ann@example.com") is None and email_problem("") is None
    assert email_problem("ann@") and email_problem("a b@example.com")
    assert birth_date_problem("1990-04-01", date(2026, 1, 1)) is None
    assert birth_date_problem("1990-4-1", date(2026, 1, 1)) and birth_date_problem("2027-01-01", date(2026, 1, 1))
    assert locale_problem("fr-CA") is None and locale_problem("en") is None and locale_problem("fr_CA")
    assert name_problem("Ann") is None and name_problem(" Ann") and name_problem("A\nB")


def test_consent_is_stamped_when_it_changes_only():
    given_at = Profile().changed({"marketing_consent": True}, NOW)
    assert given_at.marketing_consent_at == NOW
    later = datetime(2026, 12, 5, tzinfo=timezone.utc)
    assert given_at.changed({"locale": "en"}, later).marketing_consent_at == NOW
    assert given_at.changed({"marketing_consent": True}, later).marketing_consent_at == NOW
    assert given_at.changed({"marketing_consent": False}, later).marketing_consent_at == later


KINDS = ["EARN", "ACTIVITY", "REDEEM", "CAPTURE", "REFUND", "ADJUST", "EXPIRE", "REFERRAL_REWARD", "REVERSAL",
         "TRANSFER", "FORFEIT", "TIER_CHANGE"]


@given(st.lists(st.tuples(st.integers(20_000, 20_100), st.sampled_from(KINDS), st.integers(0, 10_000),
                          st.integers(-10_000, 0)), max_size=40))
def test_each_month_nets_to_its_change_of_posted(rows):
    # A transfer's entries net to zero inside one program: the same points in and out.
    # A tier change moves no points; earns and activities credit only.
    rows = [(d, k, c, -c if k == "TRANSFER" else (0 if k in ("EARN", "ACTIVITY") else x)) for d, k, c, x in rows]
    rows = [(d, k, 0, 0) if k == "TIER_CHANGE" else (d, k, c, x) for d, k, c, x in rows]
    by_source = [(d, "BASE", c) for d, k, c, _ in rows if k in ("EARN", "ACTIVITY")]
    folded = months(rows, by_source)
    for month in folded:
        change = sum(c + x for d, k, c, x in rows if _month(d) == month.month)
        assert month.net == change


def _month(day: int) -> str:
    from ledger.domain.liability import month_of_day

    return month_of_day(day)


def test_point_value_rounds_down():
    assert PointValue(5, 1).money(3) == 1 and PointValue(1, 0).money(250) == 250 and PointValue().money(99) == 0
    assert PointValue(5, 1).money(-3) == -2
