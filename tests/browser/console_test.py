"""The web console in real headless Chromium (Debian's `chromium`, driven by Playwright).

Starts the real agentos binary ($AGENTOS_BIN, built with the skills feature) on a fresh data
directory with the text-stats skill published and `agentos.hash` held for approval, signs up an
operator and a second agent over HTTP, then drives /console as a person would: sign in, a read
command, a mutating command through its preview and Confirm, approving the second agent's held
call, installing a skill from the marketplace and calling it from its tool page, opening a trace.
Every page is also checked at phone size (no sideways scrolling) and with the keyboard.

Throughout: no request leaves agentos, no console error or CSP violation occurs, and every page's
screenshot is kept in $CONSOLE_ARTIFACTS (default .cache/test-logs/console).

Prints `console: N passed, M failed` and exits non-zero on any failure.
"""

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
AGENTOS = os.environ.get("AGENTOS_BIN", str(ROOT / "target/debug/agentos"))
SKILLS = Path(os.environ.get("AGENTOS_TEST_SKILLS", str(ROOT / ".cache/skills/build")))
ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS", str(ROOT / ".cache/test-logs/console")))
EMAIL, PASSWORD = "console-op@example.com", "a long enough password"
DEADLINE_S = 30  # for conditions awaited outside the browser (server start, approval, held call)
TIMEOUT_MS = 15_000  # for conditions awaited in the browser

results = []
# The browser page while one is open, so a failed check leaves a screenshot of what it saw.
current = {"page": None}


def check(name):
    """Runs one named check; a failure is recorded with its traceback and the run goes on."""

    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            results.append((name, error))
            print(f"FAIL {name}: {error}", flush=True)
            traceback.print_exc()
            if current["page"] is not None:
                slug = "".join(c if c.isalnum() else "-" for c in name)[:60]
                current["page"].screenshot(path=str(ARTIFACTS / f"FAILED-{slug}.png"), full_page=True)
        return fn

    return wrap


def http(base, method, path, body=None, token=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, parsed(response.read(), response.headers), response.headers
    except urllib.error.HTTPError as error:
        return error.code, parsed(error.read(), error.headers), error.headers


def parsed(body, headers):
    return json.loads(body or b"null") if "json" in headers.get("content-type", "") else body.decode()


def tool(base, token, name, arguments):
    return http(base, "POST", "/mcp", {"tool": name, "input": arguments}, token)


class ServerOutput:
    """agentos's log lines as they come, kept in serve.log, for a test to wait on one."""

    def __init__(self, server, log_path):
        self.lines = queue.Queue()
        self.log_path = log_path

        def read():
            with open(log_path, "w") as log:
                for line in server.stdout:
                    log.write(line)
                    log.flush()
                    self.lines.put(line)
            self.lines.put(None)  # the server exited

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, pattern, what):
        """The first match of `pattern` in a line still to come, within DEADLINE_S."""
        end = time.monotonic() + DEADLINE_S
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {what}") from None
            if line is None:
                raise AssertionError(f"agentos exited before {what}: {self.log_path.read_text()[-2000:]}")
            found = re.search(pattern, line)
            if found:
                return found


