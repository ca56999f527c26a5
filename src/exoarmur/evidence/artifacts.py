"""Governance artifacts: optional, provider-checked attachments to an evidence bundle.

A bundle may carry a ``governance_artifacts`` block (``docs/evidence-bundle.md``):
a manifest (artifact type, schema version, canonical hash,
``required_for_verdict``) and the artifacts' content, keyed by type. The
block is inside ``bundle_hash``; its shape is part of the bundle's own
checks (a malformed block fails the bundle). Each artifact is then
reported: is its content there, does it hash to the manifest's hash, is a
provider for its type installed, and what does that provider's semantic
check say. Only a provider's semantic check ties an artifact to the signed
events (``bundle_hash`` is a hash anyone can recompute), so by default the
report never changes the verdict. With enforcement on, a *required*
artifact that is missing, mismatched, without a provider or invalid fails
the bundle; an optional one never does.

Providers are found through the ``exoarmur.governance_artifacts``
entry-point group, by type name, and loaded only when a bundle names their
type or an export asks for it. None is required.

This module must never decide from anything but the bundle and the
providers: no clock, no environment (the caller says whether to enforce).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from ..encoding import content_hash
from ..errors import ExoArmurError, InputError
from ..model.event import DECISION_RECORDED, POLICY_ACTIVATED

#: The entry-point group artifact providers register under (name = artifact type).
ENTRY_POINT_GROUP = "exoarmur.governance_artifacts"
#: The environment flag; in a home's config.toml: ``[evidence] governance_artifact_enforcement``.
ENFORCEMENT_FLAG = "EXOARMUR_FLAG_GOVERNANCE_ARTIFACT_ENFORCEMENT_ENABLED"
BLOCK = "governance_artifacts"

_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_ENTRY = frozenset({"artifact_type", "schema_version", "canonical_hash", "required_for_verdict"})


class ArtifactProvider(Protocol):
    """What a provider offers: its schema version, how to build an artifact, how to judge one."""

    schema_version: str

    def build(self, bundle: Mapping[str, Any]) -> Any:
        """The artifact's JSON content for a bundle being exported (raise InputError if none)."""
        ...

    def check(self, content: Any, bundle: Mapping[str, Any]) -> str | None:
        """None when the artifact is valid for this bundle, else why not."""
        ...


def load_provider(artifact_type: str) -> ArtifactProvider | str:
    """The installed provider of a type, or why there is none (loads that entry point only)."""
    found = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == artifact_type]
    if not found:
        return "no provider installed"
    if len({p.value for p in found}) > 1:
        return f"registered twice: {', '.join(sorted({p.value for p in found}))}"
    try:
        loaded = found[0].load()
        provider = loaded() if isinstance(loaded, type) else loaded
    except Exception as exc:  # a broken plugin is reported, never fatal
        return f"provider {found[0].value} cannot be loaded: {type(exc).__name__}: {exc}"
    if not callable(getattr(provider, "check", None)) or not callable(
        getattr(provider, "build", None)
    ):
        return f"provider {found[0].value} has no build() and check()"
    return provider  # type: ignore[no-any-return]


def enforcement_enabled(environ: Mapping[str, str], config: Mapping[str, Any]) -> bool:
    """The flag, else the home's ``[evidence] governance_artifact_enforcement`` key."""
    flag = environ.get(ENFORCEMENT_FLAG)
    if flag is not None and flag.strip():
        value = flag.strip().lower()
        if value not in ("true", "false", "1", "0"):
            raise InputError(f"{ENFORCEMENT_FLAG}: {flag!r} is not true or false")
        return value in ("true", "1")
    section = config.get("evidence", {})
    setting = section.get("governance_artifact_enforcement", False)
    if not isinstance(setting, bool):
        raise InputError("[evidence] governance_artifact_enforcement: must be true or false")
    return setting


# -- export ---------------------------------------------------------------------------


