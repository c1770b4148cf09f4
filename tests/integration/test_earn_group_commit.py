"""Group commit across members (ledger.service.earn_group_commit), over real gRPC on PostgreSQL.

Earns that arrive while another of the same key runs line up, and the next leader earns them
in one transaction (earning_batches.earn_many). Each test holds the first Earn (the head of
the line, run alone) at its COMMIT (a session of the test's own holds the program's
event_heads row, the commit's last lock) until the others wait in line, so the next batch is
known. What it proves:
- a batch keeps every Earn's own answer: its points, the member's balance, a refusal by a rule
  (a closed member, an unknown member) that does not touch its neighbours, a referee whose
  referral is still to decide earned alone (and the referrer rewarded once); a retried key
  and a second order of a member already in line are earned alone, the retry with the first
  answer;
- a line never waits long for one member: an Earn at the head of the line whose member another
  transaction holds runs alone, and the Earns behind it leave the line after WITHDRAW_AFTER;
- one member's burst of Earns goes to that member's group commit, not one batch each;
- a key revoked while its Earns wait refuses every one of them, and nothing is written;
- a batch that fails with a bug earns each of its Earns alone, each once;
- an Earn whose caller left while it waited writes nothing, and its retry earns once;
- terminals released together each get their own answer (SQLite earning each alone);
- verify is clean after each.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from sqlalchemy import text

from ledger.domain.kinds import Role
from ledger.service import earn_group_commit, earning_batches
from ledger.service.keys import revoke_keys
from loyalty.v1 import common_pb2, ledger_pb2
from tests.conftest import Api
from tests.grpc_helpers import earn_request, enroll
from tests.integration.ledger_checks import assert_verify_clean, member, outcome, statement
from tests.integration.test_referrals import configure

OK = grpc.StatusCode.OK
REFERRAL_REWARD = common_pb2.TRANSACTION_KIND_REFERRAL_REWARD


@pytest.fixture
def patient_line(monkeypatch):
    """Earns behind a head of the line running alone wait for it however long it takes (the
    tests hold that head at its COMMIT; the line's own limit is WITHDRAW_AFTER, 0.1 s)."""
    monkeypatch.setattr(earn_group_commit, "WITHDRAW_AFTER", 30.0)


@pytest.fixture
def batches(monkeypatch):
    """The size of each batch earn_many ran, and its answers (the real earn_many runs)."""
    seen: list[list] = []
    real = earning_batches.earn_many

    def recording(db, caller, orders, **options):
        answers = real(db, caller, orders, **options)
        seen.append([(command.member_id, answer) for (_, command), answer in zip(orders, answers)])
        return answers

    monkeypatch.setattr(earning_batches, "earn_many", recording)
    return seen


def _lined_up_behind(
    program,
    holder: Api,
    held_member: str,
    requests: list,
    meanwhile=lambda: None,
    after: tuple = (),
    timeouts: dict[int, float] | None = None,
) -> list:
    """Sends an Earn for held_member, held at its COMMIT while a session of the test holds the
    program's event_heads row, then each of requests from its own thread and channel; once
    those wait in line, each of after (run alone: a member already in line) and runs
    meanwhile(), then lets go. The answers (outcome tuples): the held Earn's, then those of
    requests and after, in order. timeouts: the deadline of some of them, by their index
    (30 s otherwise). Every channel is connected before, so a short deadline is the line's."""
    sent = [*requests, *after]
    clients = [Api(program.backend.target, holder.key) for _ in sent]
    results: list = [None] * len(sent)
    held: list = []

    def send(i: int) -> None:
        timeout = (timeouts or {}).get(i, 30.0)
        results[i] = outcome(clients[i].ledger.Earn, sent[i], clients[i].metadata, timeout=timeout)

    def wait_until_lined_up(count: int, deadline: float) -> None:
        while earn_group_commit.lined_up() < count and time.monotonic() < deadline:
            time.sleep(0.01)

    for client in clients:
        grpc.channel_ready_future(client.channel).result(timeout=10)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sent))]
    first = threading.Thread(
        target=lambda: held.append(outcome(holder.ledger.Earn, earn_request(held_member, 1_000), holder.metadata))
    )
    with program.backend.db.engine.connect() as session:
        session.execute(
            text("SELECT 1 FROM event_heads WHERE program_id = :p FOR UPDATE"), {"p": program.program_id}
        ).one()
        first.start()
        time.sleep(0.2)  # the held Earn leads, its batch waiting at COMMIT
        # The server waits lock_timeout (2 s) for a lock, then tries once more: all of this
        # stays well within the two.
        deadline = time.monotonic() + 1.5
        for thread in threads[: len(requests)]:
            thread.start()
        wait_until_lined_up(len(requests), deadline)
        lined_up = earn_group_commit.lined_up()
        for thread in threads[len(requests) :]:
            thread.start()
        if after:
            time.sleep(0.2)  # they reach the server, and run alone
        meanwhile()
        session.commit()  # lets the held Earn go
    first.join(30)
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    assert lined_up == len(requests), f"{lined_up} of {len(requests)} Earns lined up"
    return [*held, *results]


