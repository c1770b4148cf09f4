"""Role table of DESIGN.md section 6 and the API key format."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import credentials
from ledger.domain.kinds import Role
from ledger.domain.roles import may_call

POS_RPCS = {
    "EnrollMember", "GetMember", "Earn", "QuoteEarn", "Redeem", "AuthorizeRedemption",
    "CaptureRedemption", "VoidRedemption", "RefundOrder", "RecordActivity", "ListTransactions",
}


def test_pos_role():
    assert all(may_call(Role.POS, "Ledger", rpc) for rpc in POS_RPCS)
    assert not may_call(Role.POS, "Ledger", "AdjustPoints")
    assert not may_call(Role.POS, "Programs", "GetProgram")


def test_support_is_pos_plus_corrections():
    assert all(may_call(Role.SUPPORT, "Ledger", rpc) for rpc in POS_RPCS | {"AdjustPoints", "ReverseTransaction"})
    assert not may_call(Role.SUPPORT, "Programs", "SetTiers")


def test_storefront_reads_and_activities_only():
    for rpc in ("EnrollMember", "GetMember", "QuoteEarn", "ListTransactions", "RecordActivity"):
        assert may_call(Role.STOREFRONT, "Ledger", rpc)
    for rpc in ("ListTiers", "ListRewards"):
        assert may_call(Role.STOREFRONT, "Programs", rpc)
    for rpc in ("Earn", "Redeem", "AdjustPoints"):
        assert not may_call(Role.STOREFRONT, "Ledger", rpc)
    assert not may_call(Role.STOREFRONT, "Programs", "CreateCampaign")


def test_marketing_configures_and_reads():
    assert may_call(Role.MARKETING, "Programs", "CreateCampaign")
    assert may_call(Role.MARKETING, "Ledger", "GetMember")
    assert not may_call(Role.MARKETING, "Ledger", "Earn")


@pytest.mark.parametrize("rpc", sorted(POS_RPCS | {"AdjustPoints", "ReverseTransaction"}))
def test_admin_may_call_everything(rpc):
    assert may_call(Role.ADMIN, "Ledger", rpc)


def test_issued_key_round_trip():
    issued = credentials.issue_key()
    assert credentials.key_id_of(issued.plaintext) == issued.key_id
    assert credentials.key_matches(issued.plaintext, issued.secret_hash)
    assert not credentials.key_matches(issued.plaintext + "x", issued.secret_hash)


@given(st.text(max_size=300))
def test_key_id_of_never_crashes(text):
    key_id = credentials.key_id_of(text)
    assert key_id is None or (key_id.startswith("lk_") and len(key_id) == 15)


def test_referral_codes_are_unambiguous():
    code = credentials.new_referral_code()
    assert len(code) == 10 and not set(code) & set("01ILOU")


def test_new_ids_are_unique_shaped_and_follow_time(monkeypatch):
    """Fresh ids sort by when they were made, so the indexes they lead grow at their right edge."""
    clock = iter([1_000_000_000_000_000, 1_000_000_001_000_000, 1_000_000_002_000_000])
    monkeypatch.setattr(credentials.time, "time_ns", lambda: next(clock))
    earlier, later = credentials.new_ids("tx", 1000), credentials.new_ids("tx", 1000)
    assert len(set(earlier + later)) == 2000
    assert all(len(i) == len("tx_") + 32 and int(i[3:], 16) >= 0 for i in earlier + later)
    assert max(earlier) < min(later)
    assert credentials.new_id("hold").startswith("hold_")


@given(st.text(max_size=64))
def test_fresh_system_keys_are_marked_and_follow_their_id(source):
    key = credentials.fresh_system_key("expire", source)
    assert key.startswith(credentials.SYSTEM_KEY_MARK + "expire:") and key.endswith(source)
