"""No input to any RPC, however malformed, answers INTERNAL or UNKNOWN, and a failed call changes nothing.

Every method of loyalty.v1.Ledger and loyalty.v1.Programs is taken from the service
descriptors (so a new RPC is fuzzed without touching this file). Over real gRPC on
both backends, for each method:

- hypothesis builds request messages generically from the request's message
  descriptor: strings from real ids of the program (members, transactions, holds,
  orders, campaigns, rewards, tiers, page tokens) mixed with unicode, control
  characters and huge strings (up to ~100 kB); integers with the int32/int64
  extremes and negatives; unknown enum numbers; repeated fields of 0..600 items;
  nested messages; timestamps with out-of-range seconds and nanos; field masks
  with real and random paths. They are sent with the admin key, and sometimes
  with no key, a garbage key or a key of another program. The status is never
  INTERNAL or UNKNOWN, every failure carries ErrorInfo (domain loyalty.v1), and a
  failed call leaves the member's balance, the program settings and the tiers as
  they were;
- random bytes as the body never answer INTERNAL/UNKNOWN, and bodies that cannot
  parse are INVALID_ARGUMENT;
- a body over the 1 MiB limit is RESOURCE_EXHAUSTED.

After each method's fuzzing `verify` must still be clean.

Text: every string field of every request (found from the descriptors, nested and
repeated ones included, display names of tiers, campaigns and rewards, reasons,
output-only ids and fields outside an update mask) is given control characters (NUL,
tab, newline, DEL, C1, the Unicode line separators) in an otherwise valid request: each
is INVALID_ARGUMENT / INVALID_FIELD with a violation naming that field, and nothing was
written (balances, statements, settings, tiers, campaigns, rewards as they were).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf import descriptor as pb_descriptor, field_mask_pb2, text_format
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2, webhooks_pb2
from tests.conftest import new_program
from tests.grpc_helpers import earn, enroll, error_details, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, outcome, snapshot

FieldDescriptor = pb_descriptor.FieldDescriptor
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
MAX_MESSAGE_BYTES = 1024 * 1024
SERVICES = (
    ledger_pb2.DESCRIPTOR.services_by_name["Ledger"],
    programs_pb2.DESCRIPTOR.services_by_name["Programs"],
)
METHODS = [method for service in SERVICES for method in service.methods]
METHOD_IDS = [f"{method.containing_service.name}.{method.name}" for method in METHODS]
FUZZ = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def path_of(method) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def ts(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def test_every_method_of_both_services_is_fuzzed():
    assert {"Earn", "Redeem", "AuthorizeRedemption", "UpdateProgram", "CreateCampaign"} <= {m.name for m in METHODS}
    assert len(METHODS) == len(SERVICES[0].methods) + len(SERVICES[1].methods) >= 26


# ---------------------------------------------------------------- a program with real things in it


class World:
    """A program with two members (one referred), earns, an adjustment, a redemption, an open and a
    voided hold, a campaign, a reward and tiers: fuzzed strings reference these ids."""

    def __init__(self, program) -> None:
        self.program = program
        api = self.api = program.api(Role.ADMIN)
        md = api.metadata
        m1 = enroll(api, "m-1").member
        api.ledger.EnrollMember(
            ledger_pb2.EnrollMemberRequest(member_id="m-2", referral_code=m1.referral_code), metadata=md
        )
        txs = [earn(api, "m-1", 10_000 * (i + 1), order_id=f"o-{i}").transaction for i in range(3)]
        txs.append(api.ledger.AdjustPoints(
            ledger_pb2.AdjustPointsRequest(member_id="m-1", idempotency_key=key(), points=500, reason="goodwill"), metadata=md
        ).transaction)
        txs.append(api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id="m-1", idempotency_key=key(), points=10), metadata=md
        ).transaction)
        holds = [
            api.ledger.AuthorizeRedemption(
                ledger_pb2.AuthorizeRedemptionRequest(member_id="m-1", idempotency_key=key(), points=50, order_id=f"h-{i}"),
                metadata=md,
            ).hold
            for i in range(2)
        ]
        api.ledger.VoidRedemption(ledger_pb2.VoidRedemptionRequest(hold_id=holds[1].hold_id, idempotency_key=key()), metadata=md)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        campaign = api.programs.CreateCampaign(
            programs_pb2.CreateCampaignRequest(campaign=programs_pb2.Campaign(
                name="double week", multiplier_bps=20_000,
                start_time=ts(now - timedelta(hours=1)), end_time=ts(now + timedelta(days=7)),
            )),
            metadata=md,
        ).campaign
        reward = api.programs.CreateReward(
            programs_pb2.CreateRewardRequest(reward=programs_pb2.Reward(name="mug", points_price=100, unlimited_stock=True)),
            metadata=md,
        ).reward
        api.programs.SetTiers(
            programs_pb2.SetTiersRequest(tiers=[programs_pb2.Tier(name="Member", threshold=0),
                                                programs_pb2.Tier(name="Gold", threshold=50_000, earn_multiplier_bps=20_000)]),
            metadata=md,
        )
        token = api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=1), metadata=md
        ).next_page_token
        self.referral_code, self.token = m1.referral_code, token
        self.open_hold, self.adjustment = holds[0].hold_id, txs[3].transaction_id
        self.campaign_id, self.reward_id = campaign.campaign_id, reward.reward_id
        self.webhook_id = api.programs.CreateWebhook(
            webhooks_pb2.CreateWebhookRequest(url="http://127.0.0.1:9/hooks"), metadata=md
        ).webhook.webhook_id
        self.ids = sorted({
            "m-1", "m-2", m1.referral_code, program.program_id,
            *(tx.transaction_id for tx in txs), *(tx.idempotency_key for tx in txs),
            *(f"o-{i}" for i in range(3)), *(h.hold_id for h in holds), "h-0", "h-1",
            campaign.campaign_id, reward.reward_id, "Member", "Gold", token, "USD", "review_submitted",
            self.webhook_id,
        } - {""})
        self.other_key = new_program(program.backend).admin_key

    def state(self) -> tuple:
        """What a failed call must leave as it was: both members' balances, statements and status, the
        settings, the tiers, the campaigns and the rewards."""
        md = self.api.metadata
        members = [
            self.api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=m), metadata=md).member for m in ("m-1", "m-2")
        ]
        settings_ = self.api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=md).program
        tiers = self.api.programs.ListTiers(programs_pb2.ListTiersRequest(), metadata=md)
        campaigns = self.api.programs.ListCampaigns(programs_pb2.ListCampaignsRequest(page_size=500), metadata=md)
        rewards = self.api.programs.ListRewards(programs_pb2.ListRewardsRequest(page_size=500), metadata=md)
        return (
            *(snapshot(self.api, m.member_id) for m in members),
            *(m.status for m in members),
            settings_.SerializeToString(deterministic=True),
            tiers.SerializeToString(deterministic=True),
            campaigns.SerializeToString(deterministic=True),
            rewards.SerializeToString(deterministic=True),
        )

    def metadata(self, who: str) -> tuple:
        return {
            "admin": self.api.metadata,
            "none": (),
            "garbage": (("authorization", f"Bearer lk_{secrets.token_hex(16)}"),),
            "basic": (("authorization", "Basic dXNlcjpwYXNz"),),
            "huge": (("authorization", "Bearer " + "k" * 6000),),
            "other-program": (("authorization", f"Bearer {self.other_key}"),),
        }[who]


@pytest.fixture
def world(program):
    built = World(program)
    yield built
    built.api.close()


# ---------------------------------------------------------------- generic request strategies

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_TS_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
MIN_TS_SECONDS = -62135596800  # 0001-01-01T00:00:00Z


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = sorted({v for v in (0, 1, -1, 2, 100, 10**6, 10**12, 10**12 + 1, 10**15, 10**15 + 1,
                               INT32_MAX, INT32_MIN, INT32_MAX + 1, INT64_MAX, INT64_MIN, lo, hi) if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(max(lo, -1000), min(hi, 100_000)), st.integers(lo, hi))


INTS = {
    FieldDescriptor.TYPE_INT64: _ints(INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SINT64: _ints(INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SFIXED64: _ints(INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_INT32: _ints(INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SINT32: _ints(INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SFIXED32: _ints(INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_UINT64: _ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: _ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_UINT32: _ints(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: _ints(0, 2**32 - 1),
}
_chars = st.characters(exclude_categories=("Cs",))  # surrogates cannot be encoded as UTF-8 at all
SPECIAL_STRINGS = ["", " ", "x" * 128, "x" * 129, "a\x00b", "\n", "\t m-1", "m-1 ", "EUR", "usd", "ZZZ",
                   "é✓😀", "\u202e", "\ufeff", "-", "null", "' OR 1=1 --", "%s%n", "../../etc/passwd", "0", "-1"]


def strings(ids: list[str]) -> st.SearchStrategy[str]:
    real = st.sampled_from(ids)
    huge = st.builds(lambda c, n: c * n, _chars, st.integers(129, 100_000))
    return st.one_of(
        real,
        real,
        st.sampled_from(SPECIAL_STRINGS),
        st.text(_chars, max_size=40),
        st.text(st.characters(max_codepoint=0x1F), max_size=8),  # control characters only
        st.builds(lambda r, t: r + t, real, st.text(_chars, min_size=1, max_size=3)),
        huge,
    )


def timestamps() -> st.SearchStrategy[Timestamp]:
    now = int(datetime.now(timezone.utc).timestamp())
    return st.one_of(
        st.integers(-200 * 86400, 200 * 86400).map(lambda s: Timestamp(seconds=now + s)),
        st.builds(Timestamp, seconds=st.sampled_from([0, -1, MAX_TS_SECONDS, MAX_TS_SECONDS + 1, MIN_TS_SECONDS,
                                                      MIN_TS_SECONDS - 1, INT64_MAX, INT64_MIN]),
                  nanos=st.sampled_from([0, 999_999_999, 10**9, -1, INT32_MAX, INT32_MIN])),
        st.builds(Timestamp, seconds=INTS[FieldDescriptor.TYPE_INT64], nanos=INTS[FieldDescriptor.TYPE_INT32]),
    )


def mask_paths(parent) -> list[str]:
    """Field names (and one level of dotted names) of the parent's message fields: real mask paths."""
    names = []
    for field in parent.fields:
        if field.message_type is not None and not field.message_type.full_name.startswith("google.protobuf"):
            for inner in field.message_type.fields:
                names.append(inner.name)
                if inner.message_type is not None:
                    names.extend(f"{inner.name}.{deeper.name}" for deeper in inner.message_type.fields)
    return names or ["name"]


