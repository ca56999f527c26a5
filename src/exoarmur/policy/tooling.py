"""Policy tooling: check a bundle, test it against cases, explain a decision.

The habits of ``cedar validate`` and ``opa test``, for ExoArmur bundles:

- :func:`check_bundle` finds what would make the engine refuse a bundle (or
  make it weaker than its author meant) and says where, ``file:line:column``.
  Cedar's parse errors carry no position, so each file is split into policy
  statements, each statement is parsed alone and the error is located inside
  the statement that fails;
- :func:`load_cases` and :func:`run_cases` run policy test cases: sample
  intents and the verdict, reasons and obligations they must get;
- :func:`explain` says why the engine decided what it decided.

Nothing here prints, reads a clock or the environment. ``check_bundle`` and
``load_cases`` read exactly the files they are given; the rest are functions
of their arguments. Printing belongs to ``commands``.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cedarpy
import yaml

from .. import jsontext
from ..errors import InputError, IntentError, JSONTextError, PolicyError
from ..model.decision import Decision, Verdict
from ..model.intent import ActionIntent, IntentRequest, derive_idempotency_key, parse_intent
from .bundle import MAX_POLICY_BYTES, SCHEMA_FILE, PolicyBundle
from .engine import PolicyEngine
from .lexer import Statement, Token, lex, statements, too_complex
from .obligations import OBLIGATION_NAMES, obligations_of

#: When a case gives no time, this is the recorded time of its intent.
CASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
#: When a case gives no intent id: the ULID of CASE_TIME with zero randomness.
CASE_INTENT_ID = "01KDVDNA000000000000000000"
MAX_CASE_FILE_BYTES = 4 * 1024 * 1024
CASE_SUFFIXES = (".yaml", ".yml", ".json")


# -- problems -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle, where a compiler would say it (1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


# -- pointing: offsets to lines and columns -----------------------------------


class _Lines:
    """Offsets to 1-based (line, column) in one text."""

    def __init__(self, text: str) -> None:
        self._starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1


# -- locating a positionless Cedar error ---------------------------------------

_BACKTICKED = re.compile(r"`([^`]+)`")
_FOUND = re.compile(r"\b(?:found|got)\b[^`]*`([^`]+)`")
_CEDAR_LONG_MAX = 2**63 - 1


def _needle(message: str) -> str | None:
    """The piece of source a message names: what it found, or a quoted or trailing name."""
    named = _FOUND.search(message) or _BACKTICKED.search(message)
    if named:
        return named.group(1)
    if ": " in message:
        tail = message.rsplit(": ", 1)[1].strip()
        return tail or None
    return None


def _find(tokens: Sequence[Token], needle: str, *, variable: bool, nth: int) -> Token | None:
    """The ``nth`` run of tokens spelling ``needle`` (a variable: not after a dot)."""
    wanted = [t.text for t in lex(needle)]
    texts = [t.text for t in tokens]
    hits = [
        tokens[i]
        for i in range(len(texts) - len(wanted) + 1)
        if wanted
        and texts[i : i + len(wanted)] == wanted
        and not (variable and i > 0 and texts[i - 1] == ".")
    ]
    if not hits:
        return None
    return hits[min(nth, len(hits) - 1)]


def _error_offset(
    source: str,
    base: int,
    tokens: Sequence[Token],
    message: str,
    parse: Callable[[str], str | None],
) -> int:
    """The offset (in the file) that ``message``, from parsing ``source``, is about.

    ``source`` is the text of ``tokens`` and starts at offset ``base`` of the
    file; ``parse`` returns the error message for a text, or None.
    """
    if "unexpected token" in message or "invalid token" in message:
        # The parser stops at the first token it cannot take: the shortest
        # prefix failing with the same message ends with that token.
        lo, hi = 0, len(tokens) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if parse(source[: tokens[mid].end - base]) == message:
                hi = mid
            else:
                lo = mid + 1
        return tokens[lo].start
    if "unexpected end of input" in message:
        return tokens[-1].start
    if message.startswith("integer parse error"):
        for token in tokens:
            if token.text.isdigit() and int(token.text) > _CEDAR_LONG_MAX:
                return token.start
    needle = _needle(message)
    if needle:
        nth = 1 if message.startswith("duplicate annotation") else 0
        hit = _find(tokens, needle, variable=message.startswith("invalid variable"), nth=nth)
        if hit is not None:
            return hit.start
        inside = source.find(needle)
        if inside >= 0:
            return base + inside
    return tokens[0].start


def _failure(parse: Callable[[str], object]) -> Callable[[str], str | None]:
    """``parse`` as a function from a text to its error message (None: it parses)."""

    def message(text: str) -> str | None:
        try:
            parse(text)
        except ValueError as exc:
            return str(exc) or "does not parse"
        return None

    return message


_policy_error = _failure(cedarpy.policies_to_json_str)
_schema_error = _failure(cedarpy.Schema.from_str)
_json_refused = _failure(cedarpy.PolicySet.from_json_str)


# -- scanning one file ---------------------------------------------------------


@dataclass(frozen=True)
class PolicySource:
    """One policy of a bundle as its author wrote it: where, and what."""

    policy_id: str
    file: str
    line: int
    column: int
    effect: str
    annotations: dict[str, str]
    #: the Cedar JSON form (EST) of the policy
    body: dict[str, Any]
    text: str

    def names_action(self, action: str) -> bool:
        """Whether the policy singles out ``action``: in its scope, or a condition on
        ``context.action`` (``==``, ``like``, a set's ``contains``) that it satisfies."""
        scope = self.body.get("action") or {}
        named = [scope["entity"]] if "entity" in scope else list(scope.get("entities", ()))
        if any(isinstance(e, dict) and e.get("id") == action for e in named):
            return True
        return any(_condition_names(c.get("body"), action) for c in self.body["conditions"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.policy_id,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "effect": self.effect,
            "annotations": dict(self.annotations),
            "source": self.text,
        }


_CONTEXT_ACTION = {".": {"left": {"Var": "context"}, "attr": "action"}}


def _like(pattern: Sequence[Any], text: str) -> bool:
    parts = [".*" if p == "Wildcard" else re.escape(str(p.get("Literal", ""))) for p in pattern]
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


def _compares_action(node: dict[str, Any], action: str) -> bool:
    """Whether this one node is ``context.action`` ==, like or in a set holding ``action``."""
    like = node.get("like")
    if isinstance(like, dict) and like.get("left") == _CONTEXT_ACTION:
        return _like(like.get("pattern", ()), action)
    equal = node.get("==")
    if isinstance(equal, dict):
        sides = (equal.get("left"), equal.get("right"))
        return _CONTEXT_ACTION in sides and {"Value": action} in sides
    contains = node.get("contains")
    if isinstance(contains, dict) and contains.get("right") == _CONTEXT_ACTION:
        return {"Value": action} in (contains.get("left") or {}).get("Set", ())
    return False


def _condition_names(body: Any, action: str) -> bool:
    """Whether a condition (Cedar JSON) compares ``context.action`` with ``action`` and matches.

    Walks with a stack, not recursion: a long chain of ``&&`` is a deep tree.
    """
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if _compares_action(node, action):
                return True
            stack.extend(node.values())
    return False


@dataclass
class _Scan:
    """What scanning one file found: its policies in order, and its problems."""

    policies: list[tuple[Statement, PolicySource]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    parsed: bool = True  #: every statement parsed (the file can be validated)


def _annotation_token(statement: Statement, name: str) -> Token:
    tokens = statement.tokens
    for i in range(len(tokens) - 1):
        if tokens[i].text == "@" and tokens[i + 1].text == name:
            return tokens[i]
    return tokens[0]  # pragma: no cover - every annotation Cedar reports has its `@`


def _scan(name: str, text: str, label: str) -> _Scan:
    """Parse ``text`` statement by statement; ``label`` names the file in problems."""
    scan = _Scan()
    lines = _Lines(text)

    def problem(offset: int, message: str) -> None:
        line, column = lines.position(offset)
        scan.problems.append(Problem(label, line, column, message))

    number = 0  # the engine's fallback id counts the static policies of a file
    for statement in statements(lex(text)):
        source = text[statement.start : statement.end]
        complex_at = too_complex(statement.tokens)
        if complex_at is not None:
            scan.parsed = False
            problem(complex_at[0].start, complex_at[1])
            continue
        try:
            document = cedarpy.policies_to_json_str(source)
        except ValueError as exc:
            scan.parsed = False
            message = str(exc) or "does not parse"
            offset = _error_offset(
                source, statement.start, statement.tokens, message, _policy_error
            )
            if not statement.terminated and "unexpected end of input" in message:
                message += " (missing `;` at the end of the policy?)"
            elif "unexpected token" in message and _runs_into_next_policy(statement.tokens, offset):
                message += " (missing `;` before this policy?)"
            problem(offset, message)
            continue
        if _json_refused(document) is not None:
            # The engine builds its policy set from this JSON form, and Cedar
            # reads JSON only to a limited depth (about 60 chained && or ||).
            scan.parsed = False
            problem(
                statement.start,
                "nested too deeply for the engine (Cedar refuses its JSON form); "
                "split the policy, or test membership with a set: [...].contains(...)",
            )
            continue
        parsed: dict[str, Any] = json.loads(document)
        bodies = [(body, False) for body in parsed.get("staticPolicies", {}).values()]
        bodies += [(body, True) for body in parsed.get("templates", {}).values()]
        for body, template in bodies:
            annotations = {str(k): str(v) for k, v in (body.get("annotations") or {}).items()}
            policy_id = annotations.get("id") or f"{name}#{number}"
            if template:
                slot = next((t for t in statement.tokens if t.text.startswith("?")), None)
                where = slot.start if slot is not None else statement.start
                problem(where, "policy templates (?principal, ?resource) are not supported")
            else:
                number += 1
            line, column = lines.position(statement.start)
            scan.policies.append(
                (
                    statement,
                    PolicySource(
                        policy_id=policy_id,
                        file=name,
                        line=line,
                        column=column,
                        effect=str(body.get("effect", "")),
                        annotations=annotations,
                        body=body,
                        text=source,
                    ),
                )
            )
            for offset, message in _annotation_problems(statement, policy_id, body):
                problem(offset, message)
            for offset, message in _pattern_problems(statement, body):
                problem(offset, message)
    return scan


def _runs_into_next_policy(tokens: Sequence[Token], offset: int) -> bool:
    """Whether the failing token starts another policy: the previous one lacks its ``;``."""
    at = next((i for i, t in enumerate(tokens) if t.start == offset), 0)
    if tokens[at].text == "(" and at > 0 and tokens[at - 1].text in ("permit", "forbid"):
        at -= 1
    return (
        at > 0
        and tokens[at].text in ("@", "permit", "forbid")
        and tokens[at - 1].text in (")", "}")
    )


_STRING_FORM = {
    "action": "match `context.action like …` instead",
    "resource": "match `context.target like …` instead",
    "principal": 'compare `principal == Agent::"…"` instead',
}


def _pattern_problems(statement: Statement, body: Mapping[str, Any]) -> list[tuple[int, str]]:
    """``like`` on an entity: it parses, then fails on every request that reaches it.

    Any evaluation error denies the whole decision, so one such policy denies
    everything its scope matches; say so before it is activated.
    """
    found: list[tuple[int, str]] = []
    stack: list[Any] = [c.get("body") for c in body.get("conditions", ())]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            like = node.get("like")
            left = like.get("left") if isinstance(like, dict) else None
            variable = left.get("Var") if isinstance(left, dict) else None
            if variable in _STRING_FORM:
                tokens = statement.tokens
                at = next(
                    (
                        t
                        for t, following in itertools.pairwise(tokens)
                        if t.text == variable and following.text == "like"
                    ),
                    tokens[0],
                )
                found.append(
                    (
                        at.start,
                        f"`{variable} like` is a type error on every request ({variable} is an "
                        f"entity, not a string) and an error denies; {_STRING_FORM[variable]}",
                    )
                )
            stack.extend(node.values())
    return sorted(found)


_KNOWN_ANNOTATIONS = ("id", *OBLIGATION_NAMES)
_EXAMPLES = {"approval": "2", "approval_window": "900", "ttl_max": "3600", "evidence": "high"}


def _annotation_problems(
    statement: Statement, policy_id: str, body: Mapping[str, Any]
) -> list[tuple[int, str]]:
    raw: dict[str, Any] = dict(body.get("annotations") or {})
    found: list[tuple[int, str]] = []
    if "id" in raw and raw["id"] is None:
        where = _annotation_token(statement, "id").start
        found.append((where, '@id needs a value, e.g. @id("allow-read-only")'))
    for name in OBLIGATION_NAMES:
        if name not in raw:
            continue
        where = _annotation_token(statement, name).start
        if raw[name] is None:
            found.append((where, f'@{name} needs a value, e.g. @{name}("{_EXAMPLES[name]}")'))
            continue
        try:
            obligations_of(policy_id, {name: str(raw[name])})
        except PolicyError as exc:
            found.append((where, str(exc)))
            continue
        if body.get("effect") == "forbid":
            found.append(
                (where, f"@{name} on a forbid has no effect: only permits carry obligations")
            )
    for name in raw:
        if name in _KNOWN_ANNOTATIONS:
            continue
        close = difflib.get_close_matches(name, _KNOWN_ANNOTATIONS, n=1, cutoff=0.75)
        if close:
            where = _annotation_token(statement, name).start
            found.append(
                (where, f"unknown annotation @{name} would be ignored; did you mean @{close[0]}?")
            )
    return found


# -- checking a bundle ---------------------------------------------------------


def _read(path: Path, label: str, problems: list[Problem]) -> str | None:
    """The file's text as the bundle reads it (universal newlines), or a problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(label, 1, 1, f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")
        line, column = _Lines(before + " ").position(len(before))
        problems.append(Problem(label, line, column, f"not UTF-8: {exc.reason}"))
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _schema_problems(text: str, label: str) -> list[Problem]:
    tokens = lex(text)
    lines = _Lines(text)
    complex_at = too_complex(tokens)
    if complex_at is not None:
        return [Problem(label, *lines.position(complex_at[0].start), complex_at[1])]
    message = _schema_error(text)
    if message is None:
        return []
    offset = _error_offset(text, 0, tokens, message, _schema_error) if tokens else 0
    return [Problem(label, *lines.position(offset), message)]


_POLICY_REF = re.compile(r"^for policy `[^`]*`, ")


def _validation_problems(
    text: str, schema: str, scan: _Scan, label: str, lines: _Lines
) -> list[Problem]:
    result = cedarpy.validate_policies(text, schema)
    problems = []
    for error in result.errors:
        index = int(error.policy_id[6:]) if re.fullmatch(r"policy\d+", error.policy_id) else -1
        detail = _POLICY_REF.sub("", str(error.error))
        if 0 <= index < len(scan.policies):
            statement, policy = scan.policies[index]
            source = text[statement.start : statement.end]
            offset = _error_offset(
                source, statement.start, statement.tokens, detail, lambda _: None
            )
            message = f"does not validate against the schema: {detail} (policy {policy.policy_id})"
        else:  # pragma: no cover - Cedar names a policy for every validation error
            offset, message = 0, f"does not validate against the schema: {detail}"
        problems.append(Problem(label, *lines.position(offset), message))
    return problems


def check_bundle(path: Path) -> list[Problem]:
    """Every problem of the bundle in directory ``path``; empty when the engine accepts it.

    Raises :class:`PolicyError` when ``path`` is not a bundle at all (no such
    directory, no ``.cedar`` file, too large).
    """
    if not path.is_dir():
        raise PolicyError(f"policy directory {path} does not exist")
    files = sorted(path.glob("*.cedar"))
    if not files:
        raise PolicyError(f"policy directory {path} holds no .cedar files")
    problems: list[Problem] = []
    texts: list[tuple[str, str, str]] = []
    for file in files:
        text = _read(file, str(file), problems)
        if text is not None:
            texts.append((file.name, str(file), text))
    if sum(len(text) for _, _, text in texts) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy directory {path} exceeds {MAX_POLICY_BYTES} bytes")
    schema: str | None = None
    schema_path = path / SCHEMA_FILE
    if schema_path.exists():
        schema = _read(schema_path, str(schema_path), problems)
        if schema is not None:
            schema_problems = _schema_problems(schema, str(schema_path))
            problems += schema_problems
            if schema_problems:
                schema = None
    first_seen: dict[str, tuple[PolicySource, str]] = {}
    for name, label, text in texts:
        scan = _scan(name, text, label)
        problems += scan.problems
        lines = _Lines(text)
        for statement, policy in scan.policies:
            if policy.policy_id in first_seen:
                other, other_label = first_seen[policy.policy_id]
                where = policy.annotations.get("id") and _annotation_token(statement, "id").start
                line, column = lines.position(where or statement.start)
                problems.append(
                    Problem(
                        label,
                        line,
                        column,
                        f"policy id {policy.policy_id!r} is used twice "
                        f"(first at {other_label}:{other.line}:{other.column})",
                    )
                )
            else:
                first_seen[policy.policy_id] = (policy, label)
        if schema is not None and scan.parsed and scan.policies:
            problems += _validation_problems(text, schema, scan, label, lines)
    if not problems:
        # The contract: no problem means the engine takes the bundle. Anything
        # the checks above missed is still reported, never let through.
        try:
            PolicyEngine(PolicyBundle.from_dir(path))
        except PolicyError as exc:  # pragma: no cover - every refusal is reported above
            problems.append(Problem(str(files[0]), 1, 1, str(exc)))
    return sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))


def policy_sources(bundle: PolicyBundle) -> dict[str, PolicySource]:
    """Each policy of an accepted bundle by the id the engine gives it."""
    sources: dict[str, PolicySource] = {}
    for name, text in bundle.files:
        for _, policy in _scan(name, text, name).policies:
            sources.setdefault(policy.policy_id, policy)
    return sources


# -- policy test cases -----------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What a case's decision must be. None: not checked."""

    verdict: Verdict
    #: the exact set of determining policy ids
    reasons: tuple[str, ...] | None = None
    #: obligations that must be present, with these values (others may be too)
    obligations: dict[str, str] | None = None
    #: the case proves fail-closed: evaluation errors are expected (else they fail it)
    errors: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"verdict": self.verdict.value}
        if self.reasons is not None:
            body["reasons"] = list(self.reasons)
        if self.obligations is not None:
            body["obligations"] = dict(self.obligations)
        if self.errors:
            body["errors"] = True
        return body


@dataclass(frozen=True)
class PolicyCase:
    """One sample intent and what policy must decide for it."""

    name: str
    intent: ActionIntent
    expect: Expectation
    posture: str = "normal"
    #: where it was written, e.g. ``tests.yaml: cases[3]``
    source: str = ""


def complete_intent(request: IntentRequest, event_time: datetime) -> ActionIntent:
    """A recorded intent from a request, filling what it omits deterministically.

    ``event_time`` is used when the request gives none; the id is fixed, the
    idempotency key derived from content, the correlation id the intent id.
    """
    when = request.event_time or event_time
    intent_id = request.intent_id or CASE_INTENT_ID
    return ActionIntent(
        intent_id=intent_id,
        tenant=request.tenant,
        actor=request.actor,
        action=request.action,
        target=request.target,
        params=request.params,
        safety_class=request.safety_class,
        idempotency_key=request.idempotency_key or derive_idempotency_key(request, when),
        correlation_id=request.correlation_id or intent_id,
        event_time=when,
    )


def _document(path: Path) -> Any:
    if path.suffix not in CASE_SUFFIXES:
        raise InputError(f"{path}: a case file must end in {', '.join(CASE_SUFFIXES)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read case file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CASE_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_CASE_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return _parse_document(path, text)
    except RecursionError:
        raise InputError(f"{path}: nested too deeply") from None


class _CaseLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key twice in one mapping (YAML forbids it)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # a merge (<<) may be overridden; other keys are refused below
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears more than once", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_document(path: Path, text: str) -> Any:
    if path.suffix == ".json":
        try:
            return jsontext.loads(text)
        except JSONTextError as exc:
            if exc.at is None:
                raise InputError(f"{path}: {exc}") from None
            raise InputError(f"{path}:{exc.at[0]}:{exc.at[1]}: {exc.rule}") from None
    try:
        return yaml.load(text, Loader=_CaseLoader)  # noqa: S506 - a SafeLoader, refusing repeats
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: malformed YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML marks its parse errors
        raise InputError(f"{path}: malformed YAML: {exc}") from None


def _unknown(where: str, value: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in value:
        if key not in allowed:
            raise InputError(f"{where}{key}: unknown field (expected one of {', '.join(allowed)})")


def _expectation(where: str, value: Any) -> Expectation:
    if not isinstance(value, dict):
        raise InputError(f"{where}expect: is required and must be a mapping")
    _unknown(f"{where}expect.", value, ("verdict", "reasons", "obligations", "errors"))
    # a policy never decides pending_evidence: that is the gate's, on recorded evidence
    verdicts = [v.value for v in Verdict if v != Verdict.PENDING_EVIDENCE]
    if value.get("verdict") not in verdicts:
        raise InputError(
            f"{where}expect.verdict: is required, one of {', '.join(verdicts)} "
            f"(not {value.get('verdict')!r})"
        )
    reasons = value.get("reasons")
    if reasons is not None and not (
        isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
    ):
        raise InputError(f"{where}expect.reasons: must be a list of policy ids")
    obligations = value.get("obligations")
    if obligations is not None:
        if not isinstance(obligations, dict):
            raise InputError(f"{where}expect.obligations: must be a mapping")
        _unknown(f"{where}expect.obligations.", obligations, OBLIGATION_NAMES)
        normal: dict[str, str] = {}
        for name, raw in obligations.items():
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):
                raise InputError(f"{where}expect.obligations.{name}: must be a string or number")
            try:
                normal.update(obligations_of("(expected)", {name: str(raw)}))
            except PolicyError as exc:
                detail = str(exc).removeprefix("policy (expected): ")
                raise InputError(f"{where}expect.obligations.{name}: {detail}") from None
        obligations = normal
    errors = value.get("errors", False)
    if not isinstance(errors, bool):
        raise InputError(f"{where}expect.errors: must be true or false")
    return Expectation(
        verdict=Verdict(value["verdict"]),
        reasons=tuple(sorted(set(reasons))) if reasons is not None else None,
        obligations=obligations,
        errors=errors,
    )


def load_cases(path: Path) -> list[PolicyCase]:
    """The cases of one YAML or JSON case file. Raises :class:`InputError` naming the field."""
    return cases_of(_document(path), str(path), path.name)


def cases_of(document: Any, label: str, source: str) -> list[PolicyCase]:
    """The cases of one parsed case document (``label`` starts each error, ``source`` names it).

    Raises :class:`InputError` naming the field.
    """
    if not isinstance(document, dict):
        raise InputError(f"{label}: must be a mapping with a `cases` list")
    _unknown(f"{label}: ", document, ("defaults", "cases"))
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InputError(f"{label}: defaults: must be a mapping of intent fields")
    entries = document.get("cases")
    if not isinstance(entries, list) or not entries:
        # An empty case list would pass while proving nothing.
        raise InputError(f"{label}: cases: must be a non-empty list")
    cases: list[PolicyCase] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{label}: cases[{index}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: must be a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: name: is required and must be a non-empty string")
        where = f"{where} ({name}): "
        if name in seen:
            raise InputError(f"{where}name: is used by an earlier case")
        seen.add(name)
        _unknown(where, entry, ("name", "intent", "posture", "expect"))
        posture = entry.get("posture", "normal")
        if not isinstance(posture, str) or not posture:
            raise InputError(f"{where}posture: must be a non-empty string")
        body = entry.get("intent")
        if not isinstance(body, dict):
            raise InputError(f"{where}intent: is required and must be a mapping")
        try:
            request = parse_intent({**defaults, **body})
        except IntentError as exc:
            detail = "; ".join(f"intent.{f}: {rule}" for f, rule in exc.problems)
            raise InputError(f"{where}{detail}") from None
        cases.append(
            PolicyCase(
                name=name,
                intent=complete_intent(request, CASE_TIME),
                expect=_expectation(where, entry.get("expect")),
                posture=posture,
                source=f"{source}: cases[{index}]",
            )
        )
    return cases


@dataclass(frozen=True)
class CaseResult:
    """A case, the decision it got, and what differed from what it expected."""

    case: PolicyCase
    actual: Decision
    differences: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def expected(self) -> Expectation:
        return self.case.expect

    @property
    def passed(self) -> bool:
        return not self.differences

    @property
    def message(self) -> str:
        return "; ".join(self.differences)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.case.source,
            "posture": self.case.posture,
            "passed": self.passed,
            "expected": self.expected.to_json(),
            "actual": {
                "verdict": self.actual.verdict.value,
                "reasons": list(self.actual.reasons),
                "obligations": dict(self.actual.obligations),
                "errors": list(self.actual.errors),
            },
            "message": self.message,
        }


def _ids(ids: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(ids)) + "]"


def _judge(case: PolicyCase, decision: Decision) -> CaseResult:
    expect = case.expect
    differences = []
    if decision.verdict != expect.verdict:
        differences.append(
            f"verdict: expected {expect.verdict.value}, got {decision.verdict.value}"
        )
    if expect.reasons is not None and set(expect.reasons) != set(decision.reasons):
        differences.append(
            f"reasons: expected {_ids(expect.reasons)}, got {_ids(decision.reasons)}"
        )
    for name, value in sorted((expect.obligations or {}).items()):
        got = decision.obligations.get(name)
        if got != value:
            differences.append(
                f"obligations.{name}: expected {value}, got {got if got else 'none'}"
            )
    # A deny that came from an evaluation error is a pass for the wrong reason.
    if decision.errors and not expect.errors:
        differences.append("evaluation errors: " + " | ".join(decision.errors))
    elif expect.errors and not decision.errors:
        differences.append("errors: expected evaluation errors, got none")
    return CaseResult(case, decision, tuple(differences))


#: posture -> what it tightens as policy sees it (``GateConfig.policy_context``)
Tightening = Callable[[str], Mapping[str, Any] | None]


def run_cases(
    engine: PolicyEngine, cases: Sequence[PolicyCase], tightening: Tightening | None = None
) -> list[CaseResult]:
    """Decide every case (one Cedar batch per posture) and judge it, in the cases' order.

    ``tightening`` gives ``context.tightened`` per posture, as a configuration
    sets it (None: policy sees no tightening).
    """
    by_posture: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        by_posture.setdefault(case.posture, []).append(index)
    decisions: dict[int, Decision] = {}
    for posture, indexes in by_posture.items():
        tightened = tightening(posture) if tightening is not None else None
        batch = engine.decide_batch([cases[i].intent for i in indexes], posture, tightened)
        decisions.update(zip(indexes, batch, strict=True))
    return [_judge(case, decisions[index]) for index, case in enumerate(cases)]


# -- explaining one decision ------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """Why the engine decided what it decided for one intent."""

    decision: Decision
    posture: str
    #: the Cedar request as evaluated: principal, action, resource, context
    request: dict[str, Any]
    entities: tuple[dict[str, Any], ...]
    #: the policies that determined the verdict, as written
    determining: tuple[PolicySource, ...]
    #: on a default deny: the permits that name this action (their conditions failed)
    hints: tuple[PolicySource, ...]
    summary: str

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    @property
    def errors(self) -> tuple[str, ...]:
        return self.decision.errors

    def to_json(self) -> dict[str, Any]:
        determining = []
        for policy in self.determining:
            obligations = obligations_of(policy.policy_id, policy.annotations)
            determining.append(policy.to_json() | {"obligations": obligations})
        return {
            "verdict": self.verdict.value,
            "summary": self.summary,
            "posture": self.posture,
            "decision": self.decision.to_canonical(),
            "request": self.request,
            "entities": list(self.entities),
            "determining": determining,
            "errors": list(self.errors),
            "hints": [policy.to_json() for policy in self.hints],
        }


def _summary(decision: Decision, action: str, hints: Sequence[PolicySource]) -> str:
    reasons = ", ".join(decision.reasons)
    if decision.errors:
        count = len(decision.errors)
        also = f" (determining policies: {reasons})" if reasons else ""
        return (
            f"Denied: Cedar reported {count} evaluation error(s) and ExoArmur denies on any "
            f"error (fail closed){also}."
        )
    if decision.verdict is Verdict.DENY and decision.reasons:
        return f"Denied: forbidden by {reasons}. A forbid beats any permit."
    if decision.verdict is Verdict.DENY:
        sentence = "Denied by default: no permit matched this request."
        if hints:
            names = ", ".join(f"{h.policy_id} ({h.file}:{h.line})" for h in hints)
            sentence += f" Permits that single out {action}: {names}"
            sentence += "; their conditions did not hold."
        return sentence
    if decision.verdict is Verdict.REQUIRE_APPROVAL:
        quorum = decision.obligations["approval"]
        return (
            f"Allowed once {quorum} distinct approver(s) approve: permitted by {reasons}; "
            "the strictest obligations among them apply."
        )
    return f"Allowed: permitted by {reasons}."


def explain(
    engine: PolicyEngine,
    intent: ActionIntent,
    posture: str = "normal",
    tightened: Mapping[str, Any] | None = None,
) -> Explanation:
    """The decision for ``intent`` under ``engine``, with the request and the policies behind it."""
    decision = engine.decide(intent, posture, tightened)
    request, entities = engine.request(intent, posture, tightened)
    sources = policy_sources(engine.bundle)
    determining = tuple(sources[r] for r in decision.reasons if r in sources)
    hints: tuple[PolicySource, ...] = ()
    if decision.verdict is Verdict.DENY and not decision.reasons and not decision.errors:
        hints = tuple(
            s for s in sources.values() if s.effect == "permit" and s.names_action(intent.action)
        )
    return Explanation(
        decision=decision,
        posture=posture,
        request=request,
        entities=tuple(entities),
        determining=determining,
        hints=hints,
        summary=_summary(decision, intent.action, hints),
    )
