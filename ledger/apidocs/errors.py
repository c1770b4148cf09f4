"""docs/errors.md: every status and ErrorInfo reason the server answers, found in the code.

The reasons, their statuses and their ErrorInfo metadata keys are read from ledger/'s source
(every `LedgerError(Category.X, "REASON", ...)` and every `errors.refused` / `not_found` /
`already_exists` / `permission_denied("REASON", ...)`); only when each happens is written
here, in WHEN. A reason raised in the code without a WHEN entry, or a WHEN entry no code
raises, fails the generator (and so tests/test_apidocs.py).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from ledger.domain.errors import RECORDED_CATEGORIES, Category

LEDGER_ROOT = Path(__file__).resolve().parents[1]

# Helpers of ledger/domain/errors.py that take the reason first, and their category.
_HELPERS = {
    "refused": Category.FAILED_PRECONDITION,
    "not_found": Category.NOT_FOUND,
    "already_exists": Category.ALREADY_EXISTS,
    "permission_denied": Category.PERMISSION_DENIED,
}

# When each reason is answered. The code says which reasons exist and their status.
WHEN = {
    "INVALID_FIELD": "a field is missing or malformed: a control character in any text field, zero or negative "
    "points, an unknown currency or enum value, an order in the future or older than the program's backdating "
    "bound, a oneof with no member set, a page token this list did not issue for this program and query, an "
    "update mask naming a field that cannot change. Every problem of the request is listed as a "
    "`google.rpc.BadRequest` field violation (e.g. `order.lines[1].quantity`); a request body that does not "
    "parse is one on `(request)`",
    "API_KEY_INVALID": "no `authorization: Bearer <key>` metadata, or a malformed, unknown or revoked key",
    "ROLE_NOT_ALLOWED": "the key's role may not call this RPC ([roles](api.md#roles))",
    "ACTIVITY_ROLE_NOT_ALLOWED": "RecordActivity: the activity's rule (`ActivityRule.allowed_roles`) does not "
    "list the key's role",
    "MEMBER_NOT_FOUND": "no member with that `member_id` in the key's program (also when one exists in another "
    "program)",
    "HOLD_NOT_FOUND": "no hold with that `hold_id` in the key's program",
    "ORDER_NOT_FOUND": "RefundOrder: the order earned nothing for that member in this program",
    "TRANSACTION_NOT_FOUND": "ReverseTransaction: no transaction with that id in this program",
    "PROGRAM_NOT_FOUND": "the key's program no longer exists",
    "CAMPAIGN_NOT_FOUND": "no campaign with that `campaign_id` in this program",
    "SEGMENT_NOT_FOUND": "no segment with that id or name in this program (also a campaign condition naming one)",
    "REWARD_NOT_FOUND": "Redeem: no reward with that `reward_id` in this program",
    "REFERRAL_CODE_NOT_FOUND": "EnrollMember: no member of this program has that referral code",
    "ACTIVITY_RULE_NOT_FOUND": "RecordActivity: the program has no rule for that activity type",
    "INSUFFICIENT_POINTS": "Redeem, AuthorizeRedemption or CaptureRedemption asks for more than the member's "
    "available points (expired points are never available; a capture whose held points expired meanwhile)",
    "HOLD_NOT_OPEN": "CaptureRedemption or VoidRedemption of a hold already captured, voided or lapsed",
    "CAPTURE_EXCEEDS_HOLD": "CaptureRedemption of more points than the hold holds",
    "REFUND_EXCEEDS_ORDER": "RefundOrder: the refunds of the order would exceed its amount",
    "ORDER_EARN_REVERSED": "RefundOrder: the order's earn was reversed",
    "ORDER_EARNED_NO_POINTS": "RefundOrder: the order earned no points to claw back",
    "MEMBER_CLOSED": "the member is closed and may not earn, spend or transfer",
    "MEMBER_ERASED": "UpdateMember of a member whose personal data was erased (EraseMember is final)",
    "NEGATIVE_BALANCE_FORBIDDEN": "an adjustment or clawback would push `posted` below zero under "
    "`NEGATIVE_BALANCE_POLICY_FORBID`",
    "BALANCE_OUT_OF_RANGE": "the balance would leave the ledger's integer range",
    "TRANSACTION_NOT_REVERSIBLE": "ReverseTransaction of a reversal or a tier change (adjust instead), or of a "
    "transfer (transfer back instead)",
    "TRANSACTION_ALREADY_REVERSED": "ReverseTransaction of a transaction already reversed",
    "EARN_PARTLY_REFUNDED": "ReverseTransaction of an earn whose order was partly refunded (refund the rest, or "
    "reverse its refunds first)",
    "EARN_POINTS_EXPIRED": "ReverseTransaction of an earn some of whose points already expired (adjust instead)",
    "REWARD_NOT_AVAILABLE": "Redeem of a reward outside its start_time / end_time",
    "REWARD_OUT_OF_STOCK": "Redeem of a reward with no stock left",
    "SELF_REFERRAL": "EnrollMember with the member's own referral code",
    "ALREADY_REFERRED": "EnrollMember with a code of another referrer than the one the member already has",
    "REFERRAL_AFTER_FIRST_ORDER": "EnrollMember with a referral code for a member who already has orders",
    "SAME_MEMBER": "TransferPoints from a member to itself",
    "TRANSFERS_DISABLED": "TransferPoints in a program whose `transfer_rules.disabled` is set",
    "TRANSFER_LIMIT_EXCEEDED": "TransferPoints beyond the program's `transfer_rules`: points per transfer, or points "
    "sent or received by one member this calendar month (metadata `limit`, `max_points`, `used`)",
    "TRANSFER_ROLE_NOT_ALLOWED": "TransferPoints with a pos key in a program whose `transfer_rules.pos_allowed` is "
    "not set",
    "ACTIVITY_LIMIT_REACHED": "RecordActivity beyond the rule's `max_per_period` for this member",
    "IDEMPOTENCY_KEY_REUSED": "an `idempotency_key` (or `request_id`) already used in the program for a different "
    "request, of this RPC or another",
    "ORDER_ALREADY_EARNED": "Earn of an order that already earned, even under a new idempotency key",
    "SEGMENT_NAME_TAKEN": "CreateSegment or UpdateSegment with a name another segment of the program has",
    "SEGMENT_IS_PRESET": "UpdateSegment renaming a preset segment (its conditions may change)",
    "TOO_MANY_SEGMENTS": "CreateSegment in a program that has 100 segments already",
    "PROGRAM_NAME_TAKEN": "UpdateProgram (or `loyalty-ledger program create`) with a name another program has",
    "CONFLICT_RETRY": "the call lost a race (deadlock, serialization failure, lock timeout) after the server's own "
    "retries, or its caller went away first; nothing was written: retry with the same key",
    "STORE_UNAVAILABLE": "the database is unreachable, or no connection was free in time: retry with the same key",
    "NOT_YET_AVAILABLE": "an RPC or option of the contract that is not built yet",
    "SERVER_STOPPING": "WatchEvents: the server is stopping; resume the stream after the last `event_id` "
    "received (another server, or this one once restarted)",
    "WEBHOOK_URL_REFUSED": "CreateWebhook: the URL is not https:// (http:// only to a loopback address), has no "
    "host or carries a user name, or its host resolves to a private, link-local or otherwise non-public address "
    "(allowed only with LOYALTY_WEBHOOK_ALLOW_PRIVATE=on)",
    "WEBHOOK_NOT_FOUND": "DeleteWebhook, ListWebhookDeliveries or RedeliverEvents: the program has no webhook of "
    "that id",
    "TOO_MANY_WEBHOOKS": "CreateWebhook: the program already has 20 webhooks",
    "DELIVERY_NOT_FAILED": "RedeliverEvents by event_ids: an event whose delivery at this webhook has not failed "
    "for good (delivered, still retrying, or never sent); redeliver delivered events with after_event_id",
    "CURSOR_EXPIRED": "ListEvents or WatchEvents after an event older than the program's event retention "
    "(default 30 days): those events were pruned; start again from the oldest kept (empty `after_event_id`)",
    "RATE_LIMITED": "the key is over its rate limit (`--rate-limit`): retry after `retry_after_ms` with the same key",
    "SERVER_BUSY": "too many calls already wait for the server's workers: retry after `retry_after_ms` with the "
    "same key",
    "REQUEST_INCOMPLETE": "the call did not send its request message within `--request-timeout`; nothing was done",
}

# Metadata the code sets from a variable, which the source scan cannot see.
EXTRA_METADATA = {"INSUFFICIENT_POINTS": ("requested", "available", "expired")}

STATUS_MEANING = {
    Category.INVALID_ARGUMENT: "the request is malformed; fix it before retrying",
    Category.UNAUTHENTICATED: "no valid API key",
    Category.PERMISSION_DENIED: "the key may not do this",
    Category.NOT_FOUND: "something the request names does not exist in the key's program",
    Category.FAILED_PRECONDITION: "a business rule refused it; a retry with the same key gets the same answer",
    Category.ALREADY_EXISTS: "a key reused for another request, or a natural key already taken",
    Category.ABORTED: "lost a race; retry with the same key",
    Category.UNAVAILABLE: "the database is unreachable; retry with the same key",
    Category.UNIMPLEMENTED: "not built yet",
    Category.RESOURCE_EXHAUSTED: "over a limit; retry later with the same key",
    Category.DEADLINE_EXCEEDED: "the request did not arrive in time; nothing was done",
    Category.OUT_OF_RANGE: "a cursor past what is kept; start again from where the answer says",
}


@dataclass
class Raised:
    """One reason as the code raises it: its category, metadata keys and where."""

    reason: str
    category: Category
    metadata: set[str] = field(default_factory=set)
    places: set[str] = field(default_factory=set)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _metadata_keys(call: ast.Call, helper: bool) -> set[str]:
    if helper:
        return {k.arg for k in call.keywords if k.arg is not None}
    keys: set[str] = set()
    for keyword in call.keywords:
        if keyword.arg == "metadata" and isinstance(keyword.value, ast.Dict):
            keys |= {k for k in map(_literal, keyword.value.keys) if k}
    return keys


def raised_reasons(root: Path = LEDGER_ROOT) -> dict[str, Raised]:
    """Every reason raised in ledger/ with a literal reason string, by reason."""
    found: dict[str, Raised] = {}
    for path in sorted(root.rglob("*.py")):
        if "apidocs" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            callee = _name(node.func)
            if callee == "LedgerError" and len(node.args) >= 2 and _literal(node.args[1]):
                category = Category[_name(node.args[0])]
                reason, helper = _literal(node.args[1]), False
            elif callee in _HELPERS and node.args and _literal(node.args[0]):
                category, reason, helper = _HELPERS[callee], _literal(node.args[0]), True
            else:
                continue
            assert reason is not None
            entry = found.setdefault(reason, Raised(reason, category))
            if entry.category is not category:
                raise ValueError(f"{reason} is raised as {entry.category.value} and as {category.value}")
            entry.metadata |= _metadata_keys(node, helper)
            entry.places.add(str(path.relative_to(root.parent)))
    return found


INTRO = """\
# Errors

