"""Every setting of `loyalty-ledger`: its flag, its environment variable, its default and its check.

A flag wins over its variable, the variable over the default. Each value is checked where
it is read, and a bad one stops the command with one line that names the flag or the
variable it came from (`error: LOYALTY_RATE_LIMIT: expected a number, got 'abc'`), never a
traceback. The command line (ledger.cli) declares its flags from the tables below, so a
setting is described once.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SQLITE_FILE = "loyalty.db"


class SettingError(ValueError):
    """A setting with a value that cannot be used; str() is the one line to show."""


def _number(kind: type, minimum: float | None = None) -> Callable[[str], Any]:
    noun = "a whole number" if kind is int else "a number"

    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"expected {noun}, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"expected {noun} of at least {minimum:g}, got {raw!r}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw


def _optional_path(raw: str) -> str | None:
    return raw or None


def _switch(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("on", "1", "true", "yes"):
        return True
    if lowered in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"expected on or off, got {raw!r}")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(f"not a database URL: {raw!r} (e.g. postgresql://user@host:5432/loyalty)") from None
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ValueError(f"expected a postgresql:// or sqlite:/// URL, got {url.get_backend_name()}://")
    return raw


def _listen(raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:50051 or [::]:50051), got {raw!r}")
    return raw


@dataclass(frozen=True)
class Setting:
    name: str  # the attribute on the parsed arguments
    flag: str | None  # e.g. "--rate-limit"; None for a variable without a flag
    env: str | None  # e.g. "LOYALTY_RATE_LIMIT"
    default: Any
    parse: Callable[[str], Any]
    help: str
    metavar: str | None = None

    def resolve(self, given: str | None) -> Any:
        """The value from the flag (given), else the variable, else the default."""
        if given is not None:
            source, raw = self.flag, given
        elif self.env and os.environ.get(self.env) not in (None, ""):
            source, raw = self.env, os.environ[self.env]
        else:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as error:
            raise SettingError(f"{source}: {error}") from None


DATABASE_URL = Setting(
    "database_url",
    None,
    "LOYALTY_DATABASE_URL",
    f"sqlite:///{DEFAULT_SQLITE_FILE}",
    _database_url,
    "SQLAlchemy URL of the database",
)
LOG_LEVEL = Setting("log_level", None, "LOYALTY_LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR")
SESSION_DATABASE_URL = Setting(
    "session_database_url",
    None,
    "LOYALTY_SESSION_DATABASE_URL",
    None,
    _database_url,
    "SQLAlchemy URL for what needs a database session of its own (the migrations' and the due-work "
    "leader's advisory locks): PostgreSQL directly when LOYALTY_DATABASE_URL goes through a "
    "transaction-pooling PgBouncer; default LOYALTY_DATABASE_URL",
)
READ_REPLICA_URL = Setting(
    "read_replica_url",
    None,
    "LOYALTY_READ_REPLICA_URL",
    None,
    _database_url,
    "SQLAlchemy URL of a PostgreSQL standby that serves statement pages (ListTransactions); "
    "default: the primary serves them",
)
PG_PREPARE = Setting(
    "pg_prepare", None, "LOYALTY_PG_PREPARE", True, _switch, "prepare hot statements on PostgreSQL (off behind PgBouncer)"
)

SERVE = (
    Setting("listen", "--listen", None, "127.0.0.1:50051", _listen, "HOST:PORT to serve on (default 127.0.0.1:50051)"),
    Setting(
        "workers",
        "--workers",
        None,
        16,
        _number(int, 1),
        "worker threads doing the ledger's database work, per process (default 16); "
        "32 more calls per worker may wait, beyond that RESOURCE_EXHAUSTED / SERVER_BUSY",
    ),
    Setting(
        "request_timeout",
        "--request-timeout",
        "LOYALTY_REQUEST_TIMEOUT",
        10.0,
        _number(float, 0.1),
        "a call that has not sent its request message after this long is ended with "
        "DEADLINE_EXCEEDED / REQUEST_INCOMPLETE (default 10)",
        "SECONDS",
    ),
    Setting(
        "metrics_port",
        "--metrics-port",
        "LOYALTY_METRICS_PORT",
        0,
        _number(int, 0),
        "serve Prometheus metrics on PORT (+1 per extra process); 0 disables (default)",
        "PORT",
    ),
    Setting(
        "metrics_address",
        "--metrics-address",
        "LOYALTY_METRICS_ADDRESS",
        "127.0.0.1",
        _text,
        "address the metrics endpoint binds (default 127.0.0.1; 0.0.0.0 for a scraper on another host)",
    ),
    Setting(
        "processes",
        "--processes",
        "LOYALTY_SERVER_PROCESSES",
        1,
        _number(int, 1),
        "server processes sharing the port with SO_REUSEPORT (default 1)",
    ),
    Setting("grace", "--grace", None, 10.0, _number(float, 0), "seconds in-flight calls get on SIGTERM (default 10)"),
    Setting(
        "due_work_interval",
        "--due-work-interval",
        "LOYALTY_DUE_WORK_INTERVAL",
        60.0,
        _number(float, 0),
        "seconds between runs of hold lapsing, tier reviews and point expiry (0 disables; default 60)",
        "SECONDS",
    ),
    Setting(
        "moments_interval",
        "--moments-interval",
        "LOYALTY_MOMENTS_INTERVAL",
        3600.0,
        _number(float, 0),
        "seconds between runs of the due work that tell the post-purchase moments (points expiring, "
        "tier warnings, review requests, lapses; 0: every run; default 3600)",
        "SECONDS",
    ),
    Setting(
        "segments_refresh_interval",
        "--segments-refresh-interval",
        "LOYALTY_SEGMENTS_REFRESH_INTERVAL",
        86400.0,
        _number(float, 0),
        "seconds between the due-work leader's refreshes of each program's RFM figures, cut points and segment "
        "members (0 disables; default 86400, daily)",
        "SECONDS",
    ),
    Setting(
        "tls_cert",
        "--tls-cert",
        "LOYALTY_TLS_CERT",
        None,
        _optional_path,
        "PEM certificate chain of the server; with --tls-key serves TLS",
        "PATH",
    ),
    Setting("tls_key", "--tls-key", "LOYALTY_TLS_KEY", None, _optional_path, "PEM private key of the server", "PATH"),
    Setting(
        "tls_client_ca",
        "--tls-client-ca",
        "LOYALTY_TLS_CLIENT_CA",
        None,
        _optional_path,
        "PEM CA bundle; clients must present a certificate it signed: mutual TLS",
        "PATH",
    ),
    Setting(
        "rate_limit",
        "--rate-limit",
        "LOYALTY_RATE_LIMIT",
        0.0,
        _number(float, 0),
        "calls a second allowed per API key (per server process); 0 means unlimited (default)",
        "PER_SECOND",
    ),
    Setting(
        "rate_burst",
        "--rate-burst",
        "LOYALTY_RATE_BURST",
        0,
        _number(int, 0),
        "calls a key may make in one burst (bucket size; default: one second's worth, at least 1)",
        "N",
    ),
)

WEBHOOK_ALLOW_PRIVATE = Setting(
    "webhook_allow_private",
    None,
    "LOYALTY_WEBHOOK_ALLOW_PRIVATE",
    False,
    _switch,
    "on: webhooks may target private and link-local addresses (receivers inside the operator's network); "
    "default off (server-side request forgery)",
)

# Event delivery: webhooks and the NATS relay (ledger.delivery), in `serve` and `deliver`.
DELIVERY = (
    Setting(
        "delivery",
        None,
        "LOYALTY_DELIVERY",
        True,
        _switch,
        "off: this `serve` sends no webhooks and relays nothing (run `loyalty-ledger deliver` elsewhere); default on",
    ),
    Setting(
        "nats_url",
        None,
        "LOYALTY_NATS_URL",
        None,
        _optional_path,
        "nats://host:4222 of a NATS server with JetStream: events are relayed to subjects "
        "loyalty.<program_id>.<type>; unset: no relay",
    ),
    Setting("nats_stream", None, "LOYALTY_NATS_STREAM", "LOYALTY", _text, "the JetStream stream (created if missing)"),
    Setting(
        "webhook_timeout", None, "LOYALTY_WEBHOOK_TIMEOUT", 10.0, _number(float, 0.1),
        "seconds an endpoint has to answer 2xx (default 10)",
    ),
    Setting(
        "webhook_concurrency", None, "LOYALTY_WEBHOOK_CONCURRENCY", 8, _number(int, 1),
        "requests in flight at once per endpoint (default 8)",
    ),
    Setting(
        "webhook_retry_base", None, "LOYALTY_WEBHOOK_RETRY_BASE", 1.0, _number(float, 0.001),
        "seconds before the first retry; doubles with each retry, with jitter (default 1)",
    ),
    Setting(
        "webhook_retry_cap", None, "LOYALTY_WEBHOOK_RETRY_CAP", 3600.0, _number(float, 0.001),
        "longest wait between retries, seconds (default 3600)",
    ),
    Setting(
        "webhook_retry_window", None, "LOYALTY_WEBHOOK_RETRY_WINDOW", 86400.0, _number(float, 0.001),
        "seconds an event is retried before its delivery fails for good (default 86400: 24 hours)",
    ),
    Setting(
        "delivery_poll", None, "LOYALTY_DELIVERY_POLL", 0.25, _number(float, 0.01),
        "seconds between looks for new events when there is nothing to send (default 0.25)",
    ),
    Setting(
        "delivery_leader_interval", None, "LOYALTY_DELIVERY_LEADER_INTERVAL", 1.0, _number(float, 0.05),
        "seconds between checks of the delivery leadership (one sender across processes; default 1)",
    ),
)

ENVIRONMENT = (DATABASE_URL, SESSION_DATABASE_URL, READ_REPLICA_URL, LOG_LEVEL, PG_PREPARE)
EVERY_VARIABLE = tuple(s.env for s in (*ENVIRONMENT, *SERVE, WEBHOOK_ALLOW_PRIVATE, *DELIVERY) if s.env)


def add_flags(parser: argparse.ArgumentParser, settings: tuple[Setting, ...]) -> None:
    """Declares the settings' flags; their values are resolved (and checked) by resolve()."""
    for setting in settings:
        if setting.flag is None:
            continue  # a variable only: resolve() reads it from the environment
        source = f" (env {setting.env})" if setting.env else ""
        parser.add_argument(setting.flag, dest=setting.name, default=None, metavar=setting.metavar, help=setting.help + source)


