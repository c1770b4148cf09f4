"""Use cases of webhooks: register, list, delete, look at deliveries, redeliver (the
Programs RPCs), and the sender's reads and writes (ledger.delivery.webhooks), each one
unit of work.

A webhook starts after the program's last committed event (or after a given cursor) and
is given every later event of its types, in commit order per member: a member's event
that waits for a retry holds that member's later events back, other members' go on.
"""

from __future__ import annotations

import base64
import secrets
import socket
from dataclasses import dataclass, field

from ledger import settings
from ledger.domain import credentials, errors
from ledger.domain import events as event_rules
from ledger.domain import webhooks as rules
from ledger.domain.errors import Category, FieldViolation, LedgerError
from ledger.domain.events import Event
from ledger.service import clock, page_tokens
from ledger.service import events as event_service
from ledger.service.caller import Caller
from ledger.store import events as event_store
from ledger.store import unit_of_work
from ledger.store import webhooks as store
from ledger.store.database import Database
from ledger.store.instants import to_micros
from ledger.store.webhooks import AttemptRow, QueuedRow, WebhookRow

MAX_WEBHOOKS = 20  # per program: each is a sender task and a stream of requests
MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_REDELIVER = 500


@dataclass(frozen=True)
class WebhookView:
    row: WebhookRow
    retrying: int
    failed: int
    secret: str = ""  # only in CreateWebhook's answer


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def resolve(host: str, port: int) -> list[str]:
    """The addresses host resolves to (empty when it does not)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def check_target(url: str, allow_private: bool | None = None) -> rules.Target:
    """The URL, checked for form and for every address its host resolves to now."""
    target = rules.parse_url(url)
    allow = settings.webhook_allow_private() if allow_private is None else allow_private
    problem = rules.addresses_problem(target, resolve(target.host, target.port), allow)
    if problem:
        raise rules.url_refused(problem)
    return target


def _not_found(webhook_id: str) -> LedgerError:
    return errors.not_found("WEBHOOK_NOT_FOUND", f"the program has no webhook {webhook_id!r}")


def _check_id(webhook_id: str) -> str:
    if not webhook_id or len(webhook_id) > 64:
        raise errors.invalid_field("webhook_id", "is required (a webhook_id from CreateWebhook or ListWebhooks)")
    return webhook_id


def _views(conn, rows: list[WebhookRow]) -> list[WebhookView]:
    counts = store.counts(conn, [r.webhook_id for r in rows])
    return [
        WebhookView(r, counts.get(r.webhook_id, {}).get(rules.PENDING, 0), counts.get(r.webhook_id, {}).get(rules.FAILED, 0))
        for r in rows
    ]


def create_webhook(
    db: Database, caller: Caller, url: str, event_types: list[str], description: str, after_event_id: str = ""
) -> WebhookView:
    problems = []
    if len(description) > rules.MAX_DESCRIPTION:
        problems.append(FieldViolation("description", f"must be at most {rules.MAX_DESCRIPTION} characters"))
    if problems:
        raise errors.invalid(problems)
    types = event_service.check_types(event_types, "event_types")
    target = check_target(url.strip())
    start = None
    if after_event_id:
        start = event_service.start_position(db, caller, after_event_id)
    secret = new_secret()

    def apply(conn) -> WebhookView:
        if len(store.program_webhooks(conn, caller.program_id)) >= MAX_WEBHOOKS:
            raise errors.refused("TOO_MANY_WEBHOOKS", f"a program has at most {MAX_WEBHOOKS} webhooks; delete one first")
        cursor = start if start is not None else event_store.head(conn, caller.program_id)
        row = WebhookRow(
            credentials.new_id("wh"),
            caller.program_id,
            target.url,
            types,
            description,
            secret,
            to_micros(clock.now()),
            cursor,
            0,
        )
        store.insert_webhook(conn, row)
        return WebhookView(row, 0, 0, secret)

    return unit_of_work.run(db, apply)


def list_webhooks(db: Database, caller: Caller) -> list[WebhookView]:
    return unit_of_work.run(db, lambda conn: _views(conn, store.program_webhooks(conn, caller.program_id)), read_only=True)


def delete_webhook(db: Database, caller: Caller, webhook_id: str) -> None:
    _check_id(webhook_id)

    def apply(conn) -> None:
        if store.get_webhook(conn, caller.program_id, webhook_id) is None:
            raise _not_found(webhook_id)
        store.delete_webhook(conn, webhook_id)

    unit_of_work.run(db, apply)


def list_deliveries(
    db: Database, caller: Caller, webhook_id: str, page_token: str, page_size: int, failed_only: bool
) -> tuple[list[AttemptRow], str]:
    _check_id(webhook_id)
    size = DEFAULT_PAGE if page_size == 0 else page_size
    if not 0 < size <= MAX_PAGE:
        raise errors.invalid_field("page_size", f"must be between 0 and {MAX_PAGE}")
    pages = page_tokens.pages(db, "Programs.ListWebhookDeliveries", caller.program_id, webhook_id, str(failed_only))
    token = pages.position(page_token)
    before = None
    if token is not None:
        at, _, position = token.partition(":")
        before = (int(at), int(position))

    def read(conn) -> list[AttemptRow]:
        if store.get_webhook(conn, caller.program_id, webhook_id) is None:
            raise _not_found(webhook_id)
        return store.attempts_page(conn, webhook_id, before, size + 1, failed_only)

    found = unit_of_work.run(db, read, read_only=True)
    page = found[:size]
    more = len(found) > size
    return page, pages.token_after(f"{page[-1].attempted_at}:{page[-1].position}") if more else ""


def redeliver(
    db: Database, caller: Caller, webhook_id: str, after_event_id: str, event_ids: list[str]
) -> tuple[int, WebhookView]:
    """Events after a cursor, or failed deliveries (event_ids), sent again."""
    _check_id(webhook_id)
    if after_event_id and event_ids:
        raise errors.invalid_field("event_ids", "give after_event_id or event_ids, not both")
    if len(event_ids) > MAX_REDELIVER:
        raise errors.invalid_field("event_ids", f"at most {MAX_REDELIVER}")
    positions = []
    for i, event_id in enumerate(event_ids):
        position = event_rules.position_of(event_id)
        if position is None:
            raise errors.invalid_field(f"event_ids[{i}]", "is not an event_id of this service")
        positions.append(position)
    start = None if event_ids else event_service.start_position(db, caller, after_event_id)
    now = to_micros(clock.now())

    def apply(conn) -> tuple[int, WebhookView]:
        row = store.get_webhook(conn, caller.program_id, webhook_id)
        if row is None:
            raise _not_found(webhook_id)
        requeued = 0
        if start is not None:
            store.rewind(conn, webhook_id, start)
        else:
            found = store.queued(conn, webhook_id, positions)
            not_failed = [event_ids[i] for i, p in enumerate(positions) if p not in found or found[p].state != rules.FAILED]
            if not_failed:
                raise LedgerError(
                    Category.FAILED_PRECONDITION,
                    "DELIVERY_NOT_FAILED",
                    f"{not_failed[0]} has no failed delivery at this webhook (only failed deliveries are "
                    "redelivered by id; use after_event_id to send delivered events again)",
                    metadata={"event_id": not_failed[0]},
                )
            requeued = store.requeue_failed(conn, webhook_id, sorted(set(positions)), now)
        current = store.reload(conn, webhook_id)
        assert current is not None
        return requeued, _views(conn, [current])[0]

    return unit_of_work.run(db, apply)


# -- the sender's units of work (ledger.delivery.webhooks) -------------------------------------


@dataclass
class Round:
    """What one round of a webhook's sender has to do."""

    webhook: WebhookRow
    heads: list[tuple[QueuedRow, Event]]  # due retries, each its member's oldest pending event
    chains: list[list[Event]]  # new events of members with nothing pending, per member in order
    behind: list[Event]  # new events of members that have an event pending: they queue behind it
    cursor: int  # the webhook's cursor once this round is recorded
    oldest_waiting: int | None  # created_at (micros) of the oldest event not yet delivered
    gone: list[int] = field(default_factory=list)  # queued positions whose event was pruned


