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
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from . import parallel, run
from ._version import __version__
from .config import SCHEMA, Config, ConfigError, parse_value
from .config import resolve_key as config_resolve_key
from .models.loading import is_entry, source_hash
from .errors import Diverged, SgdDmftError

THEORY, SIMULATION = "theory", "simulation"
KINDS = (THEORY, SIMULATION)
_RESERVED_DIMS = {"time", "time2", "snap_time", "seed", "k", "kstar", "k2", "path"}
_DROP_DIMS = {"time2", "snap_time", "path"}


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------
def resolve_key(name: str) -> str:
    """``gamma`` -> ``dynamics.gamma``; ``dynamics.gamma`` stays; unknown or ambiguous -> ConfigError (the rule of
    every ``-s/--set``: :func:`sgd_dmft.config.resolve_key`)."""
    return config_resolve_key(name, "sweep key")


def _dim_names(keys: Sequence[str]) -> list[str]:
    shorts = [k.split(".", 1)[1] for k in keys]
    out = []
    for dotted, short in zip(keys, shorts):
        ok = shorts.count(short) == 1 and short not in _RESERVED_DIMS
        out.append(short if ok else dotted.replace(".", "_"))
    return out


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, values))


@dataclass
class _Grid:
    keys: list[str]  # dotted
    dims: list[str]
    coords: list[list[Any]]  # normalised values (from the validated configs)
    points: list[tuple[int, ...]]  # index tuples, row-major
    configs: list[Config]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


def build_grid(config: Config, grid: Mapping[str, Sequence[Any]], simulate: bool = False) -> _Grid:
    """Resolve the keys and validate every grid point (ConfigError naming the point on failure)."""
    if not grid:
        raise ConfigError("sweep: give at least one key to sweep (e.g. --set gamma=0.1,0.5,1)")
    keys: list[str] = []
    values: list[list[Any]] = []
    for name, vals in grid.items():
        dotted = resolve_key(name)
        if dotted in keys:
            raise ConfigError(f"sweep key {dotted!r} is given twice")
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence):
            vals = [vals]
        vals = list(vals)
        if not vals:
            raise ConfigError(f"sweep key {dotted!r} has no values")
        keys.append(dotted)
        values.append(vals)
    for dotted, vals in zip(keys, values):
        if dotted in ("dynamics.dt", "dynamics.growth", "dynamics.dt_max") and len(vals) > 1:
            raise ConfigError(
                f"sweep key {dotted!r}: sweeping the time grid is not supported (grid points must share "
                "the time grid); run one sweep per grid (sweeping dynamics.t_max is fine)")
    points = list(itertools.product(*[range(len(v)) for v in values]))
    configs = []
    for idx in points:
        raw = [values[j][i] for j, i in enumerate(idx)]
        try:
            # the sweep runs tasks in parallel: each task's solver runs its replicas in its own process
            cfg = config.with_overrides({**dict(zip(keys, raw)), "solver.workers": 1})
            _check_runnable(cfg, simulate)
        except ConfigError as e:
            raise ConfigError(f"grid point {_label(keys, raw)}: {e}") from None
        configs.append(cfg)
    # normalised coordinates (e.g. 1 -> 1.0 for float keys) from the validated configs
    coords: list[list[Any]] = []
    for j, dotted in enumerate(keys):
        col = []
        for i in range(len(values[j])):
            p = next(k for k, idx in enumerate(points) if idx[j] == i)
            col.append(configs[p].flat()[dotted])
        if len(set(col)) != len(col):
            raise ConfigError(f"sweep key {dotted!r} has repeated values: {col}")
        coords.append(col)
    return _Grid(keys=keys, dims=_dim_names(keys), coords=coords, points=points, configs=configs)


