"""Governance artifacts in evidence bundles: reported by default, fail closed when enforced."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.demo_golden import STREAM, TENANT, run_golden
from exoarmur.encoding import content_hash
from exoarmur.errors import InputError
from exoarmur.evidence import artifacts as artifacts_module
from exoarmur.evidence import verify_bundle
from exoarmur.evidence.artifacts import (
    ENFORCEMENT_FLAG,
    PolicySnapshot,
    enforcement_enabled,
    load_provider,
)
from spec_checker import check as spec_check

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("artifacts") / "home"
    run_golden(where)
    return where


def export(home: Path, out: Path, *artifacts: str) -> Any:
    args = ["--home", str(home), "evidence", "export", "-t", TENANT, "-c", STREAM, "-o", str(out)]
    for artifact in artifacts:
        args += ["--artifact", artifact]
    return runner.invoke(app, args)


def exported(home: Path, tmp_path: Path, *artifacts: str) -> dict[str, Any]:
    out = tmp_path / "bundle.json"
    result = export(home, out, *artifacts)
    assert result.exit_code == 0, result.output
    bundle: dict[str, Any] = json.loads(out.read_text())
    return bundle


def resealed(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle with its bundle_hash recomputed: what anyone who edits it can do."""
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    return body | {"bundle_hash": content_hash(body)}


def key(home: Path) -> str:
    from exoarmur.home import Home

    return Home(home).signing_key().verifier_key()


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution with two providers: one that refuses all, one that is broken."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "always_invalid_artifact.py").write_text(
        "class AlwaysInvalid:\n"
        "    schema_version = '1'\n\n"
        "    def build(self, bundle):\n"
        "        return {'claim': 'anything'}\n\n"
        "    def check(self, content, bundle):\n"
        "        return 'this provider refuses every artifact'\n"
    )
    dist = site / "always_invalid_artifact-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: always-invalid-artifact\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[exoarmur.governance_artifacts]\n"
        "always-invalid = always_invalid_artifact:AlwaysInvalid\n"
        "broken = no_such_module_anywhere:Nothing\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("always_invalid_artifact", None)


