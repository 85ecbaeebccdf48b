"""Small helpers for the servers the local stack starts itself: ports, who holds one, and waiting
for a freshly spawned server to listen."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from deploy.supervisor import spawn_child, stop_processes


class InfraStartError(RuntimeError):
    """A server that the local stack starts itself cannot start or did not come up."""


def tcp_error(server: str, timeout: float) -> str | None:
    """None when `server` (host:port) accepts a TCP connection within `timeout`, else why not."""
    host, _, port = server.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        return f"{server!r} is not host:port"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"no TCP connection to {server} within {timeout:.0f} s: {exc}"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # Like a server's own bind, so a port in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_free_port(port: int, server: str) -> None:
    """Raise InfraStartError naming who holds `port` when `server` cannot have it."""
    if not port_free(port):
        raise InfraStartError(
            f"cannot start {server} on 127.0.0.1:{port}: the port is in use by {port_holder(port)}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_holder(port: int) -> str:
    """Who listens on a TCP port, as far as /proc tells: 'pid 123 (python -m ...)', or a hint."""
    inodes = _listening_inodes(port)
    if inodes:
        targets = {f"socket:[{inode}]" for inode in inodes}
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                fds = list((pid_dir / "fd").iterdir())
                if any(os.readlink(fd) in targets for fd in fds):
                    argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
                    command = b" ".join(part for part in argv if part).decode(errors="replace")
                    return f"pid {pid_dir.name} ({command[:120]})"
            except OSError:
                continue  # gone, or not ours to read
    return "another process (not one this user can see)"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode
            if len(fields) <= 9 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def spawn_server(
    argv: list[str],
    *,
    name: str,
    address: str,
    env: Mapping[str, str],
    log_path: Path,
    ready_timeout: float,
    stop_timeout: float,
    cwd: Path | None = None,
    error_log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in a process group of its own, its output appended to `log_path`, told to
    die with the thread that spawns it (spawn from a long-lived one); return once it listens on
    `address`, or stop it and raise InfraStartError quoting `error_log` (default: `log_path`)."""
    with log_path.open("ab") as out:
        proc = spawn_child(argv, env, cwd, out)
    try:
        wait_until_listening(
            proc, address, name=name, timeout=ready_timeout, log_path=error_log or log_path
        )
    except BaseException:
        stop_processes([proc], stop_timeout)
        raise
    return proc


def wait_until_listening(
    proc: subprocess.Popen[bytes], address: str, *, name: str, timeout: float, log_path: Path
) -> None:
    """Block until `proc` accepts connections on `address`; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while tcp_error(address, 0.2) is not None:
        code = proc.poll()
        if code is not None:
            raise InfraStartError(
                f"{name} exited with code {code} before listening on {address}; "
                f"{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise InfraStartError(
                f"{name} did not listen on {address} within {timeout:.0f} s; {log_tail(log_path)}"
            )
        time.sleep(0.05)


def log_tail(path: Path, lines: int = 5) -> str:
    """'see PATH' and, where it has any, the log's last lines with an error or a warning first."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"see {path}"
    errors = [line for line in text if " ERROR " in line or "Exception" in line]
    shown = (errors or text)[-lines:]
    if not shown:
        return f"see {path}"
    return f"see {path}; it ends:\n  " + "\n  ".join(line[:300] for line in shown)
