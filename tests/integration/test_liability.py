"""GetLiabilityReport and `loyalty-ledger report liability` over real gRPC on PostgreSQL and
SQLite: its figures equal an independent recomputation from the members' statements and
balances (read through the API), its totals equal verify's for the program, a report as of
an earlier instant is the one the ledger gave then, and breakage follows the documented method."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.liability import cohorts
from ledger.domain.kinds import Role
from ledger.service.expiry import run_due_work
from ledger.service.verify import verify
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from tests.cli.processes import run_ok
from tests.grpc_helpers import earn, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, member, statement
from tests.integration.test_transfers import transfer, update_program

K = common_pb2


def stamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def report(api, as_of: datetime | None = None):
    request = programs_pb2.GetLiabilityReportRequest(as_of_time=stamp(as_of) if as_of else None)
    return api.programs.GetLiabilityReport(request, metadata=api.metadata).report


def build_ledger(api) -> list[str]:
    """Earns (one backdated past its expiry), a pending earn, a campaign, redemptions, a hold,
    a refund, a negative adjustment, a transfer; then the expiry job."""
    update_program(api, expiry_mode=programs_pb2.EXPIRY_MODE_ROLLING, expiry_days=365, max_backdate_days=3650,
                   point_value=programs_pb2.PointValue(minor_units=5, scale=1))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    api.programs.CreateCampaign(
        programs_pb2.CreateCampaignRequest(campaign=programs_pb2.Campaign(
            name="bonus", start_time=stamp(now - timedelta(days=1)), end_time=stamp(now + timedelta(days=1)),
            bonus_points=7)),
        metadata=api.metadata,
    )
    members = ["a", "b", "c"]
    for m in members:
        enroll(api, m)
    earn(api, "a", 20_000, order_id="o-a1")
    earn(api, "a", 5_000, order_id="o-old", occur_time=stamp(now - timedelta(days=400)))  # expired already
    earn(api, "b", 10_000, order_id="o-b1", occur_time=stamp(now - timedelta(days=340)))  # expiring within 30 days
    api.ledger.Redeem(ledger_pb2.RedeemRequest(member_id="a", idempotency_key=key(), points=30), metadata=api.metadata)
    api.ledger.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(member_id="a", idempotency_key=key(), points=20), metadata=api.metadata
    )
    api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(member_id="b", order_id="o-b1", idempotency_key=key(), amount=5_000),
        metadata=api.metadata,
    )
    api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(member_id="c", idempotency_key=key(), points=-15, reason="correction"),
        metadata=api.metadata,
    )
    transfer(api, "a", "b", 25)
    run_due_work(api.db)
    return members


def recompute(api, members: list[str]) -> dict:
    """The figures again, from the public API only."""
    by_kind: dict[int, int] = {}
    sources: dict[int, int] = {}
    totals = {"posted": 0, "pending": 0, "held": 0, "expired": 0, "positive": 0}
    for m in members:
        for tx in statement(api, m):
            by_kind[tx.kind] = by_kind.get(tx.kind, 0) + tx.points
            if tx.kind in (K.TRANSACTION_KIND_EARN, K.TRANSACTION_KIND_ACTIVITY):
                for line in tx.breakdown:
                    sources[line.source] = sources.get(line.source, 0) + line.points
        balance = member(api, m).balance
        totals["posted"] += balance.posted
        totals["positive"] += max(balance.posted, 0)
        for name in ("pending", "held", "expired"):
            totals[name] += getattr(balance, name)
    return {"by_kind": by_kind, "sources": sources, **totals}


def test_report_equals_an_independent_recomputation_and_verify(program, api):
    api.db = program.backend.db
    members = build_ledger(api)
    mine = recompute(api, members)
    got = report(api)
    assert got.posted_points == mine["posted"] and got.outstanding_points == mine["positive"]
    assert got.negative_points == mine["posted"] - mine["positive"] == -15
    assert (got.pending_points, got.held_points, got.expired_unwritten_points) == (mine["pending"], mine["held"], 0)
    assert got.available_points == got.outstanding_points - got.pending_points - got.held_points
    assert got.point_value == programs_pb2.PointValue(minor_units=5, scale=1)
    assert got.outstanding_value == (got.outstanding_points * 5) // 10
    totals = verify(program.backend.db).totals[program.program_id]
    assert (got.posted_points, got.outstanding_points) == (totals["posted_points"], totals["outstanding_points"])
    (month,) = got.months
    kinds = mine["by_kind"]
    assert month.issued_base == mine["sources"][K.POINTS_SOURCE_BASE] == 350
    assert month.issued_campaign == mine["sources"][K.POINTS_SOURCE_CAMPAIGN] == 7  # the one order inside the window
    assert month.issued_total == month.issued_base + month.issued_campaign == kinds[K.TRANSACTION_KIND_EARN]
    assert month.redeemed == -kinds[K.TRANSACTION_KIND_REDEEM] == 30
    assert month.expired == -kinds[K.TRANSACTION_KIND_EXPIRE] == 50  # the order of 400 days ago
    assert month.reversed == -(kinds[K.TRANSACTION_KIND_REFUND] + kinds[K.TRANSACTION_KIND_ADJUST]) == 50 + 15
    assert month.transferred == 25 and kinds[K.TRANSACTION_KIND_TRANSFER] == 0
    assert month.issued_total - month.redeemed - month.expired - month.forfeited - month.reversed == got.posted_points
    # b's order of 340 days ago, half refunded, expires within 30 days; a's transfer keeps a year.
    assert [(e.days, e.points, e.value) for e in got.expiring] == [(30, 50, 25), (60, 50, 25), (90, 50, 25)]
    (cohort,) = got.cohorts
    # The transfer's 25 points are in the receiver's lot, not in the cohort (they were issued to a).
    assert (cohort.issued, cohort.expired, cohort.outstanding) == (357, 50, got.outstanding_points - 25)
    assert cohort.breakage_bps == 50 * 10_000 // 357
    # The documented projection: outstanding points expire at the rate seen among resolved ones.
    resolved = cohort.issued - cohort.outstanding
    assert cohort.projected_breakage_bps == (50 * resolved + cohort.outstanding * 50) * 10_000 // (357 * resolved)
    assert_verify_clean(program)


def test_a_report_as_of_an_earlier_instant_is_the_one_given_then(program, api):
    enroll(api, "a")
    enroll(api, "b")
    earn(api, "a", 10_000)
    api.ledger.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(member_id="a", idempotency_key=key(), points=10), metadata=api.metadata
    )
    then = report(api)
    as_of = then.as_of_time.ToDatetime(tzinfo=timezone.utc)
    api.ledger.Redeem(ledger_pb2.RedeemRequest(member_id="a", idempotency_key=key(), points=40), metadata=api.metadata)
    transfer(api, "a", "b", 20)
    earn(api, "b", 3_000)
    assert report(api).posted_points == 90
    again = report(api, as_of)
    assert again == then
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "as_of_time"):
        report(api, datetime.now(timezone.utc) + timedelta(hours=1))
    pos = program.api(Role.POS)
    marketing = program.api(Role.MARKETING)
    try:
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            report(pos)
        assert report(marketing).posted_points == 90
    finally:
        pos.close()
        marketing.close()


def test_breakage_projection_method():
    # Cohort Jan: 100 issued, 20 expired, 0 left; Feb: 100 issued, 10 expired, 50 left.
    jan, feb = 20_089, 20_120  # day numbers in January and February 2025
    made = cohorts([(jan, 100, 20, 0), (feb, 100, 10, 50)])
    assert [(c.month, c.breakage_bps) for c in made] == [("2025-01", 2000), ("2025-02", 1000)]
    # resolved = 200 - 50 = 150 points, 30 of them expired: rate 20 %; Feb's 50 left -> 10 more.
    assert [c.projected_breakage_bps for c in made] == [2000, 2000]
    assert cohorts([(jan, 100, 0, 100)])[0].projected_breakage_bps == 0


def test_the_command_line_prints_json_and_csv(program, api):
    enroll(api, "a")
    earn(api, "a", 10_000)
    url = program.backend.url
    as_of = datetime.now(timezone.utc).isoformat()
    printed = json.loads("\n".join(run_ok(url, "report", "liability", "--program", program.program_id,
                                          "--as-of", as_of, "--format", "json")))
    assert printed["posted_points"] == 100 and printed["months"][0]["issued"]["base"] == 100
    rows = list(csv.reader(io.StringIO("\n".join(run_ok(url, "report", "liability", "--program", program.program_id,
                                                        "--format", "csv")))))
    assert rows[0][:4] == ["section", "key", "metric", "points"]
    assert ["liability", "", "outstanding", "100", "0"] in rows


def test_the_due_work_rolls_settled_days_up_so_that_no_report_pays_for_it(program, api):
    from sqlalchemy import select

    from ledger.domain.liability import DAY_MICROS
    from ledger.scheduler import DueWorkScheduler
    from ledger.store.liability import SETTLED_AFTER_MICROS
    from ledger.store.tables import liability_rollups

    enroll(api, "a")
    earn(api, "a", 10_000)
    before = report(api)
    db = program.backend.db
    DueWorkScheduler(db, 60)._run()  # what the leader runs every interval (the rollup hourly)
    now = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
    with db.engine.connect() as conn:
        rolled = conn.execute(
            select(liability_rollups.c.sources_until_day).where(liability_rollups.c.program_id == program.program_id)
        ).scalar_one()
    assert rolled == (now - SETTLED_AFTER_MICROS) // DAY_MICROS  # every settled day; today is not
    after = report(api)
    assert (after.months, after.cohorts, after.posted_points) == (before.months, before.cohorts, before.posted_points)
