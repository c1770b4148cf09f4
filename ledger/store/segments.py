"""RFM figures, cut points, segments and their members: rows and the set-based refresh.

A member's figures are summed from the ledger's own rows (transactions of kind EARN for the
last order and the order count, qualifying_events for the spend, refunds and reversals
included), through the member-leading indexes; an Earn reads the stored row instead and adds
its order to it. The refresh sums them for every member of a program
in single INSERT ... SELECT statements (no row goes through Python: memory stays flat), then
the quintile cut points with ROW_NUMBER() and each segment's entries and exits as set
differences, written with their events (segment.entered / segment.exited) in SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Connection, bindparam, cast, literal, literal_column, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.domain import events
from ledger.domain.segments import (
    DAY_MICROS,
    CutPoints,
    Figures,
    Range,
    Segment,
    SegmentConditions,
    conditions_json,
    presets,
)
from ledger.store import members as member_store
from ledger.store import outbox
from ledger.store.engine import without_statement_timeout
from ledger.store.instants import from_micros, to_micros
from ledger.store.postgres import prefetch, write_behind
from ledger.store.programs import bump_config_version
from ledger.store.tables import (
    member_rfm,
    programs,
    qualifying_events,
    referrals,
    rfm_cuts,
    segment_members,
    segments,
    transactions,
)

# ------------------------------------------------------------------ one member's figures

_window_start = bindparam("at", type_=BigInteger) - (
    cast(select(programs.c.rfm_window_days).where(programs.c.program_id == bindparam("program_id")).scalar_subquery(), BigInteger)
    * literal(DAY_MICROS, BigInteger)
)


def _earns():
    # kind || '' rather than kind: the condition must not imply the predicate of the partial
    # indexes on EARN rows (by order, by time), which lead with other keys than the member; a
    # planner without statistics would walk one of them program-wide. The member's own rows
    # come from ix_transactions_member_kind whatever the statistics say.
    return (
        transactions.c.member_id == bindparam("member_id"),
        transactions.c.program_id == bindparam("program_id"),
        (transactions.c.kind + literal_column("''")) == "EARN",
    )


_figures = select(
    select(func.max(transactions.c.occurred_at)).where(*_earns()).scalar_subquery().label("last_order_at"),
    select(func.count()).select_from(transactions)
    .where(*_earns(), transactions.c.occurred_at > _window_start)
    .scalar_subquery()
    .label("orders"),
    select(func.coalesce(func.sum(qualifying_events.c.spend), 0))
    .where(
        qualifying_events.c.member_id == bindparam("member_id"),
        qualifying_events.c.program_id == bindparam("program_id"),
        qualifying_events.c.occurred_at > _window_start,
    )
    .scalar_subquery()
    .label("spend"),
)

# The member's figures in the window ending at `at`, from the ledger (prefetched by Earn).
FIGURES = prefetch.Read("rfm_figures", _figures, ("program_id", "member_id", "at"))

_membership = select(segment_members.c.segment_id).where(
    segment_members.c.member_id == bindparam("member_id"), segment_members.c.program_id == bindparam("program_id")
)

# The ids of the segments the member is in now.
MEMBERSHIP = prefetch.Read("segment_membership", _membership, ("program_id", "member_id"), many=True)


_stored = select(member_rfm.c.last_order_at, member_rfm.c.orders, member_rfm.c.spend).where(
    member_rfm.c.program_id == bindparam("program_id"), member_rfm.c.member_id == bindparam("member_id")
)

# The member's figures as last stored (by the refresh or the member's own last change):
# one primary-key read, prefetched by Earn, whatever the member's history.
STORED_FIGURES = prefetch.Read("rfm_stored", _stored, ("program_id", "member_id"))


def figures_ahead_where_unstored(conn: Connection, program_id: str, member_ids: list[str], at: datetime) -> None:
    """After STORED_FIGURES was fetched ahead for member_ids (prefetch.load_many), fetches FIGURES
    ahead for those without a stored row, in one statement (PostgreSQL; SQLite reads each
    when it is needed)."""
    if conn.dialect.name != "postgresql":
        return
    unstored = [
        {"member_id": member_id}
        for member_id in member_ids
        if prefetch.peek(conn, STORED_FIGURES, {"program_id": program_id, "member_id": member_id}) is None
    ]
    prefetch.load_many(conn, (FIGURES,), {"program_id": program_id, "at": to_micros(at)}, unstored)


def stored_figures(conn: Connection, program_id: str, member_id: str) -> Figures | None:
    row = prefetch.read(conn, STORED_FIGURES, {"program_id": program_id, "member_id": member_id})
    return Figures(row.last_order_at, int(row.orders), int(row.spend)) if row else None


def figures(conn: Connection, program_id: str, member_id: str, at: datetime) -> Figures:
    row = prefetch.read(conn, FIGURES, {"program_id": program_id, "member_id": member_id, "at": to_micros(at)})
    return Figures(row.last_order_at, int(row.orders), int(row.spend))


def membership(conn: Connection, program_id: str, member_id: str) -> frozenset[str]:
    rows = prefetch.read(conn, MEMBERSHIP, {"program_id": program_id, "member_id": member_id})
    return frozenset(row.segment_id for row in rows)


def referrals_made(conn: Connection, program_id: str, member_id: str) -> int:
    return conn.execute(
        select(func.count()).select_from(referrals).where(
            referrals.c.referrer_id == member_id, referrals.c.program_id == program_id
        )
    ).scalar_one()


_upsert_figures = {}
for _dialect, _insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert)):
    _statement = _insert(member_rfm)
    _upsert_figures[_dialect] = _statement.on_conflict_do_update(
        index_elements=[member_rfm.c.program_id, member_rfm.c.member_id],
        set_=dict(
            last_order_at=_statement.excluded.last_order_at,
            orders=_statement.excluded.orders,
            spend=_statement.excluded.spend,
            computed_at=_statement.excluded.computed_at,
        ),
    )

_enter = {
    "postgresql": postgresql.insert(segment_members).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(segment_members).on_conflict_do_nothing(),
}
_exit = delete(segment_members).where(
    segment_members.c.segment_id == bindparam("p_segment"),
    segment_members.c.program_id == bindparam("p_program"),
    segment_members.c.member_id == bindparam("p_member"),
)


def _update_figures(dialect: str):
    # Relative: what an Earn adds lands on the row as it is when the UPDATE runs (a refresh that
    # committed meanwhile included), not on the copy the Earn read before.
    greatest = func.greatest if dialect == "postgresql" else func.max  # SQLite's two-argument max
    occurred = bindparam("p_last", type_=BigInteger)
    return (
        update(member_rfm)
        .where(member_rfm.c.program_id == bindparam("p_program"), member_rfm.c.member_id == bindparam("p_member"))
        .values(
            last_order_at=greatest(func.coalesce(member_rfm.c.last_order_at, occurred), occurred),
            orders=member_rfm.c.orders + bindparam("p_orders"),
            spend=member_rfm.c.spend + bindparam("p_spend"),
            computed_at=bindparam("p_at"),
        )
    )


_add_to_figures = {dialect: _update_figures(dialect) for dialect in ("postgresql", "sqlite")}


def save_figures(
    conn: Connection, program_id: str, member_id: str, found: Figures, at: datetime, *, added: Figures | None = None
) -> None:
    """Stores the member's figures: `found` in full, or with `added` (one order: its time, and
    the order and spend it adds, 0 when it lies outside the window) onto the member's row, which
    exists (read under the member's lock; rows are never deleted)."""
    if added is not None:
        write_behind.execute(
            conn, _add_to_figures[conn.dialect.name],
            dict(
                p_program=program_id, p_member=member_id, p_last=added.last_order_at, p_orders=added.orders,
                p_spend=added.spend, p_at=to_micros(at),
            ),
        )
        return
    write_behind.execute(
        conn,
        _upsert_figures[conn.dialect.name],
        dict(
            program_id=program_id,
            member_id=member_id,
            last_order_at=found.last_order_at,
            orders=found.orders,
            spend=found.spend,
            computed_at=to_micros(at),
        ),
    )


def move(conn: Connection, program_id: str, member_id: str, entered: tuple[str, ...], exited: tuple[str, ...], at: datetime) -> None:
    write_behind.execute(
        conn,
        _enter[conn.dialect.name],
        [dict(segment_id=s, program_id=program_id, member_id=member_id, entered_at=to_micros(at)) for s in entered],
    )
    write_behind.execute(conn, _exit, [dict(p_segment=s, p_program=program_id, p_member=member_id) for s in exited])


# ------------------------------------------------------------------ cut points and segments


def cuts(conn: Connection, program_id: str) -> CutPoints:
    row = conn.execute(select(rfm_cuts).where(rfm_cuts.c.program_id == program_id)).first()
    if row is None:
        return CutPoints()
    return CutPoints(
        tuple(json.loads(row.recency)),
        tuple(json.loads(row.frequency)),
        tuple(json.loads(row.monetary)),
        from_micros(row.computed_at),
        row.members,
    )


@dataclass(frozen=True)
class SegmentRecord:
    segment: Segment
    created_at: datetime
    updated_at: datetime
    computed_at: datetime | None


def _record(row) -> SegmentRecord:
    return SegmentRecord(
        Segment(
            row.segment_id,
            row.name,
            row.description,
            SegmentConditions.from_json(json.loads(row.conditions)),
            bool(row.preset),
        ),
        from_micros(row.created_at),
        from_micros(row.updated_at),
        from_micros(row.computed_at) if row.computed_at is not None else None,
    )


def all_segments(conn: Connection, program_id: str) -> list[Segment]:
    rows = conn.execute(select(segments).where(segments.c.program_id == program_id).order_by(segments.c.segment_id))
    return [_record(row).segment for row in rows]


def get(conn: Connection, program_id: str, segment_id: str, *, lock: bool = False) -> SegmentRecord | None:
    query = select(segments).where(segments.c.program_id == program_id, segments.c.segment_id == segment_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return _record(row) if row else None


def by_name(conn: Connection, program_id: str, name: str) -> SegmentRecord | None:
    row = conn.execute(select(segments).where(segments.c.name == name, segments.c.program_id == program_id)).first()
    return _record(row) if row else None


def page(conn: Connection, program_id: str, after: str, limit: int) -> list[SegmentRecord]:
    query = select(segments).where(segments.c.program_id == program_id)
    if after:
        query = query.where(segments.c.segment_id > after)
    return [_record(r) for r in conn.execute(query.order_by(segments.c.segment_id).limit(limit))]


def size(conn: Connection, program_id: str, segment_id: str) -> int:
    return conn.execute(
        select(func.count()).select_from(segment_members).where(
            segment_members.c.segment_id == segment_id, segment_members.c.program_id == program_id
        )
    ).scalar_one()


def members_page(conn: Connection, program_id: str, segment_id: str, after: str, limit: int) -> list[tuple[str, datetime]]:
    """(member_id, entered_at) in member_id order after `after`."""
    query = select(segment_members.c.member_id, segment_members.c.entered_at).where(
        segment_members.c.segment_id == segment_id, segment_members.c.program_id == program_id
    )
    if after:
        query = query.where(segment_members.c.member_id > after)
    rows = conn.execute(query.order_by(segment_members.c.member_id).limit(limit))
    return [(r.member_id, from_micros(r.entered_at)) for r in rows]


def insert_segment(conn: Connection, program_id: str, segment: Segment, now: datetime) -> None:
    bump_config_version(conn, program_id)
    conn.execute(
        insert(segments).values(
            program_id=program_id,
            segment_id=segment.segment_id,
            name=segment.name,
            description=segment.description,
            conditions=conditions_json(segment.conditions),
            preset=segment.preset,
            created_at=to_micros(now),
            updated_at=to_micros(now),
            computed_at=None,
        )
    )


def insert_presets(conn: Connection, program_id: str, now: datetime) -> None:
    for segment in presets():
        insert_segment(conn, program_id, segment, now)


def save(conn: Connection, program_id: str, segment: Segment, now: datetime) -> None:
    """New name, description or conditions; membership follows at the next refresh (or the
    member's next change)."""
    bump_config_version(conn, program_id)
    conn.execute(
        update(segments)
        .where(segments.c.program_id == program_id, segments.c.segment_id == segment.segment_id)
        .values(
            name=segment.name,
            description=segment.description,
            conditions=conditions_json(segment.conditions),
            updated_at=to_micros(now),
        )
    )


def refreshed_at(conn: Connection) -> dict[str, int]:
    """program_id -> when its cut points were last computed (absent: never)."""
    return {r.program_id: r.computed_at for r in conn.execute(select(rfm_cuts.c.program_id, rfm_cuts.c.computed_at))}


# ------------------------------------------------------------------ the refresh (set-based)

# Every member's figures from the ledger. A row the member's own change recomputed after
# `fresh` is kept: it may have committed after this statement's snapshot, and it is exact. A
# row whose figures did not change is not written (the daily run rewrites only what moved).
_REFRESH_FIGURES = """
INSERT INTO member_rfm (program_id, member_id, last_order_at, orders, spend, computed_at)
SELECT m.program_id, m.member_id, o.last_order_at, COALESCE(o.orders, 0), COALESCE(q.spend, 0), :now
FROM members m
LEFT JOIN (
    SELECT member_id, MAX(occurred_at) AS last_order_at,
           SUM(CASE WHEN occurred_at > :since THEN 1 ELSE 0 END) AS orders
    FROM transactions WHERE program_id = :program_id AND kind = 'EARN' GROUP BY member_id
) o ON o.member_id = m.member_id
LEFT JOIN (
    SELECT member_id, SUM(spend) AS spend
    FROM qualifying_events WHERE program_id = :program_id AND occurred_at > :since GROUP BY member_id
) q ON q.member_id = m.member_id
WHERE m.program_id = :program_id
ON CONFLICT (program_id, member_id) DO UPDATE SET
    last_order_at = excluded.last_order_at, orders = excluded.orders, spend = excluded.spend,
    computed_at = excluded.computed_at
WHERE member_rfm.computed_at < :fresh AND (
    member_rfm.orders <> excluded.orders OR member_rfm.spend <> excluded.spend
    OR COALESCE(member_rfm.last_order_at, -1) <> COALESCE(excluded.last_order_at, -1)
)
"""

# The value at positions ceil(k*N/5), k = 1..4, of a measure sorted ascending.
_CUTS = """
SELECT v FROM (
    SELECT v, ROW_NUMBER() OVER (ORDER BY v) AS rn, COUNT(*) OVER () AS n
    FROM (SELECT {measure} AS v FROM member_rfm WHERE program_id = :program_id) s
) r
WHERE rn IN ((n + 4) / 5, (2 * n + 4) / 5, (3 * n + 4) / 5, (4 * n + 4) / 5)
ORDER BY rn
"""
_MEASURES = {"recency": "COALESCE(last_order_at, 0)", "frequency": "orders", "monetary": "spend"}


def refresh_figures(conn: Connection, program_id: str, window_days: int, now: datetime, fresh: datetime) -> None:
    without_statement_timeout(conn)  # a pass over the program's whole ledger: as long as it is big
    at = to_micros(now)
    conn.execute(
        text(_REFRESH_FIGURES),
        {"program_id": program_id, "now": at, "since": at - window_days * DAY_MICROS, "fresh": to_micros(fresh)},
    )


# Members whose own change (an Earn, a refund) wrote their figures while the pass above ran,
# or just before it: it left them alone, as a concurrent change's figures are newer than its
# snapshot. An Earn's figures are its stored row plus the order, so left alone every day they
# would keep orders that have left the window: they are recomputed right after, each member
# under its row lock (no change of theirs in flight), one member's few index entries each.
_RECENTLY_CHANGED = """
SELECT member_id FROM member_rfm
WHERE program_id = :program_id AND computed_at >= :fresh AND computed_at <> :now
ORDER BY member_id
"""
_RECOMPUTE_MEMBERS = text("""
INSERT INTO member_rfm (program_id, member_id, last_order_at, orders, spend, computed_at)
SELECT m.program_id, m.member_id,
       (SELECT MAX(t.occurred_at) FROM transactions t
        WHERE t.member_id = m.member_id AND t.program_id = m.program_id AND t.kind || '' = 'EARN'),
       (SELECT COUNT(*) FROM transactions t
        WHERE t.member_id = m.member_id AND t.program_id = m.program_id AND t.kind || '' = 'EARN'
          AND t.occurred_at > :since),
       (SELECT COALESCE(SUM(q.spend), 0) FROM qualifying_events q
        WHERE q.member_id = m.member_id AND q.program_id = m.program_id AND q.occurred_at > :since),
       :now
FROM members m
WHERE m.program_id = :program_id AND m.member_id IN :ids
ON CONFLICT (program_id, member_id) DO UPDATE SET
    last_order_at = excluded.last_order_at, orders = excluded.orders, spend = excluded.spend,
    computed_at = excluded.computed_at
""").bindparams(bindparam("ids", expanding=True))
SETTLE_BATCH = 1000


def settle_recent(conn: Connection, program_id: str, window_days: int, now: datetime, fresh: datetime) -> int:
    """Recomputes, exactly, the figures refresh_figures left alone (see _RECENTLY_CHANGED)
    in conn's transaction; returns how many members."""
    at = to_micros(now)
    params = {"program_id": program_id, "now": at, "fresh": to_micros(fresh), "since": at - window_days * DAY_MICROS}
    ids = list(conn.execute(text(_RECENTLY_CHANGED), params).scalars())
    for start in range(0, len(ids), SETTLE_BATCH):
        chunk = ids[start : start + SETTLE_BATCH]
        member_store.lock_in_key_order(conn, program_id, chunk)
        # A statement of its own, so that under READ COMMITTED its snapshot is taken with the
        # locks held: it sees every change of these members that committed before.
        conn.execute(_RECOMPUTE_MEMBERS, {**params, "ids": chunk})
    return len(ids)


def analyze(conn: Connection) -> None:
    """Fresh planner statistics for the tables the refresh just filled (PostgreSQL): right
    after a first refresh the planner would still see member_rfm and segment_members as
    nearly empty and walk one of them once per row of the other."""
    if conn.dialect.name == "postgresql":
        without_statement_timeout(conn)
        conn.execute(text("ANALYZE member_rfm, segment_members"))


def refresh_cuts(conn: Connection, program_id: str, now: datetime) -> CutPoints:
    without_statement_timeout(conn)
    found = {}
    for name, measure in _MEASURES.items():
        values = [int(v) for v in conn.execute(text(_CUTS.format(measure=measure)), {"program_id": program_id}).scalars()]
        # N < 5 repeats a position; rn IN (...) then returns fewer rows: fill from the positions.
        found[name] = _positions(values, conn, program_id, measure) if len(values) != 4 else tuple(values)
    members = conn.execute(
        select(func.count()).select_from(member_rfm).where(member_rfm.c.program_id == program_id)
    ).scalar_one()
    row: dict = dict(
        computed_at=to_micros(now), members=members,
        recency=json.dumps(list(found["recency"])), frequency=json.dumps(list(found["frequency"])),
        monetary=json.dumps(list(found["monetary"])),
    )
    updated = conn.execute(update(rfm_cuts).where(rfm_cuts.c.program_id == program_id).values(**row)).rowcount
    if not updated:
        conn.execute(insert(rfm_cuts).values(program_id=program_id, **row))
    bump_config_version(conn, program_id)  # servers reload the cut points with the configuration
    return CutPoints(found["recency"], found["frequency"], found["monetary"], now, members)


def _positions(distinct_rows: list[int], conn: Connection, program_id: str, measure: str) -> tuple[int, ...]:
    """Few members: the positions repeat; read the sorted values (at most 4) and index them."""
    if not distinct_rows:
        return ()
    values = sorted(
        int(v) for v in conn.execute(text(f"SELECT {measure} FROM member_rfm WHERE program_id = :program_id"), {"program_id": program_id}).scalars()
    )
    n = len(values)
    return tuple(values[(k * n + 4) // 5 - 1] for k in range(1, 5))


def _score_sql(column: str, cuts: tuple[int, ...], name: str, params: dict) -> str:
    if not cuts:
        return "0"
    terms = []
    for k, cut in enumerate(cuts):
        params[f"{name}_{k}"] = cut
        terms.append(f"CASE WHEN {column} > :{name}_{k} THEN 1 ELSE 0 END")
    return "(1 + " + " + ".join(terms) + ")"


def _range_sql(expression: str, r: Range, name: str, params: dict) -> list[str]:
    found = []
    if r.low is not None:
        params[f"{name}_low"] = r.low
        found.append(f"{expression} >= :{name}_low")
    if r.high is not None:
        params[f"{name}_high"] = r.high
        found.append(f"{expression} <= :{name}_high")
    return found


def matching_sql(conditions: SegmentConditions, cut_points: CutPoints, params: dict, entry_tier: str = "") -> tuple[str, str]:
    """(FROM clause, predicate) over member_rfm r (and members m when a condition needs it)
    that holds for the members the conditions hold for at :now: the SQL twin of
    ledger.domain.segments.matches (available points: posted - held - pending lots). The
    predicate is never NULL."""
    where = []
    c = conditions
    if c.uses("recency_days"):
        where.append("r.last_order_at IS NOT NULL")
        where += _range_sql(f"((:now - COALESCE(r.last_order_at, 0)) / {DAY_MICROS})", c.recency_days, "rd", params)
    where += _range_sql("r.orders", c.orders, "ord", params)
    where += _range_sql("r.spend", c.spend, "sp", params)
    if c.uses("recency_score"):
        where += _range_sql(_score_sql("COALESCE(r.last_order_at, 0)", cut_points.recency, "rc", params), c.recency_score, "rs", params)
    if c.uses("frequency_score"):
        where += _range_sql(_score_sql("r.orders", cut_points.frequency, "fc", params), c.frequency_score, "fs", params)
    if c.uses("monetary_score"):
        where += _range_sql(_score_sql("r.spend", cut_points.monetary, "mc", params), c.monetary_score, "ms", params)
    where += _range_sql(f"((:now - m.enrolled_at) / {DAY_MICROS})", c.days_since_enrolment, "de", params)
    if c.uses("available_points"):
        pending = (
            "(SELECT COALESCE(SUM(l.remaining), 0) FROM lots l WHERE l.member_id = m.member_id"
            " AND l.program_id = m.program_id AND l.available_at > :now)"
        )
        where += _range_sql(f"(m.posted - m.held - {pending})", c.available_points, "av", params)
    if c.uses("referrals_made"):
        made = "(SELECT COUNT(*) FROM referrals x WHERE x.referrer_id = m.member_id AND x.program_id = m.program_id)"
        where += _range_sql(made, c.referrals_made, "rm", params)
    if c.tiers:
        names = []
        for i, tier in enumerate(c.tiers):
            params[f"tier_{i}"] = tier
            names.append(f":tier_{i}")
        # A member without a tier row holds the entry tier (threshold 0), if the program has one.
        params["entry_tier"] = entry_tier
        where.append(
            "COALESCE((SELECT t.tier_name FROM member_tiers t WHERE t.program_id = m.program_id"
            f" AND t.member_id = m.member_id), :entry_tier) IN ({', '.join(names)})"
        )
    predicate = " AND ".join(where) if where else "1 = 1"
    source = "member_rfm r"
    if "m." in predicate:
        source += " JOIN members m ON m.program_id = r.program_id AND m.member_id = r.member_id"
    return source, predicate


def refresh_segment(
    conn: Connection, program_id: str, segment: Segment, cut_points: CutPoints, now: datetime, fresh: datetime,
    entry_tier: str = "",
) -> tuple[int, int]:
    """Brings the segment's members up to date; returns (entered, exited). Their events take
    the program's event head last, just before the commit (ledger.store.outbox)."""
    without_statement_timeout(conn)
    params: dict = {
        "program_id": program_id, "segment_id": segment.segment_id, "now": to_micros(now), "fresh": to_micros(fresh),
    }
    source, predicate = matching_sql(segment.conditions, cut_points, params, entry_tier)
    conn.execute(text("DROP TABLE IF EXISTS segment_delta"))
    conn.execute(text("CREATE TEMPORARY TABLE segment_delta (member_id VARCHAR(128) PRIMARY KEY, entered INTEGER NOT NULL)"))
    # Members whose own change recomputed them after :fresh are left as that change left them.
    # Anti- and plain joins against the segment's members (never NOT IN over a subquery, which
    # PostgreSQL cannot hash beyond work_mem).
    conn.execute(
        text(
            f"INSERT INTO segment_delta (member_id, entered) SELECT r.member_id, 1 FROM {source}"
            f" WHERE r.program_id = :program_id AND r.computed_at <= :fresh AND ({predicate})"
            " AND NOT EXISTS (SELECT 1 FROM segment_members c WHERE c.segment_id = :segment_id"
            " AND c.program_id = :program_id AND c.member_id = r.member_id)"
        ),
        params,
    )
    conn.execute(
        text(
            f"INSERT INTO segment_delta (member_id, entered) SELECT r.member_id, 0 FROM {source}"
            " JOIN segment_members c ON c.segment_id = :segment_id AND c.program_id = r.program_id"
            " AND c.member_id = r.member_id"
            f" WHERE r.program_id = :program_id AND r.computed_at <= :fresh AND NOT ({predicate})"
        ),
        params,
    )
    entered, exited = conn.execute(
        text("SELECT COALESCE(SUM(entered), 0), COALESCE(SUM(1 - entered), 0) FROM segment_delta")
    ).one()
    entered, exited = int(entered), int(exited)
    if entered:
        conn.execute(
            text(
                "INSERT INTO segment_members (segment_id, program_id, member_id, entered_at)"
                " SELECT :segment_id, :program_id, member_id, :now FROM segment_delta WHERE entered = 1"
                " ON CONFLICT DO NOTHING"
            ),
            params,
        )
    if exited:
        conn.execute(
            text(
                "DELETE FROM segment_members WHERE segment_id = :segment_id AND program_id = :program_id"
                " AND member_id IN (SELECT member_id FROM segment_delta WHERE entered = 0)"
            ),
            params,
        )
    conn.execute(
        update(segments)
        .where(segments.c.program_id == program_id, segments.c.segment_id == segment.segment_id)
        .values(computed_at=to_micros(now))
    )
    if entered + exited:
        conn.execute(text(outbox.BUMP_HEAD), {"program_id": program_id, "n": entered + exited})
        conn.execute(
            text(
                "INSERT INTO events (program_id, position, type, member_id, transaction_id, occurred_at, created_at, payload)"
                " SELECT :program_id, h.last_position - :n + ROW_NUMBER() OVER (ORDER BY d.entered DESC, d.member_id),"
                " CASE WHEN d.entered = 1 THEN :type_in ELSE :type_out END, d.member_id, NULL, :now, :now, :payload"
                " FROM segment_delta d CROSS JOIN event_heads h WHERE h.program_id = :program_id"
            ),
            {**params, "n": entered + exited, "type_in": "segment.entered", "type_out": "segment.exited",
             "payload": events.segment_payload(segment.segment_id, segment.name, "refresh")},
        )
    conn.execute(text("DROP TABLE segment_delta"))
    return entered, exited



def export_page(conn: Connection, program_id: str, segment_id: str, after: str, limit: int):
    """Rows of (member_id, entered_at, last_order_at, orders, spend) in member_id order."""
    query = (
        select(
            segment_members.c.member_id,
            segment_members.c.entered_at,
            member_rfm.c.last_order_at,
            member_rfm.c.orders,
            member_rfm.c.spend,
        )
        .select_from(
            segment_members.outerjoin(
                member_rfm,
                (member_rfm.c.program_id == segment_members.c.program_id)
                & (member_rfm.c.member_id == segment_members.c.member_id),
            )
        )
        .where(segment_members.c.segment_id == segment_id, segment_members.c.program_id == program_id)
    )
    if after:
        query = query.where(segment_members.c.member_id > after)
    return conn.execute(query.order_by(segment_members.c.member_id).limit(limit)).all()
