"""Runs one scenario from several worker processes (grpc.aio inside each), so the load
generator is not the bottleneck on a small machine."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import grpc

from bench.scenarios import SCENARIOS, Context
from bench.stats import Sample


async def _worker(target: str, scenario: str, ctx: Context, concurrency: int, duration: float) -> Sample:
    sample = Sample()
    operation = SCENARIOS[scenario]
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, concurrency // 16))]
    deadline = time.perf_counter() + duration

    async def loop(index: int) -> None:
        channel = channels[index % len(channels)]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await operation(channel, ctx)
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            sample.latencies_ms.append((time.perf_counter() - started) * 1000)
            sample.codes[code] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    sample.duration_s = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return sample


def _process(target, scenario, ctx, concurrency, duration, queue) -> None:
    queue.put(asyncio.run(_worker(target, scenario, ctx, concurrency, duration)))


def run(target: str, scenario: str, ctx: Context, concurrency: int, duration: float, processes: int) -> Sample:
    queue = multiprocessing.get_context("spawn").Queue()
    share = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=_process, args=(target, scenario, ctx, n, duration, queue), daemon=True
        )
        for n in share
        if n > 0
    ]
    for worker in workers:
        worker.start()
    total = Sample()
    for _ in workers:
        total.merge(queue.get(timeout=duration + 120))
    for worker in workers:
        worker.join(timeout=30)
    return total
