"""The points liability at an instant: what is owed, what moved per month, and breakage.

Computed from the ledger as it stood at `as_of` (entries, lots and their consumptions, holds
recorded up to then), never from today's projections. Everything is integers: points are
int64, money is minor units of the program's currency rounded down, ratios are basis points.

Point value: PointValue(minor_units, scale) means one point is worth minor_units / 10**scale
minor units (1 point = 1 cent: (1, 0); 1 point = 0.5 cent: (5, 1)).

Per month (UTC, by recording time), every posted point falls in exactly one column, so
  sum(issued by source) - redeemed - expired - forfeited - reversed == net change of posted
where issued splits the credits by source (base, tier bonus, campaign and activity from each
earn's or activity's breakdown; referral; positive adjustments), reversed is refunds,
reversals and negative adjustments (net: reversing a redemption gives points back), and
transferred is shown apart: points moved between members, issued by no one (net zero).

Breakage per cohort (the calendar month a lot was credited; lots received by transfer are
left out, their points belong to the sender's cohort): expired / issued. Projection for a
cohort still holding points: its outstanding points are assumed to expire at the rate seen
among all points already resolved (spent, reversed or expired), over every cohort:
  rate = expired_all / (issued_all - outstanding_all)
  projected breakage = (expired + outstanding * rate) / issued
A ledger with nothing resolved yet projects no breakage (rate 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

ISSUE_SOURCES = ("BASE", "TIER_BONUS", "CAMPAIGN", "ACTIVITY", "REFERRAL", "ADJUSTMENT")
EXPIRING_WINDOWS_DAYS = (30, 60, 90)
DAY_MICROS = 86_400_000_000


@dataclass(frozen=True)
class PointValue:
    minor_units: int = 0
    scale: int = 0

    def money(self, points: int) -> int:
        """Minor units of `points`, rounded down (toward minus infinity)."""
        return (points * self.minor_units) // (10**self.scale)


@dataclass
class Month:
    month: str  # YYYY-MM
    issued: dict[str, int] = field(default_factory=lambda: {s: 0 for s in ISSUE_SOURCES})
    redeemed: int = 0
    expired: int = 0
    forfeited: int = 0
    reversed: int = 0
    transferred: int = 0

    @property
    def issued_total(self) -> int:
        return sum(self.issued.values())

    @property
    def net(self) -> int:
        return self.issued_total - self.redeemed - self.expired - self.forfeited - self.reversed


@dataclass(frozen=True)
class Cohort:
    month: str
    issued: int
    expired: int
    outstanding: int
    breakage_bps: int
    projected_breakage_bps: int


@dataclass(frozen=True)
class LiabilityReport:
    as_of: datetime
    currency: str
    point_value: PointValue
    posted: int  # sum of every member's posted balance
    negative: int  # sum of the negative balances (owed by members), <= 0
    outstanding: int  # points held in lots: the positive balances
    pending: int
    held: int
    expired_unwritten: int  # past their expiry, not yet written off by the expiry job
    available: int
    expiring: tuple[tuple[int, int], ...]  # (days, points expiring within them)
    months: tuple[Month, ...]
    cohorts: tuple[Cohort, ...]

    def money(self, points: int) -> int:
        return self.point_value.money(points)


def month_of_day(day: int) -> str:
    """YYYY-MM of a day number (days since the Unix epoch, UTC)."""
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=day)).strftime("%Y-%m")


# entries' kind -> the column its points go to (the sign turns debits into positive figures)
_ENTRY_COLUMNS = {
    "REDEEM": ("redeemed", -1),
    "CAPTURE": ("redeemed", -1),
    "EXPIRE": ("expired", -1),
    "FORFEIT": ("forfeited", -1),
    "REFUND": ("reversed", -1),
    "REVERSAL": ("reversed", -1),
}


def months(by_kind: list[tuple[int, str, int, int]], by_source: list[tuple[int, str, int]]) -> tuple[Month, ...]:
    """Folds day totals into months.
    by_kind: (day, kind, sum of positive entry points, sum of negative entry points), every kind;
    by_source: (day, source, points) of the breakdown lines of EARN and ACTIVITY transactions."""
    found: dict[str, Month] = {}

    def at(day: int) -> Month:
        key = month_of_day(day)
        return found.setdefault(key, Month(key))

    for day, kind, credits, debits in by_kind:
        month = at(day)
        if kind in ("EARN", "ACTIVITY"):
            continue  # by source, below
        if kind == "REFERRAL_REWARD":
            month.issued["REFERRAL"] += credits
            month.reversed -= debits
        elif kind == "ADJUST":
            month.issued["ADJUSTMENT"] += credits
            month.reversed -= debits
        elif kind == "TRANSFER":
            month.transferred += credits
        elif kind in _ENTRY_COLUMNS:
            column, sign = _ENTRY_COLUMNS[kind]
            setattr(month, column, getattr(month, column) + sign * (credits + debits))
    for day, source, points in by_source:
        month = at(day)
        name = source if source in month.issued else "ADJUSTMENT"
        if source == "LEDGER_OPERATION":
            name = "ADJUSTMENT"
        month.issued[name] += points
    return tuple(found[key] for key in sorted(found))


def cohorts(rows: list[tuple[int, int, int, int]]) -> tuple[Cohort, ...]:
    """rows: (day credited, points issued, points expired, points outstanding) per lot group."""
    by_month: dict[str, list[int]] = {}
    for day, issued, expired, outstanding in rows:
        totals = by_month.setdefault(month_of_day(day), [0, 0, 0])
        totals[0] += issued
        totals[1] += expired
        totals[2] += outstanding
    issued_all = sum(t[0] for t in by_month.values())
    expired_all = sum(t[1] for t in by_month.values())
    outstanding_all = sum(t[2] for t in by_month.values())
    resolved = issued_all - outstanding_all
    made = []
    for month in sorted(by_month):
        issued, expired, outstanding = by_month[month]
        breakage = (expired * 10_000) // issued if issued > 0 else 0
        projected_expired_scaled = expired * resolved + outstanding * expired_all if resolved > 0 else expired * 1
        denominator = issued * resolved if resolved > 0 else issued
        projected = (projected_expired_scaled * 10_000) // denominator if denominator > 0 else 0
        made.append(Cohort(month, issued, expired, outstanding, breakage, projected))
    return tuple(made)


def to_json(report: LiabilityReport) -> dict:
    """The report as plain JSON values (the command line's --format json)."""
    money = report.money
    return {
        "as_of": report.as_of.isoformat(),
        "currency": report.currency,
        "point_value": {"minor_units": report.point_value.minor_units, "scale": report.point_value.scale},
        "posted_points": report.posted,
        "negative_points": report.negative,
        "outstanding": {"points": report.outstanding, "value": money(report.outstanding)},
        "available": {"points": report.available, "value": money(report.available)},
        "pending": {"points": report.pending, "value": money(report.pending)},
        "held": {"points": report.held, "value": money(report.held)},
        "expired_unwritten": {"points": report.expired_unwritten, "value": money(report.expired_unwritten)},
        "expiring": [{"days": d, "points": p, "value": money(p)} for d, p in report.expiring],
        "months": [
            {
                "month": m.month,
                "issued": {s.lower(): v for s, v in m.issued.items()},
                "issued_total": m.issued_total,
                "redeemed": m.redeemed,
                "expired": m.expired,
                "forfeited": m.forfeited,
                "reversed": m.reversed,
                "transferred": m.transferred,
                "net": m.net,
            }
            for m in report.months
        ],
        "cohorts": [vars(c) for c in report.cohorts],
    }


def to_rows(report: LiabilityReport) -> list[tuple[str, str, str, int, int | str]]:
    """The report as (section, key, metric, points, value) rows (the command line's --format csv)."""
    money = report.money
    rows: list[tuple[str, str, str, int, int | str]] = [
        ("balance", "", "posted", report.posted, money(report.posted)),
        ("balance", "", "negative", report.negative, money(report.negative)),
    ]
    for name, points in (
        ("outstanding", report.outstanding),
        ("available", report.available),
        ("pending", report.pending),
        ("held", report.held),
        ("expired_unwritten", report.expired_unwritten),
    ):
        rows.append(("liability", "", name, points, money(points)))
    rows += [("expiring", f"{d}d", "expiring", p, money(p)) for d, p in report.expiring]
    for m in report.months:
        rows += [("month", m.month, f"issued_{s.lower()}", v, money(v)) for s, v in m.issued.items()]
        for name in ("issued_total", "redeemed", "expired", "forfeited", "reversed", "transferred", "net"):
            value = getattr(m, name)
            rows.append(("month", m.month, name, value, money(value)))
    for c in report.cohorts:
        rows += [
            ("cohort", c.month, "issued", c.issued, money(c.issued)),
            ("cohort", c.month, "expired", c.expired, money(c.expired)),
            ("cohort", c.month, "outstanding", c.outstanding, money(c.outstanding)),
            ("cohort", c.month, "breakage_bps", c.breakage_bps, ""),
            ("cohort", c.month, "projected_breakage_bps", c.projected_breakage_bps, ""),
        ]
    return rows
