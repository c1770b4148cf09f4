"""OpenTelemetry spans for the database's statements (the `otel` extra): a child span per SQL
statement, under the span of the call that runs it (ledger.api.tracing makes that one)."""

from __future__ import annotations

from ledger.store.database import Database


def instrument(db: Database, provider) -> None:
    """Traces db's statements with provider."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    # The instrumentation's own engine tracer, for this engine alone: its instrumentor would
    # also patch create_engine process-wide and wants the asyncio extra (greenlet), and
    # declares SQLAlchemy < 2.1 while only hooking the cursor events that 2.1 keeps.
    usage = get_meter("ledger.store").create_up_down_counter("db.client.connections.usage", unit="connections")
    EngineTracer(provider.get_tracer("ledger.store"), db.engine, usage)
