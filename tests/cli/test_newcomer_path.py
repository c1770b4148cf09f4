"""What a new operator meets first, through the installed console script:

- a bad setting (flag or LOYALTY_* variable) stops the command with one line naming it;
- a database that is missing, unreachable or not a URL is one line (a missing PostgreSQL
  database says how to create it), never a traceback;
- `serve` on a port already in use fails before it touches the database, so no demo
  program is created and no key is shown;
- `program list` and `key list --program ID` show ids, names, roles and times, never secrets;
- the demo program rewards referrals out of the box.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.cli.processes import CLI, COMMAND_TIMEOUT, ServerProcess, environment, run_ok
from tests.cli.test_serve import demo_key, get_program


def run_with(env_extra: dict[str, str], database_url: str | None, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = environment(database_url)
    env.update(env_extra)
    return subprocess.run(
        [str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "env, args, named",
    [
        ({"LOYALTY_RATE_LIMIT": "abc"}, ("serve",), "LOYALTY_RATE_LIMIT"),
        ({"LOYALTY_DUE_WORK_INTERVAL": "-1"}, ("serve",), "LOYALTY_DUE_WORK_INTERVAL"),
        ({"LOYALTY_METRICS_PORT": "http"}, ("serve",), "LOYALTY_METRICS_PORT"),
        ({}, ("serve", "--workers", "x"), "--workers"),
        ({}, ("serve", "--listen", "50051"), "--listen"),
        ({"LOYALTY_LOG_LEVEL": "LOUD"}, ("migrate",), "LOYALTY_LOG_LEVEL"),
        ({"LOYALTY_PG_PREPARE": "maybe"}, ("migrate",), "LOYALTY_PG_PREPARE"),
        ({"LOYALTY_DATABASE_URL": "loyalty.db"}, ("migrate",), "LOYALTY_DATABASE_URL"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path, env, args, named):
    done = run_with(env, env.get("LOYALTY_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}"), *args, cwd=tmp_path)
    assert_one_line_error(done, named)
    assert not (tmp_path / "x.db").exists(), "a refused setting must not touch the database"


def test_a_missing_postgresql_database_says_how_to_create_it():
    done = run_with({}, "postgresql://postgres@127.0.0.1:5432/loyalty_never_created", "migrate")
    assert_one_line_error(done, 'database "loyalty_never_created" does not exist', "createdb")


def test_an_unreachable_database_host_is_one_line():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        done = run_with({}, f"postgresql://postgres@127.0.0.1:{port}/loyalty", "migrate")
    assert_one_line_error(done, f"127.0.0.1:{port}", "refused")


def test_serve_on_a_busy_port_fails_before_creating_the_demo_program(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_with({}, None, "serve", "--listen", f"127.0.0.1:{port}", cwd=tmp_path)
    assert_one_line_error(done, f"127.0.0.1:{port}", "in use")
    assert "lk_" not in done.stdout + done.stderr
    assert not (tmp_path / "loyalty.db").exists(), "nothing may be created before the port is known free"


def test_program_list_and_key_list_show_no_secrets(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    program_id, admin_key = run_ok(url, "program", "create", "shop")[:2]
    other_id = run_ok(url, "program", "create", "outlet")[0]
    pos_key = run_ok(url, "key", "create", "--program", program_id, "--role", "pos")[0]
    pos_key_id = "_".join(pos_key.split("_")[:2])
    run_ok(url, "key", "revoke", pos_key_id)

    programs = run_ok(url, "program", "list")
    assert programs[0].split() == ["program", "name", "currency", "created", "(UTC)"]
    assert [line.split()[:3] for line in programs[1:]] == [[program_id, "shop", "USD"], [other_id, "outlet", "USD"]]

    keys = run_ok(url, "key", "list", "--program", program_id)
    rows = [line.split() for line in keys[1:]]
    admin_key_id = "_".join(admin_key.split("_")[:2])
    assert [row[:2] for row in rows] == [[admin_key_id, "admin"], [pos_key_id, "pos"]]
    assert len(rows[0]) == 4 and len(rows[1]) == 6, "created for both, revoked (date and time) for the pos key"
    listing = "\n".join(programs + keys)
    for secret in (admin_key, pos_key):
        assert secret.split("_", 2)[2] not in listing

    done = run_with({}, url, "key", "list", "--program", "prg_nope")
    assert_one_line_error(done, "PROGRAM_NOT_FOUND")


def test_the_demo_program_rewards_referrals(tmp_path):
    with ServerProcess.serve(None, cwd=tmp_path) as server:
        key = demo_key(server)
        program = get_program(server.wait_serving(), key)
    assert program.name == "demo"
    assert program.referral.referrer_points > 0 and program.referral.referee_points > 0
