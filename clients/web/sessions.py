"""Console sessions, form tokens and storefront links, all signed with the server's secret.

The browser never holds an API key: a sign-in keeps the key in this process's memory under
a random session id, and the cookie carries only that id, signed and time-stamped (an
expired or forged cookie is refused even before the memory is looked at). Every form of a
session carries a token derived from the session id (CSRF), and the sign-in form a signed
nonce that must match its cookie (double submit), so another site cannot post either form.
A storefront link names a member, signed and time-stamped: the storefront's server makes
it (`loyalty-ledger web --link MEMBER_ID`, or storefront_link()) and hands it to its shopper.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_SALT = "loyalty-web-session"
SIGNIN_SALT = "loyalty-web-signin"
LINK_SALT = "loyalty-web-storefront"
SIGNIN_SECONDS = 3600


@dataclass
class Session:
    """A signed-in console user: the key (kept here only), its role and program."""

    session_id: str
    api_key: str = field(repr=False)
    role: str
    program_id: str
    program_name: str
    currency: str
    expires_at: float


class Expired(Exception):
    """The cookie was genuine but its session is over."""


class Sessions:
    """The console's sessions, in memory (a restart signs everyone out)."""

    def __init__(self, secret: str, lifetime_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret.encode()
        self._cookies = URLSafeTimedSerializer(secret, salt=SESSION_SALT)
        self._signin = URLSafeTimedSerializer(secret, salt=SIGNIN_SALT)
        self.lifetime = lifetime_seconds
        self._clock = clock
        self._open: dict[str, Session] = {}

    def start(self, api_key: str, role: str, program_id: str, program_name: str, currency: str) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        self._prune()
        session = Session(
            session_id=secrets.token_urlsafe(24),
            api_key=api_key,
            role=role,
            program_id=program_id,
            program_name=program_name,
            currency=currency,
            expires_at=self._clock() + self.lifetime,
        )
        self._open[session.session_id] = session
        return session, self._cookies.dumps(session.session_id)

    def find(self, cookie: str | None) -> Session | None:
        """The session a cookie names; None when there is none or it is forged; Expired when over."""
        if not cookie:
            return None
        try:
            session_id = self._cookies.loads(cookie, max_age=self.lifetime)
        except SignatureExpired:
            raise Expired() from None
        except BadSignature:
            return None
        session = self._open.get(str(session_id))
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._open[session.session_id]
            raise Expired()
        return session

    def end(self, session: Session) -> None:
        self._open.pop(session.session_id, None)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, b"csrf:" + session.session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))

    def signin_token(self) -> str:
        """A signed nonce for the sign-in form and its cookie."""
        return self._signin.dumps(secrets.token_urlsafe(16))

    def signin_ok(self, cookie: str | None, form: str | None) -> bool:
        if not cookie or not form or not hmac.compare_digest(cookie, form):
            return False
        try:
            self._signin.loads(form, max_age=SIGNIN_SECONDS)
        except BadSignature:
            return False
        return True

    def _prune(self) -> None:
        now = self._clock()
        for session_id in [s.session_id for s in self._open.values() if s.expires_at <= now]:
            del self._open[session_id]


def storefront_link(secret: str, member_id: str, base_url: str = "") -> str:
    """The storefront page of a member: base_url (e.g. "https://rewards.example.com") and a signed path."""
    token = URLSafeTimedSerializer(secret, salt=LINK_SALT).dumps(member_id)
    return f"{base_url.rstrip('/')}/storefront/{token}"


def member_of_link(secret: str, token: str, max_age: int) -> str | None:
    """The member a storefront link names; None when forged or older than max_age seconds."""
    try:
        return str(URLSafeTimedSerializer(secret, salt=LINK_SALT).loads(token, max_age=max_age))
    except BadSignature:
        return None
