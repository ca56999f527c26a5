"""Clocks, ids, canonical encoding and policy bundles: the small rooms everything stands on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from exoarmur.clock import FixedClock, ReplayClock, StepClock, SystemClock
from exoarmur.encoding import canonical_bytes, content_hash, format_time, parse_time
from exoarmur.errors import InputError, PolicyError
from exoarmur.ids import RandomIds, SeededIds, is_ulid
from exoarmur.policy import PolicyBundle, PolicyEngine

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_step_clock_is_strictly_increasing_across_threads() -> None:
    clock = StepClock(T0, timedelta(microseconds=1))
    seen: list[datetime] = []
    lock = threading.Lock()

    def read() -> None:
        for _ in range(200):
            moment = clock.now()
            with lock:
                seen.append(moment)

    pool = [threading.Thread(target=read) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(set(seen)) == 800
    assert min(seen) == T0


def test_fixed_and_replay_clocks() -> None:
    fixed = FixedClock(T0)
    assert fixed.now() == fixed.now() == T0
    fixed.advance(timedelta(seconds=5))
    assert fixed.now() == T0 + timedelta(seconds=5)
    replay = ReplayClock([T0, T0 + timedelta(seconds=1)])
    assert replay.now() == T0
    assert replay.now() == T0 + timedelta(seconds=1)
    with pytest.raises(RuntimeError, match="more times than were recorded"):
        replay.now()
    assert SystemClock().now().tzinfo is not None


@pytest.mark.parametrize("factory", [StepClock, FixedClock])
def test_clocks_refuse_naive_times(factory: type) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        factory(datetime(2026, 1, 1))


def test_seeded_ids_repeat_per_seed_and_differ_across_seeds() -> None:
    a, b, c = SeededIds(1), SeededIds(1), SeededIds(2)
    first = [a.new(T0) for _ in range(5)]
    assert first == [b.new(T0) for _ in range(5)]
    assert first != [c.new(T0) for _ in range(5)]
    assert len(set(first)) == 5
    assert all(is_ulid(i) for i in first)
    assert first[0][:10] == RandomIds().new(T0)[:10]  # the time part is the given time
    assert not is_ulid("definitely not")


def test_time_has_one_canonical_shape() -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    text = format_time(moment)
    assert text == "2026-05-01T10:00:00.000005Z"
    assert parse_time(text) == moment
    with pytest.raises(InputError, match="timezone"):
        format_time(datetime(2026, 1, 1))
    with pytest.raises(InputError, match="timezone"):
        parse_time("2026-01-01T00:00:00")
    with pytest.raises(InputError, match="not an ISO 8601"):
        parse_time("yesterday")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_bytes_are_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert content_hash(value).startswith("sha256:")


@pytest.mark.parametrize("value", [float("nan"), 2**60, {1: "non-string key"}, object()])
def test_values_json_cannot_carry_exactly_are_refused(value: object) -> None:
    with pytest.raises(InputError, match="RFC 8785"):
        canonical_bytes(value)


def test_bundle_hash_depends_on_content_not_on_the_directory(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.cedar").write_text("permit(principal, action, resource);")
    one = PolicyBundle.from_dir(tmp_path / "one")
    assert one.hash == PolicyBundle.from_dir(tmp_path / "two").hash
    (tmp_path / "two" / "schema.cedarschema").write_text("entity Agent;")
    with_schema = PolicyBundle.from_dir(tmp_path / "two")
    assert with_schema.schema == "entity Agent;"
    assert with_schema.hash != one.hash


def test_bad_bundles_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        PolicyBundle.from_dir(tmp_path / "missing")
    with pytest.raises(PolicyError, match=r"holds no \.cedar files"):
        PolicyBundle.from_dir(tmp_path)
    (tmp_path / "broken.cedar").write_text("permit(principal, action")
    with pytest.raises(PolicyError, match=r"^broken\.cedar: "):
        PolicyEngine(PolicyBundle.from_dir(tmp_path))
    (tmp_path / "broken.cedar").write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="cannot read policy"):
        PolicyBundle.from_dir(tmp_path)
    (tmp_path / "broken.cedar").write_text("// " + "x" * (4 * 1024 * 1024))
    with pytest.raises(PolicyError, match="exceeds"):
        PolicyBundle.from_dir(tmp_path)


any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
wide_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=25,
)


@given(wide_json)
@example({"\U0001f600": 1, "\ue000": 2, "\uffff": 3})  # UTF-16 order differs from code points
@example({"text": "\x00\x08\t\n\x0b\x0c\r\x1f\x7f\u2028\u2029"})  # orjson's escapes
@example([2**53 - 1, -(2**53 - 1), 2**53])
@example({"a": 1.0, "b": 1e21})
def test_the_fast_path_is_byte_identical_to_rfc8785(value: object) -> None:
    try:
        reference = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError):
        with pytest.raises(InputError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == reference


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f600": 1, "\uffff": 2, "a": 3},  # JCS orders by UTF-16 units, not code points
        {"ctl": "\x00\x1f\x7f\u2028", "quote": '"\\'},
        [2**53 - 1, -(2**53 - 1), 0, True, None],
        {"nested": [{"b": 1, "a": [{}]}]},
    ],
)
def test_known_edges_match_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [{"text": "\ud800"}, ["a", "\udfff"], {"\ud800": 1}, {"ratio": 1.5, "text": "\ud800"}],
)
def test_a_lone_surrogate_is_bad_input_not_a_crash(value: object) -> None:
    # "\ud800" in JSON text parses to a lone surrogate, which has no UTF-8 form
    with pytest.raises(InputError, match="UTF-8"):
        canonical_bytes(value)  # type: ignore[arg-type]
