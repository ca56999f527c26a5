"""The Python client against a real ``exoarmur serve``: typed answers, waits, retries, errors."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exoarmur.client import (
    AsyncClient,
    Client,
    ConflictError,
    Forbidden,
    InvalidRequest,
    NotFoundError,
    Retrying,
    ServiceUnreachable,
    TooBusy,
    Unauthenticated,
    WaitTimedOut,
    _wire,
)
from exoarmur.client.errors import APIError, ProtocolViolation, ServerError, problem
from exoarmur.evidence import verify_bundle_text
from exoarmur.model.decision import OutcomeStatus
from exoarmur.server.schemas import Story
from served import Served, prepare, serving
from test_server_support import DELETE, FORBIDDEN, READ

pytestmark = pytest.mark.slow

TICKET = {"tenant": "acme", "action": "ticket.read", "target": "tickets/7", "safety_class": "A0"}
CLOSE = {"tenant": "acme", "action": "ticket.close", "target": "tickets/7", "safety_class": "A1"}
FAST = Retrying(attempts=3, backoff=0.0)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served") / "home"
    with serving(home, prepare(home)) as service:
        yield service


def client(served: Served, who: str, **options: Any) -> Client:
    return Client(served.url, served.keys[who], tenant="acme", **options)


class Counting(httpx.HTTPTransport):
    """A real transport that counts the requests it sends (and can lose some answers)."""

    def __init__(self, lose: int = 0, busy: int = 0) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []
        self.lose = lose
        self.busy = busy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if self.busy:
            self.busy -= 1
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "x"})
        response = super().handle_request(request)
        if self.lose:
            self.lose -= 1
            response.read()
            raise httpx.ReadError("the answer was lost", request=request)
        return response


def test_submit_answers_the_server_s_outcome(served: Served) -> None:
    with client(served, "agent-7") as agent:
        outcome = agent.submit(READ)
        assert outcome.status == OutcomeStatus.EXECUTED
        assert outcome.result is not None
        story = agent.story(outcome.intent_id)
        assert isinstance(story, Story)
        assert story.outcome == outcome
        assert agent.whoami().name == "agent-7"


def test_a_lost_answer_is_asked_again_with_the_same_key_and_recorded_once(
    served: Served,
) -> None:
    transport = Counting(lose=1)
    with client(served, "agent-7", transport=transport, retrying=FAST) as agent:
        outcome = agent.submit(READ)
    first, second = transport.sent
    assert json.loads(first.content) == json.loads(second.content)  # the same idempotency key
    assert outcome.duplicate  # the retry found the first submission, nothing new was written


def test_busy_answers_are_retried_then_surfaced(served: Served) -> None:
    transport = Counting(busy=1)
    with client(served, "agent-7", transport=transport, retrying=FAST) as agent:
        assert agent.submit(READ).status == OutcomeStatus.EXECUTED
    assert len(transport.sent) == 2
    busy = client(served, "agent-7", transport=Counting(busy=5), retrying=FAST)
    with busy, pytest.raises(APIError, match="503") as raised:
        busy.submit(READ)
    assert isinstance(raised.value, APIError)
    assert raised.value.retry_after == 0


def test_a_vote_whose_answer_was_lost_is_not_sent_again(served: Served) -> None:
    with client(served, "agent-7") as agent:
        pending = agent.submit(CLOSE)
    transport = Counting(lose=1)
    alice = client(served, "alice", transport=transport, retrying=FAST)
    with alice, pytest.raises(ServiceUnreachable):
        alice.approve(pending.intent_id, "ok")
    assert len(transport.sent) == 1  # recorded once, never voted twice by a retry


def test_an_unreachable_service_is_named_after_bounded_retries() -> None:
    agent = Client(_closed_url(), "exo_x_y", tenant="acme", retrying=Retrying(2, 0))
    with agent, pytest.raises(ServiceUnreachable, match="POST /v1/intents"):
        agent.submit(READ)


def _closed_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_wait_is_pushed_by_the_stream_not_polled(served: Served) -> None:
    with client(served, "agent-7") as agent:
        pending = agent.submit(DELETE)
    assert pending.status == OutcomeStatus.PENDING_APPROVAL
    transport = Counting()
    waited: list[Any] = []

    def wait() -> None:
        with client(served, "agent-7", transport=transport) as agent:
            waited.append(agent.wait(pending.intent_id, timeout=60))

    waiter = threading.Thread(target=wait)
    waiter.start()
    with client(served, "alice") as alice, client(served, "bob") as bob:
        state = alice.pending().pending
        intent_hash = next(p.intent_hash for p in state if p.intent_id == pending.intent_id)
        assert alice.approve(pending.intent_id, "ok", intent_hash=intent_hash).accepted
        bob.approve(pending.intent_id, "ok too", intent_hash=intent_hash)
    waiter.join(60)
    (outcome,) = waited
    assert outcome.status == OutcomeStatus.EXECUTED
    assert [r.url.path for r in transport.sent] == [
        f"/v1/tenants/acme/intents/{pending.intent_id}/events"
    ]


def test_wait_times_out_with_the_last_known_outcome(served: Served) -> None:
    with client(served, "agent-7") as agent:
        pending = agent.submit(CLOSE)
        with pytest.raises(WaitTimedOut) as raised:
            agent.wait(pending.intent_id, timeout=0.5)
    assert raised.value.last is not None
    assert raised.value.last.status == OutcomeStatus.PENDING_APPROVAL


def test_problems_map_to_one_exception_tree(served: Served) -> None:
    stranger = Client(served.url, "exo_nobody_secret", tenant="acme")
    with stranger, pytest.raises(Unauthenticated):
        stranger.submit(READ)
    with client(served, "agent-7") as agent:
        with pytest.raises(InvalidRequest) as invalid:
            agent.submit(READ | {"safety_class": "A9"})
        assert invalid.value.detail[0]["field"] == "safety_class"
        mine = agent.submit(TICKET)
        with pytest.raises(ConflictError, match="denied"):
            agent.report_start(agent.submit(FORBIDDEN).intent_id)
        with pytest.raises(Forbidden):
            agent.engage_killswitch("tenant:acme", "agents cannot")
    with client(served, "agent-8") as other:
        with pytest.raises(NotFoundError):
            other.story(mine.intent_id)
        with pytest.raises(NotFoundError):
            other.wait(mine.intent_id, timeout=5)
    with client(served, "agent-7") as agent, pytest.raises(Exception, match="tenant"):
        Client(served.url, served.keys["agent-7"]).story(mine.intent_id)


def test_problem_mapping_of_undocumented_answers() -> None:
    assert isinstance(problem(502, None, None), ServerError)
    assert isinstance(problem(429, {"error": "too_many_requests", "message": "m"}, 1.0), TooBusy)
    call = _wire.Call("GET", "/v1/x")
    with pytest.raises(ProtocolViolation):
        _wire.answer(call, httpx.Response(200, text="not json"))
    assert _wire.retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    with pytest.raises(ValueError, match="attempts"):
        Retrying(attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        Retrying(backoff=-1)


def test_the_event_stream_reader_follows_the_format() -> None:
    stream = _wire.EventStream()
    lines = [": keep-alive", "", "id: 7", "event: x", "data: a", "data: b", "", "data: c", ""]
    messages = [m for m in (stream.feed(line) for line in lines) if m is not None]
    assert messages == [("x", "a\nb"), ("message", "c")]
    assert stream.last_id == "7"
    with pytest.raises(ProtocolViolation):
        _wire.final_outcome(("outcome", "{"))


def test_kill_switch_report_back_and_evidence(served: Served) -> None:
    with client(served, "alice") as alice, client(served, "agent-7") as agent:
        alice.engage_killswitch("tenant:acme/action:ticket.*", "incident")
        assert agent.submit(TICKET).status == OutcomeStatus.DENIED
        alice.release_killswitch("tenant:acme/action:ticket.*", "over")
        decided = agent.submit(TICKET)
        assert decided.status == OutcomeStatus.DECIDED
        started = agent.report_start(decided.intent_id)
        assert started.event.type == "execution.started"
        finished = agent.report_outcome(decided.intent_id, "succeeded", result={"ok": True})
        assert finished.status == OutcomeStatus.EXECUTED
        with pytest.raises(ConflictError, match="already recorded"):
            agent.report_outcome(decided.intent_id, "failed", error="again")
        turned_down = agent.submit(CLOSE | {"target": "tickets/99"})
        assert alice.reject(turned_down.intent_id, "no").outcome.status == OutcomeStatus.REJECTED
        bundle = alice.evidence_export(decided.correlation_id)
    verdict = verify_bundle_text(json.dumps(bundle))
    assert verdict.passed, verdict.failures


def test_the_async_client_does_the_same(served: Served) -> None:
    async def scenario() -> None:
        async with (
            AsyncClient(served.url, served.keys["agent-7"], tenant="acme") as agent,
            AsyncClient(served.url, served.keys["alice"], tenant="acme") as alice,
        ):
            assert (await agent.whoami()).name == "agent-7"
            pending = await agent.submit(CLOSE)
            waiting = asyncio.create_task(agent.wait(pending.intent_id, timeout=60))
            await asyncio.sleep(0.2)
            listed = await alice.pending()
            assert pending.intent_id in [p.intent_id for p in listed.pending]
            await alice.approve(pending.intent_id, "ok")
            approved = await waiting
            assert approved.status == OutcomeStatus.APPROVED
            assert (await agent.report_start(pending.intent_id)).event.type == "execution.started"
            done = await agent.report_outcome(pending.intent_id, "failed", error="jammed")
            assert done.status == OutcomeStatus.FAILED
            assert (await agent.story(pending.intent_id)).outcome == done
            rejected = await agent.submit(CLOSE | {"target": "tickets/8"})
            answer = await alice.reject(rejected.intent_id, "no")
            assert answer.outcome.status == OutcomeStatus.REJECTED
            await alice.engage_killswitch("tenant:acme/action:x.*", "drill")
            await alice.release_killswitch("tenant:acme/action:x.*", "drill over")
            bundle = await alice.evidence_export(done.correlation_id)
            assert bundle["correlation_id"] == done.correlation_id
            with pytest.raises(WaitTimedOut):
                await agent.wait((await agent.submit(CLOSE | {"target": "t/9"})).intent_id, 0.3)
        retrying = AsyncClient(
            served.url,
            served.keys["agent-7"],
            tenant="acme",
            retrying=FAST,
            transport=AsyncCounting(),
        )
        async with retrying:
            assert (await retrying.submit(READ)).status == OutcomeStatus.EXECUTED
        gone = AsyncClient(_closed_url(), "k", tenant="acme", retrying=Retrying(2, 0))
        async with gone:
            with pytest.raises(ServiceUnreachable):
                await gone.submit(READ)

    asyncio.run(scenario())


class AsyncCounting(httpx.AsyncHTTPTransport):
    """Answers 429 once, then forwards."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.busy:
            self.busy -= 1
            return httpx.Response(429, headers={"Retry-After": "0"})
        return await super().handle_async_request(request)


