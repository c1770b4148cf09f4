"""The schema as SQLAlchemy Core tables. It changes only through migrations/.

Each lookup of the ledger can enter exactly one index by its leading column (migration 0011),
so the planner has one sensible plan for it whatever its statistics say about the program.
program_id leads at most one index of a table, its primary key, and only where the table is
looked up by primary key alone; every other index leads with the key it looks up and has
program_id after it; and transactions, holds and referrals, looked up by other keys too,
have primary keys led by their own ids. A lookup by another key of a table whose primary key
leads with program_id names no program (members.member_by_code, transactions.views_of).

Ledger tables (transactions, entries, idempotency_records, lot_consumptions,
qualifying_events, events) are append-only: database triggers refuse UPDATE, DELETE and TRUNCATE
on them (events alone may be deleted once past their program's retention: the pruning job).
members, lots and holds are projections that can be rebuilt from the ledger;
programs and api_keys are settings. Those may change.

Instants are stored as integer microseconds since the Unix epoch (UTC): exact,
sortable and identical on PostgreSQL and SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

LEDGER_TABLES = ("transactions", "entries", "idempotency_records", "lot_consumptions", "qualifying_events", "events")

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("earn_points", BigInteger, nullable=False),
    Column("earn_per_amount", BigInteger, nullable=False),
    Column("rounding", String(16), nullable=False),
    Column("pending_days", Integer, nullable=False),
    Column("expiry_mode", String(16), nullable=False),
    Column("expiry_days", Integer, nullable=False),
    Column("negative_balance_policy", String(16), nullable=False),
    Column("hold_ttl_seconds", BigInteger, nullable=False),
    Column("max_backdate_days", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # JSON: earn rules, activity rules and tier settings (ProgramRules.earning_json).
    Column("earning_settings", Text, nullable=False, server_default="{}"),
    # Bumped by every settings, tier or campaign change: the key of servers' configuration caches.
    Column("config_version", BigInteger, nullable=False, server_default="0"),
    # Events older than this many days may be pruned, and a cursor older than that is expired.
    Column("event_retention_days", Integer, nullable=False, server_default="30"),
    # Recency, frequency and monetary value are measured over this many days (ledger.domain.segments).
    Column("rfm_window_days", Integer, nullable=False, server_default="365"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("program_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_api_keys_program", "program_id"),
)

members = Table(
    "members",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("referral_code", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("enrolled_at", BigInteger, nullable=False),
    # Projection of the ledger: sum of entries and the last entry's sequence.
    Column("posted", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Last earn or spend: the clock of the INACTIVITY expiry policy.
    Column("last_activity_at", BigInteger, nullable=False, server_default="0"),
    # Projection of the ledger: the hash of the last entry (the chain head; 64 zeros before any entry).
    Column("last_entry_hash", String(64), nullable=False, server_default="0" * 64),
    # When CloseMember closed the member, and when EraseMember erased its profile (final).
    Column("closed_at", BigInteger, nullable=True),
    Column("erased_at", BigInteger, nullable=True),
    Index("uq_members_referral_code", "referral_code", "program_id", unique=True),
    # Pages half empty, so that rewriting a page's members in one transaction (the expiry job)
    # finds room for every new version beside the old one: no index entries (migration 0018).
    postgresql_with={"fillfactor": 45},
)

# A member's personal fields, apart from the ledger: EraseMember empties them (migration 0014).
member_profiles = Table(
    "member_profiles",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("email", String(254), nullable=True),
    Column("name", String(200), nullable=True),
    # ISO 8601 calendar date, YYYY-MM-DD.
    Column("birth_date", String(10), nullable=True),
    # BCP 47 language tag, e.g. fr-CA.
    Column("locale", String(35), nullable=True),
    Column("marketing_consent", Boolean, nullable=False, server_default=false()),
    Column("marketing_consent_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("program_id", String(64), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("member_id", String(128), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("points", BigInteger, nullable=False),
    # JSON list of {source, points, description, campaign_id}.
    Column("breakdown", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("store_id", String(128), nullable=False),
    Column("order_id", String(128), nullable=True),
    Column("order_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("api_key_id", String(64), nullable=False),
    Column("reverses_transaction_id", String(64), nullable=True),
    Column("occurred_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activity_type", String(64), nullable=True),
    Column("tier_from", String(64), nullable=True),
    Column("tier_to", String(64), nullable=True),
    # Led by the transaction's id: transactions are also looked up by order and by member.
    PrimaryKeyConstraint("transaction_id", "program_id"),
    Index("ix_transactions_member_kind", "member_id", "program_id", "kind", "occurred_at"),
    # An order (receipt) earns once per program.
    Index(
        "uq_transactions_earned_order",
        "order_id",
        "program_id",
        unique=True,
        postgresql_where=text("kind = 'EARN'"),
        sqlite_where=text("kind = 'EARN'"),
    ),
    # An order's refunds and their reversals, looked up by every refund of the order.
    Index(
        "ix_transactions_order_refunds",
        "order_id",
        "program_id",
        postgresql_where=text("kind = 'REFUND'"),
        sqlite_where=text("kind = 'REFUND'"),
    ),
    Index(
        "ix_transactions_order_reversals",
        "order_id",
        "program_id",
        postgresql_where=text("kind = 'REVERSAL'"),
        sqlite_where=text("kind = 'REVERSAL'"),
    ),
    # A program's orders by the time they were placed (review requests, lapses: ledger.domain.moments).
    # `occurred_at >= 0` is always true of an earn; it is in the predicate so that only a query
    # that says so too can enter this index: without it, an order's or a member's earn lookup
    # on statistics that know none of the program's rows walked it by program_id (0011's hazard).
    Index(
        "ix_transactions_earns_by_time",
        "occurred_at",
        "program_id",
        postgresql_where=text("kind = 'EARN' AND occurred_at >= 0"),
        sqlite_where=text("kind = 'EARN' AND occurred_at >= 0"),
    ),
    # A transaction is reversed at most once.
    Index(
        "uq_transactions_reverses",
        "reverses_transaction_id",
        "program_id",
        unique=True,
        postgresql_where=text("reverses_transaction_id IS NOT NULL"),
        sqlite_where=text("reverses_transaction_id IS NOT NULL"),
    ),
)

entries = Table(
    "entries",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    # 1, 2, 3, ... per member with no gap: verify finds a removed row.
    Column("seq", BigInteger, primary_key=True),
    Column("transaction_id", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("points", BigInteger, nullable=False),
    # Running posted balance after this entry.
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # sha256 over this entry's content and the previous entry's hash (ledger.domain.hash_chain).
    # Nullable only because SQLite cannot add a NOT NULL column without a default; every row has one.
    Column("entry_hash", String(64), nullable=True),
    Index("ix_entries_transaction", "transaction_id", "program_id"),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("method", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    # JSON: {"result": ...} for a success or {"error": ...} for a recorded refusal.
    Column("outcome", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

lots = Table(
    "lots",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    # The id of the transaction that credited the lot.
    Column("lot_id", String(64), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    # Points are pending until available_at (the order's return window).
    Column("available_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("order_id", String(128), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index(
        "ix_lots_due",
        "expires_at",
        postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        sqlite_where=text("remaining > 0 AND expires_at IS NOT NULL"),
    ),
)

# Which lots each debit consumed (positive) or each reversal gave back (negative).
lot_consumptions = Table(
    "lot_consumptions",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("transaction_id", String(64), primary_key=True),
    Column("lot_id", String(64), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

holds = Table(
    "holds",
    metadata,
    Column("program_id", String(64), nullable=False),
    Column("hold_id", String(64), nullable=False),
    Column("member_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("captured_points", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("order_id", String(128), nullable=True),
    Column("channel", String(16), nullable=False),
    Column("store_id", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    # Led by the hold's id: holds are also looked up by member.
    PrimaryKeyConstraint("hold_id", "program_id"),
    Index("ix_holds_member", "member_id", "program_id", "state"),
    Index("ix_holds_due", "expires_at", postgresql_where=text("state = 'OPEN'"), sqlite_where=text("state = 'OPEN'")),
)

# Every version of a program's settings, so an order is earned under the rules in force at occurred_at.
program_settings_history = Table(
    "program_settings_history",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("effective_at", BigInteger, primary_key=True),
    Column("settings", Text, nullable=False),
)

tiers = Table(
    "tiers",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("threshold", BigInteger, nullable=False),
    Column("multiplier_bps", BigInteger, nullable=False),
    Column("qualification_days", Integer, nullable=False),
)

# Projection: the tier each member holds (a snapshot, so changing tier settings never moves anyone).
member_tiers = Table(
    "member_tiers",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("tier_name", String(64), nullable=False),
    Column("multiplier_bps", BigInteger, nullable=False),
    Column("reached_at", BigInteger, nullable=False),
    Column("held_until", BigInteger, nullable=False),
    Index("ix_member_tiers_review", "held_until"),
)

# Qualifying spend and base points per transaction, dated at the order's occurred_at;
# refunds and reversals add negative rows so they reduce the window they belong to.
qualifying_events = Table(
    "qualifying_events",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("transaction_id", String(64), primary_key=True),
    Column("occurred_at", BigInteger, nullable=False),
    Column("spend", BigInteger, nullable=False),
    Column("base_points", BigInteger, nullable=False),
    Index("ix_qualifying_events_window", "member_id", "program_id", "occurred_at"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("start_at", BigInteger, nullable=False),
    Column("end_at", BigInteger, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("multiplier_bps", BigInteger, nullable=False),
    Column("bonus_points", BigInteger, nullable=False),
    Column("conditions", Text, nullable=False),
    Column("stacking", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("per_member_cap", BigInteger, nullable=False),
    Column("budget", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Points a campaign awarded, split into slots so campaigns without a budget have
# no single hot row; a budgeted campaign uses slot 0 only, locked for the check.
campaign_counters = Table(
    "campaign_counters",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("awarded", BigInteger, nullable=False),
)

campaign_member_awards = Table(
    "campaign_member_awards",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("awarded", BigInteger, nullable=False),
)

rewards = Table(
    "rewards",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("reward_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("points_price", BigInteger, nullable=False),
    Column("start_at", BigInteger, nullable=True),
    Column("end_at", BigInteger, nullable=True),
    # NULL: unlimited.
    Column("stock", BigInteger, nullable=True),
    Column("redeemed", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Projection: a referee's attribution to a referrer and the fate of its reward.
referrals = Table(
    "referrals",
    metadata,
    Column("program_id", String(64), nullable=False),
    Column("referee_id", String(128), nullable=False),
    Column("referrer_id", String(128), nullable=False),
    Column("attributed_at", BigInteger, nullable=False),
    # Set once the first qualifying order was decided (rewarded or refused by a limit).
    Column("decided_at", BigInteger, nullable=True),
    Column("decision", String(500), nullable=False),
    Column("qualifying_order_id", String(128), nullable=True),
    Column("reward_transaction_id", String(64), nullable=True),
    Column("referrer_points", BigInteger, nullable=False),
    Column("referee_points", BigInteger, nullable=False),
    Column("matures_at", BigInteger, nullable=True),
    Column("reversal_transaction_id", String(64), nullable=True),
    # Led by the referee: referrals are also looked up by referrer and by order.
    PrimaryKeyConstraint("referee_id", "program_id"),
    Index("ix_referrals_referrer", "referrer_id", "program_id", "attributed_at"),
    Index("ix_referrals_order", "qualifying_order_id", "program_id"),
)

# Settings of the service itself, shared by every server process on this database: a secret
# per purpose, written once by a migration (0010: "page_token", the key that signs page tokens).
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    # 32 random bytes, hex.
    Column("secret", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The outbox (ledger.store.outbox): one row per ledger transaction and per enrolment, written
# in the same database transaction. position is 1, 2, 3, ... per program in commit order,
# assigned under the program's event_heads row (taken as the last lock, just before COMMIT).
events = Table(
    "events",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("member_id", String(128), nullable=False),
    # The transaction that caused the event; NULL for one of no transaction (member.enrolled).
    Column("transaction_id", String(64), nullable=True),
    Column("occurred_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # JSON, the type's payload (ledger.domain.events).
    Column("payload", Text, nullable=False),
    # No index by transaction: only verify pairs events with transactions, reading both whole
    # (migration 0019).
)

# Per program: the last event position given out (the lock that orders commits), and since
# when every transaction has its event (events began with migration 0012; pruning moves it).
event_heads = Table(
    "event_heads",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("last_position", BigInteger, nullable=False),
    Column("events_since", BigInteger, nullable=False),
)

# One row per post-purchase moment told (ledger.domain.moments), written with its event: the
# key is what makes a moment told once, whichever process runs the due work and how often.
moment_keys = Table(
    "moment_keys",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("moment_key", String(256), primary_key=True),
    # When the moment was due; keys long past it are forgotten (no scan looks that far back).
    Column("due_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Projection of the ledger (ledger.domain.segments): each member's RFM figures as last computed,
# by the member's own Earn or RefundOrder (in its transaction) or by the segments refresh.
member_rfm = Table(
    "member_rfm",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("member_id", String(128), primary_key=True),
    Column("last_order_at", BigInteger, nullable=True),
    Column("orders", BigInteger, nullable=False),
    Column("spend", BigInteger, nullable=False),
    # The instant the window ended at when these figures were computed.
    Column("computed_at", BigInteger, nullable=False),
)

# Per program: the RFM quintile cut points of its last refresh (JSON lists of four integers).
rfm_cuts = Table(
    "rfm_cuts",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("computed_at", BigInteger, nullable=False),
    Column("members", BigInteger, nullable=False),
    Column("recency", Text, nullable=False),
    Column("frequency", Text, nullable=False),
    Column("monetary", Text, nullable=False),
)

# The liability report's points issued by source, summed per settled UTC day (days before
# liability_rollups.sources_until_day; migration 0017 says why).
liability_day_sources = Table(
    "liability_day_sources",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("day", BigInteger, primary_key=True),
    Column("source", String(32), primary_key=True),
    Column("points", BigInteger, nullable=False),
)

liability_rollups = Table(
    "liability_rollups",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("sources_until_day", BigInteger, nullable=False),
)

# Settings: named rules over members (presets and marketing's own).
segments = Table(
    "segments",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("segment_id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("description", String(500), nullable=False),
    # JSON of ledger.domain.segments.SegmentConditions.
    Column("conditions", Text, nullable=False),
    Column("preset", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # When the refresh last computed every member's membership (NULL: never).
    Column("computed_at", BigInteger, nullable=True),
    Index("uq_segments_name", "name", "program_id", unique=True),
)

# Projection: who is in which segment, since when. Led by the segment (ListSegmentMembers pages
# by member_id within it); a member's own segments through ix_segment_members_member.
segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", String(64), nullable=False),
    Column("program_id", String(64), nullable=False),
    Column("member_id", String(128), nullable=False),
    Column("entered_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("segment_id", "program_id", "member_id"),
    Index("ix_segment_members_member", "member_id", "program_id"),
)

# Event delivery (migration 0016). A program's webhook endpoints; cursor: the last event
# position the sender took in (sent, or queued in webhook_deliveries); version moves when
# RedeliverEvents rewinds the cursor, so a sender's batch read before it cannot undo it.
webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    Column("program_id", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    # JSON list of event types; [] for every type.
    Column("event_types", Text, nullable=False),
    Column("description", String(256), nullable=False),
    # The Standard Webhooks signing secret (whsec_...): the sender needs it to sign.
    Column("secret", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_webhooks_program", "program_id"),
)

# The events of a webhook that wait for a retry ('pending') or failed for good ('failed');
# a delivered event leaves no row. A member's pending events go out in position order.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("member_id", String(128), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # When the event entered delivery (its first attempt, or queued behind the member's
    # earlier event): the retry window counts from here.
    Column("since", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Index("ix_webhook_deliveries_member", "member_id", "webhook_id", "position"),
)

# One row per HTTP attempt (ListWebhookDeliveries), pruned after the program's event retention.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    Column("attempted_at", BigInteger, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("event_type", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("latency_ms", BigInteger, nullable=False),
    Column("error", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
)

# Per program: the last event position JetStream acknowledged to the relay (ledger.relay).
relay_positions = Table(
    "relay_positions",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
