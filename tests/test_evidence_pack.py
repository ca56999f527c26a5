"""Evidence packs: an audit stream from telemetry to outcome, one canonical file, verified."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from containment_kit import governor
from exoarmur.approvals.book import Vote
from exoarmur.cli import app
from exoarmur.containment.plans import door_net
from exoarmur.containment.room import plan_intent
from exoarmur.encoding import canonical_bytes, content_hash
from exoarmur.evidence import (
    PACK_FORMAT,
    export_bundle,
    export_pack,
    pack_bytes,
    verify_bundle,
    verify_bundle_text,
)
from exoarmur.evidence.pack import derive_evidence, evidence_hash
from exoarmur.evidence.provenance import STAGES
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import Event
from exoarmur.observations.intake import desk_of
from exoarmur.observations.model import parse_observation
from exoarmur.pipeline import Governor
from exoarmur.replay import replay
from spec_checker import check as spec_check
from spec_pack_checker import check_pack

KEY = SigningKey.generate("t/pack")
TARGETS = ["identity:alice", "endpoint:laptop-7", "workload:api"]
MARKER = re.compile(r"^([A-Z_]+)=(.*)$", re.MULTILINE)
SENSOR = {"id": "edr-sensor", "kind": "service"}
runner = CliRunner()


def record(g: Governor, kind: str, payload: dict[str, Any]) -> Event:
    """Append an event of another room (attestations) the normal way."""
    room = g.containment
    return room.state.append_one("acme", room.drafts.for_log("acme", kind, payload, SENSOR))


def telemetry(
    g: Governor, who: str, sources: list[str], kind: str = "login.failed", where: str = "lisbon"
) -> None:
    """Observations of ``who`` through the observation desk (which forms beliefs and shadows)."""
    observations = [
        parse_observation(
            {
                "source": source,
                "subject": {"kind": "identity", "id": who},
                "kind": kind,
                "attributes": {"attempt": n, "location": where},
                "event_time": f"2026-01-01T00:00:{n:02d}Z",
            }
        )
        for n, source in enumerate(sources)
    ]
    desk_of(g).record("acme", observations, SENSOR)


def about(g: Governor, kind: str, who: str) -> list[Event]:
    """The events of ``kind`` whose payload is about identity ``who``, in log order."""
    store = g.ledger.store
    found = []
    for event in store.events("acme", 0, store.size("acme")):
        if event.type != kind:
            continue
        body = next(iter(event.payload.values()))
        if body["subject"] == {"kind": "identity", "id": who}:
            found.append(event)
    return found


class Scene:
    def __init__(self, g: Governor, stream_id: str, ids: dict[str, str]) -> None:
        self.g, self.stream_id, self.ids = g, stream_id, ids

    def pack(self) -> dict[str, Any]:
        return export_pack(self.g.ledger, "acme", self.stream_id)


def build(path: Path) -> Scene:
    """Telemetry on alice (and on bob, unrelated), a belief, a shadow, heightened posture,
    then Door Net resting on the belief, approved by two operators and run."""
    g = governor(Ledger(SqliteStore(path / "l.db"), KEY))
    telemetry(g, "alice", ["idp", "vpn", "idp", "vpn", "idp"])
    telemetry(g, "bob", ["idp"] * 5)
    alice = about(g, "observation.recorded", "alice")
    ids = {f"o{n}": event for n, event in enumerate(alice, 1)}
    ids["stray"] = about(g, "observation.recorded", "bob")[0]
    (ids["b1"],) = about(g, "belief.formed", "alice")
    (ids["s1"],) = about(g, "shadow.created", "alice")
    (ids["s-bob"],) = about(g, "shadow.created", "bob")
    belief_id = ids["b1"].payload["belief"]["belief_id"]
    operators = [g.add_principal(f"op-{n}", "operator", ["acme"])[0] for n in range(2)]
    ids["posture"] = g.set_posture("acme", "heightened", "suspicious identity", operators[0])
    intent = plan_intent(door_net("acme", TARGETS), "acme", "soc")
    intent["params"]["evidence_refs"] = {"beliefs": [belief_id]}
    outcome = g.submit(intent)
    attested = {"intent_id": outcome.intent_id, "principal": "op-0", "note": "seen it"}
    ids["attested"] = record(g, "evidence.attested", attested)
    ids["other-attested"] = record(g, "evidence.attested", attested | {"intent_id": "01OTHER"})
    for operator in operators:
        g.vote("acme", outcome.intent_id, operator, Vote.APPROVE, "ok")
    telemetry(g, "alice", ["vpn"], kind="login.succeeded")
    telemetry(g, "alice", ["vpn"], kind="login.succeeded", where="oslo")  # the shadow grows
    (ids["late"],) = about(g, "shadow.updated", "alice")
    g.ledger.checkpoint("acme")
    named = {k: e.event_id for k, e in ids.items()}
    named["o2-observation"] = ids["o2"].payload["observation"]["observation_id"]
    return Scene(g, outcome.correlation_id, named)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    found = build(tmp_path)
    yield found
    found.g.close()


def test_a_pack_runs_from_observations_to_outcomes_and_verifies(scene: Scene) -> None:
    pack = scene.pack()
    assert pack["format"] == PACK_FORMAT
    chain, ids = pack["evidence"]["chain"], scene.ids
    assert list(chain) == list(STAGES)
    assert chain["observations"] == [ids[f"o{n}"] for n in range(1, 6)]  # through the belief
    assert chain["beliefs"] == [ids["b1"]]
    assert chain["shadows"] == [ids["s1"]]  # bob's is about someone else; the update is later
    assert chain["attestations"] == [ids["attested"]]  # not the one of another intent
    assert chain["posture"] == [ids["posture"]]
    assert chain["other"] == []
    for stage in ("approvals", "plan", "actions", "outcomes"):
        assert chain[stage], stage
    held = {json.loads(e["event"])["event_id"] for e in pack["evidence"]["events"]}
    assert not {ids["stray"], ids["s-bob"], ids["late"], ids["other-attested"]} & held
    assert pack["evidence"]["plan_hash"] == door_net("acme", TARGETS).plan_hash
    assert pack["evidence"]["policy_hash"] == scene.g.policy_for("acme").policy_hash
    verdict = verify_bundle_text(pack_bytes(pack), KEY.verifier_key())
    assert verdict.passed, verdict.failures
    assert check_pack(pack_bytes(pack), KEY.verifier_key()) == []  # written from the spec alone
    assert verdict.key_trusted
    assert verdict.complete
    assert verdict.decisions == 1
    assert verdict.evidence_hash == pack["evidence_hash"] == content_hash(pack["evidence"])
    assert verify_bundle(pack, KEY.verifier_key()).passed  # parsed, not read from a file


def test_the_same_stream_exports_the_same_bytes_and_replay_derives_the_same_hash(
    scene: Scene, tmp_path: Path
) -> None:
    first = pack_bytes(scene.pack())
    assert pack_bytes(scene.pack()) == first
    # from the ledger alone: another reader of the same store, after replay has verified it
    again = Ledger(SqliteStore(tmp_path / "l.db"), KEY)
    try:
        assert replay(again.store, "acme", verifier=again.verifier).verified
        stream = again.store.events_for_correlation("acme", scene.stream_id)
        end = max(e.seq for e in stream)
        body = derive_evidence("acme", scene.stream_id, stream, again.store.events("acme", 0, end))
    finally:
        again.store.close()
    assert evidence_hash(body) == json.loads(first)["evidence_hash"]
    # the log goes on: new checkpoint, new proofs, the same evidence
    telemetry(scene.g, "carol", ["idp"])
    scene.g.ledger.checkpoint("acme")
    later = scene.pack()
    assert later["evidence_hash"] == json.loads(first)["evidence_hash"]
    assert pack_bytes(later) != first


def test_a_missing_reference_is_noted_not_hidden(tmp_path: Path) -> None:
    g = governor(Ledger(SqliteStore(tmp_path / "l.db"), KEY))
    try:
        intent = plan_intent(door_net("acme", TARGETS[:1]), "acme", "soc")
        intent["params"]["evidence_refs"] = {"observations": ["o-absent"]}
        outcome = g.submit(intent)
        g.ledger.checkpoint("acme")
        verdict = verify_bundle(export_pack(g.ledger, "acme", outcome.correlation_id))
    finally:
        g.close()
    assert verdict.passed, verdict.failures
    assert any("observation o-absent" in note for note in verdict.notes)


# -- tampering -------------------------------------------------------------------------

_PACKED: dict[str, bytes] = {}


def _packed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if "bytes" not in _PACKED:
        found = build(tmp_path_factory.mktemp("tamper"))
        _PACKED["bytes"] = pack_bytes(found.pack())
        found.g.close()
    return _PACKED["bytes"]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=st.floats(min_value=0, max_value=1, exclude_max=True), flip=st.integers(1, 255))
def test_any_edited_byte_fails_verification_with_a_reason(
    tmp_path_factory: pytest.TempPathFactory, where: float, flip: int
) -> None:
    data = bytearray(_packed(tmp_path_factory))
    position = int(where * len(data))
    data[position] ^= flip
    verdict = verify_bundle_text(bytes(data), KEY.verifier_key())
    assert not verdict.passed, position
    assert check_pack(bytes(data), KEY.verifier_key()), position
    assert all(re.match(r"^[\w.\[\]]+: \S", f) for f in verdict.failures), verdict.failures


def _reseal(pack: dict[str, Any]) -> bytes:
    """A forger's pack: consistent hash and canonical bytes (what the key alone cannot sign)."""
    pack["evidence_hash"] = content_hash(pack["evidence"])
    return pack_bytes(pack)


