"""Webhook delivery under a flaky receiver, and what delivery costs the tills.

  python -m bench webhooks flaky --flaky 60 --healed 60 --rate 40
  python -m bench webhooks till --setup bench/out/setup.json --rounds 2 --duration 15

`flaky`: a real `loyalty-ledger serve` (LOYALTY_DATABASE_URL, default settings: 10 s
timeout, 1 s first retry) delivers to a receiver on loopback (clients/webhook_receiver.py,
verifying every signature) that, for `--flaky` seconds, fails 30% of requests at random,
a tenth of those after holding them 15 s (past the sender's timeout), then heals for
`--healed` seconds, while AdjustPoints calls make `--rate` events a second. The delivery lag
(loyalty_webhook_lag_seconds, from the server's metrics endpoint) is sampled every second.
It prints the worst lag while flaky, the lag at healing, how long after healing the lag was
back under 5 s for good, and whether every event arrived once with a valid signature.

`till`: the earn scenario's ratio to health (bench run's measure) with the delivery off
(LOYALTY_DELIVERY=off), on inside the server, and apart (the server off, `loyalty-ledger
deliver` as a process of its own), a webhook registered to a receiver that fails 30% of
requests and sometimes takes 15 s and every event flowing to it; servers alternate,
`--rounds` times.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc

from clients.webhook_receiver import Receiver
from loyalty.v1 import events_pb2, events_pb2_grpc, ledger_pb2, ledger_pb2_grpc, programs_pb2_grpc, webhooks_pb2

CLI = Path(sys.executable).parent / "loyalty-ledger"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Chaos:
    """The receiver's behaviour: while flaky, 30% of requests fail, a tenth of those after 15 s."""

    def __init__(self) -> None:
        self.flaky = True
        self.rng = random.Random(19)
        self.lock = threading.Lock()

    def __call__(self, _webhook_id: str) -> int | None:
        if not self.flaky:
            return None
        with self.lock:
            fail, slow = self.rng.random() < 0.3, self.rng.random() < 0.1
        if fail:
            if slow:
                time.sleep(15)
            return 500
        return None