def _check_runnable(cfg: Config, simulate: bool) -> None:
    try:
        cfg.make_problem()
        if cfg.dynamics["algorithm"] != "online":
            cfg.make_law()
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["gamma=0.1,0.5,1", "algorithm=gd,sgd"]`` -> ``{"gamma": [0.1, 0.5, 1], ...}`` (TOML values).

    A value that is a whole TOML array (``delta=[1, 2]``) is also accepted.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=v1,v2,...")
        k, v = (s.strip() for s in item.split("=", 1))
        if not k or not v:
            raise ConfigError(f"--set {item!r}: expected key=v1,v2,...")
        whole = parse_value(v)
        vals = whole if isinstance(whole, list) else [parse_value(x.strip()) for x in v.split(",") if x.strip()]
        if k in out:
            raise ConfigError(f"--set {k!r} given twice")
        out[k] = vals
    return out


# --------------------------------------------------------------------------------------------
# Tasks and cache
# --------------------------------------------------------------------------------------------
_NOT_NUMERICS = {"cli.py", "plot.py", "sweep.py", "results.py", "parallel.py", "__main__.py"}
_CODE_HASH: str | None = None


def code_hash() -> str:
    """sha256 of the source of the modules that decide the numbers (every ``*.py`` of the package except
    cli, plot, sweep, results, parallel), in sorted path order; computed once per process."""
    global _CODE_HASH
    if _CODE_HASH is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel in _NOT_NUMERICS:
                continue
            h.update(rel.encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


def _model_source(config: Config | str) -> str:
    """sha256 of a custom model's module source ('' for a preset)."""
    if isinstance(config, str):
        import tomllib

        model = tomllib.loads(config).get("problem", {}).get("model", "")
    else:
        model = config.problem["model"]
    return source_hash(model) if is_entry(model) else ""


def task_hash(config: Config | str, kind: str) -> str:
    """sha256 of the normalised config TOML + package version + :func:`code_hash` + kind + the source of a
    custom model's module."""
    toml = config if isinstance(config, str) else config.to_toml()
    h = hashlib.sha256()
    for part in (toml, __version__, code_hash(), kind, _model_source(config)):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def cache_path(out_dir: str | Path, config: Config | str, kind: str) -> Path:
    return Path(out_dir) / "cache" / f"{task_hash(config, kind)}.nc"


def _is_divergence(exc: BaseException) -> bool:
    """Solver or simulation diverged, or a non-finite result: the point is NaN, the sweep goes on."""
    return isinstance(exc, Diverged)


def _reduce(ds: xr.Dataset) -> xr.Dataset:
    """Keep the curves (variables on ``time`` only, no two-time kernels / samples)."""
    keep = [v for v, da in ds.data_vars.items() if "time" in da.dims and not (set(da.dims) & _DROP_DIMS)]
    out = ds[keep]
    drop = [c for c in out.coords if set(out[c].dims) & _DROP_DIMS or c in _DROP_DIMS]
    return out.drop_vars(drop)


def _compute(cfg: Config, kind: str) -> xr.Dataset:
    """One task's computation (patched in tests to count calls); its budgets were checked up front."""
    return run.run_theory(cfg, force=True) if kind == THEORY else run.run_simulation(cfg, force=True)


def run_task(config_toml: str, kind: str, cache_file: str | None = None, trust_code: bool = False) -> dict[str, Any]:
    """Run one grid point: a pure function of its config TOML and kind (``trust_code``: the config's own,
    needed for a custom model).

    Returns ``{"status": "ok", "ds": Dataset}`` or ``{"status": "diverged", "message": str}``.
    With ``cache_file`` a finite result is also written there atomically (:func:`write_cache`).
    """
    import tomllib

    from .config import parse_config
    from .results import check_finite

    cfg = parse_config(tomllib.loads(config_toml), trust_code)
    try:
        ds = _reduce(_compute(cfg, kind))
        check_finite(ds, kind)
    except Exception as exc:  # noqa: BLE001
        if _is_divergence(exc):
            return {"status": "diverged", "message": " ".join(str(exc).split())}
        raise
    ds.attrs["kind"] = kind
    if cache_file is not None:
        try:
            write_cache(ds, cache_file, cfg, kind)
        except OSError:
            pass  # not writable from here (e.g. a remote worker): the client writes it
    return {"status": "ok", "ds": ds}


def content_hash(ds: xr.Dataset) -> str:
    """sha256 of a dataset's arrays (every variable and coordinate: name, dims, float64 values), the same
    before writing and after reading back a netCDF file."""
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        vals = np.asarray(var.values)
        if np.issubdtype(vals.dtype, np.number) or vals.dtype == bool:
            data = np.ascontiguousarray(vals, dtype="<f8").tobytes()
        else:
            data = json.dumps([str(v) for v in vals.ravel()]).encode("utf-8")
        h.update(json.dumps([name, list(var.dims), list(vals.shape)]).encode("utf-8") + b"\0" + data + b"\0")
    return h.hexdigest()


def write_cache(ds: xr.Dataset, path: str | Path, cfg: Config, kind: str) -> Path:
    """Write a task's result atomically, with the attributes ``task_sha256`` (:func:`task_hash`) and
    ``content_sha256`` (:func:`content_hash`) that :func:`cache_problem` checks."""
    from .results import write_dataset

    out = ds.copy(deep=False)
    out.attrs = {**ds.attrs, "task_sha256": task_hash(cfg, kind), "content_sha256": content_hash(ds)}
    return write_dataset(out, path, cfg)


def cache_problem(ds: xr.Dataset, cfg: Config, kind: str) -> str:
    """Why a cache file's dataset is not this task's result ('' when it is): task hash, content hash,
    time grid, seeds, finiteness."""
    from .results import check_finite

    if ds.attrs.get("task_sha256") != task_hash(cfg, kind):
        return "written for another task (or by an older version)"
    if ds.attrs.get("content_sha256") != content_hash(ds):
        return "its values do not match their hash (edited or corrupted)"
    want = run.cfg_grid(cfg).times(cfg.dynamics["t_max"])
    got = np.asarray(ds["time"].values, dtype=float) if "time" in ds.coords else np.zeros(0)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=1e-12 * max(1.0, float(want[-1]))):
        return f"its time grid ({got.size} times) is not the point's ({want.size} times up to t = {want[-1]:g})"
    if kind == SIMULATION and ds.sizes.get("seed") != cfg.simulation["seeds"]:
        return f"it has {ds.sizes.get('seed', 0)} seeds, the point {cfg.simulation['seeds']}"
    try:
        check_finite(ds, "it")
    except Diverged as e:
        return str(e)
    return ""


