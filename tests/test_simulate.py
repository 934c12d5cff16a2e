"""Finite-d simulators: exact recursions, batch sampling, noise statistics, reproducibility, divergence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sgd_dmft import laws
from sgd_dmft import problem as P
from sgd_dmft import simulate as S
from sgd_dmft.simulate import SimulationDiverged, simulate
from sgd_dmft.simulation import LawRecursion, MiniBatchSGD, kernel_codes, run_seed, seed_rngs


def _logistic_problem(**kw):
    return P.Problem(P.logistic(0.1), delta=2.0, ridge=kw.pop("ridge", 0.1), **kw)


# --------------------------------------------------------------------------------------------
# 1. GD on the linear model against the closed-form recursion
# --------------------------------------------------------------------------------------------
def test_gd_linear_matches_closed_form():
    prob = P.Problem(P.linear(0.3), delta=1.5, ridge=0.2, init_scale=0.5, init_overlap=0.3)
    d, dt, t_max, seed = 60, 0.05, 3.0, 5
    ds = simulate(prob, "gd", t_max=t_max, dt=dt, d=d, seeds=[2], seed=seed)
    inst = S.instance_for_seed(prob, d, s=2, seed=seed)
    X, y = inst.X, inst.y
    A = X.T @ X + prob.ridge * np.eye(d)
    a, V = np.linalg.eigh(A)
    th_inf = np.linalg.solve(A, X.T @ y)[:, None]
    m = np.arange(len(ds.time))
    # theta_m = theta_inf + V (1 - dt a)^m V^T (theta_0 - theta_inf)
    c0 = V.T @ (inst.theta0 - th_inf)  # (d, 1)
    thetas = th_inf[None] + np.einsum("ij,mj->mi", V, (1 - dt * a)[None, :] ** m[:, None] * c0[:, 0][None, :])[..., None]
    Q = np.einsum("mia,mib->mab", thetas, thetas) / d
    M = np.einsum("mia,ib->mab", thetas, inst.theta_star) / d
    train = np.mean(0.5 * (np.einsum("ij,mja->mia", X, thetas)[..., 0] - y) ** 2, axis=1)
    np.testing.assert_allclose(ds.Q.values[0], Q, rtol=1e-10)
    np.testing.assert_allclose(ds.M.values[0], M, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ds.train_loss.values[0], train, rtol=1e-10)
    Ss = inst.theta_star.T @ inst.theta_star / d
    test = 0.5 * (Q[:, 0, 0] - 2 * M[:, 0, 0] + Ss[0, 0] + 0.09)
    np.testing.assert_allclose(ds.test_loss.values[0], test, rtol=1e-10)
    np.testing.assert_allclose(ds.time.values, dt * m)
    assert ds.time.values[-1] == pytest.approx(t_max)


def test_sgd_full_batch_equals_gd():
    """kappa = n, eta = gamma kappa / n = gamma: uniform SGD is GD with dt = gamma (step scaling)."""
    prob = _logistic_problem()
    d, dt = 30, 0.1
    n = S.n_samples(prob, d)
    a = simulate(prob, "sgd", t_max=1.0, dt=dt, d=d, gamma=dt, batch=n, seeds=[1])
    b = simulate(prob, "gd", t_max=1.0, dt=dt, d=d, seeds=[1])
    for v in ("Q", "M", "train_loss", "test_loss"):
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# 3. SGD batches are uniform, and one step has mean = GD step with dt = eta
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,kappa", [(12, 1), (12, 3), (10, 5)])  # integers / rejection / rng.choice paths
def test_uniform_batches_are_uniform(n, kappa):
    rng = np.random.default_rng(3)
    N = 30_000
    B = S.uniform_batches(rng, n, kappa, N)
    assert B.shape == (N, kappa) and B.min() >= 0 and B.max() < n
    srt = np.sort(B, axis=1)
    assert not np.any(srt[:, 1:] == srt[:, :-1])  # without replacement inside a batch
    counts = np.bincount(B.ravel(), minlength=n)
    p = kappa / n
    chi2 = np.sum((counts - N * p) ** 2 / (N * p * (1 - p)))
    # sum of counts is fixed, so chi2 ~ (n-1) dof up to the (1-p) factor; generous 1e-6 threshold
    assert chi2 < stats.chi2.ppf(1 - 1e-6, n - 1)
    assert chi2 > stats.chi2.ppf(1e-6, n - 1)  # not suspiciously uniform (e.g. deterministic cycling)
    if kappa >= 2:  # pairs: each unordered pair with probability kappa(kappa-1)/(n(n-1))
        pc = np.zeros((n, n))
        for a in range(kappa):
            for b in range(a + 1, kappa):
                np.add.at(pc, (srt[:, a], srt[:, b]), 1)
        iu = np.triu_indices(n, 1)
        q = kappa * (kappa - 1) / (n * (n - 1))
        z = (pc[iu] - N * q) / np.sqrt(N * q * (1 - q))
        assert np.abs(z).max() < 5.5
    # independence across steps: consecutive batches' first entries uncorrelated
    assert abs(np.corrcoef(B[:-1, 0], B[1:, 0])[0, 1]) < 5 / np.sqrt(N)


def test_sgd_step_mean_is_gd_step():
    prob = _logistic_problem(ridge=0.3)
    model = prob.model
    d, kappa, gamma = 8, 4, 0.7
    inst = S.instance_for_seed(prob, d, s=0)
    n = inst.n
    rng = np.random.default_rng(11)
    theta = inst.theta0 + 0.5 * inst.theta_star
    eta = gamma * kappa / n
    fac = 1 - eta * prob.ridge
    N = 40_000
    out = S.sgd_step(model, inst.X, inst.y, theta, S.uniform_batches(rng, n, kappa, N), gamma, fac)
    inc = out - theta[None]
    F = model.grad(inst.X @ theta, inst.y)
    gd = -eta * (inst.X.T @ F + prob.ridge * theta)
    se = inc.std(axis=0) / np.sqrt(N)
    z = (inc.mean(axis=0) - gd) / se
    assert np.abs(z).max() < 5, z
    # a single step really is theta*fac - gamma sum_B x_i F_i^T
    B = np.array([0, 3, 5, 7])
    one = S.sgd_step(model, inst.X, inst.y, theta, B, gamma, fac)
    np.testing.assert_allclose(one, fac * theta - gamma * inst.X[B].T @ F[B], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------
# 4. SME: increment mean and covariance
# --------------------------------------------------------------------------------------------
def test_sme_increment_mean_and_covariance():
    prob = _logistic_problem(ridge=0.2)
    model = prob.model
    d, dt, gamma = 6, 0.05, 0.8
    inst = S.instance_for_seed(prob, d, s=1)
    X, y, n = inst.X, inst.y, inst.n
    theta = inst.theta0 + 0.5 * inst.theta_star
    law = laws.SME(dt, gamma)
    N = 20_000
    Sm = law.sample(np.random.default_rng(4), n, N)
    inc = np.stack([S.law_step(model, X, y, theta, Sm[:, j], dt, prob.ridge)[:, 0] for j in range(N)]) - theta[:, 0]
    F = model.grad(X @ theta, y)[:, 0]
    gd = -dt * (X.T @ F + prob.ridge * theta[:, 0])
    se = inc.std(axis=0) / np.sqrt(N)
    assert np.abs((inc.mean(axis=0) - gd) / se).max() < 5
    C_exact = gamma * dt * (X * F[:, None] ** 2).T @ X  # gamma dt sum_i vec(x_i F_i) vec(x_i F_i)^T
    C_emp = np.cov(inc.T)
    assert np.trace(C_emp) == pytest.approx(np.trace(C_exact), rel=5 * np.sqrt(2 / N))
    # entries: the sample covariance entry (a, b) has variance ~ (C_aa C_bb + C_ab^2) / N
    sd = np.sqrt((np.outer(np.diag(C_exact), np.diag(C_exact)) + C_exact**2) / N)
    assert np.abs((C_emp - C_exact) / sd).max() < 5


# --------------------------------------------------------------------------------------------
# The law path is exactly the discrete recursion (pre-update r, records before the update)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lawname", ["sme", "sgd", "persistent", "reshuffle", "gd_graded", "sme_graded",
                                     "sgd_graded"])
def test_law_path_matches_manual_recursion(lawname):
    prob = P.Problem(P.committee(2, 2, "tanh", 0.1), delta=1.5, ridge=0.1)
    d, dt, gamma, T, seed, s = 20, 0.1, 0.5, 6, 3, 1
    graded = dict(growth=0.5, dt_max=0.3)  # steps 0.1, 0.1, 0.1, 0.15, 0.225, 0.3
    law = {"sme": laws.SME(dt, gamma), "sgd": laws.SGD(dt, gamma), "persistent": laws.Persistent(dt, 0.5, 0.4),
           "reshuffle": laws.Reshuffle(dt, gamma), "gd_graded": laws.GD(dt, **graded),
           "sme_graded": laws.SME(dt, gamma, **graded), "sgd_graded": laws.SGD(dt, gamma, **graded)}[lawname]
    times = law.times(T * dt if not law.graded else 1.0)
    assert len(times) == T + 1 and np.isclose(np.diff(times)[-1], 0.3 if law.graded else dt)
    rec, theta, inst = run_seed(prob, LawRecursion(law), times, d, s, seed)
    Sm = law.sample(seed_rngs(seed, s)[1], inst.n, T)
    th = inst.theta0.copy()
    for m in range(T):
        np.testing.assert_allclose(rec.Q[m], th.T @ th / d, rtol=1e-12)
        np.testing.assert_allclose(rec.train[m], np.mean(prob.model.loss(inst.X @ th, inst.y)), rtol=1e-12)
        th = S.law_step(prob.model, inst.X, inst.y, th, Sm[:, m], times[m + 1] - times[m], prob.ridge)
    np.testing.assert_allclose(theta, th, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rec.M[T], th.T @ inst.theta_star / d, rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------------------------
# 5. test_loss is the exact population loss of the drawn teacher
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [P.logistic(0.3), P.committee(2, 2, "erf", 0.1)], ids=["logistic", "committee"])
def test_test_loss_against_fresh_test_set(model):
    prob = P.Problem(model, delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)
    d, dt, t_max = 50, 0.5, 1.0
    kw = dict(d=d, gamma=0.5, batch=2, batching="uniform", seed=0)
    rec, theta, inst = run_seed(prob, MiniBatchSGD(0.5, 2), np.arange(3) * dt, d, s=0, seed=0)
    ds = simulate(prob, "sgd", seeds=[0], t_max=t_max, dt=dt, **kw)
    np.testing.assert_array_equal(ds.Q.values[0], rec.Q)
    N = 200_000
    rng = np.random.default_rng(99)
    x = rng.standard_normal((N, d)) / np.sqrt(d)
    yt = model.label(x @ inst.theta_star, rng.standard_normal(N))
    losses = model.loss(x @ theta, yt)
    mc, se = losses.mean(), losses.std() / np.sqrt(N)
    reported = float(ds.test_loss.values[0, -1])
    assert abs(mc - reported) < 5 * se + 1e-5, (mc, reported, se)


# --------------------------------------------------------------------------------------------
# 6. Reproducibility
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo,kw", [("sgd", dict(batch=2)), ("sme", {}), ("reshuffle", dict(batch=3)),
                                     ("online", {})])
def test_seeded_reproducibility(algo, kw):
    prob = _logistic_problem()
    args = dict(t_max=1.0, dt=0.25, d=30, gamma=0.5, seed=7, **kw)
    a = simulate(prob, algo, seeds=4, **args)
    b = simulate(prob, algo, seeds=[3], **args)
    c = simulate(prob, algo, seeds=4, **args)
    assert list(a.seed.values) == [0, 1, 2, 3]
    for v in ("Q", "M", "train_loss", "test_loss"):
        np.testing.assert_array_equal(a[v].values, c[v].values)
        np.testing.assert_array_equal(a[v].sel(seed=[3]).values, b[v].values)
    assert not np.array_equal(a.Q.values[0], a.Q.values[1])
    other = simulate(prob, algo, seeds=[3], **{**args, "seed": 8})
    assert not np.array_equal(other.Q.values, b.Q.values)


# --------------------------------------------------------------------------------------------
# 7. Bernoulli SGD == law path with laws.SGD; reshuffling visits each sample once per epoch
# --------------------------------------------------------------------------------------------
def test_bernoulli_sgd_is_law_path():
    prob = _logistic_problem()
    args = dict(t_max=1.0, dt=0.1, d=30, gamma=0.5, seeds=2, seed=1)
    a = simulate(prob, "sgd", batching="bernoulli", **args)
    b = simulate(prob, "law", law=laws.SGD(0.1, 0.5), **args)
    for v in ("Q", "M", "train_loss", "test_loss"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    g1 = simulate(prob, "gd", **args)
    g2 = simulate(prob, "law", law=laws.GD(0.1), **args)
    np.testing.assert_array_equal(g1.Q.values, g2.Q.values)


@pytest.mark.parametrize("n,kappa", [(10, 3), (12, 4), (7, 1)])
def test_reshuffle_visits_each_sample_once_per_epoch(n, kappa):
    st = S.ReshuffleStream(np.random.default_rng(0), n, kappa)
    nb = -(-n // kappa)
    chunks = [st.take(m) for m in (1, 2, nb + 1, 3 * nb - 2, 5)]
    idx = np.concatenate([c[0] for c in chunks])
    sizes = np.concatenate([np.diff(c[1]) for c in chunks])
    n_ep = len(sizes) // nb
    assert np.all(sizes[: n_ep * nb] == np.tile(st.batch_sizes(), n_ep))
    perms = [idx[e * n:(e + 1) * n] for e in range(n_ep)]
    for p in perms:
        assert sorted(p.tolist()) == list(range(n))
    assert len({tuple(p) for p in perms}) > 1  # fresh permutation per epoch
    # records at multiples of gamma fall on epoch boundaries
    rs = S.reshuffle_record_steps(np.array([0.0, 0.5, 1.0, 2.5]), n, kappa, gamma=0.5)
    assert list(rs[[0, 2, 3]]) == [0, 2 * nb, 5 * nb]


def test_reshuffle_simulation_one_jump_per_epoch():
    """Linear model, gamma = 1 / |x_i|^2 is not available, but with kappa = n reshuffling is GD at dt = gamma."""
    prob = _logistic_problem()
    d = 20
    n = S.n_samples(prob, d)
    a = simulate(prob, "reshuffle", t_max=1.0, dt=0.25, d=d, gamma=0.25, batch=n, seeds=[0])
    b = simulate(prob, "gd", t_max=1.0, dt=0.25, d=d, seeds=[0])
    np.testing.assert_allclose(a.Q.values, b.Q.values, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# numba kernel == numpy fallback (custom model), incl. the scalar ridge trick
# --------------------------------------------------------------------------------------------
def test_numba_kernel_matches_numpy_fallback():
    base = P.logistic(0.1)
    cust = P.custom(base.loss, base.label, grad=base.grad, hess=base.hess, noise=0.1)
    assert kernel_codes(base) is not None and kernel_codes(cust) is None
    args = dict(t_max=10.0, dt=2.5, d=25, gamma=0.7, batch=3, seeds=[0])  # ~240 steps: c < 1e-3 folds
    for algo in ("sgd", "reshuffle", "online"):
        prob = P.Problem(base, delta=2.0, ridge=0.8)  # eta*ridge large enough to trigger renormalisation
        a = simulate(prob, algo, **args)
        b = simulate(prob.with_(model=cust), algo, **args)
        np.testing.assert_allclose(a.Q.values, b.Q.values, rtol=1e-10)
        np.testing.assert_allclose(a.M.values, b.M.values, rtol=1e-10, atol=1e-14)


def test_online_outputs():
    prob = _logistic_problem()
    ds = simulate(prob, "online", t_max=1.0, dt=0.5, d=40, gamma=0.5, batch=2, seeds=2)
    assert np.all(np.isnan(ds.train_loss.values))
    assert np.all(np.isfinite(ds.test_loss.values))
    assert ds.test_loss.values[:, -1].mean() < ds.test_loss.values[:, 0].mean()


def test_dataset_layout_and_netcdf(tmp_path):
    prob = P.Problem(P.committee(3, 2, "relu", 0.1), delta=1.0, ridge=0.0)
    ds = simulate(prob, "sgd", t_max=0.4, dt=0.2, d=20, gamma=0.5, seeds=[5, 9])
    assert ds.Q.dims == ("seed", "time", "k", "k2") and ds.M.dims == ("seed", "time", "k", "kstar")
    assert ds.Q.shape == (2, 3, 3, 3) and ds.M.shape == (2, 3, 3, 2)
    assert list(ds.seed.values) == [5, 9]
    for key in ("d", "n", "algorithm", "gamma", "dt", "batch", "batching", "t_max", "delta", "ridge", "model"):
        assert key in ds.attrs
    for v in ds.attrs.values():
        assert isinstance(v, (int, float, str))
    path = tmp_path / "sim.nc"
    ds.to_netcdf(path)
    import xarray as xr

    back = xr.load_dataset(path)
    np.testing.assert_array_equal(back.Q.values, ds.Q.values)


def test_invalid_arguments():
    prob = _logistic_problem()
    with pytest.raises(ValueError):
        simulate(prob, "adam", t_max=1, dt=0.1, d=10)
    with pytest.raises(ValueError):
        simulate(prob, "law", t_max=1, dt=0.1, d=10)
    with pytest.raises(ValueError):
        simulate(prob, "law", t_max=1, dt=0.1, d=10, law=laws.GD(0.2))
    with pytest.raises(ValueError):
        simulate(prob, "sgd", batching="bernoulli", t_max=1, dt=0.5, gamma=0.1, d=10)  # dt > gamma


# --------------------------------------------------------------------------------------------
# 8. Divergence
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo,kw", [("sgd", {}), ("sgd", dict(batching="bernoulli"))])
def test_divergence_raises(algo, kw):
    prob = P.Problem(P.linear(0.1), delta=2.0, ridge=0.0)
    with pytest.raises(SimulationDiverged, match=r"algorithm=sgd, gamma=3.*t="):
        simulate(prob, algo, t_max=200.0, dt=0.5, d=50, gamma=3.0, **kw)
    # and a stable gamma does not
    simulate(prob, algo, t_max=5.0, dt=0.5, d=50, gamma=1.0, seeds=1, **kw)  # (seed 0; d = 50 is small)