def _start_server(extra_env: dict[str, str], metrics_port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [str(CLI), "serve", "--listen", f"127.0.0.1:{port}"]
    if metrics_port:
        command += ["--metrics-port", str(metrics_port)]
    env = {**os.environ, **extra_env, "LOYALTY_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        if re.search(r"serving on port (\d+)", line):
            break
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # type: ignore[union-attr]
    return server, f"127.0.0.1:{port}"


def _program() -> tuple[str, str]:
    out = subprocess.run([str(CLI), "program", "create", f"wh-bench-{random.randrange(10**6)}"],
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return out[0], out[1]


def _lag(metrics_port: int, webhook_id: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    match = re.search(rf'loyalty_webhook_lag_seconds{{webhook="{webhook_id}"}} ([0-9.e+-]+)', text)
    return float(match.group(1)) if match else None


def _load(target: str, key: str, rate: float, stop: threading.Event, made: list[int]) -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(target) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        for m in range(100):
            ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=f"m-{m}"), metadata=metadata)
            made[0] += 1
        n, started = 0, time.monotonic()
        while not stop.is_set():
            ledger.AdjustPoints(
                ledger_pb2.AdjustPointsRequest(
                    member_id=f"m-{n % 100}", idempotency_key=f"b-{n}-{random.randrange(10**9)}", points=1, reason="bench"
                ),
                metadata=metadata,
            )
            n += 1
            made[0] += 1
            time.sleep(max(0.0, started + n / rate - time.monotonic()))


def flaky(args) -> int:
    chaos = Chaos()
    got: dict[str, dict] = {}
    metrics_port = _free_port()
    _, key = _program()
    server, target = _start_server({}, metrics_port)
    channel = grpc.insecure_channel(target)
    metadata = (("authorization", f"Bearer {key}"),)
    receiver_port = _free_port()
    hook = programs_pb2_grpc.ProgramsStub(channel).CreateWebhook(
        webhooks_pb2.CreateWebhookRequest(url=f"http://127.0.0.1:{receiver_port}/hooks"), metadata=metadata
    ).webhook
    receiver = Receiver(("127.0.0.1", receiver_port), hook.signing_secret, lambda e, i: got.__setitem__(i, e), before=chaos)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    stop, made = threading.Event(), [0]
    load = threading.Thread(target=_load, args=(target, key, args.rate, stop, made), daemon=True)
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    load.start()
    healed_at = started + args.flaky
    end = healed_at + args.healed
    try:
        while time.monotonic() < end:
            if chaos.flaky and time.monotonic() >= healed_at:
                chaos.flaky = False
            lag = _lag(metrics_port, hook.webhook_id)
            if lag is not None:
                samples.append((time.monotonic() - started, lag))
            time.sleep(1.0)
        stop.set()
        load.join(timeout=30)
        wait_until = time.monotonic() + 120
        events = 0
        while time.monotonic() < wait_until:
            events = _count_events(channel, metadata)
            if len(got) >= events:
                break
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        receiver.shutdown()
    flaky_lags = [lag for t, lag in samples if t < args.flaky]
    at_heal = next((lag for t, lag in samples if t >= args.flaky), None)
    bad_after = [t for t, lag in samples if t >= args.flaky and lag >= 5.0]
    recovered = (max(bad_after) + 1.0 - args.flaky) if bad_after else 0.0
    report = {
        "events": events,
        "delivered_once": len(got),
        "duplicates_seen": receiver.duplicates,
        "bad_signatures": receiver.rejected,
        "rate_per_s": args.rate,
        "flaky_s": args.flaky,
        "healed_s": args.healed,
        "max_lag_while_flaky_s": round(max(flaky_lags), 1) if flaky_lags else None,
        "lag_at_heal_s": at_heal,
        "under_5s_for_good_after_heal_s": round(recovered, 1),
        "lag_samples": [(round(t), round(lag, 1)) for t, lag in samples],
    }
    print(json.dumps(report))
    return 0 if len(got) >= events and receiver.rejected == 0 else 1


def _count_events(channel, metadata) -> int:
    events, token = 0, ""
    stub = events_pb2_grpc.EventsStub(channel)
    while True:
        page = stub.ListEvents(events_pb2.ListEventsRequest(page_size=500, page_token=token), metadata=metadata)
        events += len(page.events)
        token = page.next_page_token
        if not token:
            return events


def till(args) -> int:
    from bench import runner
    from bench.scenarios import Context

    setup = json.loads(Path(args.setup).read_text())
    ctx = Context.from_setup(setup)
    ratios: dict[str, list[float]] = {"off": [], "on": [], "apart": []}
    chaos = Chaos()
    receiver_port = _free_port()
    secret_holder: list[str] = []
    receiver = None
    for round_ in range(args.rounds):
        for mode in ("off", "on", "apart"):
            server, target = _start_server({"LOYALTY_DELIVERY": "on" if mode == "on" else "off"})
            sender = None
            if mode == "apart":  # the recommended layout for busy tills: `loyalty-ledger deliver` on its own
                sender = subprocess.Popen([str(CLI), "deliver"], env={**os.environ, "LOYALTY_LOG_LEVEL": "WARNING"},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                if mode == "on" and receiver is None:
                    hook = programs_pb2_grpc.ProgramsStub(grpc.insecure_channel(target)).CreateWebhook(
                        webhooks_pb2.CreateWebhookRequest(url=f"http://127.0.0.1:{receiver_port}/hooks"),
                        metadata=ctx.metadata,
                    ).webhook
                    secret_holder.append(hook.signing_secret)
                    receiver = Receiver(("127.0.0.1", receiver_port), hook.signing_secret, lambda e, i: None, before=chaos)
                    threading.Thread(target=receiver.serve_forever, daemon=True).start()
                health = runner.run(target, "health", ctx, args.concurrency, args.duration, args.processes, server.pid)
                earn = runner.run(target, "earn", ctx, args.concurrency, args.duration, args.processes, server.pid)
                ratio = (len(earn.latencies_ms) / earn.duration_s) / (len(health.latencies_ms) / health.duration_s)
                ratios[mode].append(ratio)
                print(
                    json.dumps(
                        {
                            "round": round_,
                            "delivery": mode,
                            "earn_per_s": round(len(earn.latencies_ms) / earn.duration_s),
                            "health_per_s": round(len(health.latencies_ms) / health.duration_s),
                            "ratio": round(ratio, 3),
                            "server_cpu_ms_per_earn": round(1000 * (earn.server_cpu_s or 0) / max(1, len(earn.latencies_ms)), 3),
                        }
                    ),
                    flush=True,
                )
            finally:
                server.terminate()
                server.wait(timeout=60)
                if sender is not None:
                    sender.terminate()
                    sender.wait(timeout=60)
    if receiver is not None:
        print(json.dumps({"delivered_at_receiver": len(receiver.seen), "bad_signatures": receiver.rejected}))
        receiver.shutdown()
    print(json.dumps({mode: [round(r, 3) for r in values] for mode, values in ratios.items()}))
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("webhooks", help="webhook delivery: a flaky receiver's lag, and the till's ratio with delivery on/off")
    modes = parser.add_subparsers(dest="mode", required=True)
    f = modes.add_parser("flaky", help="lag under a receiver failing 30%% (sometimes 15 s), then healed")
    f.add_argument("--flaky", type=float, default=60.0, help="seconds of failures")
    f.add_argument("--healed", type=float, default=60.0, help="seconds after healing")
    f.add_argument("--rate", type=float, default=40.0, help="events a second (AdjustPoints)")
    f.set_defaults(run=flaky)
    t = modes.add_parser("till", help="earn's ratio to health, delivery on (to a flaky receiver) against off")
    t.add_argument("--setup", default="bench/out/setup.json")
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--duration", type=float, default=15.0)
    t.add_argument("--concurrency", type=int, default=64)
    t.add_argument("--processes", type=int, default=2)
    t.set_defaults(run=till)
