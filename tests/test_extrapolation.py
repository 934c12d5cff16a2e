"""The continuous-time limit: Richardson extrapolation against exact references that do not use the
solver (the homogenised-SGD Volterra equation for least squares, the Marchenko-Pastur gradient flow),
its error estimate against the true error, and accuracy on request (rtol)."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import dmft, laws
from sgd_dmft import problem as P
from sgd_dmft.exact import gf_linear, sgd_linear_poisson
from sgd_dmft.simulate import simulate

LIN = P.Problem(P.linear(0.5), delta=2.0, ridge=0.0, init_scale=0.0, init_overlap=0.0)


def test_poisson_reference_matches_true_sgd():
    """The Volterra reference against true batch-1 SGD at d = 1000 (independent of the solver)."""
    prob = P.Problem(P.linear(0.5), delta=2.0, ridge=0.1, init_scale=0.5, init_overlap=0.2)
    times = np.array([0.5, 1.0, 1.5, 2.0])
    ref = sgd_linear_poisson(prob, 1.2, times)
    sim = simulate(prob, "sgd", t_max=2.0, dt=0.5, d=1000, gamma=1.2, batch=1, seeds=12, seed=5)
    for var in ("train_loss", "test_loss"):
        s = sim[var].values[:, 1:]
        z = (s.mean(0) - ref[var].values) / (s.std(0, ddof=1) / np.sqrt(s.shape[0]))
        assert np.all(np.abs(z) < 4.0), f"{var}: z = {np.round(z, 2)}"
    # and it is not gradient flow: the SGD noise raises the loss by many standard errors
    gf = gf_linear(prob, times)
    assert np.all(ref.train_loss.values - gf.train_loss.values > 0.01)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.5])
def test_extrapolated_sgd_is_the_poisson_limit(gamma):
    """dt = 0.01: the raw recursion is up to 3 % off at gamma = 1.5; the extrapolated curve is within
    0.3 %, and its error estimate is the size of the true error."""
    ds = dmft.solve(LIN, laws.SGD(0.01, gamma), t_max=2.5, extrapolate=True)
    assert ds.attrs["extrapolated"] == 1 and ds.attrs["exact_path"] == 1
    ref = sgd_linear_poisson(LIN, gamma, ds.time.values)
    for var in ("train_loss", "test_loss"):
        got, want, est = ds[var].values[1:], ref[var].values[1:], ds[var + "_dt_error"].values[1:]
        err = np.abs(got - want)
        assert np.max(err / want) < 3e-3, f"{var}: {np.max(err / want):.2e}"
        raw_err = np.abs(ds[var + "_raw"].values[1:] - want)
        assert np.all(err <= raw_err + 1e-12)  # never worse than the raw recursion
        # the estimate covers the true error and is not vacuous (within a factor 10 where it matters)
        big = err > 1e-5
        assert np.all(err <= est + 1e-5 * want), f"{var}: true {err.max():.2e} vs estimate {est.max():.2e}"
        assert np.all(est[big] <= 10.0 * err[big])


def test_extrapolated_gf_is_marchenko_pastur():
    prob = P.Problem(P.linear(0.3), delta=3.0, ridge=0.1, init_scale=1.0, init_overlap=0.2)
    ds = dmft.solve(prob, laws.GF(0.01), t_max=4.0)  # GF: the continuous limit by default
    assert ds.attrs["extrapolated"] == 1 and ds.attrs["algorithm"] == "gf"
    ref = gf_linear(prob, ds.time.values)
    raw = dmft.solve(prob, laws.GD(0.01), t_max=4.0)  # GD: the discrete recursion by default
    assert raw.attrs["extrapolated"] == 0
    for var in ("train_loss", "test_loss"):
        err = np.abs(ds[var].values - ref[var].values)
        assert np.max(err[1:] / ref[var].values[1:]) < 1e-3
        assert np.max(np.abs(raw[var].values - ref[var].values)) > 5 * np.max(err)
        assert np.all(err <= ds[var + "_dt_error"].values + 1e-9)


def test_monte_carlo_extrapolation_agrees_with_exact_path():
    """The same extrapolation on Monte Carlo paths: within its (larger) standard error of the exact
    Poisson limit."""
    law = laws.SGD(0.05, 1.5)
    mc = dmft.solve(LIN, law, t_max=1.5, paths=8000, replicas=8, seed=4, extrapolate=True, process=dmft.MonteCarlo())
    ref = sgd_linear_poisson(LIN, 1.5, mc.time.values)
    idx = np.arange(3, len(mc.time), 3)
    for var in ("train_loss", "test_loss"):
        se = mc[var + "_stderr"].values[idx]
        err = mc[var].values[idx] - ref[var].values[idx]
        tol = np.sqrt(se**2 + mc[var + "_dt_error"].values[idx] ** 2)
        assert np.all(np.abs(err) < 5 * tol), f"{var}: {np.round(err / tol, 2)}"
        # the raw recursion at dt = 0.05 / gamma = 1.5 is biased far beyond its own standard error
        raw_z = np.abs(mc[var + "_raw"].values[idx] - ref[var].values[idx]) / mc[var + "_raw_stderr"].values[idx]
        assert np.max(raw_z) > 3


@pytest.mark.parametrize("law", [laws.SGD(0.05, 1.0), laws.Persistent(0.05, 0.3, 0.5)], ids=["sgd", "persistent"])
def test_coupled_levels_cut_the_variance(monkeypatch, law):
    """Common random numbers across the Richardson levels: the extrapolated test loss has about the
    standard error of one level (independent levels: sqrt(5) times it), and agrees with the
    independent-level extrapolation within their errors. Persistent selection: the coarse chain built
    from the fine one (``Persistent.coarsen``)."""
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    ds = dmft.solve(prob, law, t_max=1.0, paths=4000, replicas=8, seed=2)
    assert "coupled" in ds.attrs["extrapolation"]
    ratio = ds.test_loss_stderr.values[1:] / ds.test_loss_raw_stderr.values[1:]
    assert np.median(ratio) < 1.6, np.round(ratio, 2)
    from sgd_dmft.dmft import coupled

    monkeypatch.setattr(coupled, "coupled_levels", lambda law, t_max, problem=None: None)  # independent levels
    ind = dmft.solve(prob, law, t_max=1.0, paths=4000, replicas=8, seed=5)
    assert "coupled" not in ind.attrs["extrapolation"]
    assert np.median(ind.test_loss_stderr.values[1:] / ind.test_loss_raw_stderr.values[1:]) > 1.8
    for var in ("train_loss", "test_loss"):
        z = (ds[var].values - ind[var].values) / np.sqrt(ds[var + "_stderr"].values ** 2
                                                         + ind[var + "_stderr"].values ** 2 + 1e-30)
        assert np.all(np.abs(z[1:]) < 5), (var, np.round(z, 2))


def test_persistent_extrapolation_is_the_small_dt_limit():
    """Coupled Richardson levels for persistent selection (dt = 0.05) against the raw recursion at
    dt = 0.0125 (its own bias ~1/16 of dt = 0.05's): within 4 combined standard errors (measured over
    4 seeds: |z| <= 1.8)."""
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    ex = dmft.solve(prob, laws.Persistent(0.05, 0.3, 0.5), t_max=1.5, paths=16000, replicas=8, seed=21)
    assert "(coupled)" in ex.attrs["levels"]
    raw = dmft.solve(prob, laws.Persistent(0.0125, 0.3, 0.5), t_max=1.5, paths=32000, replicas=8, seed=11,
                     extrapolate=False).interp(time=ex.time.values)
    for var in ("train_loss", "test_loss"):
        z = (raw[var].values - ex[var].values)[1:] / np.hypot(raw[var + "_stderr"].values,
                                                             ex[var + "_stderr"].values)[1:]
        assert np.max(np.abs(z)) < 4.0, (var, np.round(z, 2))


def test_rtol_reaches_its_target():
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    ds = dmft.solve(prob, laws.SGD(0.1, 1.0), t_max=1.0, paths=1000, replicas=4, rtol=0.005)
    a = ds.attrs
    assert a["rtol_met"] == 1 and a["rtol_achieved"] <= 0.005 and a["rtol"] == 0.005
    rel = ds.train_loss_stderr.values[1:] / ds.train_loss.values[1:]
    assert rel.max() <= 0.005 and a["replicas"] > 4 and a["paths"] == 250 * a["replicas"]
    # the same seed and target: the same batches, the same numbers
    again = dmft.solve(prob, laws.SGD(0.1, 1.0), t_max=1.0, paths=1000, replicas=4, rtol=0.005)
    np.testing.assert_array_equal(ds.train_loss.values, again.train_loss.values)


def test_max_time_stops_early_and_says_so():
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    ds = dmft.solve(prob, laws.SGD(0.1, 1.0), t_max=1.0, paths=1000, replicas=4, rtol=1e-5, max_time_s=1.0)
    assert ds.attrs["rtol_met"] == 0 and ds.attrs["rtol_achieved"] > 1e-5 and ds.attrs["max_time_s"] == 1.0


@pytest.mark.parametrize("kw, key", [({"rtol": 0.0}, "rtol"), ({"rtol": float("nan")}, "rtol"),
                                     ({"max_time_s": -1.0}, "max_time_s")])
def test_bad_accuracy_requests(kw, key):
    from sgd_dmft.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        dmft.solve(LIN, laws.SGD(0.1, 1.0), t_max=1.0, **kw)
    assert e.value.key == key


def test_unstable_coarse_level_falls_back_to_first_order_estimate():
    """GF near GD's edge: the 2 dt level would be unstable, so the estimate is |f(dt/2) - f(dt)|."""
    prob = P.Problem(P.linear(0.3), delta=2.0, ridge=0.0, init_scale=0.5)
    ds = dmft.solve(prob, laws.GF(0.2), t_max=2.0)  # dt (1 + sqrt 2)^2 = 1.17 < 2 <= 2 dt (...)
    assert "first order" in ds.attrs["extrapolation"]
    ref = gf_linear(prob, ds.time.values)
    assert np.all(np.abs(ds.train_loss.values - ref.train_loss.values) <= ds.train_loss_dt_error.values + 1e-12)


