"""Per-key rate limits, who did what, and revocation.

The token bucket itself with an injected clock (refill, burst, per-key
isolation, retry-after, threads); then an in-process server started with a small
limit against the PostgreSQL test database: a burst beyond the limit is
RESOURCE_EXHAUSTED / RATE_LIMITED with retry_after_ms and records nothing,
another key is unaffected, and after waiting calls succeed again. Also: every
transaction names the key and channel that made it (on the Earn's answer and in
ListTransactions), and a revoked key is refused on its very next call.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.api import rate_limits
from ledger.api import server as grpc_server
from ledger.api.rate_limits import RateLimiter
from ledger.domain.errors import Category, LedgerError
from ledger.domain.kinds import Role
from loyalty.client import LedgerApiError, LedgerClient, RetryPolicy
from loyalty.v1 import common_pb2, ledger_pb2
from ledger.service.keys import revoke_keys
from tests.conftest import Api
from tests.grpc_helpers import earn_request, expect_error

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the token bucket ----------------------------------------------------------------------


def test_a_full_bucket_allows_a_burst_then_refuses():
    clock = FakeClock()
    limiter = RateLimiter(2, 5, clock=clock)
    assert [limiter.try_acquire("k") for _ in range(5)] == [0.0] * 5
    wait = limiter.try_acquire("k")
    assert wait == pytest.approx(0.5)  # 2 tokens a second: the next one in half a second


def test_the_bucket_refills_at_the_rate_and_never_above_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(2, 3, clock=clock)
    for _ in range(3):
        assert limiter.try_acquire("k") == 0.0
    clock.advance(0.25)
    assert limiter.try_acquire("k") == pytest.approx(0.25)  # half a token there
    clock.advance(0.25)
    assert limiter.try_acquire("k") == 0.0  # one token after 0.5 s
    assert limiter.try_acquire("k") > 0
    clock.advance(3600)  # an hour idle refills to the burst, not to 7200
    assert [limiter.try_acquire("k") for _ in range(4)][:3] == [0.0] * 3
    assert limiter.try_acquire("k") > 0


def test_refused_calls_take_no_token():
    clock = FakeClock()
    limiter = RateLimiter(1, 1, clock=clock)
    assert limiter.try_acquire("k") == 0.0
    for _ in range(10):
        assert limiter.try_acquire("k") == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.try_acquire("k") == 0.0


def test_keys_have_separate_buckets():
    clock = FakeClock()
    limiter = RateLimiter(1, 2, clock=clock)
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") > 0
    assert limiter.try_acquire("b") == 0.0
    assert limiter.try_acquire("b") == 0.0
    assert limiter.try_acquire("b") > 0


def test_a_clock_going_backwards_refunds_nothing():
    clock = FakeClock()
    limiter = RateLimiter(1, 1, clock=clock)
    assert limiter.try_acquire("k") == 0.0
    clock.advance(-50)
    assert limiter.try_acquire("k") > 0


def test_burst_defaults_to_one_second_of_calls():
    assert RateLimiter(10).burst == 10
    assert RateLimiter(0.5).burst == 1
    assert RateLimiter(2.5).burst == 3


def test_zero_means_unlimited_and_negative_is_refused():
    assert rate_limits.from_settings(0, 0) is None
    assert rate_limits.from_settings(0, 10) is None
    unlimited = RateLimiter(0, clock=FakeClock())
    assert unlimited.unlimited and all(unlimited.try_acquire("k") == 0.0 for _ in range(1000))
    with pytest.raises(ValueError):
        RateLimiter(-1)
    with pytest.raises(ValueError):
        RateLimiter(1, -1)


def test_check_raises_rate_limited_with_retry_after_ms():
    clock = FakeClock()
    limiter = RateLimiter(4, 1, clock=clock)
    limiter.check("k")
    with pytest.raises(LedgerError) as caught:
        limiter.check("k")
    error = caught.value
    assert error.category is Category.RESOURCE_EXHAUSTED
    assert error.reason == "RATE_LIMITED"
    assert error.metadata == {"retry_after_ms": "250"}


def test_threads_never_get_more_than_the_burst():
    limiter = RateLimiter(0.001, 50, clock=FakeClock())  # no refill to speak of
    allowed = []
    barrier = threading.Barrier(8)

    def hammer() -> None:
        barrier.wait()
        allowed.append(sum(limiter.try_acquire("k") == 0.0 for _ in range(100)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 50


# -- over gRPC ---------------------------------------------------------------------------------

RATE, BURST = 1.0, 3


@pytest.fixture(scope="module")
def limited_target(postgres_backend):
    running = grpc_server.start(
        postgres_backend.db, "127.0.0.1:0", max_workers=8, limiter=RateLimiter(RATE, BURST)
    )
    yield f"127.0.0.1:{running.port}"
    running.stop(1)


def _retry_after_ms(error: grpc.RpcError) -> int:
    for detail in rpc_status.from_call(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return int(info.metadata["retry_after_ms"])
    raise AssertionError("no ErrorInfo")


def test_a_burst_beyond_the_limit_is_rate_limited_and_recovers(limited_target, pg_program):
    pos = Api(limited_target, pg_program.key(Role.POS))
    other = Api(limited_target, pg_program.key(Role.POS))
    try:
        pos.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-rl"), metadata=pos.metadata)
        for _ in range(BURST - 1):
            pos.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-rl"), metadata=pos.metadata)
        # The bucket is empty now (refill of 1/s is far slower than these calls).
        request = earn_request("m-rl", 1000)
        with expect_error(EXHAUSTED, "RATE_LIMITED") as caught:
            pos.ledger.Earn(request, metadata=pos.metadata)
        assert 0 < _retry_after_ms(caught.value) <= 1000 / RATE
        with expect_error(EXHAUSTED, "RATE_LIMITED"):
            pos.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-rl"), metadata=pos.metadata)

        # Another key of the same program has its own bucket.
        member = other.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-rl"), metadata=other.metadata)
        assert member.member.balance.posted == 0  # the refused Earn recorded nothing

        time.sleep(1 / RATE + 0.2)  # a token is there again
        earned = pos.ledger.Earn(request, metadata=pos.metadata)
        assert earned.transaction.points > 0 and earned.balance.posted == earned.transaction.points
        statement = other.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id="m-rl"), metadata=other.metadata
        ).transactions
        assert [t.transaction_id for t in statement] == [earned.transaction.transaction_id]
    finally:
        pos.close()
        other.close()


def test_unauthenticated_calls_do_not_spend_a_keys_tokens(limited_target, pg_program):
    key = pg_program.key(Role.POS)
    api = Api(limited_target, key)
    forged = Api(limited_target, key[:-4] + "AAAA")
    try:
        for _ in range(BURST * 3):
            with expect_error(grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"):
                forged.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="x"), metadata=forged.metadata)
        for _ in range(BURST):
            with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
                api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="x"), metadata=api.metadata)
    finally:
        api.close()
        forged.close()


def test_the_sdk_does_not_retry_rate_limited_calls(limited_target, pg_program):
    with LedgerClient(limited_target, pg_program.key(Role.POS), policy=RetryPolicy(max_attempts=4)) as client:
        for _ in range(BURST):
            with pytest.raises(LedgerApiError):
                client.get_member(member_id="nobody")
        started = time.monotonic()
        with pytest.raises(LedgerApiError) as caught:
            client.get_member(member_id="nobody")
        assert time.monotonic() - started < 0.3  # raised at once, not after backoff and retries
    assert caught.value.code == EXHAUSTED
    assert caught.value.reason == "RATE_LIMITED"
    assert int(caught.value.metadata["retry_after_ms"]) > 0


def test_the_shared_test_server_is_unlimited(program):
    api = program.api(Role.POS)
    try:
        for _ in range(50):
            with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
                api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="x"), metadata=api.metadata)
    finally:
        api.close()


# -- who did what, and revocation -----------------------------------------------------------------


def test_a_transaction_names_its_key_and_channel(program):
    key = program.key(Role.POS)
    key_id = key[: len("lk_") + 12]
    api = Api(program.backend.target, key)
    try:
        api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-audit"), metadata=api.metadata)
        earned = api.ledger.Earn(
            earn_request("m-audit", 2599, channel=common_pb2.CHANNEL_WEB), metadata=api.metadata
        ).transaction
        assert earned.api_key_id == key_id
        assert earned.channel == common_pb2.CHANNEL_WEB
        listed = api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id="m-audit"), metadata=api.metadata
        ).transactions
        assert [(t.transaction_id, t.api_key_id, t.channel) for t in listed] == [
            (earned.transaction_id, key_id, common_pb2.CHANNEL_WEB)
        ]
        # Read back by another key (the admin's), the transaction still names the POS key.
        admin = program.api(Role.ADMIN)
        try:
            seen = admin.ledger.ListTransactions(
                ledger_pb2.ListTransactionsRequest(member_id="m-audit"), metadata=admin.metadata
            ).transactions
        finally:
            admin.close()
        assert [t.api_key_id for t in seen] == [key_id]
    finally:
        api.close()


def test_revocation_takes_effect_on_the_next_call(program):
    key = program.key(Role.POS)
    api = Api(program.backend.target, key)
    try:
        with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
            api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="x"), metadata=api.metadata)
        assert revoke_keys(program.backend.db, key) == [key[: len("lk_") + 12]]
        with expect_error(grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"):  # same channel, no wait
            api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="x"), metadata=api.metadata)
    finally:
        api.close()
