"""`import orders` earns its rows in batches, many members' Earns in one database transaction
(ledger.service.earning_batches). Each order is still decided and written by the Earn's own
code, so a batch must answer and write exactly what the same orders earn one at a time, each a
whole Earn as a till sends it.

Here one orders file goes into two programs set up alike through the gRPC API: row by row into
one, as batches into the other. The programs have tiers that the orders cross mid-file, a
campaign whose per-member cap and budget run out mid-file, a referral still to decide (the
batch leaves that member's orders to be earned alone), a closed member, a member that does not
exist, a row that is not a number, an order repeated as it was and an order id reused for
another member. Compared through the API: every member's statement (kinds, points, breakdowns,
balances after, tier moves), balances and tiers, the campaign's report, each row's answer;
and as stored: the members' RFM rows, segments and events. Rerunning the batches changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from ledger import imports
from ledger.domain import errors
from ledger.domain.kinds import Role
from ledger.service import earning_batches
from ledger.service.caller import Caller
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from tests.conftest import new_program
from tests.integration.ledger_checks import assert_verify_clean, member, statement

MEMBERS = [f"b-{i}" for i in range(8)]
ROUNDS = 5


def _stamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


def _set_up(api) -> list[str]:
    """Tiers, two campaigns (one capped and budgeted, for SKU A1; one for every order, with
    neither), referral rules; the members (one closed, one referred). Returns the campaigns' ids."""
    api.programs.SetTiers(
        programs_pb2.SetTiersRequest(tiers=[
            programs_pb2.Tier(name="Member", threshold=0),
            programs_pb2.Tier(name="Silver", threshold=3_000, earn_multiplier_bps=15_000),
            programs_pb2.Tier(name="Gold", threshold=6_500, earn_multiplier_bps=20_000),
        ]),
        metadata=api.metadata,
    )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    window = {"start_time": _stamp(now - timedelta(days=5)), "end_time": _stamp(now + timedelta(days=1))}
    budgeted = api.programs.CreateCampaign(
        programs_pb2.CreateCampaignRequest(campaign=programs_pb2.Campaign(
            name="double", multiplier_bps=20_000, per_member_cap=30, budget=150,
            conditions=programs_pb2.CampaignConditions(skus=["A1"]), **window,
        )),
        metadata=api.metadata,
    ).campaign
    everyone = api.programs.CreateCampaign(
        programs_pb2.CreateCampaignRequest(campaign=programs_pb2.Campaign(name="bonus", bonus_points=3, **window)),
        metadata=api.metadata,
    ).campaign
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(referral=programs_pb2.ReferralRules(
                referrer_points=500, referee_points=200, min_order_amount=1_000,
            )),
            update_mask=field_mask_pb2.FieldMask(paths=["referral"]),
        ),
        metadata=api.metadata,
    )
    for member_id in [*MEMBERS, "b-closed", "b-referrer"]:
        api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member_id), metadata=api.metadata)
    api.ledger.CloseMember(ledger_pb2.CloseMemberRequest(member_id="b-closed"), metadata=api.metadata)
    code = member(api, "b-referrer").referral_code
    api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="b-referred", referral_code=code), metadata=api.metadata)
    return [budgeted.campaign_id, everyone.campaign_id]


def _rows(tag: str) -> list[tuple[int, dict[str, str]]]:
    """Rounds of one order per member, in member order (so that both ways meet the budget's
    end at the same order); then the rows a batch refuses, repeats or leaves alone (without
    SKU A1: whenever they are earned, they take nothing of the budget)."""
    start = datetime.now(timezone.utc) - timedelta(days=3)
    rows = []
    for i in range(ROUNDS * len(MEMBERS)):
        rows.append({
            "member_id": MEMBERS[i % len(MEMBERS)], "order_id": f"{tag}-{i}", "amount": str(700 + 37 * i),
            "currency": "USD", "occur_time": (start + timedelta(minutes=i)).isoformat(), "sku": "A1",
        })
    when = start.isoformat()
    rows += [
        {"member_id": "b-closed", "order_id": f"{tag}-closed", "amount": "900", "currency": "USD", "occur_time": when},
        {"member_id": "b-nobody", "order_id": f"{tag}-nobody", "amount": "900", "currency": "USD", "occur_time": when},
        {"member_id": MEMBERS[0], "order_id": f"{tag}-nan", "amount": "ten", "currency": "USD", "occur_time": when},
        dict(rows[3]),  # the same order again: answered as before
        {**rows[4], "member_id": MEMBERS[1]},  # its order id (and so its key) for another member
        # The referral's qualifying order, then orders of the referrer, the first in the same
        # round of a batch: the referrer's reward must come before them, as one at a time.
        {"member_id": "b-referred", "order_id": f"{tag}-ref", "amount": "5000", "currency": "USD", "occur_time": when},
        {"member_id": "b-referrer", "order_id": f"{tag}-r1", "amount": "800", "currency": "USD", "occur_time": when},
        {"member_id": "b-referrer", "order_id": f"{tag}-r2", "amount": "900", "currency": "USD", "occur_time": when},
    ]
    return list(enumerate(rows, start=1))


def _answers(outcomes: dict[int, imports.RowRefused | None]) -> dict[int, tuple[str, str] | None]:
    return {n: None if r is None else (r.code, r.reason) for n, r in sorted(outcomes.items())}


