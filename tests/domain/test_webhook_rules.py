"""Webhooks' pure rules (ledger.domain.webhooks): which URLs and addresses may be called, and
the retry schedule (exponential, jittered, bounded, over at the end of the window)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import LedgerError
from ledger.domain.webhooks import RetryPolicy, addresses_problem, parse_url


@pytest.mark.parametrize(
    "url",
    ["https://crm.example.com/hooks", "https://crm.example.com:8443/h?x=1", "http://127.0.0.1:8080/h",
     "http://localhost/h", "http://[::1]:9000/h"],
)  # fmt: skip
def test_accepted_forms(url):
    assert parse_url(url).url == url


@pytest.mark.parametrize(
    "url",
    ["", "crm.example.com/hooks", "ftp://example.com/", "http://example.com/", "http://10.0.0.1/",
     "https://u:p@example.com/", "https:///nohost", "https://example.com/#frag", "https://example.com:99999/",
     "https://" + "a" * 2050 + ".com/"],
)  # fmt: skip
def test_refused_forms(url):
    with pytest.raises(LedgerError) as refused:
        parse_url(url)
    assert refused.value.reason == "WEBHOOK_URL_REFUSED" and refused.value.violations[0].field == "url"


@pytest.mark.parametrize(
    "address, allowed_when_private_allowed",
    [("10.0.0.1", True), ("172.16.5.4", True), ("192.168.1.1", True), ("169.254.169.254", True),
     ("fe80::1", True), ("fd12::1", True), ("100.64.1.1", True), ("0.0.0.0", False), ("224.0.0.1", False),
     ("::ffff:10.0.0.1", True), ("240.0.0.1", False)],
)  # fmt: skip
def test_non_public_addresses_are_refused_unless_allowed(address, allowed_when_private_allowed):
    target = parse_url("https://hooks.example.com/h")
    assert addresses_problem(target, [address], allow_private=False)
    assert (addresses_problem(target, [address], allow_private=True) is None) == allowed_when_private_allowed


def test_public_and_loopback_addresses_pass_and_one_bad_address_spoils_all():
    target = parse_url("https://hooks.example.com/h")
    assert addresses_problem(target, ["93.184.216.34", "2606:2800:220:1::1", "127.0.0.1"], False) is None
    assert addresses_problem(target, ["93.184.216.34", "10.0.0.1"], False)
    assert addresses_problem(target, [], False)
    assert addresses_problem(parse_url("http://localhost/h"), ["127.0.0.1", "::1"], False) is None
    assert addresses_problem(parse_url("http://localhost/h"), ["93.184.216.34"], True)  # http: loopback only


@given(st.integers(1, 60), st.floats(0.01, 10), st.floats(1, 7200), st.integers(0, 2**32))
def test_backoff_grows_is_jittered_and_capped(attempts, base, cap, seed):
    policy = RetryPolicy(base, cap, 86400)
    rng = random.Random(seed)
    step = min(cap, base * 2 ** (attempts - 1))
    delay = policy.delay(attempts, rng)
    assert step / 2 <= delay <= step
    if attempts > 1 and base * 2 ** (attempts - 1) <= cap:
        assert policy.delay(attempts, random.Random(seed)) >= min(cap, base * 2 ** (attempts - 2))


@given(st.floats(0, 200_000), st.integers(1, 40))
def test_retries_go_on_for_the_window_then_stop(elapsed, attempts):
    policy = RetryPolicy(1, 3600, 86400)
    retry_at = policy.after_failure(attempts, 1000.0, 1000.0 + elapsed, random.Random(0))
    if elapsed >= 86400:
        assert retry_at is None
    else:
        assert retry_at is not None and retry_at > 1000.0 + elapsed
