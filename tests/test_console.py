"""The operator console over a real governor, in-process: sessions, CSRF, rights, pages.

The browser tests (test_console_browser.py) drive the same pages in
chromium; these reach the refusals and edges a browser would not send.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from exoarmur.principals import Principal
from exoarmur.server.console import pages
from exoarmur.server.console.sessions import Sessions
from exoarmur.server.console.text import shown, shown_json
from test_server_support import DELETE, READ, Deployment, deploy, submit

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _csrf(text: str) -> str:
    found = CSRF.search(text)
    assert found is not None, text
    return found.group(1)


def _sign_in(dep: Deployment, who: str) -> str:
    """Sign the test client in as ``who``; returns the session's CSRF token."""
    form = dep.client.get("/console/signin")
    answer = dep.client.post(
        "/console/signin",
        data={"csrf": _csrf(form.text), "api_key": dep.keys[who]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/inbox"
    inbox = dep.client.get("/console/inbox")
    assert inbox.status_code == 200
    return _csrf(inbox.text)


def _refusals(dep: Deployment) -> list[dict[str, Any]]:
    return [e.payload for e in dep.refusals()]


# -- signing in --------------------------------------------------------------------


def test_the_console_sends_strangers_to_sign_in_and_signed_in_people_to_the_inbox(
    dep: Deployment,
) -> None:
    for path in ("/console", "/console/", "/console/inbox", "/console/ledger"):
        answer = dep.client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/signin"
    _sign_in(dep, "alice")
    answer = dep.client.get("/console", follow_redirects=False)
    assert answer.headers["location"] == "/console/inbox"


def test_sign_in_sets_a_strict_http_only_session_cookie(dep: Deployment) -> None:
    form = dep.client.get("/console/signin")
    assert "default-src 'none'" in form.headers["content-security-policy"]
    answer = dep.client.post(
        "/console/signin",
        data={"csrf": _csrf(form.text), "api_key": dep.keys["alice"]},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("exoarmur_console=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test for Secure


def test_sign_in_without_the_form_token_is_refused(dep: Deployment) -> None:
    dep.client.get("/console/signin")
    answer = dep.client.post(
        "/console/signin", data={"csrf": "forged", "api_key": dep.keys["alice"]}
    )
    assert answer.status_code == 403
    assert "form expired" in answer.text
    assert "exoarmur_console" not in answer.headers.get("set-cookie", "")


def test_a_bad_key_is_refused_and_recorded(dep: Deployment) -> None:
    form = dep.client.get("/console/signin")
    answer = dep.client.post(
        "/console/signin", data={"csrf": _csrf(form.text), "api_key": "exo_00_nope"}
    )
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert {
        "principal": None,
        "tenant": None,
        "attempted": "POST /console/signin",
        "detail": "console sign-in with a bad key",
        "source": "testclient",
    } in _refusals(dep)


def test_an_agent_cannot_use_the_console_and_is_recorded(dep: Deployment) -> None:
    form = dep.client.get("/console/signin")
    answer = dep.client.post(
        "/console/signin", data={"csrf": _csrf(form.text), "api_key": dep.keys["agent-7"]}
    )
    assert answer.status_code == 403
    assert {
        "principal": "agent-7",
        "tenant": None,
        "attempted": "POST /console/signin",
        "detail": "role agent may not use the console",
    } in _refusals(dep)


def test_sign_out_ends_the_session_on_the_server(dep: Deployment) -> None:
    csrf = _sign_in(dep, "alice")
    cookie = dep.client.cookies.get("exoarmur_console")
    refused = dep.client.post("/console/signout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    answer = dep.client.post("/console/signout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.headers["location"] == "/console/signin"
    dep.client.cookies.set("exoarmur_console", cookie or "")
    again = dep.client.get("/console/inbox", follow_redirects=False)
    assert again.headers["location"] == "/console/signin"


def test_an_expired_session_and_a_revoked_key_sign_the_browser_out(dep: Deployment) -> None:
    _sign_in(dep, "alice")
    dep.governor.revoke_principal("alice")
    answer = dep.client.get("/console/inbox", follow_redirects=False)
    assert answer.headers["location"] == "/console/signin"

    dep.client.app.state.console_sessions = Sessions(lifetime=timedelta(0))  # type: ignore[attr-defined]
    _sign_in_expired = dep.client.get("/console/signin")
    dep.client.post(
        "/console/signin",
        data={"csrf": _csrf(_sign_in_expired.text), "api_key": dep.keys["bob"]},
    )
    answer = dep.client.get("/console/inbox", follow_redirects=False)
    assert answer.headers["location"] == "/console/signin"


def test_sessions_are_bounded_and_expire() -> None:
    sessions = Sessions(lifetime=timedelta(seconds=10))
    alice = Principal("alice", "operator", ("acme",), "k1")
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = sessions.open(alice, now)
    assert sessions.find(first.token, now) == first
    assert sessions.find(first.token, now + timedelta(seconds=10)) is None
    assert sessions.find(None, now) is None
    assert sessions.find("unknown", now) is None
    assert not first.csrf_matches(None)
    assert first.csrf_matches(first.csrf)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("exoarmur.server.console.sessions.MAX_SESSIONS", 2)
        tokens = [sessions.open(alice, now + timedelta(seconds=i)).token for i in range(3)]
    assert len(sessions) == 2
    assert sessions.find(tokens[0], now) is None  # the oldest made room
    assert not sessions.signin_token_matches(None, "x")


# -- the inbox and votes ----------------------------------------------------------


def test_votes_from_the_inbox_are_recorded_as_the_principal(dep: Deployment) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    csrf = _sign_in(dep, "alice")
    inbox = dep.client.get("/console/inbox?tenant=acme")
    assert pending["intent_hash"] in inbox.text
    fragment = dep.client.get("/console/inbox/pending?tenant=acme")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert pending["intent_id"] in fragment.text
    path = f"/console/tenants/acme/intents/{pending['intent_id']}/vote"
    form = {"csrf": csrf, "vote": "approve", "reason": "ok", "intent_hash": pending["intent_hash"]}
    first = dep.client.post(path, data=form)
    assert first.status_code == 200
    assert "1 of 2 approvals" in first.text
    again = dep.client.post(path, data=form)
    assert again.status_code == 409
    assert "already" in again.text
    story = dep.governor.story("acme", pending["intent_id"])
    assert [e.actor["id"] for e in story if e.type == "approval.granted"] == ["alice"]
    scraped = dep.client.get("/metrics", headers=dep.auth("audrey")).text
    assert 'exoarmur_stage_seconds_count{stage="vote"} 2.0' in scraped  # console votes count


def test_a_vote_form_is_checked_before_anything_is_done(dep: Deployment) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    csrf = _sign_in(dep, "alice")
    path = f"/console/tenants/acme/intents/{pending['intent_id']}/vote"
    cases = [
        ({"vote": "approve", "reason": "x"}, 403, "CSRF"),
        ({"csrf": csrf, "vote": "maybe", "reason": "x"}, 400, "vote: must be"),
        ({"csrf": csrf, "vote": "approve", "reason": ""}, 400, "reason"),
        ({"csrf": csrf, "vote": "approve", "reason": "x", "intent_hash": "sha256:00"}, 409, ""),
    ]
    for form, status, said in cases:
        answer = dep.client.post(path, data=form)
        assert answer.status_code == status, (form, answer.text)
        assert said in answer.text
    doubled = dep.client.post(path, content=f"csrf={csrf}&csrf={csrf}&vote=approve&reason=x")
    assert doubled.status_code == 400
    assert "given 2 times" in doubled.text
    huge = dep.client.post(path, content="reason=" + "x" * (pages.MAX_FORM_BYTES + 1))
    assert huge.status_code == 400
    bad_tenant = dep.client.post("/console/tenants/ACME!/intents/x/vote", data={"csrf": csrf})
    assert bad_tenant.status_code == 400
    story = dep.governor.story("acme", pending["intent_id"])
    assert "approval.granted" not in [e.type for e in story]  # the wrong hash was refused


def test_an_operator_of_another_tenant_is_refused_and_recorded(dep: Deployment) -> None:
    _sign_in(dep, "mallory")
    answer = dep.client.get("/console/inbox?tenant=acme")
    assert answer.status_code == 403
    assert any(p.get("tenant") == "acme" for p in _refusals(dep))


def test_an_admin_names_the_tenant_first(dep: Deployment) -> None:
    _sign_in(dep, "root")
    for page in ("inbox", "controls", "ledger"):
        answer = dep.client.get(f"/console/{page}")
        assert answer.status_code == 200
        assert "Name a tenant" in answer.text or '<form method="get"' in answer.text


def test_the_live_stream_says_when_the_log_moves_and_ends_when_the_service_stops(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(pages, "EXPIRE_EVERY", 0.0)
    monkeypatch.setattr(pages, "KEEPALIVE_SECONDS", 0.0)
    _sign_in(dep, "alice")
    seen: list[str] = []
    with dep.client.stream("GET", "/console/stream?tenant=acme") as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            seen.append(line)
            if line.startswith("event: hello"):
                threading.Thread(target=submit, args=(dep, "agent-7", DELETE, 202)).start()
            if line.startswith("event: changed"):
                dep.client.app.state.stopping = True  # type: ignore[attr-defined]
    assert "event: hello" in seen
    assert "event: changed" in seen


def test_live_streams_are_bounded(dep: Deployment) -> None:
    _sign_in(dep, "alice")
    streams = dep.client.app.state.console_streams  # type: ignore[attr-defined]
    for _ in range(streams.bound):
        streams.enter()
    try:
        answer = dep.client.get("/console/stream?tenant=acme")
    finally:
        for _ in range(streams.bound):
            streams.leave()
    assert answer.status_code == 429
    assert "live console streams already in flight" in answer.text


def test_the_live_stream_ends_when_the_session_does(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.01)
    _sign_in(dep, "alice")
    sessions: Sessions = dep.client.app.state.console_sessions  # type: ignore[attr-defined]
    token = dep.client.cookies.get("exoarmur_console")
    with dep.client.stream("GET", "/console/stream?tenant=acme") as answer:
        lines = []
        for line in answer.iter_lines():
            lines.append(line)
            if line.startswith("event: hello"):
                sessions.close(token)
    assert "event: signedout" in lines


# -- controls ------------------------------------------------------------------------


def test_kill_switches_and_posture_from_the_controls_page(dep: Deployment) -> None:
    csrf = _sign_in(dep, "alice")
    page = dep.client.get("/console/controls?tenant=acme")
    assert "No kill switch affects acme" in page.text
    engage = {"csrf": csrf, "action": "engage", "scope": "tenant:acme", "reason": "INC-1"}
    answer = dep.client.post("/console/tenants/acme/killswitch", data=engage)
    assert answer.status_code == 200
    assert "killswitch.engaged" in answer.text
    assert submit(dep, "agent-7", READ, 200)["status"] == "denied"
    release = engage | {"action": "release", "reason": "INC-1 closed"}
    assert (
        "killswitch.released"
        in dep.client.post("/console/tenants/acme/killswitch", data=release).text
    )
    again = dep.client.post("/console/tenants/acme/killswitch", data=release)
    assert again.status_code == 400  # nothing is engaged any more
    odd = dep.client.post("/console/tenants/acme/killswitch", data=engage | {"action": "flip"})
    assert odd.status_code == 400

    posture = {"csrf": csrf, "posture": "heightened", "reason": "drill", "ttl_seconds": "60"}
    answer = dep.client.post("/console/tenants/acme/posture", data=posture)
    assert answer.status_code == 200
    assert dep.governor.posture("acme")["posture"] == "heightened"
    for bad in ({"ttl_seconds": "soon"}, {"ttl_seconds": "0"}, {"posture": "panic"}):
        answer = dep.client.post("/console/tenants/acme/posture", data=posture | bad)
        assert answer.status_code == 400, bad
    forever = posture | {"ttl_seconds": "", "posture": "normal"}
    assert dep.client.post("/console/tenants/acme/posture", data=forever).status_code == 200
    events = [e.type for e in dep.governor.ledger.store.events("acme")]
    assert events.count("killswitch.engaged") == 1
    assert events.count("posture.set") == 2


def test_an_auditor_reads_controls_but_cannot_change_them(dep: Deployment) -> None:
    csrf = _sign_in(dep, "audrey")
    page = dep.client.get("/console/controls?tenant=acme")
    assert page.status_code == 200
    assert "engage-form" not in page.text
    engage = {"csrf": csrf, "action": "engage", "scope": "tenant:acme", "reason": "x"}
    answer = dep.client.post("/console/tenants/acme/killswitch", data=engage)
    assert answer.status_code == 403
    assert dep.governor.killswitches("acme") == []


# -- the ledger ----------------------------------------------------------------------


def test_the_ledger_pages_filter_by_correlation_and_prove_every_event(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sign_in(dep, "audrey")
    empty = dep.client.get("/console/ledger?tenant=acme")
    assert "has no events yet" in empty.text
    first = submit(dep, "agent-7", READ, 200)
    for _ in range(3):
        submit(dep, "agent-7", READ, 200)
    monkeypatch.setattr(pages, "LEDGER_PAGE", 5)
    page = dep.client.get("/console/ledger?tenant=acme")
    assert page.status_code == 200
    assert page.text.count("proven in checkpoint") == 5
    assert "NOT PROVEN" not in page.text
    assert dep.governor.ledger.key.verifier_key() in page.text
    next_page = re.search(r'href="(/console/ledger\?tenant=acme&amp;after=\d+)"', page.text)
    assert next_page is not None
    following = dep.client.get(next_page.group(1).replace("&amp;", "&"))
    assert "event-5" in following.text
    by_correlation = dep.client.get(
        f"/console/ledger?tenant=acme&correlation={first['correlation_id']}"
    )
    story = dep.governor.story("acme", first["intent_id"])
    assert by_correlation.text.count('<tr id="event-') == len(story)
    assert by_correlation.text.count("proven in checkpoint") == len(story)
    assert dep.client.get("/console/ledger?tenant=acme&after=-1").status_code == 400
    too_long = dep.client.get("/console/ledger?tenant=acme&correlation=" + "c" * 257)
    assert too_long.status_code == 400


def test_an_event_changed_after_it_was_recorded_is_shown_not_proven(dep: Deployment) -> None:
    submit(dep, "agent-7", READ, 200)
    with contextlib.closing(sqlite3.connect(dep.home / "ledger.db")) as conn, conn:
        (canonical,) = conn.execute(
            "SELECT canonical FROM events WHERE tenant = 'acme' AND seq = 0"
        ).fetchone()
        conn.execute(
            "UPDATE events SET canonical = ? WHERE tenant = 'acme' AND seq = 0",
            (canonical.replace(b"reports/q3.txt", b"reports/q4.txt"),),
        )
    _sign_in(dep, "audrey")
    page = dep.client.get("/console/ledger?tenant=acme")
    assert page.status_code == 200
    row = page.text[page.text.index('id="event-0"') : page.text.index('id="event-1"')]
    assert "NOT PROVEN" in row
    assert page.text.count("proven in checkpoint") == page.text.count('<tr id="event-') - 1


# -- untrusted text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('"><img src=x onerror=alert(1)>', "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        ("invoice\u202egnp.exe", "invoice<span"),
        ("ad\u200bmin", "⟦U+200B⟧"),
        ("line\nbreak", "⟦U+000A⟧"),
        (None, ""),
    ],
)
def test_shown_escapes_and_tags_invisible_characters(raw: str | None, expected: str) -> None:
    assert expected in str(shown(raw))


def test_shown_json_keeps_its_lines_and_tags_the_rest() -> None:
    text = str(shown_json({"a": "x\u202ey", "b": "<i>"}))
    assert "\n" in text
    assert "⟦U+202E⟧" in text
    assert "&lt;i&gt;" in text


def test_unknown_intents_bad_bytes_and_a_failed_store_are_pages_not_tracebacks(
    dep: Deployment,
) -> None:
    csrf = _sign_in(dep, "alice")
    missing = dep.client.post(
        "/console/tenants/acme/intents/01ARZ3NDEKTSV4RRFFQ69G5FAV/vote",
        data={"csrf": csrf, "vote": "approve", "reason": "x"},
    )
    assert missing.status_code == 404
    assert "no intent" in missing.text
    garbled = dep.client.post(
        "/console/tenants/acme/intents/01ARZ3NDEKTSV4RRFFQ69G5FAV/vote",
        content=b"reason=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert garbled.status_code == 400
    assert "not UTF-8" in garbled.text
    dep.governor.ledger.store.close()  # every read now fails
    failed = dep.client.get("/console/ledger?tenant=acme")
    assert failed.status_code == 503
    assert "ledger store is unavailable" in failed.text
    assert "closed" not in failed.text  # the store's own words stay in the log
