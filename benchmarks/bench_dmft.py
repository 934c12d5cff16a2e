"""Benchmarks of the DMFT solver.

Every solve runs in a fresh spawned process: wall time without any tracing, peak resident memory of
that process (``ru_maxrss``, interpreter and libraries included).

1. Scaling: wall time and peak memory against the grid size T and
   the number of paths, for SGD, GD (gradient flow) and SME, on `logistic` and `committee` (erf,
   k = k* = 2); the fitted growth exponent in T; the Monte Carlo standard error reached.
2. The goal of the solver issue: T = 500 grid steps at 1% standard error on train_loss (logistic SGD).
3. T = 1000 at 1% for logistic SGD.
4. The default problem of SPOC-group/DMFT-integration (linear, delta 3, ridge 0.5, noise 0,
   init_overlap 0.2, init_scale 1, GD dt = 0.1, 50 steps): time and max |M(t) - exact| against the
   Marchenko-Pastur closed form (exact.gd_linear); and the same problem with the logistic loss, where
   Monte Carlo is unavoidable, with its M standard error.
5. Time to a given accuracy: DMFT at 1% standard error against a finite-d simulation (d = 4000,
   8 seeds) of the same problem, with the simulation's standard error.
6. Long horizons on graded grids (``dt_m = clip(growth t_m, dt, dt_max)``): the number of grid steps
   against the uniform grid of the initial ``dt`` it replaces, wall time, peak memory, and the error:
   linear GF to t = 1000 against the Marchenko-Pastur closed form; logistic GD and SGD against the
   uniform fine grid on a shorter horizon (gap in combined standard errors).

Run: ``python benchmarks/bench_dmft.py`` (``--quick`` for a smaller sweep).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from sgd_dmft import algorithms, dmft, exact, laws
from sgd_dmft import problem as P
from sgd_dmft.simulate import simulate

LOGISTIC = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
COMMITTEE = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.3)
SPOC_LINEAR = P.Problem(P.linear(0.0), delta=3.0, ridge=0.5, init_scale=1.0, init_overlap=0.2)
SPOC_LOGISTIC = P.Problem(P.logistic(), delta=3.0, ridge=0.5, init_scale=1.0, init_overlap=0.2)
PROBLEMS = {"logistic": LOGISTIC, "committee-erf-k2": COMMITTEE, "spoc-linear": SPOC_LINEAR,
            "spoc-logistic": SPOC_LOGISTIC}
T_MAX = 4.0


LONG_LINEAR = P.Problem(P.linear(0.3), delta=0.5, ridge=0.01, init_scale=0.5, init_overlap=0.2)
PROBLEMS["long-linear"] = LONG_LINEAR


def _job(pname: str, alg: str, dt: float, gamma: float, t_max: float, paths: int, replicas: int,
         grid: dict | None = None, with_data: bool = False) -> dict:
    """One timed solve in a fresh process: wall time, peak RSS of that process, and the errors."""
    import resource

    prob = PROBLEMS[pname]
    dmft.solve(LOGISTIC, laws.SGD(0.1, 0.5), t_max=0.3, paths=40, replicas=2)  # load the numba kernels
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    law = algorithms.make_law(alg, dt, gamma, **(grid or {}))
    from sgd_dmft.dmft import planning

    est_s = planning.estimate_seconds(prob, law, t_max, paths, replicas)
    est_mib = planning.plan_replicas(prob, law, t_max, paths, replicas, 8.0, not with_data)[2] / 2**20
    t0 = time.perf_counter()
    march = dmft.ExactLinearPath() if prob.model.linear_square else None  # the march, not the closed form
    ds = dmft.solve(prob, law, t_max=t_max, paths=paths, replicas=replicas, keep_kernels=not with_data,
                    extrapolate=False, process=march)  # the raw recursion: the rows compare solver speed
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = dict(wall_s=round(wall, 2), peak_rss_mib=round(peak, 1), rss_over_start_mib=round(peak - base, 1),
               rel_se_train=round(_rel_se(ds), 4), max_se_M=float(f"{float(ds.M_stderr.max()):.2e}"),
               T=ds.sizes["time"] - 1, est_over_meas_time=round(est_s / wall, 2),
               est_over_meas_mem=round((base + est_mib) / peak, 2))  # the process: interpreter at start + data
    if pname == "spoc-linear":
        ref = exact.gd_linear(prob, dt, int(round(t_max / dt)))
        out["max_abs_err_M"] = float(f"{float(np.max(np.abs(ds.M.values - ref.M.values))):.2e}")
    if with_data:
        out["data"] = ds[["train_loss", "test_loss", "train_loss_stderr", "test_loss_stderr"]].load()
    return out


def _measure(pname: str, alg: str, dt: float, gamma: float, t_max: float, paths: int, replicas: int,
             grid: dict | None = None, with_data: bool = False) -> dict:
    """Run :func:`_job` in a fresh spawned process (clean peak memory, no tracing overhead)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return ex.submit(_job, pname, alg, dt, gamma, t_max, paths, replicas, grid, with_data).result()


