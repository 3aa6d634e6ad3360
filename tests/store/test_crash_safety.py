"""Crash safety: SIGKILL a process in the middle of writing; what it acknowledged survives, whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("crash_child.py")


def run_and_kill(database: Path, acks_before_kill: int) -> dict[str, int]:
    """Run the child until it acknowledged enough commands, kill it, return the highest acked version per stream."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parent), os.environ.get("PYTHONPATH", "")])}
    acked: dict[str, int] = {}

    def note(line: bytes) -> None:
        _, stream, version = line.decode().split()
        acked[stream] = max(acked.get(stream, 0), int(version))

    command = [sys.executable, str(CHILD), str(database)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as child:
        assert child.stdout is not None
        try:
            for count, line in enumerate(child.stdout, start=1):
                note(line)
                if count >= acks_before_kill:
                    child.send_signal(signal.SIGKILL)
                    break
            for line in child.stdout:  # what it printed before it died was acknowledged too
                note(line)
        finally:
            child.kill()
            child.wait()
        stderr = child.stderr.read().decode() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL, stderr
    assert len(acked) > 10, stderr
    return acked


@pytest.mark.slow
async def test_a_killed_writer_loses_no_acknowledged_event_and_leaves_no_partial_batch(tmp_path: Path) -> None:
    from crash_child import ASYNC, INLINE, build

    database = tmp_path / "crash.db"
    acked = run_and_kill(database, 400)
    acked_again = run_and_kill(database, 400)  # a second life on the same file, killed again
    for stream, version in acked_again.items():
        acked[stream] = max(acked.get(stream, 0), version)

    app = build(str(database))
    await app.start()
    try:
        store = app.store
        log = await store.read_all(limit=1_000_000)
        assert [r.position for r in log] == list(range(1, len(log) + 1))
        for stream, version in acked.items():
            assert await store.stream_version(stream) >= version, f"{stream} lost acknowledged events"
        by_stream: dict[str, list[int]] = {}
        for record in log:
            by_stream.setdefault(record.stream_id, []).append(record.version)
        for stream, versions in by_stream.items():
            assert versions == list(range(1, len(versions) + 1))
            assert len(versions) % 3 == 0, f"{stream} holds a partial command"
            # the inline projection committed with the events: exactly as many counted as stored
            assert (await app.view_reader(INLINE).get(stream)) == {"events": len(versions)}
        # the async projection resumes from its checkpoint: nothing applied twice, nothing skipped
        assert await app.wait_for_projection("crash.async", len(log), timeout=30)
        for stream, versions in by_stream.items():
            assert (await app.view_reader(ASYNC).get(stream)) == {"events": len(versions)}
    finally:
        await app.stop()
