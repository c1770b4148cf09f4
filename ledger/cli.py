"""The operators' command line, `loyalty-ledger` (DESIGN.md section 4)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from ledger import logs, settings
from ledger.domain.errors import LedgerError
from ledger.domain.kinds import Role
from ledger.store import migrate as migrations
from ledger.store.database import Database
from ledger.store.engine import connection_problem, create_engine_for, database_url

log = logging.getLogger("ledger.cli")


def _database(pool_size: int = 4, *, replica: bool = False) -> Database:
    """The database of LOYALTY_DATABASE_URL; with replica, statement pages are read from
    LOYALTY_READ_REPLICA_URL when it is set."""
    replica_url = settings.read_replica_url() if replica else None
    replica_engine = create_engine_for(replica_url, pool_size=pool_size) if replica_url else None
    return Database(create_engine_for(database_url(), pool_size=pool_size), replica_engine)


def _session_engine():
    """An engine on LOYALTY_SESSION_DATABASE_URL (default: LOYALTY_DATABASE_URL), for the work
    that holds a session-level advisory lock: behind a transaction-pooling PgBouncer a
    session's statements may each run on another server connection, so a session lock
    would be taken on one and looked for on another."""
    return create_engine_for(settings.session_database_url(), pool_size=1)


def _migrate(db: Database) -> None:
    """Migrates to head, on the session URL when it is another than db's."""
    if settings.session_database_url() == database_url():
        migrations.upgrade(db.engine)
        return
    engine = _session_engine()
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def _security(args):
    """The TLS settings and the rate limiter of `serve`; ValueError on inconsistent options."""
    from ledger.api import rate_limits, tls, tracing

    config = tls.from_settings(args.tls_cert, args.tls_key, args.tls_client_ca)
    if config is not None:
        config.server_credentials()  # read the PEM files now: a bad path fails at start
    tracing.check_installed()
    if args.rate_limit < 0 or args.rate_burst < 0:
        raise ValueError("--rate-limit and --rate-burst must not be negative")
    return config, rate_limits.from_settings(args.rate_limit, args.rate_burst)


def _check_port_free(listen: str) -> None:
    """OSError naming the address when something already listens on it: before migrating
    or creating the demo program, so a second `serve` changes nothing and shows no key."""
    import socket

    host, _, port = listen.rpartition(":")
    if int(port) == 0:
        return
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {listen}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise OSError(f"cannot listen on {listen}: {error.strerror} (is another server running there?)") from None


def cmd_serve(args) -> int:
    from ledger.service import programs

    try:
        _security(args)
        _check_port_free(args.listen)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    db = _database()
    _migrate(db)
    demo = programs.create_demo_program_if_empty(db)
    if demo is not None:
        print(f"Created program 'demo' ({demo.program_id}). Its admin key, shown only now:", flush=True)
        print(demo.admin_key, flush=True)
    db.dispose()
    if args.processes > 1:
        return _serve_processes(args)
    return _serve_one(args, share_port=False)


def _serve_one(args, *, share_port: bool) -> int:
    from ledger.api import metrics, server, tracing
    from ledger.scheduler import DueWorkScheduler

    tls_config, limiter = _security(args)
    db = _database(pool_size=args.workers, replica=True)
    interceptors = ()
    if tracing.wanted():
        from ledger.store import statement_tracing

        provider = tracing.provider_from_environment()
        statement_tracing.instrument(db, provider)
        interceptors = tuple(tracing.server_interceptors(provider))
    running = server.start(
        db,
        args.listen,
        max_workers=args.workers,
        share_port=share_port,
        tls=tls_config,
        limiter=limiter,
        request_timeout=args.request_timeout,
        interceptors=interceptors,
    )
    if args.metrics_port:
        metrics.serve(args.metrics_address, args.metrics_port + getattr(args, "process_index", 0), db)
    # Every process runs the scheduler; only the leader among all of them does the work.
    on_leadership = _leadership_gauge(args)
    leader = None
    if settings.session_database_url() != database_url():
        from ledger.store import leadership

        leader = leadership.for_engine(_session_engine(), on_leadership)
    scheduler = DueWorkScheduler(
        db,
        args.due_work_interval,
        on_leadership=on_leadership,
        on_report=lambda report: metrics.observe_expired(report.points_expired_by_program),
        leader=leader,
        moments_interval=args.moments_interval,
        segments_every=args.segments_refresh_interval,
    )
    scheduler.start()
    delivery = _delivery_runner(on_leadership=None) if settings.delivery_settings()["delivery"] else None
    if delivery is not None:
        delivery.start()
    log.info(
        "serving",
        extra={
            "listen": args.listen,
            "port": running.port,
            "database": db.describe(),
            "tls": "mutual" if tls_config and tls_config.mutual else ("on" if tls_config else "off"),
            "rate_limit": args.rate_limit,
        },
    )
    print(f"loyalty-ledger serving on port {running.port}", flush=True)
    server.serve_until_signal(running, args.grace)
    if delivery is not None:
        delivery.stop()
    scheduler.stop()
    db.dispose()
    return 0