def attach(
    bundle: dict[str, Any],
    wanted: list[tuple[str, bool]],
    load: Callable[[str], ArtifactProvider | str] = load_provider,
) -> None:
    """Add the block for ``wanted`` (type, required) to a bundle not yet hashed."""
    manifest: list[dict[str, Any]] = []
    artifacts: dict[str, Any] = {}
    for artifact_type, required in wanted:
        if not _TYPE.match(artifact_type):
            raise InputError(
                f"--artifact: {artifact_type!r} is not an artifact type (lowercase letters, "
                "digits, '.', '_', '-')"
            )
        if artifact_type in artifacts:
            raise InputError(f"--artifact: {artifact_type!r} given twice")
        provider = load(artifact_type)
        if isinstance(provider, str):
            raise InputError(f"--artifact {artifact_type}: {provider}")
        content = provider.build(bundle)
        artifacts[artifact_type] = content
        manifest.append(
            {
                "artifact_type": artifact_type,
                "schema_version": str(provider.schema_version),
                "canonical_hash": content_hash(content),
                "required_for_verdict": required,
            }
        )
    bundle[BLOCK] = {"manifest": manifest, "artifacts": artifacts}


# -- verification --------------------------------------------------------------------


@dataclass
class ArtifactCheck:
    """What verification found about one artifact of the manifest."""

    artifact_type: str
    schema_version: str
    required: bool
    present: bool
    hash_match: bool | None = None
    provider: bool = False
    semantic: str = "not-checked"  # valid, invalid or not-checked
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.present and bool(self.hash_match) and self.provider and self.semantic == "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact_type": self.artifact_type,
            "schema_version": self.schema_version,
            "required_for_verdict": self.required,
            "present": self.present,
            "hash_match": self.hash_match,
            "provider_available": self.provider,
            "semantic_verdict": self.semantic,
            "ok": self.ok,
            "reasons": self.reasons,
        }


@dataclass
class ArtifactsReport:
    """The ``governance_artifacts`` block of a verdict."""

    enforced: bool
    present: bool = False
    artifacts: list[ArtifactCheck] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "enforced": self.enforced,
            "artifacts": [a.to_json() for a in self.artifacts],
        }


def shape_problems(block: Any) -> list[str]:
    """Why a ``governance_artifacts`` block is malformed (empty when well-formed)."""
    if not isinstance(block, dict) or set(block) != {"manifest", "artifacts"}:
        return ["must be an object with exactly the fields 'artifacts' and 'manifest'"]
    manifest, artifacts = block["manifest"], block["artifacts"]
    problems: list[str] = []
    if not isinstance(manifest, list) or not manifest:
        return ["manifest: must be a non-empty list"]
    if not isinstance(artifacts, dict):
        return ["artifacts: must be an object of artifact type -> content"]
    types: set[str] = set()
    for index, entry in enumerate(manifest):
        where = f"manifest[{index}]"
        if not isinstance(entry, dict) or set(entry) != _ENTRY:
            problems.append(f"{where}: must be an object with exactly the fields {sorted(_ENTRY)}")
            continue
        kind = entry["artifact_type"]
        if not isinstance(kind, str) or not _TYPE.match(kind):
            problems.append(f"{where}.artifact_type: {kind!r} is not an artifact type")
        elif kind in types:
            problems.append(f"{where}.artifact_type: {kind!r} appears twice")
        else:
            types.add(kind)
        if not isinstance(entry["schema_version"], str) or not entry["schema_version"]:
            problems.append(f"{where}.schema_version: must be a non-empty string")
        if not isinstance(entry["canonical_hash"], str) or not _HASH.match(entry["canonical_hash"]):
            problems.append(f"{where}.canonical_hash: must be sha256: and 64 lowercase hex digits")
        if not isinstance(entry["required_for_verdict"], bool):
            problems.append(f"{where}.required_for_verdict: must be true or false")
    for name in sorted(set(artifacts) - types):
        problems.append(f"artifacts.{name}: no manifest entry names it")
    return problems


def check_artifacts(
    bundle: Mapping[str, Any],
    enforce: bool,
    fail: Callable[[str, str], None],
    load: Callable[[str], ArtifactProvider | str] = load_provider,
) -> ArtifactsReport:
    """Report on the block of a bundle; under ``enforce``, fail what a required artifact lacks."""
    report = ArtifactsReport(enforced=enforce)
    if BLOCK not in bundle:
        return report
    report.present = True
    block = bundle[BLOCK]
    problems = shape_problems(block)
    for problem in problems:
        fail(BLOCK, problem)
    if problems:
        return report
    for entry in block["manifest"]:
        kind = entry["artifact_type"]
        check = ArtifactCheck(
            kind, entry["schema_version"], entry["required_for_verdict"], kind in block["artifacts"]
        )
        report.artifacts.append(check)
        _judge(check, entry, block["artifacts"], bundle, load)
        if enforce and check.required and not check.ok:
            fail(f"{BLOCK}.{kind}", "required artifact: " + "; ".join(check.reasons))
    return report