def _all_at_once(program, api: Api, requests: list) -> list:
    """Sends each Earn request from its own thread and channel, all released together by a
    Barrier; their answers in order (outcome tuples)."""
    clients = [Api(program.backend.target, api.key) for _ in requests]
    barrier, results = threading.Barrier(len(requests)), [None] * len(requests)

    def send(i: int) -> None:
        barrier.wait()
        results[i] = outcome(clients[i].ledger.Earn, requests[i], clients[i].metadata, timeout=30)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    return results


def test_earns_lined_up_share_a_transaction_and_keep_their_own_answers(pg_program, batches, patient_line):
    api = pg_program.api(Role.ADMIN)
    try:
        configure(api, pending_days=0)
        alice = "gc-alice"
        enroll(api, alice)
        code = member(api, alice).referral_code
        bob = api.ledger.EnrollMember(
            ledger_pb2.EnrollMemberRequest(member_id="gc-bob", referral_code=code), metadata=api.metadata
        ).member.member_id
        shoppers = [f"gc-{i}" for i in range(10)]
        for member_id in ["gc-held", "gc-closed", *shoppers]:
            enroll(api, member_id)
        api.ledger.CloseMember(ledger_pb2.CloseMemberRequest(member_id="gc-closed"), metadata=api.metadata)

        orders = [earn_request(member_id, 5_000 + 100 * i) for i, member_id in enumerate(shoppers)]
        retried = orders[0]  # the same request again, as a till retries after a timeout
        second = earn_request(shoppers[1], 2_000)  # the member's second order, under its own key
        requests = [
            *orders,
            earn_request("gc-closed", 5_000),
            earn_request("gc-nobody", 5_000),
            earn_request(bob, 5_000),
        ]
        held, *results = _lined_up_behind(pg_program, api, "gc-held", requests, after=(retried, second))
        assert held[0] == OK

        answers = results
        for i, member_id in enumerate(shoppers):
            code_, _, _, response = answers[i]
            assert code_ == OK, answers[i]
            assert response.transaction.member_id == member_id
            assert response.transaction.points == 50 + i
            # gc-1's second order, earned alone, may commit before or after the first
            assert response.balance.posted in ((51, 71) if i == 1 else (50 + i,))
        closed, nobody, referee, again, later_order = (answers[i] for i in range(10, 15))
        assert closed[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "MEMBER_CLOSED")
        assert nobody[:2] == (grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND")
        assert referee[0] == OK and referee[3].transaction.points == 50
        assert again[0] == OK and again[3] == answers[0][3]  # the retry: the first answer
        assert later_order[0] == OK and later_order[3].transaction.points == 20
        assert later_order[3].balance.posted in (20, 71)
        assert {answers[1][3].balance.posted, later_order[3].balance.posted} in ({51, 71}, {20, 71})

        # The held Earn ran alone, then one batch held every shopper, the closed and the unknown
        # member and bob; the retry and the second order ran alone (their member was in line).
        [lined_up] = batches
        assert sorted(member_id for member_id, _ in lined_up) == sorted([*shoppers, "gc-closed", "gc-nobody", bob])
        assert dict(lined_up)[bob] is None  # a referral to decide: earned alone
        assert dict(lined_up)["gc-nobody"] is None  # not enrolled: earned alone, and refused

        for i, member_id in enumerate(shoppers):
            earned = [tx for tx in statement(api, member_id) if tx.kind == common_pb2.TRANSACTION_KIND_EARN]
            assert len(earned) == (2 if i == 1 else 1)
            assert member(api, member_id).balance.posted == 50 + i + (20 if i == 1 else 0)
        assert member(api, "gc-closed").balance.posted == 0
        assert [tx.kind for tx in statement(api, alice)] == [REFERRAL_REWARD]
        assert member(api, bob).balance.posted == 50 + 200
        assert member(api, "gc-held").balance.posted == 10
        assert_verify_clean(pg_program)
    finally:
        api.close()


def test_a_key_revoked_while_its_earns_wait_refuses_them_all(pg_program, batches, patient_line):
    admin = pg_program.api(Role.ADMIN)
    pos = Api(pg_program.backend.target, pg_program.key(Role.POS))
    try:
        shoppers = [f"rv-{i}" for i in range(6)]
        for member_id in ["rv-held", *shoppers]:
            enroll(admin, member_id)
        assert pos.ledger.Earn(earn_request("rv-held", 1_000), metadata=pos.metadata).transaction.points == 10
        key_id = pos.key[: len("lk_") + 12]
        requests = [earn_request(member_id, 5_000) for member_id in shoppers]

        results = _lined_up_behind(
            pg_program, pos, "rv-held", requests, meanwhile=lambda: revoke_keys(pg_program.backend.db, key_id)
        )

        held, *refused = results
        assert held[0] == OK  # it read the key before the revocation
        assert [result[:2] for result in refused] == [(grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")] * 6
        assert [member(admin, member_id).balance.posted for member_id in shoppers] == [0] * 6
        # The line's batch was refused whole (earn_many raised), and no Earn was then run alone.
        assert batches == []
        assert_verify_clean(pg_program)
    finally:
        pos.close()
        admin.close()


def test_a_batch_that_fails_earns_each_alone(pg_program, monkeypatch, patient_line):
    attempts: list[int] = []

    def broken(db, caller, orders, **options):
        attempts.append(len(orders))
        raise RuntimeError("a bug in the batch")

    monkeypatch.setattr(earning_batches, "earn_many", broken)
    api = pg_program.api(Role.ADMIN)
    try:
        shoppers = [f"bf-{i}" for i in range(5)]
        for member_id in ["bf-held", *shoppers]:
            enroll(api, member_id)
        results = _lined_up_behind(pg_program, api, "bf-held", [earn_request(m, 5_000) for m in shoppers])

        assert attempts == [5]
        assert [result[0] for result in results] == [OK] * 6
        assert [member(api, member_id).balance.posted for member_id in shoppers] == [50] * 5
        assert_verify_clean(pg_program)
    finally:
        api.close()


def test_terminals_at_once_each_get_their_own_answer(program, batches):
    """Released together: on PostgreSQL some share batches, on SQLite each is earned alone."""
    api = program.api(Role.ADMIN)
    try:
        shoppers = [f"ta-{i}" for i in range(12)]
        for member_id in shoppers:
            enroll(api, member_id)
        requests = [earn_request(member_id, 1_000 * (i + 1)) for i, member_id in enumerate(shoppers)]
        results = _all_at_once(program, api, requests)

        for i, (code_, _, _, response) in enumerate(results):
            assert code_ == OK
            assert (response.transaction.member_id, response.transaction.points) == (shoppers[i], 10 * (i + 1))
            assert member(api, shoppers[i]).balance.posted == 10 * (i + 1)
        in_batches = [member_id for batch in batches for member_id, _ in batch]
        if program.backend.name == "sqlite":
            assert in_batches == []
        else:  # none in two batches
            assert len(in_batches) == len(set(in_batches)) and set(in_batches) <= set(shoppers)
        assert_verify_clean(program)
    finally:
        api.close()


def test_an_earn_whose_caller_left_while_it_waited_writes_nothing(pg_program, batches, patient_line):
    api = pg_program.api(Role.ADMIN)
    try:
        shoppers = [f"dl-{i}" for i in range(4)]
        for member_id in ["dl-held", *shoppers]:
            enroll(api, member_id)
        requests = [earn_request(member_id, 5_000) for member_id in shoppers]
        impatient = requests[-1]

        def let_the_deadline_pass() -> None:
            time.sleep(0.6)  # the impatient till's 0.3 s deadline passes while it waits in line

        held, *results = _lined_up_behind(
            pg_program, api, "dl-held", requests, meanwhile=let_the_deadline_pass, timeouts={len(requests) - 1: 0.3}
        )

        assert held[0] == OK
        assert [result[0] for result in results] == [OK, OK, OK, grpc.StatusCode.DEADLINE_EXCEEDED]
        assert [sorted(member_id for member_id, _ in batch) for batch in batches] == [shoppers[:3]]
        assert member(api, shoppers[3]).balance.posted == 0  # nothing was written for it
        # The till retries with the same key, and the order is earned once.
        retried = api.ledger.Earn(impatient, metadata=api.metadata, timeout=30)
        assert retried.transaction.points == 50 and retried.balance.posted == 50
        assert api.ledger.Earn(impatient, metadata=api.metadata, timeout=30) == retried
        assert_verify_clean(pg_program)
    finally:
        api.close()


def test_a_member_held_by_another_transaction_does_not_hold_up_the_line(pg_program, batches):
    api = pg_program.api(Role.ADMIN)
    clients = [pg_program.api(Role.ADMIN) for _ in range(2)]
    try:
        for member_id in ("lk-busy", "lk-free"):
            enroll(api, member_id)
        busy: list = []
        with pg_program.backend.db.engine.connect() as session:
            session.execute(
                text("SELECT 1 FROM members WHERE program_id = :p AND member_id = 'lk-busy' FOR UPDATE"),
                {"p": pg_program.program_id},
            ).one()
            waiting = threading.Thread(
                target=lambda: busy.append(
                    outcome(clients[0].ledger.Earn, earn_request("lk-busy", 5_000), clients[0].metadata, timeout=30)
                )
            )
            waiting.start()
            time.sleep(0.2)  # lk-busy's Earn arrives first and waits for its member
            free = outcome(clients[1].ledger.Earn, earn_request("lk-free", 5_000), clients[1].metadata, timeout=1.0)
            assert free[0] == OK, free  # answered while lk-busy is still held
            assert busy == []
            session.commit()
        waiting.join(30)
        assert busy[0][0] == OK and busy[0][3].balance.posted == 50
        assert batches == []  # lk-busy ran alone at the head of the line; lk-free left the line
        assert_verify_clean(pg_program)
    finally:
        for client in (api, *clients):
            client.close()


def test_one_members_burst_goes_to_the_members_group_commit(pg_program, batches):
    """One member's many Earns at once (a marketplace backfilling one customer): the first leads
    a line, and those arriving while the member is in it run alone, where the member group
    commit shares a transaction among them; not one batch each."""
    api = pg_program.api(Role.ADMIN)
    try:
        enroll(api, "bu-1")
        requests = [earn_request("bu-1", 1_000) for _ in range(16)]
        results = _all_at_once(pg_program, api, requests)

        assert [result[0] for result in results] == [OK] * 16
        assert member(api, "bu-1").balance.posted == 16 * 10
        in_batches = [member_id for batch in batches for member_id, _ in batch]
        assert len(in_batches) <= 8, in_batches
        assert_verify_clean(pg_program)
    finally:
        api.close()
