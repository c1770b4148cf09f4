"""The liability report's reads: the ledger as it stood at an instant, summed in the database.

Three scans, each returning a few rows per day (ledger.domain.liability folds them):
entries by day and kind; the breakdown lines of earns and activities by day and source (for
settled days from their rollup, see roll_up_sources, and scanned only after them);
lots as they stood then (a lot's remaining points at `as_of` are today's plus what was
consumed after `as_of`) with their pending, expired and expiring parts and each lot's
expired points, by the day the lot was credited. Holds open at `as_of` come from holds'
own create and close times.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.domain.liability import DAY_MICROS
from ledger.store.tables import liability_day_sources, liability_rollups

_BY_KIND = f"""
    SELECT created_at / {DAY_MICROS} AS day, kind,
           COALESCE(SUM(CASE WHEN points > 0 THEN points ELSE 0 END), 0) AS credits,
           COALESCE(SUM(CASE WHEN points < 0 THEN points ELSE 0 END), 0) AS debits
    FROM entries
    WHERE program_id = :p AND created_at <= :t
    GROUP BY created_at / {DAY_MICROS}, kind
"""

_BY_SOURCE = {
    "postgresql": f"""
        SELECT t.created_at / {DAY_MICROS} AS day, line.source, SUM(line.points) AS points
        FROM transactions t CROSS JOIN LATERAL json_to_recordset(t.breakdown::json) AS line(source text, points bigint)
        WHERE t.program_id = :p AND t.kind IN ('EARN', 'ACTIVITY') AND t.created_at >= :since AND t.created_at <= :t
        GROUP BY 1, 2
    """,
    "sqlite": f"""
        SELECT t.created_at / {DAY_MICROS} AS day, json_extract(line.value, '$.source') AS source,
               SUM(json_extract(line.value, '$.points')) AS points
        FROM transactions t, json_each(t.breakdown) line
        WHERE t.program_id = :p AND t.kind IN ('EARN', 'ACTIVITY') AND t.created_at >= :since AND t.created_at <= :t
        GROUP BY 1, 2
    """,
}

# A lot received by transfer ends in "/" and six digits (ledger.domain.transfers.received_lot_id).
_LOTS = f"""
    WITH later AS (
        SELECT member_id, lot_id, SUM(points) AS points FROM lot_consumptions
        WHERE program_id = :p AND created_at > :t
        GROUP BY member_id, lot_id
    ), expired AS (
        SELECT c.member_id, c.lot_id, SUM(c.points) AS points
        FROM lot_consumptions c
        JOIN transactions x ON x.program_id = c.program_id AND x.transaction_id = c.transaction_id
        WHERE c.program_id = :p AND c.created_at <= :t AND x.kind = 'EXPIRE'
        GROUP BY c.member_id, c.lot_id
    ), lot AS (
        SELECT l.created_at / {DAY_MICROS} AS day,
               CASE WHEN l.lot_id LIKE '%/______' THEN 1 ELSE 0 END AS moved,
               l.points, l.remaining + COALESCE(later.points, 0) AS remaining,
               COALESCE(expired.points, 0) AS expired, l.available_at, l.expires_at
        FROM lots l
        LEFT JOIN later ON later.member_id = l.member_id AND later.lot_id = l.lot_id
        LEFT JOIN expired ON expired.member_id = l.member_id AND expired.lot_id = l.lot_id
        WHERE l.program_id = :p AND l.created_at <= :t
    )
    SELECT day, moved,
           COALESCE(SUM(points), 0) AS issued,
           COALESCE(SUM(expired), 0) AS expired,
           COALESCE(SUM(remaining), 0) AS outstanding,
           COALESCE(SUM(CASE WHEN available_at > :t AND (expires_at IS NULL OR expires_at > :t)
                             THEN remaining ELSE 0 END), 0) AS pending,
           COALESCE(SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= :t THEN remaining ELSE 0 END), 0)
               AS past_expiry,
           COALESCE(SUM(CASE WHEN expires_at > :t AND expires_at <= :t + 30 * {DAY_MICROS}
                             THEN remaining ELSE 0 END), 0) AS within_30,
           COALESCE(SUM(CASE WHEN expires_at > :t AND expires_at <= :t + 60 * {DAY_MICROS}
                             THEN remaining ELSE 0 END), 0) AS within_60,
           COALESCE(SUM(CASE WHEN expires_at > :t AND expires_at <= :t + 90 * {DAY_MICROS}
                             THEN remaining ELSE 0 END), 0) AS within_90
    FROM lot
    GROUP BY day, moved
"""

_HELD = """
    SELECT COALESCE(SUM(points), 0) FROM holds
    WHERE program_id = :p AND created_at <= :t AND (closed_at IS NULL OR closed_at > :t) AND expires_at > :t
