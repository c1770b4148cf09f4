"""Lot reads: a member's open lots, what a transaction consumed, the balance's facts and expiring points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, BindParameter, Connection, bindparam, case, func, or_, select

from ledger.domain.expiry import LotTotals
from ledger.domain.holds import HoldState
from ledger.domain.lots import Consumption, Lot
from ledger.domain.program import ExpiryMode
from ledger.store.postgres import prefetch
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import holds, lot_consumptions, lots, programs


def past_expiry(at):
    """ledger.domain.lots.Lot.past_expiry in SQL, for lots rows at `at` (stored microseconds, or
    a bind parameter): the expiry job's sweep finds its members by it (ledger.store.expiry) and
    the live balance counts its points as expired (BALANCE_FACTS). The job's writer on
    PostgreSQL states it once more inside its own statement (ledger.store.postgres.expiry_writes);
    tests/store/test_lot_totals_in_sql.py holds these to the domain's rule."""
    return lots.c.expires_at.is_not(None) & (lots.c.expires_at <= at)


def pending_lot(at):
    """ledger.domain.lots.Lot.pending in SQL: not available yet, and not past its expiry."""
    return (lots.c.available_at > at) & or_(lots.c.expires_at.is_(None), lots.c.expires_at > at)


# A debit takes lots in ledger.domain.lots.consumption_order, and rarely more than a few: the
# read hands it the first FIRST_LOTS open lots in that order (the database sorts them, with
# the tie-break on lot_id in byte order as Python compares it), and all of them only when
# those do not cover the debit. A member with thousands of open lots (a small earn per
# visit, for years) no longer costs every Redeem thousands of rows.
FIRST_LOTS = 32
# The instant the reads are made at, in stored microseconds: one parameter for every read a
# member's operation prefetches (here and BALANCE_FACTS below).
_at: BindParameter[int] = bindparam("at", type_=BigInteger)

_all_open_lots = select(lots.c.lot_id, lots.c.remaining, lots.c.available_at, lots.c.expires_at, lots.c.order_id).where(
    lots.c.program_id == bindparam("program_id"), lots.c.member_id == bindparam("member_id"), lots.c.remaining > 0
)
_lot = _all_open_lots.where(lots.c.lot_id == bindparam("lot_id"))


def _in_consumption_order(lot_id_in_byte_order):
    return _all_open_lots.order_by(
        past_expiry(_at),
        lots.c.available_at > _at,
        lots.c.expires_at.is_(None),
        lots.c.expires_at,
        lots.c.available_at,
        lot_id_in_byte_order,
    ).limit(FIRST_LOTS)


_first_open_lots = {
    "postgresql": _in_consumption_order(lots.c.lot_id.collate("C")),
    "sqlite": _in_consumption_order(lots.c.lot_id),  # SQLite compares text by its bytes
}
OPEN_LOTS = prefetch.Read("open_lots", _first_open_lots["postgresql"], ("program_id", "member_id", "at"), many=True)


def _lots(rows) -> list[Lot]:
    return [
        Lot(
            row.lot_id,
            row.remaining,
            from_micros(row.available_at),
            from_micros(row.expires_at) if row.expires_at is not None else None,
            row.order_id or "",
        )
        for row in rows
    ]


def first_open_lots(conn: Connection, program_id: str, member_id: str, at: datetime) -> tuple[list[Lot], bool]:
    """The member's first FIRST_LOTS open lots in consumption order at `at`, and whether that
    is all of them."""
    params = {"program_id": program_id, "member_id": member_id, "at": to_micros(at)}
    if conn.dialect.name == "postgresql":
        rows = prefetch.read(conn, OPEN_LOTS, params)
    else:
        rows = conn.execute(_first_open_lots[conn.dialect.name], params).all()
    return _lots(rows), len(rows) < FIRST_LOTS


def open_lot(conn: Connection, program_id: str, member_id: str, lot_id: str) -> Lot | None:
    found = _lots(conn.execute(_lot, {"program_id": program_id, "member_id": member_id, "lot_id": lot_id}).all())
    return found[0] if found else None


def open_lots(conn: Connection, program_id: str, member_id: str) -> list[Lot]:
    """Every open lot of the member, in no particular order."""
    return _lots(conn.execute(_all_open_lots, {"program_id": program_id, "member_id": member_id}).all())


def consumptions_of(
    conn: Connection, program_id: str, member_id: str, transaction_id: str, now: datetime
) -> list[Consumption]:
    """The still-valid lots a debit consumed, latest-expiring first (the order they are given
    back in). Lots that expired meanwhile are left out: their points come back as a new lot."""
    c = lot_consumptions
    rows = conn.execute(
        select(c.c.lot_id, c.c.points, lots.c.expires_at)
        .join(lots, (lots.c.program_id == c.c.program_id) & (lots.c.member_id == c.c.member_id) & (lots.c.lot_id == c.c.lot_id))
        .where(
            c.c.program_id == program_id,
            c.c.member_id == member_id,
            c.c.transaction_id == transaction_id,
            c.c.points > 0,
        )
    ).all()
    at = to_micros(now)
    valid = [row for row in rows if row.expires_at is None or row.expires_at > at]
    valid.sort(key=lambda row: (-(row.expires_at if row.expires_at is not None else 2**62), row.lot_id))
    return [Consumption(row.lot_id, row.points) for row in valid]


