"""Who may call what: API keys, the role table of DESIGN.md section 6, and the program boundary.

Over real gRPC on both backends, this proves that a call without a usable key
(no metadata, malformed, unknown, wrong secret, revoked) is UNAUTHENTICATED /
API_KEY_INVALID and writes nothing; that every (role, RPC) pair of both services
follows the role table (allowed pairs are never PERMISSION_DENIED, the others are
PERMISSION_DENIED / ROLE_NOT_ALLOWED and record nothing under their key); and that
a program is a hard tenant boundary: another program's members and transactions
are NOT_FOUND, exactly as if they did not exist, and ids, idempotency keys and
order ids of different programs never collide.
"""

from __future__ import annotations

import secrets

import grpc
import pytest
from google.protobuf import message_factory

from ledger.domain.kinds import Role
from loyalty.v1 import events_pb2, ledger_pb2, programs_pb2
from ledger.service.keys import revoke_keys
from tests.conftest import Api, new_program
from tests.grpc_helpers import earn, earn_request, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, outcome, snapshot

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

LEDGER_RPCS = [m.name for m in ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].methods]
PROGRAMS_RPCS = [m.name for m in programs_pb2.DESCRIPTOR.services_by_name["Programs"].methods]
EVENTS_RPCS = [m.name for m in events_pb2.DESCRIPTOR.services_by_name["Events"].methods]

# DESIGN.md section 6, written out independently of ledger/domain/roles.py.
POS = {
    "Ledger/EnrollMember",
    "Ledger/GetMember",
    "Ledger/Earn",
    "Ledger/QuoteEarn",
    "Ledger/Redeem",
    "Ledger/AuthorizeRedemption",
    "Ledger/CaptureRedemption",
    "Ledger/VoidRedemption",
    "Ledger/RefundOrder",
    "Ledger/RecordActivity",
    "Ledger/ListTransactions",
}
STOREFRONT = {
    "Ledger/EnrollMember",
    "Ledger/GetMember",
    "Ledger/QuoteEarn",
    "Ledger/ListTransactions",
    "Programs/ListTiers",
    "Programs/ListRewards",
    "Ledger/RecordActivity",
}
SUPPORT = POS | {"Ledger/AdjustPoints", "Ledger/ReverseTransaction"}
# DESIGN.md section 10: the role `events` (and admin) reads events, nothing else.
EVENTS = {"Events/ListEvents", "Events/WatchEvents"}
# QuoteEarn: marketing previews what an order earns under a campaign (README, "Keys and roles").
# Webhooks: marketing may see them and their deliveries; creating, deleting and redelivering
# sends the events (members' ids and all) to a URL, which only admin may (README "Keys and roles").
ADMIN_ONLY_PROGRAMS = {"Programs/CreateWebhook", "Programs/DeleteWebhook", "Programs/RedeliverEvents"}
MARKETING = ({f"Programs/{rpc}" for rpc in PROGRAMS_RPCS} - ADMIN_ONLY_PROGRAMS) | {
    "Ledger/GetMember", "Ledger/ListTransactions", "Ledger/QuoteEarn"
}
EVERYTHING = (
    {f"Ledger/{rpc}" for rpc in LEDGER_RPCS} | {f"Programs/{rpc}" for rpc in PROGRAMS_RPCS} | {f"Events/{rpc}" for rpc in EVENTS_RPCS}
)
ALLOWED = {
    Role.POS: POS,
    Role.STOREFRONT: STOREFRONT,
    Role.SUPPORT: SUPPORT,
    Role.MARKETING: MARKETING,
    Role.EVENTS: EVENTS,
    Role.ADMIN: EVERYTHING,
}


