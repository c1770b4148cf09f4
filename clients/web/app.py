"""The web application: the marketing console (/console) and the storefront page (/storefront/LINK).

Starlette with Jinja2 templates (autoescaped: what marketing types, a campaign named
`<script>` included, is shown as text). Every page is complete HTML that works without
JavaScript; the one small script only copies the referral link and hides the unused effect
field. The ledger is called through the SDK (AsyncLedgerClient) on one shared gRPC channel,
with the signed-in user's key (kept in memory, sessions.py) or the storefront key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import jinja2
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from clients.web import charts, money
from clients.web.config import WebConfig
from clients.web.errors import sentence
from clients.web.sessions import Expired, Session, Sessions, member_of_link, storefront_link
from loyalty.client import AsyncLedgerClient, LedgerApiError, RetryPolicy, timestamp
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2

HERE = Path(__file__).parent
SESSION_COOKIE = "loyalty_console"
SIGNIN_COOKIE = "loyalty_signin"
Campaign = programs_pb2.Campaign
CHART_DAYS = 14
MEMBER_PAGES = 4  # the tier mix lists up to 2,000 members; a bigger program's comes from its events
EVENT_PAGES_PER_VIEW = 40  # 20,000 events read at most per chart view (the rest on the next one)
CHANNELS = ("POS", "WEB", "MOBILE", "MARKETPLACE", "SUPPORT", "OTHER")
STATES = {
    Campaign.STATE_ACTIVE: "active",
    Campaign.STATE_PAUSED: "paused",
    Campaign.STATE_SCHEDULED: "scheduled",
    Campaign.STATE_ENDED: "ended",
}
STACKING = {
    programs_pb2.STACKING_MODE_STACK: "stacks with others",
    programs_pb2.STACKING_MODE_BEST_ONLY: "best one only",
    programs_pb2.STACKING_MODE_EXCLUSIVE: "exclusive",
}
# How a member's statement names its lines.
KIND_WORDS = {
    common_pb2.TRANSACTION_KIND_EARN: "Purchase",
    common_pb2.TRANSACTION_KIND_REDEEM: "Spent",
    common_pb2.TRANSACTION_KIND_CAPTURE: "Spent",
    common_pb2.TRANSACTION_KIND_REFUND: "Refund",
    common_pb2.TRANSACTION_KIND_ADJUST: "Adjustment",
    common_pb2.TRANSACTION_KIND_REVERSAL: "Correction",
    common_pb2.TRANSACTION_KIND_EXPIRE: "Expired",
    common_pb2.TRANSACTION_KIND_ACTIVITY: "Activity",
    common_pb2.TRANSACTION_KIND_REFERRAL_REWARD: "Referral reward",
    common_pb2.TRANSACTION_KIND_TIER_CHANGE: "New tier",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A form the console will not send: the sentence to show beside it."""


@dataclass
class Tally:
    """Points per day and each member's tier, folded from the program's events as they come."""

    after_event_id: str = ""
    issued: dict[date, int] = field(default_factory=dict)
    redeemed: dict[date, int] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)


