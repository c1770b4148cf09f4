"""Any database URL SQLAlchemy accepts works for `serve` and `migrate`, percent-encoding included.

A password with an @ or a % is percent-encoded in a URL (`s3cr%40t`), and so is a socket
directory given as `?host=%2Fvar%2Frun%2Fpostgresql`. Such URLs once stopped both commands
with "ValueError: invalid interpolation syntax" (the URL went into Alembic's config parser
unescaped).

The password forms run against a private cluster (tests/private_postgres.py) that checks
passwords (scram-sha-256) for every role but its superuser: the password must get through
intact, and a wrong one is refused. The shared server at 127.0.0.1:5432 trusts everyone,
so it could not tell.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.cli.processes import ServerProcess, run_cli, run_ok
from tests.cli.test_serve import demo_key, get_program
from tests.databases import postgres_database
from tests.private_postgres import private_postgres

# Every character that needs percent-encoding somewhere in a URL, and a %.
PASSWORD = "s3cr@t%25:/?#[]! x"
ROLE = "loyalty_pw"
SHARED_SOCKET_DIR = "/var/run/postgresql"


@pytest.fixture(scope="module")
def cluster():
    with private_postgres(password_auth=True) as cluster:
        cluster.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s", (PASSWORD,))
        yield cluster


@pytest.fixture
def database(cluster):
    """A new database owned by the password role; yields its name."""
    name = f"urls_{secrets.token_hex(4)}"
    cluster.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
    yield name
    cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def encoded(text: str) -> str:
    return quote(text, safe="")


def migrate_and_serve(url: str) -> None:
    """`migrate` reaches head, then `serve` starts on the same URL, creates the demo program
    and answers a call made with its key."""
    lines = run_ok(url, "migrate")
    assert lines[-1].startswith("database at revision"), lines
    with ServerProcess.serve(url) as server:
        key = demo_key(server)
        target = server.wait_serving()
        assert get_program(target, key).name == "demo"
        assert server.terminate() == 0
    assert PASSWORD not in server.stdout + server.stderr, "the password must not reach the output"
    assert run_cli(url, "verify").returncode == 0


def test_password_with_reserved_characters_over_tcp(cluster, database):
    url = f"postgresql://{ROLE}:{encoded(PASSWORD)}@127.0.0.1:{cluster.port}/{database}"
    assert "%40" in url and "%25" in url
    migrate_and_serve(url)


def test_a_wrong_password_is_refused(cluster, database):
    """The cluster really checks passwords, so the test above proves the password got through."""
    url = f"postgresql://{ROLE}:{encoded(PASSWORD + 'x')}@127.0.0.1:{cluster.port}/{database}"
    done = run_cli(url, "migrate")
    assert done.returncode == 2
    # One line that says why, not a traceback (and never the password).
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "password authentication failed" in line, done.stderr[-2000:]


def test_socket_directory_in_the_query_with_a_password(cluster, database):
    url = f"postgresql://{ROLE}:{encoded(PASSWORD)}@/{database}?host={encoded(str(cluster.socket_dir))}&port={cluster.port}"
    assert "host=%2F" in url
    migrate_and_serve(url)


@pytest.mark.skipif(
    not Path(SHARED_SOCKET_DIR, ".s.PGSQL.5432").exists(), reason=f"no PostgreSQL socket in {SHARED_SOCKET_DIR}"
)
def test_socket_form_of_the_issue_on_the_shared_server():
    """`postgresql://postgres@/db?host=%2Fvar%2Frun%2Fpostgresql`, verbatim."""
    with postgres_database("loyalty_socket") as tcp_url:
        name = re.search(r"/([^/?]+)$", tcp_url).group(1)
        migrate_and_serve(f"postgresql://postgres@/{name}?host=%2Fvar%2Frun%2Fpostgresql")