DESIGN_LEDGER_RPCS = {
    "EnrollMember", "GetMember", "Earn", "QuoteEarn", "Redeem", "AuthorizeRedemption", "CaptureRedemption",
    "VoidRedemption", "RefundOrder", "RecordActivity", "AdjustPoints", "ReverseTransaction", "ListTransactions",
}  # fmt: skip
DESIGN_PROGRAMS_RPCS = {
    "GetProgram", "UpdateProgram", "SetTiers", "ListTiers", "CreateCampaign", "UpdateCampaign", "GetCampaign",
    "ListCampaigns", "PauseCampaign", "CreateReward", "ListRewards",
}  # fmt: skip
DESIGN_EVENTS_RPCS = {"ListEvents", "WatchEvents"}


def test_the_contract_has_every_rpc_of_the_design():
    assert DESIGN_LEDGER_RPCS <= set(LEDGER_RPCS)
    assert DESIGN_PROGRAMS_RPCS <= set(PROGRAMS_RPCS)
    assert DESIGN_EVENTS_RPCS <= set(EVENTS_RPCS)
    for role, allowed in ALLOWED.items():
        assert allowed <= EVERYTHING, role


def _expected(role: Role, service: str, rpc: str) -> bool | None:
    """True/False from the role table; None for an RPC added beyond DESIGN.md, which the table cannot place
    (except that admin may call everything and marketing the whole Programs service)."""
    if role is Role.ADMIN or (role is Role.MARKETING and service == "Programs"):
        return f"{service}/{rpc}" not in ADMIN_ONLY_PROGRAMS or role is Role.ADMIN
    design = {"Ledger": DESIGN_LEDGER_RPCS, "Programs": DESIGN_PROGRAMS_RPCS, "Events": DESIGN_EVENTS_RPCS}[service]
    if rpc not in design:
        return None
    return f"{service}/{rpc}" in ALLOWED[role]


_MODULES = {"Ledger": ledger_pb2, "Programs": programs_pb2, "Events": events_pb2}


def _empty_request(service: str, rpc: str):
    descriptor = _MODULES[service].DESCRIPTOR.services_by_name[service]
    return message_factory.GetMessageClass(descriptor.methods_by_name[rpc].input_type)()


def _stub(api, service: str, rpc: str):
    return getattr({"Ledger": api.ledger, "Programs": api.programs, "Events": api.events}[service], rpc)


# ------------------------------------------------------------------ authentication


def _raw_call(api, metadata):
    return api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)


BAD_METADATA = {
    "no-metadata": None,
    "no-authorization": (("x-api-key", "whatever"),),
    "bearer-only": (("authorization", "Bearer"),),
    "bearer-blank": (("authorization", "Bearer    "),),
    "basic-scheme": (("authorization", "Basic dXNlcjpwYXNz"),),
    "no-scheme": (("authorization", "lk_0123456789ab_secret"),),
    "not-a-key": (("authorization", "Bearer not-a-key"),),
    "short-key": (("authorization", "Bearer lk_0123"),),
    "key-without-secret": (("authorization", "Bearer lk_0123456789ab_"),),
    "key-too-long": (("authorization", "Bearer lk_0123456789ab_" + "x" * 300),),
    "unknown-key": (("authorization", "Bearer lk_0123456789ab_" + "s" * 32),),
}


@pytest.mark.parametrize("metadata", BAD_METADATA.values(), ids=BAD_METADATA.keys())
def test_missing_malformed_or_unknown_key_is_unauthenticated(program, api, metadata):
    enroll(api, "m-1")
    with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
        _raw_call(api, metadata)


def test_real_key_id_with_wrong_secret_is_unauthenticated(program, api):
    enroll(api, "m-1")
    pos_key = program.key(Role.POS)
    key_id = pos_key[: len("lk_") + 12]
    for forged in (f"{key_id}_{'A' * 32}", pos_key[:-1] + ("A" if pos_key[-1] != "A" else "B"), pos_key + "x"):
        with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
            _raw_call(api, (("authorization", f"Bearer {forged}"),))
    # The real key works, with either capitalisation of the scheme.
    for scheme in ("Bearer", "bearer"):
        assert _raw_call(api, (("authorization", f"{scheme} {pos_key}"),)).member.member_id == "m-1"


