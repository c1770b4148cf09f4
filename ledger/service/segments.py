"""Use cases for RFM and segments: keep a member current after their own change, refresh
every member, and marketing's segment rules (create, change, read, list, list members).

How the window slides. An Earn reads the member's stored figures (one row, in its first round
trip), adds its order, and adds the same to the stored row (relative to the row as it is when
written); a member with no stored row has them summed from the ledger's rows over the window
ending now, and so does every RefundOrder and reversal of an earn. All in the same database
transaction as the change, with the member's segments. Between refreshes the window keeps
moving while the stored figures stand still: an order that falls out of the window, or a
member who crosses 180 days without an order, is caught by the refresh (the due-work leader,
daily by default, and `loyalty-ledger segments refresh`), which recomputes every member's
figures from the ledger in SQL, then the quintile cut points, then every segment's members.
GetMember always reads the figures from the ledger as of now (exact) and scores them with
the program's current cut points; its segments are the stored membership.

Membership as it stands when an order is processed is the stored one (as the member's last
change or the last refresh left it): a campaign for `lapsed` members applies to the order
that brings a lapsed member back, and that order then takes them out of `lapsed`. A
backdated order uses today's membership.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain import events as event_rules
from ledger.domain import segments as rules
from ledger.domain.errors import FieldViolation
from ledger.domain.records import MemberState
from ledger.domain.segments import CutPoints, Figures, RfmView, Segment
from ledger.service import clock, config_cache, idempotent, lookups, page_tokens
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import outbox, programs, unit_of_work
from ledger.store import segments as store
from ledger.store import tiers as tier_store
from ledger.store.instants import to_micros
from ledger.store.segments import SegmentRecord

# LOYALTY_SEGMENTS_UPKEEP=off: Earn and RefundOrder leave members' figures and segments to the
# refresh (GetMember still reads figures live): what the upkeep costs an Earn is measured
# against it (README "Segments"), and a program that wants no per-order work can use it.
UPKEEP = os.environ.get("LOYALTY_SEGMENTS_UPKEEP", "on").lower() not in ("off", "0", "false", "no")

# A member's row recomputed by their own change this recently is left to that change by the
# refresh (the change may have committed after the refresh's snapshot; its figures are exact).
FRESH = timedelta(seconds=60)


def _config(conn: Transaction, program_id: str) -> config_cache.ProgramConfig:
    found = programs.get_with_version(conn, program_id)
    if found is None:
        raise errors.not_found("PROGRAM_NOT_FOUND", f"program {program_id} does not exist")
    return config_cache.config(conn, program_id, found[1])


def keep_current(
    conn: Transaction,
    program_id: str,
    member: MemberState,
    figures: Figures,
    now: datetime,
    *,
    segments: list[Segment],
    cuts: CutPoints,
    tier: str,
    available: int,
    reason: str,
    before: frozenset[str] | None = None,
    added: Figures | None = None,
) -> None:
    """Stores the member's figures and moves them in or out of segments (with their events),
    in the caller's transaction. figures: the member's figures after the change; before: the
    segments the member was in (read now when not given)."""
    if before is None:
        before = store.membership(conn, program_id, member.member_id)
    store.save_figures(conn, program_id, member.member_id, figures, now, added=added)
    if not segments and not before:
        return
    made = store.referrals_made(conn, program_id, member.member_id) if rules.needs_referrals(segments) else 0
    profile = rules.profile(figures, cuts, to_micros(now), to_micros(member.enrolled_at), tier, available, made)
    moved = rules.change(before, rules.membership(segments, profile))
    if not moved:
        return
    store.move(conn, program_id, member.member_id, moved.entered, moved.exited, now)
    names = {s.segment_id: s.name for s in segments}
    for segment_id in moved.entered:
        outbox.add(conn, program_id, event_rules.segment_moved(True, member.member_id, segment_id, names[segment_id], reason, now))
    for segment_id in moved.exited:
        name = names.get(segment_id, segment_id)
        outbox.add(conn, program_id, event_rules.segment_moved(False, member.member_id, segment_id, name, reason, now))


def after_change(
    conn: Transaction, program_id: str, member: MemberState, now: datetime, *, available: int, reason: str
) -> None:
    """keep_current for a change whose rows are written already (a refund): the figures are
    read from the ledger now, including them."""
    if not UPKEEP:
        return
    config = _config(conn, program_id)
    tier = _tier_name(conn, program_id, member.member_id, config)
    figures = store.figures(conn, program_id, member.member_id, now)
    keep_current(
        conn, program_id, member, figures, now, segments=config.segments, cuts=config.cuts, tier=tier,
        available=available, reason=reason,
    )


def _tier_name(conn: Transaction, program_id: str, member_id: str, config: config_cache.ProgramConfig) -> str:
    from ledger.service.tiers import current_tier

    if not config.tiers:
        return ""
    state = current_tier(conn, program_id, member_id, config.tiers)
    return state.name if state else ""


def view(conn: Transaction, program_id: str, member: MemberState, now: datetime, *, tier: str, available: int) -> RfmView:
    """What GetMember shows: figures from the ledger as of now, scored with the current cut
    points; the stored segments by name."""
    config = _config(conn, program_id)
    rules_now = lookups.program_rules(conn, program_id)
    figures = store.figures(conn, program_id, member.member_id, now)
    profile = rules.profile(figures, config.cuts, to_micros(now), to_micros(member.enrolled_at), tier, available)
    names = {s.segment_id: s.name for s in config.segments}
    inside = store.membership(conn, program_id, member.member_id)
    return RfmView(
        figures, profile, rules_now.rfm_window_days, config.cuts, tuple(sorted(names.get(s, s) for s in inside))
    )


# ------------------------------------------------------------------ the refresh


@dataclass(frozen=True)
class RefreshReport:
    program_id: str
    members: int
    entered: int
    exited: int
    seconds: float


def refresh_program(db: Database, program_id: str) -> RefreshReport:
    """Every member's figures, the cut points, then each segment's members: one database
    transaction per step, so the program's event head is held only while a segment's events
    are written. A member whose own change (an Earn, a refund) wrote their figures during the
    refresh, or in the FRESH before it, is left alone by the pass over everyone (its snapshot
    may predate that change) and recomputed right after it under the member's lock; memberships
    recomputed after the refresh began are newer than its view."""
    started = clock.now()
    fresh = started - FRESH

    def figures(conn: Transaction) -> int:
        settings = lookups.program_rules(conn, program_id)
        store.refresh_figures(conn, program_id, settings.rfm_window_days, started, fresh)
        return settings.rfm_window_days

    def settle_and_cut(conn: Transaction, window_days: int) -> CutPoints:
        store.settle_recent(conn, program_id, window_days, started, fresh)
        return store.refresh_cuts(conn, program_id, started)

    window_days = unit_of_work.run(db, figures)
    cuts = unit_of_work.run(db, lambda conn: settle_and_cut(conn, window_days))
    unit_of_work.run(db, store.analyze)
    def definitions(conn: Transaction) -> tuple[list[Segment], str]:
        return store.all_segments(conn, program_id), _entry_tier(conn, program_id)

    found, entry_tier = unit_of_work.run(db, definitions)
    entered = exited = 0
    for segment in found:

        def refresh(conn: Transaction, s: Segment = segment) -> tuple[int, int]:
            return store.refresh_segment(conn, program_id, s, cuts, started, started, entry_tier)

        moved = unit_of_work.run(db, refresh)
        entered, exited = entered + moved[0], exited + moved[1]
    if entered + exited:
        unit_of_work.run(db, store.analyze)
    return RefreshReport(program_id, cuts.members, entered, exited, (clock.now() - started).total_seconds())


def _entry_tier(conn: Transaction, program_id: str) -> str:
    """The tier a member holds before ever qualifying (threshold 0), or ""."""
    from ledger.domain.tiers import qualified_tier

    entry = qualified_tier(tier_store.definitions(conn, program_id), 0)
    return entry.name if entry else ""


def refresh_all(db: Database) -> list[RefreshReport]:
    ids = unit_of_work.run(db, programs.ids, read_only=True)
    return [refresh_program(db, program_id) for program_id in ids]


def refresh_due(db: Database, every: timedelta) -> list[RefreshReport]:
    """Programs never refreshed, or last refreshed `every` ago or more (the due-work leader)."""
    def due(conn: Transaction) -> list[str]:
        last = store.refreshed_at(conn)
        limit = to_micros(clock.now() - every)
        return [p for p in programs.ids(conn) if last.get(p, -1) <= limit]

    return [refresh_program(db, program_id) for program_id in unit_of_work.run(db, due, read_only=True)]


# ------------------------------------------------------------------ marketing's segments


@dataclass(frozen=True)
class SegmentReport:
    record: SegmentRecord
    size: int

    def to_json(self) -> dict:
        r = self.record
        return {
            "segment_id": r.segment.segment_id,
            "name": r.segment.name,
            "description": r.segment.description,
            "conditions": r.segment.conditions.to_json(),
            "preset": r.segment.preset,
            "created_at": to_micros(r.created_at),
            "updated_at": to_micros(r.updated_at),
            "computed_at": to_micros(r.computed_at) if r.computed_at else None,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: dict) -> SegmentReport:
        from ledger.store.instants import from_micros

        segment = Segment(
            data["segment_id"], data["name"], data["description"],
            rules.SegmentConditions.from_json(data["conditions"]), data["preset"],
        )
        computed = from_micros(data["computed_at"]) if data["computed_at"] is not None else None
        record = SegmentRecord(segment, from_micros(data["created_at"]), from_micros(data["updated_at"]), computed)
        return cls(record, data["size"])


def validate(segment: Segment) -> None:
    found = [FieldViolation(f"segment.conditions.{name}", text) for name, text in rules.problems(segment.conditions)]
    if not segment.name or len(segment.name) > 64:
        found.append(FieldViolation("segment.name", "is required (at most 64 characters)"))
    if len(segment.description) > 500:
        found.append(FieldViolation("segment.description", "is at most 500 characters"))
    if found:
        raise errors.invalid(found)


def _report(conn: Transaction, program_id: str, record: SegmentRecord) -> SegmentReport:
    return SegmentReport(record, store.size(conn, program_id, record.segment.segment_id))


def _existing(conn: Transaction, program_id: str, segment_id: str, *, lock: bool = False) -> SegmentRecord:
    record = store.get(conn, program_id, segment_id, lock=lock)
    if record is None:
        raise errors.not_found("SEGMENT_NOT_FOUND", f"segment {segment_id!r} does not exist in this program")
    return record


def _name_free(conn: Transaction, program_id: str, name: str, segment_id: str) -> None:
    other = store.by_name(conn, program_id, name)
    if other is not None and other.segment.segment_id != segment_id:
        raise errors.already_exists("SEGMENT_NAME_TAKEN", f"a segment named {name!r} exists already")


def create_segment(db: Database, caller: Caller, segment: Segment, mutation: Mutation | None = None) -> SegmentReport:
    """A new segment; its members are computed by the next refresh (and each member's next change)."""
    segment = replace(segment, segment_id=credentials.new_id("seg"), preset=False)
    validate(segment)

    def apply(conn: Transaction, _rules: object) -> SegmentReport:
        if len(store.all_segments(conn, caller.program_id)) >= rules.MAX_SEGMENTS:
            raise errors.refused("TOO_MANY_SEGMENTS", f"a program has at most {rules.MAX_SEGMENTS} segments")
        _name_free(conn, caller.program_id, segment.name, segment.segment_id)
        store.insert_segment(conn, caller.program_id, segment, clock.now())
        return _report(conn, caller.program_id, _existing(conn, caller.program_id, segment.segment_id))

    return idempotent.execute(
        db, caller, mutation, lock=lambda conn: lookups.program_rules(conn, caller.program_id), apply=apply,
        decode=SegmentReport.from_json,
    )


def update_segment(db: Database, caller: Caller, segment_id: str, changes: dict) -> SegmentReport:
    """changes maps Segment field names to validated values. A preset keeps its name."""

    def work(conn: Transaction) -> SegmentReport:
        current = _existing(conn, caller.program_id, segment_id, lock=True)
        if current.segment.preset and changes.get("name", current.segment.name) != current.segment.name:
            raise errors.refused("SEGMENT_IS_PRESET", f"the preset segment {current.segment.name!r} keeps its name")
        updated = replace(current.segment, **changes)
        validate(updated)
        _name_free(conn, caller.program_id, updated.name, segment_id)
        store.save(conn, caller.program_id, updated, clock.now())
        return _report(conn, caller.program_id, _existing(conn, caller.program_id, segment_id))

    return unit_of_work.run(db, work)


def find(conn: Transaction, program_id: str, segment: str) -> SegmentRecord:
    """A segment by id, or else by name."""
    record = store.get(conn, program_id, segment) or store.by_name(conn, program_id, segment)
    if record is None:
        raise errors.not_found("SEGMENT_NOT_FOUND", f"segment {segment!r} does not exist in this program")
    return record


def get_segment(db: Database, caller: Caller, segment: str) -> SegmentReport:
    return unit_of_work.run(
        db, lambda conn: _report(conn, caller.program_id, find(conn, caller.program_id, segment)), read_only=True
    )


def list_segments(db: Database, caller: Caller, page_token: str, page_size: int) -> tuple[list[SegmentReport], str]:
    pages = page_tokens.pages(db, "ListSegments", caller.program_id, "")
    after = pages.position(page_token)

    def work(conn: Transaction) -> tuple[list[SegmentReport], str]:
        found = store.page(conn, caller.program_id, after or "", page_size + 1)
        page = [_report(conn, caller.program_id, r) for r in found[:page_size]]
        token = pages.token_after(page[-1].record.segment.segment_id) if len(found) > page_size else ""
        return page, token

    return unit_of_work.run(db, work, read_only=True)


def list_segment_members(
    db: Database, caller: Caller, segment: str, page_token: str, page_size: int
) -> tuple[list[tuple[str, datetime]], str]:
    """A page of the segment's members in member_id order (stable: a token holds the last one
    served), with when each entered."""

    pages = page_tokens.pages(db, "ListSegmentMembers", caller.program_id, segment)
    after = pages.position(page_token)

    def work(conn: Transaction) -> tuple[list[tuple[str, datetime]], str]:
        segment_id = find(conn, caller.program_id, segment).segment.segment_id
        found = store.members_page(conn, caller.program_id, segment_id, after or "", page_size + 1)
        page = found[:page_size]
        return page, (pages.token_after(page[-1][0]) if len(found) > page_size else "")

    return unit_of_work.run(db, work, read_only=True)


EXPORT_COLUMNS = (
    "member_id", "entered_at", "last_order_at", "recency_days", "frequency", "monetary",
    "recency_score", "frequency_score", "monetary_score",
)
EXPORT_PAGE = 5000


def export_rows(db: Database, program_id: str | None, segment: str):
    """The segment's members with their stored figures (as of their last recomputation),
    scored with the current cut points, one page per database transaction."""
    from ledger.store.instants import from_micros

    def resolve(conn: Transaction) -> tuple[str, str, CutPoints]:
        chosen = program_id
        if not chosen:
            ids = programs.ids(conn)
            if len(ids) != 1:
                raise errors.invalid_field("program", f"name the program (--program): the database has {len(ids)}")
            chosen = ids[0]
        record = find(conn, chosen, segment)
        return chosen, record.segment.segment_id, store.cuts(conn, chosen)

    chosen, segment_id, cuts = unit_of_work.run(db, resolve, read_only=True)
    now = to_micros(clock.now())
    after = ""
    while True:
        rows = unit_of_work.run(
            db, lambda conn: store.export_page(conn, chosen, segment_id, after, EXPORT_PAGE), read_only=True
        )
        for row in rows:
            figures = Figures(row.last_order_at, row.orders or 0, row.spend or 0)
            scored = rules.scores(figures, cuts)
            last = row.last_order_at
            yield (
                row.member_id,
                from_micros(row.entered_at).isoformat(),
                from_micros(last).isoformat() if last is not None else "",
                rules.days_between(last, now) if last is not None else "",
                figures.orders,
                figures.spend,
                scored.recency,
                scored.frequency,
                scored.monetary,
            )
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1].member_id
