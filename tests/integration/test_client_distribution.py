"""The client distribution alone calls the API: `pip install ./clients/python` into a fresh
virtual environment, without the server package, and call the test server with it.

Proves that loyalty-ledger-client installs with nothing of the server (no `ledger`, no
SQLAlchemy, no driver; only grpcio, protobuf and grpcio-status), that its blocking and
asyncio clients call a real server and read a refusal's reason there, and that it ships its
types (py.typed and the .pyi stubs): mypy, pointed at that environment, checks a caller
against them. Slow-ish (a venv and a pip install, ~20 s), so the environment is made once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


def _env() -> dict[str, str]:
    """The environment without anything that would let the repository or this venv leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def client_python(tmp_path_factory) -> Path:
    """The python of a fresh venv with only `pip install ./clients/python` in it."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    # A copy, so that setuptools' build/ and egg-info land outside the repository and a stale
    # build/ from an earlier install can never slip a deleted module into the wheel.
    source = shutil.copytree(CLIENT, home / "python", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        cwd=home, env=_env(), capture_output=True, text=True, timeout=280,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def run(python: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Runs code in the client venv from a folder outside the repository (so the repository is
    not on sys.path as the current directory)."""
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code), *args],
        cwd=python.parents[2], env=_env(), capture_output=True, text=True, timeout=60,
    )


def test_the_client_installs_without_the_server(client_python):
    found = run(client_python, """
        import importlib.metadata as metadata, importlib.util, json
        names = sorted(d.metadata["Name"].lower() for d in metadata.distributions())
        print(json.dumps({
            "requires": sorted(r.split(">")[0].split("<")[0].split("=")[0].strip() for r in metadata.requires("loyalty-ledger-client")),
            "distributions": names,
            "ledger": importlib.util.find_spec("ledger") is not None,
            "clients": importlib.util.find_spec("clients") is not None,
        }))
    """)
    assert found.returncode == 0, found.stderr
    facts = json.loads(found.stdout)
    assert facts["requires"] == ["grpcio", "grpcio-status", "protobuf"]
    assert "loyalty-ledger-client" in facts["distributions"]
    for server_only in ("loyalty-ledger", "sqlalchemy", "alembic", "psycopg2-binary", "prometheus-client"):
        assert server_only not in facts["distributions"], server_only
    assert not facts["ledger"] and not facts["clients"]

    refused = run(client_python, "import ledger")
    assert refused.returncode != 0 and "No module named 'ledger'" in refused.stderr


CALLS = """
    import asyncio, json, sys, uuid
    from datetime import datetime, timezone

    from loyalty.client import AsyncLedgerClient, LedgerApiError, LedgerClient, timestamp
    from loyalty.v1 import common_pb2

    target, key, member = sys.argv[1:4]
    out = {}
    with LedgerClient(target, key) as ledger:
        out["created"] = ledger.enroll_member(member_id=member).created
        order = common_pb2.Order(
            order_id=f"o-{uuid.uuid4()}", channel=common_pb2.CHANNEL_POS, amount=2599, currency="USD",
            occur_time=timestamp(datetime.now(timezone.utc)),
        )
        out["earned"] = ledger.earn(member_id=member, order=order).transaction.points
        try:
            ledger.redeem(member_id=member, points=10_000)
        except LedgerApiError as error:
            out["refusal"] = [error.code.name, error.reason, error.metadata]

    async def on_asyncio():
        async with AsyncLedgerClient(target, key) as ledger:
            found = (await ledger.get_member(member_id=member)).member
            kinds = [common_pb2.TransactionKind.Name(t.kind) async for t in ledger.iter_transactions(member_id=member)]
            return found.balance.available, kinds

    out["available"], out["kinds"] = asyncio.run(on_asyncio())
    print(json.dumps(out))
"""


def test_the_installed_client_calls_a_real_server(client_python, program):
    member = f"m-dist-{program.program_id[-8:]}"
    done = run(client_python, CALLS, program.backend.target, program.admin_key, member)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "created": True,
        "earned": 25,
        "refusal": ["FAILED_PRECONDITION", "INSUFFICIENT_POINTS", {"requested": "10000", "available": "25"}],
        "available": 25,
        "kinds": ["TRANSACTION_KIND_EARN"],
    }


def test_the_installed_client_is_typed(client_python, tmp_path):
    """mypy run on a caller, against the client venv's site-packages only (PEP 561): the
    installed package's types reach the caller, so a wrong argument is an error."""
    caller = tmp_path / "caller.py"
    caller.write_text(textwrap.dedent("""
        from loyalty.client import LedgerClient

        def balance(ledger: LedgerClient, member_id: str) -> int:
            return ledger.get_member(member_id=member_id).member.balance.available

        def wrong(ledger: LedgerClient) -> str:
            return ledger.get_member(member_id=5).member.balance.available
    """))
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(client_python), "--no-incremental",
         "--config-file", os.devnull, "--strict", str(caller)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["8", "8"], checked.stdout + checked.stderr
    assert 'Argument "member_id" to "get_member" of "LedgerMethods" has incompatible type "int"' in errors[0] + errors[1]
    assert 'Incompatible return value type (got "int", expected "str")' in errors[0] + errors[1]
