"""Which executor carries out which action, and where executors come from.

Executor types are found through the ``exoarmur.executors`` entry-point group;
the built-ins are registered there too, so there is one discovery path. A
binding maps an action pattern to an executor: an exact action (``fs.read``)
beats any glob, and among globs the most specific (longest) one wins, so the
choice never depends on the order bindings were made in.

This module never runs an executor; an action nobody bound has no executor,
and the pipeline must refuse it rather than pick a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError, ExecutorError
from ..model.intent import ACTION_PATTERN
from .base import Executor, ExecutorFactory
from .guard import Guarded, guard
from .redaction import redact_settings

#: The entry-point group executor plugins register under.
ENTRY_POINT_GROUP = "exoarmur.executors"

_ACTION = re.compile(ACTION_PATTERN)
_GLOB = re.compile(r"^[A-Za-z0-9_.*-]{1,128}$")


def discover() -> dict[str, ExecutorFactory]:
    """Load every installed executor factory, by type name.

    Raises :class:`ExecutorError` naming the plugin when one cannot be loaded,
    is not callable, or when two different plugins claim the same name.
    """
    factories: dict[str, ExecutorFactory] = {}
    origins: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in origins:
            if origins[point.name] == point.value:
                continue  # the same distribution seen twice on sys.path
            raise ExecutorError(
                f"executor plugin {point.name!r} is registered twice: "
                f"{origins[point.name]} and {point.value}; uninstall one of them"
            )
        try:
            factory = point.load()
        except Exception as exc:
            raise ExecutorError(
                f"executor plugin {point.name!r} ({point.value}) cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not callable(factory):
            raise ExecutorError(
                f"executor plugin {point.name!r} ({point.value}) is a "
                f"{type(factory).__name__}, not an executor factory"
            )
        factories[point.name] = factory
        origins[point.name] = point.value
    return factories


@dataclass(frozen=True)
class Binding:
    """What carries out an action: the pattern that matched, the guarded executor, its retries."""

    pattern: str
    executor: Guarded
    retries: int = 0


class ExecutorRegistry:
    """Action patterns bound to executors."""

    def __init__(self) -> None:
        self._exact: dict[str, Executor] = {}
        self._globs: dict[str, tuple[re.Pattern[str], Executor]] = {}
        self._retries: dict[str, int] = {}
        self._settings: dict[str, dict[str, Any]] = {}

    def retries_for(self, pattern: str) -> int:
        """How many times a retryable failure of this binding is tried again."""
        return self._retries.get(pattern, 0)

    def bind(self, pattern: str, executor: Executor, *, retries: int = 0) -> None:
        """Bind an exact action (``fs.read``) or a glob (``fs.*``, ``*``) to ``executor``.

        ``retries`` (0 to 5) bounds how often a retryable failure is retried.
        Raises :class:`ConfigError` for a malformed or already bound pattern.
        """
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 5:
            raise ConfigError(
                f"executor binding {pattern!r}: field 'retries': must be a whole number 0 to 5"
            )
        if not isinstance(pattern, str) or not _GLOB.match(pattern):
            raise ConfigError(
                f"executor binding {pattern!r}: not an action name or a glob of one "
                "(letters, digits, '.', '_', '-' and '*')"
            )
        if pattern in self._exact or pattern in self._globs:
            raise ConfigError(f"executor binding {pattern!r}: is already bound")
        if retries:
            self._retries[pattern] = retries
        if "*" in pattern:
            regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
            self._globs[pattern] = (regex, executor)
        elif _ACTION.match(pattern):
            self._exact[pattern] = executor
        else:
            raise ConfigError(f"executor binding {pattern!r}: not a valid action name")

    def executor_for(self, action: str) -> tuple[str, Executor] | None:
        """The binding pattern and executor for ``action``, or None when unbound."""
        if action in self._exact:
            return action, self._exact[action]
        matches = [
            pattern for pattern, (regex, _) in self._globs.items() if regex.fullmatch(action)
        ]
        if not matches:
            return None
        # Longest first; equal lengths fall back to the pattern text, so the
        # winner never depends on the order of binding.
        best = min(matches, key=lambda pattern: (-len(pattern), pattern))
        return best, self._globs[best][1]

    def binding_for(self, action: str) -> Binding | None:
        """The binding for ``action`` with its executor inside the guard, or None when unbound."""
        found = self.executor_for(action)
        if found is None:
            return None
        pattern, executor = found
        return Binding(pattern, guard(executor), self.retries_for(pattern))

    @classmethod
    def from_config(
        cls,
        bindings: Mapping[str, Mapping[str, Any]],
        factories: Mapping[str, ExecutorFactory] | None = None,
    ) -> ExecutorRegistry:
        """Build from ``{pattern: {"type": name, **settings}}``.

        ``factories`` defaults to :func:`discover`. Raises :class:`ConfigError`
        naming the binding and field for an unknown type or bad settings, and
        :class:`ExecutorError` when a plugin fails in a way configuration
        cannot explain.
        """
        if not isinstance(bindings, Mapping):
            raise ConfigError(
                f"executor bindings: must be a table of patterns, not {type(bindings).__name__}"
            )
        if factories is None:
            factories = discover()
        registry = cls()
        for pattern, table in bindings.items():
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"executor binding {pattern!r}: must be a table with a 'type' field, "
                    f"not {type(table).__name__}"
                )
            known = ", ".join(sorted(factories)) or "none installed"
            kind = table.get("type")
            if kind is None:
                raise ConfigError(
                    f"executor binding {pattern!r}: field 'type' is required (one of: {known})"
                )
            if not isinstance(kind, str) or kind not in factories:
                raise ConfigError(
                    f"executor binding {pattern!r}: field 'type': unknown executor type "
                    f"{kind!r} (one of: {known})"
                )
            settings = {
                key: value for key, value in table.items() if key not in ("type", "retries")
            }
            retries = table.get("retries", 0)
            try:
                executor = factories[kind](settings)
            except ConfigError as exc:
                raise ConfigError(f"executor binding {pattern!r}: {exc}") from exc
            except Exception as exc:
                raise ExecutorError(
                    f"executor binding {pattern!r}: the {kind!r} executor could not be built: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(getattr(executor, "kind", None), str) or not callable(
                getattr(executor, "execute", None)
            ):
                raise ExecutorError(
                    f"executor binding {pattern!r}: the {kind!r} plugin built a "
                    f"{type(executor).__name__}, which lacks 'kind' or 'execute()'"
                )
            registry.bind(pattern, executor, retries=retries)
            registry._settings[pattern] = redact_settings(settings)
        return registry

    def describe(self) -> dict[str, dict[str, Any]]:
        """``pattern -> {"type": kind}``, sorted by pattern, for health and config snapshots."""
        bound: dict[str, Executor] = {**self._exact}
        bound.update((pattern, executor) for pattern, (_, executor) in self._globs.items())
        described: dict[str, dict[str, Any]] = {}
        for pattern in sorted(bound):
            described[pattern] = {"type": bound[pattern].kind}
            if pattern in self._retries:
                described[pattern]["retries"] = self._retries[pattern]
            if self._settings.get(pattern):
                # where it points matters: a binding re-pointed is another configuration
                described[pattern]["settings"] = self._settings[pattern]
        return described
