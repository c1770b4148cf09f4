"""The hot path's lookups use their own index whatever the planner's statistics say.

Every lookup names its program. Until migration 0011 every index led with program_id, so
a lookup could enter any index of its table by program_id alone, and which one the planner
took rested on its estimate of `program_id = '<the program>'`:

- statistics taken before the program's rows arrived, and not since (autovacuum off):
  the program is estimated at zero rows, an index entered by program_id alone costs as
  little as the right one, and the planner took it. A member's row lock and its update
  walked the referral-code index through all the program's 100,000 members (162,635 pages,
  0.6 s on a busy machine, against 7 pages), its read (LIMIT 1) half of them on average; a
  transaction read by id walked a member's-transactions index, a transaction's entries the
  entries' primary key. An Earn took 124-128 ms with LOYALTY_PG_PREPARE=off (2.7 ms since);
  prepared, only its statements' first runs on a connection, before PostgreSQL settles on
  generic plans (the first 20 Earns of a process: 58-60 ms, 4.0-4.3 ms since);
- never analysed: PostgreSQL's default estimate (0.5 % of the rows per program) kept the
  member lookups right, but "has this member earned" (an enrollment with a referral code)
  walked all the program's earned orders by the order index, led by program_id.

Here a 100,000-member program (bench.seed: one transaction, entry, lot and idempotency
record per member) is seeded with its statistics in each of those two states, checked in
pg_stat_user_tables, pg_class and pg_stats before and after, and the hot calls (Earn,
RefundOrder, QuoteEarn, Redeem, Authorize/Capture/VoidRedemption, GetMember,
ListTransactions, EnrollMember with and without a referral code, a referee's first Earn,
RecordActivity) are driven through gRPC against a server with one database connection,
with auto_explain handing every plan back as it ran (custom or generic, prepared or sent
as text, in round trips that carry several statements) as a notice. Every scan of a big
table must enter an index by a key more selective than program_id, the primary key when
its conditions name the whole primary key, filter away no more than a few rows and read no
more than a few pages a loop; none may be a sequential scan. Nothing is timed here: the
figures above and in the README (Performance) are measurements, not assertions.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass

import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import event

from bench.seed import SEEDED_TABLES, seed
from ledger.api import server as grpc_server
from loyalty.v1 import ledger_pb2, programs_pb2
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from ledger.store.tables import metadata
from tests.conftest import Api
from tests.databases import connect, postgres_database
from tests.grpc_helpers import earn_request
from tests.store.hot_calls import BIG_TABLES, RUNS, drive_the_hot_calls

MEMBERS = 100_000
NEVER_ANALYSED = "never analysed"
ANALYSED_BEFORE = "analysed before the program's members arrived"
# What a lookup of a few rows may cost, per loop of its scan node. (The row lock's walk of
# the referral-code index filtered 99,999 rows away and read 160,000 pages; since 0011 no
# scan here filters more than 3 rows or reads more than 7 pages.)
MAX_ROWS_FILTERED = 20
MAX_PAGES_PER_LOOP = 16
# Every one of these served at least one lookup of the calls below: they all ran.
EXPECTED_INDEXES = {
    "members_pkey",
    "uq_members_referral_code",
    "transactions_pkey",
    "uq_transactions_earned_order",
    "ix_transactions_order_refunds",
    "ix_transactions_member_kind",
    "entries_pkey",
    "ix_entries_transaction",
    "lots_pkey",
    "idempotency_records_pkey",
}
_SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan"}
# A condition's column compared for equality, as PostgreSQL prints it: "((member_id)::text = ...", "(seq = 0)".
_EQUALITY = re.compile(r"\(*(\w+)\)*(?:::[a-z ]+)? = ")
_AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_timing = off",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_format = json",
    "SET auto_explain.log_level = notice",
)


def _seed(url: str, statistics: str) -> dict:
    """A 100,000-member program on a ledger whose tables' statistics are in that state."""
    if statistics == ANALYSED_BEFORE:
        seed(url, members=100, entries_per_member=1, name="analysed-first")  # ends with VACUUM (ANALYZE)
    return seed(url, members=MEMBERS, entries_per_member=1, name="unanalysed", analyze=False)