def _read_cache(path: Path, cfg: Config, kind: str) -> tuple[xr.Dataset | None, str]:
    """``(the cached result, '')``, or ``(None, why it cannot be used)`` (``''`` when there is none);
    a file that cannot be used is removed, so that the recomputed result replaces it."""
    from .results import read_dataset

    if not path.exists():
        return None, ""
    try:
        ds = read_dataset(path)
        why = cache_problem(ds, cfg, kind)
    except Exception as e:  # noqa: BLE001 - unreadable/corrupt cache file: recompute
        why = f"unreadable ({type(e).__name__})"
    if not why:
        return ds, ""
    try:
        path.unlink()
    except OSError:
        pass
    return None, why


# --------------------------------------------------------------------------------------------
# Execution backends
# --------------------------------------------------------------------------------------------
@dataclass
class _Task:
    point: int
    kind: str
    config: Config
    cache: Path
    label: str = ""

    @property
    def toml(self) -> str:
        return self.config.to_toml()


def _run_local(tasks: list[_Task], done: Callable[[_Task, dict], None], workers: int) -> None:
    """The tasks in this process (``workers = 1``) or in a spawn pool, each handed to ``done`` as it ends."""
    parallel.map_as_completed(run_task, [(t.toml, t.kind, str(t.cache), t.config.trust_code) for t in tasks],
                              workers=workers,
                              on_result=lambda i, res: done(tasks[i], res))


