"""Tables of event delivery (migration 0016): webhooks, their retry queue and attempt log,
and the NATS relay's positions.

The sender (ledger.delivery) reads a webhook's new events after its cursor and its due
retries, sends them, and records what happened in one transaction: the attempts, the
retry queue's rows, and the cursor, which moves only if the webhook's version is still
the one it read (RedeliverEvents rewinds a cursor by moving the version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from ledger.domain.webhooks import FAILED, PENDING
from ledger.store.tables import event_heads, events, relay_positions, webhook_attempts, webhook_deliveries, webhooks


@dataclass(frozen=True)
class WebhookRow:
    webhook_id: str
    program_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    secret: str
    created_at: int
    cursor: int
    version: int


@dataclass(frozen=True)
class QueuedRow:
    """An event of a webhook waiting for a retry, or failed for good."""

    position: int
    member_id: str
    event_type: str
    state: str
    attempts: int
    since: int
    next_attempt_at: int


@dataclass(frozen=True)
class AttemptRow:
    webhook_id: str
    attempted_at: int
    position: int
    event_type: str
    attempt: int
    http_status: int
    latency_ms: int
    error: str
    outcome: str


def _webhook(row) -> WebhookRow:
    return WebhookRow(
        row.webhook_id,
        row.program_id,
        row.url,
        tuple(json.loads(row.event_types)),
        row.description,
        row.secret,
        row.created_at,
        row.cursor,
        row.version,
    )


def insert_webhook(conn: Connection, row: WebhookRow) -> None:
    conn.execute(
        insert(webhooks).values(
            webhook_id=row.webhook_id,
            program_id=row.program_id,
            url=row.url,
            event_types=json.dumps(list(row.event_types)),
            description=row.description,
            secret=row.secret,
            created_at=row.created_at,
            cursor=row.cursor,
            version=row.version,
        )
    )


def get_webhook(conn: Connection, program_id: str, webhook_id: str) -> WebhookRow | None:
    row = conn.execute(
        select(webhooks).where(webhooks.c.webhook_id == webhook_id, webhooks.c.program_id == program_id)
    ).one_or_none()
    return _webhook(row) if row is not None else None


def program_webhooks(conn: Connection, program_id: str) -> list[WebhookRow]:
    rows = conn.execute(
        select(webhooks).where(webhooks.c.program_id == program_id).order_by(webhooks.c.created_at, webhooks.c.webhook_id)
    ).all()
    return [_webhook(row) for row in rows]


def all_webhooks(conn: Connection) -> list[WebhookRow]:
    return [_webhook(row) for row in conn.execute(select(webhooks).order_by(webhooks.c.webhook_id)).all()]


def any_webhook(conn: Connection) -> bool:
    return conn.execute(select(webhooks.c.webhook_id).limit(1)).first() is not None


def reload(conn: Connection, webhook_id: str) -> WebhookRow | None:
    row = conn.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id)).one_or_none()
    return _webhook(row) if row is not None else None


def delete_webhook(conn: Connection, webhook_id: str) -> None:
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))


def counts(conn: Connection, webhook_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """{webhook_id: {state: rows}} of the retry queue."""
    if not webhook_ids:
        return {}
    rows = conn.execute(
        select(webhook_deliveries.c.webhook_id, webhook_deliveries.c.state, func.count())
        .where(webhook_deliveries.c.webhook_id.in_(list(webhook_ids)))
        .group_by(webhook_deliveries.c.webhook_id, webhook_deliveries.c.state)
    ).all()
    found: dict[str, dict[str, int]] = {}
    for webhook_id, state, count in rows:
        found.setdefault(webhook_id, {})[state] = count
    return found


def move_cursor(conn: Connection, webhook_id: str, version: int, cursor: int) -> bool:
    """Moves the cursor if the webhook is still at `version` (False: deleted or rewound)."""
    done = conn.execute(
        update(webhooks)
        .where(webhooks.c.webhook_id == webhook_id, webhooks.c.version == version)
        .values(cursor=cursor)
    )
    return done.rowcount == 1


def rewind(conn: Connection, webhook_id: str, cursor: int) -> None:
    """Every event after `cursor` is sent again: the queue's rows past it go (they will be
    taken in again), and the version moves so a sender's batch read before cannot land."""
    conn.execute(
        delete(webhook_deliveries).where(
            webhook_deliveries.c.webhook_id == webhook_id, webhook_deliveries.c.position > cursor
        )
    )
    conn.execute(
        update(webhooks).where(webhooks.c.webhook_id == webhook_id).values(cursor=cursor, version=webhooks.c.version + 1)
    )