def _judge(
    check: ArtifactCheck,
    entry: dict[str, Any],
    artifacts: dict[str, Any],
    bundle: Mapping[str, Any],
    load: Callable[[str], ArtifactProvider | str],
) -> None:
    kind = check.artifact_type
    if not check.present:
        check.reasons.append("missing: the manifest names it, the bundle does not carry it")
    else:
        try:
            check.hash_match = content_hash(artifacts[kind]) == entry["canonical_hash"]
        except ExoArmurError as exc:
            check.hash_match = False
            check.reasons.append(f"content is not canonical JSON: {exc}")
        if check.hash_match is False and not check.reasons:
            check.reasons.append("content does not hash to the manifest's canonical_hash")
    provider = load(kind)
    if isinstance(provider, str):
        check.reasons.append(provider)
        return
    check.provider = True
    if str(provider.schema_version) != check.schema_version:
        check.semantic = "invalid"
        check.reasons.append(
            f"schema version {check.schema_version!r}; the provider reads "
            f"{provider.schema_version!r}"
        )
        return
    if not check.present:
        return
    try:
        why = provider.check(artifacts[kind], bundle)
    except Exception as exc:  # a provider that breaks on untrusted content has judged it
        why = f"the provider could not read it: {type(exc).__name__}: {exc}"
    check.semantic = "valid" if why is None else "invalid"
    if why is not None:
        check.reasons.append(f"invalid: {why}")


# -- the example provider --------------------------------------------------------------


class PolicySnapshot:
    """``policy-snapshot``: the policy bundles the bundle's decisions were made under.

    Its semantic check re-hashes every snapshot and requires the set of
    hashes to be exactly the policies the bundle's decision events name
    (events whose inclusion the bundle proves against signed checkpoints).
    """

    schema_version = "1"

    def build(self, bundle: Mapping[str, Any]) -> Any:
        named = _named_policies(bundle)
        policies = []
        for event in _context_events(bundle):
            payload = event.get("payload", {})
            if event.get("type") == POLICY_ACTIVATED and payload.get("policy_hash") in named:
                snapshot = {"policy_hash": payload["policy_hash"], "bundle": payload["bundle"]}
                policies.append(snapshot)
        if not policies:
            raise InputError("--artifact policy-snapshot: no decision in this correlation")
        return {"policies": sorted(policies, key=lambda p: str(p["policy_hash"]))}

    def check(self, content: Any, bundle: Mapping[str, Any]) -> str | None:
        from ..policy import PolicyBundle, PolicyEngine

        if not isinstance(content, dict) or set(content) != {"policies"}:
            return "must be an object with exactly the field 'policies'"
        hashes = set()
        for index, snapshot in enumerate(content["policies"]):
            engine = PolicyEngine(PolicyBundle.from_canonical(snapshot["bundle"]))
            if engine.policy_hash != snapshot["policy_hash"]:
                return f"policies[{index}]: the policy text does not hash to its policy_hash"
            hashes.add(engine.policy_hash)
        named = _named_policies(bundle)
        if not named:  # an empty snapshot of no decision would vouch for nothing
            return "the bundle holds no decision to compare with"
        if hashes != named:
            return f"snapshots of {sorted(hashes)}, but the decisions name {sorted(named)}"
        return None


def _events(bundle: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    import json

    out = []
    entries = bundle.get(name)
    for entry in entries if isinstance(entries, list) else []:
        try:
            event = json.loads(entry["event"])
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def _context_events(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return _events(bundle, "context")


def _named_policies(bundle: Mapping[str, Any]) -> set[str]:
    return {
        str(event["payload"]["decision"]["policy_hash"])
        for event in _events(bundle, "events")
        if event.get("type") == DECISION_RECORDED
    }