def _delivery_runner(on_leadership):
    """The event delivery (webhooks, the NATS relay) of this process, from the settings; it
    sends only while this process leads it (ledger.delivery.runner)."""
    from ledger.delivery import runner
    from ledger.store import leadership

    values = settings.delivery_settings()
    db = Database(create_engine_for(database_url(), pool_size=runner.DB_POOL))
    leader = None
    if settings.session_database_url() != database_url():
        leader = leadership.for_delivery(_session_engine(), on_leadership)
    return runner.DeliveryRunner(
        db,
        runner.options_from(values, settings.webhook_allow_private()),
        nats_url=values["nats_url"],
        nats_stream=values["nats_stream"],
        leader=leader,
        leader_interval=values["delivery_leader_interval"],
        on_leadership=on_leadership,
    )


def cmd_deliver(args) -> int:
    """Event delivery alone, for operators who run it apart from the API servers (whose
    LOYALTY_DELIVERY=off); one sender leads among every process that could send."""
    from ledger.api import metrics
    from ledger.api.server import wait_for_stop_signal

    db = _database()
    _migrate(db)
    db.dispose()
    delivery = _delivery_runner(on_leadership=None)
    if args.metrics_port:
        metrics.start_http_server(args.metrics_port, addr=args.metrics_address)
    delivery.start()
    print("loyalty-ledger delivering events", flush=True)
    wait_for_stop_signal()
    delivery.stop()
    return 0


def _leadership_gauge(args):
    """What tells the metrics whether this process leads the due work (None: metrics are off)."""
    if not args.metrics_port:
        return None
    from ledger.api import metrics

    return metrics.observe_due_work_leader


def _child(args, index: int) -> None:
    """One server process of `serve --processes N` (see ledger.supervision)."""
    from ledger import supervision

    logs.configure()
    supervision.die_with_parent(args.grace)
    args.process_index = index
    try:
        code = _serve_one(args, share_port=True)
    finally:
        logs.shutdown()  # a child leaves by os._exit, which runs no atexit handler
    sys.exit(code)


def _serve_processes(args) -> int:
    """N server processes on one port (SO_REUSEPORT), supervised: SIGTERM is passed on to
    each, a dead one is started again, and they die with this process (ledger.supervision)."""
    from ledger import supervision

    return supervision.Supervisor(_child, args, args.processes, args.grace).run()


def cmd_migrate(args) -> int:
    db = _database()
    _migrate(db)
    print(f"database at revision {migrations.current_revision(db.engine)}")
    return 0


def cmd_program_create(args) -> int:
    from ledger.service import programs

    db = _database()
    _migrate(db)
    created = programs.create_program(db, args.name, args.currency)
    print(created.program_id)
    print(created.admin_key)
    return 0


def cmd_program_list(args) -> int:
    from ledger.service import programs

    db = _database()
    _migrate(db)
    rows = [(p.program_id, p.name, p.currency, _when(p.created_at)) for p in programs.list_programs(db)]
    _table(("program", "name", "currency", "created (UTC)"), rows)
    return 0


def cmd_key_list(args) -> int:
    from ledger.service import keys
    from ledger.store.instants import from_micros

    listed = keys.list_keys(_database(), args.program)
    rows = [
        (k.key_id, k.role.value, _when(from_micros(k.created_at)), _when(from_micros(k.revoked_at)) if k.revoked_at else "")
        for k in listed
    ]
    _table(("key", "role", "created (UTC)", "revoked (UTC)"), rows)
    return 0


def _when(instant) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_key_create(args) -> int:
    from ledger.service import keys

    print(keys.create_key(_database(), args.program, Role(args.role)))
    return 0


def cmd_key_revoke(args) -> int:
    from ledger.service import keys

    revoked = keys.revoke_keys(_database(), args.key_prefix)
    if not revoked:
        print(f"no active key starts with {args.key_prefix!r}", file=sys.stderr)
        return 1
    for key_id in revoked:
        print(f"revoked {key_id}")
    return 0