# Read by every earn, spend and balance query: built once, so SQLAlchemy finds them
# compiled without rebuilding them.
_member = (lots.c.program_id == bindparam("program_id")) & (lots.c.member_id == bindparam("member_id"))
# One pass over the member's open lots (the primary key's prefix) sums all three.
_lot_sums = (
    select(
        func.coalesce(func.sum(case((pending_lot(_at), lots.c.remaining), else_=0)), 0).label("pending"),
        func.coalesce(func.sum(case((past_expiry(_at), lots.c.remaining), else_=0)), 0).label("past_expiry"),
        func.coalesce(func.sum(lots.c.remaining), 0).label("total"),
    )
    .where(_member, lots.c.remaining > 0)
    .subquery("lot_sums")
)
_held = (
    select(func.coalesce(func.sum(holds.c.points), 0))
    .where(
        holds.c.program_id == bindparam("program_id"),
        holds.c.member_id == bindparam("member_id"),
        holds.c.state == HoldState.OPEN.value,
        holds.c.expires_at > _at,
    )
    .scalar_subquery()
)
# The program's expiry policy (the INACTIVITY rule's other input is the member's row, which
# every caller holds): joined, one primary-key lookup.
_balance_facts = select(
    _lot_sums.c.pending,
    _lot_sums.c.past_expiry,
    _lot_sums.c.total,
    _held.label("held"),
    programs.c.expiry_mode,
    programs.c.expiry_days,
).select_from(_lot_sums.outerjoin(programs, programs.c.program_id == bindparam("program_id")))
BALANCE_FACTS = prefetch.Read("balance_facts", _balance_facts, ("program_id", "member_id", "at"))
_expiring = (
    select(lots.c.expires_at, func.sum(lots.c.remaining).label("points"))
    .where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        lots.c.remaining > 0,
        lots.c.expires_at > bindparam("start"),
        lots.c.expires_at <= bindparam("end"),
    )
    .group_by(lots.c.expires_at)
    .order_by(lots.c.expires_at)
)


_pending = (
    select(lots.c.available_at, func.sum(lots.c.remaining).label("points"))
    .where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        lots.c.remaining > 0,
        pending_lot(_at),
    )
    .group_by(lots.c.available_at)
    .order_by(lots.c.available_at)
)
PENDING = prefetch.Read("pending", _pending, ("program_id", "member_id", "at"), many=True)


def pending_at(conn: Connection, program_id: str, member_id: str, at: datetime) -> list[tuple[datetime, int]]:
    """The points still pending at `at`, per instant they become available, soonest first
    (their sum is the live balance's pending)."""
    params = {"program_id": program_id, "member_id": member_id, "at": to_micros(at)}
    rows = sorted(prefetch.read(conn, PENDING, params), key=lambda row: row.available_at)
    return [(from_micros(row.available_at), int(row.points)) for row in rows]


@dataclass(frozen=True)
class BalanceFacts:
    """What the live balance is computed from (ledger.domain.expiry.live_balance)."""

    lots: LotTotals
    held: int
    expiry_mode: ExpiryMode
    expiry_days: int


def balance_facts(conn: Connection, program_id: str, member_id: str, now: datetime) -> BalanceFacts:
    """The member's open lots summed at `now` (pending, past their expiry, all), the points of
    open holds not lapsed by then, and the program's expiry policy, in one statement."""
    params = {"program_id": program_id, "member_id": member_id, "at": to_micros(now)}
    row = prefetch.read(conn, BALANCE_FACTS, params)
    return BalanceFacts(
        LotTotals(int(row.pending), int(row.past_expiry), int(row.total)),
        int(row.held),
        ExpiryMode(row.expiry_mode) if row.expiry_mode is not None else ExpiryMode.NONE,
        int(row.expiry_days or 0),
    )


EXPIRING = prefetch.Read("expiring", _expiring, ("program_id", "member_id", "start", "end"), many=True)


def expiring_between(
    conn: Connection, program_id: str, member_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """Points still to expire after start up to end, per expiry instant, soonest first."""
    params = {"program_id": program_id, "member_id": member_id, "start": to_micros(start), "end": to_micros(end)}
    rows = sorted(prefetch.read(conn, EXPIRING, params), key=lambda row: row.expires_at)
    return [(from_micros(row.expires_at), int(row.points)) for row in rows]
