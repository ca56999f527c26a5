"""What the proxy is told about its tools: targets, safety classes, credentials, waits.

Read from the ``[mcp]`` section of ``config.toml`` or a ``--map`` file of the
same shape (the file wins, key by key). Pure parsing: nothing here talks to
a server. Tool annotations from the upstream are untrusted hints, used only
for a tool the mapping does not name.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ...errors import ConfigError
from ...model.intent import TOKEN_PATTERN, SafetyClass
from ..console_link import check_public_url

#: a held call answers well before the ~60 s after which common clients give up
DEFAULT_HOLD_SECONDS: Final = 20.0
MAX_HOLD_SECONDS: Final = 55.0
_SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTION_KEYS: Final = frozenset(
    {"server", "hold_seconds", "tools", "upstream_env", "upstream_headers"}
)
_TOOL_KEYS: Final = frozenset({"target", "safety_class"})


@dataclass(frozen=True)
class ToolRule:
    """How one upstream tool is governed: what it touches and how much harm it can do."""

    target: str | None = None
    safety_class: SafetyClass | None = None


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy needs besides the governor and the upstream connection."""

    tenant: str
    server: str = "upstream"
    hold_seconds: float = DEFAULT_HOLD_SECONDS
    tools: Mapping[str, ToolRule] = field(default_factory=dict)
    #: upstream process variable -> name of the proxy's variable holding its value
    upstream_env: Mapping[str, str] = field(default_factory=dict)
    #: upstream HTTP header -> name of the proxy's variable holding its value
    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    #: ``[server] public_url``: a pending answer links the intent's console page there
    public_url: str | None = None

    def rule_for(self, tool: str, annotations: Any) -> tuple[str, SafetyClass]:
        """The target and safety class of a call to ``tool``: the mapping wins over hints."""
        rule = self.tools.get(tool, ToolRule())
        target = rule.target or f"mcp:{self.server}/{tool}"
        if rule.safety_class is not None:
            return target, rule.safety_class
        return target, class_from_annotations(annotations)

    def upstream_environment(self) -> dict[str, str]:
        return {
            name: _from_env(f"upstream_env.{name}", ref) for name, ref in self.upstream_env.items()
        }

    def upstream_header_values(self) -> dict[str, str]:
        return {
            name: _from_env(f"upstream_headers.{name}", ref)
            for name, ref in self.upstream_headers.items()
        }


def class_from_annotations(annotations: Any) -> SafetyClass:
    """``readOnlyHint`` → A0, ``destructiveHint`` → A3, anything else → A2."""
    if annotations is not None:
        if getattr(annotations, "read_only_hint", None) is True:
            return SafetyClass.A0
        if getattr(annotations, "destructive_hint", None) is True:
            return SafetyClass.A3
    return SafetyClass.A2


def load_settings(
    tenant: str,
    config: Mapping[str, Any],
    map_file: Path | None = None,
    *,
    server: str | None = None,
    hold_seconds: float | None = None,
) -> ProxySettings:
    """Settings from ``config``'s ``[mcp]`` section, then ``map_file``, then explicit options."""
    section: dict[str, Any] = {}
    for where, part in (("config.toml [mcp]", config.get("mcp", {})), *_map_part(map_file)):
        if not isinstance(part, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = sorted(set(part) - _SECTION_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: field {unknown[0]!r}: unknown (known: {sorted(_SECTION_KEYS)})"
            )
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(section.get(key), dict):
                section[key] = section[key] | value
            else:
                section[key] = value
    if server is not None:
        section["server"] = server
    if hold_seconds is not None:
        section["hold_seconds"] = hold_seconds
    return ProxySettings(
        tenant=tenant,
        server=_server_name(section.get("server", "upstream")),
        hold_seconds=_hold(section.get("hold_seconds", DEFAULT_HOLD_SECONDS)),
        tools={name: _tool_rule(name, rule) for name, rule in _table(section, "tools").items()},
        upstream_env=_env_refs(_table(section, "upstream_env"), "upstream_env"),
        upstream_headers=_env_refs(_table(section, "upstream_headers"), "upstream_headers"),
        public_url=_public_url(config),
    )


def _public_url(config: Mapping[str, Any]) -> str | None:
    server = config.get("server", {})
    url = server.get("public_url") if isinstance(server, Mapping) else None
    return None if url is None else check_public_url(url, "config.toml [server] public_url")


def _map_part(map_file: Path | None) -> list[tuple[str, Any]]:
    if map_file is None:
        return []
    try:
        with map_file.open("rb") as handle:
            return [(str(map_file), tomllib.load(handle))]
    except OSError as exc:
        raise ConfigError(f"--map: cannot read {map_file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--map: {map_file}: {exc}") from None


def _table(section: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = section.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"mcp: field {name!r}: must be a table")
    return value


def _server_name(value: object) -> str:
    if not isinstance(value, str) or not _SERVER_NAME.match(value):
        raise ConfigError(
            f"mcp: field 'server': {value!r} must be a letter then letters, digits, '_' or '-'"
        )
    return value


def _hold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("mcp: field 'hold_seconds': must be a number")
    if not 0 <= value <= MAX_HOLD_SECONDS:
        raise ConfigError(
            f"mcp: field 'hold_seconds': {value} must be between 0 and {MAX_HOLD_SECONDS} "
            "(clients cut calls off at about 60 s)"
        )
    return float(value)


def _tool_rule(name: str, rule: object) -> ToolRule:
    where = f"mcp.tools.{name}"
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(rule) - _TOOL_KEYS)
    if unknown:
        raise ConfigError(f"{where}: field {unknown[0]!r}: unknown (known: {sorted(_TOOL_KEYS)})")
    target = rule.get("target")
    if target is not None and (not isinstance(target, str) or not re.match(TOKEN_PATTERN, target)):
        raise ConfigError(f"{where}: field 'target': must be text without whitespace")
    safety = rule.get("safety_class")
    try:
        chosen = SafetyClass(safety) if safety is not None else None
    except ValueError:
        raise ConfigError(
            f"{where}: field 'safety_class': {safety!r} is not one of A0-A3"
        ) from None
    return ToolRule(target=target, safety_class=chosen)


def _env_refs(table: Mapping[str, Any], where: str) -> dict[str, str]:
    refs = {}
    for name, ref in table.items():
        if not isinstance(ref, str) or not _ENV_NAME.match(ref):
            raise ConfigError(
                f"mcp.{where}.{name}: must name an environment variable (the value is never "
                "written in configuration)"
            )
        refs[str(name)] = ref
    return refs


def _from_env(where: str, ref: str) -> str:
    value = os.environ.get(ref)
    if not value:
        raise ConfigError(f"mcp.{where}: environment variable {ref} is not set")
    return value