def _queued(row) -> QueuedRow:
    return QueuedRow(row.position, row.member_id, row.event_type, row.state, row.attempts, row.since, row.next_attempt_at)


def due_heads(conn: Connection, webhook_id: str, now: int, limit: int) -> list[QueuedRow]:
    """The pending events whose retry is due and that no earlier pending event of their
    member waits before (a member's events go out in order)."""
    earlier = webhook_deliveries.alias("earlier")
    rows = conn.execute(
        select(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.state == PENDING,
            webhook_deliveries.c.next_attempt_at <= now,
            ~select(earlier.c.position)
            .where(
                earlier.c.member_id == webhook_deliveries.c.member_id,
                earlier.c.webhook_id == webhook_id,
                earlier.c.state == PENDING,
                earlier.c.position < webhook_deliveries.c.position,
            )
            .exists(),
        )
        .order_by(webhook_deliveries.c.position)
        .limit(limit)
    ).all()
    return [_queued(row) for row in rows]


def members_waiting(conn: Connection, webhook_id: str, member_ids: Iterable[str]) -> set[str]:
    """Of member_ids, those with a pending event at this webhook."""
    wanted = sorted(set(member_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(
            conn.execute(
                select(webhook_deliveries.c.member_id).distinct().where(
                    webhook_deliveries.c.member_id.in_(wanted[start : start + 500]),
                    webhook_deliveries.c.webhook_id == webhook_id,
                    webhook_deliveries.c.state == PENDING,
                )
            ).scalars()
        )
    return found


def queued(conn: Connection, webhook_id: str, positions: Sequence[int]) -> dict[int, QueuedRow]:
    if not positions:
        return {}
    rows = conn.execute(
        select(webhook_deliveries).where(
            webhook_deliveries.c.webhook_id == webhook_id, webhook_deliveries.c.position.in_(list(positions))
        )
    ).all()
    return {row.position: _queued(row) for row in rows}


def put_queued(conn: Connection, webhook_id: str, rows: Sequence[QueuedRow]) -> None:
    """Inserts the rows (new events entering the retry queue)."""
    if rows:
        conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "webhook_id": webhook_id,
                    "position": r.position,
                    "member_id": r.member_id,
                    "event_type": r.event_type,
                    "state": r.state,
                    "attempts": r.attempts,
                    "since": r.since,
                    "next_attempt_at": r.next_attempt_at,
                }
                for r in rows
            ],
        )


def update_queued(conn: Connection, webhook_id: str, row: QueuedRow, expected_attempts: int) -> bool:
    """Writes a retried row's new state if nobody changed it meanwhile (a redelivery)."""
    done = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.position == row.position,
            webhook_deliveries.c.attempts == expected_attempts,
        )
        .values(state=row.state, attempts=row.attempts, next_attempt_at=row.next_attempt_at)
    )
    return done.rowcount == 1


def remove_queued(conn: Connection, webhook_id: str, positions: Sequence[int]) -> None:
    if positions:
        conn.execute(
            delete(webhook_deliveries).where(
                webhook_deliveries.c.webhook_id == webhook_id, webhook_deliveries.c.position.in_(list(positions))
            )
        )


def remove_queued_if(conn: Connection, webhook_id: str, position: int, attempts: int) -> None:
    """Removes a delivered row, unless it was changed meanwhile (a redelivery)."""
    conn.execute(
        delete(webhook_deliveries).where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.position == position,
            webhook_deliveries.c.attempts == attempts,
            webhook_deliveries.c.state == PENDING,
        )
    )


