"""Verifying an evidence bundle with nothing but the file (and, ideally, a trusted key).

Checks, each failure reported with where it is:

1. the bundle is well-formed and its ``bundle_hash`` matches its content;
2. every checkpoint is a signed note that verifies with the key (the one
   the reviewer trusts, if given; else the bundle's own, which is flagged);
3. every event's bytes are canonical, hash to a leaf whose inclusion proof
   reaches its log's signed root at its stated position, and belong to the
   bundle's tenant and correlation (context events: policy activations and
   configuration snapshots of the tenant's log or the system log);
4. every recorded intent hashes to its recorded hash and is decided again
   from the bundle's own policy text, under the posture it records: the
   policy's verdict, reasons and obligations must match, and where the safety
   gate tightened the verdict, it may only have tightened it;
5. votes bind to the intent's hash, a quorum of distinct approvers precedes
   an approval, and nothing started without an allow or an approval;
6. an optional ``governance_artifacts`` block is well-formed; each artifact
   is reported (present, hash, provider, semantic verdict) and fails the
   bundle only when enforcement is on and it is required (``artifacts``).

Pure: no store, no clock, no network.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import jsontext
from ..collector import PAUSED
from ..containment.audit import ContainmentAudit
from ..encoding import canonical_bytes, content_hash, exactly_plain, parse_time, sha256_hex
from ..errors import ExoArmurError, JSONTextError
from ..ledger.checkpoint import Checkpoint, open_checkpoint
from ..ledger.keys import Verifier
from ..model.event import CONFIG_SNAPSHOT, POLICY_ACTIVATED, SYSTEM_LOG, Event
from ..policy import PolicyBundle, PolicyEngine
from .artifacts import BLOCK, ArtifactsReport, check_artifacts
from .bundle import BUNDLE_FORMATS
from .inclusion import CheckpointProofs
from .story import Context, check_story, explain

_TOP_LEVEL = {
    "format",
    "tenant",
    "correlation_id",
    "public_key",
    "checkpoints",
    "events",
    "context",
    "bundle_hash",
}
#: fields a bundle may carry besides those
_OPTIONAL = {BLOCK}


@dataclass
class BundleVerdict:
    """What verifying a bundle found. ``passed`` only when nothing failed."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    decisions: int = 0
    key_trusted: bool = False
    #: each intent's state at export: {"intent_id", "state", "open"}
    intents: list[dict[str, Any]] = field(default_factory=list)
    artifacts: ArtifactsReport = field(default_factory=lambda: ArtifactsReport(enforced=False))
    #: an evidence pack's ``evidence_hash`` (None for a bundle)
    evidence_hash: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def complete(self) -> bool:
        """Every intent's story has ended (none pending, approved-not-started or running)."""
        return not any(intent["open"] for intent in self.intents)

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "PASS" if self.passed else "FAIL",
            "events": self.events,
            "decisions": self.decisions,
            "key_trusted": self.key_trusted,
            "story": "COMPLETE" if self.complete else "OPEN",
            "intents": self.intents,
            "failures": self.failures,
            "notes": self.notes,
            BLOCK: self.artifacts.to_json(),
        } | ({"evidence_hash": self.evidence_hash} if self.evidence_hash is not None else {})


def verify_bundle_text(
    text: str | bytes, trusted_key: str | None = None, *, enforce_artifacts: bool = False
) -> BundleVerdict:
    """Verify a bundle as read from its file."""
    verdict = BundleVerdict()
    with PAUSED:
        try:
            bundle, plain = jsontext.loads_plain(text)
        except JSONTextError as exc:
            verdict.fail("bundle", f"not JSON ExoArmur accepts: {exc}")
            return verdict
        if _is_pack(bundle):
            from .pack_check import verify_pack

            raw = text.encode() if isinstance(text, str) else text
            return verify_pack(bundle, raw, trusted_key, verdict, plain=plain)
        return _verify_bundle(bundle, trusted_key, verdict, enforce_artifacts, plain)


