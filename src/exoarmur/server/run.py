"""Running the API: open the governor, serve it with uvicorn, close it on shutdown.

``serve`` is what ``exoarmur serve`` calls: it blocks until SIGINT or SIGTERM,
lets the requests in flight finish (up to a grace period), closes the
governor (releasing the data directory's run lock) and returns. The
:class:`Service` is the same in pieces, for embedding and tests: ``run()``
it in a thread, ``stop()`` it from another.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ..home import Home, open_governor
from ..pipeline import Governor
from .app import create_app
from .limits import Limits

logger = logging.getLogger("exoarmur.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8077
#: seconds in-flight requests get to finish once shutdown starts
GRACE_SECONDS = 10
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def service_logging(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, with ExoArmur's server log on the same stream."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["exoarmur"] = {"handlers": ["default"], "level": level.upper()}
    return config


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal only stops it.

    uvicorn re-raises SIGINT/SIGTERM once it has shut down, which would end
    the process before the governor is closed. Here the signal means: finish
    the requests in flight, return from ``run``, let the caller close.
    """

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
    ) -> None:
        self.governor = governor
        config = uvicorn.Config(
            create_app(governor, limits=limits),
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config,
            access_log=access_log,
            ws="none",  # nothing here speaks websockets
            lifespan="off",  # the governor is opened and closed around the server
            proxy_headers=False,  # trust no X-Forwarded-* header unless deployed to
            server_header=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self.server = _Server(config)

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

    def run(self) -> None:
        """Serve until stopped; close the governor however it ends."""
        try:
            self.server.run()
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
) -> None:
    """Open the governor of ``home`` and serve the API until SIGINT or SIGTERM."""
    governor = open_governor(home)
    try:
        service = Service(
            governor,
            host=host,
            port=port,
            limits=limits,
            log_level=log_level,
            log_config=service_logging(log_level),
        )
    except BaseException:
        governor.close()
        raise
    logger.info("serving %s on http://%s:%d", governor.ledger.key.name, host, port)
    service.run()