def repeated_count() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 3), st.integers(0, 3), st.sampled_from([0, 1, 499, 500, 501, 600]), st.integers(0, 600))


def messages(descriptor, ids: list[str], depth: int = 0, parent=None) -> st.SearchStrategy:
    if descriptor.full_name == "google.protobuf.Timestamp":
        return timestamps()
    if descriptor.full_name == "google.protobuf.FieldMask":
        real = mask_paths(parent) if parent is not None else ["name"]
        paths = st.one_of(st.sampled_from(real), st.sampled_from(real), strings(ids))
        return st.lists(paths, max_size=6).map(lambda ps: GetMessageClass(descriptor)(paths=ps))

    @st.composite
    def build(draw):
        message = GetMessageClass(descriptor)()
        for field in descriptor.fields:
            if draw(st.integers(0, 3)) == 0:
                continue  # left unset
            if field.type == FieldDescriptor.TYPE_MESSAGE and depth >= 3:
                continue
            value = value_strategy(field, ids, depth, descriptor)
            if field.is_repeated:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    entries = draw(st.lists(messages(field.message_type, ids, depth + 1, descriptor), max_size=5))
                    target = getattr(message, field.name)
                    for entry in entries:
                        if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                            target[entry.key].CopyFrom(entry.value)
                        else:
                            target[entry.key] = entry.value
                    continue
                # A few distinct items, repeated up to the drawn count (600 distinct ones would be slow to draw).
                count = draw(repeated_count())
                if count == 0:
                    continue
                distinct = draw(st.lists(value, min_size=1, max_size=3))
                items = [distinct[i % len(distinct)] for i in range(count)]
                getattr(message, field.name).extend(items)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(draw(value))
            else:
                setattr(message, field.name, draw(value))
        return message

    return build()


