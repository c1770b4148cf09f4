"""The Python SDK (clients/sdk.py) and the POS example against a real server, on both backends.

Retries are exercised with a client-side interceptor that fails chosen attempts
with UNAVAILABLE or ABORTED, either before the request leaves the client or after
the server has applied it (the answer "lost on the way back"), and records the
idempotency key and deadline every attempt carried.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from clients import pos_example
from clients.sdk import LedgerApiError, LedgerClient
from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, programs_pb2


def member() -> str:
    return f"m-{secrets.token_hex(6)}"


def order() -> str:
    return f"o-{secrets.token_hex(6)}"


@pytest.fixture
def client(program):
    with LedgerClient(program.backend.target, program.admin_key) as sdk:
        yield sdk


class _InjectedFailure(grpc.RpcError):
    """What a failed call looks like to the caller, minus rich details."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"injected {self._code.name}"

    def trailing_metadata(self):
        return ()


class FlakyNetwork(grpc.UnaryUnaryClientInterceptor):
    """Fails the first `failures` attempts of each RPC named in `methods` with `code`.

    before_server=True: the attempt never reaches the server.
    before_server=False: the server applies the attempt, then its answer is lost.
    Every attempt's (method, idempotency key, deadline) is recorded.
    """

    def __init__(self, methods, failures=1, code=grpc.StatusCode.UNAVAILABLE, before_server=True) -> None:
        self.methods = set(methods)
        self.failures = failures
        self.code = code
        self.before_server = before_server
        self.attempts: list[tuple[str, str, float | None]] = []
        self._failed: dict[str, int] = {}

    def intercept_unary_unary(self, continuation, client_call_details, request):
        method = client_call_details.method.rsplit("/", 1)[-1]
        self.attempts.append((method, getattr(request, "idempotency_key", ""), client_call_details.timeout))
        if method in self.methods and self._failed.get(method, 0) < self.failures:
            self._failed[method] = self._failed.get(method, 0) + 1
            if not self.before_server:
                continuation(client_call_details, request).result()  # applied on the server
            raise _InjectedFailure(self.code)
        return continuation(client_call_details, request)

    def keys(self, method: str) -> list[str]:
        return [key for name, key, _ in self.attempts if name == method]


def flaky_client(program, network: FlakyNetwork, **options) -> LedgerClient:
    channel = grpc.intercept_channel(grpc.insecure_channel(program.backend.target), network)
    options.setdefault("initial_backoff", 0.001)
    return LedgerClient("unused", program.admin_key, channel=channel, **options)


def test_happy_path_with_a_pos_key(program):
    m, o = member(), order()
    with LedgerClient(program.backend.target, program.key(Role.POS)) as pos:
        enrolled = pos.enroll_member(m)
        assert enrolled.created and enrolled.member.member_id == m
        assert not pos.enroll_member(m).created

        quote = pos.quote_earn(m, o, 2599, "USD", "POS")
        assert quote.transaction.points == 25 and quote.transaction.transaction_id == ""

        earned = pos.earn(
            m,
            o,
            2599,
            "USD",
            common_pb2.CHANNEL_POS,
            lines=[{"sku": "A1", "category": "shoes", "quantity": 1, "amount": 2599}],
            occurred_at=datetime.now(timezone.utc) - timedelta(hours=1),
            store_id="store-9",
        )
        tx = earned.transaction
        assert (tx.kind, tx.points, tx.order_id, tx.store_id) == (common_pb2.TRANSACTION_KIND_EARN, 25, o, "store-9")
        assert [(b.source, b.points) for b in tx.breakdown] == [(common_pb2.POINTS_SOURCE_BASE, 25)]
        assert tx.idempotency_key  # the SDK generated one

        redeemed = pos.redeem(m, 10, order_id=o, channel="CHANNEL_POS")
        assert redeemed.balance.available == 15
        assert pos.get_member(m).member.balance.posted == 15

        statement = pos.list_transactions(m, kinds=["EARN"])
        assert [t.transaction_id for t in statement.transactions] == [tx.transaction_id]


