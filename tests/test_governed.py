"""``@governed``: any Python callable behind ExoArmur, in process or through the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from exoarmur.client import AsyncClient, Client
from exoarmur.errors import InputError
from exoarmur.integrations.governed import (
    CallRefused,
    Governance,
    Refusal,
    governed,
    recordable,
)
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import EXECUTION_FINISHED, EXECUTION_STARTED
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.replay import replay
from governed_support import approve, governor_at, killed_mid_call, tool_home
from served import serving


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tool_home(tmp_path / "home")


@pytest.fixture
def governor(home: Path) -> Iterator[Governor]:
    with governor_at(home) as governor:
        yield governor


def _replays(governor: Governor) -> None:
    report = replay(governor.ledger.store, "acme", verifier=governor.ledger.key.verifier())
    assert report.verified, report.divergences


def test_an_allowed_call_runs_once_with_its_start_recorded_before(governor: Governor) -> None:
    calls: list[str] = []

    @governed(
        action="files.read",
        safety_class="A0",
        target=lambda a: a["path"],
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def read(path: str, lines: int = 10) -> dict[str, object]:
        calls.append(path)
        return {"path": path, "lines": lines}

    assert read("notes.txt") == {"path": "notes.txt", "lines": 10}
    assert calls == ["notes.txt"]
    store = governor.ledger.store
    events = list(store.events("acme", 0, store.size("acme")))
    kinds = [e.type for e in events]
    assert kinds.index(EXECUTION_STARTED) < kinds.index(EXECUTION_FINISHED)
    finished = next(e for e in events if e.type == EXECUTION_FINISHED)
    assert finished.payload["result"] == {"path": "notes.txt", "lines": 10}
    intent = events[0].payload["intent"]
    assert intent["target"] == "notes.txt"
    assert intent["params"] == {"path": "notes.txt", "lines": 10}
    _replays(governor)


def test_a_denied_call_never_reaches_the_function(governor: Governor) -> None:
    calls: list[str] = []

    @governed(
        action="repo.delete",
        safety_class="A3",
        target="repo/main",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def delete() -> None:
        calls.append("deleted")

    with pytest.raises(CallRefused) as refused:
        delete()
    assert refused.value.refusal.status == OutcomeStatus.DENIED
    assert "did not run" in refused.value.refusal.text
    assert calls == []


def test_a_pending_call_runs_once_when_called_again_after_approval(governor: Governor) -> None:
    calls: list[str] = []

    @governed(
        action="svc.deploy",
        safety_class="A2",
        target="svc/api",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def deploy(version: str) -> str:
        calls.append(version)
        return f"deployed {version}"

    with pytest.raises(CallRefused) as pending:
        deploy("1.2")
    refusal = pending.value.refusal
    assert refusal.status == OutcomeStatus.PENDING_APPROVAL
    assert refusal.intent_hash is not None
    assert refusal.intent_hash in refusal.text
    with pytest.raises(CallRefused):
        deploy("1.2")  # still waiting: the same intent, nothing new
    approve(governor, "acme", refusal.intent_id)
    with pytest.raises(CallRefused) as changed:
        deploy("1.3")  # changed arguments: a new intent
    assert changed.value.refusal.intent_id != refusal.intent_id
    assert deploy("1.2") == "deployed 1.2"
    assert calls == ["1.2"]
    outcome = governor.outcome("acme", refusal.intent_id)
    assert outcome.status == OutcomeStatus.EXECUTED
    with pytest.raises(CallRefused) as again:
        deploy("1.2")  # after it ran, the same call is a new request
    assert again.value.refusal.intent_id not in (refusal.intent_id, changed.value.refusal.intent_id)
    _replays(governor)


def test_a_raising_function_is_recorded_failed_and_raises(governor: Governor) -> None:
    @governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def broken() -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        broken()
    store = governor.ledger.store
    finished = [
        e for e in store.events("acme", 0, store.size("acme")) if e.type == EXECUTION_FINISHED
    ]
    assert finished[0].payload["status"] == "failed"
    assert "disk on fire" in finished[0].payload["error"]


def test_a_kill_switch_blocks_the_call(governor: Governor) -> None:
    calls: list[int] = []

    @governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def read() -> None:
        calls.append(1)

    governor.engage_killswitch("tenant:acme", "incident", LOCAL_ADMIN)
    with pytest.raises(CallRefused, match="killswitch"):
        read()
    assert calls == []


def test_a_coroutine_function_is_governed_too(governor: Governor) -> None:
    @governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    async def read(path: str) -> str:
        await asyncio.sleep(0)
        return path.upper()

    assert asyncio.run(read("a")) == "A"


def test_a_killed_process_leaves_outcome_unknown(home: Path) -> None:
    unknown = killed_mid_call(
        home,
        """
        from exoarmur.integrations.governed import governed
        tool = governed(action="files.read", safety_class="A0", target="x", via=governor,
                        tenant="acme", actor="agent-7")(die)
        tool()
        """,
    )
    assert len(unknown) == 1


def test_bad_use_is_named() -> None:
    with pytest.raises(InputError, match="actor"):
        Governance.__init__(Governance.__new__(Governance), _governor_stub(), tenant="acme")
    with pytest.raises(InputError, match="via"):
        Governance(object(), tenant="acme")  # type: ignore[arg-type]
    assert recordable(object())["unrecorded"] == "object"
    assert recordable({"a": 1}) == {"a": 1}


def _governor_stub() -> Governor:
    return Governor.__new__(Governor)


def test_arguments_that_are_not_json_are_refused_before_anything(governor: Governor) -> None:
    @governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    def read(handle: object) -> None:
        raise AssertionError("never")

    with pytest.raises(InputError, match="params"):
        read(object())
    assert governor.ledger.size("acme") == 0


@pytest.mark.slow
def test_through_the_client_against_a_real_service(tmp_path: Path) -> None:
    home = tool_home(tmp_path / "served")
    with governor_at(home) as governor:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
        _, admin = governor.add_principal("root", "admin", [])
    with (
        serving(home, {"agent-7": key}) as served,
        Client(served.url, key, tenant="acme") as agent,
        Client(served.url, admin, tenant="acme") as root,
    ):
        _through_the_client(agent, root)
        asyncio.run(_through_the_async_client(served.url, key, root))


def _through_the_client(agent: Client, root: Client) -> None:
    calls: list[str] = []

    @governed(action="svc.deploy", safety_class="A2", target="svc/api", via=agent, tenant="acme")
    def deploy(version: str) -> str:
        calls.append(version)
        return version

    @governed(action="repo.delete", safety_class="A3", target="repo", via=agent, tenant="acme")
    def delete() -> None:
        calls.append("delete")

    @governed(action="files.read", safety_class="A0", target="x", via=agent, tenant="acme")
    def read() -> str:
        calls.append("read")
        return "text"

    with pytest.raises(CallRefused):
        delete()
    assert read() == "text"
    with pytest.raises(CallRefused) as pending:
        deploy("2.0")
    root.approve(pending.value.refusal.intent_id, "ok")
    assert deploy("2.0") == "2.0"
    assert calls == ["read", "2.0"]
    story = agent.story(pending.value.refusal.intent_id)
    assert story.outcome.status == OutcomeStatus.EXECUTED
    assert story.outcome.executor == "caller"
    with pytest.raises(CallRefused) as again:
        deploy("3.0")
    root.approve(again.value.refusal.intent_id, "ok")
    root.engage_killswitch("tenant:acme/action:svc.*", "incident")
    with pytest.raises(CallRefused) as blocked:
        deploy("3.0")
    assert blocked.value.refusal.status == OutcomeStatus.BLOCKED
    root.release_killswitch("tenant:acme/action:svc.*", "over")
    assert calls == ["read", "2.0"]


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (OutcomeStatus.BLOCKED, "blocked this call"),
        (OutcomeStatus.REJECTED, "an approver rejected this call"),
        (OutcomeStatus.EXPIRED, "approval window for this call closed"),
        (OutcomeStatus.FAILED, "ran this call and it failed"),
        (OutcomeStatus.OUTCOME_UNKNOWN, "cannot tell whether this call ran"),
        (OutcomeStatus.APPROVED, "answered approved"),
    ],
)
def test_each_refusal_tells_the_agent_what_happened(status: OutcomeStatus, says: str) -> None:
    text = Refusal(status=status, intent_id="01X", tenant="acme", detail="why").text
    assert says in text
    assert "why" in text
    ran = status not in (OutcomeStatus.FAILED, OutcomeStatus.OUTCOME_UNKNOWN)
    assert ("It did not run." in text) == ran


def test_an_action_exoarmur_runs_itself_is_not_run_again(governor: Governor) -> None:
    from exoarmur.executors.builtin import EchoExecutor

    governor.executors.bind("files.*", EchoExecutor())
    calls: list[int] = []

    def read(path: str) -> None:
        calls.append(1)

    wrapped = governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )(read)
    assert wrapped("a") is not None  # the echo executor's result

    async def aread(path: str) -> None:
        calls.append(1)

    awrapped = governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )(aread)
    assert asyncio.run(awrapped("b")) is not None
    assert calls == []


def test_an_approved_call_blocked_by_a_later_kill_switch_never_runs(governor: Governor) -> None:
    calls: list[str] = []

    @governed(
        action="svc.deploy",
        safety_class="A2",
        target="svc/api",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    async def deploy(version: str) -> None:
        calls.append(version)

    with pytest.raises(CallRefused) as pending:
        asyncio.run(deploy("1"))
    approve(governor, "acme", pending.value.refusal.intent_id)
    governor.engage_killswitch("tenant:acme", "incident", LOCAL_ADMIN)
    with pytest.raises(CallRefused) as blocked:
        asyncio.run(deploy("1"))
    assert blocked.value.refusal.status == OutcomeStatus.BLOCKED
    assert calls == []


def test_a_raising_coroutine_is_recorded_failed(governor: Governor) -> None:
    @governed(
        action="files.read",
        safety_class="A0",
        target="x",
        via=governor,
        tenant="acme",
        actor="agent-7",
    )
    async def broken() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        asyncio.run(broken())
    assert governor.outcome("acme", _last_intent(governor)).status == OutcomeStatus.FAILED


def _last_intent(governor: Governor) -> str:
    store = governor.ledger.store
    return str(list(store.events("acme", 0, store.size("acme")))[-1].intent_id)


def test_an_async_client_cannot_govern_a_blocking_call() -> None:
    async def make() -> None:
        async with AsyncClient("http://127.0.0.1:9", "k") as client:
            governance = Governance(client, tenant="acme")
            with pytest.raises(InputError, match="async calls only"):
                governance.call(governance.intent("a.b", "t", "A0", {}), lambda: None)

    asyncio.run(make())


async def _through_the_async_client(url: str, key: str, root: Client) -> None:
    calls: list[str] = []
    async with AsyncClient(url, key, tenant="acme") as agent:

        @governed(action="svc.deploy", safety_class="A2", target="svc/x", via=agent, tenant="acme")
        async def deploy(version: str) -> str:
            calls.append(version)
            return version

        with pytest.raises(CallRefused) as pending:
            await deploy("9")
        await asyncio.to_thread(root.approve, pending.value.refusal.intent_id, "ok")
        assert await deploy("9") == "9"
        with pytest.raises(CallRefused) as again:
            await deploy("10")
        await asyncio.to_thread(root.approve, again.value.refusal.intent_id, "ok")
        await asyncio.to_thread(root.engage_killswitch, "tenant:acme/action:svc.*", "incident")
        with pytest.raises(CallRefused) as blocked:
            await deploy("10")
        assert blocked.value.refusal.status == OutcomeStatus.BLOCKED
        await asyncio.to_thread(root.release_killswitch, "tenant:acme/action:svc.*", "over")
    assert calls == ["9"]