def _statistics(url: str, program_id: str) -> dict[str, dict]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT s.relname, s.analyze_count + s.autoanalyze_count, s.n_mod_since_analyze, c.reltuples,"
                "       (SELECT %s = ANY (p.most_common_vals::text::text[]) FROM pg_stats p"
                "         WHERE p.tablename = s.relname AND p.attname = 'program_id')"
                " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = ANY (%s)",
                (program_id, list(SEEDED_TABLES)),
            )
            return {
                name: {"analyses": analyses, "modified": modified, "reltuples": reltuples, "program_in_stats": known}
                for name, analyses, modified, reltuples, known in cur.fetchall()
            }
    finally:
        conn.close()


def _assert_statistics_unaware(found: dict[str, dict], statistics: str) -> None:
    assert set(found) == set(SEEDED_TABLES)
    for table, stats in found.items():
        assert stats["modified"] >= MEMBERS, (table, stats)
        assert not stats["program_in_stats"], (table, stats)
        if statistics == NEVER_ANALYSED:
            assert stats["analyses"] == 0 and stats["reltuples"] == -1, (table, stats)
        else:  # analysed once, with 100 members of another program: stale by 100,000 rows
            assert stats["analyses"] >= 1 and 0 < stats["reltuples"] < 1000, (table, stats)


class _Notices:
    """Where psycopg2 appends a connection's notices, keeping them all. Not a list: psycopg2
    keeps only a list's last 50; and empty to SQLAlchemy, which logs and clears the notices
    it finds after each statement."""

    def __init__(self) -> None:
        self.kept: list[str] = []

    def append(self, notice: str) -> None:
        self.kept.append(notice)

    def __bool__(self) -> bool:
        return False


def _capture_plans(engine) -> _Notices:
    """Every plan PostgreSQL runs on the engine's connections, as auto_explain's notices."""
    notices = _Notices()

    @event.listens_for(engine.pool, "connect")
    def _explain_everything(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cur:
            for statement in _AUTO_EXPLAIN:
                cur.execute(statement)
        if not dbapi_connection.autocommit:
            dbapi_connection.commit()
        dbapi_connection.notices = notices

    engine.dispose()  # connections made before the listener would explain nothing
    return notices


def _configure_program(api: Api) -> None:
    """An activity rule (RecordActivity earns) and referral rewards (a referee's first order)."""
    program = programs_pb2.Program(
        activity_rules=[programs_pb2.ActivityRule(activity_type="review_submitted", points=50, period_days=30)],
        referral=programs_pb2.ReferralRules(referrer_points=100, referee_points=50),
    )
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=program, update_mask=field_mask_pb2.FieldMask(paths=["activity_rules", "referral"])
        ),
        metadata=api.metadata,
    )


def _drive_the_other_calls(api: Api) -> None:
    """EnrollMember (new members, and referees by a code), a referee's first Earn (the referral
    reward) and its refund, and RecordActivity, as often as the till's calls run."""
    md = api.metadata
    for n in range(RUNS):
        referrer = f"m{MEMBERS - 1 - n}"
        code = api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=referrer), metadata=md).member.referral_code
        api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=f"new-{secrets.token_hex(4)}"), metadata=md)
        referee = f"referee-{secrets.token_hex(4)}"
        api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=referee, referral_code=code), metadata=md)
        order_id = f"referee-order-{n}"
        api.ledger.Earn(earn_request(referee, 5000, order_id=order_id), metadata=md)
        api.ledger.RefundOrder(
            ledger_pb2.RefundOrderRequest(
                member_id=referee, order_id=order_id, idempotency_key=secrets.token_hex(8), amount=5000, currency="USD"
            ),
            metadata=md,
        )
        api.ledger.RecordActivity(
            ledger_pb2.RecordActivityRequest(
                member_id=f"m{2 + n}", idempotency_key=secrets.token_hex(8), activity_type="review_submitted"
            ),
            metadata=md,
        )


@dataclass(frozen=True)
class Scan:
    """One scan node of a plan that ran, on one of the big tables."""

    node: str
    table: str
    index: str | None
    index_cond: str
    filter: str
    rows_filtered: float
    pages_per_loop: float
    query: str

    def equalities(self, condition: str) -> set[str]:
        return set(_EQUALITY.findall(condition)) & set(metadata.tables[self.table].columns.keys())

    def problems(self) -> list[str]:
        found = []
        if self.node == "Seq Scan":
            return [f"a sequential scan of {self.table}"]
        keyed = self.equalities(self.index_cond)
        if not keyed - {"program_id"}:
            found.append(f"{self.index} entered by program_id alone ({self.index_cond or 'no condition'})")
        primary_key = [column.name for column in metadata.tables[self.table].primary_key.columns]
        if set(primary_key) <= keyed | self.equalities(self.filter) and self.index != f"{self.table}_pkey":
            found.append(f"a lookup by primary key through {self.index}")
        if self.rows_filtered > MAX_ROWS_FILTERED:
            found.append(f"{self.rows_filtered:.0f} rows filtered away a loop")
        if self.pages_per_loop > MAX_PAGES_PER_LOOP:
            found.append(f"{self.pages_per_loop:.0f} pages read a loop")
        return found

    def describe(self) -> str:
        return (
            f"{self.node} using {self.index} on {self.table}: Index Cond {self.index_cond or '-'}; Filter "
            f"{self.filter or '-'}; {self.rows_filtered:.0f} rows filtered, {self.pages_per_loop:.1f} pages a loop\n"
            f"    in: {' '.join(self.query.split())[:300]}"
        )


