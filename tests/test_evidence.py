"""Evidence bundles: exported from the ledger, verified offline, every meaningful edit caught."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.encoding import content_hash
from exoarmur.errors import NotFound
from exoarmur.evidence import export_bundle, verify_bundle, verify_bundle_text
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from test_replay import GOLDEN, KEY, MANIFEST, load


@pytest.fixture
def golden(tmp_path: Path) -> Ledger:
    ledger = Ledger(load(GOLDEN / MANIFEST["good"], tmp_path), KEY)
    yield ledger
    ledger.store.close()


def approved_correlation(ledger: Ledger) -> str:
    approved = next(e for e in ledger.store.events("acme") if e.type == "intent.approved")
    return approved.correlation_id


def test_a_bundle_of_an_approved_intent_verifies(golden: Ledger) -> None:
    bundle = export_bundle(golden, "acme", approved_correlation(golden))
    types = [json.loads(e["event"])["type"] for e in bundle["events"]]
    assert "approval.granted" in types
    assert types[-1] == "execution.finished"
    verdict = verify_bundle(bundle, KEY.verifier_key())
    assert verdict.passed, verdict.failures
    assert verdict.key_trusted
    assert verdict.decisions == 1
    untrusted = verify_bundle(bundle)
    assert untrusted.passed
    assert "no trusted key given" in untrusted.notes[0]


def test_every_bundle_of_the_golden_history_verifies(golden: Ledger) -> None:
    correlations = {e.correlation_id for e in golden.store.events("acme") if e.intent_id}
    for correlation in sorted(correlations):
        verdict = verify_bundle(export_bundle(golden, "acme", correlation), KEY.verifier_key())
        assert verdict.passed, (correlation, verdict.failures)


def test_bundles_hold_only_the_requested_tenants_data(tmp_path: Path) -> None:
    from exoarmur.clock import StepClock
    from exoarmur.ids import SeededIds
    from exoarmur.ledger.sqlite import SqliteStore
    from exoarmur.pipeline import Governor
    from exoarmur.policy import PolicyBundle, PolicyEngine

    governor = Governor(
        ledger=Ledger(SqliteStore(tmp_path / "l.db"), KEY),
        policy=PolicyEngine(
            PolicyBundle.from_text('@id("all") permit (principal, action, resource);')
        ),
        clock=StepClock(),
        ids=SeededIds(9),
    )
    for tenant in ("acme", "globex"):
        governor.submit(
            {
                "tenant": tenant,
                "actor": {"id": "a"},
                "action": "x.y",
                "target": "shared",
                "safety_class": "A0",
                "correlation_id": "same-id",
            }
        )
    bundle = export_bundle(governor.ledger, "acme", "same-id")
    assert {json.loads(e["event"])["tenant"] for e in bundle["events"]} == {"acme"}
    assert {json.loads(e["event"])["type"] for e in bundle["context"]} <= {
        "policy.activated",
        "config.snapshot",
    }
    assert "globex" not in json.dumps(bundle)
    with pytest.raises(NotFound):
        export_bundle(governor.ledger, "acme", "no-such-correlation")
    governor.close()


def _rehash(bundle: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    return body | {"bundle_hash": content_hash(body)}


def _rehash_if_possible(bundle: dict[str, Any]) -> dict[str, Any] | None:
    from exoarmur.errors import InputError

    try:
        return _rehash(bundle)
    except InputError:
        return None  # not canonicalizable JSON: rejected before any hash is compared


def test_every_byte_flip_that_changes_meaning_is_caught(golden: Ledger) -> None:
    bundle = export_bundle(golden, "acme", approved_correlation(golden))
    text = json.dumps(bundle, sort_keys=True)
    data = text.encode()
    rng = random.Random(20261125)
    positions = sorted(rng.sample(range(len(data)), min(len(data), 1200)))
    meaningful = 0
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        try:
            edited = json.loads(bytes(flipped))
        except (json.JSONDecodeError, UnicodeDecodeError):
            assert not verify_bundle_text(bytes(flipped), KEY.verifier_key()).passed
            continue
        if edited == bundle:
            continue  # the same document (e.g. whitespace): nothing to catch
        meaningful += 1
        as_is = verify_bundle(edited, KEY.verifier_key())
        assert not as_is.passed, f"flip at byte {position} went unnoticed"
        # A forger who also recomputes the bundle hash is still caught.
        if not isinstance(edited, dict) or "bundle_hash" not in edited:
            continue
        forged = _rehash_if_possible(edited)
        if forged is None or forged == bundle:
            continue  # the flip was in the hash itself: recomputing it undoes the edit
        assert not verify_bundle(forged, KEY.verifier_key()).passed, (
            f"flip at byte {position} with a recomputed hash went unnoticed"
        )
    assert meaningful > 800  # most of the sampled flips change meaning


@pytest.mark.parametrize(
    ("doctor", "message"),
    [
        (lambda b: b["events"].pop(0), "no recorded intent"),
        (lambda b: b.update(tenant="globex"), "does not belong in events"),
        (lambda b: b.update(correlation_id="other"), "belongs to correlation"),
        (lambda b: b["context"].clear(), "lacks the policy"),
        (lambda b: b["checkpoints"].pop("acme"), "no verified checkpoint"),
        (lambda b: b.update(format="v0"), "format"),
        (lambda b: b.pop("context"), "exactly the fields"),
    ],
)
def test_structural_forgeries_are_named(golden: Ledger, doctor: Any, message: str) -> None:
    bundle = export_bundle(golden, "acme", approved_correlation(golden))
    doctor(bundle)
    verdict = verify_bundle(_rehash(bundle) if "context" in bundle else bundle, KEY.verifier_key())
    assert not verdict.passed
    assert any(message in failure for failure in verdict.failures), verdict.failures


def test_another_key_is_refused(golden: Ledger) -> None:
    bundle = export_bundle(golden, "acme", approved_correlation(golden))
    other = SigningKey.from_seed("golden.exoarmur/log", hashlib.sha256(b"other").digest())
    verdict = verify_bundle(bundle, other.verifier_key())
    assert not verdict.passed
    assert any("another key" in f for f in verdict.failures)
    assert any("signature" in f or "checkpoint" in f for f in verdict.failures)
    assert not verify_bundle(bundle, "not a key").passed


runner = CliRunner()


def test_export_and_verify_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(home), "demo", "quickstart"]).exit_code == 0
    events = json.loads(
        runner.invoke(app, ["--home", str(home), "log", "-t", "demo", "--json"]).stdout
    )["events"]
    out = tmp_path / "bundle.json"
    exported = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "evidence",
            "export",
            "-t",
            "demo",
            "-c",
            events[0]["correlation_id"],
            "-o",
            str(out),
        ],
    )
    assert exported.exit_code == 0, exported.output
    key = tmp_path / "key.pub"
    key.write_text(runner.invoke(app, ["--home", str(home), "key", "public"]).stdout)
    # a reviewer needs no home at all
    ok = runner.invoke(
        app,
        ["--home", str(tmp_path / "nowhere"), "verify-bundle", str(out), "--public-key", f"@{key}"],
    )
    assert ok.exit_code == 0, ok.output
    assert "VERIFY_VERDICT=PASS" in ok.stdout
    assert (
        json.loads(runner.invoke(app, ["verify-bundle", str(out), "--json"]).stdout)["verdict"]
        == "PASS"
    )
    out.write_text(out.read_text().replace("reports/q3.txt", "reports/q4.txt"))
    bad = runner.invoke(app, ["verify-bundle", str(out)])
    assert bad.exit_code == 1
    assert "VERIFY_VERDICT=FAIL" in bad.stdout
    missing = runner.invoke(
        app, ["--home", str(home), "evidence", "export", "-t", "demo", "-c", "nope", "-o", str(out)]
    )
    assert missing.exit_code == 2  # an unknown stream is bad input naming the flag
    assert "--correlation/--audit-stream-id: no events of correlation 'nope'" in missing.stderr
    assert runner.invoke(app, ["verify-bundle", str(tmp_path / "none.json")]).exit_code == 2
