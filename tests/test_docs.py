"""Every shell command in the docs runs as written: the docs cannot drift from the code.

The rule: each ```sh, ```bash or ```console block of README.md and docs/*.md
runs, in the order of its page, in one bash session per page (`set -euo
pipefail`, so a failing command fails the page), in a fresh temporary
directory holding a copy of the repository's `examples/`, `docs/` and
`benchmarks/`, with no EXOARMUR_* variable set, as a reader following the
page would. A ```console block runs its `$ ` lines.

A block is left out only when the line before it says why:

    <!-- doc-runner: skip (REASON) -->

for what cannot run here (what CI itself runs: installing, the whole test
suite; a server in the foreground; a cluster of named hosts). A block after

    <!-- doc-runner: postgres -->

runs against a PostgreSQL server this test starts: the page's example URL
postgresql://exoarmur:secret@db.internal:5432/exoarmur is replaced by it;
after `<!-- doc-runner: nats -->`, nats://nats.internal:4222 by a NATS
server's.
Background servers a page starts are stopped with its session.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["backends"]

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "console"}
#: per server mark: the example URL a page writes, replaced by the live server's
EXAMPLE_URLS = {
    "postgres": "postgresql://exoarmur:secret@db.internal:5432/exoarmur",
    "nats": "nats://nats.internal:4222",
}
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*doc-runner:\s*(skip|postgres|nats)\b\s*(.*?)\s*-->\s*$")
#: seconds one page may take (CI has two cores)
PAGE_TIMEOUT = 240


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    text: str
    mark: str | None
    reason: str

    @property
    def runs(self) -> bool:
        return self.language in SHELLS and self.mark != "skip"

    def script(self) -> str:
        if self.language != "console":
            return self.text
        return "\n".join(line[2:] for line in self.text.splitlines() if line.startswith("$ "))


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        mark = _MARK.match(before)
        found.append(
            Block(
                page=page,
                line=index + 1,
                language=opening.group(1),
                text="\n".join(lines[index + 1 : end]),
                mark=mark.group(1) if mark else None,
                reason=mark.group(2) if mark else "",
            )
        )
        index = end + 1
    return found


def runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(block.runs for block in blocks(page))]


def test_every_skip_says_why_and_marks_a_shell_block() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.mark == "skip":
                assert block.language in SHELLS, f"{page.name}:{block.line}: skip on a non-shell"
                assert re.match(r"^\(.+\)$", block.reason), f"{page.name}:{block.line}: no reason"


def test_the_readme_quickstart_and_tests_are_left_to_ci() -> None:
    """What CI itself runs (install, the demo, pytest) is not run twice."""
    readme = [block for block in blocks(ROOT / "README.md") if block.language in SHELLS]
    for block in readme:
        if "pytest" in block.text or "pip install" in block.text:
            assert block.mark == "skip", f"README.md:{block.line}"


def _server_url(mark: str, request: pytest.FixtureRequest) -> str:
    if mark == "postgres":
        server = request.getfixturevalue("postgres_server")
        return str(server.dsn(server.create_database()))
    return str(request.getfixturevalue("nats_server").url())


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def run_page(page: Path, where: Path, servers: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``page``'s blocks in one bash session in a fresh directory: exit code, output."""
    servers = servers or {}
    runs = [block for block in blocks(page) if block.runs]
    parts = ["set -euo pipefail"]
    for block in runs:
        script = block.script()
        if block.mark in EXAMPLE_URLS:
            example = EXAMPLE_URLS[block.mark]
            assert block.mark in servers, f"{page.name}:{block.line} needs {block.mark}"
            assert example in script, f"{page.name}:{block.line}: no {example}"
            script = script.replace(example, servers[block.mark])
        parts.append(f"echo '== {page.name}:{block.line}' >&2\n{script}")
    work = where / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    # pages name files of the repository by their path from its root (a dashboard, a spec,
    # a benchmark run with small counts)
    shutil.copytree(ROOT / "docs", work / "docs")
    shutil.copytree(ROOT / "benchmarks", work / "benchmarks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOARMUR_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(where)
    log = where / "output.txt"
    # a file, not a pipe: a server the page leaves in the background keeps it open
    with log.open("w") as output:
        process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", "\n".join(parts)],
            cwd=work,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=PAGE_TIMEOUT)
        finally:
            # servers the page started in the background go with its session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    return code, log.read_text()


def test_a_failing_command_fails_its_page_and_skips_are_not_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doc-runner: skip (would fail) -->\n```sh\nfalse\n```\n\n"
        "```console\n$ exoarmur init --home h > /dev/null\n$ echo ran > ran.txt\n"
        "output, not run\n```\n\n```text\nfalse\n```\n"
    )
    code, output = run_page(page, tmp_path / "ok")
    assert code == 0, output
    assert (tmp_path / "ok" / "work" / "ran.txt").read_text() == "ran\n"
    page.write_text(page.read_text() + "\n```bash\nexoarmur log --home h --bogus\n```\n")
    code, output = run_page(page, tmp_path / "bad")
    assert code == 2
    assert "page.md:" in output


@pytest.mark.parametrize("page", runnable_pages(), ids=_page_id)
def test_the_page_runs_as_written(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    marks = {block.mark for block in blocks(page) if block.runs and block.mark in EXAMPLE_URLS}
    servers = {mark: _server_url(mark, request) for mark in sorted(marks) if mark is not None}
    code, output = run_page(page, tmp_path, servers)
    assert code == 0, f"{page.name} failed:\n{output[-6000:]}"