def test_the_stream_resumes_after_the_last_event_id(served: Served, tmp_path: Path) -> None:
    with client(served, "agent-7") as agent:
        denied = agent.submit(FORBIDDEN)
    path = f"/v1/tenants/acme/intents/{denied.intent_id}/events"
    auth = {"Authorization": f"Bearer {served.keys['agent-7']}"}
    whole = httpx.get(served.url + path, headers=auth, timeout=10).text
    ids = [line.removeprefix("id: ") for line in whole.splitlines() if line.startswith("id: ")]
    assert len(ids) >= 2
    assert "event: outcome" in whole
    resumed = httpx.get(served.url + path, headers=auth | {"Last-Event-ID": ids[0]}, timeout=10)
    assert f"id: {ids[0]}\n" not in resumed.text
    assert f"id: {ids[1]}\n" in resumed.text


class Cutting(httpx.HTTPTransport):
    """Cuts the first event streams (truncated, lost, 503), then forwards."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.streams.append(request)
            if len(self.streams) == 1:
                text = "id: 0\nevent: intent.recorded\ndata: {}\n\n"
                return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
            if len(self.streams) == 2:
                raise httpx.ReadError("cut", request=request)
            if len(self.streams) == 3:
                return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "x"})
        return super().handle_request(request)


def test_wait_reconnects_after_a_cut_resuming_after_the_last_event(served: Served) -> None:
    transport = Cutting()
    with client(served, "agent-7", transport=transport, retrying=FAST) as agent:
        denied = agent.submit(FORBIDDEN)
        assert agent.wait(denied.intent_id, timeout=30).status == OutcomeStatus.DENIED
    assert len(transport.streams) == 4
    assert transport.streams[1].headers["Last-Event-ID"] == "0"


def test_the_async_wait_reconnects_too(served: Served) -> None:
    class AsyncCutting(httpx.AsyncHTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self.streams = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                self.streams += 1
                if self.streams == 1:
                    raise httpx.ReadError("cut", request=request)
                if self.streams == 2:
                    return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "x"})
                if self.streams == 3:
                    return httpx.Response(
                        200,
                        text="id: 0\nevent: x\ndata: {}\n\n",
                        headers={"content-type": "text/event-stream"},
                    )
            return await super().handle_async_request(request)

    async def scenario() -> None:
        transport = AsyncCutting()
        async with AsyncClient(
            served.url, served.keys["agent-7"], tenant="acme", transport=transport, retrying=FAST
        ) as agent:
            denied = await agent.submit(FORBIDDEN)
            assert (await agent.wait(denied.intent_id, timeout=30)).status == OutcomeStatus.DENIED
            with pytest.raises(NotFoundError):
                await agent.wait("01ARZ3NDEKTSV4RRFFQ69G5FAV", timeout=5)
        assert transport.streams == 5

    asyncio.run(scenario())


def test_the_public_names_are_pinned() -> None:
    import exoarmur.client as public

    assert sorted(public.__all__) == [
        "APIError", "AsyncClient", "Client", "ClientError", "ConflictError", "Forbidden",
        "InvalidRequest", "NotFoundError", "ProtocolViolation", "Retrying", "ServerError",
        "ServiceUnreachable", "TooBusy", "Unauthenticated", "Unavailable", "WaitTimedOut",
    ]  # fmt: skip
    assert all(hasattr(public, name) for name in public.__all__)
    assert issubclass(public.ConflictError, public.APIError)
    assert issubclass(public.APIError, public.ClientError)
