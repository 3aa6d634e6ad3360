"""Group commit for SQLite: one durable transaction per batch of pending writes.

Callers on the event loop submit jobs and await a future. The writer takes every job waiting, opens one
``BEGIN IMMEDIATE`` transaction, runs the jobs (a job that fails, such as an append with a stale expected
version, rolls back alone), commits once, and then resolves all the futures. With ``synchronous=FULL`` that
commit is one fsync for the whole batch: the disk's fsync rate stops being the event rate. Jobs submitted
during one turn of the event loop become one batch.

Where batches run:

* on the event loop (``LoopWriter``, the default): at the end of the turn that submitted the jobs. The jobs run
  on the loop (they need the interpreter lock anyway, so no thread waits for it and none is woken per job).
  The ``COMMIT`` (with ``synchronous=FULL``, an fsync) runs on the loop too while commits are fast, and goes to
  a thread of its own while they are slow (a disk whose fsync takes milliseconds), so that the loop serves
  meanwhile while the next batch queues up. On the command path the loop-run jobs take less CPU per command
  than a writer thread (``bench/store.py``). When another process holds the write lock the loop
  does not sleep on it: it serves and tries again a moment later (giving up after the busy timeout).
* on a writer thread of its own (``ThreadWriter``): while one batch commits, the next one queues up, and
  the thread is woken once per batch.

The parts, one module each: ``transaction`` (the batch's ``WriteTransaction`` and the ``WriteJob``
contract), ``group_commit`` (``GroupCommitWriter``: running, committing and settling a batch),
``loop_writer`` (``LoopWriter``) and ``thread_writer`` (``ThreadWriter``). Import them from here.
"""

from citadel.store.sqlite.group_commit import GroupCommitWriter
from citadel.store.sqlite.loop_writer import LoopWriter
from citadel.store.sqlite.thread_writer import ThreadWriter
from citadel.store.sqlite.transaction import WriteJob, WriteTransaction

__all__ = ["GroupCommitWriter", "LoopWriter", "ThreadWriter", "WriteJob", "WriteTransaction"]