def test_unauthenticated_mutation_writes_nothing_and_leaves_its_key_free(program, api):
    enroll(api, "m-1")
    before = snapshot(api, "m-1")
    request = earn_request("m-1", 2599)
    with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
        api.ledger.Earn(request, metadata=(("authorization", "Bearer lk_0123456789ab_nope"),))
    assert snapshot(api, "m-1") == before
    assert api.ledger.Earn(request, metadata=api.metadata).transaction.points == 25


def test_revoked_key_is_unauthenticated_and_others_keep_working(program, api):
    enroll(api, "m-1")
    pos = Api(program.backend.target, program.key(Role.POS))
    other_pos = Api(program.backend.target, program.key(Role.POS))
    try:
        assert earn(pos, "m-1", 1000).transaction.points == 10
        key_id = pos.key[: len("lk_") + 12]
        assert revoke_keys(program.backend.db, key_id) == [key_id]
        before = snapshot(api, "m-1")
        with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
            earn(pos, "m-1", 1000)
        with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
            _raw_call(pos, pos.metadata)
        assert snapshot(api, "m-1") == before
        # Revoking again names no key; the program's other keys are untouched.
        assert revoke_keys(program.backend.db, key_id) == []
        assert earn(other_pos, "m-1", 1000).transaction.points == 10
        assert _raw_call(api, api.metadata).member.balance.posted == 20
    finally:
        pos.close()
        other_pos.close()
    assert_verify_clean(program)


def test_revoked_key_is_refused_even_for_a_retry_of_its_own_request(program, api):
    """A key revoked between an attempt and its retry cannot read the stored answer."""
    enroll(api, "m-1")
    pos = Api(program.backend.target, program.key(Role.POS))
    try:
        request = earn_request("m-1", 1000)
        pos.ledger.Earn(request, metadata=pos.metadata)
        revoke_keys(program.backend.db, pos.key[: len("lk_") + 12])
        with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
            pos.ledger.Earn(request, metadata=pos.metadata)
    finally:
        pos.close()


def _till_calls(member_id: str, hold_id: str) -> dict:
    """One request of each call (the till's, and the member reads) that authenticates against the key as last read and checks
    revocation in its own transaction (ledger.service.keys.TRUSTED_UNTIL_THEIR_TRANSACTION)."""
    return {
        "Earn": earn_request(member_id, 1000),
        "Redeem": ledger_pb2.RedeemRequest(member_id=member_id, points=1, idempotency_key=key()),
        "AuthorizeRedemption": ledger_pb2.AuthorizeRedemptionRequest(
            member_id=member_id, points=1, idempotency_key=key()
        ),
        "CaptureRedemption": ledger_pb2.CaptureRedemptionRequest(hold_id=hold_id, idempotency_key=key()),
        "GetMember": ledger_pb2.GetMemberRequest(member_id=member_id),
        "ListTransactions": ledger_pb2.ListTransactionsRequest(member_id=member_id),
    }


@pytest.mark.parametrize("shape", ["retry", "new", "unknown ids", "malformed"])
def test_a_till_key_revoked_after_use_is_refused_on_its_next_call_of_every_kind(program, api, shape):
    """The till's calls take a key known to the server process without reading it again: the
    revocation must still refuse the very next call of each kind, write nothing, and answer
    nothing else (not whether the member or hold exists, nor what is wrong with a request).
    Each case uses a fresh key, known to the server from one call just before its revocation."""
    enroll(api, "m-1")
    earn(api, "m-1", 50000)
    for rpc in _till_calls("", ""):
        pos = Api(program.backend.target, program.key(Role.POS))
        try:
            hold = pos.ledger.AuthorizeRedemption(  # the server now knows the key
                ledger_pb2.AuthorizeRedemptionRequest(member_id="m-1", points=5, idempotency_key=key()),
                metadata=pos.metadata,
            ).hold
            request = {
                "retry": _till_calls("m-1", hold.hold_id),
                "new": _till_calls("m-1", hold.hold_id),
                "unknown ids": _till_calls("nobody", "hold_unknown"),
                "malformed": _till_calls("", ""),
            }[shape][rpc]
            if shape == "retry":
                getattr(pos.ledger, rpc)(request, metadata=pos.metadata)
            key_id = pos.key[: len("lk_") + 12]
            assert revoke_keys(program.backend.db, key_id) == [key_id]
            before = snapshot(api, "m-1")
            with expect_error(UNAUTHENTICATED, "API_KEY_INVALID"):
                getattr(pos.ledger, rpc)(request, metadata=pos.metadata)
            assert snapshot(api, "m-1") == before, rpc
        finally:
            pos.close()
    assert_verify_clean(program)