def value_strategy(field, ids: list[str], depth: int, parent) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, ids, depth + 1, parent)
    if field.type == FieldDescriptor.TYPE_STRING:
        return strings(ids)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=200)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(INT32_MIN, INT32_MAX))
    return INTS[field.type]


# ---------------------------------------------------------------- calling


def call(channel, method, body, metadata, serializer=None, deserializer=None):
    """(code, ErrorInfo reason, ErrorInfo domain, details) of one call; never raises for a status."""
    rpc = channel.unary_unary(path_of(method), request_serializer=serializer, response_deserializer=deserializer)
    try:
        rpc(body, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        try:
            reason, domain, _fields = error_details(error)
        except ValueError:  # a status-details trailer that does not match the code (see the BUG below)
            reason, domain = "", ""
        return error.code(), reason, domain, error.details()
    return grpc.StatusCode.OK, "", "", ""


def describe(request) -> str:
    text = text_format.MessageToString(request, as_one_line=True)
    return text if len(text) < 1500 else text[:1500] + f"... ({len(text)} chars, {request.ByteSize()} bytes)"


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS)
def test_fuzzed_requests_never_internal_and_failures_change_nothing(program, world, method):
    response_class = GetMessageClass(method.output_type)

    @FUZZ
    @given(data=st.data())
    def fuzz(data):
        request = data.draw(messages(method.input_type, world.ids), label="request")
        who = data.draw(st.sampled_from(["admin"] * 10 + ["none", "garbage", "basic", "huge", "other-program"]), label="key")
        before = world.state()
        code, reason, domain, details = call(
            world.api.channel, method, request, world.metadata(who),
            serializer=type(request).SerializeToString, deserializer=response_class.FromString,
        )
        assert code not in NEVER, f"{method.name} answered {code.name} ({details}) to {describe(request)}"
        if code == grpc.StatusCode.OK:
            return
        oversized = code == grpc.StatusCode.RESOURCE_EXHAUSTED and request.ByteSize() > MAX_MESSAGE_BYTES
        if not oversized:
            assert domain == "loyalty.v1" and reason, f"{method.name} {code.name} without ErrorInfo: {details}"
        if who == "admin":
            assert world.state() == before, f"failed {method.name} ({code.name} {reason}) changed state: {describe(request)}"

    fuzz()
    # Whatever the fuzzed calls did, the ledger is still sound.
    assert_verify_clean(program)