def _rel_se(ds) -> float:
    """Largest relative standard error of train_loss over the second half of the horizon."""
    T = ds.sizes["time"]
    sl = slice(T // 2, T)
    return float(np.max(ds.train_loss_stderr.values[sl] / np.abs(ds.train_loss.values[sl])))


def scaling(quick: bool = False) -> list[dict]:
    rows = []
    Ts = (50, 100, 200) if quick else (100, 200, 400)
    for pname in ("logistic", "committee-erf-k2"):
        for alg in ("sgd", "gd", "sme"):
            times = []
            for T in Ts:
                paths = 4000 if alg != "gd" else 1000
                if pname.startswith("committee") and alg in ("gd", "sme") and T > 200:
                    continue  # dense O(P T^3 k^3) tangents at k = 2: skip the largest size
                r = _measure(pname, alg, T_MAX / T, 0.5, T_MAX, paths, 4)
                times.append((T, r["wall_s"]))
                rows.append(dict(bench="dmft-scaling", problem=pname, algorithm=alg, T=T, paths=paths, replicas=4,
                                 **{k: r[k] for k in ("wall_s", "peak_rss_mib", "rel_se_train", "est_over_meas_time",
                                                  "est_over_meas_mem")}))
            if len(times) >= 2:
                lt = np.log([t for t, _ in times])
                lw = np.log([w for _, w in times])
                expo = float(np.polyfit(lt[-2:], lw[-2:], 1)[0])
                rows.append(dict(bench="dmft-exponent", problem=pname, algorithm=alg,
                                 exponent_T_last_doubling=round(expo, 2), Ts=",".join(str(t) for t, _ in times)))
    for paths in ((2000, 8000) if quick else (2000, 8000, 32000)):
        r = _measure("logistic", "sgd", T_MAX / 200, 0.5, T_MAX, paths, 8)
        rows.append(dict(bench="dmft-paths", problem="logistic", algorithm="sgd", T=200, paths=paths, replicas=8,
                         **{k: r[k] for k in ("wall_s", "peak_rss_mib", "rel_se_train", "est_over_meas_time",
                                                  "est_over_meas_mem")}))
    return rows


def goals(quick: bool = False) -> list[dict]:
    rows = []
    for T, paths in ((500, 8000), (1000, 8000), (1000, 16000)):
        if quick and T > 500:
            continue
        r = _measure("logistic", "sgd", T_MAX / T, 0.5, T_MAX, paths, 8)
        rows.append(dict(bench="dmft-goal", problem="logistic", algorithm="sgd", T=T, paths=paths, replicas=8,
                         **{k: r[k] for k in ("wall_s", "peak_rss_mib", "rel_se_train", "est_over_meas_time",
                                                  "est_over_meas_mem")}))
    return rows


def spoc_default() -> list[dict]:
    """SPOC-group/DMFT-integration's default problem (their reported 172 s for M within 2e-3)."""
    lin = _measure("spoc-linear", "gd", 0.1, 1.0, 5.0, 2, 1)  # the exact path: paths ignored
    logi = _measure("spoc-logistic", "gd", 0.1, 1.0, 5.0, 48000, 8)
    return [
        dict(bench="spoc-default", problem="linear", algorithm="gd", T=50, paths=0, wall_s=lin["wall_s"],
             est_over_meas_time=lin["est_over_meas_time"],
             accuracy=f"max|M - exact| = {lin['max_abs_err_M']:.1e}", reference="172 s (M within 2e-3)"),
        dict(bench="spoc-default", problem="logistic", algorithm="gd", T=50, paths=48000, wall_s=logi["wall_s"],
             est_over_meas_time=logi["est_over_meas_time"], est_over_meas_mem=logi["est_over_meas_mem"],
             accuracy=f"max s.e.(M) = {logi['max_se_M']:.1e}", reference="172 s (M within 2e-3)"),
    ]


def time_to_accuracy() -> list[dict]:
    r = _measure("logistic", "sgd", 0.02, 0.5, T_MAX, 8000, 8)
    t0 = time.perf_counter()
    sim = simulate(LOGISTIC, "sgd", t_max=T_MAX, dt=0.02, d=4000, gamma=0.5, seeds=8)
    wall_s = time.perf_counter() - t0
    tr = sim.train_loss.values
    se_sim = float(np.max(tr.std(axis=0, ddof=1)[100:] / np.sqrt(tr.shape[0]) / tr.mean(axis=0)[100:]))
    return [
        dict(bench="time-to-accuracy", what="dmft T=200 paths=8000", wall_s=r["wall_s"], rel_se_train=r["rel_se_train"]),
        dict(bench="time-to-accuracy", what="simulation d=4000 seeds=8 (kappa=1)", wall_s=round(wall_s, 2),
             rel_se_train=round(se_sim, 4)),
    ]


def _max_z_gap(a, b) -> tuple[float, float]:
    """``(max |gap|, max |z|)`` of the losses of ``a`` against ``b`` interpolated at a's times."""
    keep = a.time.values <= b.time.values[-1]
    bi = b.interp(time=a.time.values[keep])
    gaps, zs = [], []
    for v in ("train_loss", "test_loss"):
        gap = a[v].values[keep] - bi[v].values
        se = np.hypot(a[v + "_stderr"].values[keep], bi[v + "_stderr"].values)
        gaps.append(np.max(np.abs(gap)))
        zs.append(np.max(np.abs(gap[1:]) / np.maximum(se[1:], 1e-12)))
    return round(float(max(gaps)), 4), round(float(max(zs)), 1)


def long_horizons(quick: bool = False) -> list[dict]:
    """Graded grids: grid steps used against the uniform grid of the initial dt they replace."""
    rows = []
    t_lin = 200.0 if quick else 1000.0
    g = dict(growth=0.01, dt_max=0.4)
    r = _measure("long-linear", "gd", 0.005, 0.0, t_lin, 2, 1, g, with_data=True)  # exact path: paths ignored
    ref = exact.gf_linear(LONG_LINEAR, r["data"].time.values)
    err = max(float(np.max(np.abs(r["data"][v].values - ref[v].values))) for v in ("train_loss", "test_loss"))
    rows.append(dict(bench="dmft-long-horizon", problem="linear delta=0.5 ridge=0.01", algorithm="gf (exact path)",
                     grid="dt 0.005 growth 0.01 dt_max 0.4", t_max=t_lin, T_graded=r["T"],
                     T_uniform_equivalent=int(round(t_lin / 0.005)), paths=0, wall_s=r["wall_s"],
                     peak_rss_mib=r["peak_rss_mib"], error=f"max|loss - GF closed form| = {err:.1e}"))
    # (alg, dt, gamma, grid, long horizon, paths, replicas; check horizon, check paths, check replicas)
    cases = [("gd", 0.02, 0.0, dict(growth=0.05, dt_max=0.5), 200.0, 4000, 4, 6.0, 16000, 8),
             ("sgd", 0.005, 0.5, dict(growth=0.05, dt_max=0.05), 100.0, 4000, 4, 1.0, 48000, 16)]
    for alg, dt, gamma, grid, t_long, paths, reps, t_check, cpaths, creps in cases:
        if quick:
            t_long = t_long / 4
        long = _measure("logistic", alg, dt, gamma, t_long, paths, reps, grid)
        gr = _measure("logistic", alg, dt, gamma, t_check, cpaths, creps, grid, with_data=True)
        fine = _measure("logistic", alg, dt, gamma, t_check, cpaths, creps, None, with_data=True)
        gap, z = _max_z_gap(gr["data"], fine["data"])
        rows.append(dict(bench="dmft-long-horizon", problem="logistic", algorithm=alg,
                         grid=f"dt {dt} growth {grid['growth']} dt_max {grid['dt_max']}", t_max=t_long,
                         T_graded=long["T"], T_uniform_equivalent=int(round(t_long / dt)), paths=paths,
                         wall_s=long["wall_s"], peak_rss_mib=long["peak_rss_mib"], rel_se_train=long["rel_se_train"],
                         est_over_meas_time=long["est_over_meas_time"], est_over_meas_mem=long["est_over_meas_mem"],
                         error=f"t<={t_check}: graded ({gr['T']} steps) vs uniform ({fine['T']} steps), "
                               f"{cpaths} paths: max|gap| {gap} (max z {z})"))
    return rows


def run(quick: bool = False) -> list[dict]:
    dmft.solve(LOGISTIC, laws.SGD(0.1, 0.5), t_max=0.5, paths=50, replicas=2)  # compile the numba kernels once
    return (scaling(quick) + goals(quick) + spoc_default() + long_horizons(quick)
            + ([] if quick else time_to_accuracy()))


def _print(rows: list[dict]) -> None:
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    if "--long" in sys.argv:  # only the long-horizon group
        _print(long_horizons(quick="--quick" in sys.argv))
    else:
        _print(run(quick="--quick" in sys.argv))
