"""Shared fixtures: real databases, a real server on a loopback port, programs and keys.

Each test gets its own program (the tenant boundary), so tests share one
migrated database and one server per backend yet never see each other's data.

LOYALTY_TEST_THROUGH_PGBOUNCER=1 puts a PgBouncer in transaction pooling mode (tests/pgbouncer.py)
between the PostgreSQL backend's server and its database, with LOYALTY_PG_PREPARE=off, as in
production behind one (README "Running in production"); the schema is migrated directly.
"""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass

import grpc
import pytest

from ledger.api import server as grpc_server
from ledger.domain.kinds import Role
from loyalty.v1 import events_pb2_grpc, ledger_pb2_grpc, programs_pb2_grpc
from ledger.service import keys, programs
from ledger.store import migrate
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from tests import databases
from tests.databases import postgres_database, sqlite_database

THROUGH_PGBOUNCER = os.environ.get("LOYALTY_TEST_THROUGH_PGBOUNCER", "") not in ("", "0")
if THROUGH_PGBOUNCER:
    os.environ["LOYALTY_PG_PREPARE"] = "off"  # before any engine is made, here or in a subprocess
# A URL through PgBouncer -> the same database reached directly (for migrations' session lock).
DIRECT_URL: dict[str, str] = {}

BACKENDS = ["postgresql", "sqlite"]


@dataclass
class Backend:
    name: str
    url: str
    db: Database
    target: str

    @property
    def engine(self):
        """The SQLAlchemy engine under db, for tests that look at the tables themselves."""
        return self.db.engine


@pytest.fixture(scope="session")
def postgresql_url():
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        if THROUGH_PGBOUNCER:
            from sqlalchemy.engine import make_url

            from tests.pgbouncer import PgBouncer, prepare_database

            database = make_url(url).database
            admin = databases.admin_connection()
            try:
                prepare_database(admin, database)
            finally:
                admin.close()
            bouncer = stack.enter_context(PgBouncer(upstream_port=make_url(url).port or 5432))
            direct, url = url, bouncer.url(database)
            DIRECT_URL[url] = direct
            yield url
            # The calls did go through it: PgBouncer counted their transactions.
            stats = {row[0]: row for row in bouncer.show("STATS")}
            assert stats.get(database, (None, 0))[1] > 0, f"nothing went through PgBouncer: {stats}"
            return
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
        yield url


def _serve(name: str, url: str):
    db = Database(create_engine_for(url, pool_size=24))
    if url in DIRECT_URL:
        direct = create_engine_for(DIRECT_URL[url], pool_size=1)
        migrate.upgrade(direct)
        direct.dispose()
    else:
        migrate.upgrade(db.engine)
    running = grpc_server.start(db, "127.0.0.1:0", max_workers=48)
    return Backend(name, url, db, f"127.0.0.1:{running.port}"), running


_servers: dict[str, tuple[Backend, object]] = {}


def _backend_for(request, name: str) -> Backend:
    # One server per backend for the whole session, shared by `backend` and `postgres_backend`.
    if name not in _servers:
        url = request.getfixturevalue(f"{name}_url")
        _servers[name] = _serve(name, url)

        def stop() -> None:
            backend, running = _servers.pop(name)
            running.stop(1)
            backend.db.dispose()

        request.config.add_cleanup(stop)
    return _servers[name][0]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> Backend:
    return _backend_for(request, request.param)


@pytest.fixture(scope="session")
def postgres_backend(request) -> Backend:
    return _backend_for(request, "postgresql")


class Api:
    """Raw gRPC stubs bound to one key, for asserting exact statuses."""

    def __init__(self, target: str, key: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.ledger = ledger_pb2_grpc.LedgerStub(self.channel)
        self.programs = programs_pb2_grpc.ProgramsStub(self.channel)
        self.events = events_pb2_grpc.EventsStub(self.channel)
        self.metadata = (("authorization", f"Bearer {key}"),)
        self.key = key

    def close(self) -> None:
        self.channel.close()


@dataclass
class Program:
    backend: Backend
    program_id: str
    admin_key: str

    def key(self, role: Role) -> str:
        return keys.create_key(self.backend.db, self.program_id, role)

    def api(self, role: Role = Role.ADMIN) -> Api:
        return Api(self.backend.target, self.admin_key if role is Role.ADMIN else self.key(role))


def new_program(backend: Backend) -> Program:
    created = programs.create_program(backend.db, f"test-{secrets.token_hex(6)}")
    return Program(backend, created.program_id, created.admin_key)


@pytest.fixture
def program(backend) -> Program:
    return new_program(backend)


@pytest.fixture
def pg_program(postgres_backend) -> Program:
    return new_program(postgres_backend)


@pytest.fixture
def api(program):
    client = program.api(Role.ADMIN)
    yield client
    client.close()
