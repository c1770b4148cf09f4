"""Which role may call which RPC (docs/api.md lists them per RPC)."""

from __future__ import annotations

from ledger.domain.kinds import Role

_POS = frozenset(
    {
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
        "Ledger/ListReferrals",
        # Only when the program's transfer rules let pos keys transfer (ledger.domain.transfers).
        "Ledger/TransferPoints",
    }
)
_STOREFRONT = frozenset(
    {
        "Ledger/EnrollMember",
        "Ledger/GetMember",
        "Ledger/QuoteEarn",
        "Ledger/ListTransactions",
        "Programs/ListTiers",
        "Programs/ListRewards",
        "Ledger/RecordActivity",
        "Ledger/ListReferrals",
        # A shopper keeps their own profile up to date on the web or in the app.
        "Ledger/UpdateMember",
    }
)
_SUPPORT = _POS | {
    "Ledger/AdjustPoints",
    "Ledger/ReverseTransaction",
    "Ledger/UpdateMember",
    "Ledger/ListMembers",
    "Ledger/CloseMember",
    "Ledger/EraseMember",
}
# QuoteEarn: marketing previews what an order would earn under a campaign before it starts.
_MARKETING_LEDGER = frozenset(
    {"Ledger/GetMember", "Ledger/ListTransactions", "Ledger/ListReferrals", "Ledger/QuoteEarn", "Ledger/ListMembers"}
)

_EVENTS = frozenset({"Events/ListEvents", "Events/WatchEvents"})
# A webhook sends every event, members' ids and all, to a URL of the caller's choice: making
# one (or redelivering) reads the events by another road, which only `events`-reading roles
# may; of those, only admin configures the program. Marketing may see the webhooks and how
# their deliveries go (no secrets, no payloads), to tell whether its email platform is fed.
ADMIN_ONLY = frozenset({"Programs/CreateWebhook", "Programs/DeleteWebhook", "Programs/RedeliverEvents"})

ALLOWED: dict[Role, frozenset[str]] = {
    Role.POS: _POS,
    Role.STOREFRONT: _STOREFRONT,
    Role.SUPPORT: _SUPPORT,
    Role.EVENTS: _EVENTS,
}


def may_call(role: Role, service: str, method: str) -> bool:
    """service is the short service name ("Ledger", "Programs"), method the RPC name."""
    if role is Role.ADMIN:
        return True
    if role is Role.MARKETING:
        name = f"{service}/{method}"
        return (service == "Programs" and name not in ADMIN_ONLY) or name in _MARKETING_LEDGER
    return f"{service}/{method}" in ALLOWED[role]