def _insert(scene: Scene, pack: dict[str, Any], event_id: str) -> None:
    """Slip a real, provable event of the log into the pack, in log order."""
    ledger = scene.g.ledger
    event = ledger.event("acme", event_id)
    size = ledger.current_checkpoint("acme").checkpoint.size
    entries = list(zip(pack["evidence"]["events"], pack["attestation"]["proofs"], strict=True))
    proof = [h.hex() for h in ledger.inclusion("acme", event.seq, size).hashes]
    entries.append(({"leaf_index": event.seq, "event": event.canonical.decode()}, proof))
    entries.sort(key=lambda pair: int(pair[0]["leaf_index"]))
    pack["evidence"]["events"] = [e for e, _ in entries]
    pack["attestation"]["proofs"] = [p for _, p in entries]


def _stray(scene: Scene, pack: dict[str, Any]) -> None:
    _insert(scene, pack, scene.ids["stray"])
    pack["evidence"]["chain"]["observations"].insert(2, scene.ids["stray"])


def _refiled(scene: Scene, pack: dict[str, Any]) -> None:
    chain = pack["evidence"]["chain"]
    chain["outcomes"].append(chain["actions"].pop())


def _plan_hash(scene: Scene, pack: dict[str, Any]) -> None:
    pack["evidence"]["plan_hash"] = content_hash({"another": "plan"})


