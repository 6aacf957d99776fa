#!/usr/bin/env python3
"""Interop test: drive agentos with the official MCP Python SDK (`mcp`, pinned in
tests/python/requirements.txt), over stdio and over streamable HTTP.

For each transport it connects twice:
  * mode="legacy": the initialize handshake; the negotiated version must be 2025-11-25;
  * mode="auto":   the SDK probes `server/discover` (stateless 2026-07-28) and falls back
                   to the handshake if the server does not speak it (the version it got is printed).
and on each connection lists the tools, round-trips a value through agentos.mem_set /
agentos.mem_get, and calls agentos.time_now. The second connection first reads back the value
the first one stored (for stdio that is a new `agentos mcp` process on the same data dir,
so this checks persistence).

Run with the venv made by scripts/install-test-deps:
    .cache/venv/bin/python tests/python/sdk_client.py
Env: AGENTOS_BIN (default target/debug/agentos under the repo root),
     SDK_CLIENT_TIMEOUT (seconds per connection, default 60).
Exits 0 only if every check passed; the last line is "N passed, M failed".
"""

from __future__ import annotations

import json
import logging
import os
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
from typing import Any

import anyio
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("AGENTOS_BIN", ROOT / "target" / "debug" / "agentos"))
if not BIN.is_absolute():
    BIN = ROOT / BIN
CONN_TIMEOUT = float(os.environ.get("SDK_CLIENT_TIMEOUT", "60"))
HANDSHAKE_VERSION = "2025-11-25"
LISTEN_RE = re.compile(r"^agentos listening on http://127\.0\.0\.1:(\d+)\s*$")

passed = 0
failed = 0


def record(name: str, ok: bool, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}" + (f"  ({detail})" if detail else ""), flush=True)
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(exc, TimeoutError):
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text


def result_payloads(result: Any) -> list[Any]:
    """The JSON payloads of a CallToolResult: structuredContent and each text block parsed as JSON."""
    out: list[Any] = []
    if result.structured_content is not None:
        out.append(result.structured_content)
    for block in result.content:
        text = getattr(block, "text", None)
        if text is None:
            continue
        try:
            out.append(json.loads(text))
        except ValueError:
            out.append(text)
    return out


def contains_value(payload: Any, want: Any) -> bool:
    """True if `want` is the payload itself, its "value" member, or nested anywhere in it."""
    if payload == want:
        return True
    if isinstance(payload, dict):
        if payload.get("value") == want:
            return True
        return any(contains_value(v, want) for v in payload.values())
    if isinstance(payload, list):
        return any(contains_value(v, want) for v in payload)
    return False


def brief(result: Any) -> str:
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(dumped, sort_keys=True)
    return text if len(text) <= 400 else text[:400] + "..."


