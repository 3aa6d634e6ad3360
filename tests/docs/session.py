"""Running a page's shell blocks as one bash session, in a folder of its own.

The folder holds links to the repository's ``.venv``, ``examples``, ``Makefile`` and ``pyproject.toml``, so a block
runs as it would from the repository's root (``.venv/bin/citadel``, ``examples.shop:app``, ``make run``), and
``citadel`` is on the ``PATH`` as in an activated virtual environment; what a command writes (``var/``,
``citadel.toml``) stays in the folder. No ``CITADEL_*`` variable is inherited.

Commands run in order with ``set -e``: one that fails stops the page, and the failure names its line. Besides:

* a server (``make run``, ``citadel serve``, ``citadel consume``) starts in the background; the session waits for
  ``/ready`` (``consume`` has none: it must still be running after a second), and stops it when the page ends;
* ``citadel events tail ... --follow`` runs for a second in the background;
* the documented ports are replaced by free ones, the same within a page (``127.0.0.1:8000``, ``--port 8001``; a
  server without ``--port`` gets ``CITADEL_PORT``);
* a command whose comment starts with JSON (``curl ... # {"granted": true}``), or whose comment lines right
  below it hold JSON, must print equal JSON; a read (no body sent) is tried again for up to five seconds
  first, for what async projections have yet to catch up with;
* ``make test`` is not run (it runs this very suite): ``NEVER_RUN`` lists it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docs.blocks import ROOT, Block, shown

__all__ = ["NEVER_RUN", "Command", "commands_of", "run_shell"]

NEVER_RUN = {"make test": "runs the whole test suite, this test included"}
"""Commands a session passes over, and why."""

LINKS = (".venv", "examples", "Makefile", "pyproject.toml")
READ_TRIES = 50
"""How many times (0.1 s apart) a read whose answer is not the documented one is tried."""
TIMEOUT = 60.0

_SERVER = re.compile(r"(^|\s)(make run|(\S*/)?citadel (serve|consume))(\s|$)")
_FOLLOW = re.compile(r"(^|\s)(\S*/)?citadel events tail\b.*\s--follow\b")
_HOST_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):(\d{4,5})\b")
_PORT_OPTION = re.compile(r"--port[ =](\d{2,5})\b")
_EXPECT = re.compile(r"\s#\s+(?P<json>[{\[].*)$")
_ASSIGNMENTS = re.compile(r"^((\w+=\S*)\s+)*")

_PRELUDE = r"""
set -e -o pipefail
_AT=''
trap 'echo "$_AT" > "$_LOGS/failed-at"' ERR
_at() { _AT="$1"; echo "+++ $1" >&2; }
_serve() {  # port, command: start a server in a session of its own, wait until it is ready
  setsid bash -c "$2" > "$_LOGS/server-$1.log" 2>&1 < /dev/null &
  echo $! >> "$_LOGS/pids"
  for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$1/ready" > /dev/null; then return 0; fi
    if ! kill -0 $! 2> /dev/null; then break; fi
    sleep 0.1
  done
  echo "the server did not become ready on port $1; its output:" >&2; tail -n 40 "$_LOGS/server-$1.log" >&2; return 1
}
_background() {  # command: start it, and check it still runs after a second
  setsid bash -c "$1" > "$_LOGS/background.log" 2>&1 < /dev/null &
  echo $! >> "$_LOGS/pids"
  sleep 1
  if ! kill -0 $! 2> /dev/null; then echo "it stopped:" >&2; tail -n 40 "$_LOGS/background.log" >&2; return 1; fi
}
_expect() {  # expected JSON, tries, command
  local out=''
  for _ in $(seq "$2"); do
    out=$(eval "$3")
    if jq -e --argjson want "$1" '. == $want' <<< "$out" > /dev/null 2>&1; then printf '%s\n' "$out"; return 0; fi
    sleep 0.1
  done
  echo "expected $1" >&2; echo "but got  $out" >&2; return 1
}
"""


@dataclass(frozen=True)
class Command:
    """One shell command of a block (continuation lines joined), the line it starts on, and the comment lines
    right below it (the output it documents, when they hold JSON)."""

    block: Block
    line: int
    text: str
    below: str = ""

    @property
    def where(self) -> str:
        return f"{shown(self.block.page)}:{self.line}"


def commands_of(block: Block) -> list[Command]:
    """The commands of a shell block: lines ending in a backslash joined to the next; comment lines kept as the
    ``below`` of the command above them."""
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if not pending and line.lstrip().startswith("#"):
            if found and offset == found[-1].line + found[-1].text.count("\n") + 1 + found[-1].below.count("\n"):
                above = found[-1]
                found[-1] = Command(block, above.line, above.text, above.below + line.lstrip()[1:].strip() + "\n")
            continue
        if not pending and not line.strip():
            continue
        if not pending:
            start = offset
        pending.append(line)
        if not line.endswith("\\"):
            found.append(Command(block, start, "\n".join(pending)))
            pending = []
    if pending:
        found.append(Command(block, start, "\n".join(pending)))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Ports:
    """Documented ports to free ones, the same for the whole page."""

    def __init__(self) -> None:
        self.mapped: dict[str, int] = {}

    def of(self, documented: str) -> int:
        if documented not in self.mapped:
            self.mapped[documented] = free_port()
        return self.mapped[documented]

    def rewrite(self, text: str) -> str:
        text = _HOST_PORT.sub(lambda m: f"{m[1]}:{self.of(m[2])}", text)
        return _PORT_OPTION.sub(lambda m: f"--port {self.of(m[1])}", text)


def _expectation(text: str, below: str) -> tuple[str, object] | None:
    """The command without its JSON comment, and the JSON it must print (from its comment, else from the comment
    lines below it); None when neither is JSON."""
    found = _EXPECT.search(text)
    if found is None:
        if not below.lstrip().startswith(("{", "[")):
            return None
        try:
            return text, json.loads(below)
        except ValueError:
            return None
    try:
        wanted, _ = json.JSONDecoder().raw_decode(found["json"])  # what follows the JSON is a remark
    except ValueError:
        return None
    return text[: found.start()], wanted


def _line_of(command: Command, ports: _Ports) -> str:
    """The bash that runs ``command``."""
    text = command.text.strip()
    head = _ASSIGNMENTS.sub("", text)
    if re.sub(r"\s+#.*$", "", head) in NEVER_RUN:
        return f"# not run: {head}"
    if _SERVER.search(text) and "--help" not in text:
        explicit = _PORT_OPTION.search(text)
        port = ports.of(explicit[1] if explicit else "8000")
        text = ports.rewrite(text)
        if head.startswith("make run"):
            text = text.replace("make run", "make -s -o .venv/.installed-stamp run", 1)
        if "citadel consume" in head:
            return f"_background {shlex.quote(text)}"
        prefix = "" if explicit else f"CITADEL_PORT={port} "
        return f"_serve {port} {shlex.quote(prefix + text)}"
    text = ports.rewrite(text)
    if _FOLLOW.search(text):
        return f"_background {shlex.quote(text)}"
    expected = _expectation(text, command.below)
    if expected is None:
        return text
    bare, wanted = expected
    is_read = not re.search(r"\s(-X\s*POST|-d|--data)\b", bare)
    return f"_expect {shlex.quote(json.dumps(wanted))} {READ_TRIES if is_read else 1} {shlex.quote(bare)}"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITADEL_", "PYTEST_", "PYTHONPATH"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(ROOT / ".venv")
    return env


def prepare(folder: Path) -> None:
    """Link the repository's environment, examples and Makefile into ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKS:
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name)


