"""The till's and the storefront's calls, driven through gRPC against a seeded ledger (bench.seed),
for the tests that read the plans PostgreSQL made for them (test_generic_plans.py,
test_plans_without_statistics.py)."""

from __future__ import annotations

import secrets

from loyalty.v1 import ledger_pb2
from ledger.store.postgres import prepared
from tests.conftest import Api
from tests.grpc_helpers import earn_request

# The tables the seed fills (thousands of rows): there a table scan is dearer than an index
# lookup, so a plan that still scans one has no index it can use. (Tables the tests
# leave nearly empty, holds or referrals, are cheaper to scan than to look up.)
BIG_TABLES = {"members", "transactions", "entries", "lots", "idempotency_records"}
CUSTOM_PLANS_FIRST = 5  # PostgreSQL's plancache.c: custom plans before a generic one is weighed
RUNS = prepared.THRESHOLD + CUSTOM_PLANS_FIRST + 2  # prepared, then run past that point


def drive_the_hot_calls(api: Api, members: int, runs: int = RUNS) -> None:
    """Earn, RefundOrder, QuoteEarn, Redeem, AuthorizeRedemption with CaptureRedemption or
    VoidRedemption, GetMember and ListTransactions, `runs` times over the seeded members
    ("m1", "m2", ...; the hot member "m0" redeems)."""
    md = api.metadata
    for n in range(runs):
        member = f"m{1 + n % (members - 1)}"
        order_id = f"order-{n}"
        api.ledger.Earn(earn_request(member, 1999 + n, order_id=order_id), metadata=md)
        api.ledger.RefundOrder(
            ledger_pb2.RefundOrderRequest(
                member_id=member, order_id=order_id, idempotency_key=secrets.token_hex(8), amount=500, currency="USD"
            ),
            metadata=md,
        )
        api.ledger.QuoteEarn(ledger_pb2.QuoteEarnRequest(member_id=member, order=earn_request(member, 500).order), metadata=md)
        api.ledger.Redeem(ledger_pb2.RedeemRequest(member_id="m0", idempotency_key=secrets.token_hex(8), points=1), metadata=md)
        hold = api.ledger.AuthorizeRedemption(
            ledger_pb2.AuthorizeRedemptionRequest(member_id="m0", idempotency_key=secrets.token_hex(8), points=2),
            metadata=md,
        ).hold
        if n % 2:
            api.ledger.CaptureRedemption(
                ledger_pb2.CaptureRedemptionRequest(hold_id=hold.hold_id, idempotency_key=secrets.token_hex(8)),
                metadata=md,
            )
        else:
            api.ledger.VoidRedemption(
                ledger_pb2.VoidRedemptionRequest(hold_id=hold.hold_id, idempotency_key=secrets.token_hex(8)),
                metadata=md,
            )
        api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member), metadata=md)
        api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id=member, page_size=50), metadata=md)
