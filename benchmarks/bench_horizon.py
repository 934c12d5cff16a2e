"""Benchmarks of the time axis (issue 19): horizons, the Richardson levels' cost, the cost model.

Each solve runs in a fresh spawned process (wall time without tracing, peak resident memory of that
process):

1. ``horizon``: logistic SGD (delta 2, ridge 0.1, init_scale 0.5, gamma 0.5) at 2, 10, 50 and 100
   epochs (t = 1, 5, 25, 50, 500): the default DMFT answer (the dt -> 0 limit, 8000 paths in 8 replicas,
   16000 at 100 epochs, 2 workers) against the package's simulator at d = 4000 with 8 seeds and batch 8
   (true mini-batch SGD, the same limit), wall times side by side, the DMFT's worst relative
   ``s.e. + dt error`` over t > 0 and the largest gap between the two in combined standard errors.
   The grid and window are the CLI defaults' choice (``default_recipe``: dt 0.01; from 50 epochs
   ``solver.compress = 'auto'`` grades the grid up to gamma / 4, at 1000 also a 30-time-unit response
   window). Peak memory: this process plus the workers' (two at a time).
   The max z against the simulation is dominated by its 8 data sets' offset in the stationary test
   loss (at 50 epochs, 16000 paths: z +1.1 / -2.7 / -1.2 at d = 2000 / 4000 / 8000), so it grows as the
   DMFT's own standard error shrinks.
2. ``requests``: issue 19's table of ordinary requests: each as a user makes it (the default answer,
   the dt -> 0 limit) against the raw recursion at the same dt, the estimate printed before the run
   and whether the cost limit refuses it. (``levels``, by hand: the same ratio on logistic SGD.)
3. ``cost-model``: estimated (``planning.estimate_seconds``, ``planning.estimate_memory``) against
   measured wall time and memory for raw and extrapolated solves, sparse (SGD) and dense (GD, SME)
   laws, k = 2, the exact path and a graded grid (``workers = 1`` here); memory: the process's RSS at
   the start plus the data estimate, against its peak.

Run: ``python benchmarks/bench_horizon.py`` (part of ``make bench``).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

HORIZON_DT = 0.02
GAMMA = 0.5


def _problem(name: str):
    from sgd_dmft import problem as P

    if name == "logistic":
        return P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    if name == "committee":
        return P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.3)
    if name == "linear":
        return P.Problem(P.linear(0.5), delta=0.5, ridge=0.0, init_scale=0.0)
    if name == "phase":
        return P.Problem(P.phase_retrieval(), delta=3.0, ridge=0.0, init_scale=0.3, init_overlap=0.3)
    if name == "staircase":
        from sgd_dmft.models.presets import two_layer

        return P.Problem(two_layer(2, 2, "tanh", teacher="z1 + he3(z2)/sqrt(6)"), delta=2.0, ridge=0.0)
    if name == "logistic-ridge0":
        return P.Problem(P.logistic(), delta=2.0, ridge=0.0, init_scale=0.5)
    raise ValueError(name)


def _solve_job(pname: str, alg: str, dt: float, t_max: float, paths: int, replicas: int, extrapolate,
               workers: int = 1, grid: dict | None = None, keep_kernels: bool = False, gamma: float = GAMMA,
               window: float | None = None) -> dict:
    """One timed solve in this (fresh) process, with the planner's estimates of it."""
    import resource

    from sgd_dmft import algorithms, dmft, laws
    from sgd_dmft.dmft import planning

    prob = _problem(pname)
    import warnings

    with warnings.catch_warnings():  # load the kernels (the windowed ones too: a short window warns)
        warnings.simplefilter("ignore")
        for w in (None, 0.2):
            dmft.solve(_problem("logistic"), laws.SGD(0.1, 0.5), t_max=0.3, paths=40, replicas=2, response_window=w)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    law = algorithms.make_law(alg, dt, gamma, **(grid or {}))
    ex = bool(law.continuous_time) if extrapolate is None else bool(extrapolate)
    proc = dmft.choose_process(prob, law, window=window)
    est_s = planning.estimate_seconds(prob, law, t_max, paths, replicas, None if window is None else proc,
                                      extrapolate=ex, workers=workers, keep_kernels=keep_kernels)
    finest = dmft.extrapolate.levels(law, prob).fine if ex else law
    est_mem = planning.plan_run(prob, finest, t_max, paths, replicas, 8.0, keep_kernels, workers, proc)[3]
    t0 = time.perf_counter()
    ds = dmft.solve(prob, law, t_max=t_max, paths=paths, replicas=replicas, extrapolate=extrapolate,
                    keep_kernels=keep_kernels, workers=workers, response_window=window)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker process
    curves = ds[[v for v in ("train_loss", "test_loss", "train_loss_stderr", "test_loss_stderr",
                             "train_loss_dt_error", "test_loss_dt_error", "train_loss_raw", "test_loss_raw") if v in ds]].load()
    pooled = int(ds.attrs.get("workers", 1)) if child > 0 else 0  # worker processes that ran (short runs: none)
    return dict(wall_s=wall, est_s=est_s, peak_mib=peak, base_mib=base, over_start_mib=peak - base, est_mib=est_mem / 2**20,
                total_mib=peak + pooled * child, interpreters=1 + pooled,
                T=ds.sizes["time"] - 1, levels=ds.attrs.get("levels", "raw"), curves=curves)


