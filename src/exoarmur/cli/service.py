"""``exoarmur serve``: the HTTP service."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_GRACE_EXPIRED,
    current_home,
    errors,
    fail,
)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8077,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds running executions get to finish once stopped "
            "(default: [server] grace_seconds in config.toml, else 30).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="text or json (one object per line).")
    ] = "text",
    log_level: Annotated[
        str, typer.Option("--log-level", help="critical, error, warning, info or debug.")
    ] = "info",
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Run the authenticated HTTP API and the operator console (/console) on this data directory.

    On SIGTERM or SIGINT: new submissions are refused (503), running executions
    finish and are recorded, then it exits 0. If they outlast the grace, it says
    so on stderr and exits 6 at once (their outcome is recorded as unknown at the
    next start). If the address is taken it says so and exits 8, serving nothing.
    """
    with errors():
        try:
            from ..server import serve as run_server
            from ..server.run import EXIT_ADDRESS_IN_USE, AddressInUse, GraceExpired
        except ImportError:
            fail("the HTTP service needs its extra: pip install 'exoarmur[server]'", EXIT_FAILURE)
        home = current_home(ctx)
        home.require()
        try:
            run_server(
                home,
                host=host,
                port=port,
                grace_seconds=grace,
                log_format=log_format,
                log_level=log_level,
                tls_cert=tls_cert,
                tls_key=tls_key,
            )
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except AddressInUse as exc:
            fail(str(exc), EXIT_ADDRESS_IN_USE)
        except GraceExpired as exc:
            # Loud, then gone: waiting on would let the executions outlive the
            # operator's deadline, and closing the ledger under them would cut them.
            sys.stderr.write(f"\nEXOARMUR STOPPED WITH EXECUTIONS RUNNING: {exc}\n")
            sys.stderr.flush()
            os._exit(EXIT_GRACE_EXPIRED)


def register(app: typer.Typer) -> None:
    """Mount this module's top-level commands on the root application."""
    app.command()(serve)
