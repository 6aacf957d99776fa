# The Python WASI escape probe: each capability tries one way out of the sandbox through the WASI
# imports CPython uses and reports what it got as text, so the tests can assert it got nothing.
#
# Modules are imported at the top: componentize-py runs this at build time and snapshots the
# interpreter; at run time there are no files to import from (the sandbox has none). That includes
# the `idna` codec, which socket uses to encode every host name: without it connect and resolve
# fail with "unknown encoding: idna" before reaching WASI, which would prove nothing. `socket` is
# guarded because a CPython built for WASI may lack parts of it; its absence is reported.
import encodings.idna  # noqa: F401  (see above)
import ipaddress
import os

import wit_world

try:
    import socket
except ImportError as missing:  # reported by tcp-connect and resolve
    socket = None
    socket_missing = missing


def error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}"


class WitWorld(wit_world.WitWorld):
    def read_file(self, path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except BaseException as exc:
            return error(exc)

    def list_dir(self, path: str) -> str:
        try:
            return "\n".join(sorted(os.listdir(path)))
        except BaseException as exc:
            return error(exc)

    def env(self) -> str:
        # os.environ is read when the interpreter starts, which componentize-py does at build
        # time: a variable seen here either leaked from the build or came from the host.
        lines = [f"{k}={v}" for k, v in sorted(os.environ.items())]
        return "\n".join(lines) if lines else "empty"

    def write_file(self, path: str) -> str:
        try:
            with open(path, "wb") as f:
                written = f.write(b"escaped from the sandbox\n")
            return f"ok: wrote {written} bytes"
        except BaseException as exc:
            return error(exc)

    def tcp_connect(self, host: str, port: int) -> str:
        if socket is None:
            return error(socket_missing)
        try:
            # An IP address goes straight to a TCP socket (wasi:sockets/tcp), so the test sees the
            # socket itself refused; a name goes through create_connection's lookup first.
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            except ValueError:
                with socket.create_connection((host, port), timeout=1):
                    return "connected"
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect((host, port))
                return "connected"
        except BaseException as exc:
            return error(exc)

    def resolve(self, host: str) -> str:
        if socket is None:
            return error(socket_missing)
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, None)}
            return "\n".join(sorted(found))
        except BaseException as exc:
            return error(exc)
