"""The web console's first page load in headless Chromium: bytes transferred and time until the
page is interactive (the console's `agentos-console-ready` performance mark: first page drawn
with its data, input focused), each load in a fresh browser context so nothing is cached.

Pages: the sign-in form (no session), the studio and the ops page (signed in; ops makes five tool
calls). Baseline, measured in the same run: loading `GET /health` (a tiny JSON answer from the same
server), the browser's floor for a navigation to agentos. Targets (issue 13): under 200 KB and
under 300 ms.

Run by scripts/bench-console: python benches/console.py <agentos binary> [samples]
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

EMAIL, PASSWORD = "bench@example.com", "a long enough password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(base, server):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit("agentos exited before answering")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("agentos did not answer /health within 30 s")


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load(browser, state, url, ready):
    """One cold load: (milliseconds until ready, bytes transferred)."""
    context = browser.new_context(storage_state=state) if state else browser.new_context()
    page = context.new_page()
    page.goto(url)
    if ready:
        # A selector, not wait_for_function: the console's policy forbids the eval that needs.
        page.wait_for_selector("body[data-ready=true]", state="attached")
        ms = page.evaluate("performance.getEntriesByName('agentos-console-ready')[0].startTime")
    else:
        page.wait_for_load_state("load")
        ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    page.wait_for_load_state("networkidle")
    transferred = page.evaluate(
        "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
        ".reduce((sum, e) => sum + e.transferSize, 0)"
    )
    context.close()
    return ms, transferred


def main():
    agentos = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    data = Path(tempfile.mkdtemp(prefix="agentos-console-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (data / "agentos.toml").write_text("[rate_limits]\nenabled = false\n")
    server = subprocess.Popen(
        [agentos, "serve", "--data-dir", str(data), "--config", str(data / "agentos.toml"), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(base, server)
        request = urllib.request.Request(
            base + "/api/signup",
            data=json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).close()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "/console")
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.press("#password", "Enter")
            page.wait_for_selector("#command")
            state = context.storage_state()
            context.close()
            cases = [
                ("baseline: GET /health", None, base + "/health", False),
                ("console sign-in form", None, base + "/console", True),
                ("console studio (signed in)", state, base + "/console#/studio", True),
                ("console ops (signed in, 5 tool calls)", state, base + "/console#/ops", True),
            ]
            for _, s, url, ready in cases:  # warm the server and the browser once
                load(browser, s, url, ready)
            figures = {name: ([], []) for name, *_ in cases}
            for _ in range(samples):  # interleaved, so drift hits every case alike
                for name, s, url, ready in cases:
                    ms, size = load(browser, s, url, ready)
                    figures[name][0].append(ms)
                    figures[name][1].append(size)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data, ignore_errors=True)
    floor = statistics.median(figures["baseline: GET /health"][0])
    print(f"console first load, {samples} cold loads each, headless Chromium {chromium_version()}")
    print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'× floor':>8} {'KB':>8}")
    for name, (times, sizes) in figures.items():
        p50 = statistics.median(times)
        print(f"{name:42} {p50:8.1f} {pct(times, 95):8.1f} {p50 / floor:8.2f} {max(sizes) / 1024:8.1f}")
    print("targets: under 300 ms to interactive, under 200 KB transferred")


def chromium_version():
    out = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


if __name__ == "__main__":
    main()
