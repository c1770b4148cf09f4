"""The marketing command line (clients/marketing.py) against the real test server, on PostgreSQL and SQLite.

What it proves:
- the weekend window is next Saturday 00:00 to Monday 00:00 on the shop's wall clock (zoneinfo):
  1 hour off UTC in Paris, 49 hours long across New York's DST change, a week ahead when it is
  Saturday already;
- `python -m clients.marketing ... setup-demo` with a marketing key sets the tiers Member/Silver/Gold
  (ListTiers shows them with their multipliers) and creates the double points weekend (2x, window in
  the chosen time zone); running it again creates no second campaign;
- after a backdated sale inside that weekend, `report` and `report --campaign ID` print a table with
  the name, the window in the campaign's zone, the state, the effect, points awarded, budget left and
  members awarded, matching GetCampaign;
- `preview` quotes what an order would earn inside a campaign's window before it starts (QuoteEarn
  at that future time, writing nothing); `tiers`, `add-reward`, `rewards` and `referrals` show and
  grow the rest of the program's marketing settings (its TLS options: tests/integration/test_tls.py);
- a key that may not use the Programs service exits 1 with the refusal on stderr.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from clients import marketing
from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, programs_pb2
from tests.grpc_helpers import earn_request, enroll

ROOT = Path(__file__).resolve().parents[2]


def run(program_target: str, key: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.marketing", "--target", program_target, "--key", key, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def run_here(capsys, program_target: str, key: str, *args: str) -> subprocess.CompletedProcess:
    """The same command in this process (faster; the subprocess runs prove `python -m` works)."""
    capsys.readouterr()
    code = marketing.main(["--target", program_target, "--key", key, *args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_weekend_window_follows_the_shops_wall_clock():
    paris = ZoneInfo("Europe/Paris")
    start, end = marketing.weekend_window(utc(2026, 11, 18, 12), paris)  # a Wednesday
    assert (start.astimezone(timezone.utc), end.astimezone(timezone.utc)) == (utc(2026, 11, 20, 23), utc(2026, 11, 22, 23))
    assert (start.strftime("%a %H:%M"), end.strftime("%a %H:%M")) == ("Sat 00:00", "Mon 00:00")
    new_york = ZoneInfo("America/New_York")  # clocks go back on Sunday 2026-11-01
    start, end = marketing.weekend_window(utc(2026, 10, 28, 12), new_york)
    assert start.astimezone(timezone.utc) == utc(2026, 10, 31, 4)
    assert end.astimezone(timezone.utc) == utc(2026, 11, 2, 5)
    assert end.astimezone(timezone.utc) - start.astimezone(timezone.utc) == timedelta(hours=49)
    # on a Saturday the next weekend is a week away; late Friday in UTC can be Saturday in Tokyo
    assert marketing.weekend_window(utc(2026, 11, 21, 10), ZoneInfo("UTC"))[0] == datetime(2026, 11, 28, tzinfo=ZoneInfo("UTC"))
    tokyo_start, _ = marketing.weekend_window(utc(2026, 11, 20, 16), ZoneInfo("Asia/Tokyo"))
    assert tokyo_start.date().isoformat() == "2026-11-28"


def test_setup_demo_then_report(program, capsys):
    target = program.backend.target
    key = program.key(Role.MARKETING)
    admin = program.api()
    try:
        # pretend it is 10 days ago, so the demo weekend (at most 7 days later) is over and can be synced into
        pretend = (datetime.now(timezone.utc) - timedelta(days=10)).replace(microsecond=0)
        done = run(target, key, "setup-demo", "--time-zone", "Europe/Paris", "--now", pretend.isoformat(),
                   "--budget", "5000")
        assert done.returncode == 0, done.stderr
        created = [line for line in done.stdout.splitlines() if line.startswith("campaign ")]
        assert len(created) == 1 and created[0].endswith("(created)")
        campaign_id = created[0].split()[1]

        tiers = admin.programs.ListTiers(programs_pb2.ListTiersRequest(), metadata=admin.metadata).tiers
        assert [(t.name, t.threshold, t.earn_multiplier_bps) for t in tiers] == [
            ("Member", 0, 10_000), ("Silver", 50_000, 12_500), ("Gold", 200_000, 15_000),
        ]
        campaign = admin.programs.GetCampaign(
            programs_pb2.GetCampaignRequest(campaign_id=campaign_id), metadata=admin.metadata
        ).campaign
        start = campaign.start_time.ToDatetime(tzinfo=timezone.utc)
        end = campaign.end_time.ToDatetime(tzinfo=timezone.utc)
        expected = marketing.weekend_window(pretend, ZoneInfo("Europe/Paris"))
        assert (start, end) == tuple(t.astimezone(timezone.utc) for t in expected)
        assert (campaign.name, campaign.multiplier_bps, campaign.time_zone, campaign.budget) == (
            "Double points weekend", 20_000, "Europe/Paris", 5_000,
        )
        assert end < datetime.now(timezone.utc)

        again = run_here(capsys, target, key, "setup-demo", "--time-zone", "Europe/Paris", "--now", pretend.isoformat(),
                    "--budget", "5000")
        assert again.returncode == 0, again.stderr
        assert f"campaign {campaign_id} (already there)" in again.stdout
        listed = admin.programs.ListCampaigns(programs_pb2.ListCampaignsRequest(), metadata=admin.metadata)
        assert len(listed.campaigns) == 1

        # an offline sale from Saturday afternoon, synced now: 123 base + 123 campaign points
        member = f"m-{secrets.token_hex(4)}"
        enroll(admin, member)
        sale = earn_request(member, 12_345, channel=common_pb2.CHANNEL_POS)
        sale.order.occur_time.FromDatetime(start + timedelta(hours=15))
        assert admin.ledger.Earn(sale, metadata=admin.metadata).transaction.points == 246

        for shown in (run(target, key, "report"), run_here(capsys, target, key, "report", "--campaign", campaign_id)):
            assert shown.returncode == 0, shown.stderr
            header, rule, row, *rest = shown.stdout.splitlines()
            assert rest == []
            for column in ("name", "window", "state", "points awarded", "budget left", "members awarded"):
                assert column in header
            window = f"{start.astimezone(ZoneInfo('Europe/Paris')):%Y-%m-%d} 00:00 -> " \
                     f"{end.astimezone(ZoneInfo('Europe/Paris')):%Y-%m-%d} 00:00 Europe/Paris"
            assert window in row
            cells = row.split()
            assert cells[0] == campaign_id
            assert "Double points weekend" in row and "ENDED" in cells and "2x" in cells  # the pretend weekend is over
            assert cells[-3:] == ["123", "4877", "1"]  # points awarded, budget left, members awarded
    finally:
        admin.close()


def test_a_key_without_programs_access_is_refused(program, capsys):
    refused = run_here(capsys, program.backend.target, program.key(Role.POS), "report")
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr and "ROLE_NOT_ALLOWED" in refused.stderr
    unknown = run_here(capsys, program.backend.target, program.key(Role.MARKETING), "report", "--campaign", "cmp_nope")
    assert unknown.returncode == 1 and "CAMPAIGN_NOT_FOUND" in unknown.stderr


def test_preview_tiers_rewards_and_referrals(program, capsys):
    target, key = program.backend.target, program.key(Role.MARKETING)
    admin = program.api()
    try:
        done = run_here(capsys, target, key, "setup-demo", "--time-zone", "Europe/Paris")
        assert done.returncode == 0, done.stderr
        campaign_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("campaign "))

        shown = run_here(capsys, target, key, "report", "--campaign", campaign_id)
        assert "SCHEDULED" in shown.stdout.split()  # next weekend has not started

        for chosen in (["--campaign", campaign_id], []):  # that one, or every one scheduled or under way
            previewed = run_here(capsys, target, key, "preview", *chosen, "--amount", "10000")
            assert previewed.returncode == 0, previewed.stderr
            lines = previewed.stdout.splitlines()
            assert lines[0].startswith(f"{campaign_id} (Double points weekend, SCHEDULED): an order of 10000 USD on ")
            assert lines[0].endswith(" 01:00 Europe/Paris would earn 200 points"), lines
            assert lines[1:] == ["  base 100", f"  campaign 100 ({campaign_id})"]
        transactions = admin.programs.GetCampaign(
            programs_pb2.GetCampaignRequest(campaign_id=campaign_id), metadata=admin.metadata
        ).campaign.points_awarded
        assert transactions == 0  # a preview writes nothing

        listed = run_here(capsys, target, key, "tiers")
        header, _, *rows = listed.stdout.splitlines()
        assert [row.split()[0] for row in rows] == ["Member", "Silver", "Gold"]
        assert rows[1].split()[1:] == ["50000", "1.25x"]

        assert run_here(capsys, target, key, "rewards").stdout.strip() == "no rewards"
        added = run_here(capsys, target, key, "add-reward", "--name", "Tote bag", "--price", "500", "--stock", "20")
        assert added.returncode == 0, added.stderr
        reward_id = added.stdout.split()[1]
        run_here(capsys, target, key, "add-reward", "--name", "Coffee", "--price", "150")
        catalog = {row.split()[0]: row.split()[1:] for row in run_here(capsys, target, key, "rewards").stdout.splitlines()[2:]}
        assert catalog[reward_id] == ["Tote", "bag", "500", "20", "0"]
        assert sorted(catalog.values()) == [["Coffee", "150", "unlimited", "0"], ["Tote", "bag", "500", "20", "0"]]

        figures = run_here(capsys, target, key, "referrals")
        assert figures.returncode == 0
        assert [line.rsplit(None, 1)[0] for line in figures.stdout.splitlines()] == [
            "attributed", "qualified", "rewarded", "reversed", "not rewarded", "points awarded",
        ]
    finally:
        admin.close()


def test_bad_tls_options_exit_2(program, capsys, tmp_path):
    target, key = program.backend.target, program.key(Role.MARKETING)
    half = run_here_raising(capsys, target, key, "--client-cert", __file__, "tiers")
    assert half.returncode == 2 and "go together" in half.stderr
    missing = run_here_raising(capsys, target, key, "--ca-cert", str(tmp_path / "nope.pem"), "tiers")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def run_here_raising(capsys, program_target: str, key: str, *args: str) -> subprocess.CompletedProcess:
    """run_here for argument errors, which argparse reports by SystemExit(2)."""
    capsys.readouterr()
    try:
        code = marketing.main(["--target", program_target, "--key", key, *args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)
