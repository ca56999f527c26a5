"""``/metrics``: the service in the Prometheus text format.

Counted as they happen (by the endpoints and the error handlers): decisions
by tenant and verdict, latency per governed call, answers by status (the
429s among them), store failures, expiries recorded, logs cosigned on the
``[witness]`` schedule and attempts that failed. Read at scrape time
from the ledger and the bounds: pending approvals per tenant, kill switches
engaged, requests in flight. A scrape only reads; it never records expiries.

Who may scrape: a caller on the loopback interface (a Prometheus beside the
service), or a key whose role is ``admin`` or ``auditor``. Anyone else is
refused like any other request (recorded within the refusal budget). Behind
a reverse proxy on the same host every caller is loopback: give the proxy a
rule for ``/metrics``, or scrape with a key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import ExoArmurError, StoreError
from ..model.decision import Outcome
from ..model.event import APPROVAL_REQUESTED, SETTLED, SYSTEM_LOG
from ..pipeline import Governor
from .access import Caller
from .auth import authenticated, bearer
from .limits import InFlight
from .witnessing import WitnessLoop

logger = logging.getLogger("exoarmur.server")

router = APIRouter(include_in_schema=False)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: roles whose keys may scrape from anywhere
SCRAPER_ROLES: Final = frozenset({"admin", "auditor"})
LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})
#: seconds: from a cached read to a governed execution over the network
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
#: appends per group commit: 1 is a commit alone, the store's bound is 512
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _Ledger(Collector):
    """What the ledger and the bounds say at scrape time."""

    def __init__(self, governor: Governor, state: Any) -> None:
        self.governor = governor
        self.state = state

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "exoarmur_in_flight",
            "Requests being served now, by kind (the bounded queue; 429 past its bound).",
            labels=["kind"],
        )
        bounds = GaugeMetricFamily(
            "exoarmur_in_flight_bound", "The in-flight bound, by kind.", labels=["kind"]
        )
        for kind, attr in (("write", "write_slots"), ("read", "read_slots")):
            slots: InFlight | None = getattr(self.state, attr, None)
            if slots is not None:
                in_flight.add_metric([kind], slots.count)
                bounds.add_metric([kind], slots.bound)
        yield in_flight
        yield bounds
        witnessing: WitnessLoop | None = getattr(self.state, "witnessing", None)
        if witnessing is not None:
            cosignings = CounterMetricFamily(
                "exoarmur_witness_cosignings",
                "Logs brought to the witnesses on the [witness] schedule, by result.",
                labels=["result"],
            )
            cosignings.add_metric(["stored"], witnessing.cosigned)
            cosignings.add_metric(["failed"], witnessing.failed)
            yield cosignings
        try:
            pending, switches = self._ledger_state()
        except ExoArmurError as exc:
            metrics: Metrics | None = getattr(self.state, "metrics", None)
            if metrics is not None:
                metrics.store_failed(exc)
            logger.error("metrics: the ledger could not be read: %s", exc)
            return
        yield pending
        yield switches

    def _ledger_state(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        store = self.governor.ledger.store
        pending = GaugeMetricFamily(
            "exoarmur_pending_approvals", "Intents waiting for approval.", labels=["tenant"]
        )
        for tenant in store.tenants():
            if tenant != SYSTEM_LOG:
                waiting = store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED)
                pending.add_metric([tenant], len(waiting))
        switches = GaugeMetricFamily(
            "exoarmur_killswitches_engaged", "Kill switches engaged, in every log."
        )
        switches.add_metric([], len(self.governor.killswitches(None)))
        return pending, switches


class Metrics:
    """The service's metrics, in a registry of its own (one per app, so tests stay apart)."""

    def __init__(self, governor: Governor, state: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # First, so that a store failure met while collecting is in this very scrape's count.
        self.registry.register(_Ledger(governor, state))
        self.decisions = Counter(
            "exoarmur_decisions",
            "Submitted intents by tenant, policy verdict and outcome status.",
            ["tenant", "verdict", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "exoarmur_stage_seconds",
            "Seconds per governed call as the service waited for it (submit, vote), and "
            "per stage inside the governor (decide, gate, append, execute).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "exoarmur_http_responses",
            "Answers by status code (429: refused at the in-flight bound).",
            ["status"],
            registry=self.registry,
        )
        self.store_errors = Counter(
            "exoarmur_store_errors",
            "Ledger store failures met by the service.",
            registry=self.registry,
        )
        self.commits = Histogram(
            "exoarmur_commit_appends",
            "Appends made durable per group commit of the ledger store.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.expiries = Counter(
            "exoarmur_expiries",
            "Pending intents recorded as expired by the service.",
            ["tenant"],
            registry=self.registry,
        )

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.latency.labels(stage).observe(time.perf_counter() - started)

    # The governor's observer (advice: see exoarmur.governor.observing).

    def stage_timed(self, stage: str, seconds: float) -> None:
        self.latency.labels(stage).observe(seconds)

    def batch_committed(self, appends: int) -> None:
        self.commits.observe(appends)

    def decided(self, outcome: Outcome) -> None:
        self.decisions.labels(
            outcome.tenant, outcome.decision.verdict.value, outcome.status.value
        ).inc()

    def answered(self, status: int) -> None:
        self.responses.labels(str(status)).inc()

    def store_failed(self, exc: BaseException) -> None:
        if isinstance(exc, StoreError):
            self.store_errors.inc()

    def expired(self, tenant: str, count: int) -> None:
        if count:
            self.expiries.labels(tenant).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_of(request: Request) -> Metrics:
    found: Metrics = request.app.state.metrics
    return found


def _scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Dependency: loopback callers scrape freely; others need an admin's or auditor's key."""
    host = request.client.host if request.client else ""
    if host in LOOPBACK and credentials is None:
        return
    caller: Caller = authenticated(request, credentials)
    if caller.principal.role not in SCRAPER_ROLES:
        caller.refuse(None, f"role {caller.principal.role} may not read the metrics")


@router.get("/metrics", dependencies=[Depends(_scraper)])
def scrape(request: Request) -> Response:
    return Response(metrics_of(request).render(), media_type=CONTENT_TYPE)