def test_nested_graded_grids():
    """refine = 1 / -1: every step split in two / consecutive pairs merged, the points nested."""
    from sgd_dmft.grid import TimeGrid

    g = TimeGrid(0.01, 0.1, 0.2)
    t, h = g.times(5.0), g.steps(60)
    f, c = TimeGrid(0.01, 0.1, 0.2, refine=1), TimeGrid(0.01, 0.1, 0.2, refine=-1)
    assert np.allclose(f.times(5.0)[::2], t, rtol=0, atol=1e-12) and len(f.times(5.0)) == 2 * len(t) - 1
    assert np.allclose(f.steps(120), np.repeat(h / 2, 2)) and np.allclose(c.steps(30), h[::2] + h[1::2])
    assert np.array_equal(c.times(5.0), t[::2])
    assert f.largest_step == 0.1 and c.largest_step == 0.4


def test_extrapolated_graded_sgd_is_the_poisson_limit():
    """A graded grid (dt 0.01, growth 0.05, dt_max 0.1, t <= 10) on nested levels (pairs of steps merged;
    the 4 dt level, mean step 0.4, is past GD's edge and left out, so the estimate is first order): within
    3e-3 of the Poisson limit where the raw recursion is 1-2 % off (its late steps are a Bernoulli fraction
    0.2 of the samples), and the error estimate covers the true error. The levels dt/2, dt, 2 dt (4x the
    cost) are within 1e-3."""
    law = laws.SGD(0.01, 0.5, growth=0.05, dt_max=0.1)
    ds = dmft.solve(LIN, law, t_max=10.0, extrapolate=True)
    assert ds.attrs["levels"] == "dt, 2 dt"
    ref = sgd_linear_poisson(LIN, 0.5, ds.time.values)
    for var in ("train_loss", "test_loss"):
        got, want, est = ds[var].values[1:], ref[var].values[1:], ds[var + "_dt_error"].values[1:]
        err = np.abs(got - want)
        assert np.max(err / want) < 3e-3, f"{var}: {np.max(err / want):.2e}"
        assert np.max(np.abs(ds[var + "_raw"].values[1:] - want) / want) > 5e-3
        assert np.all(err <= est + 1e-5 * want), f"{var}: true {err.max():.2e} vs estimate {est.max():.2e}"