def verify_bundle(
    bundle: Any,
    trusted_key: str | None = None,
    verdict: BundleVerdict | None = None,
    *,
    enforce_artifacts: bool = False,
) -> BundleVerdict:
    with PAUSED:
        return _verify_bundle(
            bundle, trusted_key, verdict or BundleVerdict(), enforce_artifacts, None
        )


def _verify_bundle(
    bundle: Any,
    trusted_key: str | None,
    verdict: BundleVerdict,
    enforce_artifacts: bool,
    plain: bool | None,
) -> BundleVerdict:
    """``plain``: what ``jsontext.loads_plain`` found reading ``bundle`` (None: not read so)."""
    verdict.artifacts.enforced = enforce_artifacts
    if _is_pack(bundle):  # a pack extends the bundle: the same checks, and its own
        from .pack_check import verify_pack

        return verify_pack(bundle, None, trusted_key, verdict, plain=plain)
    if not isinstance(bundle, dict) or not _TOP_LEVEL <= set(bundle) <= _TOP_LEVEL | _OPTIONAL:
        found = set(bundle) if isinstance(bundle, dict) else set()
        verdict.fail(
            "bundle",
            f"must be an object with exactly the fields {sorted(_TOP_LEVEL)}"
            + (f" (and optionally {sorted(_OPTIONAL)})")
            + "".join(
                f"; unexpected field {name!r}" for name in sorted(found - _TOP_LEVEL - _OPTIONAL)
            )
            + "".join(f"; missing field {name!r}" for name in sorted(_TOP_LEVEL - found)),
        )
        return verdict
    if bundle["format"] not in BUNDLE_FORMATS:
        verdict.fail(
            "format", f"expected one of {', '.join(BUNDLE_FORMATS)}, found {bundle['format']!r}"
        )
        return verdict
    version = BUNDLE_FORMATS.index(bundle["format"]) + 1
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    try:
        # a plain document's body is plain; otherwise canonical_bytes finds out
        written = canonical_bytes(body, plain=plain or None)
        if "sha256:" + sha256_hex(written) != bundle["bundle_hash"]:
            verdict.fail("bundle_hash", "does not match the bundle's content")
    except (ExoArmurError, UnicodeEncodeError) as exc:
        verdict.fail("bundle", unencodable(exc))
        return verdict
    verifier = _verifier(bundle, trusted_key, verdict)
    if verifier is None:
        return verdict
    roots = _checkpoints(bundle, verifier, verdict)
    tenant, correlation = bundle["tenant"], bundle["correlation_id"]
    plain_events: set[int] = set()
    events = _entries(bundle, "events", roots, verdict, {tenant}, plain_events)
    context = _entries(bundle, "context", roots, verdict, {tenant, SYSTEM_LOG})
    for where, event in events:  # their tenant is the bundle's: _entries filed them under it
        if event.get("correlation_id") != correlation:
            verdict.fail(where, f"belongs to correlation {event.get('correlation_id')!r}")
    for where, event in context:
        if event.get("type") not in (POLICY_ACTIVATED, CONFIG_SNAPSHOT):
            verdict.fail(
                where, f"context may hold policy and config events, not {event.get('type')!r}"
            )
    verdict.events = len(events) + len(context)
    _structure(events, context, bundle, verdict)
    if not verdict.failures:
        _redecide(tenant, events, context, verdict, version, plain_events)
    verdict.artifacts = check_artifacts(bundle, enforce_artifacts, verdict.fail)
    return verdict


def unencodable(exc: Exception) -> str:
    """What is wrong, said the same wherever in a document a lone surrogate sits."""
    if isinstance(exc, UnicodeEncodeError):
        return f"text with no UTF-8 form ({exc.reason}: {exc.object[exc.start : exc.end]!r})"
    return str(exc)


