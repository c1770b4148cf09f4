"""Any number of servers may start at once on a new, empty database.

Each `serve` migrates to head first. Started together on a new database they once raced
each other's migrations and crashed (IntegrityError on alembic_version or pg_type, 3 tries
in 4). Now one migrates while the others wait for it (PostgreSQL: an advisory lock;
SQLite: a file lock beside the database), then every one of them serves, the schema is at
head, and exactly one `demo` program exists, announced by exactly one of them.
"""

from __future__ import annotations

import re

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ledger.store import migrate
from ledger.store.engine import create_engine_for
from tests.cli.processes import ServerProcess
from tests.cli.test_serve import get_program
from tests.databases import postgres_database, sqlite_database

DEMO = re.compile(r"Created program 'demo'")
KEY = re.compile(r"^(lk_\S+)$", re.MULTILINE)


def start_together(url: str, count: int) -> list[ServerProcess]:
    return [ServerProcess.serve(url, extra=("--workers", "2", "--due-work-interval", "0")) for _ in range(count)]


def check_all_served_one_demo(url: str, servers: list[ServerProcess]) -> None:
    for server in servers:
        server.wait_serving(timeout=60)
    announced = [server for server in servers if DEMO.search(server.stdout)]
    assert len(announced) == 1, [server.stdout for server in servers]
    key = KEY.search(announced[0].stdout).group(1)
    for server in servers:
        assert get_program(server.target, key).name == "demo"
    for server in servers:
        assert server.terminate() == 0, server.describe()

    engine = create_engine_for(url, pool_size=1)
    try:
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM programs")).scalars().all()
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        head = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()
    finally:
        engine.dispose()
    assert names == ["demo"]
    assert versions == [head]


@pytest.mark.parametrize("count", [2, 4])
def test_servers_started_together_on_a_new_postgresql_database(count):
    with postgres_database("loyalty_start") as url:
        servers = start_together(url, count)
        try:
            check_all_served_one_demo(url, servers)
        finally:
            for server in servers:
                server.kill()


def test_servers_started_together_on_a_new_sqlite_file(tmp_path):
    with sqlite_database(tmp_path) as url:
        servers = start_together(url, 3)
        try:
            check_all_served_one_demo(url, servers)
        finally:
            for server in servers:
                server.kill()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_demo_program_created_once_by_racing_callers(backend, tmp_path):
    """The demo program alone, raced by 8 threads at once on a migrated empty database: one
    of them creates it (the others' inserts lose on the unique name and their retry finds a
    program already there, or SQLite's BEGIN IMMEDIATE serialises them)."""
    from concurrent import futures

    from ledger.service import programs

    database = postgres_database("loyalty_demo") if backend == "postgresql" else sqlite_database(tmp_path)
    with database as url:
        engine = create_engine_for(url, pool_size=8)
        try:
            migrate.upgrade(engine)
            with futures.ThreadPoolExecutor(8) as pool:
                created = list(pool.map(lambda _: programs.create_demo_program_if_empty(engine), range(8)))
            with engine.connect() as conn:
                names = conn.execute(text("SELECT name FROM programs")).scalars().all()
        finally:
            engine.dispose()
    assert len([c for c in created if c is not None]) == 1
    assert names == ["demo"]
