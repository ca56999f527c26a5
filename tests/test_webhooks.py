"""The webhook outbox: signed, retried with backoff, durable across a restart, deduplicated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.approvals import Vote
from exoarmur.clock import FixedClock
from exoarmur.errors import AuthenticationError, ConfigError, InputError
from exoarmur.ids import SeededIds
from exoarmur.integrations.webhooks import (
    DELIVERY_HEADER,
    HttpTransport,
    Outbox,
    Webhook,
    delivery_id,
    load,
    save,
    sign,
    verify,
)
from exoarmur.integrations.webhooks.messages import APPROVE_ACTION
from exoarmur.integrations.webhooks.outbox import backoff, origin
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import (
    APPROVAL_REQUESTED,
    SYSTEM_LOG,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_GAVE_UP,
)
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from webhook_receiver import Receiver

POLICY = """
@id("one-approver") @approval("1")
permit (principal, action == Action::"ticket.close", resource);
"""
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SECRET = b"s3cret-for-tests"


def open_governor(path: Path, key: SigningKey, clock: FixedClock, seed: int) -> Governor:
    return Governor(
        ledger=Ledger(SqliteStore(path / "ledger.db"), key),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        clock=clock,
        ids=SeededIds(seed),
    )


def ask_approval(governor: Governor, tenant: str = "acme") -> str:
    return governor.submit(
        {
            "tenant": tenant,
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "ticket.close",
            "target": "tickets/42",
            "safety_class": "A2",
        }
    ).intent_id


def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "hook.secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return str(path)


def records(governor: Governor, event_type: str) -> list[dict[str, object]]:
    return [e.payload for e in governor.ledger.store.events(SYSTEM_LOG) if e.type == event_type]


# -- signing ------------------------------------------------------------------


@settings(max_examples=40)
@given(body=st.binary(max_size=200), secret=st.binary(min_size=1, max_size=40))
def test_a_signed_body_verifies_and_any_other_body_does_not(body: bytes, secret: bytes) -> None:
    stamp = int(T0.timestamp())
    headers = {
        "exoarmur-timestamp": str(stamp),  # receivers see header names in any case
        "ExoArmur-Signature": sign(secret, stamp, body),
        DELIVERY_HEADER: "dlv_1",
    }
    assert verify(secret, headers, body, T0) == "dlv_1"
    with pytest.raises(AuthenticationError, match="does not match"):
        verify(secret, headers, body + b"x", T0)
    with pytest.raises(AuthenticationError, match="does not match"):
        verify(secret + b"x", headers, body, T0)


def test_a_stale_or_missing_timestamp_is_refused() -> None:
    stamp = int(T0.timestamp())
    headers = {"ExoArmur-Timestamp": str(stamp), "ExoArmur-Signature": sign(SECRET, stamp, b"{}")}
    with pytest.raises(AuthenticationError, match="more than 300 s"):
        verify(SECRET, headers, b"{}", T0 + timedelta(seconds=301))
    with pytest.raises(AuthenticationError, match="ExoArmur-Timestamp: header missing"):
        verify(SECRET, {"ExoArmur-Signature": "v1=00"}, b"{}", T0)
    with pytest.raises(AuthenticationError, match="unix seconds"):
        verify(SECRET, headers | {"ExoArmur-Timestamp": "-1"}, b"{}", T0)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff(500, 5, 3600) == 3600


def test_a_record_names_the_origin_of_the_url_never_its_path() -> None:
    assert origin("https://user:pw@hooks.slack.com/services/T/B/tok") == "https://hooks.slack.com"


# -- configuration --------------------------------------------------------------


def test_configuration_round_trips_and_bad_entries_name_the_field(tmp_path: Path) -> None:
    hook = Webhook("ops", "https://example.test/h", secret_file=secret_file(tmp_path))
    save(tmp_path, [hook])
    assert (tmp_path / "webhooks.json").stat().st_mode & 0o777 == 0o600
    assert load(tmp_path) == [hook]
    for bad, message in [
        ({"url": "ftp://x"}, "url:"),
        ({"events": ("nope",)}, "events: nope"),
        ({"fmt": "xml"}, "format:"),
        ({"secret_file": None}, "secret:"),
        ({"name": "Bad Name"}, "name:"),
    ]:
        fields = {"name": "ops", "url": "https://example.test/h", "secret_file": "f"} | bad
        with pytest.raises(InputError, match=message):
            Webhook(**fields)  # type: ignore[arg-type]


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = Path(secret_file(tmp_path))
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Webhook("ops", "https://example.test/h", secret_file=str(path)).secret()


# -- delivery -------------------------------------------------------------------


def test_a_failed_delivery_is_retried_after_a_restart_with_the_same_delivery_id(
    tmp_path: Path,
) -> None:
    key = SigningKey.generate("t/webhooks")
    clock = FixedClock(T0)
    with Receiver(fail_first=1) as receiver:
        hook = Webhook(
            "ops", receiver.url, events=(APPROVAL_REQUESTED,), secret_file=secret_file(tmp_path)
        )
        governor = open_governor(tmp_path, key, clock, 1)
        intent_id = ask_approval(governor)
        first = Outbox(governor, [hook], HttpTransport()).deliver_due()
        assert len(first.failed) == 1
        assert not first.delivered
        (failure,) = records(governor, WEBHOOK_FAILED)
        assert failure["error"] == "HTTP 500"
        assert failure["attempt"] == 1
        assert failure["next_attempt_at"] == "2026-06-01T09:00:05.000000Z"
        governor.close()  # the process stops; the debt is in the ledger only

        governor = open_governor(tmp_path, key, clock, 2)
        outbox = Outbox(governor, [hook], HttpTransport())
        assert outbox.deliver_due().delivered == []  # not due yet: backoff on the injected clock
        clock.advance(timedelta(seconds=5))
        assert len(outbox.deliver_due().delivered) == 1
        assert outbox.deliver_due().delivered == []  # delivered once, never again
        governor.close()

    assert len(receiver.requests) == 2
    ids = {r.headers[DELIVERY_HEADER] for r in receiver.requests}
    assert ids == {
        delivery_id("ops", "acme", json.loads(receiver.requests[1].body)["event"]["event_id"])
    }
    last = receiver.requests[1]
    assert verify(SECRET, last.headers, last.body, clock.now()) in ids
    body = json.loads(last.body)
    assert body["event"]["type"] == APPROVAL_REQUESTED
    assert body["event"]["intent_id"] == intent_id
    governor = open_governor(tmp_path, key, clock, 3)
    (delivered,) = records(governor, WEBHOOK_DELIVERED)
    assert delivered["attempt"] == 2
    assert delivered["status_code"] == 200
    assert "/hook" not in json.dumps(delivered)  # the URL's path is never recorded
    governor.close()


def test_a_delivery_due_before_a_crash_is_sent_after_it(tmp_path: Path) -> None:
    key = SigningKey.generate("t/webhooks")
    clock = FixedClock(T0)
    with Receiver() as receiver:
        hook = Webhook("ops", receiver.url, secret_file=secret_file(tmp_path))
        governor = open_governor(tmp_path, key, clock, 1)
        ask_approval(governor)
        governor.close()  # no pass ran before the stop
        governor = open_governor(tmp_path, key, clock, 2)
        report = Outbox(governor, [hook], HttpTransport()).deliver_due()
        governor.close()
    assert len(report.delivered) == 1
    assert len(receiver.requests) == 1


def test_two_processes_delivering_at_once_record_one_delivery(tmp_path: Path) -> None:
    key = SigningKey.generate("t/webhooks")
    clock = FixedClock(T0)
    governor = open_governor(tmp_path, key, clock, 1)
    ask_approval(governor)
    with Receiver() as receiver:
        hook = Webhook("ops", receiver.url, secret_file=secret_file(tmp_path))
        other = Outbox(governor, [hook], HttpTransport())
        raced: list[bool] = []

        def other_process_delivers_meanwhile() -> None:
            if not raced:  # only while the first POST waits for its answer
                raced.append(True)
                other.deliver_due()

        receiver.during = other_process_delivers_meanwhile
        report = Outbox(governor, [hook], HttpTransport()).deliver_due()
    assert len(report.delivered) == 1
    assert len(receiver.requests) == 2  # at least once: the receiver dedupes on the id
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.requests}) == 1
    assert len(records(governor, WEBHOOK_DELIVERED)) == 1
    governor.close()


def test_a_tenant_webhook_gets_its_tenant_and_global_controls_only(tmp_path: Path) -> None:
    key = SigningKey.generate("t/webhooks")
    governor = open_governor(tmp_path, key, FixedClock(T0), 1)
    from exoarmur.pipeline import LOCAL_ADMIN

    with Receiver() as receiver:
        hook = Webhook(
            "globex-ops", receiver.url, tenant="globex", secret_file=secret_file(tmp_path)
        )
        ask_approval(governor, "acme")
        ask_approval(governor, "globex")
        governor.engage_killswitch("tenant:acme", "acme only", LOCAL_ADMIN)
        governor.engage_killswitch("global", "stop everything", LOCAL_ADMIN)
        Outbox(governor, [hook], HttpTransport()).deliver_due()
    seen = [
        (json.loads(r.body)["event"]["tenant"], json.loads(r.body)["event"]["type"])
        for r in receiver.requests
    ]
    assert all(tenant != "acme" for tenant, _type in seen)
    assert sorted(seen) == [(SYSTEM_LOG, "killswitch.engaged"), ("globex", APPROVAL_REQUESTED)]
    governor.close()


def test_an_unreachable_receiver_is_given_up_on_after_the_last_attempt(tmp_path: Path) -> None:
    key = SigningKey.generate("t/webhooks")
    clock = FixedClock(T0)
    governor = open_governor(tmp_path, key, clock, 1)
    ask_approval(governor)
    with Receiver() as receiver:
        url = receiver.url
    hook = Webhook("ops", url, events=(APPROVAL_REQUESTED,), secret_file=secret_file(tmp_path))
    outbox = Outbox(governor, [hook], HttpTransport(timeout=5), max_attempts=2)
    assert len(outbox.deliver_due().failed) == 1
    clock.advance(timedelta(seconds=5))
    assert len(outbox.deliver_due().gave_up) == 1
    clock.advance(timedelta(hours=1))
    assert outbox.deliver_due() == type(outbox.deliver_due())()
    (gave_up,) = records(governor, WEBHOOK_GAVE_UP)
    assert gave_up["error"] == "ConnectError"
    governor.close()


def test_a_slack_webhook_posts_block_kit_with_buttons_bound_to_the_intent_hash(
    tmp_path: Path,
) -> None:
    key = SigningKey.generate("t/webhooks")
    governor = open_governor(tmp_path, key, FixedClock(T0), 1)
    intent_id = ask_approval(governor)
    with Receiver() as receiver:
        hook = Webhook("slack", receiver.url, events=(APPROVAL_REQUESTED,), fmt="slack")
        outbox = Outbox(governor, [hook], HttpTransport(), public_url="https://exo.example")
        outbox.deliver_due()
    (request,) = receiver.requests
    message = json.loads(request.body)
    buttons = message["blocks"][2]["elements"]
    assert buttons[0]["action_id"] == APPROVE_ACTION
    value = json.loads(buttons[0]["value"])
    state_hash = governor.pending("acme")[0].intent_hash
    assert value == {"tenant": "acme", "intent_id": intent_id, "hash": state_hash}
    assert all(
        block["text"]["type"] == "plain_text" for block in message["blocks"] if "text" in block
    )
    assert (
        f"https://exo.example/console/inbox?tenant=acme#intent-{intent_id}" in request.body.decode()
    )
    governor.close()


def test_the_receiver_snippet_in_the_docs_verifies_and_dedupes() -> None:
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "approvals.md").read_text()
    section = doc.split("\n## Webhooks", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    scope: dict[str, object] = {}
    exec(compile(snippet, "approvals.md", "exec"), scope)  # noqa: S102 - the docs' own code
    receive = scope["receive"]
    now = int(datetime.now(UTC).timestamp())
    body = b'{"event": {}}'
    headers = {
        "ExoArmur-Delivery": "dlv_1",
        "ExoArmur-Timestamp": str(now),
        "ExoArmur-Signature": sign(SECRET, now, body),
    }
    seen: set[str] = set()
    assert receive(headers, body, SECRET, seen) == 200  # type: ignore[operator]
    assert receive(headers, body, SECRET, seen) == 200  # type: ignore[operator]
    assert seen == {"dlv_1"}
    with pytest.raises(AuthenticationError):
        receive(headers, body + b" ", SECRET, seen)  # type: ignore[operator]


def test_the_serving_loop_never_sends_unsigned(tmp_path: Path) -> None:
    import time

    from exoarmur.integrations.webhooks import OutboxLoop

    key = SigningKey.generate("t/webhooks")
    governor = open_governor(tmp_path, key, FixedClock(T0), 1)
    ask_approval(governor)
    with Receiver() as receiver:
        good = Webhook("ops", receiver.url, secret_env="EXOARMUR_TEST_UNSET_SECRET")
        loop = OutboxLoop(Outbox(governor, [good], HttpTransport()), every=0.01)
        loop.start()
        deadline = time.monotonic() + 60
        while not records(governor, WEBHOOK_FAILED):  # the secret is missing: never sent unsigned
            assert time.monotonic() < deadline
            time.sleep(0.02)
        loop.stop()
    assert receiver.requests == []
    (failed,) = records(governor, WEBHOOK_FAILED)
    assert "$EXOARMUR_TEST_UNSET_SECRET is not set" in str(failed["error"])
    governor.close()


class Broken:
    """A transport with a bug: the loop must log it and keep going."""

    def __init__(self) -> None:
        self.calls = 0

    def post(self, url: str, body: bytes, headers: object) -> int:
        self.calls += 1
        raise RuntimeError("bug")


def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from exoarmur.integrations.webhooks import OutboxLoop

    governor = open_governor(tmp_path, SigningKey.generate("t/webhooks"), FixedClock(T0), 1)
    ask_approval(governor)
    broken = Broken()
    hook = Webhook("ops", "http://127.0.0.1:9/x", secret_file=secret_file(tmp_path))
    loop = OutboxLoop(Outbox(governor, [hook], broken), every=0.01)
    loop.start()
    deadline = time.monotonic() + 60
    while broken.calls < 2:  # a second pass came after the first one failed
        assert time.monotonic() < deadline
        time.sleep(0.02)
    loop.stop()
    governor.close()
    assert "webhook outbox pass failed" in caplog.text


def test_containment_changes_are_delivered(tmp_path: Path) -> None:
    from containment_kit import action
    from containment_kit import governor as containment_governor
    from exoarmur.containment.plans import door_net
    from exoarmur.containment.room import plan_intent

    ledger = Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("t/webhooks"))
    governor = containment_governor(ledger, {"rate_limit": ["identity:alice"]})
    with Receiver() as receiver:
        hook = Webhook("soc", receiver.url, secret_file=secret_file(tmp_path))
        governor.submit(action("revoke_sessions", "identity:bob", ttl=60))
        governor.containment.tick(governor.clock.now() + timedelta(seconds=61))
        operator, _ = governor.add_principal("op", "operator", ["acme"])
        for target in ("identity:alice", "identity:carol"):  # alice's step fails: compensated
            plan = governor.submit(plan_intent(door_net("acme", [target]), "acme", "soc"))
            governor.vote("acme", plan.intent_id, operator, Vote.APPROVE, "contain")
        Outbox(governor, [hook], HttpTransport()).deliver_due()
    seen = {json.loads(r.body)["event"]["type"] for r in receiver.requests}
    assert {
        "execution.finished",  # the control applied
        "containment.expired",
        "containment.reverted",  # released: at expiry, and by the plan's compensation
        "plan.started",
        "plan.compensated",
        "plan.completed",
    } <= seen
    governor.close()