def _proof_dropped(scene: Scene, pack: dict[str, Any]) -> None:
    pack["attestation"]["proofs"].pop()


def _extra_field(scene: Scene, pack: dict[str, Any]) -> None:
    pack["evidence"]["exported_at"] = "2026-01-01T00:00:00Z"


def _event_removed(scene: Scene, pack: dict[str, Any]) -> None:
    index = next(
        i
        for i, e in enumerate(pack["evidence"]["events"])
        if json.loads(e["event"])["event_id"] == scene.ids["o2"]
    )
    del pack["evidence"]["events"][index]
    del pack["attestation"]["proofs"][index]
    pack["evidence"]["chain"]["observations"].remove(scene.ids["o2"])


@pytest.mark.parametrize(
    ("doctor", "message"),
    [
        (_stray, "joins the stream by no reference, subject or decision"),
        (_refiled, "evidence.chain: differs from the chain its events make"),
        (_plan_hash, "evidence.plan_hash: "),
        (_proof_dropped, "attestation.proofs: "),
        (_extra_field, "unexpected field 'exported_at'"),
        # a withheld observation: the belief still names it, and the verifier says so
        (_event_removed, None),
    ],
)
def test_consistent_forgeries_are_named(scene: Scene, doctor: Any, message: str | None) -> None:
    pack = scene.pack()
    doctor(scene, pack)
    raw = _reseal(pack)
    verdict = verify_bundle_text(raw, KEY.verifier_key())
    assert bool(check_pack(raw, KEY.verifier_key())) != verdict.passed  # the spec agrees
    if message is None:
        assert verdict.passed, verdict.failures
        withheld = f"observation {scene.ids['o2-observation']}"
        assert any(withheld in note for note in verdict.notes)
        return
    assert not verdict.passed
    assert any(message in failure for failure in verdict.failures), verdict.failures