def any_webhook(db: Database) -> bool:
    return unit_of_work.run(db, store.any_webhook, read_only=True)


def webhook_ids(db: Database) -> list[WebhookRow]:
    return unit_of_work.run(db, store.all_webhooks, read_only=True)


def read_round(db: Database, webhook_id: str, now: int, batch: int) -> Round | None:
    """The webhook's due retries and new events (None: the webhook is gone)."""

    def read(conn) -> Round | None:
        row = store.reload(conn, webhook_id)
        if row is None:
            return None
        due = store.due_heads(conn, webhook_id, now, batch)
        by_position = {e.position: e for e in store_events_at(conn, row.program_id, [q.position for q in due])}
        heads = [(q, by_position[q.position]) for q in due if q.position in by_position]
        gone = [q.position for q in due if q.position not in by_position]
        head = event_store.head(conn, row.program_id)
        fresh: list[Event] = []
        cursor = row.cursor
        if head > row.cursor:
            fresh = event_store.after(conn, row.program_id, row.cursor, batch, row.event_types, through=head)
            cursor = fresh[-1].position if len(fresh) == batch else head
        waiting = store.members_waiting(conn, webhook_id, {e.member_id for e in fresh}) if fresh else set()
        waiting.update(q.member_id for q, _ in heads)
        chains: dict[str, list[Event]] = {}
        behind = []
        for event in fresh:
            if event.member_id in waiting:
                behind.append(event)
            else:
                chains.setdefault(event.member_id, []).append(event)
        return Round(row, heads, list(chains.values()), behind, cursor, store.oldest_waiting(conn, row), gone)

    return unit_of_work.run(db, read, read_only=True)


