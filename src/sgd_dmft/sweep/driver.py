"""The sweep's entry point: :func:`run_sweep` builds the grid, takes what the cache holds, checks every
remaining task's budgets up front, runs the rest (Dask, a local pool or this process) and publishes the
gathered files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import xarray as xr

from .. import parallel, run
from ..config import Config, ConfigError
from ..errors import Diverged, SgdDmftError
from ..progress import enabled as progress_enabled
from .backends import Task, run_dask, run_local
from .cache import cache_path, read_cache, remove_temporaries, write_cache
from .gathering import gather, publish_sweep
from .keys import SIMULATION, THEORY, Grid, build_grid, label


def default_workers() -> int:
    """Local worker processes of a sweep by default: ``min(2, cpu_count)``."""
    return max(1, min(2, os.cpu_count() or 1))


def run_sweep(
    config: Config,
    grid: Mapping[str, Sequence[Any]],
    out_dir: str | Path,
    simulate: bool = False,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = False,
    callback: Callable[[int, str, str], None] | None = None,
    force: bool = False,
    announce: Callable[[str], Any] | None = None,
) -> xr.Dataset:
    """Theory (and with ``simulate=True`` simulations) over the product grid; see the module doc.

    ``grid`` maps keys (``"gamma"`` or ``"dynamics.gamma"``) to lists of values. Writes
    ``out_dir/sweep.nc`` (+ ``sweep_sim.nc``), ``out_dir/sweep.png`` and the cache; returns the
    theory Dataset (read the simulations from ``sweep_sim.nc``, or use :func:`load_sweep`).
    ``callback(n_done, kind, status)`` is called in this process after each task that was run (not
    for cached ones). ``announce(line)`` gets a note for each cache file that is not used (default: printed
    on stderr). Raises ConfigError (before running anything) for an invalid grid point, and
    MemoryLimitExceeded / CostLimitExceeded for one past its budget (``force`` lifts the cost limit).
    """
    kinds = [THEORY, SIMULATION] if simulate else [THEORY]
    g = build_grid(config, grid, simulate)
    out = Path(out_dir)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = default_workers()
    if int(workers) < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    workers = _capped_workers(int(workers), scheduler, announce or _stderr)
    results, todo = _from_cache(g, kinds, out, announce or _stderr)
    _check_budgets(todo, force)
    try:
        _execute(todo, results, len(g.points) * len(kinds), scheduler, int(workers), progress, callback)
    finally:
        remove_temporaries([t.cache for t in todo])
    theory = gather(g, results[THEORY], THEORY)
    sim = gather(g, results[SIMULATION], SIMULATION) if simulate else None
    publish_sweep(out, config, theory, sim)
    return theory


def _capped_workers(workers: int, scheduler: Any, announce: Callable[[str], Any]) -> int:
    """Local workers capped at the CPU cores (more only add memory and slow every task; parallel.cores),
    with a note; a Dask scheduler's workers are its own."""
    n = parallel.cores()
    if scheduler is None and workers > n:
        announce(f"note: --workers {workers} capped at the {n} CPU cores")
        return n
    return workers


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _from_cache(g: Grid, kinds: Sequence[str], out: Path,
                announce: Callable[[str], Any]) -> tuple[dict[str, list[Any]], list[Task]]:
    """``({kind: [cached Dataset or None per point]}, the tasks still to run)``."""
    results: dict[str, list[Any]] = {k: [None] * len(g.points) for k in kinds}
    todo: list[Task] = []
    for kind in kinds:
        for i, cfg in enumerate(g.configs):
            p = cache_path(out, cfg, kind)
            ds, why = read_cache(p, cfg, kind)
            if ds is not None:
                results[kind][i] = ds
            else:
                point = label(g.keys, [g.coords[j][k] for j, k in enumerate(g.points[i])])
                if why:
                    announce(f"note: cache file {p.name} of grid point {point} ({kind}) is not used: {why}; "
                             f"recomputing")
                todo.append(Task(i, kind, cfg, p, point))
    return results, todo


def _check_budgets(todo: list[Task], force: bool) -> None:
    """Every task's up-front checks before any runs; a stability refusal is left to the task (NaN point)."""
    for t in todo:
        exp = run.experiment(t.config)
        try:
            if t.kind == THEORY:  # what the task runs: a long point compressed, the config's limit
                run.check_theory(run.compress(exp), force=force)
            else:
                run.check_simulation(exp, force)
        except Diverged:
            pass
        except SgdDmftError as e:
            raise type(e)(f"grid point {t.label} ({t.kind}): {e}") from None


def _execute(todo: list[Task], results: dict[str, list[Any]], total: int, scheduler: Any, workers: int,
             progress: bool, callback: Callable[[int, str, str], None] | None) -> None:
    """Run the tasks (Dask, a local pool or this process), filling ``results`` and the cache."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="task",
               disable=not progress_enabled(progress))
    n_done = [0]

    def done(t: Task, res: dict) -> None:
        if res["status"] == "ok":
            results[t.kind][t.point] = res["ds"]
            if not t.cache.exists():
                write_cache(res["ds"], t.cache, t.config, t.kind)
        else:
            results[t.kind][t.point] = str(res["message"])
        n_done[0] += 1
        bar.update(1)
        if callback is not None:
            callback(n_done[0], t.kind, res["status"])

    try:
        if todo:
            if scheduler is not None:
                run_dask(todo, done, scheduler)
            else:
                run_local(todo, done, workers)
    finally:
        bar.close()
