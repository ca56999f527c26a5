"""Operators read exactly what they approve: agent text reaches the terminal literally.

A battery of Rich markup, emoji codes and control sequences goes in through
every field an agent or operator writes (target, action's params, actor,
reasons, field names in errors) and must come out of ``pending``, ``show``,
``log``, ``killswitch status`` and error messages unchanged, or, for
characters a terminal would act on, as visible escapes. Regression: a target
``db/customers[dim]-staging-copy`` was shown as ``db/customers-staging-copy``.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.table import Table
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.model.intent import TENANT_PATTERN
from exoarmur.terminal import console, json_text, line, styled, visible

runner = CliRunner()

POLICY = """
@id("prod-delete") @approval("2")
permit (principal is Agent, action == Action::"demo.delete", resource)
when { context.params.env == "prod" };
"""

#: what a terminal would act on, as it must be shown instead
CONTROLS = {
    "\x1b": "\\x1b",  # ESC: starts ANSI sequences
    "\x9b": "\\x9b",  # C1 CSI: an ANSI sequence in one byte
    "\x07": "\\x07",
    "\x7f": "\\x7f",
    "\n": "\\n",
    "\r": "\\r",
    "\u202a": "\\u202a",
    "\u202b": "\\u202b",
    "\u202c": "\\u202c",
    "\u202d": "\\u202d",
    "\u202e": "\\u202e",  # right-to-left override
    "\u2066": "\\u2066",
    "\u2067": "\\u2067",
    "\u2068": "\\u2068",
    "\u2069": "\\u2069",
    "\u200b": "\\u200b",  # zero width space
    "\u200c": "\\u200c",
    "\u200d": "\\u200d",
    "\ufeff": "\\ufeff",
    "\u00a0": "\\xa0",  # no-break space: looks like a space, is not one
    "\\": "\\\\",  # so that a typed "\u202e" cannot pass for the character
}
#: markup and emoji codes: shown exactly as written
MARKUP = [
    "db/customers[dim]-staging-copy",
    "x[red]y",
    "[bold]t",
    "a[/]b",
    "[link=https://x]click[/link]",
    "[/bold]",
    ":skull:",
    "[@click=app.bell]z",
]
#: targets (no whitespace or C0 controls: the intent refuses those) and how they show
TARGETS = {text: text for text in MARKUP} | {
    "a\u202eb": "a\\u202eb",
    "z\u200bw": "z\\u200bw",
    "csi\x9b31m": "csi\\x9b31m",
    "iso\u2066x\u2069": "iso\\u2066x\\u2069",
    "bom\ufeff[u]": "bom\\ufeff[u]",
}
RAW_CONTROLS = [c for c in CONTROLS if c not in ("\n", "\\")]


def cli(home: Path, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], input=stdin)


def _shows_no_raw_controls(output: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in output, f"{char!r} reached the terminal"


# -- the rule ------------------------------------------------------------------------


@pytest.mark.parametrize(("char", "shown"), sorted(CONTROLS.items()))
def test_each_control_character_is_shown_as_its_escape(char: str, shown: str) -> None:
    assert visible(f"a{char}b") == f"a{shown}b"


_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[nrt\\])")
_NAMED = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def _read_back(shown: str) -> str:
    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        return _NAMED.get(escape) or chr(int(escape[1:], 16))

    return _ESCAPE.sub(one, shown)


@given(st.text())
def test_what_is_shown_is_printable_and_reads_back_exactly(text: str) -> None:
    shown = visible(text)
    assert shown.isprintable()
    assert _read_back(shown) == text  # nothing lost, nothing ambiguous
    if text.isprintable() and "\\" not in text:
        assert shown == text


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none()))
def test_params_are_shown_as_printable_json_that_reads_back(params: dict[str, Any]) -> None:
    shown = json_text(params).plain
    assert shown.isprintable()
    assert json.loads(shown) == params


def _render(*objects: Any) -> str:
    written = io.StringIO()
    console(file=written, width=200).print(*objects)
    return written.getvalue()


@pytest.mark.parametrize("text", MARKUP)
def test_the_console_prints_markup_as_text_in_messages_and_tables(text: str) -> None:
    assert _render(text).rstrip("\n") == text
    assert _render(line(styled("error:", "bold red"), " ", text)).rstrip("\n") == "error: " + text
    table = Table()
    table.add_column(text)
    table.add_row(text)
    assert _render(table).count(text) == 2


def test_styles_are_added_only_on_purpose() -> None:
    written = io.StringIO()
    # A terminal, so that styles become escape sequences.
    out = console(file=written, force_terminal=True, color_system="standard", width=200)
    out.print(line(styled("FAIL", "bold red"), " [bold]x\x1b[2J"))
    text = written.getvalue()
    assert "\x1b[1;31mFAIL" in text  # our style is there
    assert "[bold]x\\x1b[2J" in text  # theirs is text, and their ESC is shown, not sent
    assert text.count("\x1b[") == 2  # our style on and off, nothing else


# -- the commands ----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "main.cedar").write_text(POLICY)
    assert cli(path, "policy", "activate", str(policy)).exit_code == 0
    made = cli(path, "principal", "add", "alice", "--role", "operator", "-t", "acme", "--json")
    (tmp_path / "alice.key").write_text(json.loads(made.stdout)["api_key"])
    return path


def _submit(home: Path, target: str, actor: str = "agent-7") -> tuple[str, int]:
    intent = {
        "tenant": "acme",
        "actor": {"id": actor, "kind": "agent"},
        "action": "demo.delete",
        "target": target,
        "params": {"env": "prod", "note": "\x1b[31mred\x1b[0m [bold]b[/bold] \u202eevil"},
        "safety_class": "A2",
    }
    result = cli(home, "submit", "-", "--json", stdin=json.dumps(intent))
    # Pending; or denied where Cedar refuses the id itself (it will not take a zero-width space).
    assert result.exit_code in (3, 4), result.output
    return str(json.loads(result.stdout)["intent_id"]), result.exit_code


def test_pending_show_and_log_show_every_target_and_actor_literally(home: Path) -> None:
    actor = "agent[red]7"
    submitted = {target: _submit(home, target, actor) for target in TARGETS}
    ids = {target: intent_id for target, (intent_id, _) in submitted.items()}
    waiting = {target for target, (_, code) in submitted.items() if code == 4}
    assert set(MARKUP) <= waiting
    reason = "[bold]ok[/bold] \x1b[2J :skull: \u202edeen"
    shown_reason = "[bold]ok[/bold] \\x1b[2J :skull: \\u202edeen"
    intent_id = ids["db/customers[dim]-staging-copy"]
    voted = cli(
        home, "approve", intent_id, "-r", reason, "--key-file", str(home.parent / "alice.key")
    )
    assert voted.exit_code == 0, voted.output

    pending = cli(home, "pending")
    assert pending.exit_code == 0, pending.output
    log = cli(home, "log", "-t", "acme")
    assert log.exit_code == 0, log.output
    for output, targets in ((pending.stdout, waiting), (log.stdout, set(TARGETS))):
        _shows_no_raw_controls(output)
        for target in targets:
            assert TARGETS[target] in output, f"{target!r} not shown as {TARGETS[target]!r}"
        assert "agent[red]7" in output
    assert shown_reason in log.stdout

    for target, shown in TARGETS.items():
        story = cli(home, "show", ids[target])
        assert story.exit_code == 0, story.output
        _shows_no_raw_controls(story.stdout)
        assert f"demo.delete → {shown} (A2) by agent agent[red]7 in" in story.stdout
        assert '"note": "\\u001b[31mred\\u001b[0m [bold]b[/bold] \\u202eevil"' in story.stdout
    story = cli(home, "show", intent_id)
    assert f"alice: {shown_reason}" in story.stdout


def test_kill_switch_reasons_are_shown_literally(home: Path) -> None:
    reason = "[red]stop[/red] \x1b]8;;https://x\x1b\\here"
    shown = "[red]stop[/red] \\x1b]8;;https://x\\x1b\\\\here"
    engaged = cli(home, "killswitch", "engage", "--scope", "tenant:acme", "--reason", reason)
    assert engaged.exit_code == 0, engaged.output
    assert shown in engaged.stdout
    status = cli(home, "killswitch", "status")
    _shows_no_raw_controls(status.stdout)
    assert shown in status.stdout


@pytest.mark.parametrize(
    ("document", "shown"),
    [
        ('{"[bold]field": 1}', "[bold]field"),
        ('{"x[red]y": 1}', "x[red]y"),
        ('{"\\u202efield": 1}', "\\u202efield"),
        ('{"tenant": "Acme"}', TENANT_PATTERN),  # [a-z0-9] is not a tag either
    ],
)
def test_error_messages_show_what_they_quote(home: Path, document: str, shown: str) -> None:
    result = cli(home, "submit", "-", stdin=document)
    assert result.exit_code == 2
    _shows_no_raw_controls(result.output)
    assert shown in result.output, result.output


def test_a_missing_intent_is_named_as_typed(home: Path) -> None:
    result = cli(home, "show", "[red]nope[/red]")
    assert result.exit_code != 0
    assert "[red]nope[/red]" in result.output


def test_the_server_hint_keeps_the_extra_name(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "exoarmur.server", None)  # as if the extra were missing
    result = cli(home, "serve")
    assert result.exit_code == 1
    assert "pip install 'exoarmur[server]'" in result.output


def test_the_store_hints_keep_the_extra_name(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "exoarmur.ledger.postgres", raising=False)
    result = cli(home, "--store", "postgresql://127.0.0.1:1/x", "log")
    assert "pip install 'exoarmur[postgres]'" in result.output, result.output


def test_characters_beyond_the_basic_plane_are_escaped_whole() -> None:
    tag = "\U000e0041"  # an invisible tag character
    assert visible(f"a{tag}") == "a\\U000e0041"
    shown = json_text({"t": tag}).plain
    assert shown == '{"t": "\\udb40\\udc41"}'
    assert json.loads(shown) == {"t": tag}
