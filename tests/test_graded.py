"""Graded time grids (long horizons): ``dt_m = clip(growth * t_m, dt, dt_max)``.

The solver and the simulators run the same recursion with the per-step ``dt_m``, so the checks of the
uniform grid carry over: exact closed forms (Marchenko-Pastur, with the step sequence), the exact
path against Monte Carlo of the same equations, and theory against finite-d simulation of the same
graded recursion. The grid's own error (against gradient flow) is checked for its order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgd_dmft import dmft, exact, laws
from sgd_dmft import problem as P
from sgd_dmft.simulate import instance_for_seed, simulate

def solve_raw(*args, **kw):
    """The raw recursion at the grid step (what a Bernoulli-batch / law simulation runs)."""
    return dmft.solve(*args, **{"extrapolate": False, **kw})

from test_dmft import MC, Z_MAX, _zscores

LIN = P.Problem(P.linear(0.3), delta=0.5, ridge=0.01, init_scale=0.5, init_overlap=0.2)


def test_graded_grid_shape_and_steps():
    law = laws.GD(0.01, growth=0.05, dt_max=0.5)
    t = law.times(1000.0)
    h = np.diff(t)
    assert t[0] == 0 and abs(t[-1] - 1000.0) <= 0.25
    np.testing.assert_allclose(h, law.steps(len(h)))
    np.testing.assert_allclose(h, np.clip(0.05 * t[:-1], 0.01, 0.5))
    # ~ 1000 / 0.5 steps at the cap plus a logarithmic ramp, instead of 10^5 uniform steps
    assert len(t) < 2300
    assert np.array_equal(laws.GD(0.1).times(1.0), np.arange(11) * 0.1)


@pytest.mark.parametrize("kw, msg", [
    (dict(growth=-1.0), "growth=-1.0"),
    (dict(growth=0.1, dt_max=0.001), "dt_max=0.001"),
])
def test_graded_grid_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        laws.GD(0.01, **kw)


def test_graded_sgd_needs_a_cap_below_gamma():
    with pytest.raises(ValueError, match="dt_max"):
        laws.SGD(0.01, 0.5, growth=0.1)
    with pytest.raises(ValueError, match="dt_max"):
        laws.SGD(0.01, 0.5, growth=0.1, dt_max=0.6)
    with pytest.raises(ValueError, match="uniform grid"):
        laws.Reshuffle(0.05, 0.5, growth=0.1, dt_max=0.1)


def test_graded_gd_exact_path_equals_marchenko_pastur():
    """DMFT exact linear path on a graded grid = the closed form of GD with the same step sequence."""
    law = laws.GD(0.01, growth=0.05, dt_max=0.5)
    ds = solve_raw(LIN, law, t_max=100.0, keep_kernels=False, process=dmft.ExactLinearPath())  # not the closed form
    assert "closed_form" not in ds.attrs
    T = ds.sizes["time"] - 1
    ex = exact.gd_linear(LIN, law.dt, T, steps=law.steps(T))
    np.testing.assert_allclose(ds.time.values, ex.time.values, rtol=1e-13)
    for v in ("train_loss", "test_loss"):
        assert np.max(np.abs(ds[v].values - ex[v].values)) < 1e-12, v
    assert np.max(np.abs(ds.M.values - ex.M.values)) < 1e-12


def test_graded_grid_tends_to_gradient_flow_at_first_order_over_a_long_horizon():
    """t = 1000 (10^5 steps of the initial dt = 0.01): graded GD -> GF, error halves with growth."""
    errs, steps = [], []
    for g in (0.04, 0.02, 0.01):
        law = laws.GD(0.5 * g, growth=g, dt_max=0.4)  # crossover t_c = dt / growth = 0.5 fixed
        T = len(law.times(1000.0)) - 1
        gd = exact.gd_linear(LIN, law.dt, T, steps=law.steps(T))
        gf = exact.gf_linear(LIN, gd.time.values)
        errs.append(max(float(np.max(np.abs(gd[v].values - gf[v].values))) for v in ("train_loss", "test_loss")))
        steps.append(T)
    order = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(order - 1.0) < 0.15), (errs, order)
    assert errs[-1] < 1e-3 and max(steps) < 4000, (errs, steps)


@pytest.mark.parametrize("law", [laws.GD(0.02, growth=0.1, dt_max=0.2), laws.SGD(0.02, 0.5, growth=0.1, dt_max=0.1),
                                 laws.SME(0.02, 0.5, growth=0.1, dt_max=0.1)], ids=lambda l: l.name)
def test_graded_exact_path_matches_monte_carlo(law):
    """The per-step moments E[S_m], E[S_m^2] of the exact path = Monte Carlo of the same graded equations."""
    prob = P.Problem(P.linear(0.3), delta=2.0, ridge=0.1, init_scale=0.5, init_overlap=0.2)
    ex = solve_raw(prob, law, t_max=3.0)
    mc = solve_raw(prob, law, t_max=3.0, paths=16000, replicas=8, seed=3, process=MC)
    assert ex.sizes["time"] == mc.sizes["time"] and np.ptp(np.diff(ex.time.values)) > 0.05
    idx = np.unique(np.linspace(1, ex.sizes["time"] - 1, 9).round().astype(int))
    for var in ("train_loss", "test_loss"):
        z = (ex[var].values[idx] - mc[var].values[idx]) / mc[var + "_stderr"].values[idx]
        assert np.all(np.abs(z) < Z_MAX), f"{law.name} {var}: {np.round(z, 2)}"


def test_graded_sgd_exact_path_against_finite_d_expectation():
    """Exact E_S of graded Bernoulli SGD on finite-d instances (no Monte Carlo over S) -> DMFT."""
    prob = P.Problem(P.linear(0.3), delta=2.0, ridge=0.1, init_scale=0.5, init_overlap=0.2)
    law = laws.SGD(0.02, 0.5, growth=0.2, dt_max=0.1)
    th = solve_raw(prob, law, t_max=2.0)
    T = th.sizes["time"] - 1
    vals = []
    for s in range(6):
        inst = instance_for_seed(prob, 100, s, seed=11)
        ex = exact.sgd_linear_second_moment(prob, law, inst.X, inst.y, inst.theta_star, inst.theta0, T)
        np.testing.assert_allclose(ex.time.values, th.time.values, rtol=1e-12)
        vals.append(ex.test_loss.values)
    vals = np.array(vals)
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(len(vals))
    assert np.all(np.abs(mean - th.test_loss.values) < 5 * se + 5e-3)


GRADED_CASES = {
    "logistic-gd": (P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5),
                    laws.GD(0.02, growth=0.1, dt_max=0.4), 12.0),
    "logistic-sgd": (P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5),
                     laws.SGD(0.01, 0.5, growth=0.1, dt_max=0.05), 4.0),
}


@pytest.mark.parametrize("case", list(GRADED_CASES))
def test_graded_theory_matches_simulation_of_same_recursion(case):
    prob, law, t_max = GRADED_CASES[case]
    th = solve_raw(prob, law, t_max=t_max, paths=16000, replicas=8, seed=1)
    sim = simulate(prob, "law", law=law, t_max=t_max, dt=law.dt, d=1000, seeds=10, seed=7)
    np.testing.assert_allclose(th.time.values, sim.time.values, rtol=1e-12)
    T = th.sizes["time"] - 1
    idx = np.unique(np.linspace(0, T, 9).round().astype(int))
    for var in ("train_loss", "test_loss"):
        z = _zscores(th, sim, var, idx)
        assert np.all(np.abs(z) < Z_MAX), f"{case} {var}: z = {np.round(z, 2)}"


@pytest.mark.slow
@pytest.mark.parametrize("fine, graded, t_max", [
    (laws.SGD(0.005, 0.5), laws.SGD(0.005, 0.5, growth=0.05, dt_max=0.05), 1.5),
    (laws.GD(0.02), laws.GD(0.02, growth=0.05, dt_max=0.5), 6.0),
], ids=["sgd", "gd"])
def test_graded_grid_error_against_uniform_grid(fine, graded, t_max):
    """Logistic: the graded grid's curves stay within a few s.e. and 4e-3 of the uniform fine grid."""
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    paths = 32000 if fine.name == "sgd" else 8000
    a = solve_raw(prob, graded, t_max=t_max, paths=paths, replicas=8, seed=4, keep_kernels=False)
    b = solve_raw(prob, fine, t_max=t_max, paths=paths, replicas=8, seed=5, keep_kernels=False)
    assert a.sizes["time"] < b.sizes["time"] / 3
    keep = a.time.values <= b.time.values[-1]
    bi = b.interp(time=a.time.values[keep])
    for v in ("train_loss", "test_loss"):
        gap = a[v].values[keep] - bi[v].values
        se = np.hypot(a[v + "_stderr"].values[keep], bi[v + "_stderr"].values)
        assert np.max(np.abs(gap)) < 4e-3 and np.max(np.abs(gap[1:]) / se[1:]) < Z_MAX, (v, np.abs(gap).max())


