"""Page tokens of every paginated List RPC are opaque, bound to program and query, and unforgeable.

Over real gRPC on both backends, for ListTransactions, ListReferrals, ListCampaigns and
ListRewards, in two programs built alike (the same member ids, so only the program tells
their tokens apart):
- the tokens are base64url and page through the whole list, each item once, also when the
  page size changes between pages;
- a token is INVALID_ARGUMENT / INVALID_FIELD on page_token, with the same message whatever
  is wrong with it, when it comes from another program, from the same list under another
  query (another member, other kinds, another time range, another campaign state), from
  another List RPC, when any one character of it is changed, when it is cut short or
  extended, and when it is made up: the unsigned shapes this service used to issue (base64
  JSON of a sequence number and a query hash; a bare id) and random bytes in the token's
  own layout;
- a second server on the same database (another engine, as another machine behind a load
  balancer would have) accepts the first one's tokens: the signing secret is the database's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.store.database import Database
from ledger.api import server as grpc_server
from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from ledger.store.engine import create_engine_for
from tests.conftest import Api, new_program
from tests.grpc_helpers import earn, enroll, error_details, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def ts(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def fill(api) -> None:
    """m-1 and m-2, each with 4 earns and 3 referees; 4 campaigns (two paused); 4 rewards."""
    md = api.metadata
    for referrer in ("m-1", "m-2"):
        code = enroll(api, referrer).member.referral_code
        for i in range(4):
            earn(api, referrer, 1000 * (i + 1))
        for i in range(3):
            api.ledger.EnrollMember(
                ledger_pb2.EnrollMemberRequest(member_id=f"{referrer}-ref-{i}", referral_code=code), metadata=md
            )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for i in range(4):
        campaign = api.programs.CreateCampaign(
            programs_pb2.CreateCampaignRequest(campaign=programs_pb2.Campaign(
                name=f"c{i}", multiplier_bps=20_000, start_time=ts(now), end_time=ts(now + timedelta(days=1)),
            )),
            metadata=md,
        ).campaign
        if i < 2:
            api.programs.PauseCampaign(programs_pb2.PauseCampaignRequest(campaign_id=campaign.campaign_id), metadata=md)
        api.programs.CreateReward(
            programs_pb2.CreateRewardRequest(reward=programs_pb2.Reward(name=f"r{i}", points_price=10, unlimited_stock=True)),
            metadata=md,
        )


@dataclass(frozen=True)
class Listing:
    name: str
    call: Callable  # (api, request) -> response
    request: Callable  # (**query) -> request message
    items: Callable  # response -> list of item ids
    queries: dict  # name -> query keyword arguments; "base" first

    def page(self, api, page_size: int, page_token: str = "", query: str = "base"):
        request = self.request(page_size=page_size, page_token=page_token, **self.queries[query])
        return self.call(api, request)


EARN = common_pb2.TRANSACTION_KIND_EARN
LISTINGS = [
    Listing(
        "ListTransactions",
        lambda api, r: api.ledger.ListTransactions(r, metadata=api.metadata),
        ledger_pb2.ListTransactionsRequest,
        lambda response: [tx.transaction_id for tx in response.transactions],
        {
            "base": {"member_id": "m-1"},
            "other member": {"member_id": "m-2"},
            "other kinds": {"member_id": "m-1", "kinds": [EARN]},
            "created after": {"member_id": "m-1", "start_create_time": Timestamp(seconds=1)},
            "created before": {"member_id": "m-1", "end_create_time": Timestamp(seconds=253402300799)},
        },
    ),
    Listing(
        "ListReferrals",
        lambda api, r: api.ledger.ListReferrals(r, metadata=api.metadata),
        ledger_pb2.ListReferralsRequest,
        lambda response: [r.referee_member_id for r in response.referrals],
        {"base": {"member_id": "m-1"}, "other member": {"member_id": "m-2"}},
    ),
    Listing(
        "ListCampaigns",
        lambda api, r: api.programs.ListCampaigns(r, metadata=api.metadata),
        programs_pb2.ListCampaignsRequest,
        lambda response: [c.campaign_id for c in response.campaigns],
        {
            "base": {},
            "only active": {"state": programs_pb2.Campaign.STATE_ACTIVE},
            "only paused": {"state": programs_pb2.Campaign.STATE_PAUSED},
        },
    ),
    Listing(
        "ListRewards",
        lambda api, r: api.programs.ListRewards(r, metadata=api.metadata),
        programs_pb2.ListRewardsRequest,
        lambda response: [r.reward_id for r in response.rewards],
        {"base": {}},
    ),
]
IDS = [listing.name for listing in LISTINGS]


@pytest.fixture
def two(program, api):
    """Two programs filled alike: api (this test's) and another one's admin client."""
    fill(api)
    other = new_program(program.backend)
    other_api = other.api(Role.ADMIN)
    fill(other_api)
    yield api, other_api
    other_api.close()


def refused(listing: Listing, api, token: str, query: str = "base", page_size: int = 2) -> str:
    """The message of the INVALID_ARGUMENT the token gets."""
    with expect_error(INVALID, "INVALID_FIELD", field="page_token") as caught:
        listing.page(api, page_size, token, query)
    _reason, _domain, fields = error_details(caught.value)
    assert fields == ["page_token"], fields
    return caught.value.details()


@pytest.mark.parametrize("listing", LISTINGS, ids=IDS)
def test_tokens_are_opaque_and_page_through_everything_once(two, listing):
    api, _other = two
    everything = listing.items(listing.page(api, 500))
    assert len(everything) >= 3
    seen, token, sizes = [], "", iter([1, 2, 1, 3, 1, 1, 1])
    while True:
        page = listing.page(api, next(sizes), token)
        seen.extend(listing.items(page))
        token = page.next_page_token
        if not token:
            break
        assert BASE64URL.match(token), token
    assert seen == everything


@pytest.mark.parametrize("listing", LISTINGS, ids=IDS)
def test_a_token_of_another_program_is_refused(two, listing):
    api, other = two
    foreign = listing.page(other, 1).next_page_token
    assert foreign and listing.page(other, 1, foreign).next_page_token  # good where it was issued
    garbage = refused(listing, api, "A" * len(foreign))
    assert refused(listing, api, foreign) == garbage  # says nothing about where it came from


@pytest.mark.parametrize("listing", [listing for listing in LISTINGS if len(listing.queries) > 1],
                         ids=[listing.name for listing in LISTINGS if len(listing.queries) > 1])
def test_a_token_of_another_query_is_refused(two, listing):
    api, _other = two
    for issued_for in listing.queries:
        token = listing.page(api, 1, query=issued_for).next_page_token
        assert token, issued_for
        for used_with in listing.queries:
            if used_with == issued_for:
                listing.page(api, 1, token, used_with)
            else:
                refused(listing, api, token, used_with)


def test_a_token_of_another_list_is_refused(two):
    api, _other = two
    tokens = {listing.name: listing.page(api, 1).next_page_token for listing in LISTINGS}
    for listing in LISTINGS:
        for name, token in tokens.items():
            if name != listing.name:
                refused(listing, api, token)


@pytest.mark.parametrize("listing", LISTINGS, ids=IDS)
def test_a_changed_token_is_refused(two, listing):
    api, _other = two
    token = listing.page(api, 1).next_page_token
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):  # every character, to another one (also in the last one's spare bits)
        # A shift of 1 to 63 places, never 64: a token longer than 63 characters (ids of 32 hex
        # digits) would otherwise get its 64th character "changed" into itself.
        other_char = alphabet[(alphabet.index(char) + 1 + i % (len(alphabet) - 1)) % len(alphabet)]
        refused(listing, api, token[:i] + other_char + token[i + 1 :])
    for changed in (token[:-1], token[1:], token + "A", token + token, token + "=", token + "==", token.lower()):
        if changed != token:
            refused(listing, api, changed)
    listing.page(api, 1, token)  # the real one still works


def _old_statement_token(seq: int, member_id: str) -> str:
    """What ListTransactions issued before tokens were signed: base64 JSON, query hash."""
    fingerprint = hashlib.sha256(f"{member_id}|||".encode()).hexdigest()[:16]
    raw = json.dumps({"s": seq, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _layout(position: str, version: int = 1) -> str:
    """The signed token's layout with a made-up MAC."""
    raw = bytes([version]) + secrets.token_bytes(16) + position.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_made_up_tokens_are_refused(two):
    api, _other = two
    by_name = {listing.name: listing for listing in LISTINGS}
    everything = {listing.name: listing.items(listing.page(api, 500)) for listing in LISTINGS}
    statement = api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id="m-1"), metadata=api.metadata)
    top = statement.transactions[0].sequence
    made_up = {
        "ListTransactions": [_old_statement_token(top, "m-1"), _old_statement_token(2, "m-1"), _layout(str(top)),
                             _layout("2"), _layout("2", version=2)],
        "ListReferrals": [everything["ListReferrals"][0], _layout(everything["ListReferrals"][0])],
        "ListCampaigns": [everything["ListCampaigns"][0], _layout(everything["ListCampaigns"][0])],
        "ListRewards": [everything["ListRewards"][0], _layout(everything["ListRewards"][0])],
    }
    for name, tokens in made_up.items():
        for token in tokens + [_layout(""), "AQ", secrets.token_urlsafe(40), "x" * 1024]:
            refused(by_name[name], api, token)
        with expect_error(INVALID, "INVALID_FIELD", field="page_token"):
            by_name[name].page(api, 1, "x" * 1025)  # longer than any token


def test_a_second_server_on_the_same_database_accepts_the_first_ones_tokens(program, api):
    """Servers behind a load balancer share the database, not memory: the secret is the database's."""
    fill(api)
    engine = create_engine_for(program.backend.url, pool_size=4)
    running = grpc_server.start(Database(engine), "127.0.0.1:0", max_workers=8)
    second = Api(f"127.0.0.1:{running.port}", api.key)
    try:
        for listing in LISTINGS:
            everything = listing.items(listing.page(api, 500))
            first = listing.page(api, 1)
            rest = listing.page(second, 500, first.next_page_token)
            assert listing.items(first) + listing.items(rest) == everything
            back = listing.page(api, 500, listing.page(second, 2).next_page_token)
            assert listing.items(listing.page(second, 2)) + listing.items(back) == everything
    finally:
        second.close()
        running.stop(1)
        engine.dispose()
