"""Referral races on PostgreSQL (the production store), over real gRPC with one channel per thread.

What it proves:
- 16 concurrent first orders of one referee (different order ids and idempotency keys, all above
  the minimum, released together by a Barrier) all succeed, and exactly one of them posts the
  REFERRAL_REWARD: the referrer is credited once, the referee once, ListReferrals names one
  qualifying order and its reward transaction;
- a referrer with a cap of 3 whose referees all make their first order at the same moment gets
  exactly 3 rewarded referrals, the others NOT_REWARDED with the cap decision (strict xfail: the
  cap is counted before the referrer's row is locked, under READ COMMITTED, so concurrent
  referees all see the same count and the cap is exceeded);
- `verify` is clean after each race.
"""

from __future__ import annotations

import secrets
import threading

import grpc

from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, ledger_pb2
from tests.grpc_helpers import earn_request
from tests.integration.ledger_checks import assert_verify_clean, member, outcome, statement
from tests.integration.test_referrals import configure, enroll, referrals, report

REFERRAL_REWARD = common_pb2.TRANSACTION_KIND_REFERRAL_REWARD
Referral = ledger_pb2.Referral


def race(program, requests: list) -> list:
    """Sends each Earn request from its own thread and channel, all released together."""
    clients = [program.api(Role.ADMIN) for _ in requests]
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i: int) -> None:
        client = clients[i]
        barrier.wait()
        results[i] = outcome(client.ledger.Earn, requests[i], client.metadata, timeout=30)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for client in clients:
            client.close()
    return results


def test_concurrent_first_orders_of_one_referee_reward_once(pg_program):
    api = pg_program.api(Role.ADMIN)
    try:
        configure(api, pending_days=14)
        alice, _ = enroll(api)
        code = member(api, alice).referral_code
        bob, _ = enroll(api, code=code)
        requests = [earn_request(bob, 5_000 + i) for i in range(16)]
        order_ids = {r.order.order_id for r in requests}
        results = race(pg_program, requests)
        assert [code for code, *_ in results] == [grpc.StatusCode.OK] * 16, results

        [bob_reward] = [tx for tx in statement(api, bob) if tx.kind == REFERRAL_REWARD]
        [alice_reward] = [tx for tx in statement(api, alice) if tx.kind == REFERRAL_REWARD]
        assert bob_reward.transaction_id == alice_reward.transaction_id
        assert (bob_reward.points, alice_reward.points) == (200, 500)
        assert bob_reward.order_id in order_ids
        earned = sum(50 for _ in requests)  # 5000..5015 each earn 50 points
        assert member(api, alice).balance.posted == 500
        assert member(api, bob).balance.posted == earned + 200
        [referral] = referrals(api, alice).referrals
        assert referral.state == Referral.STATE_QUALIFIED
        assert referral.qualifying_order_id == bob_reward.order_id
        assert referral.reward_transaction_id == bob_reward.transaction_id
        assert report(api) == (1, 1, 0, 0, 0, 700)
        assert_verify_clean(pg_program)
    finally:
        api.close()


def test_concurrent_referees_respect_the_cap(pg_program):
    api = pg_program.api(Role.ADMIN)
    try:
        configure(api, pending_days=14, max_rewarded_per_referrer=3)
        cap_decision = "the referrer reached the cap of 3 rewarded referrals per 30 days"
        for _round in range(3):  # several rounds, so a lucky interleaving cannot hide the race
            alice, _ = enroll(api, f"ref-{secrets.token_hex(4)}")
            code = member(api, alice).referral_code
            referees = [enroll(api, code=code)[0] for _ in range(10)]
            results = race(pg_program, [earn_request(r, 5_000) for r in referees])
            assert [code for code, *_ in results] == [grpc.StatusCode.OK] * 10, results

            states = [r.state for r in referrals(api, alice).referrals]
            rewards = [tx for tx in statement(api, alice) if tx.kind == REFERRAL_REWARD]
            rewarded = [r for r in referees if any(tx.kind == REFERRAL_REWARD for tx in statement(api, r))]
            assert_verify_clean(pg_program)
            assert len(rewards) == 3 and len(rewarded) == 3, (len(rewards), len(rewarded))
            assert member(api, alice).balance.posted == 3 * 500
            assert sorted(states) == [Referral.STATE_QUALIFIED] * 3 + [Referral.STATE_NOT_REWARDED] * 7
            assert all(
                r.decision == cap_decision
                for r in referrals(api, alice).referrals
                if r.state == Referral.STATE_NOT_REWARDED
            )
    finally:
        api.close()
