"""Reading and judging the ``KEY=value`` markers a demo prints. Pure: text in, findings out.

A marker is a whole line of the form ``KEY=value`` with KEY in capitals,
digits and underscores; other lines (tables, checkpoint notes) are not
markers. A key printed twice with different values is a finding, never a
silent "last one wins".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .registry import PER_HOME_MARKERS, Demo

_MARKER = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse_markers(output: str) -> tuple[dict[str, str], list[str]]:
    """The markers in a demo's stdout, and a finding per key printed with two values."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for text in output.splitlines():
        match = _MARKER.match(text.rstrip("\r"))
        if match is None:
            continue
        key, value = match.groups()
        if key in found and found[key] != value:
            problems.append(f"marker {key} printed twice: {found[key]!r} then {value!r}")
            continue
        found[key] = value
    return found, problems


def missing_markers(required: tuple[str, ...], markers: Mapping[str, str]) -> list[str]:
    """A finding for each required marker absent, empty, or with another value."""
    problems = []
    for want in required:
        key, sign, value = want.partition("=")
        got = markers.get(key)
        if got is None or got == "":
            problems.append(f"marker {key} missing" + (f" (want {value!r})" if sign else ""))
        elif sign and got != value:
            problems.append(f"marker {key}: want {value!r}, got {got!r}")
    return problems


def compared_keys(demo: Demo, first: Mapping[str, str], second: Mapping[str, str]) -> list[str]:
    """The markers two runs must agree on: the stable ones; every one when seeded."""
    keys = set(demo.stable)
    if demo.deterministic:
        keys |= (set(first) | set(second)) - PER_HOME_MARKERS
    return sorted(keys)


def unstable_markers(demo: Demo, first: Mapping[str, str], second: Mapping[str, str]) -> list[str]:
    """A finding for each compared marker absent from a run or different between the homes."""
    problems = []
    for key in compared_keys(demo, first, second):
        if key not in first or key not in second:
            runs = [str(n) for n, markers in ((1, first), (2, second)) if key not in markers]
            problems.append(f"stable marker {key} absent in run {' and '.join(runs)}")
        elif first[key] != second[key]:
            problems.append(
                f"marker {key} differs between two fresh homes: {first[key]!r} vs {second[key]!r}"
            )
    return problems
