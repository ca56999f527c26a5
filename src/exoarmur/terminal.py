"""What reaches an operator's terminal: every string shown exactly as it is.

Targets, actions, params, actor ids, reasons, policy text and error messages
come from agents and operators. An approver reads them and votes on the hash
of what they are, so a terminal must never reinterpret them: not as Rich
markup (``db/customers[dim]-staging-copy`` read as ``db/customers-staging-copy``),
not as emoji codes, and not as control sequences (ANSI escapes that repaint
the screen, right-to-left overrides that reverse a name, zero-width characters
that hide one). Characters Python's ``str.isprintable`` refuses are shown as
their escapes (``\\x1b``, ``\\u202e``, ``\\u200b``, ``\\n``), and a backslash
itself is doubled so that no escape can be forged by typing it.

The consoles made here never parse markup or emoji and pass every plain string
through :func:`visible`, so a forgotten call cannot let markup through. Style
is only ever added on purpose, with :func:`styled` and :func:`line`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text


def visible(text: str) -> str:
    """``text`` with every unprintable character (and the backslash) as its escape."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode()
        for char in text
    )


def json_text(value: Any) -> Text:
    """``value`` as JSON whose every unprintable character is a JSON ``\\u`` escape.

    Still valid JSON, and unambiguous without doubling backslashes: in JSON
    text a backslash only ever starts an escape.
    """
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _json_escape(char) for char in text)
    return Text(text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def styled(text: str, style: str) -> Text:
    """``text`` shown literally, in ``style`` (a style is ours; the text may not be)."""
    return Text(visible(text), style=style)


def line(*parts: str | Text) -> Text:
    """One message of literal strings and :func:`styled` pieces, in order."""
    shown = Text()
    for part in parts:
        shown.append(part if isinstance(part, Text) else visible(part))
    return shown


class _LiteralConsole(Console):
    """A console for which a string is only ever text: no markup, no emoji, no controls."""

    def render_str(self, text: str, **options: Any) -> Text:
        return Text(
            visible(text),
            style=options.get("style", ""),
            justify=options.get("justify"),
            overflow=options.get("overflow"),
        )


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A console for stdout (or stderr) that shows every string literally.

    ``options`` go to :class:`rich.console.Console` (``file``, ``force_terminal``…).
    """
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would wrap at 80 columns; ids and hashes read better whole.
    settings: dict[str, Any] = {"width": None if stream.isatty() else 200} | options
    return _LiteralConsole(stderr=stderr, highlight=False, markup=False, emoji=False, **settings)
