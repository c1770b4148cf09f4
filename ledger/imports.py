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

Rows are applied by a pool of threads, each with its own database connection, with a
bounded number in flight (memory stays flat whatever the file's size).
"""

from __future__ import annotations

import csv
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.api import requests
from ledger.domain.errors import LedgerError
from ledger.domain.kinds import Role
from ledger.domain.limits import MAX_POINTS_PER_REQUEST
from ledger.service import earning, members, support, tiers
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store.database import Database
from loyalty.v1 import common_pb2, ledger_pb2

IMPORT_KEY_ID = "import:cli"
CHECKPOINT_EVERY = 100

ORDER_COLUMNS = ("member_id", "order_id", "amount", "currency", "occur_time")
MEMBER_COLUMNS = ("member_id",)


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
                raise RowRefused(error.category.value, error.reason, error.message) from error
            if attempt == ATTEMPTS:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))


def order_row(db: Database, caller: Caller, row: dict[str, str]) -> None:
    """One order row: validated as the API validates an EarnRequest, earned by the service."""
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
    _run(lambda: _earn(db, caller, request))


def _earn(db: Database, caller: Caller, request: ledger_pb2.EarnRequest) -> None:
    command, key = requests.earn(request, key_required=True)
    earning.earn(db, caller, requests.mutation("Earn", request, key), command)


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


class _Checkpoint:
    """Rows done, in file order: the count of the longest prefix whose rows all finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = int(path.read_text().strip() or 0) if path.exists() else 0
        self._finished: set[int] = set()
        self._lock = threading.Lock()

    def finish(self, number: int) -> None:
        with self._lock:
            self._finished.add(number)
            moved = False
            while self.done + 1 in self._finished:
                self._finished.remove(self.done + 1)
                self.done += 1
                moved = True
            if moved and self.done % CHECKPOINT_EVERY == 0:
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
        self._lock = threading.Lock()

    def add(self, number: int, natural: str, refusal: RowRefused) -> None:
        with self._lock:
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


def run(
    db: Database,
    program_id: str,
    path: Path,
    kind: str,
    *,
    workers: int = 8,
    progress: bool = True,
) -> Tally:
    """Imports path (kind "orders" or "members") into the program; resumable (see the module)."""
    caller = Caller(program_id, IMPORT_KEY_ID, Role.ADMIN)
    if kind == "orders":
        apply_row: Callable[[Database, Caller, dict[str, str]], None] = order_row
    else:
        known_tiers = frozenset(t.name for t in tiers.list_tiers(db, caller))
        apply_row = lambda db, caller, row: member_row(db, caller, row, known_tiers)  # noqa: E731
    id_column = "order_id" if kind == "orders" else "member_id"
    checkpoint = _Checkpoint(Path(f"{path}.progress"))
    refusals = _Refusals(Path(f"{path}.refused.csv"), id_column)
    tally = Tally(skipped=checkpoint.done)
    total = _count(path)
    lock = threading.Lock()

    def one(number: int, row: dict[str, str]) -> None:
        try:
            apply_row(db, caller, row)
            outcome = True
        except RowRefused as refusal:
            refusals.add(number, row.get(id_column, ""), refusal)
            outcome = False
        with lock:
            if outcome:
                tally.applied += 1
            else:
                tally.refused += 1
        checkpoint.finish(number)

    bar = _bar(total, checkpoint.done, kind, progress)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: set[Future] = set()
            for number, row in _rows(path):
                if number <= checkpoint.done:
                    continue
                if len(pending) >= workers * 4:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        future.result()
                        bar.advance(1)
                pending.add(pool.submit(one, number, row))
            for future in pending:
                future.result()
                bar.advance(1)
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
