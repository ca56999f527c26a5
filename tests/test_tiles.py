"""Tiles (c2sp.org/tlog-tiles): a client with only the tiles and the public key proves it all.

The client is ``c2sp_reference.TileClient``, written from the spec and RFC
6962 and sharing no code with ours; its proofs must equal ``exoarmur prove``'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from c2sp_reference import TileClient, log_signed_body, tile_index_path
from exoarmur.cli import app
from exoarmur.errors import InputError, LedgerCorrupt, NotFound
from exoarmur.home import Home
from exoarmur.ledger.checkpoint import Checkpoint, sign_checkpoint
from exoarmur.ledger.tiles import (
    Tile,
    entry_bundle,
    export_tiles,
    hash_tile,
    parse_tile_path,
    tile_bytes,
    tiles_of,
)
from exoarmur.model.event import EventDraft
from test_server_support import READ, deploy, submit

runner = CliRunner()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 0), "tile/0/000"),
        (Tile(1, 1234067), "tile/1/x001/x234/067"),
        (Tile(None, 1000, 7), "tile/entries/x001/000.p/7"),
        (Tile(63, 5, 255), "tile/63/005.p/255"),
    ],
)
def test_tile_paths_are_spelled_as_the_spec_spells_them(tile: Tile, path: str) -> None:
    assert tile.path == path
    assert parse_tile_path(path) == tile


@settings(deadline=None, max_examples=60)
@given(
    level=st.one_of(st.none(), st.integers(0, 63)),
    index=st.integers(0, 10**15),
    width=st.integers(1, 256),
)
def test_a_tile_path_parses_back_to_its_tile(level: int | None, index: int, width: int) -> None:
    tile = Tile(level, index, width)
    assert parse_tile_path(tile.path) == tile
    assert tile.path.split("/", 2)[2].startswith(tile_index_path(index))


@pytest.mark.parametrize(
    "path",
    [
        "0/000",
        "tile/64/000",
        "tile/01/000",
        "tile/x/000",
        "tile/0/0",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
    ],
)
def test_a_path_that_is_not_a_tile_is_refused(path: str) -> None:
    with pytest.raises(InputError):
        parse_tile_path(path)


def test_tiles_are_checked_when_made() -> None:
    for bad in ((64, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257)):
        with pytest.raises(InputError):
            Tile(*bad)


def test_the_tiles_of_a_tree_are_the_specs_example() -> None:
    tiles = list(tiles_of(70_000))
    full_level0 = [t for t in tiles if t.level == 0 and t.full]
    assert len(full_level0) == 273
    assert len([t for t in tiles if t.level is None and t.full]) == 273
    assert [t.path for t in tiles if not t.full or (t.level or 0) > 0] == [
        "tile/0/273.p/112",
        "tile/entries/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ]
    assert [t.path for t in tiles_of(256)] == ["tile/0/000", "tile/entries/000", "tile/1/000.p/1"]
    assert list(tiles_of(0)) == []


def test_entry_bundles_and_hash_tiles_refuse_what_they_cannot_hold() -> None:
    assert entry_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    with pytest.raises(InputError, match="65535"):
        entry_bundle([b"x" * 65536])
    with pytest.raises(InputError, match="not a hash tile"):
        hash_tile(Tile(None, 0), dict)
    with pytest.raises(LedgerCorrupt, match="no hash for tree node"):
        hash_tile(Tile(0, 0, 2), lambda keys: {})


# -- export, and a client that has only the files and the public key ---------------------


def draft(tag: str, n: int, payload: dict[str, Any] | None = None) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{tag}-{n}",
        tenant="acme",
        type="test.event",
        correlation_id="corr",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n} if payload is None else payload,
    )


def grow(home: Path, count: int, tag: str = "a") -> int:
    ledger = Home(home).ledger()
    try:
        start = ledger.size("acme")
        ledger.append("acme", [draft(tag, start + i) for i in range(count)])
        return ledger.size("acme")
    finally:
        ledger.store.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    Home(path).init()
    return path


def cli(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["--home", str(home), *args])


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.mark.slow
def test_a_client_with_only_the_exported_tiles_agrees_with_exoarmur_prove(
    home: Path, tmp_path: Path
) -> None:
    size = grow(home, 600)
    out = tmp_path / "tiles"
    exported = cli(home, "tiles", "export", "--tenant", "acme", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"checkpoint of {size} entries" in exported.stdout
    vkey = cli(home, "key", "public").stdout.strip()

    note = (out / "checkpoint").read_text(encoding="utf-8")
    origin, tree_size, root_b64 = log_signed_body(note, vkey).splitlines()[:3]
    assert origin.endswith("/acme")
    assert int(tree_size) == size
    client = TileClient(lambda path: (out / path).read_bytes(), size)
    assert client.mth(0, size) == base64.b64decode(root_b64)

    for index in (0, 1, 255, 256, 300, 511, 512, 599):
        # The entry bundle holds the event's exact bytes; they hash to the level-0 tile's leaf.
        entry = client.entries(index // 256)[index % 256]
        assert hashlib.sha256(b"\x00" + entry).digest() == client.leaf_hash(index)
        proved = cli(
            home, "prove", "inclusion", "--tenant", "acme", "--event-id", f"ev-a-{index}", "--json"
        )
        assert proved.exit_code == 0, proved.output
        body = json.loads(proved.stdout)
        assert body["tree_size"] == size
        assert body["leaf_hash"] == client.leaf_hash(index).hex()
        assert body["hashes"] == [h.hex() for h in client.inclusion(index)]

    for old, new in ((1, 600), (255, 600), (256, 600), (257, 513), (300, 301), (512, 600)):
        proved = cli(
            home,
            "prove",
            "consistency",
            "--tenant",
            "acme",
            "--from",
            str(old),
            "--to",
            str(new),
            "--json",
        )
        body = json.loads(proved.stdout)
        narrower = TileClient(client.fetch, size)
        assert body["hashes"] == [h.hex() for h in narrower.consistency(old, new)]
        assert body["old_root"] == narrower.mth(0, old).hex()

    # Exported again: nothing changes. Grown: full tiles stay byte for byte.
    before = files(out)
    again = cli(home, "tiles", "export", "--tenant", "acme", str(out))
    assert "0 file(s) written" in again.stdout
    assert files(out) == before
    grow(home, 100)
    cli(home, "tiles", "export", "--tenant", "acme", str(out))
    after = files(out)
    for path in ("tile/0/000", "tile/0/001", "tile/entries/000", "tile/entries/001"):
        assert after[path] == before[path]
    assert "tile/0/002.p/188" in after
    assert "tile/1/000.p/2" in after
    assert after["checkpoint"] != before["checkpoint"]


def test_export_publishes_a_given_checkpoint_only_if_it_is_this_logs(
    home: Path, tmp_path: Path
) -> None:
    grow(home, 3)
    old_note = tmp_path / "old.note"
    old_note.write_text(cli(home, "checkpoint", "--tenant", "acme").stdout)
    grow(home, 2)
    out = tmp_path / "tiles"
    result = cli(
        home, "tiles", "export", "--tenant", "acme", "--checkpoint", str(old_note), str(out)
    )
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint").read_text() == old_note.read_text()
    assert sorted(files(out)) == ["checkpoint", "tile/0/000.p/3", "tile/entries/000.p/3"]

    other = tmp_path / "other"
    Home(other).init()
    grow(other, 3)
    foreign = tmp_path / "foreign.note"
    foreign.write_text(cli(other, "checkpoint", "--tenant", "acme").stdout)
    refused = cli(
        home, "tiles", "export", "--tenant", "acme", "--checkpoint", str(foreign), str(out)
    )
    assert refused.exit_code == 2
    assert "--checkpoint" in refused.stderr
    missing = cli(home, "tiles", "export", "--tenant", "acme", "--checkpoint", "nope", str(out))
    assert missing.exit_code == 2
    ledger = Home(home).ledger()
    try:
        with pytest.raises(InputError, match="not tenant 'globex'"):
            export_tiles(ledger, "globex", out, old_note.read_text())
        origin = ledger.origin("acme")
        for forged in (Checkpoint(origin, 99, bytes(32)), Checkpoint(origin, 3, bytes(32))):
            with pytest.raises(InputError, match="not of tenant 'acme'"):
                export_tiles(ledger, "acme", out, sign_checkpoint(forged, ledger.key))
    finally:
        ledger.store.close()


def test_an_event_too_large_for_a_bundle_leaves_only_its_bundle_out(
    home: Path, tmp_path: Path
) -> None:
    ledger = Home(home).ledger()
    try:
        ledger.append("acme", [draft("a", 0), draft("a", 1, {"blob": "x" * 70_000})])
    finally:
        ledger.store.close()
    out = tmp_path / "tiles"
    result = cli(home, "tiles", "export", "--tenant", "acme", str(out))
    assert result.exit_code == 0, result.output
    assert "skipped tile/entries/000.p/2" in result.stdout
    assert sorted(files(out)) == ["checkpoint", "tile/0/000.p/2"]


def test_export_reports_a_directory_it_cannot_write(home: Path, tmp_path: Path) -> None:
    grow(home, 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli(home, "tiles", "export", "--tenant", "acme", str(blocker / "sub"))
    assert result.exit_code == 2
    assert "cannot" in result.stderr


# -- served: /tiles/<tenant>/... ------------------------------------------------------------


def test_tiles_over_http_are_scoped_cached_and_prove_what_the_api_proves(tmp_path: Path) -> None:
    deployment = deploy(tmp_path / "home")
    try:
        for _ in range(3):
            submit(deployment, "agent-7", READ, 200)
        client, auditor = deployment.client, deployment.auth("audrey")
        size = deployment.size("acme")
        head = client.get("/tiles/acme/checkpoint", headers=auditor)
        assert head.status_code == 200
        assert head.headers["cache-control"] == "no-cache"
        assert head.headers["content-type"] == "text/plain; charset=utf-8"
        vkey = deployment.governor.ledger.key.verifier_key()
        assert log_signed_body(head.text, vkey).split("\n")[1] == str(size)

        fetched: list[str] = []

        def fetch(path: str) -> bytes:
            answer = client.get(f"/tiles/acme/{path}", headers=auditor)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/octet-stream"
            assert answer.headers["cache-control"] == "no-cache"  # all partial at this size
            fetched.append(path)
            return answer.content

        tiles = TileClient(fetch, size)
        last = deployment.governor.ledger.store.events("acme", size - 1, size)
        event_id = next(iter(last)).event_id
        api = client.get(
            "/v1/tenants/acme/proofs/inclusion", params={"event_id": event_id}, headers=auditor
        ).json()
        assert api["hashes"] == [h.hex() for h in tiles.inclusion(size - 1)]
        assert api["root_hash"] == tiles.mth(0, size).hex()
        assert (
            tiles.entries(0)[size - 1]
            == next(iter(deployment.governor.ledger.store.events("acme", size - 1, size))).canonical
        )

        # Other tenants' tiles are refused, unauthenticated ones too; past the tree is 404.
        assert (
            client.get("/tiles/acme/tile/0/000.p/1", headers=deployment.auth("mallory")).status_code
            == 403
        )
        assert client.get("/tiles/acme/tile/0/000.p/1").status_code == 401
        assert client.get("/tiles/acme/tile/0/000", headers=auditor).status_code == 404
        assert (
            client.get(f"/tiles/acme/tile/0/000.p/{size + 1}", headers=auditor).status_code == 404
        )
        assert client.get("/tiles/acme/tile/0/0", headers=auditor).status_code == 404
        assert (
            client.get("/tiles/globex/checkpoint", headers=deployment.auth("root")).status_code
            == 404
        )
    finally:
        deployment.governor.close()


@pytest.mark.slow
def test_full_tiles_are_served_immutable(tmp_path: Path) -> None:
    deployment = deploy(tmp_path / "home")
    try:
        ledger = deployment.governor.ledger
        ledger.append("acme", [draft("a", i) for i in range(256)])
        auditor = deployment.auth("audrey")
        full = deployment.client.get("/tiles/acme/tile/0/000", headers=auditor)
        assert full.status_code == 200
        assert full.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert len(full.content) == 256 * 32
        bundle = deployment.client.get("/tiles/acme/tile/entries/000", headers=auditor)
        assert bundle.headers["cache-control"] == "private, max-age=31536000, immutable"
        level1 = deployment.client.get("/tiles/acme/tile/1/000.p/1", headers=auditor)
        assert level1.content == ledger.root("acme", 256)
        with pytest.raises(NotFound):
            tile_bytes(ledger, "acme", Tile(1, 0), 256)
    finally:
        deployment.governor.close()
