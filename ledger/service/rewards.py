"""Use cases for the reward catalog: create and list rewards."""

from __future__ import annotations

from ledger.store.database import Database

from ledger.domain import credentials, errors
from ledger.domain.errors import FieldViolation
from ledger.domain.limits import MAX_POINTS_PER_REQUEST
from ledger.service import clock, idempotent, lookups, page_tokens
from ledger.store import unit_of_work
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import rewards as store
from ledger.domain.rewards import RewardRecord


def create_reward(db: Database, caller: Caller, reward: RewardRecord, mutation: Mutation | None = None) -> RewardRecord:
    """mutation: the request under its request_id (AIP-155): a retry answers the first response
    and creates nothing; None creates a reward on every call."""
    problems = []
    if not reward.name.strip() or len(reward.name) > 128:
        problems.append(FieldViolation("reward.name", "is required (at most 128 characters)"))
    if not 0 < reward.points_price <= MAX_POINTS_PER_REQUEST:
        problems.append(FieldViolation("reward.points_price", f"must be between 1 and {MAX_POINTS_PER_REQUEST}"))
    if reward.stock is not None and not 0 <= reward.stock <= 10**12:
        problems.append(FieldViolation("reward.stock", "must be between 0 and 10^12 (or unlimited_stock)"))
    if reward.start and reward.end and reward.end <= reward.start:
        problems.append(FieldViolation("reward.end_time", "must be after start_time"))
    if problems:
        raise errors.invalid(problems)
    created = RewardRecord(
        credentials.new_id("rwd"), reward.name.strip(), reward.points_price, reward.start, reward.end, reward.stock, 0
    )

    def apply(conn, _rules: object) -> RewardRecord:
        store.insert_reward(conn, caller.program_id, created, clock.now())
        return created

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.program_rules(conn, caller.program_id),
        apply=apply,
        decode=RewardRecord.from_json,
    )


def list_rewards(db: Database, caller: Caller, page_token: str, page_size: int) -> tuple[list[RewardRecord], str]:
    """A page of the catalog in id order and the next page's token (signed, bound to the
    program; it holds the last reward id served)."""
    pages = page_tokens.pages(db, "ListRewards", caller.program_id)
    after = pages.position(page_token)
    found = unit_of_work.run(db, lambda conn: store.page(conn, caller.program_id, after, page_size + 1), read_only=True)
    page = found[:page_size]
    return page, pages.token_after(page[-1].reward_id) if len(found) > page_size else ""
