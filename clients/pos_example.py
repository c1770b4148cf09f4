"""A point-of-sale walkthrough of the ledger API, built on the SDK (`loyalty.client`).

    python -m clients.pos_example --target 127.0.0.1:50051 --key KEY [--member m-demo]

With a `pos` (or `admin`) key it enrolls the member (or finds it enrolled),
earns points on a new order, redeems some of them, tries to redeem more than
the member has (and prints the ledger's refusal), then prints the statement.
Exits 0 when every step behaved as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable, Sequence

from loyalty.client import LedgerApiError, LedgerClient
from loyalty.v1 import common_pb2

TILL = "store-1/till-1"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m clients.pos_example", description=(__doc__ or "").splitlines()[0])
    cli.add_argument("--target", default="127.0.0.1:50051", help="server HOST:PORT (default 127.0.0.1:50051)")
    cli.add_argument("--key", required=True, help="a pos or admin API key")
    cli.add_argument("--member", default="m-demo", help="member id (default m-demo)")
    cli.add_argument("--currency", default="USD", help="the program's currency (default USD)")
    cli.add_argument("--amount", type=int, default=2599, help="order amount in minor units (default 2599)")
    return cli


def statement_table(transactions: Iterable[common_pb2.Transaction]) -> str:
    """The statement as a fixed-width text table, newest first."""
    header = ("when (UTC)", "kind", "points", "balance", "order", "transaction")
    rows = [
        (
            tx.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            common_pb2.TransactionKind.Name(tx.kind).removeprefix("TRANSACTION_KIND_"),
            f"{tx.points:+d}",
            str(tx.balance_after),
            tx.order_id or "-",
            tx.transaction_id,
        )
        for tx in transactions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3}  # numbers

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def run(client: LedgerClient, member_id: str, currency: str, amount: int) -> int:
    enrolled = client.enroll_member(member_id=member_id)
    print(f"member {member_id}: {'enrolled' if enrolled.created else 'already enrolled'}")

    order_id = f"pos-order-{uuid.uuid4().hex[:10]}"
    order = common_pb2.Order(
        order_id=order_id,
        channel=common_pb2.CHANNEL_POS,
        amount=amount,
        currency=currency,
        lines=[common_pb2.OrderLine(sku="SKU-1", category="demo", quantity=1, amount=amount)],
        store_id=TILL,
    )
    earned = client.earn(member_id=member_id, order=order)
    sources = ", ".join(
        f"{common_pb2.PointsSource.Name(b.source).removeprefix('POINTS_SOURCE_').lower()} {b.points}"
        for b in earned.transaction.breakdown
    )
    print(f"earned {earned.transaction.points} points on {order_id} ({sources}); available {earned.balance.available}")

    spend = max(1, earned.balance.available // 2)
    redeemed = client.redeem(
        member_id=member_id, points=spend, order_id=order_id, channel=common_pb2.CHANNEL_POS, store_id=TILL
    )
    print(f"redeemed {spend} points; available {redeemed.balance.available}")

    too_many = redeemed.balance.available + 1000
    try:
        client.redeem(member_id=member_id, points=too_many, channel=common_pb2.CHANNEL_POS, store_id=TILL)
    except LedgerApiError as refusal:
        print(f"redeeming {too_many} points was refused: {refusal.code.name} {refusal.reason} ({refusal.message})")
        if refusal.reason != "INSUFFICIENT_POINTS":
            return 1
    else:
        print(f"error: redeeming {too_many} points was accepted", file=sys.stderr)
        return 1

    print()
    print(f"statement of {member_id}:")
    print(statement_table(client.iter_transactions(member_id=member_id, page_size=100)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with LedgerClient(args.target, args.key) as client:
            return run(client, args.member, args.currency, args.amount)
    except LedgerApiError as error:
        print(f"error: {error}", file=sys.stderr)
        for field, description in error.field_violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