def _run_dask(tasks: list[_Task], done: Callable[[_Task, dict], None], scheduler: Any) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("--scheduler needs dask.distributed: pip install 'sgd-dmft[dask]'") from e

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futs = {}
    try:
        for t in tasks:
            f = client.submit(run_task, t.toml, t.kind, str(t.cache), trust_code=t.config.trust_code, retries=2, pure=False,
                              key=f"sgd-dmft-{t.kind}-{task_hash(t.toml, t.kind)}")
            futs[f] = t
        for f in as_completed(list(futs)):
            try:
                res = f.result()
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ != "KilledWorker":
                    raise
                t = futs[f]
                raise SgdDmftError(f"sweep: the Dask worker running grid point {t.label} ({t.kind}) died repeatedly "
                                   f"(KilledWorker: out of memory or killed?); finished tasks are cached, rerun to "
                                   f"resume") from None
            done(futs[f], res)
    except BaseException:
        client.cancel(list(futs))
        raise
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------------------------
# Gathering
# --------------------------------------------------------------------------------------------
def _with_index_coords(ds: xr.Dataset) -> xr.Dataset:
    missing = {d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.coords}
    return ds.assign_coords(missing) if missing else ds


def gather(grid: _Grid, results: Sequence[xr.Dataset | str], kind: str) -> xr.Dataset:
    """One Dataset with the swept keys as leading dims; a str entry is a divergence message."""
    ok = [(i, _with_index_coords(r)) for i, r in enumerate(results) if isinstance(r, xr.Dataset)]
    shape = grid.shape
    coords: dict[str, Any] = {}
    for dim, key, vals in zip(grid.dims, grid.keys, grid.coords):
        coords[dim] = xr.Variable((dim,), np.asarray(vals), attrs={"config_key": key})
    data: dict[str, Any] = {}
    if ok:
        aligned = xr.align(*[d for _, d in ok], join="outer")
        longest = max(d.sizes.get("time", 0) for _, d in ok)
        if aligned[0].sizes.get("time", 0) != longest:
            raise ValueError(f"{kind} sweep: the grid points' time grids do not align (union has "
                             f"{aligned[0].sizes['time']} points, longest run {longest}); is dt swept?")
        names: list[str] = []
        for d in aligned:
            names += [v for v in d.data_vars if v not in names]
        for c in aligned[0].coords:
            coords[c] = aligned[0][c].variable
        for v in names:
            proto = next(d[v] for d in aligned if v in d)
            arr = np.full(shape + proto.shape, np.nan)
            for (i, _), d in zip(ok, aligned):
                if v in d:
                    arr[grid.points[i]] = np.asarray(d[v].transpose(*proto.dims).values, dtype=float)
            data[v] = xr.Variable(tuple(grid.dims) + proto.dims, arr, attrs=dict(proto.attrs))
        wall = np.full(shape, np.nan)
        for i, d in ok:
            wall[grid.points[i]] = float(d.attrs.get("wall_time_s", np.nan))
        data["wall_time_s"] = xr.Variable(tuple(grid.dims), wall, attrs={"description": "wall time of the task (s)"})
    div = np.zeros(shape, dtype=np.int8)
    msgs = []
    for i, r in enumerate(results):
        if isinstance(r, str):
            div[grid.points[i]] = 1
            pt = {dim: _jsonable(grid.coords[j][grid.points[i][j]]) for j, dim in enumerate(grid.dims)}
            msgs.append({"point": pt, "message": r})
    data["diverged"] = xr.Variable(tuple(grid.dims), div,
                                   attrs={"description": "1 where the run diverged (values NaN there)"})
    out = xr.Dataset(data, coords=coords)
    out.attrs.update(
        kind=f"{kind}-sweep",
        sweep_keys=json.dumps(grid.keys),
        sweep_dims=json.dumps(grid.dims),
        n_points=len(results),
        n_diverged=len(msgs),
        diverged_points=json.dumps(msgs),
        sgd_dmft_version=__version__,
    )
    return out


