"""Parameter sweeps: theory (and simulations) over a product grid of config values, cached and resumable.

``run_sweep(config, {"gamma": [0.1, 0.5, 1], "delta": [1, 2, 4]}, out_dir)`` runs one task per grid
point (and per kind: ``theory``, plus ``simulation`` with ``simulate=True``) and gathers the curves
into ONE :class:`xarray.Dataset` whose swept keys are dimensions, e.g. ``train_loss(gamma, delta,
time)``. Files in ``out_dir``:

* ``sweep.nc`` (theory) and ``sweep_sim.nc`` (simulations), written atomically;
* ``sweep.png``: test loss vs t, one curve per grid point; its final value vs the first swept key;
  the theory-vs-simulation z per point (with ``simulate=True``);
* ``cache/<hash>.nc``: one file per finished task, ``hash = sha256(config TOML, package version,
  code hash, kind, source of a custom model's module)`` (:func:`task_hash`); a rerun (or a sweep
  resumed after Ctrl-C) reads these instead of recomputing. The code hash (:func:`code_hash`) is the
  sha256 of the source of every module that decides the numbers (the whole package but the command
  line, figures, result writing, sweeps and pools), so a changed solver or model never returns the old
  numbers from a cache; an edited user model module (``problem.model = 'module:function'`` or
  ``'file.py:function'``) neither. A cache file is used only if it proves to be that task's result
  (:func:`cache_problem`): its attributes ``task_sha256`` (the task hash) and ``content_sha256`` (of
  its arrays, :func:`content_hash`) match, its time grid is the point's, a simulation has all its
  seeds, and every value is finite; otherwise the point is recomputed with a one-line note.

Rules (documented choices):

* Keys: short names (``gamma``) resolve to the unique ``section.key`` (``dynamics.gamma``); an
  ambiguous short name (``seed``) must be written in full. Every grid point is validated like a
  config before anything runs (:class:`~sgd_dmft.config.ConfigError` naming the grid point).
* Time grids: every grid point records on the grid of ``dynamics.dt`` (and ``growth``, ``dt_max`` for a
  graded grid), so points share ``time``. Sweeping ``dynamics.dt``, ``growth`` or ``dt_max`` (more than
  one value) is refused. Sweeping ``dynamics.t_max`` is allowed:
  ``time`` is then the union (the longest grid) and shorter runs are NaN past their own ``t_max``.
* Only the curves are kept: variables on ``time`` (``train_loss``, ``test_loss``, ``M``, ``Q``,
  their ``*_stderr``); the theory's two-time kernels and pre-activation samples are dropped (run
  ``sgd-dmft solve`` on a single point to get them). The cache holds the same reduced datasets.
* Divergence (any :class:`sgd_dmft.errors.Diverged`: ``SolverDiverged``, ``SimulationDiverged``,
  ``NonFiniteResult``) at a grid point does not stop the sweep: the point is NaN, ``diverged`` (int8 on the grid dims) is 1 there and the messages
  are in the attribute ``diverged_points`` (JSON). A diverged point is NOT cached (cache files hold
  finite results only), so a rerun computes it again. Any other error stops the sweep (finished
  tasks stay cached).
* Budgets: every task's memory and cost estimates are checked before anything runs (run.check_theory /
  check_simulation): a refusal stops the sweep up front (``force=True`` lifts the cost limit); a
  stability refusal is a divergence of that point (NaN), as at run time.
* Interruptions: Ctrl-C / SIGTERM terminate the pool's workers and leave the finished tasks cached;
  no temporary file is left in the cache by a failed or killed task (a Dask ``KilledWorker`` is a
  one-line :class:`~sgd_dmft.errors.SgdDmftError` naming the grid point).
* Execution: each task is :func:`run_task` (``run.run_theory`` / ``run.run_simulation`` of its config).
  ``workers=1`` runs the tasks in this process; otherwise a process pool of ``workers`` processes
  (default ``min(2, cpu_count)``; :func:`sgd_dmft.parallel.map_as_completed`, ``spawn`` start method:
  scripts calling :func:`run_sweep` need the usual ``if __name__ == "__main__":`` guard). ``scheduler`` (an address
  such as ``tcp://host:8786`` or a ``distributed.Client``) runs the same tasks on a Dask cluster,
  each submitted as the pure function :func:`run_task` of its config TOML (and its ``trust_code``) with
  ``retries=2``; workers write the cache themselves when ``out_dir`` is on a filesystem they share, and
  the client writes any cache file still missing when the result arrives.

Modules, by job: ``keys`` (key resolution and validation of the grid points), ``cache`` (task hashes, cache
files), ``tasks`` (one grid point as a pure function), ``backends`` (local pool or Dask), ``gathering`` (the
swept Dataset, its files and figure), ``driver`` (:func:`run_sweep`). The names below are the public API.
"""

from __future__ import annotations

from .backends import Task
from .cache import cache_path, cache_problem, code_hash, content_hash, read_cache, task_hash, write_cache
from .driver import default_workers, run_sweep
from .gathering import gather, load_sweep, plot_sweep, publish_sweep, write_sweep
from .keys import KINDS, SIMULATION, THEORY, Grid, build_grid, parse_grid, resolve_key
from .tasks import run_task

__all__ = [
    "KINDS", "SIMULATION", "THEORY", "Grid", "Task", "build_grid", "cache_path", "cache_problem", "code_hash",
    "content_hash", "default_workers", "gather", "load_sweep", "parse_grid", "plot_sweep", "publish_sweep",
    "read_cache", "resolve_key", "run_sweep", "run_task", "task_hash", "write_cache", "write_sweep",
]
