"""A marketing command line for the loyalty ledger's Programs service.

    python -m clients.marketing --target HOST:PORT --key KEY setup-demo [--time-zone Europe/Paris]
    python -m clients.marketing --target HOST:PORT --key KEY report [--campaign ID]

`setup-demo` (a `marketing` or `admin` key) sets the tier ladder Member (0, 1x),
Silver and Gold (thresholds in minor units of qualifying spend, with earn
multipliers), then creates a "Double points weekend" campaign (2x) from next
Saturday 00:00 to Monday 00:00 in the given IANA time zone (default UTC).
Running it again reuses a campaign with the same name and window instead of
creating a second one (found by listing the campaigns, so also one made by another
tool; a CreateCampaign request_id only makes a retry of the same call safe).

`report` prints one campaign (--campaign) or all of them as a table: name,
window (in the campaign's time zone), state, effect, points awarded, budget
left and members awarded.

Exits 0 on success, 1 when the ledger refuses a call (the reason and any field
violations go to stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clients.sdk import LedgerApiError
from loyalty.v1 import programs_pb2, programs_pb2_grpc

DEMO_CAMPAIGN = "Double points weekend"
SATURDAY = 5
TIMEOUT = 10.0
Campaign = programs_pb2.Campaign


# --------------------------------------------------------------------------- pure helpers


def weekend_window(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Next Saturday 00:00 (strictly after `now`) to the Monday 00:00 after it, as wall-clock times in `zone`.

    Both ends are built from the local calendar date, so a weekend across a DST change is 47 or 49
    hours long, as the shop's clocks say.
    """
    local = now.astimezone(zone)
    days = (SATURDAY - local.weekday()) % 7 or 7
    saturday: date = local.date() + timedelta(days=days)
    start = datetime.combine(saturday, time(0), tzinfo=zone)
    end = datetime.combine(saturday + timedelta(days=2), time(0), tzinfo=zone)
    return start, end


def demo_tiers(silver: int, gold: int) -> list[programs_pb2.Tier]:
    return [
        programs_pb2.Tier(name="Member", threshold=0, earn_multiplier_bps=10_000),
        programs_pb2.Tier(name="Silver", threshold=silver, earn_multiplier_bps=12_500),
        programs_pb2.Tier(name="Gold", threshold=gold, earn_multiplier_bps=15_000),
    ]


def _stamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def _instant(message: Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=timezone.utc)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def window_text(campaign: Campaign) -> str:
    """'2026-11-21 00:00 -> 2026-11-23 00:00 Europe/Paris' (in the campaign's own time zone)."""
    zone = _zone(campaign.time_zone)
    start = _instant(campaign.start_time).astimezone(zone)
    end = _instant(campaign.end_time).astimezone(zone)
    return f"{start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} {campaign.time_zone or 'UTC'}"


def effect_text(campaign: Campaign) -> str:
    if campaign.WhichOneof("effect") == "multiplier_bps":
        return f"{campaign.multiplier_bps / 10_000:g}x"
    return f"+{campaign.bonus_points}"


def state_text(campaign: Campaign) -> str:
    return Campaign.State.Name(campaign.state).removeprefix("STATE_")


def report_table(campaigns: Sequence[Campaign]) -> str:
    header = ("campaign", "name", "window", "state", "effect", "points awarded", "budget left", "members awarded")
    rows = [
        (
            c.campaign_id,
            c.name,
            window_text(c),
            state_text(c),
            effect_text(c),
            str(c.points_awarded),
            str(c.budget_remaining) if c.budget else "unlimited",
            str(c.members_awarded),
        )
        for c in campaigns
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {5, 6, 7}

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line("-" * w for w in widths), *(line(row) for row in rows)])


# --------------------------------------------------------------------------- the client


