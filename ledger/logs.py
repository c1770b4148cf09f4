"""Structured logging: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

from ledger import settings

try:  # the `otel` extra: a call's log line names its trace
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - tracing not installed
    _trace = None

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,  # several server processes share one stderr (serve --processes N)
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if _trace is not None:
            span = _trace.get_current_span().get_span_context()
            if span.is_valid:
                line["trace_id"] = format(span.trace_id, "032x")
                line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level()).upper())
    # Alembic logs every migration step at INFO; keep it but only for our own migrate runs.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
