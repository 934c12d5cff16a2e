"""Closed forms for the linear model (exact.py): spectral law, GF/GD curves, DMFT and finite-d checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from sgd_dmft import dmft, exact, laws
from sgd_dmft import problem as P
from sgd_dmft.simulate import simulate

def solve_raw(*args, **kw):
    """The raw recursion at the grid step (what a Bernoulli-batch / law simulation runs)."""
    return dmft.solve(*args, **{"extrapolate": False, **kw})

DELTAS = (0.5, 1.5, 3.0)


# --------------------------------------------------------------------------------------------
# 1. The spectral law of A = X^T X
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", DELTAS)
def test_mp_density_matches_sampled_eigenvalues(delta):
    d = 1200
    n = int(round(delta * d))
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, d)) / math.sqrt(d)
    ev = np.linalg.eigvalsh(X.T @ X)
    atom = exact.mp_atom(delta)
    # atom at 0: d - n zero eigenvalues when n < d
    assert np.mean(ev < 1e-8) == pytest.approx(atom, abs=2 / d)
    a, b = exact.mp_support(delta)
    cont = np.sort(ev[ev > 1e-8])
    assert cont.min() > a - 0.05 and cont.max() < b + 0.1  # edges (Tracy-Widom scale d^{-2/3})
    # CDF of the continuous part against the integrated density (Kolmogorov distance)
    dens = exact.mp_density(delta)
    grid = np.linspace(a, b, 41)[1:-1]
    cdf = np.array([atom + quad(dens, a, g, limit=200)[0] for g in grid])
    ecdf = np.searchsorted(np.sort(ev), grid, side="right") / d
    assert np.max(np.abs(cdf - ecdf)) < 0.01
    # moments: mean delta, second moment delta + delta^2
    assert np.mean(ev) == pytest.approx(delta, rel=0.01)
    assert np.mean(ev**2) == pytest.approx(delta + delta**2, rel=0.02)


@pytest.mark.parametrize("delta", DELTAS + (1.0, 0.9))
def test_quadratures_agree(delta):
    """Gauss (Jacobi matrix) vs Chebyshev-U + atom vs adaptive quad of the density."""
    a, b = exact.mp_support(delta)
    f = lambda s: np.exp(-1.7 * s) * (1 + s) + 0.3 * s**3  # noqa: E731
    sg, wg = exact.mp_quadrature(delta, 200)
    ref = quad(lambda s: f(s) * exact.mp_density(delta, s), a, b, limit=400, epsabs=1e-13)[0] + exact.mp_atom(delta) * f(0.0)
    assert wg @ f(sg) == pytest.approx(ref, rel=1e-9)
    assert wg.sum() == pytest.approx(1.0, rel=1e-13)
    assert wg @ sg == pytest.approx(delta, rel=1e-12)
    assert wg @ sg**2 == pytest.approx(delta + delta**2, rel=1e-12)
    if abs(delta - 1) > 0.2:
        sc, wc = exact.mp_quadrature(delta, 2000, method="chebyshev")
        assert wc @ f(sc) == pytest.approx(ref, rel=1e-10)


# --------------------------------------------------------------------------------------------
# 2. Closed forms: limits and internal consistency
# --------------------------------------------------------------------------------------------
def test_initial_condition_and_long_time_limits():
    for delta in DELTAS:
        pr = P.Problem(P.linear(0.4), delta=delta, ridge=0.0, init_scale=0.5, init_overlap=0.3)
        ds = exact.gf_linear(pr, [0.0, 400.0])
        assert float(ds.M[0, 0, 0]) == pytest.approx(0.3)
        assert float(ds.Q[0, 0, 0]) == pytest.approx(0.09 + 0.25)
        # train loss at t = 0: |X(theta0 - theta*)|^2/(2n) + noise^2/2 = delta((0.3-1)^2 + 0.25)/(2 delta) + 0.08
        assert float(ds.train_loss[0]) == pytest.approx(0.5 * (0.49 + 0.25) + 0.08, rel=1e-12)
        if delta > 1:  # least squares: train -> noise^2 (1 - 1/delta)/2, test -> ... + noise^2/(delta-1)/2
            assert float(ds.train_loss[-1]) == pytest.approx(0.08 * (1 - 1 / delta), rel=1e-6)
            assert float(ds.test_loss[-1]) == pytest.approx(0.08 + 0.08 / (delta - 1), rel=1e-6)
        else:  # interpolation: train -> 0
            assert float(ds.train_loss[-1]) == pytest.approx(0.0, abs=1e-6)


def test_ridge_fixed_point_matches_finite_d_ridge_estimator():
    """t -> infinity with ridge: the ridge estimator (A + lambda)^{-1} X^T y, checked at d = 1500."""
    pr = P.Problem(P.linear(0.3), delta=1.5, ridge=0.2, init_scale=0.5)
    ds = exact.gf_linear(pr, [300.0])
    d = 1500
    n = int(pr.delta * d)
    out = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d)) / math.sqrt(d)
        ts = rng.standard_normal(d)
        y = X @ ts + 0.3 * rng.standard_normal(n)
        th = np.linalg.solve(X.T @ X + 0.2 * np.eye(d), X.T @ y)
        out.append([th @ ts / d, th @ th / d, np.mean((X @ th - y) ** 2) / 2])
    M, Q, tr = np.mean(out, axis=0)
    assert float(ds.M[0, 0, 0]) == pytest.approx(M, abs=0.02)
    assert float(ds.Q[0, 0, 0]) == pytest.approx(Q, abs=0.02)
    assert float(ds.train_loss[0]) == pytest.approx(tr, abs=0.01)


def test_gf_quadrature_converged():
    pr = P.Problem(P.linear(0.3), delta=0.5, ridge=0.0, init_overlap=0.2)
    t = np.linspace(0, 60, 61)
    a = exact.gf_linear(pr, t)
    b = exact.gf_linear(pr, t, n_nodes=4 * a.attrs["quadrature_nodes"])
    for v in ("train_loss", "test_loss", "M", "Q"):
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-11, atol=1e-14)


# --------------------------------------------------------------------------------------------
# 3. The DMFT solver's exact path for GD is gd_linear
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("ridge,noise,overlap", [(0.0, 0.0, 0.0), (0.1, 0.3, 0.4)])
def test_dmft_gd_equals_closed_form(delta, ridge, noise, overlap):
    pr = P.Problem(P.linear(noise), delta=delta, ridge=ridge, init_scale=0.5, init_overlap=overlap)
    dt, T = 0.1, 80
    ds = solve_raw(pr, laws.GD(dt), t_max=dt * T)
    ex = exact.gd_linear(pr, dt, T)
    np.testing.assert_allclose(ds.time.values, ex.time.values)
    for v in ("train_loss", "test_loss", "M", "Q"):
        np.testing.assert_allclose(ds[v].values, ex[v].values, rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------------------------
# 4. GD -> GF as dt -> 0, first order
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", DELTAS)
def test_gd_converges_to_gf_first_order(delta):
    pr = P.Problem(P.linear(0.3), delta=delta, ridge=0.05, init_scale=0.5, init_overlap=0.2)
    t_max = 4.0
    ref = exact.gf_linear(pr, np.linspace(0, t_max, 9))
    dts = 0.5 / np.array([10, 20, 40, 80])  # the reference times are on every grid
    errs = []
    for dt in dts:
        g = exact.gd_linear(pr, dt, int(round(t_max / dt)))
        g = g.sel(time=ref.time.values, method="nearest")
        errs.append(max(float(np.max(np.abs(g[v].values - ref[v].values))) for v in ("train_loss", "test_loss", "M", "Q")))
    order = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert 0.8 < order < 1.2, (errs, order)


# --------------------------------------------------------------------------------------------
# 5. Finite-d GD simulation (d = 2000) agrees within the seed error
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta,ridge,noise,overlap", [(0.5, 0.0, 0.3, 0.0), (1.5, 0.1, 0.3, 0.3)])
def test_finite_d_gd_simulation(delta, ridge, noise, overlap):
    pr = P.Problem(P.linear(noise), delta=delta, ridge=ridge, init_scale=0.5, init_overlap=overlap)
    dt, t_max, d = 0.1, 6.0, 2000
    sim = simulate(pr, "gd", t_max=t_max, dt=dt, d=d, seeds=4, seed=11)
    ex = exact.gd_linear(pr, dt, int(round(t_max / dt)))
    for v in ("train_loss", "test_loss", "M", "Q"):
        a = sim[v].values.reshape(sim.sizes["seed"], sim.sizes["time"])
        mean = a.mean(0)
        se = a.std(0, ddof=1) / math.sqrt(a.shape[0])
        ref = ex[v].values.reshape(-1)
        # 5 standard errors (plus a small floor for the finite-d bias, O(1/d))
        assert np.all(np.abs(mean - ref) < 5 * se + 2e-3), (v, np.max(np.abs(mean - ref) / (se + 1e-12)))


# --------------------------------------------------------------------------------------------
# 6. Finite-d exact second moments for linear SGD (optional extra)
# --------------------------------------------------------------------------------------------
def test_sgd_second_moment_recursion_vs_direct_average():
    """The E_S recursion against a direct average of the SGD-law recursion on one small instance."""
    from sgd_dmft.simulate import instance_for_seed, law_step

    pr = P.Problem(P.linear(0.3), delta=1.5, ridge=0.1, init_scale=0.5, init_overlap=0.2)
    law = laws.SGD(0.1, 0.8)
    d, T, R = 20, 10, 4000
    inst = instance_for_seed(pr, d, 0, seed=4)
    ex = exact.sgd_linear_second_moment(pr, law, inst.X, inst.y, inst.theta_star, inst.theta0, T)
    rng = np.random.default_rng(0)
    th = np.repeat(inst.theta0.T, R, axis=0).T  # (d, R): R independent runs
    for m in range(T):
        S = law.sample(rng, inst.n, R)  # (n, R) multipliers, one column per run
        F = inst.X @ th - inst.y[:, None]
        th = (1 - law.dt * pr.ridge) * th - inst.X.T @ (F * S)
    Q = np.sum(th * th, axis=0) / d
    assert float(ex.Q[-1, 0, 0]) == pytest.approx(Q.mean(), abs=4 * Q.std() / math.sqrt(R))
    M = inst.theta_star[:, 0] @ th / d
    assert float(ex.M[-1, 0, 0]) == pytest.approx(M.mean(), abs=4 * M.std() / math.sqrt(R) + 1e-12)

