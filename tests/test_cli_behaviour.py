"""The CLI behaves the same everywhere: --json, JSON errors, option placement, paging, init."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.cli._common import error_json
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import Verifier
from samples import intent

runner = CliRunner()


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin, env=env)


def ok_json(*args: str, stdin: str | None = None) -> Any:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert run("init", "--home", str(path)).exit_code == 0
    return path


def submit(home: Path, **fields: Any) -> Any:
    return run("submit", "-", "--home", str(home), "--json", stdin=json.dumps(intent(**fields)))


# -- --home and --store after the command ------------------------------------------


def test_home_after_the_command_is_the_same_as_before(tmp_path: Path) -> None:
    after = tmp_path / "after"
    made = ok_json("init", "--home", str(after), "--json")
    assert made["home"] == str(after)
    assert (after / "keys" / "ledger.key").exists()
    # nested groups too, and the one after the command wins over the root's
    before = ok_json(
        "--home", str(tmp_path / "elsewhere"), "key", "public", "--home", str(after), "--json"
    )
    assert before == ok_json("--home", str(after), "key", "public", "--json")
    assert not (tmp_path / "elsewhere").exists()


def test_store_after_the_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("init", "--home", str(home), "--store", store).exit_code == 0
    assert (tmp_path / "other.db").exists()
    assert not (home / "ledger.db").exists()
    assert ok_json("log", "--home", str(home), "--store", store, "--json")["events"]


# -- --json, and errors as JSON ------------------------------------------------------


def test_json_errors_go_to_stderr_and_stdout_stays_empty(home: Path) -> None:
    result = run("submit", "-", "--home", str(home), "--json", stdin='{"tenant": "acme"}')
    assert result.exit_code == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "bad_input"
    assert error["field"] == "actor"
    assert "actor" in error["message"]
    twice = run(
        "submit", "-", "--home", str(home), "--json", stdin='{"tenant": "a", "tenant": "b"}'
    )
    assert json.loads(twice.stderr)["error"]["field"] == "tenant"
    # a usage error (unknown option) too
    usage = run("log", "--home", str(home), "--bogus", "--json")
    assert usage.exit_code == 2
    assert usage.stdout == ""
    assert json.loads(usage.stderr)["error"]["field"] == "--bogus"
    # an option's bad value names the option
    bad = run("log", "--home", str(home), "--limit", "0", "--json")
    assert bad.exit_code == 2
    assert json.loads(bad.stderr)["error"]["field"] == "--limit"
    # without --json: one plain line
    plain = run("submit", "-", "--home", str(home), stdin='{"tenant": "acme"}')
    assert plain.stderr.startswith("error: ")


def test_json_error_codes_follow_the_exit_codes(home: Path) -> None:
    denied = run("pending", "--home", str(home), "--json", env={"EXOARMUR_API_KEY": "not-a-key"})
    assert denied.exit_code == 3
    assert json.loads(denied.stderr)["error"]["code"] == "denied"
    missing = run("show", "nope", "--home", str(home), "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stderr)["error"]["code"] == "failed"
    assert error_json("no field here", 1)["error"]["field"] is None


def test_commands_scripts_read_have_json(home: Path, tmp_path: Path) -> None:
    key = ok_json("key", "public", "--home", str(home), "--json")
    verifier = Verifier.from_string(key["public_key"])
    assert key["origin"] == verifier.name
    assert submit(home).exit_code == 0
    head = ok_json("checkpoint", "-t", "acme", "--home", str(home), "--json")
    checkpoint = open_checkpoint(head["note"], verifier)
    assert (head["origin"], head["size"], head["root_hash"]) == (
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash.hex(),
    )
    engaged = ok_json(
        "killswitch", "engage", "--scope", "global", "-r", "drill", "--home", str(home), "--json"
    )
    assert engaged["type"] == "killswitch.engaged"
    released = ok_json(
        "killswitch", "release", "--scope", "global", "-r", "done", "--home", str(home), "--json"
    )
    assert released["type"] == "killswitch.released"
    activated = ok_json("policy", "activate", str(home / "policy"), "--home", str(home), "--json")
    assert activated["policy_hash"].startswith("sha256:")
    made = ok_json(
        "principal", "add", "bob", "--role", "auditor", "-t", "acme", "--home", str(home), "--json"
    )
    assert made["name"] == "bob"
    assert ok_json("principal", "revoke", "bob", "--home", str(home), "--json") == {
        "revoked": "bob"
    }
    rotated = ok_json("key", "rotate", "--home", str(home), "--json")
    assert rotated["old_public_key"] == key["public_key"]
    assert rotated["new_public_key"] != key["public_key"]
    assert "\n\n" in rotated["note"]


def test_evidence_export_json_and_to_stdout(home: Path, tmp_path: Path) -> None:
    outcome = json.loads(submit(home).stdout)
    events = ok_json("log", "--home", str(home), "-t", "acme", "--json")["events"]
    correlation = next(e["correlation_id"] for e in events if e["intent_id"])
    assert outcome["intent_id"]
    out = tmp_path / "bundle.json"
    summary = ok_json(
        "evidence",
        "export",
        "--home",
        str(home),
        "-t",
        "acme",
        "-c",
        correlation,
        "-o",
        str(out),
        "--json",
    )
    written = json.loads(out.read_text())
    assert summary["bundle_hash"] == written["bundle_hash"]
    assert summary["events"] == len(written["events"])
    to_stdout = run(
        "evidence", "export", "--home", str(home), "-t", "acme", "-c", correlation, "-o", "-"
    )
    assert to_stdout.exit_code == 0, to_stdout.output
    assert json.loads(to_stdout.stdout) == written
    assert "wrote stdout" in to_stdout.stderr


def test_witness_keys_and_tiles_have_json(home: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "w1.key"
    made = ok_json("witness", "keygen", "--name", "witness.example/w1", str(key_file), "--json")
    assert made["name"] == "witness.example/w1"
    assert made == ok_json("witness", "public", str(key_file), "--json")
    assert submit(home).exit_code == 0
    tiles = ok_json(
        "tiles", "export", "--home", str(home), "-t", "acme", str(tmp_path / "site"), "--json"
    )
    assert tiles["tenant"] == "acme"
    assert tiles["size"] > 0
    assert (tmp_path / "site" / "checkpoint").exists()


# -- posture takes --tenant -----------------------------------------------------------


def test_posture_takes_the_tenant_as_an_option_or_positionally(home: Path) -> None:
    base = ("--home", str(home))
    by_option = run("posture", "set", "heightened", "--tenant", "acme", "-r", "drill", *base)
    assert by_option.exit_code == 0, by_option.output
    assert ok_json("posture", "show", "--tenant", "acme", "--json", *base)["posture"] == (
        "heightened"
    )
    assert run("posture", "set", "acme", "normal", "-r", "over", *base).exit_code == 0
    assert ok_json("posture", "show", "acme", "--json", *base)["posture"] == "normal"
    for args in (
        ("posture", "set", "lockdown", "-r", "x"),
        ("posture", "set", "acme", "lockdown", "--tenant", "acme", "-r", "x"),
        ("posture", "show"),
        ("posture", "show", "acme", "--tenant", "other"),
    ):
        result = run(*args, *base)
        assert result.exit_code == 2, args
        assert "--tenant" in result.output or "POSTURE" in result.output


# -- log never cuts silently --------------------------------------------------------


def test_log_says_when_it_cut_and_pages_through_everything(home: Path) -> None:
    for n in range(4):
        assert submit(home, target=f"t{n}").exit_code == 0
    base = ("log", "--home", str(home))
    everything = run(*base, "--all", "--json")
    assert everything.exit_code == 0
    lines = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(lines) > 5

    table = run(*base, "--limit", "3")
    assert "more follow: --cursor" in table.stderr
    assert "3 event(s)" in table.stdout

    paged: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = ok_json(*base, "--limit", "3", "--json", *(["--cursor", cursor] if cursor else []))
        paged.extend(page["events"])
        cursor = page["next"]
        if cursor is None:
            break
    assert [(e["tenant"], e["seq"]) for e in paged] == [(e["tenant"], e["seq"]) for e in lines]
    # the last page says nothing on stderr
    assert run(*base, "--limit", "1000").stderr == ""
    # --all without --json: every row in the table
    assert f"{len(lines)} event(s)" in run(*base, "--all").stdout


def test_log_cursor_and_correlation(home: Path) -> None:
    assert submit(home).exit_code == 0
    events = ok_json("log", "--home", str(home), "-t", "acme", "--json")["events"]
    correlation = events[0]["correlation_id"]
    first = ok_json(
        "log", "--home", str(home), "-t", "acme", "-c", correlation, "--limit", "1", "--json"
    )
    assert first["next"] == f"acme:{events[1]['seq']}"
    rest = ok_json(
        "log",
        "--home",
        str(home),
        "-t",
        "acme",
        "-c",
        correlation,
        "--cursor",
        first["next"],
        "--json",
    )
    assert [e["seq"] for e in first["events"] + rest["events"]] == [e["seq"] for e in events]
    for cursor in ("acme", "acme:x", ":3", "nope:0", "acme:٣"):
        result = run("log", "--home", str(home), "-t", "acme", "--cursor", cursor)
        assert result.exit_code == 2, cursor
        assert "--cursor" in result.stderr


# -- init --origin, and an init that fails part-way ------------------------------------


def test_init_origin_names_the_logs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = ok_json("init", "--home", str(home), "--origin", "example.com/ledger", "--json")
    assert made["origin"] == "example.com/ledger"
    assert submit(home).exit_code == 0
    head = ok_json("checkpoint", "--home", str(home), "-t", "acme", "--json")
    assert head["origin"] == "example.com/ledger/acme"
    # the same origin again is fine; another one is refused, nothing changed
    assert run("init", "--home", str(home), "--origin", "example.com/ledger").exit_code == 0
    other = run("init", "--home", str(home), "--origin", "example.com/other")
    assert other.exit_code == 2
    assert "--origin" in other.stderr


@pytest.mark.parametrize("origin", ["has space", "a+b", ""])
def test_init_refuses_a_bad_origin_before_making_anything(tmp_path: Path, origin: str) -> None:
    home = tmp_path / "home"
    result = run("init", "--home", str(home), "--origin", origin)
    assert result.exit_code == 2
    assert "--origin" in result.stderr
    assert not home.exists()


def test_init_that_fails_part_way_names_what_it_made(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = f"sqlite:///{tmp_path / 'missing-dir' / 'sub' / 'ledger.db'}"
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    result = run("init", "--home", str(home), "--store", store)
    assert result.exit_code == 1
    message = result.stderr
    assert "init stopped after making" in message
    for made in (home, home / "keys" / "ledger.key", home / "config.toml"):
        assert str(made) in message
        assert made.exists()
    # once fixed, init makes only what is missing
    fixed = run("init", "--home", str(home))
    assert fixed.exit_code == 0, fixed.output
    assert "ledger.key" not in fixed.stdout


def test_init_reports_an_os_error_with_what_it_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run("init", "--home", str(blocker / "home"))
    assert result.exit_code == 1
    assert "cannot initialise" in result.stderr


# -- help -----------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_help_never_cuts_option_names_and_shows_flags_bare() -> None:
    root = typer.main.get_command(app)
    for path, command in _commands(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "50"})
        assert result.exit_code == 0, path
        assert "<bool>" not in result.stdout, path
        assert "…" not in result.stdout, path
        for param in command.params:
            for name in getattr(param, "opts", ()):
                if name.startswith("-"):
                    assert name in result.stdout, (path, name)


def test_shell_completion_is_installable() -> None:
    result = run("--help")
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout
    script = run("--show-completion", "bash")
    assert script.exit_code == 0
    assert "_exoarmur_completion" in script.stdout