def test_support_and_program_calls(client):
    m = member()
    client.enroll_member(m)
    adjusted = client.adjust_points(m, 40, "goodwill: late delivery")
    assert adjusted.balance.posted == 40 and adjusted.transaction.reason == "goodwill: late delivery"
    reversed_ = client.reverse_transaction(adjusted.transaction.transaction_id, "entered twice")
    assert reversed_.transaction.reverses_transaction_id == adjusted.transaction.transaction_id
    assert reversed_.balance.posted == 0

    program = client.get_program().program
    assert program.currency == "USD"
    updated = client.update_program(
        programs_pb2.Program(earn_rate=programs_pb2.EarnRate(points=2, per_amount=100)), ["earn_rate"]
    )
    assert (updated.program.earn_rate.points, updated.program.earn_rate.per_amount) == (2, 100)
    assert client.quote_earn(m, order(), 1000, "USD", "WEB").transaction.points == 20


def test_holds_and_refunds(program):
    m, o = member(), order()
    network = FlakyNetwork({"CaptureRedemption", "RefundOrder"}, failures=1, before_server=False)
    with flaky_client(program, network) as sdk:
        sdk.enroll_member(m)
        sdk.earn(m, o, 10_000, "USD", "POS")

        hold = sdk.authorize_redemption(m, 40, order_id=o, ttl_seconds=600).hold
        assert hold.state == hold.STATE_OPEN and hold.points == 40
        assert sdk.get_member(m).member.balance.held == 40
        captured = sdk.capture_redemption(hold.hold_id, 30)  # the first answer is lost; the retry replays it
        assert captured.hold.state == captured.hold.STATE_CAPTURED
        assert (captured.balance.posted, captured.balance.held, captured.balance.available) == (70, 0, 70)
        with pytest.raises(LedgerApiError) as caught:
            sdk.void_redemption(hold.hold_id)
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_OPEN")

        other = sdk.authorize_redemption(m, 5).hold
        assert sdk.void_redemption(other.hold_id).balance.held == 0

        refunded = sdk.refund_order(m, o, 5_000, "USD", reason="half returned")
        assert refunded.transaction.kind == common_pb2.TRANSACTION_KIND_REFUND
        assert refunded.transaction.points == -50 and refunded.balance.posted == 20

    assert len(set(network.keys("CaptureRedemption"))) == 1 and len(network.keys("CaptureRedemption")) == 2
    assert len(set(network.keys("RefundOrder"))) == 1 and len(network.keys("RefundOrder")) == 2


def test_refusal_is_raised_with_its_reason(client):
    m = member()
    client.enroll_member(m)
    client.earn(m, order(), 500, "USD", "POS")
    with pytest.raises(LedgerApiError) as caught:
        client.redeem(m, 6, idempotency_key="redeem-too-much")
    error = caught.value
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "INSUFFICIENT_POINTS"
    assert error.domain == "loyalty.v1"
    assert error.metadata == {"requested": "6", "available": "5"}
    assert "5 available" in error.message
    assert error.field_violations == []
    assert error.idempotency_key == "redeem-too-much"


def test_invalid_argument_carries_field_violations(client):
    m = member()
    client.enroll_member(m)
    with pytest.raises(LedgerApiError) as caught:
        client.earn(m, "", -5, "ABC", "POS")
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FIELD"
    fields = [field for field, _ in error.field_violations]
    assert {"order.order_id", "order.amount", "order.currency"} <= set(fields)
    assert all(description for _, description in error.field_violations)


def test_unknown_key_and_unknown_member(program):
    with LedgerClient(program.backend.target, "lk_nope_nope") as stranger:
        with pytest.raises(LedgerApiError) as caught:
            stranger.get_member("m-1")
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    with LedgerClient(program.backend.target, program.admin_key) as sdk:
        with pytest.raises(LedgerApiError) as caught:
            sdk.get_member(member())
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND")


