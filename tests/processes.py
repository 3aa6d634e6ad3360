"""Stopping a server the tests started as a subprocess in a session of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt the server (and its workers) as Ctrl-C would, and wait; kill its process group if it does not
    stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
