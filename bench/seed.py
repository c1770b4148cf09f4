"""Seeds a PostgreSQL ledger fast with set-based SQL (generate_series): a program, N members
with K ledger entries each (a consistent ledger that `loyalty-ledger verify` accepts, hash
chain included), a hot member with a large balance and a running unbudgeted campaign.

With due_lots, each member's lot expired a day ago, so `loyalty-ledger expire` has one
due lot per member to expire: the expiry benchmark. With expiring_in_days, each member's lot
expires that many days after seeding, so the due work has a points.expiring moment to tell
for every member: the moments benchmark (`python -m bench moments`).

With analyze=False (`--no-analyze`) the seeded tables are left as a server with autovacuum
off leaves them: autovacuum is turned off for them and they are not analysed, so the
planner's statistics know nothing of the new rows (never analysed, or analysed before this
program existed: seed a small program first, then a big one with --no-analyze).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ledger.domain.campaigns import CampaignRule
from ledger.domain.hash_chain import GENESIS
from ledger.store.postgres.hash_chain_sql import postgres_expression
from ledger.domain.kinds import Role
from ledger.service import campaigns, keys, programs, support
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import migrate, tables
from ledger.store.ledger_writes import insert_from
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from ledger.store.instants import to_micros

POINTS_PER_ENTRY = 10
DUE_LOT_AGE_MICROS = 86_400_000_000  # --due-lots: the lots expired a day before seeding


# The tables the seed fills (and, with analyze=False, keeps autovacuum off).
SEEDED_TABLES = ("members", "transactions", "idempotency_records", "lots", "entries")


# An order's breakdown as Earn writes it (one base line), so that reads parsing breakdowns (the
# liability report's points by source) meet real ones: one text per order (it names the
# order's amount), as a real ledger's differ, so no scan can reuse one parse for many rows.
_ORDER_BREAKDOWN = (
    "'[{\"source\": \"BASE\", \"points\": ' || :pts || ', \"description\": "
    "\"base points for ' || {amount} || ' minor units of USD\", \"campaign_id\": \"\"}]'"
)


def seed(
    url: str,
    members: int,
    entries_per_member: int,
    name: str,
    due_lots: bool = False,
    analyze: bool = True,
    expiring_in_days: int | None = None,
    orders: bool = False,
) -> dict:
    """orders: each seeded transaction is an order (an EARN with its order id, amount and
    qualifying spend, dated over the last 500 days), for the segments refresh (`bench segments`)."""
    engine = create_engine_for(url, pool_size=2)
    if engine.dialect.name != "postgresql":
        raise SystemExit("bench seed needs PostgreSQL (LOYALTY_DATABASE_URL=postgresql://...)")
    migrate.upgrade(engine)
    created = programs.create_program(Database(engine), name)
    program_id, now = created.program_id, to_micros(datetime.now(timezone.utc))
    params = {
        "p": program_id,
        "n": members,
        "k": entries_per_member,
        "pts": POINTS_PER_ENTRY,
        "now": now,
        "expires": (
            now - DUE_LOT_AGE_MICROS
            if due_lots
            else now + expiring_in_days * 86_400_000_000
            if expiring_in_days is not None
            else None
        ),
    }
    # The rows in the bulk form of the ledger's one writer (column lists from tables.py).
    members_of_g = "generate_series(0, :n - 1) g"
    entries_of_g = "generate_series(0, :n - 1) g, generate_series(1, :k) s"
    kind = "'EARN'" if orders else "'ADJUST'"
    # When each seeded entry was recorded: orders a month apart (the last one now), as a
    # ledger with a history has them (the liability report rolls up settled days); other
    # entries a second apart.
    step = "2592000000000" if orders else "1000000"
    # Orders: amounts 1.00-200.99 and dates over the last 500 days, spread so that members
    # differ (and some tie) in recency, frequency in the 365-day window and spend.
    amount = "(100 + ((CAST(g AS bigint) * 31 + s * 17) % 20000))" if orders else "0"
    occurred = (
        ":now - ((CAST(g AS bigint) * 7919 + s * 104729) % 500) * 86400000000 - s * 1000000"
        if orders
        else ":now - (:k - s) * 1000000"
    )
    statements = [
        insert_from(
            tables.transactions, entries_of_g,
            program_id=":p", transaction_id="'tx_seed_' || g || '_' || s", member_id="'m' || g",
            kind=kind, points=":pts", breakdown=_ORDER_BREAKDOWN.replace("{amount}", amount) if orders else "'[]'", channel="'POS'" if orders else "'SUPPORT'", store_id="''",
            order_id="'o' || g || '_' || s" if orders else "NULL", order_amount=amount,
            currency="'USD'" if orders else "''", reason="'seed'",
            idempotency_key="'seed-' || g || '-' || s", api_key_id="'seed'", reverses_transaction_id="NULL",
            occurred_at=occurred, created_at=f":now - (:k - s) * {step}",
            activity_type="NULL", tier_from="NULL", tier_to="NULL",
        ),
        insert_from(
            tables.idempotency_records, entries_of_g,
            program_id=":p", idempotency_key="'seed-' || g || '-' || s", method="'Seed'",
            request_hash="'seed'", outcome="'{}'", created_at=":now",
        ),
        # one lot per member holding all its points, credited by its first transaction
        insert_from(
            tables.lots, members_of_g,
            program_id=":p", member_id="'m' || g", lot_id="'tx_seed_' || g || '_1'", points=":k * :pts",
            remaining=":k * :pts", available_at="0", expires_at="CAST(:expires AS bigint)", order_id="NULL",
            created_at=":now",
        ),
        *(
            [
                insert_from(
                    tables.qualifying_events, entries_of_g,
                    program_id=":p", member_id="'m' || g", transaction_id="'tx_seed_' || g || '_' || s",
                    occurred_at=occurred, spend=amount, base_points=":pts",
                )
            ]
            if orders
            else []
        ),
        # The seeded history predates the program's events (as a ledger migrated to 0012 does):
        # verify asks for no event of it.
        "INSERT INTO event_heads (program_id, last_position, events_since) VALUES (:p, 0, :now + 1)"
        " ON CONFLICT (program_id) DO UPDATE SET events_since = excluded.events_since",
    ]
    # The hash chain links each entry to the previous one: one statement per sequence number.
    # The first entry follows the genesis hash; each later one looks the member's previous
    # entry up by its primary key, row by row, in entries as the statement before left it.
    # (Not a join: on statistics taken before this program existed, the planner sees no rows
    # of it and may walk all the program's entries for every member; and not a lookup in the
    # first statement, which fills the table it would read: planned on the nearly empty table,
    # a scan of it per row.)
    def seed_entries(seq: int) -> str:
        previous = (
            f"'{GENESIS}'"
            if seq == 1
            else "(SELECT prev.entry_hash FROM entries prev"
            " WHERE prev.program_id = :p AND prev.member_id = 'm' || g AND prev.seq = :s - 1)"
        )
        entry_hash_sql = postgres_expression(
            previous,
            ":p",
            "'m' || g",
            ":s",
            "'tx_seed_' || g || '_' || :s",
            kind,
            ":pts",
            ":s * :pts",
            f":now - (:k - :s) * {step}",
        )
        return insert_from(
            tables.entries, members_of_g,
            program_id=":p", member_id="'m' || g", seq=":s", transaction_id="'tx_seed_' || g || '_' || :s",
            kind=kind, points=":pts", balance_after=":s * :pts", created_at=f":now - (:k - :s) * {step}",
            entry_hash=entry_hash_sql,
        )

    # The members come last, each written once, as enrolment and the operations since would
    # have left it: its balance includes its seeded entries, and its chain head, the hash of
    # its last entry, is looked up by the entry's primary key member by member (as a join, on
    # statistics taken before this program existed, it ran for minutes: no rows of the
    # program on either side, so a walk of its entries nested in a walk of its members).
    # Setting the heads afterwards, by an UPDATE of every member, left the live rows packed
    # into full pages, where no later update of a member could stay on its page.
    seeded_members = insert_from(
        tables.members, members_of_g,
        program_id=":p", member_id="'m' || g", referral_code="upper(substr(md5(:p || g), 1, 12))",
        status="'ACTIVE'", enrolled_at=":now", posted=":k * :pts", held="0", last_seq=":k",
        updated_at=":now", last_activity_at=":now",
        last_entry_hash="coalesce((SELECT e.entry_hash FROM entries e"
        f" WHERE e.program_id = :p AND e.member_id = 'm' || g AND e.seq = :k), '{GENESIS}')",
        closed_at="NULL", erased_at="NULL",
    )
    # The bulk statements go through a plain engine: the ledger's would prepare them once a
    # process has run them five times (ledger.store.postgres.prepared), with parameter types inferred
    # from the first use (an integer for the microsecond instants, out of range).
    bulk = create_engine(engine.url, poolclass=NullPool)
    with bulk.begin() as conn:
        # Seeding millions of rows takes longer than the server's statement timeout.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        if not analyze:
            for table in SEEDED_TABLES:
                conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        for sql in statements:
            conn.execute(text(sql), params)
        for seq in range(1, entries_per_member + 1):
            conn.execute(text(seed_entries(seq)), {**params, "s": seq})
        conn.execute(text(seeded_members), params)
    caller = Caller(program_id, "bench", Role.ADMIN)
    # The hot member every redeem-hot terminal spends from.
    support.adjust_points(Database(engine), caller, Mutation("bench-hot", "AdjustPoints", "bench"), "m0", 10**9, "bench hot member")
    start = datetime.now(timezone.utc) - timedelta(days=1)
    campaigns.create_campaign(
        Database(engine),
        caller,
        CampaignRule("", "Bench double points", start, start + timedelta(days=30), multiplier_bps=20000),
        "UTC",
    )
    # VACUUM, not just ANALYZE: a bulk-loaded table has no hint bits and no visibility map, so
    # the first reads of each page would write it back; and autovacuum would start on the big
    # tables in the middle of a measurement. This leaves the steady state a long-lived ledger is in.
    if analyze:
        with bulk.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET statement_timeout = 0"))
            conn.execute(text("VACUUM (ANALYZE)"))
    bulk.dispose()
    # The key `bench watch` follows the program's events with (the role a consumer has).
    events_key = keys.create_key(Database(engine), program_id, Role.EVENTS)
    engine.dispose()
    return {
        "program_id": program_id,
        "key": created.admin_key,
        "events_key": events_key,
        "members": members,
        "member_prefix": "m",
        "hot_member": "m0",
        "entries": members * entries_per_member,
        "due_lots": members if due_lots else 0,
        "expiring_lots": members if expiring_in_days is not None else 0,
    }


def write(path: str, setup: dict) -> None:
    with open(path, "w") as handle:
        json.dump(setup, handle, indent=2)
