"""Webhooks' rules, with no I/O: which URLs and addresses may be called (server-side request
forgery), how long to wait before a retry, and when a delivery has failed for good.

A webhook URL is chosen by a caller of the API, and the server POSTs to it: without rules, a
key could make the server call its own network (a database, a cloud metadata service at
169.254.169.254, an admin page). So:
- https:// is required; http:// only to a loopback address (a receiver on the same machine,
  for development and tests), where there is no network to read the request on;
- every address the host resolves to is checked, at creation and again before each
  delivery round (a name can be pointed elsewhere later: DNS rebinding), and the request
  goes to the address that was checked: private (RFC 1918, unique-local), link-local,
  carrier-grade NAT, multicast, unspecified and reserved addresses are refused unless the
  operator allows private targets (LOYALTY_WEBHOOK_ALLOW_PRIVATE: receivers inside the
  operator's own network). Loopback is allowed: the spec's receivers on the same machine;
- redirects are never followed (a 3xx is a failed attempt): a redirect could point anywhere.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger.domain.errors import Category, FieldViolation, LedgerError

MAX_URL = 2048
MAX_DESCRIPTION = 256
URL_REFUSED = "WEBHOOK_URL_REFUSED"
# Carrier-grade NAT (RFC 6598): ipaddress counts it neither private nor global.
_SHARED = ipaddress.ip_network("100.64.0.0/10")

PENDING = "pending"
FAILED = "failed"
DELIVERED = "delivered"
RETRYING = "retrying"


@dataclass(frozen=True)
class Target:
    """A checked webhook URL, split."""

    url: str
    scheme: str  # "https" or "http"
    host: str  # without brackets
    port: int

    @property
    def loopback_only(self) -> bool:
        """http:// is allowed only when every address of the host is loopback."""
        return self.scheme == "http"


def url_refused(message: str, field: str = "url") -> LedgerError:
    return LedgerError(Category.INVALID_ARGUMENT, "WEBHOOK_URL_REFUSED", message, (FieldViolation(field, message),))


def parse_url(url: str) -> Target:
    """The URL split and checked for form (not yet for its addresses): INVALID_ARGUMENT /
    WEBHOOK_URL_REFUSED otherwise."""
    if not url or len(url) > MAX_URL:
        raise url_refused(f"must be an https:// URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise url_refused(f"is not a URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise url_refused("must be an https:// URL (http:// only to a loopback address)")
    if not parts.hostname:
        raise url_refused("names no host")
    if parts.username or parts.password:
        raise url_refused("must not carry a user name or password (the signature authenticates the sender)")
    if parts.fragment:
        raise url_refused("must not have a #fragment")
    host = parts.hostname
    if scheme == "http":
        literal = _literal(host)
        if literal is not None and not literal.is_loopback:
            raise url_refused("must be https:// (http:// is allowed only to a loopback address)")
        if literal is None and host.lower() != "localhost":
            raise url_refused("must be https:// (http:// is allowed only to a loopback address such as 127.0.0.1)")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80))


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_problem(target: Target, address: str, allow_private: bool) -> str | None:
    """Why the target may not be called at this address (None: it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None
    if target.loopback_only:
        return f"http:// is allowed only to loopback, and {target.host} is {ip}"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"{target.host} is {ip}, an address that is never a webhook receiver"
    if ip.is_link_local or ip.is_private or ip in _SHARED or not ip.is_global:
        if allow_private:
            return None
        kind = "link-local" if ip.is_link_local else "private"
        return (
            f"{target.host} is {ip}, a {kind} address: refused unless the operator allows private "
            "targets (LOYALTY_WEBHOOK_ALLOW_PRIVATE)"
        )
    return None


def addresses_problem(target: Target, addresses: list[str], allow_private: bool) -> str | None:
    """Why the target may not be called (None when every address it resolves to may be)."""
    if not addresses:
        return f"{target.host} resolves to no address"
    for address in addresses:
        problem = address_problem(target, address, allow_private)
        if problem:
            return problem
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for `window` seconds from an event's first attempt."""

    base: float = 1.0  # the first retry's delay (before jitter)
    cap: float = 3600.0  # no delay longer than this
    window: float = 86400.0  # retried at least this long, then failed for good

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the next attempt, after `attempts` failed ones: base * 2^(n-1),
        at most cap, with "equal jitter" (half fixed, half random) so a crowd of failed
        events does not come back at one instant."""
        step = min(self.cap, self.base * 2 ** min(max(attempts - 1, 0), 40))
        return step / 2 + (rng or random).uniform(0, step / 2)

    def after_failure(self, attempts: int, since: float, now: float, rng: random.Random | None = None) -> float | None:
        """When to try again (an instant in seconds) after the attempts-th failed attempt of
        an event in delivery since `since`; None when the window is over: failed for good."""
        if now - since >= self.window:
            return None
        return now + self.delay(attempts, rng)


def outcome_of(status: int) -> bool:
    """A 2xx answer (within the timeout) is a delivery; anything else is not."""
    return 200 <= status < 300
