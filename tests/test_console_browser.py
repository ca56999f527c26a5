"""The operator console in a real browser: Debian's chromium, driven by Playwright.

A real ``exoarmur serve`` on a free loopback port; every page is loaded,
clicked and read as an operator would. Screenshots of each page go to
``$EXOARMUR_SCREENSHOTS`` (default: pytest's temporary directory), and the
page-load and live-update latencies are printed (reported, never asserted:
a shared CI machine decides them).

Without chromium the tests are skipped, except in CI (``CI=true``), where a
missing browser fails them: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from containment_kit import CONTAINMENT_POLICY
from exoarmur.home import Home, open_governor
from exoarmur.policy import PolicyBundle
from test_server_support import DELETE, POLICY, READ

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
EXOARMUR = str(Path(sys.executable).parent / "exoarmur")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: name → (role, tenants); initech is where kill switches are thrown, apart from the rest
PEOPLE = {
    "agent-7": ("agent", ["acme"]),
    "agent-i": ("agent", ["initech"]),
    "alice": ("operator", ["acme"]),
    "bob": ("operator", ["acme"]),
    "olga": ("operator", ["initech"]),
    "audrey": ("auditor", ["acme"]),
}


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the browser tests: {missing}")
        pytest.skip(f"browser tests need chromium: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """A running ``exoarmur serve`` and everyone's key."""

    def __init__(self, base: str, keys: dict[str, str], shots: Path) -> None:
        self.base = base
        self.keys = keys
        self.shots = shots
        self.api = httpx.Client(base_url=base, timeout=30)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def submit(self, who: str, intent: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.post("/v1/intents", json=intent, headers=self.auth(who))
        assert answer.status_code in (200, 202), answer.text
        body: dict[str, Any] = answer.json()
        return body

    def story(self, who: str, tenant: str, intent_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/tenants/{tenant}/intents/{intent_id}", headers=self.auth(who))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if _browser_missing() is not None and os.environ.get("CI") != "true":
        pytest.skip(f"browser tests need chromium: {_browser_missing()}")
    home = tmp_path_factory.mktemp("console") / "home"
    Home(home).init()
    governor = open_governor(home)
    try:
        # Containment actions are allowed too, for the containment page's plans.
        governor.activate_policy(PolicyBundle.from_text(POLICY + CONTAINMENT_POLICY))
        keys = {
            name: governor.add_principal(name, role, tenants)[1]
            for name, (role, tenants) in PEOPLE.items()
        }
    finally:
        governor.close()
    port = _free_port()
    log = (home.parent / "serve.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "exoarmur"),
            "--home",
            str(home),
            "serve",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONWARNINGS": "error"},
    )
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ.get("EXOARMUR_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (home.parent / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/v1/ready", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "exoarmur serve did not become ready"
            time.sleep(0.1)
        served = Served(base, keys, shots)
        yield served
        served.api.close()
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    print(f"\nconsole screenshots: {shots}")
    assert process.returncode == 0, (home.parent / "serve.log").read_text()


def _sign_in(browser: Any, served: Served, who: str) -> Any:
    """A fresh browser context signed in as ``who``; returns its page on the inbox."""
    context = browser.new_context(base_url=served.base)
    page = context.new_page()
    page.goto("/console")
    page.fill("input[name=api_key]", served.keys[who])
    page.click("#signin button[type=submit]")
    page.wait_for_url(re.compile(r"/console/inbox"))
    return page


def _report(what: str, seconds: float) -> None:
    print(f"\nLATENCY {what}: {seconds * 1000:.0f} ms")


def _shoot(page: Any, served: Served, name: str) -> None:
    page.screenshot(path=str(served.shots / f"console-{name}.png"), full_page=True)


# -- signing in and out ------------------------------------------------------------


def test_sign_in_with_a_key_then_sign_out(browser: Any, served: Served) -> None:
    context = browser.new_context(base_url=served.base)
    page = context.new_page()
    page.goto("/console")
    assert page.url.endswith("/console/signin")
    _shoot(page, served, "signin")
    page.fill("input[name=api_key]", served.keys["alice"])
    started = time.perf_counter()
    page.click("#signin button[type=submit]")
    page.wait_for_url(re.compile(r"/console/inbox"))
    page.wait_for_load_state("load")
    _report("sign-in to inbox loaded", time.perf_counter() - started)
    assert page.inner_text("#principal") == "alice"
    cookie = next(c for c in context.cookies() if c["name"] == "exoarmur_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the session

    page.click("#signout")
    page.wait_for_url(re.compile(r"/console/signin"))
    page.goto("/console/inbox")  # the session ended on the server, not only in the browser
    assert page.url.endswith("/console/signin")
    context.close()


def test_a_wrong_key_is_refused_and_an_agent_key_cannot_sign_in(
    browser: Any, served: Served
) -> None:
    context = browser.new_context(base_url=served.base)
    page = context.new_page()
    for key, said in (("exo_0000_nope", "not valid"), (served.keys["agent-7"], "Agents act")):
        page.goto("/console/signin")
        page.fill("input[name=api_key]", key)
        page.click("#signin button[type=submit]")
        assert said in page.inner_text("#message")
        assert page.url.endswith("/console/signin")
    context.close()


# -- the inbox -----------------------------------------------------------------------


def test_a_pending_intent_appears_live_without_a_reload(browser: Any, served: Served) -> None:
    started = time.perf_counter()
    page = _sign_in(browser, served, "alice")
    _report("inbox page load (sign-in included)", time.perf_counter() - started)
    started = time.perf_counter()
    page.goto("/console/inbox?tenant=acme")
    _report("inbox page load", time.perf_counter() - started)
    page.wait_for_function("document.getElementById('live-state').textContent.includes('on')")
    page.evaluate("window.sameDocument = true")

    submitted = time.perf_counter()
    pending = served.submit("agent-7", DELETE | {"idempotency_key": "live-1"})
    card = page.locator(f"#intent-{pending['intent_id']}")
    card.wait_for(state="visible", timeout=15_000)
    _report("live update (submit answered to card shown)", time.perf_counter() - submitted)
    assert page.evaluate("window.sameDocument") is True  # no reload happened
    assert pending["intent_hash"] in card.inner_text()
    assert "prod-delete" in card.locator(".reason").inner_text()
    assert "approval=2" in card.inner_text()
    assert "0 of 2" in card.locator(".votes").inner_text()
    _shoot(page, served, "inbox")
    page.context.close()


def test_two_operators_approve_to_quorum_and_the_action_runs_once(
    browser: Any, served: Served
) -> None:
    pending = served.submit("agent-7", DELETE | {"idempotency_key": "quorum-1"})
    intent_id = pending["intent_id"]
    alice = _sign_in(browser, served, "alice")
    bob = _sign_in(browser, served, "bob")
    for page in (alice, bob):
        page.goto("/console/inbox?tenant=acme")
        page.wait_for_function("document.getElementById('live-state').textContent.includes('on')")

    card = alice.locator(f"#intent-{intent_id}")
    card.locator("input[name=reason]").fill("CHG-1042 reviewed by alice")
    card.locator("button.approve").click()
    alice.wait_for_load_state("load")
    assert "1 of 2 approvals" in alice.inner_text("#message")

    # Bob's page learns of alice's vote by itself.
    bob.locator(f"#intent-{intent_id} .votes").filter(has_text="1 of 2").wait_for(timeout=15_000)
    assert "alice approved" in bob.locator(f"#intent-{intent_id} .votes").inner_text()
    bob_card = bob.locator(f"#intent-{intent_id}")
    bob_card.locator("input[name=reason]").fill("CHG-1042 second pair of eyes")
    bob_card.locator("button.approve").click()
    bob.wait_for_load_state("load")
    assert "executed" in bob.inner_text("#message")
    assert bob.locator(f"#intent-{intent_id}").count() == 0  # no longer pending

    story = served.story("alice", "acme", intent_id)
    types = [event["type"] for event in story["events"]]
    assert types.count("execution.started") == 1
    assert types.count("execution.finished") == 1
    assert story["outcome"]["status"] == "executed"
    voters = [e["actor"]["id"] for e in story["events"] if e["type"] == "approval.granted"]
    assert voters == ["alice", "bob"]  # recorded as the signed-in principals
    alice.context.close()
    bob.context.close()


def test_an_auditor_sees_the_inbox_but_cannot_approve(browser: Any, served: Served) -> None:
    pending = served.submit("agent-7", DELETE | {"idempotency_key": "audit-1"})
    intent_id = pending["intent_id"]
    page = _sign_in(browser, served, "audrey")
    page.goto("/console/inbox?tenant=acme")
    card = page.locator(f"#intent-{intent_id}")
    assert card.locator("button.approve").count() == 0
    assert "may read this intent but not vote" in card.inner_text()
    # A hand-made post with the auditor's own valid CSRF token is refused all the same.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"/console/tenants/acme/intents/{intent_id}/vote",
        form={
            "csrf": csrf,
            "vote": "approve",
            "reason": "auditor trying",
            "intent_hash": pending["intent_hash"],
        },
    )
    assert answer.status == 403
    assert "auditor may not approve or reject intents" in answer.text()
    story = served.story("alice", "acme", intent_id)
    assert story["approval"]["votes"] == []
    page.context.close()


def test_a_post_without_the_csrf_token_is_refused(browser: Any, served: Served) -> None:
    pending = served.submit("agent-7", DELETE | {"idempotency_key": "csrf-1"})
    intent_id = pending["intent_id"]
    page = _sign_in(browser, served, "alice")
    for form in (
        {"vote": "approve", "reason": "forged", "intent_hash": pending["intent_hash"]},
        {"vote": "approve", "reason": "forged", "csrf": "guessed"},
    ):
        answer = page.request.post(f"/console/tenants/acme/intents/{intent_id}/vote", form=form)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    answer = page.request.post(
        "/console/tenants/acme/killswitch",
        form={"action": "engage", "scope": "tenant:acme", "reason": "forged"},
    )
    assert answer.status == 403
    assert served.story("alice", "acme", intent_id)["approval"]["votes"] == []
    switches = served.api.get("/v1/killswitches?tenant=acme", headers=served.auth("alice"))
    assert switches.json()["killswitches"] == []
    page.context.close()


# -- controls ------------------------------------------------------------------------


def test_an_engaged_kill_switch_shows_the_next_submit_blocked(browser: Any, served: Served) -> None:
    assert served.submit("agent-i", READ | {"tenant": "initech"})["status"] == "executed"
    page = _sign_in(browser, served, "olga")
    started = time.perf_counter()
    page.goto("/console/controls?tenant=initech")
    _report("controls page load", time.perf_counter() - started)
    page.fill("#engage-form input[name=reason]", "INC-7: agent looping")
    page.click("#engage-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "killswitch.engaged" in page.inner_text("#message")
    assert "INC-7: agent looping" in page.inner_text("#killswitches")
    _shoot(page, served, "controls")

    blocked = served.submit("agent-i", READ | {"tenant": "initech", "target": "reports/q4.txt"})
    # The safety gate turns the policy's permit into a denial while the switch is engaged.
    assert blocked["status"] == "denied", blocked
    assert blocked["decision"]["gate"]["reason"] == "INC-7: agent looping"
    page.goto("/console/inbox?tenant=initech")
    row = page.locator("#recent tbody tr").first
    assert "reports/q4.txt" in row.inner_text()
    assert "denied" in row.locator(".outcome").inner_text()
    assert "held by the safety gate" in row.inner_text()
    assert "INC-7: agent looping" in row.inner_text()

    page.goto("/console/controls?tenant=initech")
    page.fill("form.release input[name=reason]", "INC-7 closed")
    page.click("form.release button[type=submit]")
    page.wait_for_load_state("load")
    assert "killswitch.released" in page.inner_text("#message")
    assert page.locator("#no-switches").count() == 1

    page.fill("#posture-form input[name=reason]", "while INC-7 is open")
    page.fill("#posture-form input[name=ttl_seconds]", "600")
    page.select_option("#posture-form select[name=posture]", "lockdown")
    page.click("#posture-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "lockdown" in page.inner_text("#posture")
    assert "until" in page.inner_text("#posture")
    _shoot(page, served, "controls-posture")
    page.context.close()


# -- the ledger ------------------------------------------------------------------------


def test_the_ledger_shows_every_event_proven_against_the_signed_checkpoint(
    browser: Any, served: Served
) -> None:
    served.submit("agent-7", READ | {"idempotency_key": "ledger-1"})
    page = _sign_in(browser, served, "audrey")
    started = time.perf_counter()
    page.goto("/console/ledger?tenant=acme")
    _report("ledger page load", time.perf_counter() - started)
    rows = page.locator("#events tbody tr")
    assert rows.count() > 0
    assert page.locator("td.proof.ok").count() == rows.count()
    assert page.locator("td.proof.bad").count() == 0
    note = page.inner_text("#checkpoint-note")
    assert "\n\u2014 " in note  # a signed note: body, blank line, signature lines
    assert page.inner_text("#verifier-key").startswith("exoarmur.local/")
    _shoot(page, served, "ledger")
    page.context.close()


# -- untrusted text ----------------------------------------------------------------------

XSS_TARGET = "db/<script>window.pwned=1</script>"
XSS_PARAMS = {
    "env": "prod",
    "note": '"><img src=x onerror="window.pwned=2">',
    "link": "javascript:window.pwned=3",
    "markup": "<b>bold</b> [red]rich[/red] **md**",
    "bidi": "invoice\u202egnp.exe",
    "hidden": "ad\u200bmin",
}


def test_hostile_text_is_inert_and_visible(browser: Any, served: Served) -> None:
    hostile = DELETE | {
        "target": XSS_TARGET,
        "params": XSS_PARAMS,
        "correlation_id": "javascript:window.pwned=4",
        "idempotency_key": "xss-1",
    }
    pending = served.submit("agent-7", hostile)
    page = _sign_in(browser, served, "alice")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto("/console/inbox?tenant=acme")
    card = page.locator(f"#intent-{pending['intent_id']}")
    card.locator("summary").click()  # open the params

    assert card.locator(".target").inner_text() == XSS_TARGET  # shown as typed, not run
    params = card.locator(".params").inner_text()
    assert '"><img src=x onerror=' in params
    assert "<b>bold</b> [red]rich[/red]" in params
    assert "invoice⟦U+202E⟧gnp.exe" in params  # the override is shown, not obeyed
    assert "ad⟦U+200B⟧min" in params
    assert card.locator("img, script:not([src]), b").count() == 0
    link = card.locator("a", has_text="javascript:window.pwned=4")
    assert link.get_attribute("href").startswith("/console/ledger?")
    link.click()  # our own link, to the ledger filtered by that correlation
    page.wait_for_url(re.compile(r"/console/ledger"))
    assert page.locator("#events tbody tr").count() >= 1
    page.go_back()
    page.wait_for_load_state("load")
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    _shoot(page, served, "inbox-hostile-text")
    page.context.close()


# -- replay and what-if, containment ------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
NO_PROD_DELETES = (
    '@id("no-prod-deletes") forbid (principal, action == Action::"demo.delete", resource);'
)


def test_replay_and_what_if_of_an_intent_under_a_pasted_policy(
    browser: Any, served: Served
) -> None:
    traced = served.auth("agent-7") | {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    intent = DELETE | {"idempotency_key": "whatif-1"}
    pending = served.api.post("/v1/intents", json=intent, headers=traced).json()
    events = len(served.story("alice", "acme", pending["intent_id"])["events"])
    page = _sign_in(browser, served, "alice")
    page.goto("/console/inbox?tenant=acme")
    started = time.perf_counter()
    page.click(f"#recent a.replay:has-text('{pending['intent_id']}')")
    page.wait_for_url(re.compile(r"/replay$"))
    _report("replay page load", time.perf_counter() - started)
    assert "reproduces the recorded decision" in page.inner_text("#replay-status")
    assert page.inner_text("#trace-id") == TRACE
    assert "Unchanged" in page.inner_text("#whatif-result")
    page.fill("#candidate", POLICY + CONTAINMENT_POLICY + NO_PROD_DELETES)
    page.click("#whatif-form button[type=submit]")
    page.wait_for_load_state("load")
    assert page.inner_text("#whatif-result") == "Would change: require_approval → deny"
    assert "no-prod-deletes" in page.inner_text("#decisions")
    _shoot(page, served, "replay-whatif")
    # Read-only: the intent's story did not grow, nothing was voted or recorded.
    assert len(served.story("alice", "acme", pending["intent_id"])["events"]) == events
    page.context.close()


def _contain(served: Served, plan: dict[str, Any]) -> str:
    """Submit a plan as alice and, when it waits for approval, approve it as bob; its id."""
    answer = served.api.post("/v1/tenants/acme/plans", json=plan, headers=served.auth("alice"))
    assert answer.status_code == 200, answer.text
    plan_id: str = answer.json()["plan_id"]
    if answer.json()["status"] == "pending_approval":
        vote = served.api.post(
            f"/v1/tenants/acme/intents/{plan_id}/approve",
            json={"reason": "contain"},
            headers=served.auth("bob"),
        )
        assert vote.status_code == 200, vote.text
    return plan_id


def test_containment_shows_controls_counting_down_and_plan_steps(
    browser: Any, served: Served
) -> None:
    plan_id = _contain(served, {"preset": "door-net", "targets": ["identity:eve", "endpoint:pc-1"]})
    page = _sign_in(browser, served, "audrey")
    started = time.perf_counter()
    page.goto("/console/containment?tenant=acme")
    _report("containment page load", time.perf_counter() - started)
    assert page.locator("#containment-controls tr.control").count() >= 3
    left = page.locator("#containment-controls .countdown").first
    assert re.fullmatch(r"(\d+ min )?\d+ s", left.inner_text())
    plan = page.locator(f"#plan-{plan_id}")
    assert plan.locator(".outcome").inner_text() == "executed"
    steps = plan.locator("tr.step")
    assert steps.count() == 3
    assert [steps.nth(n).locator("td").nth(4).inner_text() for n in range(3)] == ["succeeded"] * 3
    _shoot(page, served, "containment")
    page.context.close()


def test_hostile_text_is_inert_on_the_replay_and_containment_pages(
    browser: Any, served: Served
) -> None:
    hostile = DELETE | {"target": XSS_TARGET, "params": XSS_PARAMS, "idempotency_key": "xss-2"}
    pending = served.submit("agent-7", hostile)
    name = '<img src=x onerror="window.pwned=5">\u202eplan'
    step = {"effector": "revoke_sessions", "scope": "identity:mallet", "ttl_seconds": 600}
    plan_id = _contain(served, {"plan": {"name": name, "steps": [step]}})
    page = _sign_in(browser, served, "alice")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"/console/tenants/acme/intents/{pending['intent_id']}/replay")
    card = page.locator("#intent")
    card.locator("summary").click()
    assert card.locator(".target").inner_text() == XSS_TARGET
    assert "invoice⟦U+202E⟧gnp.exe" in card.locator(".params").inner_text()
    assert page.locator("main img, main script, main b").count() == 0
    page.goto("/console/containment?tenant=acme")
    title = page.locator(f"#plan-{plan_id} h3").inner_text()
    assert title.startswith('<img src=x onerror="window.pwned=5">⟦U+202E⟧plan')
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    page.context.close()


def test_the_pages_carry_a_strict_content_security_policy(served: Served) -> None:
    answer = served.api.get("/console/signin")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in answer.text  # no inline script anywhere
    assert re.search(r"<script src=\"/console/static/console.js\"", answer.text)
