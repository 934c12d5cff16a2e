"""parallel.py: ordered and unordered maps over spawn processes (spawn-cost rule, fallback, cancellation)."""

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from sgd_dmft import parallel


def affine(a, b, scale=1):
    """A module-level task function (spawn workers import it by name)."""
    return (a * 10 + b) * scale


def fails_at(i, bad, marker_dir, pause):
    """Fail at task ``bad``; the others leave a marker file after ``pause`` seconds."""
    if i == bad:
        raise ValueError(f"task {i} failed")
    time.sleep(pause)
    Path(marker_dir, f"{i}").touch()
    return i


def dies_in_worker(i):
    """Kills its worker process (a broken pool); fine in the main process."""
    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return i


TASKS = [(a, b) for a in range(3) for b in range(2)]
EXPECTED = [affine(a, b) for a, b in TASKS]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_map_ordered_results_independent_of_workers(workers):
    got, local = [], []

    def on_result(i, r, here):
        assert i == len(got)  # task order
        got.append(r)
        local.append(here)

    used = parallel.map_ordered(affine, TASKS, workers=workers, on_result=on_result, spawn_cost_s=0.0)
    assert got == EXPECTED
    assert used == workers
    assert local[0] is True and all(h is (workers == 1) for h in local[1:])


def test_map_ordered_local_kwargs_only_here():
    got = []
    used = parallel.map_ordered(affine, TASKS, workers=1, local_kwargs={"scale": -1},
                                on_result=lambda i, r, here: got.append((r, here)))
    assert used == 1 and got == [(-e, True) for e in EXPECTED]


def test_map_ordered_cheap_tasks_stay_in_process():
    # the first task is timed: far below the spawn cost, the rest run here as well (no pool)
    got = []
    used = parallel.map_ordered(affine, TASKS, workers=4, local_kwargs={"scale": 2}, spawn_cost_s=1e9,
                                on_result=lambda i, r, here: got.append((i, r, here)))
    assert used == 1
    assert got == [(i, 2 * e, True) for i, e in enumerate(EXPECTED)]


def test_map_ordered_broken_pool_falls_back_here():
    got = []
    with pytest.warns(RuntimeWarning, match="__main__"):
        used = parallel.map_ordered(dies_in_worker, [(i,) for i in range(4)], workers=2, spawn_cost_s=0.0,
                                    on_result=lambda i, r, here: got.append((i, r, here)))
    assert used == 1
    assert got == [(i, i, True) for i in range(4)]


def _settled_count(d: Path, wait_s: float = 10.0) -> int:
    """Number of marker files once no new one has appeared for a second."""
    n, stable_since, t0 = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < wait_s:
        m = len(list(d.iterdir()))
        if m != n:
            n, stable_since = m, time.monotonic()
        elif time.monotonic() - stable_since > 1.0:
            break
        time.sleep(0.1)
    return n


@pytest.mark.parametrize("ordered", [True, False])
def test_error_cancels_queued_tasks(tmp_path, ordered):
    n = 40
    tasks = [(i, 1, str(tmp_path), 0.05) for i in range(n)]
    with pytest.raises(ValueError, match="task 1 failed"):
        if ordered:
            parallel.map_ordered(fails_at, tasks, workers=2, spawn_cost_s=0.0, on_result=lambda i, r, here: None)
        else:
            parallel.map_as_completed(fails_at, tasks, workers=2, on_result=lambda i, r: None)
    # the queued tasks were cancelled: only those already started (a few per worker) ran
    assert _settled_count(tmp_path) < n // 2


def test_map_as_completed_matches_inline():
    inline, pooled = {}, {}
    assert parallel.map_as_completed(affine, TASKS, workers=1, on_result=inline.__setitem__) == 1
    assert parallel.map_as_completed(affine, TASKS, workers=2, on_result=pooled.__setitem__) == 2
    assert inline == pooled == dict(enumerate(EXPECTED))
    assert list(inline) == list(range(len(TASKS)))  # inline: in task order


def worker_pid(i):
    return os.getpid()


def _alive_after(pids: set, seconds: float) -> set:
    """The pool workers among ``pids`` still alive, waiting up to ``seconds`` for them to exit."""
    deadline = time.monotonic() + seconds
    while (alive := pids & {p.pid for p in multiprocessing.active_children()}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_pool_is_reused_across_maps_and_terminated_on_error(tmp_path):
    """One Pool for several maps (a solve's levels and rtol batches): the later maps use the started workers,
    every task in them; an error terminates the workers and the next map starts fresh ones."""
    pids: list[tuple[int, bool]] = []
    with parallel.Pool(2) as pool:
        assert not pool.started
        parallel.map_ordered(worker_pid, [(i,) for i in range(4)], workers=2, spawn_cost_s=0.0, pool=pool,
                             on_result=lambda i, r, here: pids.append((r, here)))
        first = {p.pid for p in multiprocessing.active_children()}  # the pool's workers
        assert pool.started and pids[0] == (os.getpid(), True) and {p for p, _ in pids[1:]} <= first
        pids.clear()
        assert parallel.map_ordered(worker_pid, [(i,) for i in range(3)], workers=2, spawn_cost_s=1e9, pool=pool,
                                    on_result=lambda i, r, here: pids.append((r, here))) == 2
        assert all(not here for _, here in pids) and {p for p, _ in pids} <= first  # no new workers
        with pytest.raises(ValueError, match="task 1 failed"):
            parallel.map_ordered(fails_at, [(i, 1, str(tmp_path), 0.0) for i in range(4)], workers=2,
                                 spawn_cost_s=0.0, pool=pool, on_result=lambda i, r, here: None)
        assert not pool.started
        assert not (first & _alive_after(first, 5.0))  # terminated (a killed worker may take a moment to exit)
    assert not (first & {p.pid for p in multiprocessing.active_children()})