def _first_event(pack: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(pack["evidence"]["events"][0]["event"])
    return event


def _swap_first_two(pack: dict[str, Any]) -> None:
    for name in (("evidence", "events"), ("attestation", "proofs")):
        items = pack[name[0]][name[1]]
        items[0], items[1] = items[1], items[0]


def _twice(pack: dict[str, Any]) -> None:
    pack["evidence"]["events"].append(pack["evidence"]["events"][-1])
    pack["attestation"]["proofs"].append(pack["attestation"]["proofs"][-1])


def _keep_only_joined(pack: dict[str, Any]) -> None:
    stream = pack["evidence"]["audit_stream_id"]
    keep = [
        i
        for i, e in enumerate(pack["evidence"]["events"])
        if json.loads(e["event"])["correlation_id"] != stream
    ]
    pack["evidence"]["events"] = [pack["evidence"]["events"][i] for i in keep]
    pack["attestation"]["proofs"] = [pack["attestation"]["proofs"][i] for i in keep]


@pytest.mark.parametrize(
    ("doctor", "message"),
    [
        (lambda p: p.update(format="exoarmur.evidence-pack/v9"), "format: expected"),
        (lambda p: p.pop("attestation"), "pack: must be an object with exactly the fields"),
        (lambda p: p["attestation"].pop("context"), "missing field 'context'"),
        (lambda p: p["evidence"].update(tenant=7), "evidence.tenant: must be a non-empty string"),
        (lambda p: p["evidence"].update(events={}), "evidence.events: events and attestation"),
        (
            lambda p: (p["evidence"].update(events=[]), p["attestation"].update(proofs=[])),
            "evidence.events: is empty",
        ),
        (
            lambda p: p["evidence"]["events"][0].update(log="acme"),
            "evidence.events[0]: must be an object with exactly leaf_index and event",
        ),
        (lambda p: p["attestation"].update(public_key="nonsense"), "public_key: "),
        (
            lambda p: p["attestation"]["context"][0].update(
                event=p["evidence"]["events"][-1]["event"]
            ),
            "attestation.context[0]: ",
        ),
        (_swap_first_two, "out of log order, or twice"),
        (_twice, "appears twice"),
        (_keep_only_joined, "hold no event of audit stream"),
        (lambda p: p["evidence"].update(audit_stream_id="another"), "evidence.events"),
    ],
)
def test_malformed_packs_fail_naming_the_field(scene: Scene, doctor: Any, message: str) -> None:
    pack = scene.pack()
    doctor(pack)
    if isinstance(pack.get("evidence"), dict):
        pack["evidence_hash"] = content_hash(pack["evidence"])
    verdict = verify_bundle(pack, KEY.verifier_key())
    assert not verdict.passed
    assert any(message in failure for failure in verdict.failures), verdict.failures


def test_an_event_of_another_stream_is_refused_whatever_its_proof(scene: Scene) -> None:
    pack = scene.pack()
    zed = scene.g.submit(
        {
            "tenant": "acme",
            "actor": {"id": "soc", "kind": "agent"},
            "action": "containment.rate_limit",
            "target": "identity:zed",
            "safety_class": "A1",
            "params": {
                "containment": {"scope": {"kind": "identity", "id": "zed"}, "ttl_seconds": 60}
            },
            "correlation_id": "zed",
        }
    )
    scene.g.ledger.checkpoint("acme")
    fresh = scene.pack()  # the same evidence, a checkpoint that covers zed's events
    assert fresh["evidence_hash"] == pack["evidence_hash"]
    recorded = scene.g.story("acme", zed.intent_id)[0]
    _insert(scene, fresh, recorded.event_id)
    raw = _reseal(fresh)
    verdict = verify_bundle_text(raw, KEY.verifier_key())
    assert "joined" in check_pack(raw, KEY.verifier_key())
    assert any(
        "only observations, beliefs, shadows, attestations and posture join" in f
        for f in verdict.failures
    )


def test_a_pack_re_indented_is_not_the_artifact(scene: Scene) -> None:
    pack = scene.pack()
    verdict = verify_bundle_text(json.dumps(pack, indent=2, sort_keys=True), KEY.verifier_key())
    assert verdict.failures == [
        "pack: the file is not the pack's canonical bytes (RFC 8785) and one newline"
    ]
    assert canonical_bytes(pack) + b"\n" == pack_bytes(pack)


# -- the command line -------------------------------------------------------------------


def _markers(text: str) -> dict[str, str]:
    return dict(MARKER.findall(text))


def test_the_demo_is_stable_across_homes_and_its_pack_verifies_offline(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        result = runner.invoke(
            app, ["--home", str(tmp_path / name), "demo", "evidence_pack", "--deterministic"]
        )
        assert result.exit_code == 0, result.output
        runs.append(_markers(result.stdout))
    first, second = runs
    for stable in ("EVIDENCE_HASH", "PLAN_HASH", "POLICY_HASH_IN_EFFECT", "AUDIT_STREAM_ID"):
        assert first[stable] == second[stable], stable
    assert first["REPLAY_VERIFIED"] == first["PACK_VERIFIED"] == "true"
    assert first["ARTIFACT_PATH"] == str(tmp_path / "a" / "evidence-pack.json")
    home = ["--home", str(tmp_path / "a")]
    checked = runner.invoke(app, ["verify-bundle", first["ARTIFACT_PATH"]])
    assert checked.exit_code == 0, checked.output
    assert _markers(checked.stdout)["EVIDENCE_HASH"] == first["EVIDENCE_HASH"]
    stream = first["AUDIT_STREAM_ID"]
    replayed = runner.invoke(app, [*home, "replay", "verify", "--audit-stream-id", stream])
    assert replayed.exit_code == 0, replayed.output  # no --tenant: the stream names it
    assert _markers(replayed.stdout)["EVIDENCE_HASH"] == first["EVIDENCE_HASH"]
    out = tmp_path / "again.json"
    packed = runner.invoke(
        app, [*home, "evidence", "pack", "--audit-stream-id", stream, "--out", str(out)]
    )
    assert packed.exit_code == 0, packed.output
    assert out.read_bytes() == Path(first["ARTIFACT_PATH"]).read_bytes()
    to_stdout = runner.invoke(app, [*home, "evidence", "pack", "--audit-stream-id", stream])
    assert to_stdout.stdout_bytes == out.read_bytes()
    exported = runner.invoke(
        app,
        [*home, "evidence", "export", "--audit-stream-id", stream, "-o", str(tmp_path / "b.json")],
    )
    assert exported.exit_code == 0, exported.output
    shown = runner.invoke(app, [*home, "plan", "show", "--audit-stream-id", stream, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["plan_hash"] == first["PLAN_HASH"]
    listed = runner.invoke(app, [*home, "log", "--audit-stream-id", stream, "--json"])
    events = json.loads(listed.stdout)["events"]
    assert events
    assert {e["correlation_id"] for e in events} == {stream}


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "verify"],
        ["evidence", "pack"],
        ["evidence", "export", "-o", "never.json"],
        ["log"],
        ["plan", "show"],
    ],
)
def test_an_unknown_audit_stream_is_an_error_naming_the_flag(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(home), "demo", "quickstart"]).exit_code == 0
    result = runner.invoke(
        app, ["--home", str(home), *command, "--audit-stream-id", "01NOSUCHSTREAM"]
    )
    assert result.exit_code == 2, result.output
    assert "--audit-stream-id" in result.stderr
    assert "'01NOSUCHSTREAM'" in result.stderr
    assert "VERIFIED" not in result.stdout
    assert "EVIDENCE_HASH" not in result.stdout
    assert not (tmp_path / "never.json").exists()
    elsewhere = runner.invoke(
        app, ["--home", str(home), *command, "-t", "nobody", "--audit-stream-id", "x"]
    )
    assert elsewhere.exit_code == 2
    assert "'nobody'" in elsewhere.stderr