def cmd_expire(args) -> int:
    from ledger.service.expiry import run_due_work

    db = _database()
    _migrate(db)
    report = run_due_work(db, workers=args.workers)
    print(
        f"holds lapsed: {report.holds_lapsed}; members with expired points: {report.members_expired}; "
        f"points expired: {report.points_expired}; tiers changed at period end: {report.tiers_changed}; "
        f"events pruned: {report.events_pruned}; moments told: "
        + (", ".join(f"{kind} {n}" for kind, n in sorted(report.moments_told.items())) or "none")
    )
    return 0


def cmd_segments_refresh(args) -> int:
    from ledger.service import segments

    db = _database()
    _migrate(db)
    for report in segments.refresh_all(db):
        print(
            f"program {report.program_id}: members {report.members}; entered {report.entered}; "
            f"exited {report.exited}; {report.seconds:.1f} s"
        )
    return 0


def cmd_segments_export(args) -> int:
    """The segment's members as CSV (member_id, entered_at, recency_days, frequency, monetary,
    r, f, m), in member_id order, page by page: memory stays flat whatever the segment's size."""
    import csv

    from ledger.service import segments

    db = _database()
    _migrate(db)
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(segments.EXPORT_COLUMNS)
        for row in segments.export_rows(db, args.program, args.name):
            writer.writerow(row)
    except LedgerError as error:
        print(f"loyalty-ledger: {error.message}", file=sys.stderr)
        return 1
    finally:
        if args.output:
            out.close()
    return 0


def cmd_verify(args) -> int:
    from ledger.service.verify import verify

    report = verify(_database())
    print(
        json.dumps(
            {"clean": report.clean, "counts": report.counts, "totals": report.totals, "breaches": report.breaches},
            indent=2,
            default=str,
        )
    )
    return 0 if report.clean else 1


def cmd_report_liability(args) -> int:
    """The liability report of a program at an instant, as JSON or CSV on stdout."""
    import csv
    from datetime import datetime, timezone

    from ledger.domain.liability import to_json, to_rows
    from ledger.service.liability import liability_report

    db = _database()
    program_id = _program_or_the_only_one(db, args.program)
    if program_id is None:
        return 2
    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
        except ValueError:
            print(f"error: --as-of {args.as_of!r} is not an ISO 8601 instant", file=sys.stderr)
            return 2
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=timezone.utc)
    report = liability_report(db, program_id, as_of)
    if args.format == "json":
        print(json.dumps(to_json(report), indent=2))
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(("section", "key", "metric", "points", f"value_minor_{report.currency}"))
        writer.writerows(to_rows(report))
    return 0


def _program_or_the_only_one(db: Database, given: str) -> str | None:
    """--program, or the database's one program when it was left out (None, said on stderr,
    when the database holds several or none)."""
    from ledger.service import programs

    if given:
        return given
    listed = programs.list_programs(db)
    if len(listed) != 1:
        print("error: name the program with --program (`loyalty-ledger program list`)", file=sys.stderr)
        return None
    return listed[0].program_id


def cmd_import(args) -> int:
    """loyalty-ledger import members|orders FILE.csv (ledger.imports)."""
    from concurrent.futures.process import BrokenProcessPool
    from pathlib import Path

    from ledger import imports

    workers = imports.workers_for(args.kind, args.workers)
    db = _database(pool_size=workers + 2)
    program_id = _program_or_the_only_one(db, args.program)
    if program_id is None:
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 2
    try:
        tally = imports.run(db, program_id, path, args.kind, workers=workers, progress=not args.no_progress)
    except KeyboardInterrupt:
        # What committed is kept and checkpointed; the rows in flight are sent again by the rerun.
        print(f"interrupted: rerun the same command to go on from row {imports.rows_done(path) + 1}", file=sys.stderr)
        return 130
    except BrokenProcessPool:
        print(
            "error: a worker process of the import died (out of memory?); rerun the same command to go on"
            f" from row {imports.rows_done(path) + 1}",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.kind}: {tally.applied} applied, {tally.refused} refused"
        f" (see {path}.refused.csv), {tally.skipped} done by an earlier run"
    )
    return 0