def start_server(data):
    config = data / "agentos.toml"
    # A held call waits for the decision, so the agent that made it gets the approved result.
    config.write_text('[approvals]\nrequire = ["agentos.hash"]\nwait_secs = 60\n')
    published = subprocess.run(
        [AGENTOS, "skills", "publish", "--data-dir", str(data), "--config", str(config), str(SKILLS / "text-stats")],
        capture_output=True,
        text=True,
    )
    assert published.returncode == 0, f"skills publish failed: {published.stderr}"
    server = subprocess.Popen(
        [AGENTOS, "serve", "--data-dir", str(data), "--config", str(config), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = ServerOutput(server, data / "serve.log")
    listening = output.wait_for(r"agentos listening on (http://127\.0\.0\.1:\d+)", "agentos to listen")
    return server, listening.group(1), output


def main():
    for program in (AGENTOS, shutil.which("chromium")):
        if not program or not os.path.exists(program):
            print(f"console: missing {program or 'chromium'} (scripts/install-test-deps installs chromium)")
            return 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="agentos-console-"))
    server, base, output = start_server(data)
    try:
        run(base, output)
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data, ignore_errors=True)
    failed = [name for name, error in results if error]
    print(f"console: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def run(base, output):
    status, signed_up, _ = http(base, "POST", "/api/signup", {"email": EMAIL, "password": PASSWORD})
    assert status in (200, 201), (status, signed_up)
    operator = signed_up["credentials"]["bearerToken"]
    status, created, _ = tool(base, operator, "agentos.agent_create", {"agentId": "reporter", "name": "Reporter"})
    assert status in (200, 201), (status, created)
    reporter = created["result"]["token"]
    # The reporter's call waits for a person's decision (wait_secs), on a thread of its own.
    held = {}

    def held_call():
        held["answer"] = http(base, "POST", "/mcp", {"tool": "agentos.hash", "input": {"text": "approve me"}}, reporter, 90)

    reporter_call = threading.Thread(target=held_call, daemon=True)
    reporter_call.start()
    approval_id = output.wait_for(r"approval requested.*(apr_[0-9a-f]{32})", "the held call's approval").group(1)

    outside, problems = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        current["page"] = page

        def watch(watched):
            """Records what a page asks of other sites and what its console reports."""
            watched.on("request", lambda r: None if r.url.startswith((base, "data:")) else outside.append(r.url))
            watched.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            watched.on("pageerror", lambda e: problems.append(f"page error: {e}"))

        watch(page)

        def shot(name):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

        def last_answer():
            return page.locator("#answers .answer").first

        @check("the page is served under a strict content security policy")
        def _():
            response = page.goto(base + "/console")
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
            assert "default-src 'none'" in policy and "connect-src 'self'" in policy, policy
            for asset in ("app.js", "app.css"):
                assert "default-src 'none'" in http(base, "GET", f"/console/{asset}")[2].get("content-security-policy", "")
            assert http(base, "GET", "/console/other.js")[0] == 404, "only the two assets are served"

        @check("a wrong password is refused on the page, the right one signs in")
        def _():
            expect(page.locator("#signin")).to_be_visible()
            shot("signin")
            page.fill("#email", EMAIL)
            page.fill("#password", "not the password")
            page.click("#signin button[type=submit]")
            expect(page.locator("#signin-status")).not_to_be_empty()
            page.fill("#password", PASSWORD)
            page.press("#password", "Enter")
            expect(page.locator("#command")).to_be_focused()
            expect(page.locator("#who")).to_contain_text("operator")

        @check("a read command answers at once")
        def _():
            page.fill("#command", "time")
            page.press("#command", "Enter")
            expect(last_answer()).to_have_attribute("data-kind", "result")
            expect(last_answer()).to_contain_text("agentos.time_now")
            expect(last_answer().locator(".snippet")).to_contain_text("tools/call", use_inner_text=False)
            shot("studio-read")

        @check("a mutating command previews, changes nothing until Confirm, then runs")
        def _():
            page.fill("#command", "mem set console/greeting hello-from-the-console")
            page.press("#command", "Enter")
            expect(last_answer()).to_have_attribute("data-kind", "preview")
            _, before, _ = tool(base, operator, "agentos.mem_get", {"key": "console/greeting"})
            assert before["result"].get("found") is False, before
            shot("studio-preview")
            last_answer().locator("button.confirm").click()
            expect(last_answer()).to_have_attribute("data-kind", "result")
            expect(last_answer().locator("button.confirm")).to_have_count(0)
            _, after, _ = tool(base, operator, "agentos.mem_get", {"key": "console/greeting"})
            assert after["result"]["value"] == "hello-from-the-console", after
            shot("studio-confirmed")
            # Keyboard only: history with the up arrow, Enter to run.
            page.focus("#command")
            page.fill("#command", "")
            page.keyboard.press("ArrowUp")
            expect(page.locator("#command")).to_have_value("mem set console/greeting hello-from-the-console")
            page.fill("#command", "mem get console/greeting")
            page.keyboard.press("Enter")
            expect(last_answer()).to_contain_text("hello-from-the-console")

        @check("a held call is approved from the queue and runs as its agent")
        def _():
            page.click("nav a[data-page=approvals]")
            item = page.locator(f"li[data-id='{approval_id}']")
            expect(item).to_contain_text("agentos.hash")
            expect(item).to_contain_text("approve me")
            shot("approvals")
            item.get_by_role("button", name="Approve").click()
            expect(item.locator(".answer")).to_have_attribute("data-kind", "preview")
            item.locator("button.confirm").click()
            expect(item.locator(".answer")).to_have_attribute("data-kind", "result")
            # The agent's waiting call now gets the result of its approved call.
            reporter_call.join(timeout=DEADLINE_S)
            assert not reporter_call.is_alive(), "the held call did not end after approval"
            status, answer, _ = held["answer"]
            assert status == 200 and answer["result"]["algorithm"] == "sha256", (status, answer)
            _, outcome, _ = tool(base, reporter, "agentos.approval_result", {"id": approval_id})
            assert outcome["result"]["status"] == "completed", outcome
            shot("approvals-decided")

        @check("a skill is installed from the marketplace and called from its tool page")
        def _():
            page.click("nav a[data-page=skills]")
            page.fill("#skill-search", "text statistics")
            page.press("#skill-search", "Enter")
            card = page.locator("#market li[data-slug=text-stats]")
            expect(card).to_contain_text("Text statistics")
            shot("skills")
            card.get_by_role("button", name="Install").click()
            expect(card.locator(".answer")).to_have_attribute("data-kind", "preview")
            card.locator("button.confirm").click()
            expect(card.locator(".answer")).to_have_attribute("data-kind", "result")
            link = page.locator("#installed a", has_text="skill.text-stats.analyze")
            expect(link).to_be_visible()
            link.click()
            expect(page.locator("h1")).to_have_text("skill.text-stats.analyze")
            page.fill("#field-text", "One small step. Another small step!")
            shot("tool-form")
            page.click("#call")
            answer = page.locator("#call-answers .answer").first
            expect(answer).to_have_attribute("data-kind", "result")
            expect(answer.locator(".result")).to_contain_text('"words": 6')

        @check("a tool that changes state previews from its tool page, quotes and all")
        def _():
            page.goto(base + "/console#/tools/agentos.mem_set")
            expect(page.locator("#call")).to_have_text("Preview call")
            tricky = 'It\'s "quoted"\nover two lines'
            page.fill("#field-key", "console/form")
            page.fill("#field-value", json.dumps(tricky))
            page.click("#call")
            answer = page.locator("#call-answers .answer").first
            expect(answer).to_have_attribute("data-kind", "preview")
            answer.locator("button.confirm").click()
            expect(answer).to_have_attribute("data-kind", "result")
            _, stored, _ = tool(base, operator, "agentos.mem_get", {"key": "console/form"})
            assert stored["result"]["value"] == tricky, stored

        @check("the tool catalog pages through the tools by name")
        def _():
            page.click("nav a[data-page=tools]")
            expect(page.locator("#tool-count")).to_contain_text("1–20 of")
            first = page.locator("#tool-list li a").first.inner_text()
            page.click("#tool-list button.next")
            expect(page.locator("#tool-count")).to_contain_text("21–40 of")
            assert page.locator("#tool-list li a").first.inner_text() > first
            page.fill("#tool-filter", "mem_se")
            page.press("#tool-filter", "Enter")
            expect(page.locator("#tool-list li a")).to_have_count(2)
            shot("tools")

        @check("ops shows health, latency percentiles and the audit, and a trace opens as a span tree")
        def _():
            page.click("nav a[data-page=ops]")
            expect(page.locator("#health")).to_contain_text("store")
            expect(page.locator("#metrics")).to_contain_text("Latency p99")
            expect(page.locator("#audit table")).to_contain_text("agentos.hash")
            shot("ops")
            page.locator("#traces table a").first.click()
            expect(page.locator(".span").first).to_be_visible()
            expect(page.locator("h1")).to_contain_text("Trace")
            shot("trace")

        @check("every page fits a phone's width and starts keyboard focus in its content")
        def _():
            page.set_viewport_size({"width": 375, "height": 740})
            for name in ("studio", "tools", "skills", "approvals", "ops"):
                page.goto(f"{base}/console#/{name}")
                page.wait_for_selector("body[data-ready=true]")
                expect(page.locator(f"nav a[data-page={name}]")).to_have_attribute("aria-current", "page")
                page.wait_for_load_state("networkidle")
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name}: {overflow}px wider than the screen"
                shot(f"phone-{name}")
            page.goto(f"{base}/console#/studio")
            page.wait_for_selector("body[data-ready=true]")
            expect(page.locator("#command")).to_be_focused()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Shift+Tab")
            focused = page.evaluate("document.activeElement.textContent")
            assert focused.strip() in ("Sign out", "Ops"), focused
            page.set_viewport_size({"width": 1200, "height": 900})

        @check("signing out returns to the sign-in form and the session no longer works")
        def _():
            page.click("#signout")
            expect(page.locator("#signin")).to_be_visible()
            page.goto(base + "/console#/ops")
            expect(page.locator("#signin")).to_be_visible()

        @check("a first visitor creates an account on the sign-in page and lands in the studio")
        def _():
            fresh = browser.new_context()
            visitor = fresh.new_page()
            visitor.set_default_timeout(TIMEOUT_MS)
            watch(visitor)
            visitor.goto(base + "/console")
            visitor.click("#switch-form")
            expect(visitor.locator("#signin-title")).to_have_text("Create an account")
            visitor.fill("#email", "newcomer@example.com")
            visitor.fill("#password", "another long password")
            visitor.press("#password", "Enter")
            expect(visitor.locator("#command")).to_be_focused()
            expect(visitor.locator("#who")).to_contain_text("newcomer")
            visitor.fill("#command", "skills installed")
            visitor.press("#command", "Enter")
            expect(visitor.locator("#answers .answer").first).to_have_attribute("data-kind", "result")
            fresh.close()

        current["page"] = None
        browser.close()

    @check("no request left agentos")
    def _():
        assert not outside, outside

    @check("no console error, warning or CSP violation on any page")
    def _():
        # The wrong password's 401 is the one error a browser logs by itself.
        unexpected = [p for p in problems if "401" not in p]
        assert not unexpected, unexpected


if __name__ == "__main__":
    sys.exit(main())
