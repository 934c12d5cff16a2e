"""Process pools in one place: the DMFT solver's replicas and the sweeps' tasks.

* :func:`map_ordered` (the solver): results handed back in task order, the first task run here and
  timed, a pool only when it saves more than starting it costs, a fallback to this process when the
  workers cannot start.
* :func:`map_as_completed` (sweeps): results handed back as they finish.

Both use ``spawn`` worker processes (``fork`` is unsafe with threads and BLAS): ``fn`` and the tasks
must be picklable (``fn`` a module-level function), and a script that calls them with ``workers > 1``
needs the usual ``if __name__ == "__main__":`` guard. On any error, Ctrl-C or SIGTERM (the CLI raises
it as a KeyboardInterrupt) the queued tasks are cancelled, the worker processes are terminated and the
exception propagates. Workers end with their parent: each one watches its parent process (and asks
Linux for SIGTERM when the parent dies, ``PR_SET_PDEATHSIG``), so a SIGKILLed parent leaves none behind.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

SPAWN_COST_S = 3.0  # starting spawn workers (imports, compiled kernels): a pool must save more than this

_GUARD_WARNING = ("worker processes failed to start (a script needs an `if __name__ == '__main__':` guard for "
                  "workers > 1); running the remaining tasks here")


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count``):
    more worker processes than this only add memory (a copy of the interpreter and the kernels each) and
    slow every replica down (16 workers on 2 cores: 17 processes, 4.1 GB, 4x slower)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _executor(workers: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))


def _worker_init(parent: int) -> None:
    """In each worker: exit when the parent process is gone (SIGKILL leaves no orphans)."""
    try:  # Linux: the kernel sends SIGTERM when the parent thread dies
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001 - not Linux: the watchdog below does it
        pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sgd-dmft-parent-watch", daemon=True).start()


def shutdown_now(ex) -> None:
    """Cancel the queued tasks and terminate the worker processes (no waiting for running tasks)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.terminate()
        except Exception:  # noqa: BLE001 - already gone
            pass
    for p in procs:
        try:
            p.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass


def map_ordered(fn: Callable[..., Any], tasks: Sequence[tuple], *, workers: int,
                on_result: Callable[[int, Any, bool], None], local_kwargs: Mapping[str, Any] | None = None,
                spawn_cost_s: float = SPAWN_COST_S) -> int:
    """Call ``fn(*task)`` for every task; ``on_result(index, result, local)`` in task order.

    ``local`` is True for a task run in this process, as ``fn(*task, **local_kwargs)`` (e.g. a progress
    bar that cannot travel to a worker). With ``W = min(workers, len(tasks)) > 1`` the first task runs
    here and is timed (``tau``, including its ``on_result``); when the workers would save less than
    ``spawn_cost_s`` (``tau * (n - 1) * (1 - 1/W)``) the rest run here too, otherwise in a spawn pool
    of ``W`` processes (all submitted at once, consumed in order). A pool that breaks (typically a
    script without the ``__main__`` guard) gives a RuntimeWarning and the remaining tasks run here.
    Returns the number of workers actually used (1 when everything ran here).
    """
    tasks = list(tasks)
    kw = dict(local_kwargs or {})
    n = len(tasks)
    W = max(1, min(int(workers), n))
    done = 0
    if W > 1:
        t_first = time.perf_counter()
        on_result(0, fn(*tasks[0], **kw), True)
        done = 1
        tau = time.perf_counter() - t_first
        if tau * (n - 1) * (1.0 - 1.0 / W) < spawn_cost_s:  # the time the workers would save
            W = 1
    if W > 1:
        done, broken = _pool_ordered(fn, tasks, done, W, on_result)
        if broken:
            W = 1
    for i in range(done, n):
        on_result(i, fn(*tasks[i], **kw), True)
    return W


def _pool_ordered(fn, tasks, done: int, W: int, on_result) -> tuple[int, bool]:
    """Run ``tasks[done:]`` in a pool of ``W``; ``(tasks consumed so far, whether the pool broke)``."""
    from concurrent.futures.process import BrokenProcessPool

    ex = _executor(W)
    try:
        futs = [ex.submit(fn, *t) for t in tasks[done:]]
        for f in futs:
            on_result(done, f.result(), False)
            done += 1
        ex.shutdown()
    except BrokenProcessPool:
        shutdown_now(ex)
        # typically a script without `if __name__ == "__main__":` (spawned workers re-run it)
        warnings.warn(_GUARD_WARNING, RuntimeWarning, stacklevel=4)
        return done, True
    except BaseException:  # an error in a task, Ctrl-C, SIGTERM: do not wait for the queued tasks
        shutdown_now(ex)
        raise
    return done, False


def map_as_completed(fn: Callable[..., Any], tasks: Sequence[tuple], *, workers: int,
                     on_result: Callable[[int, Any], None]) -> int:
    """Call ``fn(*task)`` for every task; ``on_result(index, result)`` as each one finishes.

    ``W = min(workers, len(tasks)) <= 1``: the tasks run here, in order. Otherwise a spawn pool of
    ``W`` processes runs them all (submitted at once). Returns ``W``.
    """
    tasks = list(tasks)
    W = max(1, min(int(workers), len(tasks)))
    if W == 1:
        for i, t in enumerate(tasks):
            on_result(i, fn(*t))
        return W
    from concurrent.futures import FIRST_COMPLETED, wait

    ex = _executor(W)
    try:
        futs = {ex.submit(fn, *t): i for i, t in enumerate(tasks)}
        pending = set(futs)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                on_result(futs[f], f.result())
    except BaseException:
        shutdown_now(ex)
        raise
    ex.shutdown(wait=True)
    return W