# ------------------------------------------------------------------ the role table


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_table_for_every_rpc(program, role):
    """Minimal (empty) requests: an allowed call may fail for other reasons, never PERMISSION_DENIED."""
    client = program.api(role)
    try:
        # WatchEvents, a stream, is tested for every role in tests/integration/test_events.py.
        for service, rpcs in (("Ledger", LEDGER_RPCS), ("Programs", PROGRAMS_RPCS), ("Events", ["ListEvents"])):
            for rpc in rpcs:
                code, reason, _fields, _response = outcome(
                    _stub(client, service, rpc), _empty_request(service, rpc), client.metadata
                )
                assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, UNAUTHENTICATED), (rpc, code)
                expected = _expected(role, service, rpc)
                if expected:
                    assert code != DENIED, f"{role.value} may call {service}.{rpc}"
                elif expected is False:
                    assert (code, reason) == (DENIED, "ROLE_NOT_ALLOWED"), f"{role.value} must not call {service}.{rpc}"
                elif code == DENIED:
                    assert reason == "ROLE_NOT_ALLOWED"
    finally:
        client.close()


@pytest.mark.parametrize(
    "role,allowed_rpc",
    [(Role.POS, "Earn"), (Role.STOREFRONT, "GetMember"), (Role.SUPPORT, "AdjustPoints"), (Role.MARKETING, "GetProgram")],
    ids=["pos", "storefront", "support", "marketing"],
)
def test_allowed_calls_really_work_for_the_role(program, api, role, allowed_rpc):
    enroll(api, "m-1")
    client = program.api(role)
    try:
        if allowed_rpc == "Earn":
            assert earn(client, "m-1", 2599).transaction.points == 25
        elif allowed_rpc == "GetMember":
            assert client.ledger.GetMember(
                ledger_pb2.GetMemberRequest(member_id="m-1"), metadata=client.metadata
            ).member.member_id == "m-1"
        elif allowed_rpc == "AdjustPoints":
            response = client.ledger.AdjustPoints(
                ledger_pb2.AdjustPointsRequest(member_id="m-1", idempotency_key=key(), points=5, reason="goodwill"),
                metadata=client.metadata,
            )
            assert response.balance.posted == 5
            assert response.transaction.api_key_id == client.key[: len("lk_") + 12]
        else:
            program_id = client.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=client.metadata)
            assert program_id.program.program_id == program.program_id
    finally:
        client.close()


@pytest.mark.parametrize(
    "role,rpc",
    [(Role.POS, "AdjustPoints"), (Role.STOREFRONT, "Earn"), (Role.STOREFRONT, "Redeem"), (Role.MARKETING, "Earn")],
    ids=["pos-adjust", "storefront-earn", "storefront-redeem", "marketing-earn"],
)
def test_denied_mutation_writes_nothing_and_leaves_its_key_free(program, api, role, rpc):
    enroll(api, "m-1")
    earn(api, "m-1", 10000)
    idem = key()
    requests = {
        "AdjustPoints": ledger_pb2.AdjustPointsRequest(member_id="m-1", idempotency_key=idem, points=5, reason="why"),
        "Earn": earn_request("m-1", 2599, idempotency_key=idem),
        "Redeem": ledger_pb2.RedeemRequest(member_id="m-1", idempotency_key=idem, points=5),
    }
    client = program.api(role)
    try:
        before = snapshot(api, "m-1")
        with expect_error(DENIED, "ROLE_NOT_ALLOWED"):
            getattr(client.ledger, rpc)(requests[rpc], metadata=client.metadata)
        assert snapshot(api, "m-1") == before
        assert getattr(api.ledger, rpc)(requests[rpc], metadata=api.metadata).transaction.idempotency_key == idem
    finally:
        client.close()
    assert_verify_clean(program)


