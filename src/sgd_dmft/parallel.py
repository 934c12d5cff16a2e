"""Process pools in one place: the DMFT solver's replicas and the sweeps' tasks.

* :func:`map_ordered` (the solver): results handed back in task order, the first task run here and
  timed, a pool only when it saves more than starting it costs, a fallback to this process when the
  workers cannot start.
* :func:`map_as_completed` (sweeps): results handed back as they finish.
* :class:`Pool`: one pool shared by several maps (a solve's Richardson levels and its ``rtol`` batches
  start their workers once), and the one place that terminates worker processes.

Both use ``spawn`` worker processes (``fork`` is unsafe with threads and BLAS): ``fn`` and the tasks
must be picklable (``fn`` a module-level function), and a script that calls them with ``workers > 1``
needs the usual ``if __name__ == "__main__":`` guard. On any error, Ctrl-C or SIGTERM (the CLI raises
it as a KeyboardInterrupt) the queued tasks are cancelled, the worker processes are terminated and the
exception propagates. Workers end with their parent: each one watches its parent process (and asks
Linux for SIGTERM when the parent dies, ``PR_SET_PDEATHSIG``), so a SIGKILLed parent leaves none behind.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.process
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


class _SpawnRecorder(multiprocessing.context.SpawnContext):
    """The ``spawn`` context, keeping the worker processes it starts: ``ProcessPoolExecutor`` has no public
    list of its processes, and :meth:`Pool.terminate` must end them without waiting for their tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def Process(self, *args, **kwargs):  # noqa: N802 - the context's factory name
        p = multiprocessing.context.SpawnProcess(*args, **kwargs)
        self.processes.append(p)
        return p


class Pool:
    """One spawn pool of at most ``workers`` processes shared by a sequence of maps (a solve's Richardson
    levels and the batches added for ``rtol``): started by the first :func:`map_ordered` that wants workers,
    reused by the next ones (no second start-up cost), shut down when its ``with`` block ends.

    An error, Ctrl-C or SIGTERM inside a map (or the ``with`` block) terminates the workers at once
    (:meth:`terminate`, the one place that ends worker processes); a later map starts a fresh pool. A pool
    whose workers cannot start (a script without the ``__main__`` guard) is marked ``broken``: the maps
    after it run in this process.
    """

    def __init__(self, workers: int):
        self.size = max(1, int(workers))
        self.broken = False
        self._executor = None
        self._context: _SpawnRecorder | None = None

    @property
    def started(self) -> bool:
        """Whether worker processes are running (the next map pays no start-up cost)."""
        return self._executor is not None

    def executor(self):
        """The ``ProcessPoolExecutor``, started on first use."""
        if self._executor is None:
            from concurrent.futures import ProcessPoolExecutor

            self._context = _SpawnRecorder()
            self._executor = ProcessPoolExecutor(max_workers=self.size, mp_context=self._context,
                                                 initializer=_worker_init, initargs=(os.getpid(),))
        return self._executor

    def close(self) -> None:
        """Shut down after the submitted tasks (the normal end)."""
        ex, self._executor, self._context = self._executor, None, None
        if ex is not None:
            ex.shutdown(wait=True)

    def terminate(self) -> None:
        """Cancel the queued tasks and terminate the worker processes (no waiting for running tasks)."""
        ex, ctx, self._executor, self._context = self._executor, self._context, None, None
        if ex is None:
            return
        ex.shutdown(wait=False, cancel_futures=True)
        for p in ctx.processes:
            try:
                p.terminate()
            except Exception:  # noqa: BLE001 - already gone
                pass
        for p in ctx.processes:
            try:
                p.join(timeout=5)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


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


def map_ordered(fn: Callable[..., Any], tasks: Sequence[tuple], *, workers: int,
                on_result: Callable[[int, Any, bool], None], local_kwargs: Mapping[str, Any] | None = None,
                spawn_cost_s: float = SPAWN_COST_S, pool: Pool | None = None) -> int:
    """Call ``fn(*task)`` for every task; ``on_result(index, result, local)`` in task order.

    ``local`` is True for a task run in this process, as ``fn(*task, **local_kwargs)`` (e.g. a progress
    bar that cannot travel to a worker). With ``W = min(workers, len(tasks)) > 1`` and no ``pool`` already
    started, the first task runs here and is timed (``tau``, including its ``on_result``); when the workers
    would save less than ``spawn_cost_s`` (``tau * (n - 1) * (1 - 1/W)``) the rest run here too, otherwise in
    the spawn pool, at most ``W`` at a time, consumed in order. ``pool``: a :class:`Pool` shared with other
    maps (a started one is used at once, for every task); None: a pool of this call's own. A pool that
    breaks (typically a script without the ``__main__`` guard) gives a RuntimeWarning and the remaining
    tasks run here. Returns the number of workers actually used (1 when everything ran here).
    """
    if pool is None:
        with Pool(workers) as own:
            return map_ordered(fn, tasks, workers=workers, on_result=on_result, local_kwargs=local_kwargs,
                               spawn_cost_s=spawn_cost_s, pool=own)
    tasks = list(tasks)
    kw = dict(local_kwargs or {})
    n = len(tasks)
    W = 1 if pool.broken else max(1, min(int(workers), n))
    done = 0
    if W > 1 and not pool.started:
        t_first = time.perf_counter()
        on_result(0, fn(*tasks[0], **kw), True)
        done = 1
        tau = time.perf_counter() - t_first
        if tau * (n - 1) * (1.0 - 1.0 / W) < spawn_cost_s:  # the time the workers would save
            W = 1
    if W > 1:
        done = _pool_ordered(pool, fn, tasks, done, W, on_result)
        if pool.broken:
            W = 1
    for i in range(done, n):
        on_result(i, fn(*tasks[i], **kw), True)
    return W


def _pool_ordered(pool: Pool, fn, tasks, done: int, W: int, on_result) -> int:
    """Run ``tasks[done:]`` in ``pool``, at most ``W`` at a time, handing the results over in task order;
    returns the tasks consumed. A pool that breaks is marked broken (the rest is left to the caller); any
    other exception terminates the workers and propagates."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    n, nxt = len(tasks), done
    running: dict[Any, int] = {}
    finished: dict[int, Any] = {}
    try:
        ex = pool.executor()
        while done < n:
            while nxt < n and len(running) < W:
                running[ex.submit(fn, *tasks[nxt])] = nxt
                nxt += 1
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in ready:
                finished[running.pop(f)] = f
            while done in finished:
                on_result(done, finished.pop(done).result(), False)
                done += 1
    except BrokenProcessPool:
        pool.terminate()
        pool.broken = True
        # typically a script without `if __name__ == "__main__":` (spawned workers re-run it)
        warnings.warn(_GUARD_WARNING, RuntimeWarning, stacklevel=4)
    except BaseException:  # an error in a task, Ctrl-C, SIGTERM: do not wait for the queued tasks
        pool.terminate()
        raise
    return done


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

    with Pool(W) as pool:  # an error, Ctrl-C or SIGTERM terminates the workers (Pool.__exit__)
        ex = pool.executor()
        futs = {ex.submit(fn, *t): i for i, t in enumerate(tasks)}
        pending = set(futs)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                on_result(futs[f], f.result())
    return W
