"""Mutation run: does any test notice when one line of a module is wrong?

    python scripts/mutate.py src/exoarmur/evidence/verify.py tests/test_evidence.py
    python scripts/mutate.py src/exoarmur/gate/gate.py tests/test_gate.py -k quorum

One mutant at a time over the module's syntax tree: a comparison flipped,
``and``/``or`` swapped, a condition negated, an integer constant moved by
one, a ``return value`` made ``return None``, a statement deleted (made
``pass``). Each mutant runs the given tests (``pytest -x``, with a timeout)
in a private copy of the repository, so the working tree is never touched.
A mutant is *killed* when a test fails or the run times out; a *survivor*
is a change no test noticed: either a missing test or an equivalent mutant
(one that cannot change behaviour), to be explained in
``benchmarks/mutation.md``.

Not part of CI: a full run takes minutes per module. Prints the score and
every survivor (line, what was changed). Exit code 0 always: the score is
read by a person.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Mutant:
    number: int
    line: int
    what: str


def _docstring(node: ast.stmt, parent: ast.AST) -> bool:
    body = getattr(parent, "body", None)
    return (
        isinstance(body, list)
        and body
        and body[0] is node
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str, str]]:
    """(node, kind, description) for every place a mutant can be made, in a fixed order."""
    for parent in ast.walk(tree):
        for _, value in ast.iter_fields(parent):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                if isinstance(child, ast.Compare):
                    for index, op in enumerate(child.ops):
                        if type(op) in _FLIPPED:
                            flipped = _FLIPPED[type(op)].__name__
                            yield child, f"cmp:{index}", f"{type(op).__name__} -> {flipped}"
                elif isinstance(child, ast.BoolOp):
                    other = "or" if isinstance(child.op, ast.And) else "and"
                    yield child, "boolop", f"{'and' if other == 'or' else 'or'} -> {other}"
                if (
                    isinstance(child, ast.Constant)
                    and isinstance(child.value, int)
                    and not isinstance(child.value, bool)
                ):
                    yield child, "const:+1", f"{child.value} -> {child.value + 1}"
                    yield child, "const:-1", f"{child.value} -> {child.value - 1}"
                if isinstance(child, ast.If | ast.While | ast.IfExp):
                    yield child, "negate", "condition negated"
                if (
                    isinstance(child, ast.Return)
                    and child.value is not None
                    and not (isinstance(child.value, ast.Constant) and child.value.value is None)
                ):
                    yield child, "return-none", "return None"
                if (
                    isinstance(child, ast.stmt)
                    and isinstance(value, list)
                    and not isinstance(parent, ast.Module | ast.ClassDef)
                    and not isinstance(child, ast.Pass)
                    and not _docstring(child, parent)
                ):
                    yield child, "delete", f"{type(child).__name__} deleted"


def _apply(node: ast.AST, kind: str) -> ast.AST:
    """Mutate ``node`` in place (or return its replacement)."""
    if kind.startswith("cmp:"):
        assert isinstance(node, ast.Compare)
        index = int(kind.split(":")[1])
        node.ops[index] = _FLIPPED[type(node.ops[index])]()
        return node
    if kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node
    if kind.startswith("const:"):
        assert isinstance(node, ast.Constant)
        node.value += 1 if kind == "const:+1" else -1
        return node
    if kind == "negate":
        assert isinstance(node, ast.If | ast.While | ast.IfExp)
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        return node
    if kind == "return-none":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(value=None)
        return node
    assert kind == "delete"
    return ast.Pass()


def _mutated_source(tree: ast.Module, site: int) -> str:
    mutated = copy.deepcopy(tree)
    for number, (node, kind, _) in enumerate(_sites(mutated)):
        if number != site:
            continue
        replacement = _apply(node, kind)
        if replacement is not node:
            _replace(mutated, node, replacement)
        return ast.unparse(ast.fix_missing_locations(mutated))
    raise IndexError(site)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list) and any(item is old for item in value):
                setattr(parent, name, [new if item is old else item for item in value])
                return


#: third-party modules the tests import: loaded once in the parent, shared by every forked run
_WARM = (
    "pytest",
    "pydantic",
    "cedarpy",
    "cryptography",
    "rfc8785",
    "hypothesis",
    "typer",
    "rich",
    "fastapi",
    "starlette",
    "httpx",
    "ulid",
)


#: pytest plugins imported by the warm-up cannot be assertion-rewritten; that is expected
_QUIET = ("-W", "ignore::pytest.PytestAssertRewriteWarning")


def _warm_up() -> None:
    import importlib

    for name in _WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def _run_forked(copy_root: Path, tests: list[str], timeout: float) -> str:
    """One pytest run in a child forked from this warmed-up process (no exoarmur in it yet)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            import pytest

            os.chdir(copy_root)
            sys.path.insert(0, str(copy_root / "src"))
            sys.path.insert(0, str(copy_root / "tests"))
            sys.dont_write_bytecode = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            args = ["--no-cov", "-q", "-x", "-p", "no:cacheprovider", *_QUIET, *tests]
            code = int(pytest.main(args))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return {0: "survived", 5: "no tests"}.get(code, "killed")
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)


def _run(copy_root: Path, tests: list[str], timeout: float) -> str:
    if hasattr(os, "fork"):
        return _run_forked(copy_root, tests, timeout)
    env = os.environ | {"PYTHONPATH": str(copy_root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "--no-cov", "-q", "-x", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            [*command, *tests],
            cwd=copy_root,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 5: "no tests"}.get(done.returncode, "killed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="the module to mutate, e.g. src/exoarmur/gate/gate.py")
    parser.add_argument("tests", nargs="+", help="pytest arguments: the module's tests")
    parser.add_argument("--only", type=int, nargs="*", help="run only these mutant numbers")
    args, extra = parser.parse_known_args()
    args.tests += extra  # pytest options such as -k pass through
    _warm_up()
    module = Path(args.module).resolve().relative_to(ROOT)
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    sites = [(getattr(node, "lineno", 0), what) for node, _, what in _sites(tree)]
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        copy_root = Path(scratch) / "repo"
        for part in ("src", "tests", "pyproject.toml"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(
                    source, copy_root / part, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, copy_root / part)
        target = copy_root / module
        original = target.read_text(encoding="utf-8")
        started = time.monotonic()
        if _run(copy_root, args.tests, 600) != "survived":
            sys.exit("the tests fail (or find nothing) on the unmutated module: fix that first")
        timeout = max(30.0, 4 * (time.monotonic() - started))
        survivors: list[Mutant] = []
        killed = 0
        chosen = args.only if args.only else range(len(sites))
        for number in chosen:
            line, what = sites[number]
            try:
                target.write_text(_mutated_source(tree, number), encoding="utf-8")
                verdict = _run(copy_root, args.tests, timeout)
            finally:
                target.write_text(original, encoding="utf-8")
            if verdict == "survived":
                survivors.append(Mutant(number, line, what))
            else:
                killed += 1
            print(f"#{number:<4} line {line:<4} {what:<28} {verdict}", flush=True)
    total = killed + len(survivors)
    score = 100.0 * killed / total if total else 100.0
    print(f"\n{module}: {killed}/{total} mutants killed ({score:.1f}%)")
    for mutant in survivors:
        print(f"  survivor #{mutant.number} line {mutant.line}: {mutant.what}")


if __name__ == "__main__":
    main()
