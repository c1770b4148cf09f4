"""An example webhook receiver: verifies each request's Standard Webhooks signature and
handles each event once.

    python -m clients.webhook_receiver --secret whsec_... [--listen 127.0.0.1:8080]
        [--seen-file seen.txt]

It prints each new event as a line of JSON. The ledger delivers at least once (a retry
after a lost answer, a sender restarted mid-flight, a RedeliverEvents): the `webhook-id`
header (the event_id) is the key to de-duplicate on, so an event seen before is answered
204 and not handled again. The ids seen are kept in memory and, with --seen-file, appended
to a file that is read back at start. A request whose signature does not verify, or whose
timestamp is more than 5 minutes off, is answered 401 and dropped.

Answer quickly (within the ledger's 10 s) and do slow work after answering: a slow answer
counts as a failed attempt and the event comes again.

The three lines that matter, in any web framework:

    from standardwebhooks.webhooks import Webhook
    event = Webhook(secret).verify(body, headers)   # raises WebhookVerificationError
    if headers["webhook-id"] not in seen: handle(event); seen.add(headers["webhook-id"])
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024


class Receiver(ThreadingHTTPServer):
    """A receiver on (host, port); on_event(event, webhook_id) is called once per new event.

    before: called first for each request (tests and the bench make endpoints fail or stall
    with it); a status it returns is answered at once, None carries on."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        secret: str,
        on_event: Callable[[dict[str, Any], str], None],
        seen_file: Path | None = None,
        before: Callable[[str], int | None] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.verifier = Webhook(secret)
        self.on_event = on_event
        self.before = before
        self.seen_file = seen_file
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.requests = 0
        self.duplicates = 0
        self.rejected = 0
        if seen_file is not None and seen_file.exists():
            self.seen.update(line.strip() for line in seen_file.read_text().splitlines() if line.strip())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/hooks/loyalty"

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer for one request."""
        try:
            event = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            return 401
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.lock:
            self.requests += 1
            if webhook_id in self.seen:
                self.duplicates += 1
                return 204
            self.seen.add(webhook_id)
            if self.seen_file is not None:
                with self.seen_file.open("a") as out:
                    out.write(webhook_id + "\n")
            self.on_event(event, webhook_id)
        return 204


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._answer(413)
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the sender went away mid-request (it will send the event again)
            self._answer(400)
            return
        webhook_id = self.headers.get("webhook-id") or ""
        if self.server.before is not None:
            forced = self.server.before(webhook_id)
            if forced is not None:
                self._answer(forced)
                return
        self._answer(self.server.receive(body, dict(self.headers.items())))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", required=True, help="the webhook's signing secret (whsec_...)")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    parser.add_argument("--seen-file", type=Path, help="keep the webhook-ids handled here across restarts")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")

    def show(event: dict[str, Any], webhook_id: str) -> None:
        print(json.dumps(event, separators=(",", ":")), flush=True)

    receiver = Receiver((host, int(port)), args.secret, show, args.seen_file)
    print(f"receiving webhooks at {receiver.url}", file=sys.stderr, flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