<!-- Generated by `python -m ledger.apidocs`: the reasons, statuses and metadata keys from the
code under ledger/, when each happens from ledger/apidocs/errors.py. Do not edit:
tests/test_apidocs.py fails when it is stale. -->

Every refusal is a gRPC status with a one-line message and a `google.rpc.ErrorInfo` detail:
`domain` is `loyalty.v1`, `reason` one of the UPPER_SNAKE_CASE reasons below, and `metadata`
sometimes more (e.g. `requested` and `available` for `INSUFFICIENT_POINTS`). Field problems
also carry a `google.rpc.BadRequest` with one field violation per problem. Read them with
`grpc_status.rpc_status.from_call(error)` in Python (or the SDK's `LedgerApiError`); `buf curl`
prints the details base64-encoded.

A failed call writes no ledger entry. Business refusals (FAILED_PRECONDITION, ALREADY_EXISTS)
are recorded under the call's idempotency key (or request_id), so a retry gets the same answer
even if the state changed meanwhile (`IDEMPOTENCY_KEY_REUSED` itself is not: the key already
holds another request's answer); every other refusal records nothing, and a retry with the same
key may succeed. INTERNAL is a bug: it is logged on the server with its stack trace and answered
without details.

"""

OUTSIDE = """\
## Statuses without ErrorInfo

Not every status comes from the ledger:

| status | when |
| --- | --- |
| DEADLINE_EXCEEDED | the client's own deadline passed; the outcome is unknown: retry with the same key, which the ledger applies at most once |
| CANCELLED | the client cancelled the call |
| UNAVAILABLE | the server is not reachable (not running, a TLS handshake refused, a connection dropped); retry with the same key |
| INTERNAL | a bug, answered without details (please report it with the server's log line) |
"""


def render() -> str:
    raised = raised_reasons()
    unexplained = sorted(set(raised) - set(WHEN))
    stale = sorted(set(WHEN) - set(raised))
    if unexplained or stale:
        raise ValueError(
            f"ledger/apidocs/errors.py WHEN is out of step with the code: reasons raised without an entry "
            f"{unexplained}, entries no code raises {stale}"
        )
    by_category: dict[Category, list[str]] = {}
    for reason in sorted(raised):
        by_category.setdefault(raised[reason].category, []).append(reason)
    lines = [INTRO.rstrip("\n"), "", "## Statuses", "", "| status | reasons | recorded under the key | meaning |", "| --- | --- | --- | --- |"]
    for category in Category:
        if category not in by_category:
            continue
        reasons = ", ".join(f"[`{r}`](#{r})" for r in by_category[category])
        recorded = "yes" if category in RECORDED_CATEGORIES else "no"
        lines.append(f"| {category.value} | {reasons} | {recorded} | {STATUS_MEANING[category]} |")
    lines += ["", "## Reasons", "", "| reason | status | when | ErrorInfo metadata |", "| --- | --- | --- | --- |"]
    for category in Category:
        for reason in by_category.get(category, []):
            keys = sorted(raised[reason].metadata | set(EXTRA_METADATA.get(reason, ())))
            shown = ", ".join(f"`{k}`" for k in keys)
            lines.append(f'| <a id="{reason}"></a>`{reason}` | {category.value} | {WHEN[reason]} | {shown} |')
    return "\n".join([*lines, "", OUTSIDE.rstrip("\n")]) + "\n"