async def exercise(label: str, make_transport: Any, mode: str, value: Any, prior: Any = None) -> None:
    """Connect with the given mode and run the tool checks. Records one line per check.

    `prior`, if given, is the value an earlier connection stored under "py" (in another
    server process for stdio): mem_get must return it before this connection overwrites it.
    """
    try:
        with anyio.fail_after(CONN_TIMEOUT):
            async with Client(make_transport(), mode=mode, read_timeout_seconds=CONN_TIMEOUT) as client:
                version = client.protocol_version
                if mode == "legacy":
                    record(
                        f"{label}: initialize",
                        version == HANDSHAKE_VERSION,
                        f"negotiated {version}, want {HANDSHAKE_VERSION}",
                    )
                else:
                    record(f"{label}: connect", True, f"negotiated {version}")

                names: set[str] = set()
                cursor: str | None = None
                for _ in range(100):  # follow pagination, bounded
                    page = await client.list_tools(cursor=cursor)
                    names.update(t.name for t in page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                missing = {"agentos.time_now", "agentos.mem_set", "agentos.mem_get"} - names
                record(
                    f"{label}: tools/list",
                    not missing,
                    f"{len(names)} tools" if not missing else f"missing {sorted(missing)}; got {sorted(names)}",
                )

                if prior is not None:
                    res = await client.call_tool("agentos.mem_get", {"key": "py"})
                    ok = not res.is_error and any(contains_value(p, prior) for p in result_payloads(res))
                    record(
                        f"{label}: agentos.mem_get sees {json.dumps(prior)} stored by the previous connection",
                        ok,
                        "" if ok else f"got {brief(res)}",
                    )

                res = await client.call_tool("agentos.mem_set", {"key": "py", "value": value})
                record(f"{label}: agentos.mem_set", not res.is_error, "" if not res.is_error else brief(res))

                res = await client.call_tool("agentos.mem_get", {"key": "py"})
                payloads = result_payloads(res)
                ok = not res.is_error and any(contains_value(p, value) for p in payloads)
                record(
                    f"{label}: agentos.mem_get round-trips {json.dumps(value)}",
                    ok,
                    "" if ok else f"got {brief(res)}",
                )

                res = await client.call_tool("agentos.time_now", {})
                ok = not res.is_error and bool(res.content or res.structured_content is not None)
                record(f"{label}: agentos.time_now", ok, brief(res) if not ok else json.dumps(result_payloads(res))[:120])
    except BaseException as exc:  # noqa: BLE001 - SDK errors arrive as exception groups
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        record(f"{label}: session", False, describe(exc))
        if os.environ.get("SDK_CLIENT_DEBUG"):
            traceback.print_exception(exc)


class HttpServer:
    """`agentos serve --listen 127.0.0.1:0`, port parsed from its stderr."""

    def __init__(self, data_dir: Path) -> None:
        self.lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = LISTEN_RE.match(line.rstrip("\n"))
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # EOF: the process is gone

    def wait_ready(self, timeout: float = 30.0) -> bool:
        self._ready.wait(timeout)
        return self.port is not None

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def main() -> int:
    if not BIN.exists():
        record("agentos binary exists", False, f"{BIN} (run cargo build, or set AGENTOS_BIN)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="agentos-sdk-client."))
    server: HttpServer | None = None
    try:
        # ---- stdio: `agentos mcp --data-dir TMP`, spawned by the SDK
        stdio_data = tmp / "stdio-data"
        stdio_data.mkdir()
        stdio_err_path = tmp / "stdio-stderr.log"
        with open(stdio_err_path, "w") as stdio_err:
            params = StdioServerParameters(command=str(BIN), args=["mcp", "--data-dir", str(stdio_data)])

            def stdio_transport() -> Any:
                return stdio_client(params, errlog=stdio_err)

            before = failed
            await exercise("stdio/legacy", stdio_transport, "legacy", {"n": 1})
            await exercise("stdio/auto", stdio_transport, "auto", {"n": 2}, prior={"n": 1})
        if failed > before:
            print("--- agentos mcp stderr (last lines) ---\n" + "\n".join(stdio_err_path.read_text().splitlines()[-30:]))

        # ---- streamable HTTP: `agentos serve --listen 127.0.0.1:0 --data-dir TMP2`
        http_data = tmp / "http-data"
        http_data.mkdir()
        server = HttpServer(http_data)
        if not record("http: agentos serve prints its listening line", server.wait_ready(), "" if server.port else server.log_tail()):
            return 1
        base = f"http://127.0.0.1:{server.port}"

        try:
            with urllib.request.urlopen(f"{base}/health", timeout=10) as resp:
                record("http: GET /health", resp.status == 200, f"status {resp.status}")
        except Exception as exc:  # noqa: BLE001
            record("http: GET /health", False, describe(exc))

        # Secure by default: /mcp needs the owner's bearer token, written at first start.
        token = (http_data / "owner-token").read_text().strip()
        try:
            req = urllib.request.Request(f"{base}/mcp", data=b"{}", method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10)
            record("http: POST /mcp without a token is refused", False, "it was accepted")
        except urllib.error.HTTPError as exc:
            record("http: POST /mcp without a token is refused", exc.code == 401, f"status {exc.code}")

        def http_transport() -> Any:
            client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            return streamable_http_client(f"{base}/mcp", http_client=client)

        before = failed
        await exercise("http/legacy", http_transport, "legacy", {"n": 1})
        await exercise("http/auto", http_transport, "auto", {"n": 2}, prior={"n": 1})
        record("http: server still running", server.proc.poll() is None, f"exit code {server.proc.poll()}")
        if failed > before:
            print("--- agentos serve stderr (last lines) ---\n" + server.log_tail())
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    # SDK warnings (e.g. an unexpected status for the session-terminating DELETE) are shown, labelled.
    logging.basicConfig(level=logging.WARNING, format="sdk-log %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    started = time.monotonic()
    try:
        rc = anyio.run(main)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        record("sdk_client harness", False, describe(exc))
        traceback.print_exc()
        rc = 1
    if rc != 0 and failed == 0:
        failed += 1
    print(f"sdk_client: done in {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if rc == 0 and failed == 0 else 1)