def _jsonable(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _write_sweep(ds: xr.Dataset, path: Path, config: Config) -> Path:
    from .provenance import provenance_attrs
    from .results import atomic_write, clean_attrs

    out = ds.copy(deep=False)
    a = dict(ds.attrs)
    a["config_toml"] = config.to_toml()
    a.update(provenance_attrs())
    a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    out.attrs = clean_attrs(a)
    for name in list(out.variables):
        out[name].attrs = clean_attrs(out[name].attrs)
    return atomic_write(path, lambda tmp: out.to_netcdf(tmp, mode="w", engine="netcdf4"))


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------
def plot_sweep(theory: xr.Dataset, sim: xr.Dataset | None, path: str | Path, var: str = "test_loss") -> Path:
    """``sweep.png``: ``var`` vs t, one curve per grid point; its final value vs the first swept key; the
    theory-vs-simulation ``max_t |z|`` per point when simulations were run (:func:`sgd_dmft.plot.sweep_figure`)."""
    from . import plot

    return plot.plot_sweep(theory, sim, path, var)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def default_workers() -> int:
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
        _remove_temporaries(todo)
    theory = gather(g, results[THEORY], THEORY)
    sim = gather(g, results[SIMULATION], SIMULATION) if simulate else None
    _publish_sweep(out, config, theory, sim)
    return theory


def _publish_sweep(out: Path, config: Config, theory: xr.Dataset, sim: xr.Dataset | None) -> None:
    """sweep.nc (+ sweep_sim.nc) and sweep.png published as one set (results.write_result_set): a
    failed plot leaves the previous set whole; the cache is kept."""
    from .results import SWEEP_FILES, write_result_set

    writers = {"sweep.nc": lambda p: _write_sweep(theory, p, config)}
    if sim is not None:
        writers["sweep_sim.nc"] = lambda p: _write_sweep(sim, p, config)
    writers["sweep.png"] = lambda p: plot_sweep(theory, sim, p)
    write_result_set(out, writers, owned=SWEEP_FILES)


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


def _from_cache(g: _Grid, kinds: Sequence[str], out: Path,
                announce: Callable[[str], Any]) -> tuple[dict[str, list[Any]], list[_Task]]:
    """``({kind: [cached Dataset or None per point]}, the tasks still to run)``."""
    results: dict[str, list[Any]] = {k: [None] * len(g.points) for k in kinds}
    todo: list[_Task] = []
    for kind in kinds:
        for i, cfg in enumerate(g.configs):
            p = cache_path(out, cfg, kind)
            ds, why = _read_cache(p, cfg, kind)
            if ds is not None:
                results[kind][i] = ds
            else:
                label = _label(g.keys, [g.coords[j][k] for j, k in enumerate(g.points[i])])
                if why:
                    announce(f"note: cache file {p.name} of grid point {label} ({kind}) is not used: {why}; "
                             f"recomputing")
                todo.append(_Task(i, kind, cfg, p, label))
    return results, todo


def _check_budgets(todo: list[_Task], force: bool) -> None:
    """Every task's up-front checks before any runs; a stability refusal is left to the task (NaN point)."""
    for t in todo:
        exp = run.experiment(t.config)
        try:
            if t.kind == THEORY:
                run.check_theory(exp, bool(t.config.solver["extrapolate"] and exp.law is not None
                                           and run.extrapolable(exp.law, t.config)), force)
            else:
                run.check_simulation(exp, force)
        except Diverged:
            pass
        except SgdDmftError as e:
            raise type(e)(f"grid point {t.label} ({t.kind}): {e}") from None


def _remove_temporaries(tasks: list[_Task]) -> None:
    """Temporary cache files of these tasks (``.<hash>.nc.*.tmp``, left by a task killed mid-write)."""
    for t in tasks:
        for tmp in t.cache.parent.glob(f".{t.cache.name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def _execute(todo: list[_Task], results: dict[str, list[Any]], total: int, scheduler: Any, workers: int,
             progress: bool, callback: Callable[[int, str, str], None] | None) -> None:
    """Run the tasks (Dask, a local pool or this process), filling ``results`` and the cache."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="task", disable=not progress)
    n_done = [0]

    def done(t: _Task, res: dict) -> None:
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
                _run_dask(todo, done, scheduler)
            else:
                _run_local(todo, done, workers)
    finally:
        bar.close()


def load_sweep(out_dir: str | Path) -> tuple[xr.Dataset, xr.Dataset | None]:
    """``(theory, simulation or None)`` from a sweep directory."""
    from .results import read_dataset

    out = Path(out_dir)
    sim = out / "sweep_sim.nc"
    return read_dataset(out / "sweep.nc"), (read_dataset(sim) if sim.exists() else None)