def test_a_stream_in_two_tenants_needs_a_tenant(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for tenant in ("acme", "globex"):
        intent = tmp_path / f"{tenant}.json"
        intent.write_text(
            json.dumps(
                {
                    "tenant": tenant,
                    "actor": {"id": "bot", "kind": "agent"},
                    "action": "ticket.read",
                    "target": "t/1",
                    "safety_class": "A0",
                    "correlation_id": "shared-stream",
                }
            )
        )
        if not home.exists():
            assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
        runner.invoke(app, ["--home", str(home), "submit", str(intent)])
    both = runner.invoke(
        app, ["--home", str(home), "replay", "verify", "--audit-stream-id", "shared-stream"]
    )
    assert both.exit_code == 2
    assert "acme, globex" in both.stderr
    assert "--tenant" in both.stderr
    runner.invoke(app, ["--home", str(home), "checkpoint", "--tenant", "globex"])
    one = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "replay",
            "verify",
            "-t",
            "globex",
            "--audit-stream-id",
            "shared-stream",
        ],
    )
    assert one.exit_code == 0, one.output
    no_plan = runner.invoke(
        app,
        ["--home", str(home), "plan", "show", "-t", "acme", "--audit-stream-id", "shared-stream"],
    )
    assert no_plan.exit_code == 2
    assert "holds no plan" in no_plan.stderr
    neither = runner.invoke(app, ["--home", str(home), "replay", "verify"])
    assert neither.exit_code == 2
    assert "--tenant" in neither.stderr