class Marketing:
    """The Programs calls this tool makes, with the key and a deadline on each; errors become LedgerApiError."""

    def __init__(self, target: str, key: str, timeout: float = TIMEOUT) -> None:
        self._channel = grpc.insecure_channel(target)
        self._programs = programs_pb2_grpc.ProgramsStub(self._channel)
        self._metadata = (("authorization", f"Bearer {key}"),)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise LedgerApiError.from_rpc_error(error) from None

    def set_tiers(self, tiers: list[programs_pb2.Tier]) -> list[programs_pb2.Tier]:
        return list(self._call(self._programs.SetTiers, programs_pb2.SetTiersRequest(tiers=tiers)).tiers)

    def create_campaign(self, campaign: Campaign) -> Campaign:
        return self._call(self._programs.CreateCampaign, programs_pb2.CreateCampaignRequest(campaign=campaign)).campaign

    def get_campaign(self, campaign_id: str) -> Campaign:
        return self._call(self._programs.GetCampaign, programs_pb2.GetCampaignRequest(campaign_id=campaign_id)).campaign

    def campaigns(self, page_size: int = 100) -> Iterator[Campaign]:
        token = ""
        while True:
            page = self._call(
                self._programs.ListCampaigns, programs_pb2.ListCampaignsRequest(page_size=page_size, page_token=token)
            )
            yield from page.campaigns
            token = page.next_page_token
            if not token:
                return


# --------------------------------------------------------------------------- commands


def setup_demo(client: Marketing, zone_name: str, now: datetime, silver: int, gold: int, multiplier_bps: int, budget: int) -> int:
    tiers = client.set_tiers(demo_tiers(silver, gold))
    print("tiers:")
    for tier in tiers:
        print(f"  {tier.name:<8} from {tier.threshold:>10} qualifying  {tier.earn_multiplier_bps / 10_000:g}x")
    start, end = weekend_window(now, ZoneInfo(zone_name))
    wanted = Campaign(
        name=DEMO_CAMPAIGN,
        start_time=_stamp(start),
        end_time=_stamp(end),
        time_zone=zone_name,
        multiplier_bps=multiplier_bps,
        budget=budget,
        stacking_mode=programs_pb2.STACKING_MODE_STACK,
    )
    existing = next(
        (
            c
            for c in client.campaigns()
            if c.name == DEMO_CAMPAIGN and c.start_time == wanted.start_time and c.end_time == wanted.end_time
        ),
        None,
    )
    campaign = existing if existing is not None else client.create_campaign(wanted)
    print(f"campaign {campaign.campaign_id} ({'already there' if existing is not None else 'created'})")
    print(f"  {campaign.name}: {effect_text(campaign)} base points, {window_text(campaign)}")
    print(f"  UTC: {_instant(campaign.start_time):%Y-%m-%dT%H:%M:%SZ} -> {_instant(campaign.end_time):%Y-%m-%dT%H:%M:%SZ}")
    return 0


def report(client: Marketing, campaign_id: str | None) -> int:
    campaigns = [client.get_campaign(campaign_id)] if campaign_id else list(client.campaigns())
    if not campaigns:
        print("no campaigns")
        return 0
    print(report_table(campaigns))
    return 0


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("--now needs a UTC offset, e.g. 2026-11-18T12:00:00+00:00")
    return value


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"{name!r} is not an IANA time zone") from None
    return name


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m clients.marketing", description=__doc__.splitlines()[0])
    cli.add_argument("--target", default="127.0.0.1:50051", help="server HOST:PORT (default 127.0.0.1:50051)")
    cli.add_argument("--key", required=True, help="a marketing or admin API key")
    commands = cli.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("setup-demo", help="tiers Member/Silver/Gold and a double points weekend campaign")
    demo.add_argument("--time-zone", type=_time_zone, default="UTC", help="IANA zone of the weekend (default UTC)")
    demo.add_argument("--now", type=_now, default=None, help="pretend it is this instant (ISO 8601 with offset)")
    demo.add_argument("--silver-threshold", type=int, default=50_000, help="qualifying spend for Silver (minor units)")
    demo.add_argument("--gold-threshold", type=int, default=200_000, help="qualifying spend for Gold (minor units)")
    demo.add_argument("--multiplier-bps", type=int, default=20_000, help="campaign multiplier (20000 = 2x)")
    demo.add_argument("--budget", type=int, default=0, help="campaign budget in points (0 = none)")
    shown = commands.add_parser("report", help="campaign report as a table")
    shown.add_argument("--campaign", default=None, help="one campaign id (default: all campaigns)")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = Marketing(args.target, args.key)
    try:
        if args.command == "setup-demo":
            return setup_demo(
                client, args.time_zone, args.now or _now(None), args.silver_threshold, args.gold_threshold,
                args.multiplier_bps, args.budget,
            )
        return report(client, args.campaign)
    except LedgerApiError as error:
        print(f"error: {error}", file=sys.stderr)
        for field, description in error.field_violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
