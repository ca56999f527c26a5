"""Reading what a child process printed, when the test may SIGKILL it at any byte.

A child acknowledges work by printing a line. A SIGKILL can land halfway
through a write, leaving a last line cut short ("ACK k-12 01M8" without its
status, or "p0-5-0=1" of what was "=12"): that line acknowledged nothing,
and reading it as if it had makes a sound test fail on a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def whole_lines(output: Iterable[str]) -> Iterator[str]:
    """The lines of ``output`` that ended with a newline; a cut-off last line is dropped."""
    for line in output:
        if line.endswith("\n"):
            yield line