def _content_hash(value: Any, plain: bool | None) -> str:
    """:func:`content_hash`, told ``plain`` when the parse found it."""
    return "sha256:" + sha256_hex(canonical_bytes(value, plain=plain))


def _is_pack(document: Any) -> bool:
    """A pack of any version: the pack's verifier names a version it does not read."""
    kind = document.get("format") if isinstance(document, dict) else None
    return isinstance(kind, str) and kind.startswith("exoarmur.evidence-pack/")


def _verifier(
    bundle: dict[str, Any], trusted_key: str | None, verdict: BundleVerdict
) -> Verifier | None:
    try:
        if trusted_key is not None:
            trusted = Verifier.from_string(trusted_key.strip())
            verdict.key_trusted = True
            if bundle["public_key"] != trusted.verifier_key():
                verdict.fail("public_key", "the bundle names another key than the one you trust")
            return trusted
        verdict.notes.append(
            "no trusted key given: verified with the bundle's own key, which proves integrity, "
            "not origin (pass --public-key with the key you trust)"
        )
        return Verifier.from_string(str(bundle["public_key"]))
    except ExoArmurError as exc:
        verdict.fail("public_key", str(exc))
        return None


def _checkpoints(
    bundle: dict[str, Any], verifier: Verifier, verdict: BundleVerdict
) -> dict[str, Checkpoint]:
    roots: dict[str, Checkpoint] = {}
    notes = bundle["checkpoints"]
    if not isinstance(notes, dict):
        verdict.fail("checkpoints", "must be an object of log -> signed note")
        return roots
    for log, note in notes.items():
        try:
            checkpoint = open_checkpoint(str(note), verifier)
        except ExoArmurError as exc:
            verdict.fail(f"checkpoints.{log}", str(exc))
            continue
        if not checkpoint.origin.endswith(f"/{log}"):
            verdict.fail(f"checkpoints.{log}", f"origin {checkpoint.origin!r} is not log {log!r}")
            continue
        roots[log] = checkpoint
    return roots


