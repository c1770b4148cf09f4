"""An example consumer of the ledger's events from NATS JetStream (the relay of
`LOYALTY_NATS_URL`, README "Webhooks and NATS").

    python -m clients.nats_consumer --url nats://127.0.0.1:4222 --durable crm \\
        [--subject 'loyalty.*.points.earned'] [--stream LOYALTY]

A durable pull consumer: JetStream keeps its position under the durable name, so a consumer
stopped and started again carries on where it stopped. Each message is the event in proto3
JSON (as ListEvents shows it), on subject `loyalty.<program_id>.<type>`, with header
`Nats-Msg-Id` = event_id. It prints each new event as a line of JSON and acknowledges it
after handling it; a message handled but not acknowledged (a crash in between) comes again,
so it de-duplicates by Nats-Msg-Id (in memory here; keep the ids, or make the handling
idempotent, in a real consumer). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import nats
from nats.errors import TimeoutError as NatsTimeout


async def consume(url: str, stream: str, durable: str, subject: str, limit: int = 0) -> int:
    """Prints events until stopped (or `limit` of them, when not 0); returns how many."""
    nc = await nats.connect(url)
    seen: set[str] = set()
    handled = 0
    try:
        js = nc.jetstream()
        subscription = await js.pull_subscribe(subject, durable=durable, stream=stream)
        while limit == 0 or handled < limit:
            try:
                messages = await subscription.fetch(100, timeout=1.0)
            except NatsTimeout:
                continue
            for message in messages:
                event_id = (message.headers or {}).get("Nats-Msg-Id", "")
                if event_id not in seen:
                    seen.add(event_id)
                    print(json.dumps(json.loads(message.data), separators=(",", ":")), flush=True)
                    handled += 1
                await message.ack()
    finally:
        await nc.close()
    return handled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="LOYALTY")
    parser.add_argument("--durable", required=True, help="the consumer's name: JetStream keeps its position")
    parser.add_argument("--subject", default="loyalty.>", help="e.g. loyalty.<program_id>.> or loyalty.*.tier.changed")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many events (0: never)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(consume(args.url, args.stream, args.durable, args.subject, args.limit))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
