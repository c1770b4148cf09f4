"""A tier carried over by an import: held a full period from the import, never a move down,
and only a tier the program has."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import LedgerError
from ledger.domain.program import ProgramRules
from ledger.domain.tiers import TierDefinition, TierState, carried_over

LADDER = [TierDefinition("Member", 0), TierDefinition("Silver", 10_000, 15_000), TierDefinition("Gold", 50_000, 20_000)]
RULES = ProgramRules("p", "p")
AT = datetime(2026, 6, 1, tzinfo=timezone.utc)


def held(name: str) -> TierState:
    tier = next(t for t in LADDER if t.name == name)
    return TierState(name, tier.multiplier_bps, AT - timedelta(days=10), AT + timedelta(days=355))


def test_a_member_without_a_tier_gets_it_for_a_full_period_from_the_import():
    change = carried_over(LADDER, RULES, None, "Silver", AT)
    assert change is not None and change.old == ""
    assert change.new == TierState("Silver", 15_000, AT, AT + timedelta(days=RULES.tier_period_days))


def test_an_unknown_tier_is_refused_with_the_program_tiers_named():
    with pytest.raises(LedgerError) as refused:
        carried_over(LADDER, RULES, None, "Platinum", AT)
    assert refused.value.reason == "INVALID_FIELD" and "Gold" in refused.value.message


@given(st.sampled_from(LADDER), st.sampled_from(LADDER))
def test_an_import_only_ever_moves_a_member_up(holding, imported):
    change = carried_over(LADDER, RULES, held(holding.name), imported.name, AT)
    up = LADDER.index(imported) > LADDER.index(holding)
    assert (change is not None) == up
    if change is not None:
        assert (change.old, change.new.name) == (holding.name, imported.name)