def _when(stamp: Timestamp, zone: ZoneInfo) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc).astimezone(zone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _members(count: int) -> str:
    return f"{count:,} member" if count == 1 else f"{count:,} members"


def _multiplier(bps: int) -> str:
    return f"{bps / 10_000:g}x"


def _channel_name(number: int) -> str:
    name = common_pb2.Channel.Name(common_pb2.Channel.ValueType(number))
    return name.removeprefix("CHANNEL_").replace("_", " ").lower()


class Web:
    """The application's state and its request handlers."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.sessions = Sessions(config.secret, config.session_seconds)
        # Autoescaped everywhere: a campaign named "<script>" is shown as text.
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates = Jinja2Templates(env=environment)
        self.templates.env.globals["money"] = money.show
        self.zone = ZoneInfo(config.time_zone)
        self.channel: grpc.aio.Channel | None = None
        self.tallies: dict[str, Tally] = {}
        self.policy = RetryPolicy(max_attempts=2, attempt_timeout=5.0)

    # ------------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.config.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.config.root_certificates)
            self.channel = grpc.aio.secure_channel(self.config.target, credentials)
        else:
            self.channel = grpc.aio.insecure_channel(self.config.target)
        try:
            yield
        finally:
            await self.channel.close()

    def ledger(self, api_key: str) -> AsyncLedgerClient:
        assert self.channel is not None, "the application has not started"
        return AsyncLedgerClient(self.config.target, api_key, channel=self.channel, policy=self.policy)

    def page(self, request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
        response: Response = self.templates.TemplateResponse(request, name, dict(context), status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def console_page(
        self, request: Request, session: Session, name: str, context: Mapping[str, Any], status: int = 200
    ) -> Response:
        full = {"session": session, "csrf": self.sessions.csrf_token(session), "zone": self.config.time_zone, **context}
        return self.page(request, name, full, status)

    def refusal(self, request: Request, session: Session, message: str, status: int) -> Response:
        return self.console_page(request, session, "refused.html", {"message": message}, status)

    def _session(self, request: Request) -> Session | Response:
        """The signed-in session, or the redirect to the sign-in page (saying why)."""
        try:
            session = self.sessions.find(request.cookies.get(SESSION_COOKIE))
        except Expired:
            return self._to_signin("Your session has expired; please sign in again.")
        if session is None:
            return self._to_signin("")
        return session

    def _to_signin(self, why: str) -> Response:
        response = RedirectResponse("/console/signin" + ("?expired=1" if why else ""), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _form(self, request: Request, session: Session) -> FormData | Response:
        """The posted form, or a refusal page when its CSRF token is not this session's."""
        form = await request.form()
        token = form.get("csrf")
        if not self.sessions.csrf_ok(session, token if isinstance(token, str) else None):
            return self.page(
                request,
                "refused.html",
                {
                    "message": "This form was refused: its security token does not belong to your session. "
                    "Reload the page and send it again."
                },
                status=403,
            )
        return form

    # ------------------------------------------------------------------ sign-in

    async def signin_page(self, request: Request) -> Response:
        message = "Your session has expired; please sign in again." if request.query_params.get("expired") else ""
        return self._signin_form(request, message, 200)

    def _signin_form(self, request: Request, message: str, status: int) -> Response:
        token = self.sessions.signin_token()
        response = self.page(request, "signin.html", {"token": token, "message": message}, status)
        response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/console", max_age=3600)
        return response

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        token = form.get("token")
        if not self.sessions.signin_ok(request.cookies.get(SIGNIN_COOKIE), token if isinstance(token, str) else None):
            return self._signin_form(request, "The sign-in form had expired or was not this console's; try again.", 403)
        key = str(form.get("api_key") or "").strip()
        if not key:
            return self._signin_form(request, "Enter the API key you were given.", 400)
        ledger = self.ledger(key)
        try:
            program = (await ledger.get_program()).program
        except LedgerApiError as error:
            if error.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                text = (
                    "That key was not accepted: it is unknown or revoked."
                    if error.code == grpc.StatusCode.UNAUTHENTICATED
                    else "That key cannot sign in here: the console needs a marketing or admin key."
                )
                return self._signin_form(request, text, 401)
            return self._signin_form(request, sentence(error, "sign in"), 502)
        role = "marketing"
        try:
            await ledger.list_events(page_size=1)
            role = "admin"
        except LedgerApiError:
            pass  # a marketing key may not read events
        _, cookie = self.sessions.start(key, role, program.program_id, program.name, program.currency)
        response = RedirectResponse("/console", status_code=303)
        secure = request.url.scheme == "https"
        response.set_cookie(
            SESSION_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, path="/",
            max_age=self.config.session_seconds,
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    async def signout(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        self.sessions.end(session)
        return self._to_signin("")

    # ------------------------------------------------------------------ dashboard

    async def dashboard(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        ledger = self.ledger(session.api_key)
        problems: list[str] = []
        campaigns: list[Campaign] = []
        tiers: list[programs_pb2.Tier] = []
        try:
            campaigns = [c async for c in ledger.iter_campaigns(page_size=500)]
            tiers = list((await ledger.list_tiers()).tiers)
        except LedgerApiError as error:
            problems.append(sentence(error, "read the campaigns and tiers"))
        burn = [
            charts.Row(c.name, c.points_awarded, c.budget, f"{c.points_awarded:,} of {c.budget:,}")
            if c.budget
            else charts.Row(c.name, c.points_awarded, 0, f"{c.points_awarded:,} (no budget)")
            for c in campaigns
        ]
        daily, mix, events_note, mix_note = await self._event_charts(session, tiers, problems)
        return self.console_page(
            request,
            session,
            "dashboard.html",
            {
                "problems": problems,
                "daily": daily,
                "mix": mix,
                "burn": charts.horizontal_bars(burn, "Campaign budget burn", charts.ISSUED),
                "events_note": events_note,
                "mix_note": mix_note,
                "campaign_count": len(campaigns),
                "extras": await self._extras(ledger),
            },
        )

    async def _event_charts(
        self, session: Session, tiers: list[programs_pb2.Tier], problems: list[str]
    ) -> tuple[Any, Any, str, str]:
        """The per-day chart and the tier mix, with a note under each."""
        entry = next((t.name for t in tiers if t.threshold == 0), "")
        member_tiers, mix_note = await self._member_tiers(self.ledger(session.api_key), entry)
        key = session.api_key if session.role == "admin" else self.config.events_key
        tally: Tally | None = None
        daily = None
        events_note = "Read from the events the ledger keeps (its event retention, 30 days by default)."
        if key:
            tally = self.tallies.setdefault(session.program_id, Tally())
            try:
                await self._fold_events(self.ledger(key), tally)
            except LedgerApiError as error:
                problems.append(sentence(error, "read the program's events for the charts"))
            today = datetime.now(self.zone).date()
            days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
            daily = charts.daily_bars(
                [d.isoformat() for d in days],
                [tally.issued.get(d, 0) for d in days],
                [tally.redeemed.get(d, 0) for d in days],
                f"Points issued and redeemed per day, last {CHART_DAYS} days ({self.config.time_zone})",
            )
        else:
            events_note = (
                "Points per day are read from the ledger's events: sign in with an admin key, "
                "or start the console with an events key (--events-key)."
            )
        if member_tiers is None and tally is not None:
            member_tiers = [tier or entry for tier in tally.tiers.values()]
            mix_note = "Members seen in the events the ledger keeps (too many to list here)."
        if member_tiers is None:
            return daily, None, events_note, mix_note
        counts: dict[str, int] = {t.name: 0 for t in tiers}
        for tier in member_tiers:
            name = tier or "no tier"
            counts[name] = counts.get(name, 0) + 1
        members = sum(counts.values())
        rows = [charts.Row(name, n, members, _members(n)) for name, n in counts.items()]
        return daily, charts.horizontal_bars(rows, "Tier mix"), events_note, mix_note

    async def _member_tiers(self, ledger: AsyncLedgerClient, entry: str) -> tuple[list[str] | None, str]:
        """Every member's tier (ListMembers), or None when the program has more members than
        MEMBER_PAGES pages (the events then tell) or the ledger cannot list them."""
        found: list[str] = []
        token = ""
        for _ in range(MEMBER_PAGES):
            try:
                page = await ledger.list_members(page_size=500, page_token=token)
            except LedgerApiError:
                return None, "The ledger could not list the members."
            found.extend(m.tier.name if m.HasField("tier") else entry for m in page.members)
            token = page.next_page_token
            if not token:
                return found, f"Counted over all {_members(len(found))}."
        return None, f"More than {_members(len(found))}."

    async def _fold_events(self, ledger: AsyncLedgerClient, tally: Tally) -> None:
        types = ["points.earned", "points.redeemed", "member.enrolled", "tier.changed"]
        for _ in range(EVENT_PAGES_PER_VIEW):
            try:
                page = await ledger.list_events(after_event_id=tally.after_event_id, types=types, page_size=500)
            except LedgerApiError as error:
                if error.code != grpc.StatusCode.OUT_OF_RANGE:
                    raise
                # Pruned past our cursor: count again from the oldest event kept.
                tally.after_event_id = ""
                tally.issued.clear()
                tally.redeemed.clear()
                continue
            for event in page.events:
                day = _when(event.occur_time, self.zone).date()
                kind = event.WhichOneof("payload")
                if kind == "points_earned":
                    tally.issued[day] = tally.issued.get(day, 0) + abs(event.points_earned.points)
                elif kind == "points_redeemed":
                    tally.redeemed[day] = tally.redeemed.get(day, 0) + abs(event.points_redeemed.points)
                elif kind == "member_enrolled":
                    tally.tiers.setdefault(event.member_id, "")
                elif kind == "tier_changed":
                    tally.tiers[event.member_id] = event.tier_changed.to_tier
                tally.after_event_id = event.event_id
            if not page.events or len(page.events) < 500:
                return

    async def _extras(self, ledger: AsyncLedgerClient) -> list[dict[str, Any]]:
        """Panels for RPCs other work adds to the ledger (segments, liability): shown as soon as
        the SDK has their methods, a sentence saying so until then."""
        panels: list[dict[str, Any]] = []
        list_segments: Callable[..., Awaitable[Any]] | None = getattr(ledger, "list_segments", None)
        panel: dict[str, Any] = {"title": "Segments", "text": "", "chart": None, "rows": []}
        if list_segments is None:
            panel["text"] = "This ledger does not offer segments yet."
        else:
            try:
                answer = await list_segments()
                rows = [
                    charts.Row(str(s.name), int(s.size), 0, _members(int(s.size))) for s in answer.segments
                ]
                panel["chart"] = charts.horizontal_bars(rows, "Members per segment")
            except LedgerApiError as error:
                panel["text"] = sentence(error, "read the segments")
        panels.append(panel)
        report: Callable[..., Awaitable[Any]] | None = getattr(ledger, "get_liability_report", None)
        panel = {"title": "Liability", "text": "", "chart": None, "rows": []}
        if report is None:
            panel["text"] = "This ledger does not report its points liability yet."
        else:
            try:
                answer = await report()
                panel["rows"] = [
                    (f.name.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v))
                    for f, v in answer.ListFields()
                    if f.message_type is None and f.label != f.LABEL_REPEATED
                ][:12]
            except LedgerApiError as error:
                panel["text"] = sentence(error, "read the liability report")
        panels.append(panel)
        return panels

    # ------------------------------------------------------------------ campaigns

    def campaign_view(self, campaign: Campaign, segments: Mapping[str, str] | None = None) -> dict[str, Any]:
        zone = _zone(campaign.time_zone)
        start, end = _when(campaign.start_time, zone), _when(campaign.end_time, zone)
        effect = (
            f"{_multiplier(campaign.multiplier_bps)} points"
            if campaign.WhichOneof("effect") == "multiplier_bps"
            else f"+{campaign.bonus_points:,} points per order"
        )
        cond = campaign.conditions
        conditions = [
            *([", ".join(_channel_name(c) for c in cond.channels)] if cond.channels else []),
            *(["tiers " + ", ".join(cond.tiers)] if cond.tiers else []),
            *(["segments " + ", ".join((segments or {}).get(s, s) for s in cond.segments)] if cond.segments else []),
            *(["SKUs " + ", ".join(cond.skus)] if cond.skus else []),
            *(["categories " + ", ".join(cond.categories)] if cond.categories else []),
            *([f"orders from {cond.min_order_amount:,} (minor units)"] if cond.min_order_amount else []),
            *([f"activity {cond.activity_type}"] if cond.activity_type else []),
        ]
        used = campaign.budget - campaign.budget_remaining if campaign.budget else campaign.points_awarded
        return {
            "id": campaign.campaign_id,
            "name": campaign.name,
            "state": STATES.get(campaign.state, "unknown"),
            "window": f"{start:%a %d %b %Y %H:%M} – {end:%a %d %b %Y %H:%M} {campaign.time_zone or 'UTC'}",
            "effect": effect,
            "conditions": "; ".join(conditions) or "every order",
            "stacking": STACKING.get(campaign.stacking_mode, ""),
            "awarded": campaign.points_awarded,
            "members": _members(campaign.members_awarded),
            "budget": campaign.budget,
            "used": used,
            "used_percent": min(100, round(100 * used / campaign.budget)) if campaign.budget else 0,
            "paused": campaign.state == Campaign.STATE_PAUSED,
            "can_pause": campaign.state in (Campaign.STATE_ACTIVE, Campaign.STATE_SCHEDULED),
        }

    async def campaigns(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        problems: list[str] = []
        rows: list[dict[str, Any]] = []
        try:
            ledger = self.ledger(session.api_key)
            names = await self._segments(ledger)
            rows = [self.campaign_view(c, names) async for c in ledger.iter_campaigns(page_size=500)]
        except LedgerApiError as error:
            problems.append(sentence(error, "list the campaigns"))
        notice = {"created": "The campaign was created.", "saved": "The campaign was saved."}.get(
            request.query_params.get("done", ""), ""
        )
        context = {"rows": rows, "problems": problems, "notice": notice}
        return self.console_page(request, session, "campaigns.html", context)

    def _blank_form(self) -> dict[str, Any]:
        now = datetime.now(self.zone)
        start = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return {
            "name": "",
            "effect": "multiplier",
            "multiplier": "2",
            "bonus": "",
            "start": f"{start:%Y-%m-%dT%H:%M}",
            "end": f"{start + timedelta(days=2):%Y-%m-%dT%H:%M}",
            "time_zone": self.config.time_zone,
            "channels": [],
            "tiers": [],
            "segments": [],
            "skus": "",
            "categories": "",
            "min_order": "",
            "stacking": "STACK",
            "priority": "0",
            "cap": "",
            "budget": "",
        }

    def _form_of(self, campaign: Campaign, currency: str) -> dict[str, Any]:
        zone = _zone(campaign.time_zone)
        cond = campaign.conditions
        is_multiplier = campaign.WhichOneof("effect") == "multiplier_bps"
        return {
            "name": campaign.name,
            "effect": "multiplier" if is_multiplier else "bonus",
            "multiplier": f"{campaign.multiplier_bps / 10_000:g}" if is_multiplier else "2",
            "bonus": str(campaign.bonus_points) if not is_multiplier else "",
            "start": f"{_when(campaign.start_time, zone):%Y-%m-%dT%H:%M}",
            "end": f"{_when(campaign.end_time, zone):%Y-%m-%dT%H:%M}",
            "time_zone": campaign.time_zone or "UTC",
            "channels": [common_pb2.Channel.Name(c).removeprefix("CHANNEL_") for c in cond.channels],
            "tiers": list(cond.tiers),
            "segments": list(cond.segments),
            "skus": ", ".join(cond.skus),
            "categories": ", ".join(cond.categories),
            "min_order": money.show(cond.min_order_amount, currency).split(" ")[0] if cond.min_order_amount else "",
            "stacking": programs_pb2.StackingMode.Name(
                campaign.stacking_mode or programs_pb2.STACKING_MODE_STACK
            ).removeprefix("STACKING_MODE_"),
            "priority": str(campaign.priority),
            "cap": str(campaign.per_member_cap or ""),
            "budget": str(campaign.budget or ""),
        }

    def _campaign_of(self, values: dict[str, Any], currency: str) -> Campaign:
        """The campaign a submitted form describes; Refused with the sentence for what is wrong."""
        zone_name = str(values["time_zone"]).strip() or "UTC"
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise Refused(f"“{zone_name}” is not a time zone; use a name like Europe/Paris.") from None

        def instant(text: str, label: str) -> datetime:
            try:
                return datetime.fromisoformat(text).replace(tzinfo=zone)
            except ValueError:
                raise Refused(f"{label} must be a date and time, e.g. 2026-12-12 00:00.") from None

        def whole(text: str, label: str) -> int:
            text = text.strip().replace(",", "")
            if not text:
                return 0
            try:
                return int(text)
            except ValueError:
                raise Refused(f"{label} must be a whole number, not “{text}”.") from None

        campaign = Campaign(
            name=str(values["name"]).strip(),
            time_zone=zone_name,
            stacking_mode=programs_pb2.StackingMode.Value("STACKING_MODE_" + str(values["stacking"])),
            priority=whole(str(values["priority"]), "Priority"),
            per_member_cap=whole(str(values["cap"]), "Cap per member"),
            budget=whole(str(values["budget"]), "Budget"),
        )
        campaign.start_time.CopyFrom(timestamp(instant(str(values["start"]), "Starts")))
        campaign.end_time.CopyFrom(timestamp(instant(str(values["end"]), "Ends")))
        if values["effect"] == "bonus":
            campaign.bonus_points = whole(str(values["bonus"]), "Bonus points")
        else:
            try:
                campaign.multiplier_bps = round(float(str(values["multiplier"]).strip().rstrip("xX")) * 10_000)
            except ValueError:
                given = values["multiplier"]
                raise Refused(f"The multiplier must be a number such as 2 or 1.5, not “{given}”.") from None
        cond = campaign.conditions
        cond.channels.extend(common_pb2.Channel.Value("CHANNEL_" + c) for c in values["channels"] if c in CHANNELS)
        cond.tiers.extend(values["tiers"])
        cond.segments.extend(values["segments"])
        cond.skus.extend(s.strip() for s in str(values["skus"]).split(",") if s.strip())
        cond.categories.extend(s.strip() for s in str(values["categories"]).split(",") if s.strip())
        try:
            cond.min_order_amount = money.parse(str(values["min_order"]), currency)
        except ValueError as error:
            raise Refused(f"Minimum order: {error}.") from None
        return campaign

    @staticmethod
    def _values(form: FormData) -> dict[str, Any]:
        single = ("name", "effect", "multiplier", "bonus", "start", "end", "time_zone", "skus", "categories")
        values: dict[str, Any] = {k: str(form.get(k) or "") for k in single}
        values.update({k: str(form.get(k) or "") for k in ("min_order", "stacking", "priority", "cap", "budget")})
        if values["stacking"] not in ("STACK", "BEST_ONLY", "EXCLUSIVE"):
            values["stacking"] = "STACK"
        values["channels"] = [str(v) for v in form.getlist("channels")]
        values["tiers"] = [str(v) for v in form.getlist("tiers")]
        values["segments"] = [str(v) for v in form.getlist("segments")]
        return values

    async def _segments(self, ledger: AsyncLedgerClient) -> dict[str, str]:
        """The program's segments, id to name (none when the ledger has no segments)."""
        try:
            return {s.segment_id: s.name async for s in ledger.iter_segments(page_size=500)}
        except LedgerApiError:
            return {}

    async def _tier_names(self, ledger: AsyncLedgerClient) -> list[str]:
        try:
            return [t.name for t in (await ledger.list_tiers()).tiers]
        except LedgerApiError:
            return []

    async def _campaign_form(
        self,
        request: Request,
        session: Session,
        values: dict[str, Any],
        campaign: Campaign | None,
        message: str = "",
        status: int = 200,
        quote: dict[str, Any] | None = None,
    ) -> Response:
        ledger = self.ledger(session.api_key)
        segments = await self._segments(ledger)
        context = {
            "values": values,
            "campaign": self.campaign_view(campaign, segments) if campaign else None,
            "segments": segments,
            "message": message,
            "channels": CHANNELS,
            "tier_names": await self._tier_names(ledger),
            "quote": quote,
            "sample": {"amount": "100.00", "channel": "WEB", "when": "", "member": "", "sku": "", "category": ""},
        }
        return self.console_page(request, session, "campaign.html", context, status)

    async def new_campaign(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        return await self._campaign_form(request, session, self._blank_form(), None)

    async def create_campaign(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        values = self._values(form)
        try:
            campaign = self._campaign_of(values, session.currency)
            created = await self.ledger(session.api_key).create_campaign(
                campaign=campaign, request_id=str(form.get("request_id") or uuid.uuid4())
            )
        except Refused as refused:
            return await self._campaign_form(request, session, values, None, str(refused), 400)
        except LedgerApiError as error:
            text = sentence(error, "create the campaign")
            return await self._campaign_form(request, session, values, None, text, 400)
        return RedirectResponse(f"/console/campaigns?done=created#{created.campaign.campaign_id}", status_code=303)

    async def edit_campaign(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        try:
            campaign = (await self.ledger(session.api_key).get_campaign(campaign_id=request.path_params["id"])).campaign
        except LedgerApiError as error:
            return self.refusal(request, session, sentence(error, "open the campaign"), 404)
        return await self._campaign_form(request, session, self._form_of(campaign, session.currency), campaign)

    async def update_campaign(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        ledger = self.ledger(session.api_key)
        campaign_id = request.path_params["id"]
        values = self._values(form)
        try:
            campaign = self._campaign_of(values, session.currency)
            campaign.campaign_id = campaign_id
            mask = [
                "name", "start_time", "end_time", "time_zone", "multiplier_bps", "bonus_points", "conditions",
                "stacking_mode", "priority", "per_member_cap", "budget",
            ]
            await ledger.update_campaign(campaign=campaign, update_mask=mask)
        except (Refused, LedgerApiError) as problem:
            text = str(problem) if isinstance(problem, Refused) else sentence(problem, "save the campaign")
            try:
                current: Campaign | None = (await ledger.get_campaign(campaign_id=campaign_id)).campaign
            except LedgerApiError:
                current = None
            return await self._campaign_form(request, session, values, current, text, 400)
        return RedirectResponse(f"/console/campaigns?done=saved#{campaign_id}", status_code=303)

    async def pause_campaign(self, request: Request) -> Response:
        return await self._set_state(request, pause=True)

    async def resume_campaign(self, request: Request) -> Response:
        return await self._set_state(request, pause=False)

    async def _set_state(self, request: Request, pause: bool) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        ledger = self.ledger(session.api_key)
        campaign_id = request.path_params["id"]
        try:
            if pause:
                await ledger.pause_campaign(campaign_id=campaign_id)
            else:
                await ledger.update_campaign(
                    campaign=Campaign(campaign_id=campaign_id, state=Campaign.STATE_ACTIVE), update_mask=["state"]
                )
        except LedgerApiError as error:
            doing = "pause the campaign" if pause else "resume the campaign"
            return self.console_page(request, session, "refused.html", {"message": sentence(error, doing)}, 400)
        return RedirectResponse(f"/console/campaigns?done=saved#{campaign_id}", status_code=303)

    async def preview(self, request: Request) -> Response:
        """What a sample order would earn at a time inside the campaign's window (QuoteEarn)."""
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        ledger = self.ledger(session.api_key)
        campaign_id = request.path_params["id"]
        try:
            campaign = (await ledger.get_campaign(campaign_id=campaign_id)).campaign
        except LedgerApiError as error:
            return self.refusal(request, session, sentence(error, "open the campaign"), 404)
        sample = {k: str(form.get(k) or "") for k in ("amount", "channel", "when", "member", "sku", "category")}
        quote: dict[str, Any] = {"lines": [], "total": 0, "message": "", "when": ""}
        try:
            zone = _zone(campaign.time_zone)
            start, end = _when(campaign.start_time, zone), _when(campaign.end_time, zone)
            now = datetime.now(zone)
            try:
                chosen = datetime.fromisoformat(sample["when"]).replace(tzinfo=zone) if sample["when"] else None
            except ValueError:
                raise Refused("The order time must be a date and time inside the campaign's window.") from None
            when = chosen or max(start, now)
            if when >= end:
                when = end - timedelta(minutes=1)
            amount = money.parse(sample["amount"] or "0", session.currency)
            channel = sample["channel"] if sample["channel"] in CHANNELS else "OTHER"
            if amount <= 0:
                raise Refused("Enter the order amount, e.g. 100.00.")
            order = common_pb2.Order(
                order_id=f"preview-{uuid.uuid4()}",
                channel=common_pb2.Channel.Value("CHANNEL_" + channel),
                amount=amount,
                currency=session.currency,
            )
            if sample["sku"] or sample["category"]:
                order.lines.add(sku=sample["sku"] or "sample", category=sample["category"], quantity=1, amount=amount)
            order.occur_time.CopyFrom(timestamp(when))
            answer = await ledger.quote_earn(member_id=sample["member"].strip(), order=order)
            quote["when"] = f"{when:%a %d %b %Y %H:%M} {campaign.time_zone or 'UTC'}"
            quote["total"] = answer.transaction.points
            quote["lines"] = [
                {"points": line.points, "text": line.description, "ours": line.campaign_id == campaign_id}
                for line in answer.transaction.breakdown
            ]
        except (Refused, ValueError) as refused:
            quote["message"] = str(refused)
        except LedgerApiError as error:
            quote["message"] = sentence(error, "preview the order")
        response = await self._campaign_form(
            request, session, self._form_of(campaign, session.currency), campaign, quote=quote
        )
        return response

    # ------------------------------------------------------------------ tiers

    async def tiers_page(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        try:
            tiers = list((await self.ledger(session.api_key).list_tiers()).tiers)
        except LedgerApiError as error:
            return self.refusal(request, session, sentence(error, "read the tiers"), 502)
        return self._tiers_form(request, session, [self._tier_row(t) for t in tiers], "", 200)

    def _tier_row(self, tier: programs_pb2.Tier) -> dict[str, str]:
        return {
            "name": tier.name,
            "threshold": str(tier.threshold),
            "multiplier": f"{(tier.earn_multiplier_bps or 10_000) / 10_000:g}",
            "days": str(tier.qualification_days or ""),
        }

    def _tiers_form(
        self, request: Request, session: Session, rows: list[dict[str, str]], message: str, status: int
    ) -> Response:
        blank = {"name": "", "threshold": "", "multiplier": "1", "days": ""}
        notice = "The tiers were saved." if request.query_params.get("done") else ""
        context = {"rows": rows + [dict(blank) for _ in range(3)], "message": message, "notice": notice}
        return self.console_page(request, session, "tiers.html", context, status)

    async def save_tiers(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        rows = [
            {"name": str(n).strip(), "threshold": str(t).strip(), "multiplier": str(m).strip(), "days": str(d).strip()}
            for n, t, m, d in zip(*(form.getlist(k) for k in ("name", "threshold", "multiplier", "days")))
        ]
        rows = [r for r in rows if r["name"]]
        tiers = []
        try:
            for row in rows:
                try:
                    tiers.append(
                        programs_pb2.Tier(
                            name=row["name"],
                            threshold=int(row["threshold"].replace(",", "") or 0),
                            earn_multiplier_bps=round(float(row["multiplier"].rstrip("xX") or 1) * 10_000),
                            qualification_days=int(row["days"] or 0),
                        )
                    )
                except ValueError:
                    raise Refused(
                        f"Tier “{row['name']}”: the threshold and the days must be whole numbers and the multiplier "
                        "a number such as 1.5."
                    ) from None
            await self.ledger(session.api_key).set_tiers(tiers=tiers)
        except Refused as refused:
            return self._tiers_form(request, session, rows, str(refused), 400)
        except LedgerApiError as error:
            return self._tiers_form(request, session, rows, sentence(error, "save the tiers"), 400)
        return RedirectResponse("/console/tiers?done=1", status_code=303)

    # ------------------------------------------------------------------ members

    async def member_lookup(self, request: Request) -> Response:
        """Marketing opens a member's storefront page (the same page the shop shows)."""
        session = self._session(request)
        if isinstance(session, Response):
            return session
        member_id = request.query_params.get("member_id", "").strip()
        if not member_id:
            return RedirectResponse("/console", status_code=303)
        try:
            await self.ledger(session.api_key).get_member(member_id=member_id)
        except LedgerApiError as error:
            return self.refusal(request, session, sentence(error, "open that member"), 404)
        return RedirectResponse(storefront_link(self.config.secret, member_id), status_code=303)

    # ------------------------------------------------------------------ storefront

    async def storefront(self, request: Request) -> Response:
        member_id = member_of_link(self.config.secret, request.path_params["token"], self.config.link_seconds)
        if member_id is None:
            message = "This link has expired or is not valid. Open your rewards page from the shop again."
            return self.page(request, "refused.html", {"message": message, "storefront": True}, 404)
        if not self.config.storefront_key:
            message = "The rewards page is not set up yet (this server has no storefront key)."
            return self.page(request, "refused.html", {"message": message, "storefront": True}, 503)
        ledger = self.ledger(self.config.storefront_key)
        try:
            member = (await ledger.get_member(member_id=member_id)).member
            tiers = list((await ledger.list_tiers()).tiers)
            transactions = list((await ledger.list_transactions(member_id=member_id, page_size=10)).transactions)
        except LedgerApiError as error:
            return self.page(
                request, "refused.html", {"message": sentence(error, "show your rewards"), "storefront": True}, 502
            )
        return self.page(request, "storefront.html", self._storefront_view(member, tiers, transactions))

    def _storefront_view(
        self, member: ledger_pb2.Member, tiers: list[programs_pb2.Tier], transactions: list[common_pb2.Transaction]
    ) -> dict[str, Any]:
        zone = self.zone
        currency = member.currency or next((t.currency for t in transactions if t.currency), "USD")
        by_points = member.tier_basis == programs_pb2.TIER_BASIS_QUALIFYING_POINTS

        def amount(value: int) -> str:
            return f"{value:,} qualifying points" if by_points else money.show(value, currency)

        tier = None
        if member.HasField("tier"):
            held = next((t for t in tiers if t.name == member.tier.name), None)
            keep = ""
            if member.tier.HasField("period_end_time") and held is not None and held.threshold:
                until = _when(member.tier.period_end_time, zone)
                have = member.tier_progress.qualifying_value if member.HasField("tier_progress") else held.threshold
                short = max(held.threshold - have, 0)
                keep = (
                    f"To keep {member.tier.name} after {until:%d %b %Y}: {amount(held.threshold)} in the "
                    f"qualifying period, {amount(short)} to go."
                    if short
                    else f"You have done what it takes to keep {member.tier.name} after {until:%d %b %Y}."
                )
            elif member.HasField("tier"):
                keep = f"{member.tier.name} is yours to keep."
            tier = {
                "name": member.tier.name,
                "multiplier": _multiplier(member.tier.earn_multiplier_bps or 10_000),
                "since": (
                    f"{_when(member.tier.reach_time, zone):%d %b %Y}" if member.tier.HasField("reach_time") else ""
                ),
                "keep": keep,
            }
        progress = None
        if member.HasField("tier_progress"):
            p = member.tier_progress
            target = next((t.threshold for t in tiers if t.name == p.next_tier_name), p.qualifying_value + p.remaining)
            progress = {
                "next": p.next_tier_name,
                "percent": min(100, round(100 * p.qualifying_value / target)) if target else 100,
                "have": amount(p.qualifying_value),
                "need": amount(p.remaining),
                "target": amount(target),
            }
        rows = []
        for tx in transactions:
            campaigns = [line.description for line in tx.breakdown if line.source == common_pb2.POINTS_SOURCE_CAMPAIGN]
            rows.append(
                {
                    "when": f"{_when(tx.occur_time, zone):%d %b %Y}",
                    "what": KIND_WORDS.get(tx.kind, "change"),
                    "points": tx.points,
                    "order": tx.order_id,
                    "campaigns": campaigns,
                    "tier_to": tx.tier_to,
                }
            )
        code = member.referral_code
        return {
            "shop": self.config.shop_name,
            "member_id": member.member_id,
            "balance": member.balance,
            "tier": tier,
            "progress": progress,
            "top": member.HasField("tier") and not member.HasField("tier_progress"),
            "expiring": [(p.points, f"{_when(p.expire_time, zone):%d %b %Y}") for p in member.expiring_points],
            "pending": self._pending(member),
            "rows": rows,
            "code": code,
            "share": self.config.share_url.replace("{code}", code) if code else "",
        }

    def _pending(self, member: ledger_pb2.Member) -> list[tuple[str, int]]:
        """Pending points by the day they become available, soonest first."""
        by_day: dict[str, int] = {}
        for item in member.pending_points:
            day = f"{_when(item.available_time, self.zone):%d %b %Y}"
            by_day[day] = by_day.get(day, 0) + item.points
        return list(by_day.items())

    # ------------------------------------------------------------------ misc

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console", status_code=303)

    async def health(self, request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")


def create_app(config: WebConfig) -> Starlette:
    web = Web(config)
    routes = [
        Route("/", web.home),
        Route("/healthz", web.health),
        Route("/console", web.dashboard),
        Route("/console/signin", web.signin_page, methods=["GET"]),
        Route("/console/signin", web.signin, methods=["POST"]),
        Route("/console/signout", web.signout, methods=["POST"]),
        Route("/console/campaigns", web.campaigns, methods=["GET"]),
        Route("/console/campaigns", web.create_campaign, methods=["POST"]),
        Route("/console/campaigns/new", web.new_campaign),
        Route("/console/campaigns/{id}", web.edit_campaign, methods=["GET"]),
        Route("/console/campaigns/{id}", web.update_campaign, methods=["POST"]),
        Route("/console/campaigns/{id}/pause", web.pause_campaign, methods=["POST"]),
        Route("/console/campaigns/{id}/resume", web.resume_campaign, methods=["POST"]),
        Route("/console/campaigns/{id}/preview", web.preview, methods=["POST"]),
        Route("/console/tiers", web.tiers_page, methods=["GET"]),
        Route("/console/tiers", web.save_tiers, methods=["POST"]),
        Route("/console/member", web.member_lookup),
        Route("/storefront/{token}", web.storefront),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, lifespan=web.lifespan)