def cmd_web(args) -> int:
    """The marketing console and storefront page (clients/web), next to a running ledger."""
    from clients.web.serve import main as web_main

    return web_main(args.web_args)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="loyalty-ledger",
        description="Loyalty points ledger. The database comes from LOYALTY_DATABASE_URL (default: ./loyalty.db).",
    )
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate to head, then serve gRPC")
    settings.add_flags(serve, settings.SERVE)
    serve.set_defaults(run=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema to head").set_defaults(run=cmd_migrate)

    program = sub.add_parser("program", help="manage programs").add_subparsers(dest="action", required=True)
    create = program.add_parser("create", help="create a program; prints its id and an admin key")
    create.add_argument("name")
    create.add_argument("--currency", default="USD")
    create.set_defaults(run=cmd_program_create)
    program.add_parser("list", help="list programs: id, name, currency, created").set_defaults(run=cmd_program_list)

    key = sub.add_parser("key", help="manage API keys").add_subparsers(dest="action", required=True)
    key_create = key.add_parser("create", help="create a key; prints only the key")
    key_create.add_argument("--program", required=True)
    key_create.add_argument("--role", required=True, choices=[r.value for r in Role])
    key_create.set_defaults(run=cmd_key_create)
    key_list = key.add_parser("list", help="list a program's keys: id, role, created, revoked (never secrets)")
    key_list.add_argument("--program", required=True)
    key_list.set_defaults(run=cmd_key_list)
    key_revoke = key.add_parser("revoke", help="revoke the key(s) whose id starts with KEY_PREFIX")
    key_revoke.add_argument("key_prefix")
    key_revoke.set_defaults(run=cmd_key_revoke)

    expire = sub.add_parser("expire", help="run due expiries and lapse due holds now")
    expire.add_argument(
        "--workers", type=int, default=2, help="batches expired at once, each on its own database connection (default 2)"
    )
    expire.set_defaults(run=cmd_expire)
    sub.add_parser("verify", help="check every balance and invariant against the ledger").set_defaults(run=cmd_verify)
    importing = sub.add_parser("import", help="bulk import from CSV, resumable, with a progress bar")
    importing.add_argument("kind", choices=("members", "orders"))
    importing.add_argument("file", help="the CSV file (header row; columns in the README)")
    importing.add_argument("--program", default="", help="the program's id (optional when there is only one)")
    importing.add_argument(
        "--workers", type=int, default=0,
        help="batches of orders (default 3) or member rows (default 8) applied at once, each on its own connection",
    )
    importing.add_argument("--no-progress", action="store_true", help="no progress bar")
    importing.set_defaults(run=cmd_import)
    report = sub.add_parser("report", help="reports over the ledger").add_subparsers(dest="report", required=True)
    liability = report.add_parser("liability", help="the points liability of a program at an instant")
    liability.add_argument("--program", default="", help="the program's id (optional when there is only one)")
    liability.add_argument("--as-of", default="", help="ISO 8601 instant (default now), e.g. 2026-11-30T23:59:59Z")
    liability.add_argument("--format", choices=("json", "csv"), default="json")
    liability.set_defaults(run=cmd_report_liability)
    web = sub.add_parser(
        "web",
        help="serve the marketing console and the storefront page (`loyalty-ledger web --help`)",
        add_help=False,
    )
    web.add_argument("web_args", nargs=argparse.REMAINDER)
    web.set_defaults(run=cmd_web)

    seg = sub.add_parser("segments", help="RFM figures and segments").add_subparsers(dest="action", required=True)
    seg.add_parser(
        "refresh", help="recompute every member's RFM figures, the cut points and every segment's members now"
    ).set_defaults(run=cmd_segments_refresh)
    export = seg.add_parser("export", help="write a segment's members as CSV (for an email tool)")
    export.add_argument("name", help="the segment's name or id")
    export.add_argument("--program", help="the program's id (default: the only program)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(run=cmd_segments_export)
    deliver = sub.add_parser(
        "deliver", help="send webhooks and relay events to NATS (the one sender among all processes), until SIGTERM"
    )
    deliver.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on PORT (default off)")
    deliver.add_argument("--metrics-address", default="127.0.0.1", help="address of the metrics endpoint")
    deliver.set_defaults(run=cmd_deliver)
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        settings.check_environment()
        settings.delivery_settings()
        settings.webhook_allow_private()
    except settings.SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logs.configure()
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["web"]:  # its own flags, --help included, are the web application's
        return cmd_web(argparse.Namespace(web_args=given[1:]))
    args = parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings.resolve(args, settings.SERVE)
        return args.run(args)
    except settings.SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except LedgerError as error:
        print(f"error: {error.message} ({error.reason})", file=sys.stderr)
        return 2
    except DBAPIError as error:  # the database cannot be reached or used at all
        print(f"error: {connection_problem(error)}", file=sys.stderr)
        return 2