def test_a_bundle_carries_a_policy_snapshot_that_checks(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot")
    manifest = bundle["governance_artifacts"]["manifest"]
    assert manifest == [
        {
            "artifact_type": "policy-snapshot",
            "schema_version": "1",
            "canonical_hash": content_hash(
                bundle["governance_artifacts"]["artifacts"]["policy-snapshot"]
            ),
            "required_for_verdict": False,
        }
    ]
    assert spec_check(bundle, key(home)) == []
    result = runner.invoke(app, ["verify-bundle", "--bundle", str(tmp_path / "bundle.json")])
    assert result.exit_code == 0, result.output
    assert (
        "  policy-snapshot v1 (optional): present=true, hash match, provider available, "
        "semantic valid" in result.stdout.splitlines()
    )
    assert "governance artifacts (reported only):" in result.stdout
    as_json = runner.invoke(app, ["verify-bundle", str(tmp_path / "bundle.json"), "--json"])
    block = json.loads(as_json.stdout)["governance_artifacts"]
    assert block["present"] is True
    assert block["enforced"] is False
    assert block["artifacts"][0] | {"reasons": []} == {
        "artifact_type": "policy-snapshot",
        "schema_version": "1",
        "required_for_verdict": False,
        "present": True,
        "hash_match": True,
        "provider_available": True,
        "semantic_verdict": "valid",
        "ok": True,
        "reasons": [],
    }


def test_a_bundle_without_artifacts_loads_no_provider(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = exported(home, tmp_path)
    assert "governance_artifacts" not in bundle

    def no_discovery(**_: Any) -> Any:
        raise AssertionError("providers discovered for a bundle without artifacts")

    monkeypatch.setattr(artifacts_module, "entry_points", no_discovery)
    verdict = verify_bundle(bundle, key(home), enforce_artifacts=True)
    assert verdict.passed, verdict.failures
    assert verdict.to_json()["governance_artifacts"] == {
        "present": False,
        "enforced": True,
        "artifacts": [],
    }


def _swap_policy_text(bundle: dict[str, Any], fix_hash: bool) -> dict[str, Any]:
    block = bundle["governance_artifacts"]
    files = block["artifacts"]["policy-snapshot"]["policies"][0]["bundle"]["files"]
    name = next(iter(files))
    files[name] = "permit (principal, action, resource);\n"
    if fix_hash:
        block["manifest"][0]["canonical_hash"] = content_hash(block["artifacts"]["policy-snapshot"])
    return resealed(bundle)


@pytest.mark.parametrize(
    ("fix_hash", "words"),
    [
        (True, "invalid: policies[0]: the policy text does not hash to its policy_hash"),
        (False, "content does not hash to the manifest's canonical_hash"),
    ],
)
@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize("enforce", [True, False])
def test_a_tampered_artifact_is_caught_and_fails_only_when_required_and_enforced(
    home: Path, tmp_path: Path, fix_hash: bool, words: str, required: bool, enforce: bool
) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot:required" if required else "policy-snapshot")
    assert bundle["governance_artifacts"]["manifest"][0]["required_for_verdict"] is required
    forged = _swap_policy_text(bundle, fix_hash)
    verdict = verify_bundle(forged, key(home), enforce_artifacts=enforce)
    check = verdict.artifacts.artifacts[0]
    assert not check.ok
    assert check.hash_match is fix_hash
    assert any(words in reason for reason in check.reasons), check.reasons
    assert verdict.passed is not (required and enforce)
    if required and enforce:
        assert verdict.failures[0].startswith("governance_artifacts.policy-snapshot: required")
    assert spec_check(forged, key(home)) == []  # outside the spec's verdict, as documented


def test_an_edit_without_resealing_breaks_the_bundle_hash(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot")
    bundle["governance_artifacts"]["artifacts"]["policy-snapshot"]["policies"] = []
    verdict = verify_bundle(bundle, key(home))
    assert "bundle_hash: does not match the bundle's content" in verdict.failures


def test_a_missing_required_artifact_fails_when_enforced(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot:required")
    bundle["governance_artifacts"]["artifacts"] = {}
    forged = resealed(bundle)
    reported = verify_bundle(forged, key(home))
    assert reported.passed
    assert reported.artifacts.artifacts[0].present is False
    assert "missing" in reported.artifacts.artifacts[0].reasons[0]
    assert not verify_bundle(forged, key(home), enforce_artifacts=True).passed


def test_an_artifact_without_a_provider(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot:required")
    block = bundle["governance_artifacts"]
    block["manifest"][0]["artifact_type"] = "unheard-of"
    block["artifacts"] = {"unheard-of": block["artifacts"]["policy-snapshot"]}
    forged = resealed(bundle)
    check = verify_bundle(forged, key(home)).artifacts.artifacts[0]
    assert (check.provider, check.semantic, check.hash_match) == (False, "not-checked", True)
    assert check.reasons == ["no provider installed"]
    enforced = verify_bundle(forged, key(home), enforce_artifacts=True)
    assert enforced.failures == [
        "governance_artifacts.unheard-of: required artifact: no provider installed"
    ]


def test_another_schema_version_is_invalid(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot")
    bundle["governance_artifacts"]["manifest"][0]["schema_version"] = "2"
    check = verify_bundle(resealed(bundle), key(home)).artifacts.artifacts[0]
    assert check.semantic == "invalid"
    assert "the provider reads '1'" in check.reasons[0]


@pytest.mark.usefixtures("plugins")
def test_an_installed_provider_that_says_invalid(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bundle.json"
    assert export(home, out, "always-invalid:required", "policy-snapshot").exit_code == 0
    result = runner.invoke(app, ["verify-bundle", str(out)])
    assert result.exit_code == 0, result.output
    assert "semantic invalid — invalid: this provider refuses every artifact" in result.stdout
    monkeypatch.setenv(ENFORCEMENT_FLAG, "true")
    enforced = runner.invoke(app, ["verify-bundle", str(out), "--json"])
    assert enforced.exit_code == 1
    report = json.loads(enforced.stdout)
    assert report["verify_verdict"] == "FAIL"
    assert report["governance_artifacts"]["enforced"] is True
    assert report["failures"] == [
        "governance_artifacts.always-invalid: required artifact: invalid: "
        "this provider refuses every artifact"
    ]
    assert [a["ok"] for a in report["governance_artifacts"]["artifacts"]] == [False, True]


@pytest.mark.usefixtures("plugins")
def test_a_provider_that_cannot_be_loaded_is_reported() -> None:
    reason = load_provider("broken")
    assert isinstance(reason, str)
    assert "cannot be loaded: ModuleNotFoundError" in reason


def test_the_home_config_turns_enforcement_on(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot:required")
    bundle["governance_artifacts"]["artifacts"] = {}
    (tmp_path / "forged.json").write_text(json.dumps(resealed(bundle)))
    other = tmp_path / "other-home"
    run_golden(other)
    config = (other / "config.toml").read_text()
    (other / "config.toml").write_text(
        config + "\n[evidence]\ngovernance_artifact_enforcement = true\n"
    )
    base = ["verify-bundle", str(tmp_path / "forged.json")]
    assert runner.invoke(app, ["--home", str(home), *base]).exit_code == 0
    assert runner.invoke(app, ["--home", str(other), *base]).exit_code == 1


@pytest.mark.parametrize(
    ("environ", "config", "expected"),
    [
        ({}, {}, False),
        ({ENFORCEMENT_FLAG: "true"}, {}, True),
        ({ENFORCEMENT_FLAG: "1"}, {}, True),
        (
            {ENFORCEMENT_FLAG: "false"},
            {"evidence": {"governance_artifact_enforcement": True}},
            False,
        ),
        ({ENFORCEMENT_FLAG: " "}, {"evidence": {"governance_artifact_enforcement": True}}, True),
        ({}, {"evidence": {"governance_artifact_enforcement": False}}, False),
    ],
)
def test_enforcement_setting(
    environ: dict[str, str], config: dict[str, Any], expected: bool
) -> None:
    assert enforcement_enabled(environ, config) is expected


@pytest.mark.parametrize(
    ("environ", "config", "words"),
    [
        ({ENFORCEMENT_FLAG: "yes"}, {}, ENFORCEMENT_FLAG),
        ({}, {"evidence": {"governance_artifact_enforcement": "on"}}, "must be true or false"),
    ],
)
def test_a_bad_enforcement_setting_is_refused(
    environ: dict[str, str], config: dict[str, Any], words: str
) -> None:
    with pytest.raises(InputError, match=words):
        enforcement_enabled(environ, config)


MALFORMED = {
    "not an object": [],
    "extra field": {"manifest": [], "artifacts": {}, "x": 1},
    "empty manifest": {"manifest": [], "artifacts": {}},
    "artifacts not an object": {"manifest": [{}], "artifacts": []},
    "entry fields": {"manifest": [{"artifact_type": "a"}], "artifacts": {}},
}
GOOD_ENTRY = {
    "artifact_type": "policy-snapshot",
    "schema_version": "1",
    "canonical_hash": "sha256:" + "0" * 64,
    "required_for_verdict": False,
}
for _name, _change in {
    "bad type": {"artifact_type": "Policy Snapshot"},
    "empty version": {"schema_version": ""},
    "bad hash": {"canonical_hash": "sha256:ABC"},
    "required not a boolean": {"required_for_verdict": 1},
}.items():
    MALFORMED[_name] = {"manifest": [GOOD_ENTRY | _change], "artifacts": {}}
MALFORMED["type twice"] = {"manifest": [GOOD_ENTRY, GOOD_ENTRY], "artifacts": {}}
MALFORMED["content without entry"] = {"manifest": [GOOD_ENTRY], "artifacts": {"other": 1}}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_block_fails_the_bundle(home: Path, tmp_path: Path, name: str) -> None:
    bundle = exported(home, tmp_path) | {"governance_artifacts": MALFORMED[name]}
    forged = resealed(bundle)
    verdict = verify_bundle(forged, key(home))
    assert not verdict.passed
    assert verdict.failures[0].startswith("governance_artifacts: ")
    assert spec_check(forged, key(home)), "the spec checker must refuse it too"


@pytest.mark.parametrize(
    ("artifact", "words"),
    [
        ("unheard-of", "--artifact unheard-of: no provider installed"),
        ("policy-snapshot:maybe", "write TYPE, TYPE:required or TYPE:optional"),
        ("Bad Type", "is not an artifact type"),
    ],
)
def test_export_refuses_an_artifact_it_cannot_attach(
    home: Path, tmp_path: Path, artifact: str, words: str
) -> None:
    out = tmp_path / "bundle.json"
    result = export(home, out, artifact)
    assert result.exit_code == 2
    assert words in result.stderr
    assert not out.exists()


def test_export_refuses_a_type_twice(home: Path, tmp_path: Path) -> None:
    result = export(home, tmp_path / "b.json", "policy-snapshot", "policy-snapshot:optional")
    assert result.exit_code == 2
    assert "given twice" in result.stderr


def test_the_snapshot_provider_judges_untrusted_content() -> None:
    provider = PolicySnapshot()
    assert provider.check([], {}) == "must be an object with exactly the field 'policies'"
    assert provider.check({"policies": []}, {}) == "the bundle holds no decision to compare with"
    with pytest.raises(InputError, match="no decision"):
        provider.build({"events": [], "context": []})


def test_a_snapshot_of_other_policies_is_invalid(home: Path, tmp_path: Path) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot")
    named = bundle["governance_artifacts"]["artifacts"]["policy-snapshot"]
    assert PolicySnapshot().check(named, bundle) is None
    assert PolicySnapshot().check({"policies": []}, bundle) == (
        f"snapshots of [], but the decisions name {[named['policies'][0]['policy_hash']]}"
    )


def test_the_home_setting_is_recorded_in_the_config_snapshot(tmp_path: Path) -> None:
    from exoarmur.home import open_governor
    from exoarmur.model.event import CONFIG_SNAPSHOT, SYSTEM_LOG

    where = tmp_path / "home"
    run_golden(where)
    with open_governor(where) as governor:
        before = governor.ledger.store.latest_of_type(SYSTEM_LOG, CONFIG_SNAPSHOT)
    assert before is not None
    assert "evidence" not in before.payload["config"]  # unset: today's config hash stays
    config = (where / "config.toml").read_text()
    (where / "config.toml").write_text(
        config + "\n[evidence]\ngovernance_artifact_enforcement = true\n"
    )
    with open_governor(where) as governor:
        after = governor.ledger.store.latest_of_type(SYSTEM_LOG, CONFIG_SNAPSHOT)
    assert after is not None
    assert after.payload["config"]["evidence"] == {"governance_artifact_enforcement": True}


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("governance_artifact_enforcement = 'yes'", "must be true or false"),
        ("enforce = true", "has no setting 'enforce'"),
    ],
)
def test_a_bad_home_setting_is_refused(tmp_path: Path, section: str, words: str) -> None:
    from exoarmur.errors import ConfigError
    from exoarmur.home import open_governor

    where = tmp_path / "home"
    run_golden(where)
    config = (where / "config.toml").read_text()
    (where / "config.toml").write_text(config + f"\n[evidence]\n{section}\n")
    with pytest.raises(ConfigError, match=words):
        open_governor(where)


def test_evidence_must_be_a_table(tmp_path: Path) -> None:
    from exoarmur.errors import ConfigError
    from exoarmur.home import Home

    where = tmp_path / "home"
    run_golden(where)
    config = (where / "config.toml").read_text()
    (where / "config.toml").write_text("evidence = 1\n" + config)
    with pytest.raises(ConfigError, match=r"\[evidence\] must be a table"):
        Home(where).evidence()


@pytest.mark.usefixtures("plugins")
def test_providers_that_misbehave_are_judged_not_trusted(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "odd_artifacts.py").write_text(
        "class Hollow:\n"
        "    schema_version = '1'\n\n"
        "class Raising:\n"
        "    schema_version = '1'\n\n"
        "    def build(self, bundle):\n"
        "        return {}\n\n"
        "    def check(self, content, bundle):\n"
        "        raise KeyError('policies')\n"
    )
    dist = site / "odd_artifacts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-artifacts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[exoarmur.governance_artifacts]\n"
        "hollow = odd_artifacts:Hollow\n"
        "raising = odd_artifacts:Raising\n"
        "always-invalid = odd_artifacts:Raising\n"
    )
    try:
        assert load_provider("hollow") == "provider odd_artifacts:Hollow has no build() and check()"
        twice = load_provider("always-invalid")
        assert isinstance(twice, str)
        assert twice.startswith("registered twice: ")
        block = {
            "manifest": [
                {
                    "artifact_type": kind,
                    "schema_version": "1",
                    "canonical_hash": content_hash({}),
                    "required_for_verdict": True,
                }
                for kind in ("raising", "huge")
            ],
            "artifacts": {"raising": {}, "huge": {"n": 2**60}},
        }
        failures: list[str] = []
        report = artifacts_module.check_artifacts(
            {"governance_artifacts": block, "events": ["junk"]},
            True,
            lambda where, what: failures.append(f"{where}: {what}"),
        )
        raising, huge = report.artifacts
        assert raising.semantic == "invalid"
        assert "the provider could not read it: KeyError" in raising.reasons[0]
        assert huge.hash_match is False
        assert "content is not canonical JSON" in huge.reasons[0]
        assert len(failures) == 2
    finally:
        sys.modules.pop("odd_artifacts", None)


def test_the_flag_decides_without_reading_the_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = exported(home, tmp_path, "policy-snapshot:required")
    bundle["governance_artifacts"]["artifacts"] = {}
    (tmp_path / "forged.json").write_text(json.dumps(resealed(bundle)))
    broken = tmp_path / "broken-home"
    broken.mkdir()
    (broken / "config.toml").write_text("[evidence]\nenforce = true\n")
    base = ["--home", str(broken), "verify-bundle", str(tmp_path / "forged.json")]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2
    assert "[evidence] has no setting 'enforce'" in refused.stderr
    monkeypatch.setenv(ENFORCEMENT_FLAG, "false")
    assert runner.invoke(app, base).exit_code == 0
