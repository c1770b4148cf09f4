"""Reward catalog rows and their stock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from ledger.domain.rewards import RewardRecord
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import rewards


def _record(row) -> RewardRecord:
    return RewardRecord(
        row.reward_id,
        row.name,
        row.points_price,
        from_micros(row.start_at) if row.start_at is not None else None,
        from_micros(row.end_at) if row.end_at is not None else None,
        row.stock,
        row.redeemed,
    )


def insert_reward(conn: Connection, program_id: str, reward: RewardRecord, now: datetime) -> None:
    conn.execute(
        insert(rewards).values(
            program_id=program_id,
            reward_id=reward.reward_id,
            name=reward.name,
            points_price=reward.points_price,
            start_at=to_micros(reward.start) if reward.start else None,
            end_at=to_micros(reward.end) if reward.end else None,
            stock=reward.stock,
            redeemed=0,
            created_at=to_micros(now),
        )
    )


def get(conn: Connection, program_id: str, reward_id: str, *, lock: bool = False) -> RewardRecord | None:
    query = select(rewards).where(rewards.c.program_id == program_id, rewards.c.reward_id == reward_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _record(row) if row else None


def page(conn: Connection, program_id: str, after: str | None, limit: int) -> list[RewardRecord]:
    query = select(rewards).where(rewards.c.program_id == program_id)
    if after:
        query = query.where(rewards.c.reward_id > after)
    return [_record(r) for r in conn.execute(query.order_by(rewards.c.reward_id).limit(limit))]


def take_one(conn: Connection, program_id: str, reward_id: str) -> None:
    """One unit redeemed (the caller holds the reward's row lock and checked the stock)."""
    conn.execute(
        update(rewards)
        .where(rewards.c.program_id == program_id, rewards.c.reward_id == reward_id)
        .values(
            redeemed=rewards.c.redeemed + 1,
            stock=rewards.c.stock - 1,
        )
    )
