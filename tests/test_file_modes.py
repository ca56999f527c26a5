"""A home, config, key directory or ledger that others may write is refused at open."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.errors import ConfigError
from exoarmur.file_modes import refuse_writable_by_others
from exoarmur.home import Home, open_governor

runner = CliRunner()

#: what is refused when others may write it, and the chmod the message must give
SHARED = [
    ("", "home", 0o700),
    ("config.toml", "configuration", 0o600),
    ("ledger.db", "ledger database", 0o600),
    ("keys", "key directory", 0o700),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    Home(path).init()
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("name", "what", "fix"), SHARED, ids=[s[1] for s in SHARED])
@pytest.mark.parametrize("bits", [0o002, 0o020], ids=["world", "group"])
def test_a_part_of_the_home_others_may_write_is_refused_with_the_chmod_that_fixes_it(
    home: Path, name: str, what: str, fix: int, bits: int
) -> None:
    target = home / name if name else home
    os.chmod(target, _mode(target) | bits)
    with pytest.raises(ConfigError, match=f"{what} {target} is writable by") as refused:
        open_governor(home).close()
    assert f"run chmod {fix:o} {target}" in str(refused.value)
    result = runner.invoke(app, ["--home", str(home), "log", "--tenant", "acme"])
    assert result.exit_code == 2
    assert f"run chmod {fix:o} {target}" in result.stderr
    os.chmod(target, fix)  # the suggested fix works
    open_governor(home).close()


def test_a_world_writable_config_is_refused_before_anything_it_names_is_imported(
    home: Path,
) -> None:
    config = home / "config.toml"
    config.write_text('[executors]\n"x.*" = { type = "python", callable = "no_such_mod:f" }\n')
    os.chmod(config, 0o602)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(ConfigError, match=r"configuration .* is writable by others"):
        Home(home).executors()


def test_a_shared_policy_directory_is_refused(home: Path) -> None:
    os.chmod(home / "policy", 0o777)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(ConfigError, match=r"policy directory .* run chmod 700"):
        Home(home).policy()


def test_a_missing_path_is_not_refused_here(tmp_path: Path) -> None:
    refuse_writable_by_others(tmp_path / "absent", "configuration")


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_init_makes_everything_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Home(home).init()
    assert _mode(home) == 0o700
    assert _mode(home / "policy") == 0o700
    assert _mode(home / "keys") == 0o700
    for private in ("config.toml", "policy/default.cedar", "keys/ledger.key", "ledger.db"):
        assert _mode(home / private) == 0o600, private
    open_governor(home).close()


def test_init_refuses_an_existing_home_others_may_write_and_writes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o777)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(ConfigError, match=f"run chmod 700 {home}"):
        Home(home).init()
    assert list(home.iterdir()) == []


def test_a_sqlite_store_url_is_checked_too(tmp_path: Path, home: Path) -> None:
    database = tmp_path / "elsewhere.db"
    Home(home, f"sqlite:///{database}").init()
    os.chmod(database, 0o662)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(ConfigError, match=f"ledger database {database} is writable"):
        open_governor(Home(home, f"sqlite:///{database}")).close()
    assert Home(home, "postgresql://db.invalid/x").sqlite_path() is None
