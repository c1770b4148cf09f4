"""`python -m bench server-models`: the gRPC server models side by side, on the health RPC.

The health RPC does no ledger work, so this measures what each model costs per call by
itself: a thread-pool server (what `loyalty-ledger serve` runs) against a grpc.aio
server, each serving alone on a free port while the same load hits it. A ledger call adds
its database work on top of this in either model.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from bench import report, runner
from bench.scenarios import Context

MODELS = ("thread-pool", "aio")


def _serve_threads(port: int, ready) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def _serve_aio(port: int, ready) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(serve())


def cmd_server_models(args) -> int:
    context = multiprocessing.get_context("spawn")
    ctx = Context(metadata=(), members=1, hot_member="", member_prefix="")
    results = {}
    for model, target in zip(MODELS, (_serve_threads, _serve_aio)):
        ready = context.Event()
        server = context.Process(target=target, args=(args.port, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(30):
                raise SystemExit(f"the {model} server did not start")
            time.sleep(0.5)
            results[model] = runner.run(
                f"127.0.0.1:{args.port}", "health", ctx, args.concurrency, args.duration, args.processes
            )
        finally:
            server.terminate()
            server.join(10)
    baseline = results[MODELS[0]]
    for model in MODELS:
        report.print_row(model, results[model], baseline)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("server-models", help="thread-pool vs grpc.aio server on the health RPC")
    p.add_argument("--port", type=int, default=29491)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--processes", type=int, default=2)
    p.set_defaults(run=cmd_server_models)
