"""OpenTelemetry: a call is a server span, its SQL statements are child spans in the same
trace, and the call's JSON log line names that trace (in-memory span exporter, PostgreSQL)."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ledger import logs
from ledger.api import server as grpc_server
from ledger.api import tracing
from ledger.service import programs
from ledger.store import migrate, statement_tracing
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from tests.conftest import Api
from tests.databases import postgres_database
from tests.grpc_helpers import earn, enroll


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def traced_server():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with postgres_database() as url:
        db = Database(create_engine_for(url, pool_size=4))
        migrate.upgrade(db.engine)
        created = programs.create_program(db, "traced")
        statement_tracing.instrument(db, provider)
        running = grpc_server.start(
            db, "127.0.0.1:0", max_workers=4, interceptors=tuple(tracing.server_interceptors(provider))
        )
        try:
            yield Api(f"127.0.0.1:{running.port}", created.admin_key), exporter
        finally:
            running.stop(1)
            db.dispose()


def test_a_call_and_its_statements_are_one_trace_named_in_the_log(traced_server):
    api, exporter = traced_server
    lines = _Lines()
    calls = logging.getLogger("ledger.calls")
    calls.addHandler(lines)
    level = calls.level
    calls.setLevel(logging.INFO)
    try:
        enroll(api, "m-traced")
        exporter.clear()
        earn(api, "m-traced", 2599)
    finally:
        calls.setLevel(level)
        calls.removeHandler(lines)
        api.close()
    spans = exporter.get_finished_spans()
    [call] = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "/loyalty.v1.Ledger/Earn"]
    statements = [s for s in spans if s.kind is SpanKind.CLIENT and s.attributes.get("db.system") == "postgresql"]
    assert statements, [s.name for s in spans]
    assert {s.context.trace_id for s in statements} == {call.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == call.context.span_id for s in statements)
    [line] = [line for line in lines.lines if line.get("rpc") == "Ledger.Earn"]
    assert line["trace_id"] == format(call.context.trace_id, "032x")
    assert line["code"] == "OK"
