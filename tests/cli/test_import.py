"""`loyalty-ledger import orders|members FILE.csv` on PostgreSQL and SQLite: through the same
write path as the API (each order an Earn at its own time, refused rows reported with their
reason), exactly once across reruns, and after a kill -9 or a Ctrl-C mid-import the rerun
earns every order exactly once."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, programs_pb2
from tests.cli.processes import CLI, environment, run_ok
from tests.grpc_helpers import enroll
from tests.integration.ledger_checks import assert_verify_clean, member, statement


def write_orders(path, members: list[str], count: int, bad: bool = True) -> None:
    when = datetime.now(timezone.utc) - timedelta(days=3)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("member_id", "order_id", "amount", "currency", "occur_time", "channel", "sku"))
        for i in range(count):
            writer.writerow((members[i % len(members)], f"mp-{i}", 1_000 + i, "USD",
                             (when + timedelta(minutes=i)).isoformat(), "MARKETPLACE", "A1"))
        if bad:
            writer.writerow(("nobody", "mp-x", 1_000, "USD", when.isoformat(), "", ""))
            writer.writerow((members[0], "mp-y", "ten", "USD", when.isoformat(), "", ""))


def earned(api, members: list[str]) -> list[str]:
    return [tx.order_id for m in members for tx in statement(api, m) if tx.order_id]


def test_orders_import_reports_refusals_and_reruns_change_nothing(program, api, tmp_path):
    members = ["imp-1", "imp-2", "imp-3"]
    for m in members:
        enroll(api, m)
    source = tmp_path / "orders.csv"
    write_orders(source, members, 10)
    url, pid = program.backend.url, program.program_id
    lines = run_ok(url, "import", "orders", str(source), "--program", pid, "--no-progress", "--workers", "4")
    assert "10 applied, 2 refused" in lines[-1]
    with (tmp_path / "orders.csv.refused.csv").open() as report:
        rows = list(csv.DictReader(report))
    assert sorted((r["order_id"], r["reason"]) for r in rows) == [("mp-x", "MEMBER_NOT_FOUND"), ("mp-y", "INVALID_FIELD")]
    assert sorted(earned(api, members)) == sorted(f"mp-{i}" for i in range(10))
    tx = next(t for t in statement(api, "imp-1") if t.order_id == "mp-0")
    assert tx.occur_time.ToDatetime(tzinfo=timezone.utc) < datetime.now(timezone.utc) - timedelta(days=2)
    before = [member(api, m).balance.posted for m in members]
    # A rerun skips what the checkpoint says is done; with no checkpoint, every row replays.
    assert "0 applied, 0 refused" in run_ok(url, "import", "orders", str(source), "--program", pid, "--no-progress")[-1]
    (tmp_path / "orders.csv.progress").unlink()
    run_ok(url, "import", "orders", str(source), "--program", pid, "--no-progress")
    assert [member(api, m).balance.posted for m in members] == before
    with (tmp_path / "orders.csv.refused.csv").open() as report:
        assert len(list(csv.DictReader(report))) == 2  # each refused row once
    assert_verify_clean(program)


def test_members_import_with_profiles_and_opening_balances(program, api, tmp_path):
    source = tmp_path / "members.csv"
    expiry = (datetime.now(timezone.utc) + timedelta(days=20)).replace(microsecond=0)
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("member_id", "email", "name", "locale", "marketing_consent", "opening_balance",
                         "expire_time", "enroll_time"))
        writer.writerow(("old-1", "a@example.com", "Ann", "fr-CA", "yes", "1200", expiry.isoformat(), "2020-01-01T00:00:00Z"))
        writer.writerow(("old-2", "", "", "", "", "0", "", ""))
        writer.writerow(("old-3", "bad", "", "", "", "5", "", ""))
    lines = run_ok(program.backend.url, "import", "members", str(source), "--program", program.program_id, "--no-progress")
    assert "2 applied, 1 refused" in lines[-1]
    ann = member(api, "old-1")
    assert (ann.balance.available, ann.profile.email, ann.profile.marketing_consent) == (1200, "a@example.com", True)
    assert ann.enroll_time.ToDatetime().year == 2020
    assert [(e.points, e.expire_time.ToDatetime(tzinfo=timezone.utc)) for e in ann.expiring_points] == [(1200, expiry)]
    (source.parent / "members.csv.progress").unlink()
    run_ok(program.backend.url, "import", "members", str(source), "--program", program.program_id, "--no-progress")
    assert member(api, "old-1").balance.posted == 1200
    assert_verify_clean(program)


def test_members_import_carries_tiers_over_once_and_refuses_unknown_ones(program, api, tmp_path):
    api.programs.SetTiers(programs_pb2.SetTiersRequest(tiers=[
        programs_pb2.Tier(name="Member", threshold=0),
        programs_pb2.Tier(name="Gold", threshold=50_000, earn_multiplier_bps=20_000),
    ]), metadata=api.metadata)
    source = tmp_path / "members.csv"
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("member_id", "opening_balance", "tier"))
        writer.writerow(("gold-1", "300", "Gold"))
        writer.writerow(("plain-1", "0", ""))
        writer.writerow(("typo-1", "50", "Platinum"))
    started = datetime.now(timezone.utc)
    lines = run_ok(program.backend.url, "import", "members", str(source), "--program", program.program_id, "--no-progress")
    assert "2 applied, 1 refused" in lines[-1]
    with (tmp_path / "members.csv.refused.csv").open() as report:
        [refused] = list(csv.DictReader(report))
    assert (refused["member_id"], refused["reason"]) == ("typo-1", "INVALID_FIELD")
    assert "Platinum" in refused["message"] and "Gold" in refused["message"]
    # The refused row wrote nothing: no member, no points.
    with pytest.raises(grpc.RpcError) as missing:
        member(api, "typo-1")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    gold = member(api, "gold-1")
    assert (gold.tier.name, gold.tier.earn_multiplier_bps, gold.balance.available) == ("Gold", 20_000, 300)
    reached = gold.tier.reach_time.ToDatetime(tzinfo=timezone.utc)
    assert started - timedelta(seconds=5) <= reached <= datetime.now(timezone.utc)
    assert gold.tier.period_end_time.ToDatetime(tzinfo=timezone.utc) == reached + timedelta(days=365)
    assert member(api, "plain-1").tier.name == "Member"
    changes = [tx for tx in statement(api, "gold-1") if tx.kind == common_pb2.TRANSACTION_KIND_TIER_CHANGE]
    assert [(c.points, "carried over" in c.reason) for c in changes] == [(0, True)]
    # A rerun of every row changes nothing: the tier is carried over once.
    (tmp_path / "members.csv.progress").unlink()
    run_ok(program.backend.url, "import", "members", str(source), "--program", program.program_id, "--no-progress")
    assert len([tx for tx in statement(api, "gold-1") if tx.kind == common_pb2.TRANSACTION_KIND_TIER_CHANGE]) == 1
    assert member(api, "gold-1").tier.reach_time == gold.tier.reach_time
    assert_verify_clean(program)


def _children(pid: int) -> list[int]:
    """The live processes whose parent is pid (the import's worker processes)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = (Path("/proc") / entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop", ["kill -9", "ctrl-c"])
def test_an_import_stopped_mid_way_then_rerun_earns_each_order_once(pg_program, tmp_path, stop):
    """kill -9 of the import (its worker processes then end by themselves, and the batch one was
    writing rolls back), or Ctrl-C (the whole process group: exit status 130 and how to go on)."""
    api = pg_program.api(Role.ADMIN)
    try:
        members = [f"k-{i}" for i in range(20)]
        for m in members:
            enroll(api, m)
        source = tmp_path / "orders.csv"
        write_orders(source, members, 2_000, bad=False)
        args = [str(CLI), "import", "orders", str(source), "--program", pg_program.program_id, "--no-progress"]
        # One batch at a time (ledger.imports.BATCH_ROWS rows each, one database transaction),
        # so that a quiet machine does not finish all 2,000 before the stop; the rerun takes
        # the default.
        running = subprocess.Popen(
            [*args, "--workers", "1"], env=environment(pg_program.backend.url), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        progress = tmp_path / "orders.csv.progress"
        ends = time.monotonic() + 60
        while time.monotonic() < ends and not (progress.exists() and int(progress.read_text() or 0) >= 100):
            time.sleep(0.01)
        workers = _children(running.pid)
        assert workers, "orders on PostgreSQL are imported by worker processes"
        if stop == "kill -9":
            os.kill(running.pid, signal.SIGKILL)
            running.wait(10)
            ends = time.monotonic() + 10
            while time.monotonic() < ends and any(_alive(pid) for pid in workers):
                time.sleep(0.05)
            assert not any(_alive(pid) for pid in workers), "a worker outlived its killed import"
        else:
            os.killpg(running.pid, signal.SIGINT)
            _, stderr = running.communicate(timeout=30)
            assert running.returncode == 130
            assert "interrupted: rerun the same command to go on from row" in stderr.decode()
        done_before = int(progress.read_text())
        assert 100 <= done_before < 2_000, "the import finished before it could be stopped"
        run_ok(pg_program.backend.url, *args[1:])
        orders = earned(api, members)
        assert len(orders) == len(set(orders)) == 2_000
    finally:
        api.close()
    assert_verify_clean(pg_program)


@pytest.fixture
def api(program):
    client = program.api(Role.ADMIN)
    yield client
    client.close()