# ---------------------------------------------------------------- control characters in every text field

# NUL (PostgreSQL cannot store it), tab, newline, carriage return, escape, DEL, C1 (NEL, CSI) and the
# Unicode line and paragraph separators.
CONTROL_CHARACTERS = ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


def text_paths(descriptor, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """Every string field a request can carry, as the chain of field descriptors leading to it."""
    found = []
    for field in descriptor.fields:
        here = (*prefix, field)
        if field.type == FieldDescriptor.TYPE_STRING:
            found.append(here)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 4:
            if field.message_type.full_name == "google.protobuf.FieldMask":
                found.append((*here, field.message_type.fields_by_name["paths"]))
            elif not field.message_type.full_name.startswith("google.protobuf."):
                found.extend(text_paths(field.message_type, here, depth + 1))
    return found


def dotted(path: tuple) -> str:
    return ".".join(field.name for field in path)


def place(request, path: tuple, text: str, *, in_mask: bool) -> str:
    """Puts text at path (the first item of a repeated field, added if needed); returns the field
    path a violation must name. With in_mask, an update request's mask names the changed field."""
    target, names = request, []
    for field in path[:-1]:
        if field.message_type.full_name == "google.protobuf.FieldMask":
            getattr(target, field.name).paths.insert(0, text)
            return field.name  # an unknown mask path is a violation of the mask itself
        if field.is_repeated:
            items = getattr(target, field.name)
            target = items[0] if len(items) else items.add()
            names.append(f"{field.name}[0]")
        else:
            target = getattr(target, field.name)
            names.append(field.name)
    last = path[-1]
    if last.is_repeated:
        items = getattr(target, last.name)
        if len(items):
            items[0] = text
        else:
            items.append(text)
        names.append(f"{last.name}[0]")
    else:
        setattr(target, last.name, text)
        names.append(last.name)
    if in_mask and "update_mask" in request.DESCRIPTOR.fields_by_name and len(path) > 1:
        if path[1].name not in request.update_mask.paths:
            request.update_mask.paths.append(path[1].name)
    return ".".join(names)


def valid_request(world: World, method):
    """A request of method that would succeed (or fail only for a business reason) as it is."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    order = common_pb2.Order(
        order_id=f"o-{secrets.token_hex(6)}", channel=common_pb2.CHANNEL_POS, amount=1000, currency="USD",
        store_id="store-1", lines=[common_pb2.OrderLine(sku="A1", category="shoes", quantity=1, amount=1000)],
    )
    campaign = programs_pb2.Campaign(
        name="summer", start_time=ts(now), end_time=ts(now + timedelta(days=1)), time_zone="Europe/Paris",
        multiplier_bps=15_000, conditions=programs_pb2.CampaignConditions(
            tiers=["Gold"], skus=["A1"], categories=["shoes"], activity_type="review_submitted"
        ),
    )
    built = {
        "EnrollMember": lambda: ledger_pb2.EnrollMemberRequest(
            member_id=f"n-{secrets.token_hex(4)}", referral_code=world.referral_code
        ),
        "GetMember": lambda: ledger_pb2.GetMemberRequest(member_id="m-1"),
        "Earn": lambda: ledger_pb2.EarnRequest(member_id="m-1", idempotency_key=key(), order=order),
        "QuoteEarn": lambda: ledger_pb2.QuoteEarnRequest(member_id="m-1", idempotency_key=key(), order=order),
        "Redeem": lambda: ledger_pb2.RedeemRequest(
            member_id="m-1", idempotency_key=key(), points=1, order_id="o-r", channel=common_pb2.CHANNEL_POS,
            store_id="store-1",
        ),
        "AuthorizeRedemption": lambda: ledger_pb2.AuthorizeRedemptionRequest(
            member_id="m-1", idempotency_key=key(), points=1, order_id="o-a", store_id="store-1"
        ),
        "CaptureRedemption": lambda: ledger_pb2.CaptureRedemptionRequest(
            hold_id=world.open_hold, idempotency_key=key(), points=1
        ),
        "VoidRedemption": lambda: ledger_pb2.VoidRedemptionRequest(hold_id=world.open_hold, idempotency_key=key()),
        "RefundOrder": lambda: ledger_pb2.RefundOrderRequest(
            member_id="m-1", order_id="o-0", idempotency_key=key(), amount=100, currency="USD", reason="returned"
        ),
        "RecordActivity": lambda: ledger_pb2.RecordActivityRequest(
            member_id="m-1", idempotency_key=key(), activity_type="review_submitted"
        ),
        "AdjustPoints": lambda: ledger_pb2.AdjustPointsRequest(
            member_id="m-1", idempotency_key=key(), points=5, reason="goodwill"
        ),
        "ReverseTransaction": lambda: ledger_pb2.ReverseTransactionRequest(
            transaction_id=world.adjustment, idempotency_key=key(), reason="wrong member"
        ),
        "ListTransactions": lambda: ledger_pb2.ListTransactionsRequest(member_id="m-1", page_token=world.token),
        "ListReferrals": lambda: ledger_pb2.ListReferralsRequest(member_id="m-1"),
        "GetLiabilityReport": lambda: programs_pb2.GetLiabilityReportRequest(as_of_time=ts(now - timedelta(hours=1))),
        "UpdateMember": lambda: ledger_pb2.UpdateMemberRequest(
            member_id="m-1",
            profile=ledger_pb2.MemberProfile(email="a@example.com", name="Ann", birth_date="1990-01-01", locale="en-GB"),
            update_mask=field_mask_pb2.FieldMask(paths=["email", "name", "birth_date", "locale"]),
        ),
        "ListMembers": lambda: ledger_pb2.ListMembersRequest(tier="Gold", page_size=2),
        "CloseMember": lambda: ledger_pb2.CloseMemberRequest(member_id=f"n-{secrets.token_hex(4)}", reason="closed"),
        "EraseMember": lambda: ledger_pb2.EraseMemberRequest(member_id=f"n-{secrets.token_hex(4)}", reason="erased"),
        "TransferPoints": lambda: ledger_pb2.TransferPointsRequest(
            from_member_id="m-1", to_member_id="m-2", points=1, idempotency_key=key(), reason="family pooling"
        ),
        "UpdateProgram": lambda: programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(
                name=f"renamed-{secrets.token_hex(4)}", currency="USD",
                earn_rate_rules=[programs_pb2.EarnRateRule(sku="A1", excluded=True)],
                activity_rules=[programs_pb2.ActivityRule(activity_type="review_submitted", points=5)],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        "SetTiers": lambda: programs_pb2.SetTiersRequest(
            tiers=[programs_pb2.Tier(name="Member", threshold=0), programs_pb2.Tier(name="Silver", threshold=100)]
        ),
        "CreateCampaign": lambda: programs_pb2.CreateCampaignRequest(campaign=campaign),
        "UpdateCampaign": lambda: programs_pb2.UpdateCampaignRequest(
            campaign=programs_pb2.Campaign(campaign_id=world.campaign_id, name="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        "GetCampaign": lambda: programs_pb2.GetCampaignRequest(campaign_id=world.campaign_id),
        "PauseCampaign": lambda: programs_pb2.PauseCampaignRequest(campaign_id=world.campaign_id),
        "CreateReward": lambda: programs_pb2.CreateRewardRequest(
            reward=programs_pb2.Reward(name="tote bag", points_price=100, unlimited_stock=True)
        ),
        "ListCampaigns": lambda: programs_pb2.ListCampaignsRequest(page_size=1),
        "ListRewards": lambda: programs_pb2.ListRewardsRequest(page_size=1),
        "CreateSegment": lambda: programs_pb2.CreateSegmentRequest(
            segment=programs_pb2.Segment(
                name=f"seg-{secrets.token_hex(4)}", description="big spenders",
                conditions=programs_pb2.SegmentConditions(tiers=["Gold"], spend=programs_pb2.IntRange(min=1)),
            )
        ),
        "UpdateSegment": lambda: programs_pb2.UpdateSegmentRequest(
            segment=programs_pb2.Segment(segment_id="seg_lapsed", description="gone quiet"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        "GetSegment": lambda: programs_pb2.GetSegmentRequest(segment="lapsed"),
        "ListSegments": lambda: programs_pb2.ListSegmentsRequest(page_size=1),
        "ListSegmentMembers": lambda: programs_pb2.ListSegmentMembersRequest(segment="lapsed", page_size=1),
        "CreateWebhook": lambda: webhooks_pb2.CreateWebhookRequest(
            url="http://127.0.0.1:9/hooks", event_types=["points.earned"], description="crm"
        ),
        "DeleteWebhook": lambda: webhooks_pb2.DeleteWebhookRequest(webhook_id=world.webhook_id),
        "ListWebhookDeliveries": lambda: webhooks_pb2.ListWebhookDeliveriesRequest(webhook_id=world.webhook_id),
        "RedeliverEvents": lambda: webhooks_pb2.RedeliverEventsRequest(webhook_id=world.webhook_id, after_event_id=""),
    }
    return built[method.name]() if method.name in built else None


TEXT_METHODS = [method for method in METHODS if text_paths(method.input_type)]


def test_every_text_field_of_every_request_is_covered():
    """A new string field or RPC is covered without touching this file; a new RPC needs a valid request."""
    assert len(TEXT_METHODS) >= 23
    names = {f"{m.name}.{dotted(path)}" for m in TEXT_METHODS for path in text_paths(m.input_type)}
    assert {"SetTiers.tiers.name", "CreateCampaign.campaign.name", "UpdateCampaign.campaign.name",
            "CreateReward.reward.name", "AdjustPoints.reason", "RefundOrder.reason", "ReverseTransaction.reason",
            "UpdateProgram.program.activity_rules.activity_type", "Earn.order.lines.sku"} <= names


def _refused_and_unchanged(world: World, method, request, expected_field: str) -> None:
    stub = world.api.channel.unary_unary(
        path_of(method), request_serializer=type(request).SerializeToString,
        response_deserializer=GetMessageClass(method.output_type).FromString,
    )
    before = world.state()
    code, reason, fields, _response = outcome(stub, request, world.api.metadata)
    shown = describe(request)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"), f"{method.name} {code}: {shown}"
    assert expected_field in fields, f"{method.name}: no violation of {expected_field} in {fields}: {shown}"
    assert world.state() == before, f"refused {method.name} changed state: {shown}"
    if method.name == "EnrollMember" and expected_field != "member_id":
        with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
            world.api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=request.member_id), metadata=world.api.metadata)


@pytest.mark.parametrize("method", TEXT_METHODS, ids=[m.name for m in TEXT_METHODS])
def test_control_characters_in_any_text_field_are_invalid_argument_and_write_nothing(program, world, method):
    """Each string field in turn, each control character in turn (both inside and outside an update
    mask), then hypothesis: random text around one or more control characters in a random field."""
    paths = text_paths(method.input_type)
    assert valid_request(world, method) is not None, f"add a valid {method.name} request to valid_request()"
    for i, path in enumerate(paths):
        for j in range(2):
            char = CONTROL_CHARACTERS[(2 * i + j) % len(CONTROL_CHARACTERS)]
            request = valid_request(world, method)
            expected = place(request, path, f"x{char}y" if j else char, in_mask=bool(j))
            _refused_and_unchanged(world, method, request, expected)

    control = st.one_of(st.sampled_from(CONTROL_CHARACTERS), st.characters(categories=["Cc"]))
    around = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=8)

    @FUZZ
    @given(
        path=st.sampled_from(paths),
        text=st.builds(lambda a, c, b: a + "".join(c) + b, around, st.lists(control, min_size=1, max_size=3), around),
        in_mask=st.booleans(),
    )
    def fuzz(path, text, in_mask):
        request = valid_request(world, method)
        _refused_and_unchanged(world, method, request, place(request, path, text, in_mask=in_mask))

    fuzz()
    assert_verify_clean(program)


# ---------------------------------------------------------------- bodies that are not (valid) protobuf

UNPARSEABLE = [
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a varint that never ends
    b"\x07",  # wire type 7 does not exist
    b"\x0a\x05ab",  # a length beyond the body
    b"\x08",  # a varint field with no value
]


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS)
@FUZZ
@given(body=st.one_of(st.binary(max_size=400), st.sampled_from(UNPARSEABLE)),
       who=st.sampled_from(["admin", "admin", "admin", "none", "garbage"]))
def test_random_bytes_never_internal(program, world, method, body, who):
    code, reason, domain, details = call(world.api.channel, method, body, world.metadata(who))
    assert code not in NEVER, f"{method.name} answered {code.name} ({details}) to body {body!r}"
    if code != grpc.StatusCode.OK:
        assert domain == "loyalty.v1" and reason, f"{method.name} {code.name} without ErrorInfo: {details}"


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS)
def test_unparseable_body_is_invalid_argument(program, world, method):
    for body in UNPARSEABLE:
        code, reason, _domain, details = call(world.api.channel, method, body, world.api.metadata)
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"), (method.name, body, code, details)


def test_oversized_body_is_resource_exhausted(program):
    api = program.api(Role.ADMIN)
    try:
        payload = b"x" * (MAX_MESSAGE_BYTES + 100)
        # field 1, length-delimited; for a message with no field 1 it is an unknown field: either way > 1 MiB.
        body = b"\x0a" + _varint(len(payload)) + payload
        for method in METHODS:
            code, _reason, _domain, details = call(api.channel, method, body, api.metadata)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (method.name, code, details)
        # The server is still fine afterwards.
        ok = api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata)
        assert ok.program.program_id == program.program_id
    finally:
        api.close()


# ---------------------------------------------------------------- statuses stay small enough to arrive


@pytest.mark.parametrize("rpc", ["Earn", "QuoteEarn"])
def test_many_field_violations_still_reach_the_client_as_invalid_argument(program, api, rpc):
    enroll(api, "m-1")
    message = ledger_pb2.EarnRequest if rpc == "Earn" else ledger_pb2.QuoteEarnRequest
    lines = [common_pb2.OrderLine(sku=f"s{i}", quantity=-1, amount=-1) for i in range(500)]  # 500 lines is the limit
    request = message(
        member_id="m-1", idempotency_key=key(),
        order=common_pb2.Order(order_id="o-1", channel=common_pb2.CHANNEL_POS, amount=2599, currency="USD", lines=lines),
    )
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"):
        getattr(api.ledger, rpc)(request, metadata=api.metadata)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
