"""Benchmarks of the accuracy goals (issue 10) and the population-loss cost (issue 11).

Each row runs in a fresh spawned process (bench_dmft._measure style) so that timings are clean:

1. ``dt-limit``: linear SGD at the user's ``dt = 0.01`` (delta 2, noise 0.5, ridge 0, t = 2.5) against
   the exact Poisson-limit risk (``exact.sgd_linear_poisson``), raw recursion and the default
   extrapolated limit, gamma in {0.5, 1, 1.5}; linear GF against the Marchenko-Pastur closed form.
2. ``phase-retrieval``: issue 10's case 2 (delta 3, ridge 0, init_overlap = init_scale = 0.3, SGD
   gamma 0.02, dt 0.002, t <= 1) with ``rtol = 0.02``, ``max_time_s = 120`` on 2 worker processes:
   wall time and the worst relative s.e. reached over t > 0.
3. ``runaway``: case 3 (tanh k = 2, teacher He3 = z^3 - 3z, delta 2, ridge 0, SGD gamma 0.5, dt 0.05,
   t <= 20) in replicas of 4000 paths: no runaway, trace Q(20).
4. ``time-to-0.5%``: logistic SGD (delta 2, ridge 0.1, gamma 1, t <= 2) and the erf committee
   (k = k* = 2, gamma 0.5, t <= 2) with ``rtol = 0.005`` (default: extrapolated).
5. ``population-loss``: the share of a solve spent in the population loss (staircase teacher
   ``z1 + He3(z2)/sqrt 6``, tanh two-layer student k = 2, SGD gamma 0.5, t <= 5).

Run: ``python benchmarks/bench_accuracy.py`` (part of ``make bench``).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from sgd_dmft import dmft, exact, laws
from sgd_dmft import problem as P
from sgd_dmft.models.presets import two_layer


def _dt_limit() -> list[dict]:
    prob = P.Problem(P.linear(0.5), delta=2.0, ridge=0.0, init_scale=0.0)
    rows = []
    for gamma in (0.5, 1.0, 1.5):
        ref = exact.sgd_linear_poisson(prob, gamma, [2.5])
        ref_tr = float(ref.train_loss.values[-1])
        out = {}
        for name, ex in (("raw", False), ("limit", None)):
            ds = dmft.solve(prob, laws.SGD(0.01, gamma), t_max=2.5, extrapolate=ex)
            out[name] = float(ds.train_loss.values[-1])
            if ex is None:
                est = float(ds.train_loss_dt_error.values[-1])
        rows.append(dict(bench="dt-limit", what=f"linear SGD gamma={gamma:g} dt=0.01 train(2.5)",
                         exact=round(ref_tr, 5), raw_rel_err=f"{out['raw'] / ref_tr - 1:+.2%}",
                         limit_rel_err=f"{out['limit'] / ref_tr - 1:+.3%}", dt_error_estimate=f"{est / ref_tr:.3%}",
                         goal="|limit| <= 0.3 %"))
    ds = dmft.solve(prob, laws.GF(0.01), t_max=5.0)
    ref = exact.gf_linear(prob, ds.time.values)
    rel = float(np.max(np.abs(ds.test_loss.values[1:] / ref.test_loss.values[1:] - 1)))
    rows.append(dict(bench="dt-limit", what="linear GF dt=0.01, t <= 5: worst test-loss rel err",
                     limit_rel_err=f"{rel:.3%}", goal="<= 0.1 %"))
    return rows


def _phase_retrieval() -> list[dict]:
    prob = P.Problem(P.phase_retrieval(), delta=3.0, ridge=0.0, init_scale=0.3, init_overlap=0.3)
    t0 = time.perf_counter()
    ds = dmft.solve(prob, laws.SGD(0.002, 0.02), t_max=1.0, paths=32000, replicas=4, rtol=0.02, max_time_s=120.0,
                    workers=2, keep_kernels=False)
    wall = time.perf_counter() - t0
    worst = {v: float(np.max(ds[f"{v}_stderr"].values[1:] / np.abs(ds[v].values[1:]))) for v in ("train_loss", "test_loss")}
    return [dict(bench="phase-retrieval", what="case 2, rtol=0.02, max_time_s=120, workers=2", wall_s=round(wall, 1),
                 worst_rel_se_train=f"{worst['train_loss']:.2%}", worst_rel_se_test=f"{worst['test_loss']:.2%}",
                 rtol_met=ds.attrs.get("rtol_met"), paths=ds.attrs.get("paths_total", ds.attrs.get("paths")),
                 goal="2 % in <= 120 s")]


def _runaway() -> list[dict]:
    prob = P.Problem(two_layer(2, 1, "tanh", teacher="he3(z1)"), delta=2.0, ridge=0.0)
    t0 = time.perf_counter()
    ds = dmft.solve(prob, laws.SGD(0.05, 0.5), t_max=20.0, paths=16000, replicas=4, extrapolate=False,
                    keep_kernels=False, workers=2)
    wall = time.perf_counter() - t0
    tq = np.trace(ds.Q.values[-1])
    se = float(np.sqrt(ds.Q_stderr.values[-1, 0, 0] ** 2 + ds.Q_stderr.values[-1, 1, 1] ** 2))
    return [dict(bench="runaway", what="case 3, 4 x 4000 paths, raw, t <= 20", wall_s=round(wall, 1),
                 trace_Q_20=f"{tq:.2f} +- {se:.2f}", replica_z_max=round(float(ds.attrs["replica_z_max"]), 1),
                 reference="simulation d=1000: 14.5 +- 0.24, d=2000: 14.6 +- 0.13 (8 seeds)")]


def _time_to_half_percent() -> list[dict]:
    rows = []
    cases = {"logistic SGD gamma=1": (P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5), laws.SGD(0.02, 1.0)),
             "erf committee k=2 SGD gamma=0.5": (P.Problem(P.committee(2, 2, "erf"), delta=2.0, ridge=0.1,
                                                           init_scale=0.5, init_overlap=0.3), laws.SGD(0.02, 0.5))}
    for what, (prob, law) in cases.items():
        t0 = time.perf_counter()
        ds = dmft.solve(prob, law, t_max=2.0, paths=8000, replicas=4, rtol=0.005, max_time_s=300.0, keep_kernels=False)
        rows.append(dict(bench="time-to-0.5%", what=what + ", t <= 2, extrapolated", wall_s=round(time.perf_counter() - t0, 1),
                         rtol_achieved=f"{ds.attrs['rtol_achieved']:.3%}", rtol_met=ds.attrs.get("rtol_met")))
    return rows


def _population_share() -> list[dict]:
    import sgd_dmft.dmft.processes as pr
    import sgd_dmft.dmft.replicas as rp
    from sgd_dmft.models import population as pop

    acc = [0.0, 0]
    orig = pop.population_loss

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = orig(*a, **k)
        acc[0] += time.perf_counter() - t0
        acc[1] += 1
        return out

    pr.population_loss = rp.population_loss = timed
    prob = P.Problem(two_layer(2, 2, "tanh", teacher="z1 + he3(z2)/sqrt(6)"), delta=2.0, ridge=0.0)
    dmft.solve(prob, laws.SGD(0.1, 0.5), t_max=0.5, paths=200, replicas=2, extrapolate=False)  # compile, warm up
    rows = []
    for name, ex in (("raw", False), ("extrapolated", None)):
        acc[:] = [0.0, 0]
        t0 = time.perf_counter()
        dmft.solve(prob, laws.SGD(0.05, 0.5), t_max=5.0, paths=4000, replicas=4, extrapolate=ex)
        wall = time.perf_counter() - t0
        rows.append(dict(bench="population-loss", what=f"staircase tanh k=2, SGD, t <= 5, {name}", wall_s=round(wall, 2),
                         population_s=round(acc[0], 3), calls=acc[1], share=f"{acc[0] / wall:.1%}", goal="< 10 %"))
    return rows


GROUPS = (_dt_limit, _phase_retrieval, _runaway, _time_to_half_percent, _population_share)


def _call(fn_name: str) -> list[dict]:
    return globals()[fn_name]()


def run() -> list[dict]:
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for fn in GROUPS:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            rows += ex.submit(_call, fn.__name__).result()
    return rows


if __name__ == "__main__":
    import sys

    only = sys.argv[1:]
    for fn in GROUPS:
        if not only or fn.__name__.strip("_") in only:
            for r in fn():
                print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)
