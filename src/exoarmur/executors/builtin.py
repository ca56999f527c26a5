"""Built-in executors that need nothing outside the process.

``EchoExecutor`` touches nothing and is what the demo runs; ``CallableExecutor``
governs a Python function call; ``PythonExecutor`` is the same, with the
function named in configuration as ``package.module:function``.

Importing a function named in configuration runs that module's code, so the
configuration file is as trusted as the code it names.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..model.intent import ActionIntent
from .base import check_fields, recordable

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CALLABLE_PATH = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


class CallableExecutor:
    """Carries out an intent by calling ``fn(intent)``; its return value is the result.

    ``fn`` raises :class:`~exoarmur.executors.ExecutionFailed` (or anything
    else) when the action failed; the exception is recorded, never swallowed.
    """

    kind: str

    def __init__(self, fn: Callable[[ActionIntent], Any], kind: str = "python") -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        self.fn = fn
        self.kind = kind

    def execute(self, intent: ActionIntent) -> Any:
        return recordable(self.kind, self.fn(intent))


class PythonExecutor(CallableExecutor):
    """A :class:`CallableExecutor` whose function is named in configuration."""

    def __init__(self, path: str, fn: Callable[[ActionIntent], Any]) -> None:
        super().__init__(fn, kind="python")
        #: The ``package.module:function`` the function was imported from.
        self.path = path

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PythonExecutor:
        """Build from ``{"callable": "package.module:function"}``."""
        check_fields(config, allowed={"callable"}, required={"callable"})
        path = config["callable"]
        if not isinstance(path, str) or not (match := _CALLABLE_PATH.match(path)):
            raise ConfigError(
                f"field 'callable': must look like 'package.module:function', got {path!r}"
            )
        module_name, attribute = match.groups()
        try:
            target: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"field 'callable': cannot import module {module_name!r} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        for part in attribute.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigError(
                    f"field 'callable': {module_name!r} has no attribute {attribute!r}"
                ) from None
        if not callable(target):
            raise ConfigError(
                f"field 'callable': {path!r} is a {type(target).__name__}, not a callable"
            )
        return cls(path, target)


class EchoExecutor:
    """Returns what it was asked to do and touches nothing. Used by the demo."""

    kind: str = "echo"

    def execute(self, intent: ActionIntent) -> dict[str, Any]:
        return {"action": intent.action, "target": intent.target, "params": dict(intent.params)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EchoExecutor:
        """Build from an empty table; the echo executor has no settings."""
        check_fields(config, allowed=())
        return cls()
