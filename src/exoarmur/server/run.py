"""Running the API: open the governor, serve it with uvicorn, close it on shutdown.

``serve`` is what ``exoarmur serve`` calls: it blocks until SIGINT or SIGTERM,
then stops taking new work (new submissions and votes are answered 503),
lets the running ones finish and record their outcomes (up to a grace
period), closes the governor (releasing the data directory's run lock) and
returns. The ledger is never closed under a running execution: when the
grace runs out first, :class:`GraceExpired` is raised with the governor left
open, and ``exoarmur serve`` says so on stderr and exits at once with code 6
(the next start records the cut executions as ``outcome_unknown``). The
:class:`Service` is the same in pieces, for embedding and tests: ``run()`` it
in a thread, ``stop()`` it from another.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ..errors import ExoArmurError
from ..home import STORE_ENV, Home, open_governor, resolve_home
from ..integrations.claude_code import tool_classes
from ..integrations.slack import SlackSettings
from ..integrations.slack_messages import HttpSlackApi, SlackMessages
from ..integrations.webhooks import HttpTransport, Outbox, OutboxLoop
from ..integrations.webhooks import load as load_webhooks
from ..integrations.webhooks.outbox import Pass
from ..pipeline import Governor
from . import slack as slack_approvals
from . import tracing
from .app import create_app
from .audit import RefusalAudit
from .expiry import ExpiryLoop
from .limits import Limits
from .settings import DEFAULT_GRACE_SECONDS, RefusalBudget, ServiceSettings, check_grace
from .witnessing import WitnessLoop, WitnessSchedule

logger = logging.getLogger("exoarmur.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8077
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: ``exoarmur serve``'s exit code when the address is taken (6: executions outlived the grace)
EXIT_ADDRESS_IN_USE = 8
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class GraceExpired(ExoArmurError):
    """Governed work still ran when the grace ran out; the governor was left open."""


class AddressInUse(ExoArmurError):
    """Another process listens on the address: nothing was served, nothing recorded."""


def service_logging(level: str = "info", log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration, with ExoArmur's server log on the same stream.

    Every line names the request it was written for (``request_id``, ``-``
    outside one). ExoArmur writes the access log itself (``exoarmur.access``,
    with the request id), so uvicorn's own is off. ``json``: one object per line.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"--log-format: must be one of {', '.join(LOG_FORMATS)}")
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level: must be one of {', '.join(LOG_LEVELS)}")
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": "exoarmur.server.requestlog.RequestIdFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    if log_format == "json":
        json_formatter = {"()": "exoarmur.server.requestlog.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": json_formatter}
    else:
        config["formatters"]["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
    config["loggers"]["exoarmur"] = {"handlers": ["default"], "level": level.upper()}
    config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now, so that a taken port is said before anything else."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(
                f"{host}:{port} is already in use by another process; stop it or choose "
                "another port (exoarmur serve --port PORT)"
            ) from exc
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal only stops it.

    uvicorn re-raises SIGINT/SIGTERM once it has shut down, which would end
    the process before the governor is closed. Here the signal means: finish
    the requests in flight, return from ``run``, let the caller close.
    ``on_stop`` runs when shutdown begins, before uvicorn stops listening.
    """

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._on_stop()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Service:
    """One governor served by one uvicorn server. The service closes the governor."""

    def __init__(
        self,
        governor: Governor,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        limits: Limits | None = None,
        log_level: str = "info",
        log_config: dict[str, Any] | None = None,
        access_log: bool = True,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        refusals: RefusalBudget | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        witness: WitnessSchedule | None = None,
    ) -> None:
        self.governor = governor
        self.grace_seconds = check_grace(grace_seconds, "grace_seconds")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        self.tls = tls_cert is not None
        self.app = create_app(governor, limits=limits, refusals=refusals, tls=self.tls)
        self._stop_deadline: float | None = None
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config,
            access_log=access_log,
            ws="none",  # nothing here speaks websockets
            lifespan="off",  # the governor is opened and closed around the server
            proxy_headers=False,  # trust no X-Forwarded-* header unless deployed to
            server_header=False,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            # uvicorn waits this long for answers; the governor's drain bounds the rest
            timeout_graceful_shutdown=max(1, math.ceil(self.grace_seconds)),
        )
        self.server = _Server(config, self._stopping)
        self.expiry = ExpiryLoop(governor)
        #: cosigns every log on the ``[witness]`` schedule, when one is configured
        self.witnessing = None if witness is None else WitnessLoop(governor.ledger, witness)
        self.app.state.witnessing = self.witnessing  # /metrics counts what it did
        #: delivers what the ledger owes the configured webhooks, when any is configured
        self.outbox: OutboxLoop | None = None

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when started with port 0)."""
        for server in getattr(self.server, "servers", []):  # set once it has started
            for sock in server.sockets:
                port: int = sock.getsockname()[1]
                return port
        raise RuntimeError("the service is not listening")

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped (on ``sockets`` when given, already bound); then close the
        governor, once nothing governed runs.

        Raises :class:`GraceExpired` (the governor left open) when governed
        work still runs after the grace.
        """
        self.expiry.start()
        if self.witnessing is not None:
            self.witnessing.start()
        if self.outbox is not None:
            self.outbox.start()
        try:
            self.server.run(sockets=sockets)
        finally:
            self._close()

    def _stopping(self) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.grace_seconds
            self.app.state.stopping = True
            if self.governor.in_flight:
                logger.warning(
                    "stopping: %d governed call(s) running, waiting up to %g s for their outcomes",
                    self.governor.in_flight,
                    self.grace_seconds,
                )

    def _close(self) -> None:
        self._stopping()
        self.expiry.stop()
        if self.witnessing is not None:
            self.witnessing.stop()
        if self.outbox is not None:
            self.outbox.stop()
        assert self._stop_deadline is not None
        remaining = max(0.0, self._stop_deadline - time.monotonic())
        if not self.governor.drain(remaining):
            raise GraceExpired(
                f"{self.governor.in_flight} governed call(s) still running after the "
                f"{self.grace_seconds:g} s grace; the ledger was left open under them and "
                "the process must stop now: the next start records each execution cut short "
                "as outcome_unknown (raise the grace: exoarmur serve --grace SECONDS, or "
                "[server] grace_seconds in config.toml)"
            )
        refusals: RefusalAudit = self.app.state.refusals
        try:
            refusals.flush()
        finally:
            self.governor.close()
            logger.info("governor closed")

    def stop(self) -> None:
        """Finish the requests in flight and return from :meth:`run`."""
        self.server.should_exit = True


