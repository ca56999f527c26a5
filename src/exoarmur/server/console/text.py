"""Untrusted text on a page: inert (escaped) and visible (no character hides or reorders).

Everything an agent, an operator or a policy wrote reaches the browser
through :func:`shown` or :func:`shown_json`: HTML-escaped first, then each
character the eye cannot see or that reorders what follows (controls,
right-to-left overrides, zero-width characters, a byte-order mark) replaced
by a marked tag naming its code point. So ``invoice\u202egnp.exe`` reads as
``invoice⟦U+202E⟧gnp.exe``, and ``<script>`` as the nine characters it is.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape


def _tag(char: str) -> str:
    return f'<span class="hidden-char" title="an invisible character">⟦U+{ord(char):04X}⟧</span>'


def _visible(text: str, keep_newlines: bool) -> Markup:
    escaped = str(escape(text))  # escaping adds only printable ASCII, so markers stay apart
    if escaped.isprintable():
        return Markup(escaped)  # noqa: S704 - escaped above, nothing left to interpret
    parts = []
    for char in escaped:
        if char.isprintable() or (keep_newlines and char == "\n"):
            parts.append(char)
        else:
            parts.append(_tag(char))
    return Markup("".join(parts))  # noqa: S704 - built from escaped text and our own tags


def shown(value: Any) -> Markup:
    """One value on one line: escaped, every invisible character (newlines too) tagged."""
    return _visible("" if value is None else str(value), keep_newlines=False)


def shown_json(value: Any) -> Markup:
    """A JSON value, indented: escaped, invisible characters inside strings tagged.

    ``ensure_ascii=False`` keeps the characters themselves, so they are tagged
    rather than hidden behind a ``\\u`` escape a reader might skim over.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return _visible(text, keep_newlines=True)
