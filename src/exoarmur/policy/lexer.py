"""Just enough of Cedar's lexer to split a policy file and point into it, and the limits
past which Cedar's own parser must never see a policy.

Both the engine (which refuses a policy too deep or too long before Cedar
parses it) and the tooling (which splits files into statements and locates
errors) read policy text through here. Pure: text in, tokens out; no Cedar
call, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Bracket nesting and chained operators beyond which Cedar's recursive parser
#: overflows the native stack and kills the process (measured with cedarpy
#: 4.12: about 640 nested brackets, about 16 000 chained operands on an 8 MiB
#: stack). The limits keep a wide margin for smaller thread stacks; no policy
#: a person would write comes near them.
MAX_NESTING = 64
MAX_OPERATORS = 2000


# Cedar skips Unicode White_Space (its lexer's `\s`) and `//` comments.
_TOKEN = re.compile(
    r"""
      (?P<space>[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+)
    | (?P<comment>//[^\n\r]*)
    | (?P<string>"(?:[^"\\]|\\.)*(?:"|\\?\Z))
    | (?P<word>\??[A-Za-z0-9_]+)
    | (?P<pair>::|==|!=|<=|>=|&&|\|\|)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
# Tokens that chain into deeper parse trees (brackets are counted apart).
_OPERATORS = frozenset(
    {"&&", "||", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "!", ".", "in", "has"}
    | {"like", "is", "if", "then", "else"}
)


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def lex(text: str) -> list[Token]:
    return [
        Token(m.group(), m.start(), m.end())
        for m in _TOKEN.finditer(text)
        if m.lastgroup not in ("space", "comment")
    ]


@dataclass(frozen=True)
class Statement:
    """One policy's tokens, up to and including its ``;`` (when it has one)."""

    tokens: tuple[Token, ...]

    @property
    def start(self) -> int:
        return self.tokens[0].start

    @property
    def end(self) -> int:
        return self.tokens[-1].end

    @property
    def terminated(self) -> bool:
        return self.tokens[-1].text == ";"


def statements(tokens: Iterable[Token]) -> list[Statement]:
    """Split at every ``;`` outside strings and comments: Cedar has no other."""
    found: list[Statement] = []
    current: list[Token] = []
    for token in tokens:
        current.append(token)
        if token.text == ";":
            found.append(Statement(tuple(current)))
            current = []
    if current:
        found.append(Statement(tuple(current)))
    return found


def too_complex(tokens: Sequence[Token]) -> tuple[Token, str] | None:
    """A token past which Cedar's parser could overflow the stack, and why."""
    depth = operators = 0
    for token in tokens:
        if token.text in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                return token, f"nested deeper than {MAX_NESTING} brackets"
        elif token.text in _CLOSE:
            depth = max(0, depth - 1)
        elif token.text in _OPERATORS:
            operators += 1
            if operators > MAX_OPERATORS:
                return token, f"more than {MAX_OPERATORS} operators in one policy; split it"
    return None


def complexity_problem(text: str) -> str | None:
    """Why a policy text is too deep or long for Cedar's parser to take safely, if it is."""
    found = too_complex(lex(text))
    return None if found is None else found[1]
