"""Work items each in a process of its own, forked from the caller's main thread.

z3's answers depend on what its context has seen, so the prover and the bounded checks run every
item in a fresh fork: its answer then depends only on what the parent held when it forked. A
`multiprocessing.Pool` forks its replacement workers from a thread of its own, at moments of its
choosing, possibly in the middle of a z3 call of the main thread (z3 releases the GIL). Here
every fork happens in `run_forked` itself, in the order of the items, so the caller knows what
each child inherits.
The work and the items reach the children through the fork (they may hold functions, which do
not pickle); only the answers are pickled."""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.connection import wait


def run_forked(items: list, work, jobs: int, on_done, tick=None) -> None:
    """`work(item)` for every item, each in a process forked when its turn comes (in the order
    of `items`, at most `jobs` alive at once); `on_done(index, answer)` here as each finishes.
    `tick()` runs every half second while none finishes (it may raise to stop the run). The
    children ignore Ctrl-C: the caller's to handle; whatever stops the run kills the children
    still running. A child's exception is raised here; a child that dies without an answer is
    a RuntimeError."""
    ctx = multiprocessing.get_context("fork")
    live: dict = {}  # reading end -> (index, process)
    upcoming = 0
    try:
        while upcoming < len(items) or live:
            while upcoming < len(items) and len(live) < max(1, jobs):
                reader, process = _fork(ctx, work, items[upcoming])
                live[reader] = (upcoming, process)
                upcoming += 1
            finished = wait(list(live), timeout=0.5)
            if not finished and tick is not None:
                tick()
            for reader in finished:
                index, process = live.pop(reader)
                try:
                    kind, answer = reader.recv()
                except EOFError:
                    process.join()
                    raise RuntimeError(f"a forked worker died without an answer (exit code "
                                       f"{process.exitcode})") from None
                finally:
                    reader.close()
                process.join()
                if kind == "error":
                    raise answer
                on_done(index, answer)
    finally:
        for reader, (_, process) in live.items():
            process.kill()
            process.join()
            reader.close()


def _fork(ctx, work, item):
    """Start one child; Ctrl-C is blocked across the fork, so that no child ever sees one."""
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(writer, work, item), daemon=True)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    writer.close()
    return reader, process


def _child(writer, work, item) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        answer = ("done", work(item))
    except BaseException as error:  # noqa: BLE001 - handed to the parent, which raises it
        answer = ("error", error)
    try:
        writer.send(answer)
    except Exception as error:  # an answer or exception that does not pickle
        writer.send(("error", RuntimeError(f"a forked worker's answer: {error!r}")))
    writer.close()