@pytest.mark.parametrize("before_server", [True, False], ids=["lost-request", "lost-answer"])
@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED])
def test_retries_reuse_the_idempotency_key_and_apply_once(program, code, before_server):
    m = member()
    network = FlakyNetwork({"Earn", "Redeem"}, failures=2, code=code, before_server=before_server)
    with flaky_client(program, network) as sdk:
        sdk.enroll_member(m)
        earned = sdk.earn(m, order(), 10_000, "USD", "POS")
        redeemed = sdk.redeem(m, 30)

        earn_keys, redeem_keys = network.keys("Earn"), network.keys("Redeem")
        assert len(earn_keys) == 3 and len(set(earn_keys)) == 1
        assert len(redeem_keys) == 3 and len(set(redeem_keys)) == 1
        assert earn_keys[0] != redeem_keys[0]  # one key per logical operation
        assert earned.transaction.idempotency_key == earn_keys[0]

        assert (earned.balance.posted, redeemed.balance.posted) == (100, 70)
        kinds = [t.kind for t in sdk.iter_transactions(m)]
        assert kinds == [common_pb2.TRANSACTION_KIND_REDEEM, common_pb2.TRANSACTION_KIND_EARN]
        assert sdk.get_member(m).member.balance.posted == 70


def test_every_attempt_has_a_deadline_and_attempts_are_bounded(program):
    network = FlakyNetwork({"GetMember"}, failures=100)
    with flaky_client(program, network, timeout=2.5, max_attempts=3) as sdk:
        with pytest.raises(LedgerApiError) as caught:
            sdk.get_member(member())
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert [name for name, _, _ in network.attempts] == ["GetMember"] * 3
    assert all(timeout == 2.5 for _, _, timeout in network.attempts)


def test_refusals_are_not_retried(program):
    m = member()
    network = FlakyNetwork(set())
    with flaky_client(program, network) as sdk:
        sdk.enroll_member(m)
        with pytest.raises(LedgerApiError) as caught:
            sdk.redeem(m, 1)
    assert caught.value.reason == "INSUFFICIENT_POINTS"
    assert [name for name, _, _ in network.attempts] == ["EnrollMember", "Redeem"]


def test_iter_transactions_walks_every_page(client):
    m = member()
    client.enroll_member(m)
    earned = [client.earn(m, order(), 100 * (i + 1), "USD", "POS").transaction.transaction_id for i in range(7)]

    first = client.list_transactions(m, page_size=3)
    assert len(first.transactions) == 3 and first.next_page_token

    walked = list(client.iter_transactions(m, page_size=3))
    assert [t.transaction_id for t in walked] == earned[::-1]  # newest first, each once
    assert [t.points for t in walked] == [7, 6, 5, 4, 3, 2, 1]
    assert [t.transaction_id for t in client.iter_transactions(m, page_size=7)] == earned[::-1]
    assert list(client.iter_transactions(m, kinds=["REDEEM"])) == []


def test_naive_datetimes_are_refused_before_sending(client):
    with pytest.raises(ValueError):
        client.earn(member(), order(), 100, "USD", "POS", occurred_at=datetime(2026, 1, 1))


@pytest.mark.parametrize("role", [Role.POS, Role.ADMIN])
def test_pos_example_runs_end_to_end(program, role, capsys):
    key = program.admin_key if role is Role.ADMIN else program.key(role)
    m = member()
    argv = ["--target", program.backend.target, "--key", key, "--member", m]
    assert pos_example.main(argv) == 0
    out = capsys.readouterr().out
    assert f"member {m}: enrolled" in out
    assert "earned 25 points" in out
    assert "INSUFFICIENT_POINTS" in out
    assert "EARN" in out and "REDEEM" in out

    assert pos_example.main(argv) == 0  # a second run finds the member and earns on a new order
    assert f"member {m}: already enrolled" in capsys.readouterr().out


def test_pos_example_reports_a_bad_key(program, capsys):
    assert pos_example.main(["--target", program.backend.target, "--key", "lk_bad_key"]) == 1
    assert "API_KEY_INVALID" in capsys.readouterr().err