def resolve(args: argparse.Namespace, settings: tuple[Setting, ...]) -> None:
    """Replaces each setting's raw flag value on args with its checked value (flag, else
    variable, else default); SettingError names the first bad one."""
    for setting in settings:
        setattr(args, setting.name, setting.resolve(getattr(args, setting.name, None)))


def database_url() -> str:
    return DATABASE_URL.resolve(None)


def session_database_url() -> str:
    """LOYALTY_SESSION_DATABASE_URL, else LOYALTY_DATABASE_URL."""
    return SESSION_DATABASE_URL.resolve(None) or database_url()


def read_replica_url() -> str | None:
    return READ_REPLICA_URL.resolve(None)


def log_level() -> str:
    return LOG_LEVEL.resolve(None)


def webhook_allow_private() -> bool:
    return WEBHOOK_ALLOW_PRIVATE.resolve(None)


def delivery_settings() -> dict[str, Any]:
    """The delivery settings by name, from their variables (SettingError on a bad one)."""
    return {s.name: s.resolve(None) for s in DELIVERY}


def pg_prepare() -> bool:
    return PG_PREPARE.resolve(None)


def check_environment() -> None:
    """SettingError for the first of the variables every command reads (the databases, the
    log level, statement preparation) that does not hold a usable value; `serve`'s own
    settings are checked when it resolves them."""
    for setting in ENVIRONMENT:
        setting.resolve(None)
