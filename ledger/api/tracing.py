"""OpenTelemetry tracing, optional (`pip install 'loyalty-ledger[otel]'`).

When configured, every loyalty.v1 call is a server span (opentelemetry-instrumentation-grpc)
and every SQL statement it runs a child span (opentelemetry-instrumentation-sqlalchemy, installed
by ledger.store.statement_tracing): the worker thread runs in a copy of the call's context
(ledger.api.admission), so the statements nest under their call. The JSON log line of a call carries its `trace_id` (ledger.logs).

Spans go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with OpenTelemetry's standard variables for
everything else (`OTEL_SERVICE_NAME`, headers, sampling); without it, tracing stays off and
costs nothing.
"""

from __future__ import annotations

import os


OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class TracingUnavailable(ValueError):
    """OTLP export was asked for but the `otel` extra is not installed."""


def wanted() -> bool:
    return any(os.environ.get(name) for name in OTLP_VARIABLES)


def check_installed() -> None:
    """TracingUnavailable when OTLP export is asked for and the `otel` extra is missing."""
    if wanted():
        try:
            import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
            import opentelemetry.instrumentation.grpc  # noqa: F401
            import opentelemetry.instrumentation.sqlalchemy  # noqa: F401
        except ImportError as error:
            raise TracingUnavailable(
                f"{OTLP_VARIABLES[0]} is set but OpenTelemetry is not installed: pip install 'loyalty-ledger[otel]'"
            ) from error


def provider_from_environment():
    """A TracerProvider exporting over OTLP/gRPC as OpenTelemetry's variables say."""
    check_installed()
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "loyalty-ledger")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # for any other library that traces in this process
    return provider


def server_interceptors(provider) -> list:
    """The gRPC server interceptors that make each call a span of provider's (install them in
    grpc.aio.server(interceptors=...); ledger.store.statement_tracing adds the statements)."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=provider)]