def _sim_job(t_max: float, d: int, seeds: int, batch: int) -> dict:
    from sgd_dmft.simulate import simulate

    t0 = time.perf_counter()
    sim = simulate(_problem("logistic"), "sgd", t_max=t_max, dt=HORIZON_DT * max(1, round(t_max / 5)), d=d,
                   gamma=GAMMA, batch=batch, seeds=seeds)
    return dict(wall_s=time.perf_counter() - t0, sim=sim.load())


def _fresh(fn, *args, **kw):
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return ex.submit(fn, *args, **kw).result()


def _worst_rel(ds) -> float:
    """Worst over t > 0 of (s.e. + dt error) / |loss|, train and test."""
    worst = 0.0
    for v in ("train_loss", "test_loss"):
        err = ds[v + "_stderr"].values[1:] + (ds[v + "_dt_error"].values[1:] if v + "_dt_error" in ds else 0.0)
        worst = max(worst, float(np.max(err / np.abs(ds[v].values[1:]))))
    return worst


def _max_z(theory, sim) -> float:
    """Largest gap theory - simulation mean over the simulation's record times, in combined s.e."""
    t = sim.time.values[1:]
    th = theory.interp(time=t)
    z = 0.0
    for v in ("train_loss", "test_loss"):
        s = sim[v].values[:, 1:]
        se = np.hypot(s.std(0, ddof=1) / np.sqrt(s.shape[0]), th[v + "_stderr"].values)
        z = max(z, float(np.max(np.abs(s.mean(0) - th[v].values) / se)))
    return z


# 100 epochs with 16000 paths for the 1 % goal (the CLI default 8000: about 1.3 %); the rest the CLI defaults
HORIZON_PATHS = {100: 16000}


def default_recipe(t_max: float, paths: int) -> tuple[float, dict | None, float | None]:
    """``(dt, grid, window)`` the CLI defaults (examples/demo.toml, dt 0.01) run for logistic SGD at ``t_max``:
    ``solver.compress = 'auto'`` grades a long run's grid and, if still long, sets the response window."""
    from sgd_dmft import run
    from sgd_dmft.config import parse_config

    cfg = parse_config({"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
                        "dynamics": {"algorithm": "sgd", "gamma": GAMMA, "dt": 0.01, "t_max": t_max},
                        "solver": {"paths": paths, "replicas": 8}})
    exp = run.compress(run.experiment(cfg))
    law = exp.law
    grid = dict(growth=law.growth, dt_max=law.dt_max) if law.graded else None
    return law.dt, grid, exp.config.solver["response_window"] or None


def horizon(epochs=(2, 10, 50, 100, 1000)) -> list[dict]:
    """The default answer at each horizon (what the CLI runs: compressed past 60 s on one core), kernels
    kept on 501 times as the CLI keeps them, against the d = 4000 simulation."""
    from sgd_dmft.results import KERNEL_POINTS

    rows = []
    for ep in epochs:
        t_max, paths = ep * GAMMA, HORIZON_PATHS.get(ep, 8000)
        dt, grid, window = default_recipe(t_max, paths)
        th = _fresh(_solve_job, "logistic", "sgd", dt, t_max, paths, 8, None, 2, grid, KERNEL_POINTS, GAMMA, window)
        sim = _fresh(_sim_job, t_max, 4000, 8, 8)
        rows.append(dict(bench="horizon", epochs=ep, t_max=t_max, T=th["T"], paths=paths,
                         grid=f"dt {dt}" + (f" growth {grid['growth']} dt_max {grid['dt_max']}" if grid else ""),
                         window=window or "-", dmft_s=round(th["wall_s"], 1), sim_d4000_s=round(sim["wall_s"], 1),
                         dmft_faster=bool(th["wall_s"] < sim["wall_s"]),
                         dmft_worst_rel_err=f"{_worst_rel(th['curves']):.2%}", goal="1 %",
                         max_z_vs_sim=round(_max_z(th["curves"], sim["sim"]), 2),
                         est_over_meas=round(th["est_s"] / th["wall_s"], 2),
                         # memory: each interpreter's start RSS (this one's; the workers' if they ran) plus the
                         # plan's data estimate, against the peaks of all of them
                         est_mem_over_meas=round((th["interpreters"] * th["base_mib"] + th["est_mib"]) / th["total_mib"], 2),
                         levels=th["levels"],
                         peak_mib_all_processes=round(th["total_mib"])))
    return rows


