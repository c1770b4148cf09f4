"""Bulk import from CSV (`loyalty-ledger import members|orders FILE.csv`), through the API's
own validation and the service's one write path, with a progress bar (rich).

orders: a marketplace backfill. Each row is an Earn at its own time (occur_time), under the
rules in force then, sent under the idempotency key "import:order:<order_id>", so a rerun
(after a crash, kill -9 or Ctrl-C) applies each order exactly once: what committed before is
replayed, not doubled. Progress is checkpointed beside the file (FILE.progress: rows done
in order) so a rerun skips what is certainly done; the rows in flight at a crash are simply
sent again. Refused rows go to FILE.refused.csv with their status and reason (once each,
across reruns).

members: a move from another loyalty system. Each row enrols a member (with its profile and
enrolment time), credits its opening balance as an ADJUST whose lot keeps the old
system's expiry date (key "import:opening:<member_id>") and, with a `tier` column, carries the
member's tier over: held from the import for a full tier period, as a TIER_CHANGE
(key "import:tier:<member_id>"; never a move down).

Rows are dealt by member id to a pool of workers (processes for orders on PostgreSQL, threads
otherwise), each with its own database connection and applying its share in file order, with
a bounded number of rows held (memory stays flat whatever the file's size); the outcomes come
back to this process, which alone writes the checkpoint, the refusals and the bar. Orders go
in batches of up to BATCH_ROWS rows, each batch one database transaction of many members'
Earns (ledger.service.earning_batches); rows sharing a member or an order with an earlier row
of their batch wait for a later round of it, and whatever a round cannot take (a member with a
referral to decide, a round that failed as a whole) is earned row by row before the next round.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.api import requests
from ledger.domain.errors import LedgerError
from ledger.domain.kinds import Role
from ledger.domain.limits import MAX_POINTS_PER_REQUEST
from ledger.service import earning, earning_batches, members, support, tiers
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store.database import Database
from loyalty.v1 import common_pb2, ledger_pb2

IMPORT_KEY_ID = "import:cli"
CHECKPOINT_EVERY = 100
BATCH_ROWS = 200
# Batches of orders, or member rows, applied at once. A batch keeps a core busy in Python while
# PostgreSQL writes another: three saturate two cores (bench import-orders, README).
DEFAULT_WORKERS = {"orders": 3, "members": 8}
log = logging.getLogger("ledger.imports")

ORDER_COLUMNS = ("member_id", "order_id", "amount", "currency", "occur_time")
MEMBER_COLUMNS = ("member_id",)


Rows = list[tuple[int, dict[str, str]]]  # (row number, the row's columns)


class RowRefused(Exception):
    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass
class Tally:
    applied: int = 0
    refused: int = 0
    skipped: int = 0


def _key(kind: str, natural: str) -> str:
    """The row's idempotency key: readable when short, hashed when the id is long."""
    key = f"import:{kind}:{natural}"
    return key if len(key) <= 128 else f"import:{kind}:{hashlib.sha256(natural.encode()).hexdigest()}"


def _instant(text: str, column: str) -> Timestamp | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise RowRefused("INVALID_ARGUMENT", "INVALID_FIELD", f"{column}: {text!r} is not an ISO 8601 instant") from error
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _int(text: str, column: str) -> int:
    try:
        return int(text or "0")
    except ValueError as error:
        raise RowRefused("INVALID_ARGUMENT", "INVALID_FIELD", f"{column}: {text!r} is not a whole number") from error


def _channel(text: str) -> common_pb2.Channel.ValueType:
    name = (text or "MARKETPLACE").upper().removeprefix("CHANNEL_")
    try:
        return common_pb2.Channel.Value(f"CHANNEL_{name}")
    except ValueError as error:
        raise RowRefused("INVALID_ARGUMENT", "INVALID_FIELD", f"channel: {text!r} is not a channel") from error


# Answers that say nothing about the row (a lost race, the database busy or away): the row is
# sent again, as a client retries with the same key; still failing, the import stops there.
_TRANSIENT = {"ABORTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"}
ATTEMPTS = 8


def _run(call: Callable[[], object]) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            call()
            return
        except LedgerError as error:
            if error.category.value not in _TRANSIENT:
                raise _refusal(error) from error
            if attempt == ATTEMPTS:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))


def order_row(db: Database, caller: Caller, row: dict[str, str]) -> None:
    """One order row, earned alone by the service."""
    mutation, command = _earn_command(row)
    _run(lambda: earning.earn(db, caller, mutation, command))


