"""OpenTelemetry spans around the service's governed calls (the optional ``otel`` extra).

One span per stage the service can see (``exoarmur.submit``, ``exoarmur.vote``),
a child of the caller's trace when a W3C ``traceparent`` header comes in, with
the tenant, intent, verdict and outcome as attributes. Spans go to the tracer
provider on ``app.state.tracer_provider`` when one is set (embedding, tests),
else to the global one, which ``exoarmur serve`` configures from the standard
``OTEL_TRACES_EXPORTER`` variable when the SDK is installed. Without the
OpenTelemetry API nothing is traced and nothing fails.

Inside a submission the governor's stages (``exoarmur.decide``, ``.gate``,
``.append``, ``.execute``) are child spans, made by :class:`StageSpans` from
the timings the governor tells its observers, in the thread that did the work:
intents decided in one batch share the decision of the one that led it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from fastapi import Request

logger = logging.getLogger("exoarmur.server")

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the API comes with FastAPI; kept optional on purpose
    trace = None  # type: ignore[assignment]
    propagate = None  # type: ignore[assignment]

TRACER = "exoarmur.server"


class Stage:
    """An open span, or nothing: attributes set on it are dropped when not traced."""

    def __init__(self, span: Any | None) -> None:
        self._span = span

    def note(self, **attributes: str | int | None) -> None:
        if self._span is None:
            return
        for name, value in attributes.items():
            if value is not None:
                self._span.set_attribute(f"exoarmur.{name}", value)


@contextlib.contextmanager
def stage(request: Request, name: str, **attributes: str | int | None) -> Iterator[Stage]:
    """A span named ``exoarmur.<name>``, continuing the caller's trace if it sent one."""
    if trace is None or propagate is None:  # pragma: no cover - see the import above
        yield Stage(None)
        return
    provider = getattr(request.app.state, "tracer_provider", None)
    tracer = trace.get_tracer(TRACER, tracer_provider=provider)
    parent = propagate.extract(dict(request.headers))
    with tracer.start_as_current_span(
        f"exoarmur.{name}", context=parent, kind=trace.SpanKind.SERVER
    ) as span:
        traced = Stage(span if span.is_recording() else None)
        traced.note(**attributes)
        yield traced


class StageSpans:
    """A governor observer: each timed stage as a span under the span current in its thread.

    Only inside a recording span (a traced request): stages of untraced work
    (recovery, expiry) make no spans of their own.
    """

    def __init__(self, state: Any) -> None:
        self._state = state  # app.state: its tracer provider may be set after the app is built

    def stage_timed(self, stage: str, seconds: float) -> None:
        if trace is None or not trace.get_current_span().is_recording():
            return
        provider = getattr(self._state, "tracer_provider", None)
        tracer = trace.get_tracer(TRACER, tracer_provider=provider)
        ended = time.time_ns()
        span = tracer.start_span(f"exoarmur.{stage}", start_time=ended - int(seconds * 1e9))
        span.end(end_time=ended)

    def batch_committed(self, appends: int) -> None:
        """Group commits belong to no one request: they are counted, not traced."""


def configure_from_environment() -> bool:
    """Export spans as ``OTEL_TRACES_EXPORTER`` says (``console`` or ``otlp``); True if set up.

    Needs the ``otel`` extra (the SDK); ``otlp`` also needs
    ``opentelemetry-exporter-otlp-proto-http``. Unset or ``none``: no export.
    """
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if chosen in ("", "none"):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError as exc:
        raise ValueError(
            "OTEL_TRACES_EXPORTER is set but the SDK is missing: pip install 'exoarmur[otel]'"
        ) from exc
    exporter: SpanExporter
    if chosen == "console":
        exporter = ConsoleSpanExporter()
    elif chosen == "otlp":
        try:
            # Not a dependency of the extra: imported by name, only when asked for.
            otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError as exc:
            raise ValueError(
                "OTEL_TRACES_EXPORTER=otlp needs pip install opentelemetry-exporter-otlp-proto-http"
            ) from exc
        exporter = otlp.OTLPSpanExporter()
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER: must be console, otlp or none, not {chosen!r}")
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "exoarmur")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    assert trace is not None
    trace.set_tracer_provider(provider)
    logger.info("exporting traces to %s", chosen)
    return True
