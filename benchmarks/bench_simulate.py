"""Benchmark of the finite-d simulators.

* SGD (logistic, d = 4000, delta = 2, gamma = 0.5, ridge = 0.1, 5 epochs, kappa in {1, 64}): the
  compiled simulator (``simulate``) against a straightforward one-step-per-iteration numpy loop that
  records the same observables on the same grid.
* GD: time per step against the cost of the two matrix-vector products ``X theta`` and ``X^T F``.

Times exclude drawing the instance (X, teacher, labels), which both sides share; the simulator's
time includes its records (X theta, Q, M, train loss) and the population test loss; the reference
records X theta, Q, M and the train loss on the same grid. Each SGD case is timed with 4 records
per epoch and with records only at t = 0 and t_max (isolates the step loop).

Run: ``python benchmarks/bench_simulate.py`` (``--quick`` for d = 1000).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from sgd_dmft import problem as P
from sgd_dmft import simulate as S


def reference_sgd(problem: P.Problem, inst: S.Instance, *, gamma: float, kappa: int, t_max: float, dt: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Plain numpy mini-batch SGD, one Python iteration per step; returns train loss on the grid."""
    model, X, y, n, d = problem.model, inst.X, inst.y, inst.n, inst.d
    eta = gamma * kappa / n
    theta = inst.theta0.copy()
    T = int(round(t_max / dt))
    rec_steps = np.rint(np.arange(T + 1) * dt / eta).astype(int)
    out = np.empty(T + 1)
    K = 0
    for m, Kr in enumerate(rec_steps):
        while K < Kr:
            B = rng.choice(n, size=kappa, replace=False) if kappa > 1 else rng.integers(0, n, size=1)
            XB = X[B]
            F = model.grad(XB @ theta, y[B])
            theta = theta - eta * ((n / kappa) * (XB.T @ F) + problem.ridge * theta)
            K += 1
        r = X @ theta
        out[m] = np.mean(model.loss(r, y))
        _ = theta.T @ theta / d, theta.T @ inst.theta_star / d
    return out


def _time(fn, repeat: int = 1) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class _SharedInstance:
    """Make ``simulate`` reuse one pre-drawn instance (so timings exclude drawing X)."""

    def __init__(self, inst: S.Instance):
        self.inst = inst

    def __enter__(self):
        from sgd_dmft.simulation import driver

        self._driver = driver
        self._orig = driver.make_instance
        driver.make_instance = lambda problem, d, rng, with_data=True: self.inst
        return self

    def __exit__(self, *exc):
        self._driver.make_instance = self._orig


def run(d: int = 4000, delta: float = 2.0, epochs: int = 5, gd_steps: int = 200) -> list[dict]:
    gamma, ridge = 0.5, 0.1
    problem = P.Problem(P.logistic(0.1), delta=delta, ridge=ridge)
    t_max = epochs * gamma
    inst = S.instance_for_seed(problem, d, s=0)
    n = inst.n
    # warm up the numba kernel (compile / load cache)
    S.simulate(problem, "sgd", t_max=0.01, dt=0.01, d=20, gamma=gamma, batch=1, seeds=1)
    rows = []
    with _SharedInstance(inst):
        for kappa in (1, 64):
            steps = int(round(t_max * n / (gamma * kappa)))
            for label, dt in (("4 rec/epoch", gamma / 4), ("2 records", t_max)):
                t_sim = _time(lambda: S.simulate(problem, "sgd", t_max=t_max, dt=dt, d=d, gamma=gamma, batch=kappa, seeds=1))
                t_ref = _time(lambda: reference_sgd(problem, inst, gamma=gamma, kappa=kappa, t_max=t_max, dt=dt,
                                                    rng=np.random.default_rng(0)))
                rows.append({"case": f"sgd kappa={kappa}", "records": label, "d": d, "n": n, "steps": steps,
                             "sim_s": t_sim, "ref_s": t_ref, "speedup": t_ref / t_sim,
                             "us_per_step_sim": 1e6 * t_sim / steps, "us_per_step_ref": 1e6 * t_ref / steps})
        # GD: time per step vs the two matvecs (records every step: train loss from the X theta already formed)
        dtg = 0.05
        t_gd = _time(lambda: S.simulate(problem, "gd", t_max=gd_steps * dtg, dt=dtg, d=d, seeds=1))
    X = inst.X
    v = inst.theta0.copy()
    u = np.ones((n, 1))

    def matvecs():
        for _ in range(gd_steps):
            X @ v
            X.T @ u

    t_mv = _time(matvecs, repeat=2)
    rows.append({"case": "gd", "records": "every step", "d": d, "n": n, "steps": gd_steps, "sim_s": t_gd,
                 "ref_s": t_mv, "speedup": t_mv / t_gd, "us_per_step_sim": 1e6 * t_gd / gd_steps,
                 "us_per_step_ref": 1e6 * t_mv / gd_steps, "ratio_to_matvecs": t_gd / t_mv})
    return rows


def _print(rows: list[dict]) -> None:
    print(f"{'case':<14}{'records':<13}{'d':>6}{'n':>7}{'steps':>8}{'sim [s]':>9}{'ref [s]':>9}{'ref/sim':>9}"
          f"{'us/step sim':>13}{'us/step ref':>13}")
    for r in rows:
        print(f"{r['case']:<14}{r['records']:<13}{r['d']:>6}{r['n']:>7}{r['steps']:>8}{r['sim_s']:>9.3f}"
              f"{r['ref_s']:>9.3f}{r['speedup']:>9.2f}{r['us_per_step_sim']:>13.1f}{r['us_per_step_ref']:>13.1f}")
    print("ref = plain numpy loop (sgd rows) / the two matvecs X theta, X^T F (gd row).")


if __name__ == "__main__":
    _print(run(d=1000) if "--quick" in sys.argv else run())
