"""Golden outputs of the solver and simulators, recorded before the redesign (issue: one solver in
small pieces) and checked by tests/test_golden.py after every step of it.

``python tests/golden/record.py`` writes tests/golden/golden.npz. Each case is a small, fast run of
one code path: the numbers must stay the same (bit-identical on one machine; 1e-11 relative across
machines, where BLAS may sum in another order).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def cases():
    """``{name: zero-argument callable returning an xarray Dataset}`` (built with the public API)."""
    from sgd_dmft import Problem, laws, make_model, solve
    from sgd_dmft.online import solve_online
    from sgd_dmft.exact import gd_linear
    from sgd_dmft.simulate import simulate

    logi = Problem(make_model("logistic"), delta=2.0, ridge=0.1, init_scale=0.5)
    relu = Problem(make_model("committee", k=2, kstar=2, activation="relu", noise=0.1), delta=2.0, ridge=0.05,
                   init_scale=0.5, init_overlap=0.3)
    erf = Problem(make_model("committee", k=2, kstar=2, activation="erf", noise=0.1), delta=2.0, ridge=0.05,
                  init_scale=0.5, init_overlap=0.3)
    lin = Problem(make_model("linear", noise=0.3), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)
    pr = Problem(make_model("phase_retrieval"), delta=3.0, ridge=0.0, init_scale=0.5, init_overlap=0.6)
    tanh1 = Problem(make_model("committee", k=1, kstar=1, activation="tanh"), delta=2.0, ridge=0.1)
    from sgd_dmft.dmft import GaussianIBP, MonteCarlo, PathwiseTangents

    # the estimators of the recording: the train loss by the fixed control variate (train="gap"; the
    # default since is the fitted coefficient, tested in tests/test_dmft_variance.py)
    kw = dict(paths=1200, replicas=3, seed=7, extrapolate=False, process=MonteCarlo(train="gap"))
    no_rb = {**kw, "process": MonteCarlo(responses=PathwiseTangents(rao_blackwell=False), train="gap")}
    stein = {**kw, "process": MonteCarlo(responses=GaussianIBP(), train="gap")}
    return {
        "logistic_sgd": lambda: solve(logi, laws.SGD(0.05, 0.5), t_max=2.0, **kw),
        "logistic_gd": lambda: solve(logi, laws.GD(0.05), t_max=1.5, **kw),
        "relu_committee_sgd_stein": lambda: solve(relu, laws.SGD(0.05, 0.5), t_max=1.0, **kw),
        "erf_committee_sgd": lambda: solve(erf, laws.SGD(0.05, 0.5), t_max=1.0, **kw),
        "erf_committee_gd": lambda: solve(erf, laws.GD(0.05), t_max=0.6, **kw),
        "logistic_sme_rb": lambda: solve(logi, laws.SME(0.05, 0.5), t_max=1.0, **kw),
        "logistic_sme_norb": lambda: solve(logi, laws.SME(0.05, 0.5), t_max=0.6, **no_rb),
        "logistic_sgd_stein": lambda: solve(logi, laws.SGD(0.05, 0.5), t_max=1.0, **stein),
        "logistic_reshuffle": lambda: solve(logi, laws.Reshuffle(0.05, 0.5), t_max=2.0, **kw),
        "logistic_persistent": lambda: solve(logi, laws.Persistent(0.05, 0.5, 1.0), t_max=1.0, **kw),
        "phase_retrieval_gd": lambda: solve(pr, laws.GD(0.02), t_max=0.4, **kw),
        "linear_exact_gd": lambda: solve(lin, laws.GD(0.05), t_max=3.0),
        "linear_exact_sgd": lambda: solve(lin, laws.SGD(0.05, 0.5), t_max=3.0, extrapolate=False),
        "linear_exact_sme": lambda: solve(lin, laws.SME(0.05, 0.5), t_max=3.0, extrapolate=False),
        "linear_exact_graded": lambda: solve(lin, laws.GD(0.02, growth=0.1, dt_max=0.2), t_max=10.0),
        "logistic_gd_graded": lambda: solve(logi, laws.GD(0.02, growth=0.1, dt_max=0.2), t_max=4.0, **kw),
        "logistic_sgd_graded": lambda: solve(logi, laws.SGD(0.02, 0.5, growth=0.1, dt_max=0.1), t_max=3.0, **kw),
        "tanh_committee_k1_sgd": lambda: solve(tanh1, laws.SGD(0.05, 0.5), t_max=1.0, **kw),
        "custom_tanh_sgd": lambda: solve(Problem(_custom_model(), delta=2.0, ridge=0.1), laws.SGD(0.05, 0.5),
                                         t_max=0.6, **kw),
        "online_logistic": lambda: solve_online(logi, gamma=0.5, t_max=2.0, dt=0.05),
        "online_erf": lambda: solve_online(erf, gamma=0.5, t_max=2.0, dt=0.05),
        "gd_linear_closed_form": lambda: gd_linear(lin, 0.05, 40),
        "sim_logistic_sgd": lambda: simulate(logi, "sgd", t_max=1.0, dt=0.05, d=200, gamma=0.5, seeds=2, seed=3),
        "sim_logistic_sgd_batch8": lambda: simulate(logi, "sgd", t_max=1.0, dt=0.05, d=200, gamma=0.5, batch=8,
                                                    seeds=2, seed=3),
        "sim_logistic_bernoulli": lambda: simulate(logi, "sgd", t_max=1.0, dt=0.05, d=200, gamma=0.5,
                                                   batching="bernoulli", seeds=2, seed=3),
        "sim_erf_gd": lambda: simulate(erf, "gd", t_max=1.0, dt=0.05, d=200, seeds=2, seed=3),
        "sim_logistic_sme": lambda: simulate(logi, "sme", t_max=1.0, dt=0.05, d=200, gamma=0.5, seeds=2, seed=3),
        "sim_relu_reshuffle": lambda: simulate(relu, "reshuffle", t_max=1.0, dt=0.05, d=200, gamma=0.5, batch=4,
                                               seeds=2, seed=3),
        "sim_logistic_online": lambda: simulate(logi, "online", t_max=1.0, dt=0.05, d=200, gamma=0.5, seeds=2,
                                                seed=3),
        "sim_persistent_law": lambda: simulate(logi, "law", law=laws.Persistent(0.05, 0.5, 1.0), t_max=1.0, dt=0.05,
                                               d=200, seeds=2, seed=3),
        "sim_graded_gd": lambda: simulate(logi, "gd", t_max=3.0, dt=0.02, d=200, seeds=2, seed=3, growth=0.1,
                                          dt_max=0.2),
        "sim_custom_sgd": lambda: simulate(Problem(_custom_model(), delta=2.0, ridge=0.1), "sgd", t_max=0.5,
                                           dt=0.05, d=100, gamma=0.5, seeds=1, seed=3),
    }


def _custom_model():
    from sgd_dmft import custom

    return custom(lambda r, y: 0.5 * (np.tanh(r[..., 0]) - y) ** 2, lambda rs, e: np.tanh(rs[..., 0]) + 0.1 * e)


def arrays(ds) -> dict[str, np.ndarray]:
    """The numeric variables and the time coordinate of a dataset."""
    out = {"time": np.asarray(ds["time"].values, dtype=float)}
    for name, da in ds.data_vars.items():
        if np.issubdtype(da.dtype, np.number):
            out[name] = np.asarray(da.values, dtype=float)
    if "r_samples" in out:  # (snap_time, path, k): the first paths suffice
        out["r_samples"] = out["r_samples"][:, :64]
    return out


def record(path: Path) -> None:
    flat = {}
    for name, fn in cases().items():
        for var, a in arrays(fn()).items():
            flat[f"{name}/{var}"] = a
        print(name, flush=True)
    np.savez_compressed(path, **flat)


if __name__ == "__main__":
    record(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("golden.npz"))