def test_graded_coupled_levels_match_the_uniform_limit():
    """Logistic SGD on a graded grid (57 points to t = 4), Monte Carlo on coupled nested levels: the
    extrapolant agrees with the extrapolated uniform grid (200 points) within 4 combined s.e. (measured
    1.8), with about the raw standard error (coupling), where the raw graded recursion is 5 s.e. off."""
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    g = dmft.solve(prob, laws.SGD(0.02, 0.5, growth=0.1, dt_max=0.1), t_max=4.0, paths=16000, replicas=8, seed=1,
                   extrapolate=True)
    assert "(coupled)" in g.attrs["levels"]
    u = dmft.solve(prob, laws.SGD(0.02, 0.5), t_max=4.0, paths=16000, replicas=8, seed=2).interp(time=g.time.values)
    ok = np.isfinite(u.train_loss.values)
    ok[0] = False
    for var in ("train_loss", "test_loss"):
        z = (g[var].values - u[var].values) / np.hypot(g[var + "_stderr"].values, u[var + "_stderr"].values)
        assert np.max(np.abs(z[ok])) < 4.0, (var, np.round(z[ok], 2))
        assert np.median(g[var + "_stderr"].values[ok] / g[var + "_raw_stderr"].values[ok]) < 1.6


def test_gradient_flow_couples_its_levels_by_index(monkeypatch):
    """Logistic GF (deterministic: a smooth sampled field): coupling the levels' field innovations by index
    leaves the first-order correction, and with it the stated dt error past the first steps, a fraction of
    what coupling by time does (measured: median over t > 5, 0.21 x train, 0.09 x test; with 250 paths per
    replica, 0.5 x and 0.36 x), the two limits agreeing within their
    errors (each level has exactly its own law either way)."""
    from sgd_dmft.dmft import extrapolate

    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    run = dict(t_max=20.0, paths=4000, replicas=4, seed=3, extrapolate=True)
    idx = dmft.solve(prob, laws.GF(0.1), **run)
    monkeypatch.setattr(extrapolate, "couples_by_index", lambda law: False)
    tim = dmft.solve(prob, laws.GF(0.1), **run)
    late = idx.time.values > 5.0
    for var in ("train_loss", "test_loss"):
        e_idx, e_tim = idx[var + "_dt_error"].values[late], tim[var + "_dt_error"].values[late]
        assert np.median(e_idx) < 0.5 * np.median(e_tim), (var, np.median(e_idx), np.median(e_tim))
        z = (idx[var].values - tim[var].values)[1:] / np.hypot(idx[var + "_stderr"].values,
                                                              tim[var + "_stderr"].values)[1:]
        assert np.max(np.abs(z)) < 4.0, (var, np.round(z, 2))


