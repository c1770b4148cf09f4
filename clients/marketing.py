"""A marketing command line for the loyalty ledger's Programs service, built on the SDK.

    python -m clients.marketing --target HOST:PORT --key KEY setup-demo [--time-zone Europe/Paris]
    python -m clients.marketing --target HOST:PORT --key KEY report [--campaign ID]
    python -m clients.marketing --target HOST:PORT --key KEY preview [--campaign ID] [--amount 10000]
    python -m clients.marketing --target HOST:PORT --key KEY tiers
    python -m clients.marketing --target HOST:PORT --key KEY add-reward --name Mug --price 500 [--stock 100]
    python -m clients.marketing --target HOST:PORT --key KEY rewards
    python -m clients.marketing --target HOST:PORT --key KEY referrals

(Run it with the virtual environment's python, `.venv/bin/python -m clients.marketing ...`.)

`setup-demo` (a `marketing` or `admin` key) sets the tier ladder Member (0, 1x),
Silver and Gold (thresholds in minor units of qualifying spend, with earn
multipliers), then creates a "Double points weekend" campaign (2x) from next
Saturday 00:00 to Monday 00:00 in the given IANA time zone (default UTC).
Running it again reuses a campaign with the same name and window instead of
creating a second one (found by listing the campaigns, so also one made by another
tool; the SDK's CreateCampaign request_id only makes a retry of the same call safe).

`report` prints one campaign (--campaign) or all of them as a table: name,
window (in the campaign's time zone), state, effect, points awarded, budget
left and members awarded. `preview` quotes what an order would earn during a
campaign's window (QuoteEarn at that future time, for a new member), before it
starts: one campaign (--campaign), or each one scheduled or under way.
`tiers`, `rewards` and `referrals` print the tier ladder, the reward catalog and
the program's referral figures; `add-reward` adds to the catalog.

TLS: `--tls` (system roots), `--ca-cert FILE` (the CA that signed the server's
certificate), plus `--client-cert FILE --client-key FILE` for mutual TLS.

Exits 0 on success, 1 when the ledger refuses a call (the reason and any field
violations go to stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.client import LedgerApiError, LedgerClient, RetryPolicy, timestamp
from loyalty.v1 import common_pb2, programs_pb2

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


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A fixed-width text table; the columns numbered in `right` are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


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
    return table(header, rows, right={5, 6, 7})


def rewards_table(rewards: Sequence[programs_pb2.Reward]) -> str:
    header = ("reward", "name", "price (points)", "stock", "redeemed")
    rows = [
        (r.reward_id, r.name, str(r.points_price), "unlimited" if r.unlimited_stock else str(r.stock), str(r.redeemed))
        for r in rewards
    ]
    return table(header, rows, right={2, 3, 4})


def source_text(breakdown: common_pb2.PointsBreakdown) -> str:
    source = common_pb2.PointsSource.Name(breakdown.source).removeprefix("POINTS_SOURCE_").lower()
    return f"{source} {breakdown.points}" + (f" ({breakdown.campaign_id})" if breakdown.campaign_id else "")


# --------------------------------------------------------------------------- commands


def setup_demo(
    client: LedgerClient, zone_name: str, now: datetime, silver: int, gold: int, multiplier_bps: int, budget: int
) -> int:
    tiers = client.set_tiers(tiers=demo_tiers(silver, gold)).tiers
    print("tiers:")
    for tier in tiers:
        print(f"  {tier.name:<8} from {tier.threshold:>10} qualifying  {tier.earn_multiplier_bps / 10_000:g}x")
    start, end = weekend_window(now, ZoneInfo(zone_name))
    wanted = Campaign(
        name=DEMO_CAMPAIGN,
        start_time=timestamp(start),
        end_time=timestamp(end),
        time_zone=zone_name,
        multiplier_bps=multiplier_bps,
        budget=budget,
        stacking_mode=programs_pb2.STACKING_MODE_STACK,
    )
    existing = next(
        (
            c
            for c in client.iter_campaigns(page_size=100)
            if c.name == DEMO_CAMPAIGN and c.start_time == wanted.start_time and c.end_time == wanted.end_time
        ),
        None,
    )
    campaign = existing if existing is not None else client.create_campaign(campaign=wanted).campaign
    print(f"campaign {campaign.campaign_id} ({'already there' if existing is not None else 'created'})")
    print(f"  {campaign.name}: {effect_text(campaign)} base points, {window_text(campaign)}")
    utc_start, utc_end = _instant(campaign.start_time), _instant(campaign.end_time)
    print(f"  UTC: {utc_start:%Y-%m-%dT%H:%M:%SZ} -> {utc_end:%Y-%m-%dT%H:%M:%SZ}")
    return 0


def report(client: LedgerClient, campaign_id: str | None) -> int:
    if campaign_id:
        campaigns = [client.get_campaign(campaign_id=campaign_id).campaign]
    else:
        campaigns = list(client.iter_campaigns(page_size=100))
    if not campaigns:
        print("no campaigns")
        return 0
    print(report_table(campaigns))
    return 0


def preview(client: LedgerClient, campaign_id: str | None, amount: int, currency: str, channel: str) -> int:
    """What an order of `amount` would earn an hour into a campaign's window (or halfway, in a
    shorter one; now, in one under way), for a new member: QuoteEarn writes nothing. Without
    a campaign id, every campaign that is scheduled or under way."""
    if campaign_id:
        campaigns = [client.get_campaign(campaign_id=campaign_id).campaign]
    else:
        live = (Campaign.STATE_SCHEDULED, Campaign.STATE_ACTIVE)
        campaigns = [c for c in client.iter_campaigns(page_size=100) if c.state in live]
        if not campaigns:
            print("no campaign is scheduled or under way")
            return 0
    for campaign in campaigns:
        start, end = _instant(campaign.start_time), _instant(campaign.end_time)
        at = max(start + min(timedelta(hours=1), (end - start) / 2), datetime.now(timezone.utc))
        if at >= end:
            print(f"campaign {campaign.campaign_id} has ended ({window_text(campaign)})", file=sys.stderr)
            return 1
        order = common_pb2.Order(
            order_id=f"preview-{uuid.uuid4().hex[:10]}",
            channel=common_pb2.Channel.Value(f"CHANNEL_{channel.upper()}"),
            amount=amount,
            currency=currency,
            occur_time=timestamp(at),
        )
        quote = client.quote_earn(order=order).transaction
        when = f"{at.astimezone(_zone(campaign.time_zone)):%Y-%m-%d %H:%M} {campaign.time_zone or 'UTC'}"
        print(f"{campaign.campaign_id} ({campaign.name}, {state_text(campaign)}): an order of {amount} {currency}"
              f" on {when} would earn {quote.points} points")
        for part in quote.breakdown:
            print(f"  {source_text(part)}")
    return 0


def tiers(client: LedgerClient) -> int:
    ladder = client.list_tiers().tiers
    if not ladder:
        print("no tiers")
        return 0
    rows = [(t.name, str(t.threshold), f"{t.earn_multiplier_bps / 10_000:g}x") for t in ladder]
    print(table(("tier", "from (qualifying)", "earns"), rows, right={1, 2}))
    return 0


def add_reward(client: LedgerClient, name: str, price: int, stock: int | None) -> int:
    reward = programs_pb2.Reward(name=name, points_price=price)
    if stock is None:
        reward.unlimited_stock = True
    else:
        reward.stock = stock
    created = client.create_reward(reward=reward).reward
    print(f"reward {created.reward_id} created")
    print(rewards_table([created]))
    return 0


def rewards(client: LedgerClient) -> int:
    catalog = list(client.iter_rewards(page_size=100))
    print(rewards_table(catalog) if catalog else "no rewards")
    return 0


def referrals(client: LedgerClient) -> int:
    figures = client.get_referral_report()
    for label, value in (
        ("attributed", figures.attributed),
        ("qualified", figures.qualified),
        ("rewarded", figures.rewarded),
        ("reversed", figures.reversed),
        ("not rewarded", figures.not_rewarded),
        ("points awarded", figures.points_awarded),
    ):
        print(f"{label:<15} {value:>10}")
    return 0


# --------------------------------------------------------------------------- the command line


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


def _channel(name: str) -> str:
    if f"CHANNEL_{name.upper()}" not in common_pb2.Channel.keys():
        raise argparse.ArgumentTypeError(f"{name!r} is not a channel (POS, WEB, MOBILE, MARKETPLACE, ...)")
    return name


def _pem(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from None


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m clients.marketing", description=(__doc__ or "").splitlines()[0])
    cli.add_argument("--target", default="127.0.0.1:50051", help="server HOST:PORT (default 127.0.0.1:50051)")
    cli.add_argument("--key", required=True, help="a marketing or admin API key")
    cli.add_argument("--tls", action="store_true", help="talk TLS, trusting the system's root certificates")
    cli.add_argument("--ca-cert", type=_pem, default=None, help="PEM of the CA that signed the server (implies --tls)")
    cli.add_argument("--client-cert", type=_pem, default=None, help="PEM certificate chain for mutual TLS")
    cli.add_argument("--client-key", type=_pem, default=None, help="PEM private key for mutual TLS")
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
    quoted = commands.add_parser("preview", help="what an order would earn during a campaign, before it starts")
    quoted.add_argument("--campaign", default=None, help="a campaign id (default: those scheduled or under way)")
    quoted.add_argument("--amount", type=int, default=10_000, help="order amount in minor units (default 10000)")
    quoted.add_argument("--currency", default="USD", help="the program's currency (default USD)")
    quoted.add_argument("--channel", type=_channel, default="POS", help="the order's channel (default POS)")
    commands.add_parser("tiers", help="the tier ladder")
    reward = commands.add_parser("add-reward", help="add a reward to the catalog")
    reward.add_argument("--name", required=True, help="what the member gets")
    reward.add_argument("--price", type=int, required=True, help="its price in points")
    reward.add_argument("--stock", type=int, default=None, help="how many there are (default: unlimited)")
    commands.add_parser("rewards", help="the reward catalog")
    commands.add_parser("referrals", help="the program's referral figures")
    return cli


def connect(args: argparse.Namespace) -> LedgerClient:
    """The client the options ask for: plaintext, TLS or mutual TLS."""
    if (args.client_cert is None) != (args.client_key is None):
        parser().error("--client-cert and --client-key go together (mutual TLS)")
    secure = args.tls or any(pem is not None for pem in (args.ca_cert, args.client_cert, args.client_key))
    return LedgerClient(
        args.target,
        args.key,
        policy=RetryPolicy(deadline=TIMEOUT),
        root_certificates=args.ca_cert,
        private_key=args.client_key,
        certificate_chain=args.client_cert,
        tls=secure,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with connect(args) as client:
            if args.command == "setup-demo":
                return setup_demo(
                    client, args.time_zone, args.now or _now(None), args.silver_threshold, args.gold_threshold,
                    args.multiplier_bps, args.budget,
                )
            if args.command == "preview":
                return preview(client, args.campaign, args.amount, args.currency, args.channel)
            if args.command == "tiers":
                return tiers(client)
            if args.command == "add-reward":
                return add_reward(client, args.name, args.price, args.stock)
            if args.command == "rewards":
                return rewards(client)
            if args.command == "referrals":
                return referrals(client)
            return report(client, args.campaign)
    except LedgerApiError as error:
        print(f"error: {error}", file=sys.stderr)
        for field, description in error.field_violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
