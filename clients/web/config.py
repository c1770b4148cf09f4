"""The web application's settings: flags and LOYALTY_WEB_* variables (`loyalty-ledger web --help`)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class WebConfig:
    """What the web application needs to call the ledger and to sign its cookies and links."""

    target: str
    secret: str
    storefront_key: str | None = None
    events_key: str | None = None
    session_seconds: int = 3600
    link_seconds: int = 86_400
    time_zone: str = "UTC"
    share_url: str = "https://shop.example/join?ref={code}"
    shop_name: str = "Rewards"
    root_certificates: bytes | None = None
    tls: bool = False


FLAGS: tuple[tuple[str, str, str | None, str], ...] = (
    # (flag, variable, default, help)
    ("--target", "LOYALTY_WEB_TARGET", "127.0.0.1:50051", "the ledger's gRPC address (default 127.0.0.1:50051)"),
    ("--listen", "LOYALTY_WEB_LISTEN", "127.0.0.1:8080", "HOST:PORT to serve the pages on (default 127.0.0.1:8080)"),
    (
        "--secret",
        "LOYALTY_WEB_SECRET",
        None,
        "signs session cookies, form tokens and storefront links (default: a random one per start, "
        "which signs everyone out and voids the links at each restart)",
    ),
    ("--storefront-key", "LOYALTY_WEB_STOREFRONT_KEY", None, "a storefront (or admin) key for the storefront page"),
    (
        "--events-key",
        "LOYALTY_WEB_EVENTS_KEY",
        None,
        "an events key, for the per-day charts of a console signed in with a marketing key",
    ),
    ("--session-minutes", "LOYALTY_WEB_SESSION_MINUTES", "60", "a console session ends this long after sign-in"),
    ("--link-hours", "LOYALTY_WEB_LINK_HOURS", "24", "a storefront link is good this long"),
    ("--time-zone", "LOYALTY_WEB_TIME_ZONE", "UTC", "the program's IANA time zone: campaign windows and charts"),
    (
        "--share-url",
        "LOYALTY_WEB_SHARE_URL",
        "https://shop.example/join?ref={code}",
        "the referral share link, {code} replaced by the member's code",
    ),
    ("--shop-name", "LOYALTY_WEB_SHOP_NAME", "Rewards", "the title of the storefront page"),
    ("--ca-cert", "LOYALTY_WEB_CA_CERT", None, "PEM file of the CA that signed the ledger's TLS certificate"),
)


def add_flags(parser: argparse.ArgumentParser) -> None:
    for flag, variable, _, text in FLAGS:
        shown = f" (env {variable})"
        parser.add_argument(flag, default=None, help=text + shown, metavar=flag.strip("-").split("-")[-1].upper())
    parser.add_argument("--tls", action="store_true", help="call the ledger over TLS with the system's roots")
    parser.add_argument(
        "--link",
        metavar="MEMBER_ID",
        help="print the storefront link of this member (for the storefront's server) and exit",
    )


def _value(args: argparse.Namespace, flag: str, variable: str, default: str | None) -> str | None:
    given: str | None = getattr(args, flag.strip("-").replace("-", "_"))
    if given is not None:
        return given
    return os.environ.get(variable) or default


def from_args(args: argparse.Namespace) -> tuple[WebConfig, str]:
    """The configuration and the HOST:PORT to listen on; ValueError names a bad setting."""
    values = {flag: _value(args, flag, variable, default) for flag, variable, default, _ in FLAGS}
    secret = values["--secret"]
    if not secret:
        secret = secrets.token_urlsafe(32)
        print("warning: no --secret (LOYALTY_WEB_SECRET): sessions and links end at restart", file=sys.stderr)
    zone = values["--time-zone"] or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--time-zone: not an IANA time zone: {zone!r} (e.g. Europe/Paris)") from None
    numbers = {}
    for flag in ("--session-minutes", "--link-hours"):
        raw = values[flag] or ""
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{flag}: expected a whole number of at least 1, got {raw!r}")
        numbers[flag] = int(raw)
    share = values["--share-url"] or ""
    if "{code}" not in share:
        raise ValueError(f"--share-url: must contain {{code}}, got {share!r}")
    listen = values["--listen"] or ""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen: expected HOST:PORT, got {listen!r}")
    root = None
    if values["--ca-cert"]:
        with open(values["--ca-cert"], "rb") as pem:
            root = pem.read()
    config = WebConfig(
        target=values["--target"] or "127.0.0.1:50051",
        secret=secret,
        storefront_key=values["--storefront-key"],
        events_key=values["--events-key"],
        session_seconds=numbers["--session-minutes"] * 60,
        link_seconds=numbers["--link-hours"] * 3600,
        time_zone=zone,
        share_url=share,
        shop_name=values["--shop-name"] or "Rewards",
        root_certificates=root,
        tls=bool(args.tls) or root is not None,
    )
    return config, listen