def _ledger(program, campaign_ids: list[str], tag: str) -> dict:
    """What the orders left, with each program's own ids (transactions, keys, campaign) left out."""
    api = program.api(Role.ADMIN)
    try:
        statements = {
            m: [
                (
                    tx.kind, tx.points, tx.balance_after, tx.sequence, tx.order_id.removeprefix(tag), tx.tier_from,
                    # Campaigns of equal priority apply in campaign id order, random per program.
                    tx.tier_to, sorted((line.source, line.points, line.description) for line in tx.breakdown),
                )
                for tx in statement(api, m)
            ]
            for m in [*MEMBERS, "b-referred", "b-referrer", "b-closed"]
        }
        views = {m: (v.balance, v.tier.name, v.rfm.frequency, v.rfm.monetary) for m in MEMBERS for v in [member(api, m)]}
        reports = [
            api.programs.GetCampaign(programs_pb2.GetCampaignRequest(campaign_id=c), metadata=api.metadata).campaign
            for c in campaign_ids
        ]
    finally:
        api.close()
    with program.backend.engine.connect() as conn:
        stored = {
            name: [tuple(row) for row in conn.execute(text(sql), {"p": program.program_id})]
            for name, sql in {
                "rfm": "SELECT member_id, last_order_at, orders, spend FROM member_rfm WHERE program_id = :p ORDER BY member_id",
                "segments": "SELECT s.name, m.member_id FROM segment_members m JOIN segments s "
                "ON s.program_id = m.program_id AND s.segment_id = m.segment_id WHERE m.program_id = :p ORDER BY 1, 2",
                "events": "SELECT member_id, type FROM events WHERE program_id = :p ORDER BY member_id, position",
                "qualifying": "SELECT member_id, occurred_at, spend, base_points FROM qualifying_events "
                "WHERE program_id = :p ORDER BY member_id, occurred_at, spend",
            }.items()
        }
    return {
        "statements": statements, "views": views, "stored": stored,
        "campaigns": [(r.points_awarded, r.members_awarded, r.budget_remaining) for r in reports],
    }


def _programs(backend, count: int) -> list[tuple[object, list[str]]]:
    """Programs set up alike, each with its campaigns' ids."""
    made = []
    for _ in range(count):
        program = new_program(backend)
        api = program.api(Role.ADMIN)
        try:
            made.append((program, _set_up(api)))
        finally:
            api.close()
    return made


def _one_at_a_time(backend, program, rows) -> dict[int, imports.RowRefused | None]:
    caller = Caller(program.program_id, imports.IMPORT_KEY_ID, Role.ADMIN)
    return {n: imports._refusal_of(lambda row=row: imports.order_row(backend.db, caller, row)) for n, row in rows}


def test_a_batch_answers_and_writes_what_the_same_orders_earn_one_at_a_time(backend):
    (alone, alone_ids), (batched, batched_ids) = _programs(backend, 2)
    tag = f"o{secrets.token_hex(3)}"
    rows = _rows(tag)

    one_by_one = _one_at_a_time(backend, alone, rows)
    caller = Caller(batched.program_id, imports.IMPORT_KEY_ID, Role.ADMIN)
    in_batch = imports.order_batch(backend.db, caller, rows)

    assert _answers(in_batch) == _answers(one_by_one)
    refused = {n: answer for n, answer in _answers(in_batch).items() if answer is not None}
    last = ROUNDS * len(MEMBERS)
    assert refused == {
        last + 1: ("FAILED_PRECONDITION", "MEMBER_CLOSED"),
        last + 2: ("NOT_FOUND", "MEMBER_NOT_FOUND"),
        last + 3: ("INVALID_ARGUMENT", "INVALID_FIELD"),
        last + 5: ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED"),
    }
    expected = _ledger(alone, alone_ids, tag)
    assert _ledger(batched, batched_ids, tag) == expected
    # The file crossed what the comparison is meant to cover.
    kinds = {tx[0] for txs in expected["statements"].values() for tx in txs}
    assert {common_pb2.TRANSACTION_KIND_TIER_CHANGE, common_pb2.TRANSACTION_KIND_REFERRAL_REWARD} <= kinds
    assert expected["campaigns"][0][2] == 0  # the budget ran out mid-file
    assert expected["campaigns"][1][0] > 0  # the campaign without a budget: counters summed per slot
    assert {tier for _, tier, _, _ in expected["views"].values()} >= {"Silver", "Gold"}
    referrer = expected["statements"]["b-referrer"]
    assert [tx[0] for tx in sorted(referrer, key=lambda tx: tx[3])][:2] == [
        common_pb2.TRANSACTION_KIND_REFERRAL_REWARD, common_pb2.TRANSACTION_KIND_EARN,
    ]

    # A rerun replays every answer and writes nothing.
    assert _answers(imports.order_batch(backend.db, caller, rows)) == _answers(in_batch)
    assert _ledger(batched, batched_ids, tag) == expected
    assert_verify_clean(batched)


def test_a_round_that_fails_as_a_whole_is_earned_one_order_at_a_time_before_the_next(backend, monkeypatch):
    """A lost race that unit_of_work did not win (here: the first round, told so) sends that
    round's orders alone, before the next round: each member's orders stay in file order."""
    (alone, alone_ids), (batched, batched_ids) = _programs(backend, 2)
    tag = f"o{secrets.token_hex(3)}"
    rows = _rows(tag)
    earn_many, rounds = earning_batches.earn_many, []

    def losing_the_first_round(db, caller, orders):
        rounds.append(len(orders))
        if len(rounds) == 1:
            raise errors.conflict_retry("lost the race (test)")
        return earn_many(db, caller, orders)

    monkeypatch.setattr(earning_batches, "earn_many", losing_the_first_round)
    caller = Caller(batched.program_id, imports.IMPORT_KEY_ID, Role.ADMIN)
    in_batch = imports.order_batch(backend.db, caller, rows)
    assert len(rounds) > 1
    assert _answers(in_batch) == _answers(_one_at_a_time(backend, alone, rows))
    assert _ledger(batched, batched_ids, tag) == _ledger(alone, alone_ids, tag)
