"""Every refusal of the ledger as a sentence a person understands (never a status code alone)."""

from __future__ import annotations

import grpc

from loyalty.client import LedgerApiError

REASONS: dict[str, str] = {
    "API_KEY_INVALID": "The ledger did not recognise this key (it may be mistyped or revoked).",
    "ROLE_NOT_ALLOWED": "This key is not allowed to do that; a marketing or admin key is needed.",
    "CAMPAIGN_NOT_FOUND": "There is no such campaign in this program.",
    "MEMBER_NOT_FOUND": "There is no member with that id in this program.",
    "PROGRAM_NOT_FOUND": "The program of this key no longer exists.",
    "IDEMPOTENCY_KEY_REUSED": "This form was already sent once with other values; reload the page and try again.",
    "RATE_LIMITED": "The ledger is receiving too many requests from this key; wait a moment and try again.",
    "SERVER_BUSY": "The ledger is busy right now; wait a moment and try again.",
    "STORE_UNAVAILABLE": "The ledger cannot reach its database right now; try again in a minute.",
    "CONFLICT_RETRY": "Someone else changed the same thing at the same moment; try again.",
    "NOT_YET_AVAILABLE": "The ledger does not offer this yet.",
    "MEMBER_CLOSED": "This member's account is closed.",
}

CODES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "The ledger cannot be reached right now; try again in a minute.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "The ledger took too long to answer; check the list before trying again.",
    grpc.StatusCode.UNAUTHENTICATED: REASONS["API_KEY_INVALID"],
    grpc.StatusCode.PERMISSION_DENIED: REASONS["ROLE_NOT_ALLOWED"],
    grpc.StatusCode.NOT_FOUND: "That was not found in this program.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: REASONS["SERVER_BUSY"],
    grpc.StatusCode.INTERNAL: "The ledger failed unexpectedly; its operators have the details in its log.",
}

# How a field of a request is called on the console's forms.
FIELD_NAMES: dict[str, str] = {
    "campaign.name": "Name",
    "campaign.start_time": "Starts",
    "campaign.end_time": "Ends",
    "campaign.time_zone": "Time zone",
    "campaign.multiplier_bps": "Multiplier",
    "campaign.bonus_points": "Bonus points",
    "campaign.budget": "Budget",
    "campaign.per_member_cap": "Cap per member",
    "campaign.priority": "Priority",
    "order.amount": "Order amount",
    "order.occur_time": "Order time",
}


def _field(path: str) -> str:
    if path in FIELD_NAMES:
        return FIELD_NAMES[path]
    if path.startswith("campaign.conditions"):
        return "Conditions"
    if path.startswith("tiers"):
        return "Tier " + path.removeprefix("tiers").lstrip(".")
    return path.replace("_", " ").replace(".", " ")


def sentence(error: LedgerApiError, doing: str) -> str:
    """E.g. "Could not save the campaign: Ends: must be after start_time." """
    if error.field_violations:
        problems = "; ".join(f"{_field(path)}: {text}" for path, text in error.field_violations)
        return f"Could not {doing}: {problems}."
    known = REASONS.get(error.reason) or CODES.get(error.code)
    if known:
        return f"Could not {doing}. {known}"
    return f"Could not {doing}: {error.message.rstrip('.')}."