def gf_recipe(alg: str, t_max: float = 1000.0, paths: int = 8000) -> tuple[str, float, dict | None, float | None]:
    """``(law solved, dt, grid, window)`` the CLI defaults (dt 0.01, gamma 0.5) run for logistic GF / GD / SME at ``t_max``:
    ``solver.compress = 'auto'`` grades the grid up to the Hessian bound's cap (``compression.step_cap``) and sets
    the response window; a compressed GD is solved as its dt -> 0 limit, the GF law (``compression.gd_limit``)."""
    from sgd_dmft import run
    from sgd_dmft.config import parse_config

    cfg = parse_config({"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
                        "dynamics": {"algorithm": alg, "dt": 0.01, "t_max": t_max},
                        "solver": {"paths": paths, "replicas": 8}})
    exp = run.gd_limit(run.compress(run.experiment(cfg)))
    law = exp.law
    grid = dict(growth=law.growth, dt_max=law.dt_max) if law.graded else None
    solved = "gf" if alg == "gd" and exp.extrapolate else alg  # (a compressed GD: the GF law, named gd)
    return solved, law.dt, grid, exp.config.solver["response_window"] or None


def gradient_flow() -> list[dict]:
    """Logistic GF and GD to t = 1000 (1e5 steps of dt 0.01), and SME (gamma 0.5) to t = 100, as the CLI defaults run
    them (``gf_recipe``; the SME row checks the estimates of a windowed stochastic dense law): a graded
    grid up to the Hessian bound's cap, nested levels (the dt -> 0 limit; GD: that limit, its losses' dt error
    including the GD recursion's distance from it, ``compression.gd_errors``), response window; kernels kept on
    501 times as the CLI keeps them."""
    from sgd_dmft.compression import gd_errors
    from sgd_dmft.results import KERNEL_POINTS

    rows, done = [], {}
    for alg, t_max in (("gf", 1000.0), ("gd", 1000.0), ("sme", 100.0)):
        recipe = gf_recipe(alg, t_max)
        solved, dt, grid, window = recipe
        key = repr(recipe)  # (a compressed GD solves GF's recursion: the same run, its errors counted as GD's)
        r = done[key] = done.get(key) or _fresh(_solve_job, "logistic", solved, dt, t_max, 8000, 8, solved != "gd",
                                                2, grid, KERNEL_POINTS, GAMMA, window)
        curves = gd_errors(r["curves"].copy()) if alg == "gd" else r["curves"]
        what = (f"logistic {alg.upper()} t={t_max:g}, dt {dt}" + (f" growth {grid['growth']} dt_max {grid['dt_max']}"
                                                                  if grid else "") + f", window {window or '-'}, 8000 paths")
        rows.append(dict(bench="horizon", what=what, T=r["T"], dmft_s=round(r["wall_s"], 1),
                         dmft_worst_rel_err=f"{_worst_rel(curves):.2%}", goal="1 % in minutes" if alg != "sme" else "-",
                         est_over_meas=round(r["est_s"] / r["wall_s"], 2), levels=r["levels"],
                         est_mem_over_meas=round((r["interpreters"] * r["base_mib"] + r["est_mib"]) / r["total_mib"], 2),
                         peak_mib_all_processes=round(r["total_mib"])))
    return rows


def levels_cost() -> list[dict]:
    rows = []
    for T in (500, 2000):
        dt = 0.01
        raw = _fresh(_solve_job, "logistic", "sgd", dt, T * dt, 8000, 8, False)
        lim = _fresh(_solve_job, "logistic", "sgd", dt, T * dt, 8000, 8, None)
        rows.append(dict(bench="levels", what=f"logistic SGD gamma 0.5 dt {dt} T={T}, 8000 paths", raw_s=round(raw["wall_s"], 1),
                         limit_s=round(lim["wall_s"], 1), ratio=round(lim["wall_s"] / raw["wall_s"], 2),
                         levels=lim["levels"], goal="ratio <= 1.5"))
    return rows


COST_CASES = (  # (problem, algorithm, dt, t_max, paths, replicas, extrapolate, grid)
    ("logistic", "sgd", 0.01, 5.0, 8000, 8, False, None),
    ("logistic", "sgd", 0.01, 5.0, 8000, 8, None, None),
    ("logistic", "sgd", 0.01, 20.0, 8000, 8, False, None),
    ("logistic", "sgd", 0.01, 10.0, 8000, 8, None, None),
    ("logistic", "gd", 0.02, 4.0, 2000, 4, False, None),
    ("logistic", "sme", 0.02, 4.0, 4000, 4, None, None),
    ("committee", "sgd", 0.02, 4.0, 4000, 4, None, None),
    ("committee", "gd", 0.04, 4.0, 1000, 4, False, None),
    ("linear", "sgd", 0.01, 10.0, 8000, 8, None, None),  # the exact path: paths ignored
    ("logistic", "sgd", 0.005, 20.0, 4000, 4, False, dict(growth=0.05, dt_max=0.05)),
)


