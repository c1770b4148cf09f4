"""The basic earn/redeem flow over gRPC on both backends."""

from loyalty.v1 import ledger_pb2
from tests.grpc_helpers import balance, earn, enroll


def test_enroll_earn_redeem_statement(api):
    enroll(api, "m-1")
    earned = earn(api, "m-1", 2599)
    assert earned.transaction.points == 25
    assert [(b.points) for b in earned.transaction.breakdown] == [25]
    redeemed = api.ledger.Redeem(
        ledger_pb2.RedeemRequest(member_id="m-1", idempotency_key="r-1", points=10), metadata=api.metadata
    )
    assert redeemed.balance.available == 15
    assert balance(api, "m-1").posted == 15