def _earn_command(row: dict[str, str]) -> tuple[Mutation, earning.EarnCommand]:
    """The row as an Earn, validated as the API validates an EarnRequest (RowRefused if not)."""
    request = _earn_request(row)
    try:
        command, key = requests.earn(request, key_required=True)
    except LedgerError as error:
        raise _refusal(error) from error
    return requests.mutation("Earn", request, key), command


def _earn_request(row: dict[str, str]) -> ledger_pb2.EarnRequest:
    occur = _instant(row.get("occur_time", ""), "occur_time")
    line_amount = _int(row.get("amount", ""), "amount")
    lines = []
    if row.get("sku"):
        lines.append(common_pb2.OrderLine(sku=row["sku"], category=row.get("category", ""), quantity=1, amount=line_amount))
    order_id = row.get("order_id", "")
    request = ledger_pb2.EarnRequest(
        member_id=row.get("member_id", ""),
        idempotency_key=_key("order", order_id),
        order=common_pb2.Order(
            order_id=order_id, channel=_channel(row.get("channel", "")), amount=line_amount,
            currency=row.get("currency", ""), store_id=row.get("store_id", ""), lines=lines, occur_time=occur,
        ),
    )
    return request


def _refusal(error: LedgerError) -> RowRefused:
    return RowRefused(error.category.value, error.reason, error.message)


def _rounds(rows: Rows) -> list[Rows]:
    """The batch's rows in rounds whose rows share no member, order or key (the order id
    makes the key): each row goes to the round after the last one holding any of these."""
    rounds: list[Rows] = []
    next_round: dict[tuple[str, str], int] = {}
    for numbered in rows:
        row = numbered[1]
        identities = (("member", row.get("member_id", "")), ("order", row.get("order_id", "")))
        index = max(next_round.get(identity, 0) for identity in identities)
        for identity in identities:
            next_round[identity] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(numbered)
    return rounds


def order_batch(db: Database, caller: Caller, rows: Rows) -> dict[int, RowRefused | None]:
    """Rows of the orders file, by number: None for an order earned (or found earned by an
    earlier run), or why it was refused. Each round of the batch goes to earning_batches; the
    rows it leaves (or all of a round that failed as a whole) are earned alone, as order_row
    earns them, before the next round: a member's orders are earned in file order."""
    outcomes: dict[int, RowRefused | None] = {}
    for round_rows in _rounds(rows):
        valid: list[tuple[int, dict[str, str], Mutation, earning.EarnCommand]] = []
        for number, row in round_rows:
            try:
                valid.append((number, row, *_earn_command(row)))
            except RowRefused as refusal:
                outcomes[number] = refusal
        try:
            answers: list[earning_batches.Answer] = earning_batches.earn_many(
                db, caller, [(mutation, command) for _, _, mutation, command in valid]
            ) if valid else []
        except LedgerError:
            # A lost race or the database away (what unit_of_work did not win by retrying):
            # each order is sent alone, with order_row's retries; the round wrote nothing.
            log.warning("a batch of %d orders failed; earning each alone", len(valid), exc_info=True)
            answers = [None] * len(valid)
        for (number, row, _, _), answer in zip(valid, answers):
            if answer is None or (isinstance(answer, LedgerError) and answer.category.value in _TRANSIENT):
                outcomes[number] = _refusal_of(lambda: order_row(db, caller, row))
            elif isinstance(answer, LedgerError):
                outcomes[number] = _refusal(answer)
            else:
                outcomes[number] = None
    return outcomes


def _refusal_of(apply: Callable[[], None]) -> RowRefused | None:
    """None when the row was applied, or why it was refused."""
    try:
        apply()
    except RowRefused as refusal:
        return refusal
    return None


