"""The operators' command line (DESIGN.md section 4), run as the installed console script.

On PostgreSQL and SQLite, each test on its own empty database named by
LOYALTY_DATABASE_URL: `migrate` reaches head; `program create` prints the id
then an admin key; `key create` prints only the key; `key revoke` makes the key
UNAUTHENTICATED on a running server; `verify` is clean on a real ledger and
fails, naming the broken check, once a cached balance is corrupted.
"""

from __future__ import annotations

import grpc
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ledger.domain import credentials
from ledger.domain.errors import LedgerError
from ledger.domain.kinds import Role
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc, programs_pb2, programs_pb2_grpc
from ledger.service import keys, members, support
from ledger.service.idempotent import Mutation
from ledger.store import migrate
from ledger.store.engine import create_engine_for
from ledger.store.tables import metadata
from tests.cli.processes import ServerProcess, run_cli, run_ok

CORRUPTED_CHECK = "cached posted balance"


@pytest.fixture
def engine(database_url):
    """An in-process engine on the same database, to check what the commands wrote."""
    engine = create_engine_for(database_url, pool_size=2)
    yield engine
    engine.dispose()


def create_program(database_url: str, name: str = "shop") -> tuple[str, str]:
    lines = run_ok(database_url, "program", "create", name)
    assert len(lines) == 2, lines
    return lines[0], lines[1]


def test_migrate_reaches_head_and_is_repeatable(database_url, engine):
    head = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()
    for _ in range(2):
        lines = run_ok(database_url, "migrate")
        assert head in lines[-1]
        assert migrate.current_revision(engine) == head
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_program_create_prints_id_then_admin_key(database_url, engine):
    program_id, admin_key = create_program(database_url)
    caller = keys.authenticate(engine, admin_key)
    assert (caller.program_id, caller.role) == (program_id, Role.ADMIN)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM programs WHERE program_id = :p"), {"p": program_id}).scalar_one() == "shop"


def test_program_name_is_unique(database_url):
    create_program(database_url, "shop")
    again = run_cli(database_url, "program", "create", "shop")
    assert again.returncode != 0
    assert again.stdout == ""
    assert "PROGRAM_NAME_TAKEN" in again.stderr


def test_key_create_prints_only_the_key(database_url, engine):
    program_id, _ = create_program(database_url)
    lines = run_ok(database_url, "key", "create", "--program", program_id, "--role", "pos")
    assert len(lines) == 1, lines
    caller = keys.authenticate(engine, lines[0])
    assert (caller.program_id, caller.role) == (program_id, Role.POS)


def test_key_create_for_an_unknown_program_fails(database_url):
    run_ok(database_url, "migrate")
    done = run_cli(database_url, "key", "create", "--program", "prg_missing", "--role", "pos")
    assert done.returncode != 0
    assert done.stdout == ""


def _get_member(target: str, key: str, member_id: str = "m-1"):
    with grpc.insecure_channel(target) as channel:
        return ledger_pb2_grpc.LedgerStub(channel).GetMember(
            ledger_pb2.GetMemberRequest(member_id=member_id),
            metadata=(("authorization", f"Bearer {key}"),),
            timeout=10,
        )


def _get_program(target: str, key: str):
    with grpc.insecure_channel(target) as channel:
        return programs_pb2_grpc.ProgramsStub(channel).GetProgram(
            programs_pb2.GetProgramRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=10
        )


def test_key_revoke_makes_the_key_unauthenticated(database_url, engine):
    program_id, admin_key = create_program(database_url)
    pos_key = run_ok(database_url, "key", "create", "--program", program_id, "--role", "pos")[0]
    members.enroll_member(engine, keys.authenticate(engine, admin_key), "m-1")
    with ServerProcess.serve(database_url) as server:
        target = server.wait_serving()
        assert "lk_" not in server.stdout, "a database that has a program gets no demo key"
        assert _get_member(target, pos_key).member.member_id == "m-1"

        key_id = credentials.key_id_of(pos_key)
        assert run_ok(database_url, "key", "revoke", key_id[:10]) == [f"revoked {key_id}"]

        with pytest.raises(grpc.RpcError) as refused:
            _get_member(target, pos_key)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Only that key: the program's admin key still works.
        assert _get_program(target, admin_key).program.program_id == program_id


def test_key_revoke_of_an_unknown_prefix_fails(database_url):
    run_ok(database_url, "migrate")
    done = run_cli(database_url, "key", "revoke", "lk_0000000000")
    assert done.returncode != 0
    assert "no active key" in done.stderr


def test_key_revoke_accepts_the_whole_key(database_url, engine):
    """An operator revoking a leaked key pastes the whole key, which is longer than its id."""
    program_id, _ = create_program(database_url)
    pos_key = run_ok(database_url, "key", "create", "--program", program_id, "--role", "pos")[0]
    done = run_cli(database_url, "key", "revoke", pos_key)
    assert done.returncode == 0, done.stderr
    with pytest.raises(LedgerError, match="revoked"):
        keys.authenticate(engine, pos_key)


def write_ledger(engine, admin_key: str) -> None:
    caller = keys.authenticate(engine, admin_key)
    for member_id in ("m-1", "m-2"):
        members.enroll_member(engine, caller, member_id)
        for number, points in enumerate((300, -40), start=1):
            mutation = Mutation(f"{member_id}-adjust-{number}", "AdjustPoints", f"{member_id}-{number}")
            support.adjust_points(engine, caller, mutation, member_id, points, "goodwill")


def test_verify_is_clean_then_names_the_broken_check(database_url, engine):
    _, admin_key = create_program(database_url)
    write_ledger(engine, admin_key)
    clean = run_cli(database_url, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # members is a projection (not append-only): corrupt one cached balance.
    with engine.begin() as conn:
        conn.execute(text("UPDATE members SET posted = posted + 1 WHERE member_id = 'm-2'"))
    broken = run_cli(database_url, "verify")
    assert broken.returncode != 0
    output = broken.stdout + broken.stderr
    assert CORRUPTED_CHECK in output, output
    assert "m-2" in output and "m-1" not in output, output
