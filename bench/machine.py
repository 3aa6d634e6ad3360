"""The machine the benchmarks run on: open-file limits, the load generators (wrk, vuload), free ports, and what
processes use (CPU, memory, sockets), read from /proc. Shared by ``vu.py``, ``http_server.py`` and ``topology.py``."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
from pathlib import Path

FILE_LIMIT = 65_536
"""Open files wanted for wrk and the server (10,000 sockets each, plus files); at least 20,000 is required."""


def raise_file_limit(wanted: int = FILE_LIMIT, needed: int = 20_000) -> int:
    """Raise this process's open-file limit (inherited by wrk and the server); return it.

    Raises:
        SystemExit: the limit stays below ``needed``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (max(wanted, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            break
        except (ValueError, OSError):
            continue
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raise SystemExit(f"the open-file limit is {soft}, below {needed}: raise it (ulimit -Hn) and retry")
    return soft


def ensure_wrk() -> str:
    """Return wrk's path; install Debian's package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing it with `apt-get install -y wrk`", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed; install it (Debian package `wrk`) and retry")
    return found


def ensure_vuload(root: Path) -> str:
    """Return the path of ``vuload`` (``bench/vu/vuload.c``), compiling it first when it is missing or older than
    its source.

    Raises:
        SystemExit: there is no C compiler, or the source does not compile.
    """
    source = root / "bench" / "vu" / "vuload.c"
    binary = root / "var" / "bench" / "vuload"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return str(binary)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("vuload needs a C compiler (Debian package `gcc`); or run with --driver wrk")
    binary.parent.mkdir(parents=True, exist_ok=True)
    command = [compiler, "-O2", "-pthread", "-o", str(binary), str(source), "-lm"]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise SystemExit(f"cannot compile {source}:\n{built.stderr}")
    return str(binary)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _proc_kb(path: str, field: str) -> int:
    """A ``field: <n> kB`` line of a /proc file, in kB; 0 when the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    """A process's resident set size (VmRSS) in kB; 0 when it is gone."""
    return _proc_kb(f"/proc/{pid}/status", "VmRSS:")


def tree_rss_kb(root: int) -> int:
    """The resident set sizes of ``root`` and its live descendants, summed, in kB."""
    return sum(rss_kb(pid) for pid in process_tree(root))


def pss_kb(pid: int) -> int:
    """A process's proportional set size in kB (shared pages split between the processes sharing them)."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def open_sockets(pid: int) -> int:
    """How many sockets a process holds open."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by ``root`` and its descendants that are alive."""
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