def member_row(db: Database, caller: Caller, row: dict[str, str], known_tiers: frozenset[str] = frozenset()) -> None:
    """One member row: enrolment with profile, then the opening balance with its expiry date,
    then the tier carried over. known_tiers: the program's tiers, so that a row naming another
    is refused before anything of it is written."""
    enrolled = _instant(row.get("enroll_time", ""), "enroll_time")
    consent = (row.get("marketing_consent", "") or "").strip().lower() in ("1", "true", "yes", "y")
    request = ledger_pb2.EnrollMemberRequest(
        member_id=row.get("member_id", ""),
        profile=ledger_pb2.MemberProfile(
            email=row.get("email", ""), name=row.get("name", ""), birth_date=row.get("birth_date", ""),
            locale=row.get("locale", ""), marketing_consent=consent,
        ),
    )
    points = _int(row.get("opening_balance", ""), "opening_balance")
    expires = _instant(row.get("expire_time", ""), "expire_time")
    tier = row.get("tier", "")
    if tier and tier not in known_tiers:
        raise RowRefused(
            "INVALID_ARGUMENT", "INVALID_FIELD",
            f"tier: {tier!r} is not a tier of this program (its tiers: {', '.join(sorted(known_tiers)) or 'none'})",
        )
    if not 0 <= points <= MAX_POINTS_PER_REQUEST:
        raise RowRefused("INVALID_ARGUMENT", "INVALID_FIELD", f"opening_balance: must be 0 to {MAX_POINTS_PER_REQUEST}")

    def apply() -> None:
        member_id, _, profile = requests.enroll(request)
        members.enroll_member(
            db, caller, member_id, "", profile, enrolled.ToDatetime(tzinfo=timezone.utc) if enrolled else None
        )
        if points:
            digest = hashlib.sha256(f"{member_id}\0{points}\0{row.get('expire_time', '')}".encode()).hexdigest()
            mutation = Mutation(_key("opening", member_id), "ImportOpeningBalance", digest)
            support.opening_balance(
                db, caller, mutation, member_id, points,
                expires.ToDatetime(tzinfo=timezone.utc) if expires else None, "opening balance (import)",
            )
        if tier:
            digest = hashlib.sha256(f"{member_id}\0{tier}".encode()).hexdigest()
            tiers.carry_over(db, caller, Mutation(_key("tier", member_id), "ImportTier", digest), member_id, tier)

    _run(apply)


def rows_done(path: Path) -> int:
    """How many rows from the top of path the import's checkpoint has as done."""
    return _Checkpoint(Path(f"{path}.progress")).done


class _Checkpoint:
    """Rows done, in file order: the count of the longest prefix whose rows all finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = int(path.read_text().strip() or 0) if path.exists() else 0
        self._finished: set[int] = set()

    def finish(self, number: int) -> None:
        self._finished.add(number)
        before = self.done
        while self.done + 1 in self._finished:
            self._finished.remove(self.done + 1)
            self.done += 1
        if self.done // CHECKPOINT_EVERY > before // CHECKPOINT_EVERY:
            self.save()

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(str(self.done))
        os.replace(temporary, self.path)


class _Refusals:
    """FILE.refused.csv: row number, natural id, status, reason, message; a row once across reruns."""

    def __init__(self, path: Path, id_column: str) -> None:
        self.path = path
        seen: set[str] = set()
        if path.exists():
            with path.open(newline="") as existing:
                seen = {line[0] for line in csv.reader(existing)}
        self._seen = seen
        self._file = path.open("a", newline="")
        self._writer = csv.writer(self._file)
        if not seen:
            self._writer.writerow(("row", id_column, "status", "reason", "message"))

    def add(self, number: int, natural: str, refusal: RowRefused) -> None:
        if str(number) in self._seen:
            return
        self._seen.add(str(number))
        self._writer.writerow((number, natural, refusal.code, refusal.reason, refusal.message))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="") as source:
        for number, row in enumerate(csv.DictReader(source), start=1):
            yield number, {k.strip(): (v or "").strip() for k, v in row.items() if k}


def _count(path: Path) -> int:
    with path.open("rb") as source:
        return max(sum(1 for _ in source) - 1, 0)


# A row's outcome as it crosses a process boundary: None when applied, else RowRefused's fields.
Outcomes = dict[int, tuple[str, str, str] | None]


def _plain(outcomes: dict[int, RowRefused | None]) -> Outcomes:
    return {n: None if r is None else (r.code, r.reason, r.message) for n, r in outcomes.items()}


# A worker process's own database and caller (orders on PostgreSQL: see _executor).
_in_worker: list[tuple[Database, Caller]] = []


def _start_worker(url: str, program_id: str) -> None:
    from ledger.store.engine import create_engine_for

    _in_worker.append((Database(create_engine_for(url, pool_size=1)), Caller(program_id, IMPORT_KEY_ID, Role.ADMIN)))
    # Ctrl-C reaches the whole process group: the import stops handing out batches, and the
    # worker finishes the one it is writing (ended midway, it would only be rolled back).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()


def _end_with_parent(parent: int) -> None:
    """A worker whose import was killed (kill -9 leaves it waiting for work forever) ends too;
    the batch it was writing, if any, rolls back with its connection, and the rerun sends it again."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _orders_in_worker(rows: Rows) -> Outcomes:
    db, caller = _in_worker[0]
    return _plain(order_batch(db, caller, rows))


