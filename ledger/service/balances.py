"""A member's live balance: posted from the cached row, pending and held computed at `now`.

Pending points mature and holds lapse by time alone, with no write at that moment,
so both are computed when asked rather than cached.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from ledger.domain.balance import Balance
from ledger.store import lots


def live_balance(conn: Connection, program_id: str, member_id: str, posted: int, now: datetime) -> Balance:
    pending, held = lots.pending_and_held(conn, program_id, member_id, now)
    return Balance(posted=posted, pending=pending, held=held)
