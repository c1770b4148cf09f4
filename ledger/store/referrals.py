"""Referral rows: attribution, decision, reward and reversal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from ledger.store.postgres import prefetch
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import referrals


@dataclass(frozen=True)
class ReferralRecord:
    referee_id: str
    referrer_id: str
    attributed_at: datetime
    decided_at: datetime | None
    decision: str
    qualifying_order_id: str
    reward_transaction_id: str
    referrer_points: int
    referee_points: int
    matures_at: datetime | None
    reversal_transaction_id: str


def _record(row) -> ReferralRecord:
    return ReferralRecord(
        row.referee_id,
        row.referrer_id,
        from_micros(row.attributed_at),
        from_micros(row.decided_at) if row.decided_at is not None else None,
        row.decision,
        row.qualifying_order_id or "",
        row.reward_transaction_id or "",
        row.referrer_points,
        row.referee_points,
        from_micros(row.matures_at) if row.matures_at is not None else None,
        row.reversal_transaction_id or "",
    )


# Read by every earn: built once, so SQLAlchemy finds it compiled without rebuilding it.
_of_referee = select(referrals).where(
    referrals.c.program_id == bindparam("program_id"), referrals.c.referee_id == bindparam("referee_id")
)


OF_REFEREE = prefetch.Read("referral_of_referee", _of_referee, ("program_id", "referee_id"))


def of_referee(conn: Connection, program_id: str, referee_id: str) -> ReferralRecord | None:
    row = prefetch.read(conn, OF_REFEREE, {"program_id": program_id, "referee_id": referee_id})
    return _record(row) if row else None


def referrer_to_decide(conn: Connection, program_id: str, referee_id: str) -> str | None:
    """The referrer of the member's referral when it is still to be decided, else None (as
    fetched ahead by prefetch.load_many, whose row stays for the Earn)."""
    row = prefetch.peek(conn, OF_REFEREE, {"program_id": program_id, "referee_id": referee_id})
    return row.referrer_id if row is not None and row.decided_at is None else None


def attribute(conn: Connection, program_id: str, referee_id: str, referrer_id: str, now: datetime) -> None:
    conn.execute(
        insert(referrals).values(
            program_id=program_id,
            referee_id=referee_id,
            referrer_id=referrer_id,
            attributed_at=to_micros(now),
            decision=f"attributed to {referrer_id}",
            referrer_points=0,
            referee_points=0,
        )
    )


def decide(
    conn: Connection,
    program_id: str,
    referee_id: str,
    now: datetime,
    decision: str,
    order_id: str,
    reward_transaction_id: str = "",
    referrer_points: int = 0,
    referee_points: int = 0,
    matures_at: datetime | None = None,
) -> None:
    conn.execute(
        update(referrals)
        .where(referrals.c.program_id == program_id, referrals.c.referee_id == referee_id)
        .values(
            decided_at=to_micros(now),
            decision=decision,
            qualifying_order_id=order_id,
            reward_transaction_id=reward_transaction_id or None,
            referrer_points=referrer_points,
            referee_points=referee_points,
            matures_at=to_micros(matures_at) if matures_at else None,
        )
    )


def mark_reversed(conn: Connection, program_id: str, referee_id: str, reversal_id: str, decision: str) -> None:
    conn.execute(
        update(referrals)
        .where(referrals.c.program_id == program_id, referrals.c.referee_id == referee_id)
        .values(reversal_transaction_id=reversal_id, decision=decision)
    )


def rewarded_since(conn: Connection, program_id: str, referrer_id: str, since: datetime) -> int:
    """Referrals of a referrer rewarded (and not reversed) since an instant: the cap's count."""
    return conn.execute(
        select(func.count()).where(
            referrals.c.program_id == program_id,
            referrals.c.referrer_id == referrer_id,
            referrals.c.reward_transaction_id.is_not(None),
            referrals.c.reversal_transaction_id.is_(None),
            referrals.c.decided_at > to_micros(since),
        )
    ).scalar_one()


def of_reward(conn: Connection, program_id: str, transaction_id: str) -> ReferralRecord | None:
    row = conn.execute(
        select(referrals).where(
            referrals.c.program_id == program_id, referrals.c.reward_transaction_id == transaction_id
        )
    ).first()
    return _record(row) if row else None


def of_order(conn: Connection, program_id: str, order_id: str) -> ReferralRecord | None:
    row = conn.execute(
        select(referrals).where(referrals.c.program_id == program_id, referrals.c.qualifying_order_id == order_id)
    ).first()
    return _record(row) if row else None


def page(conn: Connection, program_id: str, referrer_id: str, after: str | None, limit: int) -> list[ReferralRecord]:
    query = select(referrals).where(referrals.c.program_id == program_id, referrals.c.referrer_id == referrer_id)
    if after:
        query = query.where(referrals.c.referee_id > after)
    return [_record(r) for r in conn.execute(query.order_by(referrals.c.referee_id).limit(limit))]


def report(conn: Connection, program_id: str, now: datetime) -> dict[str, int]:
    # qualified: rewarded, pending or matured; rewarded: matured (the return window passed).
    r = referrals.c
    rewarded = r.reward_transaction_id.is_not(None) & r.reversal_transaction_id.is_(None)
    at = to_micros(now)

    def count(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = conn.execute(
        select(
            func.count(),
            count(rewarded),
            count(rewarded & (r.matures_at <= at)),
            count(r.reversal_transaction_id.is_not(None)),
            count(r.decided_at.is_not(None) & r.reward_transaction_id.is_(None)),
            func.coalesce(func.sum(case((rewarded, r.referrer_points + r.referee_points), else_=0)), 0),
        ).where(r.program_id == program_id)
    ).one()
    keys = ("attributed", "qualified", "rewarded", "reversed", "not_rewarded", "points_awarded")
    return {key: int(value) for key, value in zip(keys, row)}
