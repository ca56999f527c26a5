"""The counted pause of the cycle collector that verifiers and replay share."""

from __future__ import annotations

import gc

from exoarmur.collector import CollectorPause


def _generations_collected(run: CollectorPause, paused: bool = True) -> list[int]:
    found: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            found.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        if paused:
            with run:
                run.collect_young()
        else:
            run.collect_young()
    finally:
        gc.callbacks.remove(seen)
    return found


def test_young_cycles_are_collected_during_a_pause_of_a_running_collector() -> None:
    pause = CollectorPause()
    assert _generations_collected(pause) == [1]
    assert gc.isenabled()
    # not paused: the collector runs by itself, nothing to do here
    assert _generations_collected(pause, paused=False) == []


def test_a_collector_switched_off_before_is_left_alone() -> None:
    gc.disable()
    try:
        assert _generations_collected(CollectorPause()) == []
        assert not gc.isenabled()
    finally:
        gc.enable()