def requeue_failed(conn: Connection, webhook_id: str, positions: Sequence[int], now: int) -> int:
    """Failed deliveries pending again, due now, with a fresh retry window."""
    if not positions:
        return 0
    done = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.position.in_(list(positions)),
            webhook_deliveries.c.state == FAILED,
        )
        .values(state=PENDING, since=now, next_attempt_at=now)
    )
    return done.rowcount


def hurry(conn: Connection, webhook_id: str, now: int) -> None:
    """Every pending retry due now (the endpoint answered again: no need to wait out the backoff)."""
    conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.state == PENDING,
            webhook_deliveries.c.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )


def add_attempts(conn: Connection, rows: Sequence[AttemptRow]) -> None:
    if rows:
        conn.execute(insert(webhook_attempts), [r.__dict__ for r in rows])


def attempts_page(
    conn: Connection, webhook_id: str, before: tuple[int, int] | None, limit: int, failed_only: bool
) -> list[AttemptRow]:
    """Attempts newest first, before (attempted_at, position) when given."""
    statement = select(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id)
    if before is not None:
        at, position = before
        statement = statement.where(
            (webhook_attempts.c.attempted_at < at)
            | and_(webhook_attempts.c.attempted_at == at, webhook_attempts.c.position < position)
        )
    if failed_only:
        statement = statement.where(webhook_attempts.c.outcome == FAILED)
    rows = conn.execute(
        statement.order_by(webhook_attempts.c.attempted_at.desc(), webhook_attempts.c.position.desc()).limit(limit)
    ).all()
    return [AttemptRow(**row._mapping) for row in rows]


def prune_attempts(conn: Connection, webhook_id: str, before: int) -> int:
    return conn.execute(
        delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id, webhook_attempts.c.attempted_at < before)
    ).rowcount


def oldest_waiting(conn: Connection, row: WebhookRow) -> int | None:
    """created_at of the oldest event the webhook has not delivered yet (pending in its
    queue, or after its cursor), None when there is none."""
    first_pending = conn.execute(
        select(func.min(webhook_deliveries.c.position)).where(
            webhook_deliveries.c.webhook_id == row.webhook_id, webhook_deliveries.c.state == PENDING
        )
    ).scalar_one_or_none()
    position = row.cursor + 1 if first_pending is None else min(first_pending, row.cursor + 1)
    return conn.execute(
        select(events.c.created_at)
        .where(events.c.program_id == row.program_id, events.c.position >= position)
        .order_by(events.c.position)
        .limit(1)
    ).scalar_one_or_none()


# -- the NATS relay ---------------------------------------------------------------------------


def relay_positions_of(conn: Connection) -> dict[str, int]:
    return {row.program_id: row.position for row in conn.execute(select(relay_positions)).all()}


def set_relay_position(conn: Connection, program_id: str, position: int, now: int) -> None:
    done = conn.execute(
        update(relay_positions).where(relay_positions.c.program_id == program_id).values(position=position, updated_at=now)
    )
    if done.rowcount == 0:
        conn.execute(insert(relay_positions).values(program_id=program_id, position=position, updated_at=now))


def oldest_after(conn: Connection, program_id: str, position: int) -> int | None:
    """created_at of the program's first event after position."""
    return conn.execute(
        select(events.c.created_at)
        .where(events.c.program_id == program_id, events.c.position > position)
        .order_by(events.c.position)
        .limit(1)
    ).scalar_one_or_none()


def relay_behind(conn: Connection) -> list[tuple[str, int, int]]:
    """(program_id, relay position, event head) of every program with events the relay has
    not had acknowledged, in one statement."""
    position = func.coalesce(relay_positions.c.position, 0)
    rows = conn.execute(
        select(event_heads.c.program_id, position.label("after"), event_heads.c.last_position)
        .select_from(event_heads.outerjoin(relay_positions, relay_positions.c.program_id == event_heads.c.program_id))
        .where(event_heads.c.last_position > position)
        .order_by(event_heads.c.program_id)
    ).all()
    return [(row.program_id, row.after, row.last_position) for row in rows]
