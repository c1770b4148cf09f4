"""AIP-155 request ids on the Programs calls that create: CreateCampaign, CreateReward, SetTiers.

Through the real gRPC API on PostgreSQL and SQLite:
- the same request_id with the same request answers the first response and creates nothing
  more, also from a server started afresh on the same database (a restart);
- the same request_id with a different request (or already used as another call's request id
  or idempotency key) is ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED and creates nothing;
- without a request_id every call creates, as before;
- a malformed request_id is INVALID_ARGUMENT / INVALID_FIELD on `request_id`;
- a SetTiers retried after a later SetTiers answers its first response and does not undo the later one;
- many clients sending one CreateCampaign with one request_id at the same moment create exactly one
  campaign, and every one of them gets it.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.store.database import Database
from ledger.api import server as grpc_server
from ledger.store.engine import create_engine_for
from loyalty.v1 import ledger_pb2, programs_pb2
from tests.conftest import Api
from tests.grpc_helpers import expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, outcome

INVALID = grpc.StatusCode.INVALID_ARGUMENT
REUSED = grpc.StatusCode.ALREADY_EXISTS


def stamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def request_id() -> str:
    return f"req-{secrets.token_hex(8)}"


# One window for every campaign here, so a retry sends the very same request.
START = datetime.now(timezone.utc).replace(microsecond=0)


def campaign_request(rid: str = "", name: str = "double days", **effect) -> programs_pb2.CreateCampaignRequest:
    campaign = programs_pb2.Campaign(
        name=name, start_time=stamp(START), end_time=stamp(START + timedelta(days=2)), **(effect or {"multiplier_bps": 20_000})
    )
    return programs_pb2.CreateCampaignRequest(campaign=campaign, request_id=rid)


def reward_request(rid: str = "", name: str = "$5 off", price: int = 500) -> programs_pb2.CreateRewardRequest:
    return programs_pb2.CreateRewardRequest(
        reward=programs_pb2.Reward(name=name, points_price=price, unlimited_stock=True), request_id=rid
    )


def tiers_request(rid: str = "", silver: int = 50_000) -> programs_pb2.SetTiersRequest:
    return programs_pb2.SetTiersRequest(
        tiers=[
            programs_pb2.Tier(name="Member", threshold=0),
            programs_pb2.Tier(name="Silver", threshold=silver, earn_multiplier_bps=12_500),
        ],
        request_id=rid,
    )


def campaigns(api) -> list:
    return list(api.programs.ListCampaigns(programs_pb2.ListCampaignsRequest(page_size=500), metadata=api.metadata).campaigns)


def rewards(api) -> list:
    return list(api.programs.ListRewards(programs_pb2.ListRewardsRequest(page_size=500), metadata=api.metadata).rewards)


def tiers(api) -> list:
    return list(api.programs.ListTiers(programs_pb2.ListTiersRequest(), metadata=api.metadata).tiers)


# (RPC, request builder with a request_id, a different request under the same id, what it created)
CREATING = {
    "CreateCampaign": (lambda rid: campaign_request(rid), lambda rid: campaign_request(rid, name="triple days"), campaigns),
    "CreateReward": (lambda rid: reward_request(rid), lambda rid: reward_request(rid, price=600), rewards),
    "SetTiers": (lambda rid: tiers_request(rid), lambda rid: tiers_request(rid, silver=60_000), tiers),
}


def call(api, rpc: str, request):
    return getattr(api.programs, rpc)(request, metadata=api.metadata)


@pytest.mark.parametrize("rpc", sorted(CREATING))
def test_a_retry_with_the_request_id_answers_the_first_response_and_creates_nothing(program, api, rpc):
    build, _, created = CREATING[rpc]
    rid = request_id()
    first = call(api, rpc, build(rid))
    again = call(api, rpc, build(rid))
    assert again == first
    assert len(created(api)) == (2 if rpc == "SetTiers" else 1)
    assert_verify_clean(program)


@pytest.mark.parametrize("rpc", sorted(CREATING))
def test_the_request_id_with_another_request_is_already_exists_and_creates_nothing(program, api, rpc):
    build, different, created = CREATING[rpc]
    rid = request_id()
    call(api, rpc, build(rid))
    before = created(api)
    with expect_error(REUSED, "IDEMPOTENCY_KEY_REUSED"):
        call(api, rpc, different(rid))
    assert created(api) == before


def test_without_a_request_id_every_call_creates(program, api):
    first, second = call(api, "CreateCampaign", campaign_request()), call(api, "CreateCampaign", campaign_request())
    assert first.campaign.campaign_id != second.campaign.campaign_id
    assert len(campaigns(api)) == 2
    assert call(api, "CreateReward", reward_request()).reward.reward_id != call(api, "CreateReward", reward_request()).reward.reward_id
    assert len(rewards(api)) == 2


def test_request_ids_share_the_programs_key_space_with_idempotency_keys(program, api):
    rid = request_id()
    call(api, "CreateCampaign", campaign_request(rid))
    with expect_error(REUSED, "IDEMPOTENCY_KEY_REUSED"):
        call(api, "CreateReward", reward_request(rid))
    assert rewards(api) == []
    api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=api.metadata)
    adjusted = key()
    api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(member_id="m-1", idempotency_key=adjusted, points=5, reason="goodwill"),
        metadata=api.metadata,
    )
    with expect_error(REUSED, "IDEMPOTENCY_KEY_REUSED"):
        call(api, "SetTiers", tiers_request(adjusted))
    assert tiers(api) == []


@pytest.mark.parametrize(
    "rid", ["r" * 129, " leading-space", "trailing-space ", "tab\tinside", "nul\x00", "line\nbreak"], ids=repr
)
@pytest.mark.parametrize("rpc", sorted(CREATING))
def test_a_malformed_request_id_is_invalid_and_creates_nothing(program, api, rpc, rid):
    build, _, created = CREATING[rpc]
    with expect_error(INVALID, "INVALID_FIELD", "request_id"):
        call(api, rpc, build(rid))
    assert created(api) == []


def test_a_set_tiers_retried_after_a_later_one_does_not_undo_it(program, api):
    first_id = request_id()
    first = call(api, "SetTiers", tiers_request(first_id, silver=50_000))
    later = call(api, "SetTiers", tiers_request(request_id(), silver=70_000))
    assert call(api, "SetTiers", tiers_request(first_id, silver=50_000)) == first
    assert tiers(api) == list(later.tiers)


def test_a_retry_answers_the_first_response_after_a_restart(program, api):
    rid_campaign, rid_reward, rid_tiers = request_id(), request_id(), request_id()
    campaign = call(api, "CreateCampaign", campaign_request(rid_campaign, bonus_points=40))
    reward = call(api, "CreateReward", reward_request(rid_reward))
    saved = call(api, "SetTiers", tiers_request(rid_tiers))
    # A server started afresh on the same database: nothing of the first one's memory is there.
    engine = create_engine_for(program.backend.url, pool_size=2)
    restarted = grpc_server.start(Database(engine), "127.0.0.1:0", max_workers=4)
    fresh = Api(f"127.0.0.1:{restarted.port}", program.admin_key)
    try:
        assert call(fresh, "CreateCampaign", campaign_request(rid_campaign, bonus_points=40)) == campaign
        assert call(fresh, "CreateReward", reward_request(rid_reward)) == reward
        assert call(fresh, "SetTiers", tiers_request(rid_tiers)) == saved
        assert [c.campaign_id for c in campaigns(fresh)] == [campaign.campaign.campaign_id]
        assert [r.reward_id for r in rewards(fresh)] == [reward.reward.reward_id]
    finally:
        fresh.close()
        restarted.stop(1)
        engine.dispose()


def test_the_replayed_campaign_keeps_its_effect_in_the_oneof(program, api):
    rid = request_id()
    first = call(api, "CreateCampaign", campaign_request(rid, bonus_points=40)).campaign
    again = call(api, "CreateCampaign", campaign_request(rid, bonus_points=40)).campaign
    assert (again.WhichOneof("effect"), again.bonus_points) == ("bonus_points", 40)
    assert again == first


def test_concurrent_clients_with_one_request_id_create_exactly_one_campaign(program):
    clients_per_round, rounds = 12, 4
    clients = [Api(program.backend.target, program.admin_key) for _ in range(clients_per_round)]
    try:
        for _ in range(rounds):
            request = campaign_request(request_id(), name=f"race {secrets.token_hex(3)}")
            barrier = threading.Barrier(clients_per_round, timeout=30)
            results: list = [None] * clients_per_round

            def send(i: int) -> None:
                barrier.wait()
                for _ in range(50):  # a client retries a lost race (ABORTED) with the same request_id
                    results[i] = outcome(clients[i].programs.CreateCampaign, request, clients[i].metadata)
                    if results[i][0] != grpc.StatusCode.ABORTED:
                        return
                    time.sleep(0.01)

            threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(clients_per_round)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert [r[0] for r in results] == [grpc.StatusCode.OK] * clients_per_round, results
            answered = {r[3].campaign.SerializeToString(deterministic=True) for r in results}
            assert len(answered) == 1
            named = [c for c in campaigns(clients[0]) if c.name == request.campaign.name]
            assert [c.campaign_id for c in named] == [results[0][3].campaign.campaign_id]
    finally:
        for client in clients:
            client.close()
    assert_verify_clean(program)
