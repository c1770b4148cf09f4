"""The liability report's reads: the ledger as it stood at an instant, summed in the database.

Three scans, each returning a few rows per day (ledger.domain.liability folds them):
entries by day and kind; the breakdown lines of earns and activities by day and source;
lots as they stood then (a lot's remaining points at `as_of` are today's plus what was
consumed after `as_of`) with their pending, expired and expiring parts and each lot's
expired points, by the day the lot was credited. Holds open at `as_of` come from holds'
own create and close times.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ledger.domain.liability import DAY_MICROS

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
        WHERE t.program_id = :p AND t.kind IN ('EARN', 'ACTIVITY') AND t.created_at <= :t
        GROUP BY 1, 2
    """,
    "sqlite": f"""
        SELECT t.created_at / {DAY_MICROS} AS day, json_extract(line.value, '$.source') AS source,
               SUM(json_extract(line.value, '$.points')) AS points
        FROM transactions t, json_each(t.breakdown) line
        WHERE t.program_id = :p AND t.kind IN ('EARN', 'ACTIVITY') AND t.created_at <= :t
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
    rows = conn.execute(text(_BY_SOURCE[conn.dialect.name]), {"p": program_id, "t": at}).all()
    return [(int(r.day), str(r.source), int(r.points)) for r in rows]


def lot_days(conn: Connection, program_id: str, at: int) -> list:
    return list(conn.execute(text(_LOTS), {"p": program_id, "t": at}).all())


def held(conn: Connection, program_id: str, at: int) -> int:
    return int(conn.execute(text(_HELD), {"p": program_id, "t": at}).scalar_one())
