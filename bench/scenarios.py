"""The bench scenarios: each is an async function doing one logical operation with grpc.aio."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc

CATEGORIES = ("shoes", "apparel", "beauty", "home", "toys", "gift_cards")


@dataclass
class Context:
    metadata: tuple
    members: int
    hot_member: str
    member_prefix: str

    @classmethod
    def from_setup(cls, setup: dict) -> "Context":
        """What `bench seed` wrote (its setup JSON): the seeded members and the key to call with."""
        return cls(
            metadata=(("authorization", f"Bearer {setup['key']}"),),
            members=setup["members"],
            hot_member=setup["hot_member"],
            member_prefix=setup["member_prefix"],
        )


def random_member(ctx: Context) -> str:
    return f"{ctx.member_prefix}{random.randrange(ctx.members)}"


def random_order() -> common_pb2.Order:
    lines = [
        common_pb2.OrderLine(
            sku=f"SKU-{random.randrange(5000)}",
            category=random.choice(CATEGORIES),
            quantity=random.randint(1, 3),
            amount=random.randint(199, 19999),
        )
        for _ in range(random.randint(1, 5))
    ]
    return common_pb2.Order(
        order_id=f"bench-{secrets.token_hex(10)}",
        channel=common_pb2.CHANNEL_POS,
        amount=sum(line.amount for line in lines),
        currency="USD",
        lines=lines,
        store_id=f"store-{random.randrange(50)}",
    )


async def health(channel, ctx: Context) -> None:
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)


def earn_request(ctx: Context) -> ledger_pb2.EarnRequest:
    """A new order for a random member, with a key of its own."""
    return ledger_pb2.EarnRequest(
        member_id=random_member(ctx), idempotency_key=secrets.token_hex(12), order=random_order()
    )


def redeem_hot_request(ctx: Context) -> ledger_pb2.RedeemRequest:
    """One point from the hot member, with a key of its own."""
    return ledger_pb2.RedeemRequest(member_id=ctx.hot_member, idempotency_key=secrets.token_hex(12), points=1)


async def earn(channel, ctx: Context) -> None:
    await ledger_pb2_grpc.LedgerStub(channel).Earn(earn_request(ctx), metadata=ctx.metadata, timeout=10)


async def redeem_hot(channel, ctx: Context) -> None:
    await ledger_pb2_grpc.LedgerStub(channel).Redeem(redeem_hot_request(ctx), metadata=ctx.metadata, timeout=10)


async def till(channel, ctx: Context) -> None:
    stub = ledger_pb2_grpc.LedgerStub(channel)
    member = random_member(ctx)
    hold = await stub.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(member_id=member, idempotency_key=secrets.token_hex(12), points=1),
        metadata=ctx.metadata,
        timeout=10,
    )
    await stub.CaptureRedemption(
        ledger_pb2.CaptureRedemptionRequest(hold_id=hold.hold.hold_id, idempotency_key=secrets.token_hex(12)),
        metadata=ctx.metadata,
        timeout=10,
    )


async def get_member(channel, ctx: Context) -> None:
    await ledger_pb2_grpc.LedgerStub(channel).GetMember(
        ledger_pb2.GetMemberRequest(member_id=random_member(ctx)), metadata=ctx.metadata, timeout=10
    )


async def statement(channel, ctx: Context) -> None:
    await ledger_pb2_grpc.LedgerStub(channel).ListTransactions(
        ledger_pb2.ListTransactionsRequest(member_id=random_member(ctx), page_size=50), metadata=ctx.metadata, timeout=10
    )


SCENARIOS = {
    "health": health,
    "earn": earn,
    "redeem-hot": redeem_hot,
    "till": till,
    "get-member": get_member,
    "statement": statement,
}
