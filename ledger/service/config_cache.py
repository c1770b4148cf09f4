"""A per-process cache of each program's configuration (settings history, tiers, campaigns,
segments and the RFM cut points),
keyed by the program's config_version.

Every earn reads the program row anyway; when its config_version matches the cached one,
the three configuration queries are skipped. Any settings, tier, campaign or segment change (and each segments refresh) bumps
the version in the same database transaction, so a server never earns with a stale copy,
and several server processes need no coordination.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.store.database import Transaction

from ledger.domain.campaigns import CampaignRule
from ledger.domain.program import ProgramRules
from ledger.domain.segments import CutPoints, Segment
from ledger.domain.tiers import TierDefinition
from ledger.service import clock
from ledger.store import campaigns, programs
from ledger.store import segments as segment_store
from ledger.store import tiers as tier_store

# Orders older than this can never be accepted (max_backdate_days is at most 3650).
OLDEST_ORDER = timedelta(days=3660)


@dataclass(frozen=True)
class ProgramConfig:
    version: int
    history: list[tuple[datetime, ProgramRules]]
    tiers: list[TierDefinition]
    campaigns: list[CampaignRule]
    segments: list[Segment] = field(default_factory=list)
    cuts: CutPoints = CutPoints()

    def rules_at(self, at: datetime) -> ProgramRules | None:
        """The settings version in force at `at` (the earliest one before the program existed)."""
        chosen = self.history[0][1] if self.history else None
        for effective_at, rules in self.history:
            if effective_at <= at:
                chosen = rules
        return chosen

    def campaigns_at(self, at: datetime) -> list[CampaignRule]:
        return [c for c in self.campaigns if c.active_at(at)]


_lock = threading.Lock()
_cache: dict[str, ProgramConfig] = {}


def config(conn: Transaction, program_id: str, version: int) -> ProgramConfig:
    with _lock:
        cached = _cache.get(program_id)
    if cached is not None and cached.version == version:
        return cached
    loaded = ProgramConfig(
        version,
        programs.settings_history(conn, program_id),
        tier_store.definitions(conn, program_id),
        campaigns.rules_ending_after(conn, program_id, clock.now() - OLDEST_ORDER),
        segment_store.all_segments(conn, program_id),
        segment_store.cuts(conn, program_id),
    )
    with _lock:
        _cache[program_id] = loaded
    return loaded
