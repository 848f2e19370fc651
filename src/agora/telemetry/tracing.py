"""OpenTelemetry traces, opt-in: off unless a tracer provider is configured, and then one trace follows a
job across nodes, its context carried in each invocation's `meta.trace` (W3C `traceparent`).

- `configure(provider)` turns tracing on for this process (a test passes an SDK provider with an in-memory
  exporter); `configure_otlp(endpoint)` builds one that exports over OTLP/HTTP (the node setting
  `otlp_endpoint`; needs `pip install agora[tracing]`); `configure(None)` turns it off again.
- `span(name, parent=carrier, kind=...)`: a span, the child of the current one or of a remote carrier; a
  no-op (and nothing imported) while tracing is off.
- `carrier()`: the current span's context to put in an outgoing invocation's `meta`, or None.

The opentelemetry packages are optional: without them tracing stays off and costs one `if`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from agora.errors import AgoraError

_state: dict[str, Any] = {"provider": None}  # this process's tracer provider (None: tracing off)
META_KEY = "trace"


def configure(provider: Any) -> None:
    """Trace with `provider` (an opentelemetry `TracerProvider`), or stop tracing with None."""
    _state["provider"] = provider


def enabled() -> bool:
    return _state["provider"] is not None


def configure_otlp(endpoint: str, *, service: str = "agora-node") -> Any:
    """A provider exporting to an OTLP/HTTP collector at `endpoint` (e.g. http://127.0.0.1:4318/v1/traces)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise AgoraError(
            "config_invalid",
            "otlp_endpoint is set but the OpenTelemetry exporter is not installed",
            hint="pip install 'agora[tracing]', or leave otlp_endpoint empty.",
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    configure(provider)
    return provider


def carrier() -> dict[str, str] | None:
    """The current span's W3C trace context, for an outgoing invocation's `meta.trace`."""
    if _state["provider"] is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    out: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(out)
    return out or None


@contextmanager
def span(
    name: str, *, parent: Mapping[str, Any] | None = None, kind: str = "internal", **attributes: Any
) -> Iterator[Any]:
    """A span (None while tracing is off). `parent`: a remote carrier (an incoming invocation's `meta.trace`);
    a malformed one is ignored (the span starts a trace of its own). `kind`: internal, client or server."""
    provider = _state["provider"]
    if provider is None:
        yield None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = None
    if isinstance(parent, Mapping):
        clean = {str(k): v for k, v in parent.items() if isinstance(v, str)}
        context = TraceContextTextMapPropagator().extract(clean)
    attrs = {k: v for k, v in attributes.items() if isinstance(v, str | int | float | bool)}
    tracer = provider.get_tracer("agora")
    with tracer.start_as_current_span(name, context=context, kind=SpanKind[kind.upper()], attributes=attrs) as s:
        yield s


__all__ = ["META_KEY", "carrier", "configure", "configure_otlp", "enabled", "span"]