def cost_model(cases=COST_CASES) -> list[dict]:
    rows = []
    for pname, alg, dt, t_max, paths, reps, ex, grid in cases:
        r = _fresh(_solve_job, pname, alg, dt, t_max, paths, reps, ex, 1, grid, True)
        rows.append(dict(bench="cost-model", problem=pname, algorithm=alg + (" graded" if grid else ""), dt=dt,
                         t_max=t_max, T=r["T"], paths=paths, levels=r["levels"], wall_s=round(r["wall_s"], 2),
                         est_s=round(r["est_s"], 2), time_est_over_meas=round(r["est_s"] / r["wall_s"], 2),
                         mem_est_mib=round(r["est_mib"]), mem_over_start_mib=round(r["over_start_mib"]),
                         # the process: RSS at start (interpreter, kernels) + the data estimate, against its peak
                         # (the data alone is compared where it passes the start, a compile spike otherwise)
                         mem_est_over_meas=round((r["peak_mib"] - r["over_start_mib"] + r["est_mib"]) / r["peak_mib"], 2)))
    return rows


# issue 19's table of ordinary requests (CLI defaults otherwise: 8000 paths in 8 replicas):
# (what, problem, gamma, dt, t_max, paths, replicas, printed estimate on main before)
REQUESTS = (
    ("logistic SGD gamma 0.5 dt 0.01 t 10 (20 epochs)", "logistic", 0.5, 0.01, 10.0, 8000, 8, "~2.7 h, refused"),
    ("the same, t 20 (40 epochs)", "logistic", 0.5, 0.01, 20.0, 8000, 8, "~18.1 h, refused"),
    ("phase retrieval gamma 0.02 dt 0.002 t 1", "phase", 0.02, 0.002, 1.0, 8000, 8, "~1.34 h, refused"),
    ("two_layer tanh staircase gamma 0.5 dt 0.02 t 5, 32000 paths", "staircase", 0.5, 0.02, 5.0, 32000, 16,
     "~1.72 h, refused"),
    ("linear SGD delta 0.5 gamma 1 dt 0.01 t 20 (exact path)", "linear", 1.0, 0.01, 20.0, 8000, 8, "~1.37 h, refused"),
    ("logistic SGD gamma 1 dt 0.002 t 2 (T = 1000)", "logistic", 1.0, 0.002, 2.0, 8000, 8, "-, 10x the raw time"),
    ("logistic ridge 0 SGD gamma 50 dt 5 t 50", "logistic-ridge0", 50.0, 5.0, 50.0, 8000, 8, "-, SolverDiverged at 2 dt"),
)


def requests() -> list[dict]:
    """Each request as a user makes it (the default answer, one core) against the raw recursion at the
    same dt: wall times, their ratio, the estimate printed before the run, the cost limit's verdict."""
    from sgd_dmft.dmft import planning

    rows = []
    for what, pname, gamma, dt, t_max, paths, reps, before in REQUESTS:
        lim = _fresh(_solve_job, pname, "sgd", dt, t_max, paths, reps, None, 1, None, False, gamma)
        raw = _fresh(_solve_job, pname, "sgd", dt, t_max, paths, reps, False, 1, None, False, gamma)
        refused = lim["est_s"] * planning.RATE > planning.COST_LIMIT
        rows.append(dict(bench="requests", what=what, before=before, est_s=round(lim["est_s"], 1),
                         refused=refused, default_s=round(lim["wall_s"], 1), raw_s=round(raw["wall_s"], 1),
                         ratio=round(lim["wall_s"] / raw["wall_s"], 2), levels=lim["levels"],
                         worst_rel_err=f"{_worst_rel(lim['curves']):.2%}",
                         est_over_meas=round(lim["est_s"] / lim["wall_s"], 2)))
    return rows


def run(quick: bool = False) -> list[dict]:
    if quick:
        return cost_model(COST_CASES[:2])
    return cost_model() + requests() + horizon() + gradient_flow()


if __name__ == "__main__":
    groups = {"horizon": horizon, "levels": levels_cost, "cost": cost_model, "requests": requests, "gf": gradient_flow}
    pick = [a for a in sys.argv[1:] if a in groups]
    for g in pick or groups:
        for r in groups[g]():
            print("  ".join(f"{k}={v}" for k, v in r.items()))
