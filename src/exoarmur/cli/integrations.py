"""``exoarmur mcp proxy`` and ``exoarmur hook claude-code``: agents' own tool calls, governed.

``exoarmur.cli`` mounts :func:`register`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, ExoArmurError, InputError, PermissionDenied
from ..model.intent import TENANT_PATTERN
from ._common import api_key_of, current_home, errors

mcp_app = typer.Typer(help="Govern an MCP server's tool calls (a proxy in front of it).")
hook_app = typer.Typer(help="Answer coding agents' tool hooks (Claude Code PreToolUse).")

#: seconds; see mcp_proxy (benchmarks/bench_mcp.py measures the difference)
_SWITCH_INTERVAL = 0.0002
TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="The tenant the calls act in.")]
AgentKeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", help="File holding the agent's API key (else $EXOARMUR_API_KEY)."),
]
ProxyKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File holding the agent's API key (else $EXOARMUR_API_KEY); "
        "with --listen each client sends its own.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")
    app.add_typer(hook_app, name="hook")


@mcp_app.command(
    "proxy", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def mcp_proxy(
    ctx: typer.Context,
    tenant: TenantOption,
    command: Annotated[
        list[str] | None, typer.Argument(help="The upstream MCP server to run: -- CMD ARGS...")
    ] = None,
    key_file: ProxyKeyFile = None,
    upstream_url: Annotated[
        str | None, typer.Option("--upstream-url", help="An upstream over streamable HTTP.")
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Serve the client over streamable HTTP at HOST:PORT."),
    ] = None,
    stateless: Annotated[
        bool, typer.Option("--stateless/--sessions", help="With --listen: no sticky sessions.")
    ] = True,
    server: Annotated[
        str | None,
        typer.Option("--server", help="The server's name in actions mcp.<server>.<tool>."),
    ] = None,
    map_file: Annotated[
        Path | None, typer.Option("--map", help="TOML mapping of tools (like config [mcp]).")
    ] = None,
    hold: Annotated[
        float | None,
        typer.Option("--hold", help="Seconds a call waiting for approval is held (default 20)."),
    ] = None,
) -> None:
    """Speak MCP to the client, run the real server upstream, govern every tools/call."""
    from ..home import open_governor

    with errors():
        try:
            import anyio

            from ..integrations.mcp.mapping import load_settings
            from ..integrations.mcp.proxy import may_submit
            from ..integrations.mcp.transport import Upstream, serve_http, serve_stdio
        except ImportError as exc:  # pragma: no cover - the extra is part of dev
            raise ConfigError(
                f"the MCP proxy needs the mcp extra: pip install 'exoarmur[mcp]' ({exc})"
            ) from None
        _check_tenant(tenant)
        if bool(command) == bool(upstream_url):
            raise InputError("upstream: give either -- CMD ARGS… or --upstream-url, not both")
        address = _address(listen) if listen is not None else None
        home = current_home(ctx)
        settings = load_settings(tenant, home.config(), map_file, server=server, hold_seconds=hold)
        upstream = Upstream(command=tuple(command or ()), url=upstream_url)
        if address is not None and key_file is not None:
            raise InputError(
                "--key-file: with --listen every client authenticates with its own key "
                "(Authorization: Bearer <api key>), and that key's principal is the actor"
            )
        api_key = api_key_of(key_file) if address is None else ""
        with open_governor(home) as governor:
            # Every call hops between the event loop and a governor thread; at the
            # default 5 ms switch interval each hop can wait that long for the GIL.
            sys.setswitchinterval(_SWITCH_INTERVAL)
            if address is None:
                principal = governor.authenticate(api_key)
                if not may_submit(principal, tenant):
                    raise PermissionDenied(
                        f"principal {principal.name} may not submit intents in tenant {tenant}"
                    )
                anyio.run(serve_stdio, governor, principal, settings, upstream)
            else:
                host, port = address
                anyio.run(
                    lambda: serve_http(
                        governor, settings, upstream, host=host, port=port, stateless=stateless
                    )
                )


@hook_app.command("claude-code")
def hook_claude_code(
    ctx: typer.Context, tenant: TenantOption, key_file: AgentKeyFile = None
) -> None:
    """Read a PreToolUse hook's JSON on stdin; print allow / deny / ask in the hook's format.

    Any error exits 2, which Claude Code takes as: block the tool, show stderr.
    """
    from ..home import open_governor
    from ..integrations.claude_code import decide_hook, tool_classes
    from ..jsontext import loads

    try:
        _check_tenant(tenant)
        document = loads(sys.stdin.buffer.read())
        home = current_home(ctx)
        classes = tool_classes(home.config())
        api_key = api_key_of(key_file)
        with open_governor(home) as governor:
            principal = governor.authenticate(api_key)
            answer = decide_hook(governor, principal, tenant, document, classes)
    except Exception as exc:  # fail closed: only exit 2 makes Claude Code block the tool
        message = str(exc) if isinstance(exc, ExoArmurError) else f"{type(exc).__name__}: {exc}"
        sys.stderr.write(f"exoarmur: {message}\n")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(answer) + "\n")


def _check_tenant(tenant: str) -> None:
    if not re.match(TENANT_PATTERN, tenant):
        raise InputError(f"--tenant: {tenant!r} does not match {TENANT_PATTERN}")


def _address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen: {listen!r} must be HOST:PORT")
    return host.strip("[]"), int(port)