def test_extrapolation_refused_where_it_does_not_apply():
    from sgd_dmft.errors import ConfigError

    with pytest.raises(ConfigError, match="discrete recursion"):
        dmft.solve(LIN, laws.GD(0.05), t_max=1.0, extrapolate=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["logistic", "committee-erf"])
def test_extrapolated_theory_vs_true_sgd_growing_d(case):
    """The dt -> 0 limit against true batch-1 SGD at d = 1000, 2000, 4000: within the combined errors
    (standard errors and the discretisation-error estimate), with no gap growing in d; the raw
    recursion at dt = 0.05, gamma = 1 is measurably off the same simulations."""
    if case == "logistic":
        prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    else:
        prob = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.3)
    law = laws.SGD(0.05, 1.0)
    th = dmft.solve(prob, law, t_max=2.0, paths=64000, replicas=16, seed=11)
    idx = np.arange(4, th.sizes["time"], 4)
    worst, worst_raw = {}, {}
    for d in (1000, 2000, 4000):
        sim = simulate(prob, "sgd", t_max=2.0, dt=0.05, d=d, gamma=1.0, batch=1, seeds=12, seed=31)
        for var in ("train_loss", "test_loss"):
            s = sim[var].values[:, idx]
            sse2 = s.var(axis=0, ddof=1) / s.shape[0]
            gap = th[var].values[idx] - s.mean(0)
            tol = np.sqrt(th[var + "_stderr"].values[idx] ** 2 + th[var + "_dt_error"].values[idx] ** 2 + sse2)
            worst[(d, var)] = float(np.max(np.abs(gap) / tol))
            raw_tol = np.sqrt(th[var + "_raw_stderr"].values[idx] ** 2 + sse2)
            worst_raw[(d, var)] = float(np.max(np.abs(th[var + "_raw"].values[idx] - s.mean(0)) / raw_tol))
    print(f"\n{case}: extrapolated worst |z| {worst}\nraw worst |z| {worst_raw}")
    assert max(worst.values()) < 5.0, worst


