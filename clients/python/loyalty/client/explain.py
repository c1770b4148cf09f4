"""`python -m loyalty.client.explain`: the rich details of a refusal printed by `buf curl`.

buf curl prints a failed call's status as JSON with each detail base64-encoded; this reads
that JSON (on stdin, or a file) and prints the status, the ErrorInfo reason and metadata,
and every BadRequest field violation, one per line:

    buf curl ... 2>&1 | .venv/bin/python -m loyalty.client.explain
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from google.rpc import error_details_pb2

_DETAILS = {
    "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    "google.rpc.BadRequest": error_details_pb2.BadRequest,
}


def explain(status: dict[str, Any]) -> list[str]:
    """The lines that say what a status (buf curl's JSON of it) means."""
    lines = [f"{status.get('code', '?').upper()}: {status.get('message', '')}"]
    for detail in status.get("details", ()):
        kind = detail.get("type", "")
        message_class = _DETAILS.get(kind)
        if message_class is None:
            lines.append(f"  ({kind})")
            continue
        raw = detail.get("value", "")
        message = message_class.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        if isinstance(message, error_details_pb2.ErrorInfo):
            lines.append(f"  reason: {message.reason} ({message.domain})")
            lines.extend(f"  {key}: {value}" for key, value in sorted(message.metadata.items()))
        else:
            lines.extend(f"  field {v.field}: {v.description}" for v in message.field_violations)
    return lines


def _status_json(text: str) -> dict[str, Any]:
    """The JSON object in text (buf curl may print other lines around it)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no status JSON found")
    status = json.loads(text[start : end + 1])
    if not isinstance(status, dict):
        raise ValueError("no status JSON found")
    return status


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = Path(args[0]).read_text() if args else sys.stdin.read()
    try:
        status = _status_json(text)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(explain(status)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