def test_graded_gd_past_its_stability_cap_is_reported():
    """Explicit GD: dt_m (lambda_max + ridge) > 2 blows up; the error names the step and dt_max."""
    prob = P.Problem(P.linear(0.3), delta=2.0, ridge=0.01)  # lambda_max = (1 + sqrt 2)^2 = 5.83
    with pytest.raises(dmft.SolverDiverged, match=r"dt_m=.*dt_max=2\.0"):
        solve_raw(prob, laws.GD(0.01, growth=0.05, dt_max=2.0), t_max=200.0)
    solve_raw(prob, laws.GD(0.01, growth=0.05, dt_max=0.3), t_max=200.0)  # below 2 / 5.84: stable


@settings(max_examples=60, deadline=None)
@given(dt=st.floats(1e-3, 0.5), growth=st.floats(0.0, 2.0), cap=st.floats(1.0, 50.0), t_max=st.floats(0.0, 200.0))
def test_graded_times_invariants(dt, growth, cap, t_max):
    """Strictly increasing from 0, steps in [dt, dt_max] equal to Law.steps, last point nearest t_max."""
    law = laws.GD(dt, growth=growth, dt_max=cap * dt)
    t = law.times(t_max)
    h = np.diff(t)
    assert t[0] == 0.0 and np.all(h > 0)
    np.testing.assert_allclose(h, law.steps(len(h)), rtol=1e-9)
    assert np.all(h >= dt * (1 - 1e-9)) and np.all(h <= cap * dt * (1 + 1e-9))
    nxt = law.steps(len(t))[-1]  # the step a further point would take
    assert abs(t[-1] - t_max) <= 0.5 * max(nxt, h[-1] if len(h) else dt) + 1e-9