def test_graded_extrapolation_matches_true_sgd():
    """Logistic SGD on a graded grid (dt 0.02, growth 0.1, dt_max 0.25 = gamma / 2): the limit on nested
    levels against true batch-1 SGD at d = 1000 and 2000 (16 seeds) within 4 combined s.e. (measured
    <= 2.4), where the raw graded recursion is off by more than 3 (measured 4.2-5.5)."""
    import math

    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    g = dmft.solve(prob, laws.SGD(0.02, 0.5, growth=0.1, dt_max=0.25), t_max=6.0, paths=32000, replicas=8, seed=1,
                   extrapolate=True)
    for d in (1000, 2000):
        sim = simulate(prob, "sgd", t_max=6.0, dt=0.25, d=d, gamma=0.5, batch=1, seeds=16, seed=3)
        gi = g.interp(time=sim.time.values)
        for var in ("train_loss", "test_loss"):
            s = sim[var].values
            m, se = s.mean(0), s.std(0, ddof=1) / math.sqrt(s.shape[0])
            z = (m - gi[var].values)[1:] / np.hypot(se, gi[var + "_stderr"].values)[1:]
            z_raw = (m - gi[var + "_raw"].values)[1:] / np.hypot(se, gi[var + "_raw_stderr"].values)[1:]
            assert np.nanmax(np.abs(z)) < 4.0, (d, var, np.round(z, 2))
            if d == 2000:
                assert np.nanmax(np.abs(z_raw)) > 3.0, (var, np.round(z_raw, 2))


LOGI = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)


def test_user_level_is_the_raw_recursion_and_odd_grids_are_padded():
    """The levels dt, 2 dt, 4 dt: the user's level is drawn first on each replica's stream, so the
    extrapolated solve's ``_raw`` curves are the raw solve's, bit for bit (T a multiple of 4); an odd T
    runs the levels a few steps further and returns the user's grid."""
    law = laws.SGD(0.05, 0.5)
    ex = dmft.solve(LOGI, law, t_max=2.0, paths=400, replicas=4, seed=3)
    raw = dmft.solve(LOGI, law, t_max=2.0, paths=400, replicas=4, seed=3, extrapolate=False)
    assert ex.attrs["levels"].startswith("dt, 2 dt") and ex.attrs["levels"].endswith("(coupled)")
    np.testing.assert_array_equal(ex.train_loss_raw.values, raw.train_loss.values)
    np.testing.assert_array_equal(ex.test_loss_raw_stderr.values, raw.test_loss_stderr.values)
    odd = dmft.solve(LOGI, law, t_max=1.85, paths=400, replicas=4, seed=3)
    assert odd.sizes["time"] == 38 and odd.sizes["time2"] == 38 and abs(odd.time.values[-1] - 1.85) < 1e-12
    assert odd.attrs["grid_steps"] == 37 and np.all(np.isfinite(odd.test_loss_dt_error.values))