def store_events_at(conn, program_id: str, positions: list[int]) -> list[Event]:
    found: list[Event] = []
    for position in sorted(positions):
        found.extend(event_store.after(conn, program_id, position - 1, 1, through=position))
    return found


@dataclass
class Outcome:
    """What a round did, to record in one transaction."""

    attempts: list[AttemptRow] = field(default_factory=list)
    entered: list[QueuedRow] = field(default_factory=list)  # new rows of the retry queue
    changed: list[tuple[QueuedRow, int]] = field(default_factory=list)  # (new state, attempts it had)
    removed: list[int] = field(default_factory=list)  # delivered retries
    hurry: bool = False  # the endpoint answered again: pending retries are due now


def record_round(db: Database, round_: Round, outcome: Outcome, now: int) -> bool:
    """Records the round; False when the webhook was deleted or rewound meanwhile (nothing
    is recorded: its events will be sent again)."""
    webhook_id = round_.webhook.webhook_id

    def apply(conn) -> bool:
        if not store.move_cursor(conn, webhook_id, round_.webhook.version, round_.cursor):
            return False  # first, so nothing was written
        store.add_attempts(conn, outcome.attempts)
        store.remove_queued(conn, webhook_id, outcome.removed + round_.gone)
        for row, had in outcome.changed:
            store.update_queued(conn, webhook_id, row, had)
        store.put_queued(conn, webhook_id, outcome.entered)
        if outcome.hurry:
            store.hurry(conn, webhook_id, now)
        return True

    return unit_of_work.run(db, apply)


def record_late(
    db: Database, webhook_id: str, attempt: AttemptRow, queued: QueuedRow, row: QueuedRow | None
) -> None:
    """The answer to a request that outlived its round: its attempt, and its pending row
    removed (delivered: row None) or moved on, unless someone changed the row meanwhile."""

    def apply(conn) -> None:
        if store.reload(conn, webhook_id) is None:
            return
        store.add_attempts(conn, [attempt])
        if row is None:
            store.remove_queued_if(conn, webhook_id, queued.position, queued.attempts)
        else:
            store.update_queued(conn, webhook_id, row, queued.attempts)

    unit_of_work.run(db, apply)


def prune_attempts(db: Database, webhook: WebhookRow, now: int) -> int:
    def apply(conn) -> int:
        days = event_store.retention_days(conn, webhook.program_id)
        return store.prune_attempts(conn, webhook.webhook_id, now - days * 86_400_000_000)

    return unit_of_work.run(db, apply)


def oldest_waiting(db: Database, webhook_id: str) -> int | None:
    def read(conn) -> int | None:
        row = store.reload(conn, webhook_id)
        return store.oldest_waiting(conn, row) if row is not None else None

    return unit_of_work.run(db, read, read_only=True)