def test_config_extrapolate_graded():
    """From a config: a graded grid gives the limit on nested levels (its error estimate written) unless
    ``solver.extrapolate_graded = false`` (then its raw recursion); the keyword is validated like the others."""
    from sgd_dmft.config import parse_config
    from sgd_dmft.errors import ConfigError
    from sgd_dmft.run import run_theory

    base = {"problem": {"model": "linear", "delta": 2.0, "ridge": 0.0, "init_scale": 0.0, "noise": 0.5},
            "dynamics": {"algorithm": "sgd", "gamma": 0.5, "dt": 0.01, "growth": 0.05, "dt_max": 0.1, "t_max": 5.0}}
    raw = run_theory(parse_config({**base, "solver": {"extrapolate_graded": False}}))
    assert raw.attrs.get("extrapolated", 0) == 0
    ex = run_theory(parse_config(base))
    assert ex.attrs["extrapolated"] == 1 and "test_loss_dt_error" in ex
    ref = exact.sgd_linear_poisson(P.Problem(P.linear(0.5), delta=2.0, ridge=0.0, init_scale=0.0), 0.5,
                                   ex.time.values)
    for ds, tol in ((ex, 1e-3), (raw, None)):
        rel = np.max(np.abs(ds.test_loss.values[1:] - ref.test_loss.values[1:]) / ref.test_loss.values[1:])
        assert rel < tol if tol else rel > 3e-3, rel
    with pytest.raises(ConfigError, match="solver.extrapolate_graded"):
        parse_config({**base, "solver": {"extrapolate_graded": 3}})
