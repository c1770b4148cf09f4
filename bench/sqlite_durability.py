"""`python -m bench sqlite-sync`: what SQLite's synchronous=FULL costs an Earn, against NORMAL.

  python -m bench sqlite-sync --calls 1500 --rounds 3 --concurrency 1
  python -m bench sqlite-sync --calls 1500 --rounds 3 --concurrency 8

The embedded default runs SQLite in WAL mode with synchronous=FULL: every COMMIT waits for
the WAL to reach the disk, so an acknowledged write survives a power loss. With NORMAL the
WAL is synced only at checkpoints, and a power loss (never a process crash) can take the
last acknowledged writes with it.

Each round serves a new SQLite file once per setting, FULL then NORMAL, from a server
process of its own (this build's engine, with PRAGMA synchronous set on each new
connection after the engine's own), and sends `--calls` Earns over gRPC on loopback from
`--concurrency` clients, each one call after another. It prints calls a second and the
latency percentiles per run, then the medians per setting. The files go to `--dir` (the
current directory by default): put it on the disk the ledger would live on, never a tmpfs,
where a sync costs nothing.
"""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

SETTINGS = ("FULL", "NORMAL")


def _serve(url: str, synchronous: str, ready, stop) -> None:
    from sqlalchemy import event

    from ledger.api import server
    from ledger.service import programs
    from ledger.store import migrate
    from ledger.store.database import Database
    from ledger.store.engine import create_engine_for

    engine = create_engine_for(url)

    @event.listens_for(engine, "connect")
    def _synchronous(dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")

    migrate.upgrade(engine)
    created = programs.create_program(Database(engine), "sqlite-sync")
    with engine.connect() as conn:
        actual = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
    running = server.start(Database(engine), "127.0.0.1:0", max_workers=16)
    ready.put((running.port, created.admin_key, {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[actual]))
    stop.wait()
    running.stop(1)
    engine.dispose()


def _client(target: str, key: str, member: str, calls: int, latencies: list[float]) -> None:
    import grpc

    from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc

    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        stub.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member), metadata=metadata, timeout=10)
        for number in range(calls):
            order = common_pb2.Order(
                order_id=f"{member}-{number}", channel=common_pb2.CHANNEL_POS, amount=2599, currency="USD"
            )
            request = ledger_pb2.EarnRequest(member_id=member, idempotency_key=secrets.token_hex(12), order=order)
            started = time.perf_counter()
            stub.Earn(request, metadata=metadata, timeout=10)
            latencies.append(time.perf_counter() - started)


def run_once(directory: Path, synchronous: str, calls: int, concurrency: int) -> dict:
    context = multiprocessing.get_context("spawn")
    url = f"sqlite:///{directory / f'sync-{synchronous.lower()}-{secrets.token_hex(3)}.db'}"
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(url, synchronous, ready, stop), daemon=True)
    server.start()
    try:
        port, key, actual = ready.get(timeout=60)
        assert actual == synchronous, f"the server runs with synchronous={actual}"
        target = f"127.0.0.1:{port}"
        latencies: list[float] = []
        per_client = max(1, calls // concurrency)
        clients = [
            threading.Thread(target=_client, args=(target, key, f"m-{n}", per_client, latencies))
            for n in range(concurrency)
        ]
        started = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.kill()
    latencies.sort()
    return {
        "synchronous": synchronous,
        "calls": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def run(args) -> int:
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="sqlite-sync-", dir=root))
    results: list[dict] = []
    print(f"{args.calls} Earns per run from {args.concurrency} client(s), files in {directory}", flush=True)
    print(f"{'round':>5}  {'synchronous':<11} {'Earns/s':>8} {'p50 ms':>7} {'p99 ms':>7}", flush=True)
    try:
        for round_number in range(1, args.rounds + 1):
            for synchronous in SETTINGS:
                result = run_once(directory, synchronous, args.calls, args.concurrency)
                results.append(result)
                print(
                    f"{round_number:>5}  {synchronous:<11} {result['per_second']:>8.1f} "
                    f"{result['p50_ms']:>7.2f} {result['p99_ms']:>7.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    medians = {
        s: statistics.median(r["per_second"] for r in results if r["synchronous"] == s) for s in SETTINGS
    }
    p50s = {s: statistics.median(r["p50_ms"] for r in results if r["synchronous"] == s) for s in SETTINGS}
    print(
        f"median: FULL {medians['FULL']:.1f}/s (p50 {p50s['FULL']:.2f} ms), "
        f"NORMAL {medians['NORMAL']:.1f}/s (p50 {p50s['NORMAL']:.2f} ms); "
        f"FULL costs {100 * (1 - medians['FULL'] / medians['NORMAL']):.0f} % of the throughput"
    )
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("sqlite-sync", help="Earns over gRPC against SQLite, synchronous=FULL against NORMAL, alternating")
    s.add_argument("--calls", type=int, default=1500, help="Earns per run (default 1500)")
    s.add_argument("--rounds", type=int, default=3, help="FULL/NORMAL pairs (default 3)")
    s.add_argument("--concurrency", type=int, default=1, help="clients, each one call after another (default 1)")
    s.add_argument("--dir", default=".", help="where the SQLite files go: the ledger's disk, not a tmpfs (default .)")
    s.set_defaults(run=run)