def run_shell(blocks: list[Block], folder: Path) -> None:
    """Run the commands of ``blocks`` in one bash session in ``folder``.

    Raises:
        AssertionError: a command failed (the message names its page and line, and shows the output).
    """
    commands = [c for block in blocks for c in commands_of(block)]
    if not commands:
        return
    missing = [tool for tool in ("bash", "curl", "jq", "setsid") if shutil.which(tool) is None]
    if missing:
        raise AssertionError(f"the docs' shell blocks need {', '.join(missing)} on the PATH; install them")
    logs = folder / ".session"
    logs.mkdir(exist_ok=True)
    ports = _Ports()
    script = [_PRELUDE]
    for command in commands:
        script += [f"_at {shlex.quote(command.where)}", _line_of(command, ports)]
    (logs / "script.sh").write_text("\n".join(script) + "\n")
    env = {**_environment(), "_LOGS": str(logs)}
    try:
        done = subprocess.run(
            ["bash", str(logs / "script.sh")],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the shell blocks did not finish within {TIMEOUT} s:\n{exc.stderr}") from None
    finally:
        _stop(logs / "pids")
    if done.returncode != 0:
        failed = (logs / "failed-at").read_text().strip() if (logs / "failed-at").exists() else "?"
        command = next((c for c in commands if c.where == failed), None)
        shown = command.text if command else ""
        raise AssertionError(
            f"{failed}: the command failed (status {done.returncode}):\n    $ {shown}\n"
            f"--- its output (last 3000 characters):\n{(done.stdout + done.stderr)[-3000:]}"
        )


def _stop(pids: Path) -> None:
    """Stop every server the session started (each leads a process group of its own)."""
    if not pids.exists():
        return
    groups = [int(p) for p in pids.read_text().split()]
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for group in groups:
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    pids.unlink()