def _index_tables() -> dict[str, str]:
    found = {f"{table.name}_pkey": table.name for table in metadata.tables.values()}
    found.update({index.name: table.name for table in metadata.tables.values() for index in table.indexes})
    return found


def _scans(notices) -> list[Scan]:
    tables_of = _index_tables()
    found: list[Scan] = []

    def walk(node: dict, query: str) -> None:
        table = node.get("Relation Name") or tables_of.get(node.get("Index Name", ""))
        if node["Node Type"] in _SCANS and table in BIG_TABLES:
            loops = max(node.get("Actual Loops", 1), 1)
            found.append(
                Scan(
                    node=node["Node Type"],
                    table=table,
                    index=node.get("Index Name"),
                    index_cond=node.get("Index Cond", ""),
                    filter=node.get("Filter", ""),
                    rows_filtered=node.get("Rows Removed by Filter", 0),  # already per loop
                    pages_per_loop=(node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)) / loops,
                    query=query,
                )
            )
        for child in node.get("Plans", ()):
            walk(child, query)

    for notice in notices:
        explained = json.loads(notice[notice.index("{") :])
        walk(explained["Plan"], explained["Query Text"])
    return found


def _summary(scans: list[Scan]) -> str:
    """One line per kind of scan: how many ran, the most rows any filtered away and the most
    pages any read a loop, and its index condition with the values left out."""
    kinds: dict[tuple, list] = {}
    for scan in scans:
        condition = re.sub(r"'[^']*'(::\w+)?|\$\d+", "?", scan.index_cond)
        condition = re.sub(r"\(\((\w+)\)::text = \(?\?\)?(::text)?\)", r"\1 = ?", condition)
        seen = kinds.setdefault((scan.table, scan.index or scan.node, condition), [0, 0.0, 0.0])
        seen[0] += 1
        seen[1] = max(seen[1], scan.rows_filtered)
        seen[2] = max(seen[2], scan.pages_per_loop)
    return "\n".join(
        f"{count:5d} {table:20} {index:32} filtered <= {filtered:.0f}, pages <= {pages:.0f}: {condition}"
        for (table, index, condition), (count, filtered, pages) in sorted(kinds.items())
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("statistics", [NEVER_ANALYSED, ANALYSED_BEFORE])
def test_hot_lookups_use_their_own_index_whatever_the_statistics(statistics):
    with postgres_database() as url:
        setup = _seed(url, statistics)
        _assert_statistics_unaware(_statistics(url, setup["program_id"]), statistics)
        engine = create_engine_for(url, pool_size=1)
        notices = _capture_plans(engine)
        running = grpc_server.start(Database(engine), "127.0.0.1:0", max_workers=1)
        api = Api(f"127.0.0.1:{running.port}", setup["key"])
        try:
            _configure_program(api)
            drive_the_hot_calls(api, setup["members"])
            _drive_the_other_calls(api)
        finally:
            api.close()
            running.stop(1)
            engine.dispose()
        # Nothing analysed the tables meanwhile: the plans were made on those statistics.
        _assert_statistics_unaware(_statistics(url, setup["program_id"]), statistics)

    scans = _scans(notices.kept)
    print(f"{statistics}: {len(notices.kept)} plans ran, {len(scans)} scans of big tables\n{_summary(scans)}")
    used = Counter(scan.index or scan.node for scan in scans)
    assert EXPECTED_INDEXES <= set(used), f"lookups that did not run: {EXPECTED_INDEXES - set(used)}; ran: {used}"
    wrong = [f"{'; '.join(problems)}\n  {scan.describe()}" for scan in scans if (problems := scan.problems())]
    assert wrong == [], f"{len(wrong)} of {len(scans)} scans of big tables went wrong:\n" + "\n".join(wrong[:20])