@pytest.mark.parametrize("level", ["mid", "coarse"])
def test_internal_level_that_diverges_does_not_fail_the_run(monkeypatch, level):
    """A Richardson level the user did not ask for diverges: the run goes on. Without 2 dt the answer is
    the raw recursion (warning, attrs); without 4 dt the estimate is first order."""
    from sgd_dmft.dmft import coupled
    from sgd_dmft.errors import SolverDiverged

    law = laws.SGD(0.05, 0.5)
    factor = {"mid": 2.0, "coarse": 4.0}[level]
    real = coupled.march

    def march(problem, lw, *a, **kw):
        if abs(lw.dt - factor * law.dt) < 1e-12:
            raise SolverDiverged(f"made up at dt={lw.dt:g}")
        return real(problem, lw, *a, **kw)

    monkeypatch.setattr(coupled, "march", march)
    raw = dmft.solve(LOGI, law, t_max=1.0, paths=400, replicas=4, seed=1, extrapolate=False)
    if level == "mid":
        with pytest.warns(RuntimeWarning, match="diverged"):
            ds = dmft.solve(LOGI, law, t_max=1.0, paths=400, replicas=4, seed=1)
        assert ds.attrs["extrapolated"] == 0 and "made up" in ds.attrs["extrapolation_failed"]
        np.testing.assert_array_equal(ds.train_loss.values, raw.train_loss.values)
        assert "train_loss_dt_error" not in ds
    else:
        ds = dmft.solve(LOGI, law, t_max=1.0, paths=400, replicas=4, seed=1)
        assert ds.attrs["extrapolated"] == 1 and ds.attrs["levels"] == "dt, 2 dt (coupled)"
        assert "first order" in ds.attrs["extrapolation"] and "made up" in ds.attrs["extrapolation_note"]
        assert np.all(np.isfinite(ds.train_loss_dt_error.values))


def test_error_level_runs_only_while_the_first_order_correction_passes_the_noise(monkeypatch):
    """Coupled levels: the 4 dt level runs up to the last time where |f(dt) - f(2 dt)| of a curve passes
    ``ERROR_LEVEL_SE`` standard errors of the extrapolated curve; past it the stated dt error is that
    first-order correction. The extrapolated curves do not depend on it (the fine and mid levels' inputs
    come from the replica seeds alone), and the partial error level equals the full one's in law."""
    from sgd_dmft.dmft import coupled

    law, kw = laws.SGD(0.05, 0.5), dict(t_max=3.0, paths=1000, replicas=8, seed=4, keep_kernels=False)
    monkeypatch.setattr(coupled, "ERROR_LEVEL_SE", 0.0)  # |d| > 0 at every time: the level runs to the end
    full = dmft.solve(LOGI, law, **kw)
    monkeypatch.setattr(coupled, "ERROR_LEVEL_SE", 1e9)  # never needed
    none = dmft.solve(LOGI, law, **kw)
    monkeypatch.setattr(coupled, "ERROR_LEVEL_SE", 0.5)
    part = dmft.solve(LOGI, law, **kw)
    assert full.attrs["levels"] == "dt, 2 dt, 4 dt (coupled)" and "error_level_until" not in full.attrs
    assert none.attrs["levels"] == "dt, 2 dt (coupled)" and none.attrs["error_level_until"] == 0.0
    for v in ("train_loss", "test_loss", "M", "Q"):
        for ds in (none, part):
            np.testing.assert_array_equal(ds[v].values, full[v].values)
            np.testing.assert_array_equal(ds[v + "_stderr"].values, full[v + "_stderr"].values)
    until = part.attrs["error_level_until"]
    assert 0.0 < until < 3.0 and part.attrs["levels"] == f"dt, 2 dt, 4 dt to t = {until:g} (coupled)"
    t = part.time.values
    past = t > until + 1e-12
    for v in ("train_loss", "test_loss"):
        np.testing.assert_array_equal(part[v + "_dt_error"].values[past], none[v + "_dt_error"].values[past])
        assert np.all(part[v + "_dt_error"].values[past] >= (1 - 1e-9) * np.abs(part[v + "_raw"] - part[v]).values[past]), v
        # before it: the second-order estimate, the same quantity as the full level's (coarse noise differs)
        early = (t > 0) & ~past
        if early.any():
            ratio = part[v + "_dt_error"].values[early].max() / full[v + "_dt_error"].values[early].max()
            assert 0.3 < ratio < 3.0, (v, ratio)