"""


def by_kind(conn: Connection, program_id: str, at: int) -> list[tuple[int, str, int, int]]:
    rows = conn.execute(text(_BY_KIND), {"p": program_id, "t": at}).all()
    return [(int(r.day), r.kind, int(r.credits), int(r.debits)) for r in rows]


def by_source(conn: Connection, program_id: str, at: int) -> list[tuple[int, str, int]]:
    """Points issued by day and source up to `at`: the rolled-up days before at's day, and a
    scan of what was recorded since."""
    rolled = _rolled_until(conn, program_id, lock=False) or 0
    boundary = min(rolled, at // DAY_MICROS)
    return _rolled_up(conn, program_id, before_day=boundary) + _scan_sources(conn, program_id, boundary * DAY_MICROS, at)


def _rolled_up(conn: Connection, program_id: str, before_day: int | None = None) -> list[tuple[int, str, int]]:
    """The rolled-up sums (day, source, points), of the days before before_day (None: all)."""
    query = select(liability_day_sources.c.day, liability_day_sources.c.source, liability_day_sources.c.points).where(
        liability_day_sources.c.program_id == program_id
    )
    if before_day is not None:
        query = query.where(liability_day_sources.c.day < before_day)
    return [(int(r.day), str(r.source), int(r.points)) for r in conn.execute(query)]


def _scan_sources(conn: Connection, program_id: str, since: int, at: int) -> list[tuple[int, str, int]]:
    rows = conn.execute(text(_BY_SOURCE[conn.dialect.name]), {"p": program_id, "since": since, "t": at}).all()
    return [(int(r.day), str(r.source), int(r.points)) for r in rows]


# A day's transactions are all recorded once it has been over this long: each is stamped with
# the time its unit of work started, which commits within its statement and lock timeouts (the
# longest, an expiry batch, within minutes), never hours later.
SETTLED_AFTER_MICROS = 6 * 3600 * 1_000_000


def roll_up_sources(conn: Connection, program_id: str, now: int) -> int:
    """Sums the points issued by source for every settled day not rolled up yet, in conn's
    transaction; returns how many days it covered. Another transaction rolling up the same
    program at once is left to it (PostgreSQL: the row lock is skipped, nothing waits).
    start_rollup must have committed first."""
    settled = (now - SETTLED_AFTER_MICROS) // DAY_MICROS  # days before this one are complete
    rolled = _rolled_until(conn, program_id, lock=True)
    if rolled is None or rolled >= settled:
        return 0
    sums = _scan_sources(conn, program_id, rolled * DAY_MICROS, settled * DAY_MICROS - 1)
    if sums:
        conn.execute(
            insert(liability_day_sources),
            [{"program_id": program_id, "day": day, "source": source, "points": points} for day, source, points in sums],
        )
    conn.execute(
        update(liability_rollups).where(liability_rollups.c.program_id == program_id).values(sources_until_day=settled)
    )
    return settled - rolled


def rollup_breaches(conn: Connection, limit: int = 20) -> list[dict]:
    """Rolled-up days whose sums differ from the ledger's transactions now: a day rolled up
    before all of it was recorded (a server's clock hours behind the others, say), or a
    rollup row changed by hand. For `verify`; a full pass over the rolled-up history. A ledger
    not yet migrated to 0017 has no rollup to check."""
    found: list[dict] = []
    if not inspect(conn).has_table(liability_rollups.name):
        return found
    rollups = conn.execute(select(liability_rollups.c.program_id, liability_rollups.c.sources_until_day)).all()
    for program_id, until in rollups:
        ledger = {(day, source): points for day, source, points in _scan_sources(conn, program_id, 0, until * DAY_MICROS - 1)}
        kept = {(day, source): points for day, source, points in _rolled_up(conn, program_id)}
        for day, source in sorted(set(ledger) | set(kept)):
            if ledger.get((day, source), 0) != kept.get((day, source), 0):
                found.append(
                    {"program_id": program_id, "day": day, "source": source,
                     "rolled_up": kept.get((day, source), 0), "ledger": ledger.get((day, source), 0)}
                )
                if len(found) >= limit:
                    return found
    return found


def start_rollup(conn: Connection, program_id: str) -> None:
    """The program's rollup row, nothing rolled up yet, unless it has one: in a short
    transaction of its own, so that two first reports at once never wait on each other's
    uncommitted row while one of them sums the whole history."""
    conn.execute(_start_rollup[conn.dialect.name], {"program_id": program_id, "sources_until_day": 0})


_start_rollup = {
    "postgresql": postgresql.insert(liability_rollups).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(liability_rollups).on_conflict_do_nothing(),
}


def _rolled_until(conn: Connection, program_id: str, *, lock: bool) -> int | None:
    """The first day not rolled up (None: locked by another transaction rolling up)."""
    query = select(liability_rollups.c.sources_until_day).where(liability_rollups.c.program_id == program_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def lot_days(conn: Connection, program_id: str, at: int) -> list:
    return list(conn.execute(text(_LOTS), {"p": program_id, "t": at}).all())


def held(conn: Connection, program_id: str, at: int) -> int:
    return int(conn.execute(text(_HELD), {"p": program_id, "t": at}).scalar_one())