def serve(
    home: Home | Path | None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    limits: Limits | None = None,
    log_level: str = "info",
    log_format: str = "text",
    grace_seconds: float | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Open the governor of ``home`` and serve the API until SIGINT or SIGTERM.

    ``grace_seconds`` overrides ``[server] grace_seconds`` of ``config.toml``.
    Raises :class:`AddressInUse` before opening anything when the port is
    taken, :class:`GraceExpired` when running executions outlast the grace.
    """
    where = home if isinstance(home, Home) else Home(resolve_home(home), _store_url())
    settings = ServiceSettings.from_config(where.config())
    if grace_seconds is not None:
        settings = replace(settings, grace_seconds=check_grace(grace_seconds, "--grace"))
    log_config = service_logging(log_level, log_format)
    tracing.configure_from_environment()
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"no such TLS file: {path}")
    listening = bind(host, port)
    try:
        governor = open_governor(where)
    except BaseException:
        listening.close()
        raise
    try:
        service = Service(
            governor,
            host=host,
            port=port,
            limits=limits,
            log_level=log_level,
            log_config=log_config,
            access_log=False,  # exoarmur.access writes it, with the request id
            grace_seconds=settings.grace_seconds,
            refusals=settings.refusals,
            tls_cert=tls_cert,
            tls_key=tls_key,
            witness=settings.witness,
        )
        service.app.state.hook_classes = tool_classes(where.config())
        service.app.state.public_url = settings.public_url
        slack = SlackSettings.from_config(where.config())
        slack_approvals.install(service.app, slack)
        webhooks = load_webhooks(where.path)
        passes: list[Pass] = []
        if webhooks:
            passes.append(
                Outbox(governor, webhooks, HttpTransport(), public_url=settings.public_url)
            )
        if slack is not None and slack.channel is not None and slack.bot_token_env is not None:
            api = HttpSlackApi(slack.api_url, slack.bot_token_env)
            passes.append(
                SlackMessages(governor, api, slack.channel, public_url=settings.public_url)
            )
        if passes:
            service.outbox = OutboxLoop(passes[0], more=passes[1:])
        governor.record_service(settings.to_canonical())
    except BaseException:
        listening.close()
        governor.close()
        raise
    scheme = "https" if service.tls else "http"
    logger.info("serving %s on %s://%s:%d", governor.ledger.key.name, scheme, host, port)
    try:
        service.run(sockets=[listening])
    finally:
        listening.close()


def _store_url() -> str | None:
    return os.environ.get(STORE_ENV) or None