# -- HTTP -------------------------------------------------------------------------------


def test_the_pack_is_served_to_readers_of_the_tenant_as_its_canonical_bytes(
    tmp_path: Path,
) -> None:
    from test_server_support import FORBIDDEN, deploy, submit

    dep = deploy(tmp_path / "home")
    try:
        denied = submit(dep, "agent-7", FORBIDDEN, 200)
        query = {"tenant": "acme", "audit_stream_id": denied["correlation_id"]}
        answer = dep.client.get("/v1/evidence/pack", params=query, headers=dep.auth("audrey"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        verdict = verify_bundle_text(answer.content)
        assert verdict.passed, verdict.failures
        for stranger in ("agent-7", "mallory"):
            refused = dep.client.get("/v1/evidence/pack", params=query, headers=dep.auth(stranger))
            assert refused.status_code == 403
        unknown = query | {"audit_stream_id": "nothing-here"}
        missing = dep.client.get("/v1/evidence/pack", params=unknown, headers=dep.auth("audrey"))
        assert missing.status_code == 404
    finally:
        dep.client.close()
        dep.governor.close()


def test_the_benchmark_measures_bundles_and_packs_at_each_size() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_evidence_pack.py"
    done = subprocess.run(
        [sys.executable, str(script), "--sizes", "16,40"],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["events"] >= size for row, size in zip(rows, (16, 40), strict=True)] == [True] * 2
    assert all(row["pack_verify_s"] >= 0 and row["bundle_verify_s"] >= 0 for row in rows)


# -- bundles of ledgers older than the class floor ---------------------------------------


def test_a_bundle_decided_before_the_class_floor_verifies_as_replay_re_derives_it(
    tmp_path: Path,
) -> None:
    """A decision recorded under a snapshot with no class floor had none: as replay reads it.

    Found while writing the spec checker: the bundle's re-decision applied
    today's default floor to such snapshots (replay does not), so a bundle of
    an older ledger's A2 action allowed without approval failed to verify.
    """
    from containment_kit import action
    from forgery import forge, of_type

    g = governor(Ledger(SqliteStore(tmp_path / "l.db"), KEY))
    try:
        outcome = g.submit(action("isolate_endpoint", "endpoint:laptop-7", correlation_id="iso"))
        operator, _ = g.add_principal("op", "operator", ["acme"])
        g.vote("acme", outcome.intent_id, operator, Vote.APPROVE, "ok")
        g.ledger.checkpoint("acme")
        honest = export_bundle(g.ledger, "acme", "iso")
    finally:
        g.close()

    def before_the_floor(events: list[Any], context: list[Any]) -> None:
        snapshot = of_type(context, "config.snapshot").event["payload"]
        del snapshot["config"]["gate"]["class_floor"]
        snapshot["config_hash"] = content_hash(snapshot["config"])
        decided = of_type(events, "decision.recorded").event["payload"]["decision"]
        decided.update(verdict="allow", config_hash=snapshot["config_hash"])
        del decided["obligations"]["approval"]
        del decided["gate"]
        gone = {"gate.blocked", "approval.requested", "approval.granted", "intent.approved"}
        events[:] = [e for e in events if e.event["type"] not in gone]

    old = forge(honest, before_the_floor, KEY)
    verdict = verify_bundle(old, KEY.verifier_key())
    assert verdict.passed, verdict.failures
    assert spec_check(old, KEY.verifier_key()) == []

    # and with the floor in its snapshot, the same allow is caught
    def floor_kept(events: list[Any], context: list[Any]) -> None:
        before_the_floor(events, context)
        snapshot = of_type(context, "config.snapshot").event["payload"]
        snapshot["config"]["gate"]["class_floor"] = {"A2": 1}
        snapshot["config_hash"] = content_hash(snapshot["config"])
        of_type(events, "decision.recorded").event["payload"]["decision"]["config_hash"] = snapshot[
            "config_hash"
        ]

    caught = verify_bundle(forge(honest, floor_kept, KEY), KEY.verifier_key())
    assert any("decision.verdict" in f or "decision.gate" in f for f in caught.failures), (
        caught.failures
    )