def _executor(db: Database, caller: Caller, kind: str, workers: int) -> tuple[Executor, Callable[[Rows], Outcomes]]:
    """Where the rows are applied. Orders on PostgreSQL go to worker processes, each with its
    own connection: a batch is Python's work as much as the database's, and threads of one
    process share one core for Python (the GIL), which capped the import at about 1,850 orders
    a second on two cores. SQLite (one writer at a time) and member rows use threads."""
    if kind == "orders" and db.is_postgresql:
        url = db.engine.url.render_as_string(hide_password=False)
        processes = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
            initargs=(url, caller.program_id),
        )
        return processes, _orders_in_worker
    threads = ThreadPoolExecutor(max_workers=workers)
    if kind == "orders":
        return threads, lambda rows: _plain(order_batch(db, caller, rows))
    known_tiers = frozenset(t.name for t in tiers.list_tiers(db, caller))
    return threads, lambda rows: _plain(
        {number: _refusal_of(lambda: member_row(db, caller, row, known_tiers)) for number, row in rows}
    )


def workers_for(kind: str, workers: int = 0) -> int:
    """How many batches (orders) or rows (members) are applied at once: workers, or the kind's default."""
    return workers or DEFAULT_WORKERS[kind]


def run(
    db: Database,
    program_id: str,
    path: Path,
    kind: str,
    *,
    workers: int = 0,
    progress: bool = True,
) -> Tally:
    """Imports path (kind "orders" or "members") into the program; resumable (see the module).

    The rows are dealt to `workers` lanes by member id, and each lane applies its batches one
    after another: all of a member's rows go down one lane, so a member's orders are earned in
    file order (tiers, caps and balances as they would be one at a time), while the lanes run
    side by side."""
    workers = workers_for(kind, workers)
    caller = Caller(program_id, IMPORT_KEY_ID, Role.ADMIN)
    pool, apply = _executor(db, caller, kind, workers)
    id_column = "order_id" if kind == "orders" else "member_id"
    checkpoint = _Checkpoint(Path(f"{path}.progress"))
    refusals = _Refusals(Path(f"{path}.refused.csv"), id_column)
    tally = Tally(skipped=checkpoint.done)
    per_task = BATCH_ROWS if kind == "orders" else 1
    bar = _bar(_count(path), checkpoint.done, kind, progress)
    gathering: list[Rows] = [[] for _ in range(workers)]  # each lane's next batch, filling
    ready: list[deque[Rows]] = [deque() for _ in range(workers)]  # each lane's full batches
    running: dict[Future, tuple[int, Rows]] = {}  # at most one batch per lane

    def settle(finished) -> None:
        for future in finished:
            _, rows = running.pop(future)
            outcomes = future.result()
            for number, row in rows:
                outcome = outcomes[number]
                if outcome is None:
                    tally.applied += 1
                else:
                    refusals.add(number, row.get(id_column, ""), RowRefused(*outcome))
                    tally.refused += 1
                checkpoint.finish(number)
            bar.advance(len(rows))

    try:

        def dispatch() -> None:
            busy = {lane for lane, _ in running.values()}
            for lane in range(workers):
                if lane not in busy and ready[lane]:
                    rows = ready[lane].popleft()
                    running[pool.submit(apply, rows)] = (lane, rows)

        def await_some() -> None:
            settle(wait(running, return_when=FIRST_COMPLETED)[0])
            dispatch()

        for number, row in _rows(path):
            if number <= checkpoint.done:
                continue
            lane = zlib.crc32(row.get("member_id", "").encode()) % workers
            gathering[lane].append((number, row))
            if len(gathering[lane]) == per_task:
                ready[lane].append(gathering[lane])
                gathering[lane] = []
                dispatch()
                while sum(map(len, ready)) > workers:  # memory stays flat: the file waits
                    await_some()
        for lane, rows in enumerate(gathering):
            if rows:
                ready[lane].append(rows)
        dispatch()
        while running:
            await_some()
    except BaseException:
        # Ctrl-C or a failure: the batches not started are dropped (the rerun sends them), the
        # running ones finish, and what finished is checkpointed below.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        checkpoint.save()
        refusals.close()
        bar.close()
    return tally


class _Bar:
    def __init__(self, total: int, done: int, kind: str, shown: bool) -> None:
        self._progress = None
        if shown:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class Rate(ProgressColumn):
                """Rows per second (rich's own speed column counts bytes)."""

                def render(self, task) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s")

            self._progress = Progress(
                TextColumn(f"import {kind}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                Rate(), TimeRemainingColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task(kind, total=total, completed=done)

    def advance(self, rows: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, rows)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _bar(total: int, done: int, kind: str, shown: bool) -> _Bar:
    return _Bar(total, done, kind, shown)