def _entries(
    bundle: dict[str, Any],
    name: str,
    roots: dict[str, Checkpoint],
    verdict: BundleVerdict,
    logs: set[str],
    plain_events: set[int] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The entries whose event is proved; ``plain_events`` collects the ids of plain ones.

    Plain as ``jsontext.loads_plain`` means it: their parts' canonical bytes
    need no walk to find out.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    entries = bundle[name]
    if not isinstance(entries, list):
        verdict.fail(name, "must be a list")
        return out
    # one reading per proof hash and one walk per tree node, shared by all entries
    digests: dict[str, bytes] = {}
    proofs = {log: CheckpointProofs(c.size, c.root_hash) for log, c in roots.items()}
    for index, entry in enumerate(entries):
        where = f"{name}[{index}]"
        try:
            log, position = entry["log"], entry["leaf_index"]
            raw: str = entry["event"]
            proof = _proof(entry["proof"], digests)
            extra = entry.keys() - _ENTRY
            if extra:
                raise ValueError(f"unexpected field {sorted(extra)[0]!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            verdict.fail(where, f"malformed entry: {exc}")
            continue
        if log not in logs:
            verdict.fail(where, f"log {log!r} does not belong in {name}")
            continue
        checkpoint = roots.get(log)
        if checkpoint is None:
            verdict.fail(where, f"no verified checkpoint for log {log!r}")
            continue
        read = _canonical_event(raw)
        if read is None:
            try:
                event, plain = jsontext.loads_plain(raw)
                canonical = canonical_bytes(event, plain=plain)
                # a lone surrogate (written as an escape) has no UTF-8 bytes
                unchanged = canonical == raw.encode()
            except (json.JSONDecodeError, ExoArmurError, TypeError, UnicodeEncodeError) as exc:
                verdict.fail(where, f"event is not JSON: {unencodable(exc)}")
                continue
            if not unchanged:
                verdict.fail(where, "event bytes are not in canonical form (RFC 8785)")
                continue
            if not isinstance(event, dict):
                verdict.fail(where, f"event is a JSON {type(event).__name__}, not an object")
                continue
        else:
            event, canonical = read
            plain = True
        if plain_events is not None and plain:
            plain_events.add(id(event))
        if not isinstance(position, int) or event.get("seq") != position:
            verdict.fail(
                where, f"event seq {event.get('seq')!r} is not its leaf index {position!r}"
            )
            continue
        if event.get("tenant") != log:
            verdict.fail(where, f"event of {event.get('tenant')!r} filed under log {log!r}")
            continue
        if not proofs[log].includes(canonical, position, proof):
            verdict.fail(
                where,
                f"inclusion proof does not reach the signed root of {log} "
                f"at size {checkpoint.size}",
            )
            continue
        out.append((where, event))
    return out


def _canonical_event(raw: object) -> tuple[dict[str, Any], bytes] | None:
    """``raw`` parsed, with its bytes, when it is plainly canonical; else None.

    The common case, read in C by orjson: text with no float, no long
    integer, no character beyond the Basic Multilingual Plane, whose sorted
    compact dump is itself. Such text is exactly what
    :func:`jsontext.loads_plain` reads as plain, without a refusal, and whose
    canonical bytes are the text: the careful reading would reach the same
    event. Strict as that reading: orjson keeps the last of a repeated key,
    which the dump then lacks; it reads an integer past 64 bits as a float,
    which :func:`exactly_plain` refuses; NaN, an infinite number and a lone
    surrogate it refuses to read. Anything else (None) gets the careful
    reading, which names what is wrong.
    """
    if type(raw) is not str or not (raw.isascii() or max(raw, default="") <= "\uffff"):
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN, an infinite number, a lone surrogate, not JSON
        return None
    # exactly_plain: no float (its dump may be the text and still not RFC 8785)
    if type(event) is not dict or not exactly_plain(event):
        return None
    data = raw.encode()  # orjson read it, so it has a UTF-8 form
    try:
        same = orjson.dumps(event, option=orjson.OPT_SORT_KEYS) == data
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return None
    return (event, data) if same else None


def _proof(hashes: Any, digests: dict[str, bytes]) -> list[bytes]:
    """The proof's hashes as bytes, each spelling read once per bundle."""
    proof: list[bytes] = []
    try:
        for text in hashes:
            digest = digests.get(text)
            if digest is None:
                digest = digests[text] = _digest(text)
            proof.append(digest)
    except TypeError:  # not a list of strings: the plain reading says what it is
        return [_digest(h) for h in hashes]
    return proof


_ENTRY = frozenset({"log", "leaf_index", "event", "proof"})


def _digest(text: object) -> bytes:
    """A proof hash: exactly 64 lowercase hex digits (one spelling per hash)."""
    if isinstance(text, str) and len(text) == 64:
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            pass
        else:
            # the round trip rejects upper case and the spaces fromhex skips, in C
            if digest.hex() == text:
                return digest
    raise ValueError(f"proof hash {text!r} is not 64 lowercase hex digits")


def _structure(
    events: list[tuple[str, dict[str, Any]]],
    context: list[tuple[str, dict[str, Any]]],
    bundle: dict[str, Any],
    verdict: BundleVerdict,
) -> None:
    """Log order, each event once, nothing empty: a story is told once and in order."""
    if isinstance(bundle["events"], list) and not bundle["events"]:
        verdict.fail("events", "is empty: a bundle proves at least one event")
    seen: dict[str, str] = {}
    for name, entries in (("events", events), ("context", context)):
        previous: tuple[str, int] | None = None
        for where, event in entries:
            place = (str(event["tenant"]), int(event["seq"]))
            if previous is not None and place <= previous:
                verdict.fail(
                    where,
                    f"{place[0]}#{place[1]} after {previous[0]}#{previous[1]}: {name} must be "
                    "in log order, each event once",
                )
            previous = place
            event_id = str(event.get("event_id"))
            if event_id in seen:
                verdict.fail(where, f"event {event_id} appears twice (also {seen[event_id]})")
            seen.setdefault(event_id, where)


def _load_context(
    context: list[tuple[str, dict[str, Any]]], verdict: BundleVerdict
) -> tuple[Context, dict[tuple[str, str], str]]:
    """The policy engines and configurations of the context, and where each came from."""
    loaded = Context()
    places: dict[tuple[str, str], str] = {}
    for where, event in context:
        try:
            payload = event["payload"]
            if event["type"] == POLICY_ACTIVATED:
                key = ("policy", str(payload["policy_hash"]))
            else:
                key = ("config", str(payload["config_hash"]))
            if key in places:
                verdict.fail(where, f"a second context entry for {key[0]} {key[1]}")
                continue
            places[key] = where
            if key[0] == "policy":
                engine = PolicyEngine(PolicyBundle.from_canonical(payload["bundle"]))
                if engine.policy_hash != key[1]:
                    verdict.fail(where, "policy text does not hash to the policy hash it claims")
                    continue
                loaded.engines[key[1]] = engine
            elif content_hash(payload["config"]) != key[1]:
                verdict.fail(where, "configuration does not hash to the config hash it claims")
            elif not isinstance(payload["config"], dict):
                verdict.fail(where, "payload.config: not an object")
            else:
                loaded.configs[key[1]] = payload["config"]
        except (KeyError, TypeError, ValueError, ExoArmurError) as exc:
            verdict.fail(where, f"cannot be checked: {explain(exc)}")
    return loaded, places


def _redecide(
    tenant: str,
    events: list[tuple[str, dict[str, Any]]],
    context: list[tuple[str, dict[str, Any]]],
    verdict: BundleVerdict,
    version: int = 2,
    plain_events: Collection[int] = (),
) -> None:
    loaded, places = _load_context(context, verdict)
    _recheck_containment(events, verdict)
    told = check_story(tenant, events, loaded, verdict.fail, version, plain_events)
    verdict.decisions = told.decisions
    verdict.notes.extend(told.notes)
    for key, where in places.items():
        if key not in told.named:
            verdict.fail(where, f"{key[0]} {key[1]} is named by no decision in the bundle")
    for story in told.stories.values():
        verdict.intents.append(
            {"intent_id": story.intent_id, "state": story.describe(), "open": story.open}
        )
    still_open = [s for s in verdict.intents if s["open"]]
    if still_open:
        verdict.notes.append(
            f"{len(still_open)} intent(s) open at export: their story may go on after the "
            "checkpoint (export again later, or compare with a checkpoint kept by others)"
        )


def _recheck_containment(events: list[tuple[str, dict[str, Any]]], verdict: BundleVerdict) -> None:
    """Plans in the slice: hash, step order, compensation in reverse; expiries not early."""
    audit = ContainmentAudit("bundle", whole_log=False)
    for where, event in events:
        try:
            record = _record(event)
        except (KeyError, TypeError, ValueError, ExoArmurError) as exc:
            verdict.fail(where, f"cannot be checked: {exc}")
            continue
        for where_in, _, _, reason in audit.check(record):
            verdict.fail(where, f"{where_in}: {reason}")


def _record(event: dict[str, Any]) -> Event:
    """An event of the bundle as the audit reads it (its bytes were checked already).

    Built from the parsed object: serialising it again and parsing that, for
    every event, was most of the audit's time on a large bundle.
    """
    return Event(
        seq=event["seq"],
        event_id=event["event_id"],
        tenant=event["tenant"],
        type=event["type"],
        correlation_id=event["correlation_id"],
        event_time=parse_time(event["event_time"]),
        process_time=parse_time(event["process_time"]),
        actor=event["actor"],
        payload=event["payload"],
        intent_id=event.get("intent_id"),
        canonical=b"",
        leaf_hash=b"",
    )