# ------------------------------------------------------------------ the program boundary


@pytest.fixture
def other(program):
    """A second program on the same server, with member b-1 (25 points) and its earn."""
    second = new_program(program.backend)
    client = second.api(Role.ADMIN)
    enroll(client, "b-1")
    earned = earn(client, "b-1", 2599)
    yield client, earned.transaction.transaction_id
    client.close()


def test_member_of_another_program_is_not_found(program, api, other):
    client_b, _tx = other
    before = snapshot(client_b, "b-1")
    calls = {
        "GetMember": ledger_pb2.GetMemberRequest(member_id="b-1"),
        "Earn": earn_request("b-1", 2599),
        "QuoteEarn": ledger_pb2.QuoteEarnRequest.FromString(earn_request("b-1", 2599).SerializeToString()),
        "Redeem": ledger_pb2.RedeemRequest(member_id="b-1", idempotency_key=key(), points=1),
        "AdjustPoints": ledger_pb2.AdjustPointsRequest(member_id="b-1", idempotency_key=key(), points=-5, reason="x"),
        "ListTransactions": ledger_pb2.ListTransactionsRequest(member_id="b-1"),
    }
    for rpc, request in calls.items():
        with expect_error(NOT_FOUND, "MEMBER_NOT_FOUND"):
            getattr(api.ledger, rpc)(request, metadata=api.metadata)
    # Exactly as for a member that exists nowhere.
    with expect_error(NOT_FOUND, "MEMBER_NOT_FOUND"):
        api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="nobody"), metadata=api.metadata)
    assert snapshot(client_b, "b-1") == before


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.ADMIN], ids=["support", "admin"])
def test_transaction_of_another_program_is_not_found(program, api, other, role):
    client_b, tx_b = other
    before = snapshot(client_b, "b-1")
    client = program.api(role)
    try:
        with expect_error(NOT_FOUND, "TRANSACTION_NOT_FOUND"):
            client.ledger.ReverseTransaction(
                ledger_pb2.ReverseTransactionRequest(transaction_id=tx_b, idempotency_key=key()),
                metadata=client.metadata,
            )
        with expect_error(NOT_FOUND, "TRANSACTION_NOT_FOUND"):
            client.ledger.ReverseTransaction(
                ledger_pb2.ReverseTransactionRequest(transaction_id="tx_" + "0" * 24, idempotency_key=key()),
                metadata=client.metadata,
            )
    finally:
        client.close()
    assert snapshot(client_b, "b-1") == before
    # Its own program can still reverse it.
    reversed_ = client_b.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(transaction_id=tx_b, idempotency_key=key()), metadata=client_b.metadata
    )
    assert reversed_.transaction.points == -25


def test_programs_share_no_ids_keys_or_orders(program, api, other):
    """The same member id, idempotency key and order id in two programs are two independent things."""
    client_b, _tx = other
    created = enroll(api, "b-1")
    assert created.created and created.member.balance.posted == 0
    shared_key, shared_order = key(), f"o-{secrets.token_hex(4)}"
    a = earn(api, "b-1", 1000, order_id=shared_order, idempotency_key=shared_key)
    b = earn(client_b, "b-1", 5000, order_id=shared_order, idempotency_key=shared_key)
    assert (a.transaction.points, a.balance.posted) == (10, 10)
    assert (b.transaction.points, b.balance.posted) == (50, 75)
    assert a.transaction.transaction_id != b.transaction.transaction_id
    # Settings are per program too.
    got_a = api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata).program
    got_b = client_b.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=client_b.metadata).program
    assert got_a.program_id == program.program_id and got_b.program_id != program.program_id
    assert_verify_clean(program)