def test_error_level_rule_on_known_corrections():
    """``needs_error_level``: a correction well past ERROR_LEVEL_SE standard errors of R1 needs the level;
    one within the noise of its own estimate, or below the threshold, does not."""
    from sgd_dmft.dmft.coupled import ERROR_LEVEL_SE, needs_error_level

    rng = np.random.default_rng(0)
    R, n = 16, 41
    m = 1.0 + 0.1 * rng.standard_normal((R, n))  # mid level: se of the mean ~ 0.1 / 4
    noise = 0.01 * rng.standard_normal((R, n))  # coupled: the difference is far less noisy
    f = np.empty((R, 2 * n - 1))
    shift = np.where(np.arange(n) < 10, 0.1, 0.0)  # a first-order correction of 0.1 for the first 10 points
    f[:, ::2] = m + shift + noise
    f[:, 1::2] = 0.5 * (f[:, :-1:2] + f[:, 2::2])
    need = needs_error_level(f, m)
    se = (2 * f[:, ::2] - m).std(axis=0, ddof=1) / np.sqrt(R)
    assert np.all(need[:10]) and 0.1 > ERROR_LEVEL_SE * se[:10].max()
    assert not np.any(need[10:])  # no correction: only noise of 0.01 / 4 per point


def test_error_level_draws_only_the_normals_it_reads():
    """The error level's pass draws the fine normals only as far as its 4 dt level reads them, then resumes
    the generator from the state the first pass left after all of them: the same inputs, the same level."""
    from sgd_dmft.dmft import coupled
    from sgd_dmft.dmft.processes import MonteCarlo

    law = laws.SGD(0.05, 0.5)
    proc, cp = dmft.choose_process(LOGI, law), coupled.coupled_levels(law, 2.0, LOGI)
    seq, snap = np.random.SeedSequence(3).spawn(2)[1], np.array([0])
    first = coupled.replica_coupled(LOGI, cp, proc, 200, snap, False, 1, coupled.NAMES[:2], None, seq)
    key, state = first["z_state"]
    full = MonteCarlo.draw(LOGI, cp.schedules[0], 200, np.random.default_rng(seq), law)
    short = MonteCarlo.draw(LOGI, cp.schedules[0], 200, np.random.default_rng(seq), law, rows=23, after_z=state)
    assert key == seq.spawn_key and short.Z.shape == (23, 200) and full.Z.shape[0] > 23
    np.testing.assert_array_equal(short.Z, full.Z[:23])
    np.testing.assert_array_equal(short.eps, full.eps)
    np.testing.assert_array_equal(short.S, full.S)
    args = (LOGI, cp.error_level(5), proc, 200, snap, False, 1, coupled.NAMES[2:])
    resumed, redrawn = coupled.replica_coupled(*args, {key: state}, seq), coupled.replica_coupled(*args, None, seq)
    for var in ("Q", "M", "train", "test"):
        np.testing.assert_array_equal(resumed["coarse"][var], redrawn["coarse"][var])
