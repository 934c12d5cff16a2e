"""Models: gradients/hessians against finite differences; population loss; initial moments; pickling."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import problem as P
from sgd_dmft.simulate import instance_for_seed


def _presets():
    out = [("linear", P.linear(0.3)), ("logistic", P.logistic(0.2)), ("phase_retrieval", P.phase_retrieval(0.1))]
    for act in P.ACTIVATIONS:
        out.append((f"committee-{act}", P.committee(2, 2, act, 0.1)))
    return out


def _custom_model():
    # smooth non-square loss, k = 2: log cosh(r0 + 0.5 r1 - y) + 0.1 r0^2 r1^2 (grad/hess derived by FD)
    def loss(r, y):
        return np.log(np.cosh(r[..., 0] + 0.5 * r[..., 1] - y)) + 0.1 * r[..., 0] ** 2 * r[..., 1] ** 2

    def label(rs, eps):
        return np.tanh(rs[..., 0]) + 0.1 * eps

    return P.custom(loss, label, k=2, kstar=1)


def _custom_exact(r, y):
    u = r[..., 0] + 0.5 * r[..., 1] - y
    th = np.tanh(u)
    g = np.stack([th + 0.2 * r[..., 0] * r[..., 1] ** 2, 0.5 * th + 0.2 * r[..., 0] ** 2 * r[..., 1]], -1)
    s2 = 1 - th**2
    h = np.empty(r.shape + (2,))
    h[..., 0, 0] = s2 + 0.2 * r[..., 1] ** 2
    h[..., 1, 1] = 0.25 * s2 + 0.2 * r[..., 0] ** 2
    h[..., 0, 1] = h[..., 1, 0] = 0.5 * s2 + 0.4 * r[..., 0] * r[..., 1]
    return g, h


def _points(model, N=200, seed=0):
    rng = np.random.default_rng(seed)
    r = 1.3 * rng.standard_normal((N, model.k))
    r = np.where(np.abs(r) < 1e-2, 0.3, r)  # stay off the relu kink
    y = model.label(rng.standard_normal((N, model.kstar)), rng.standard_normal(N))
    return r, np.asarray(y, dtype=float)


def _fd(fun, r, y, h=1e-6):
    k = r.shape[-1]
    cols = []
    for a in range(k):
        e = np.zeros(k)
        e[a] = h
        cols.append((fun(r + e, y) - fun(r - e, y)) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("name,model", _presets() + [("custom", _custom_model())], ids=lambda v: v if isinstance(v, str) else "")
def test_grad_and_hess_match_finite_differences(name, model):
    r, y = _points(model)
    F = model.grad(r, y)
    assert F.shape == r.shape
    np.testing.assert_allclose(F, _fd(model.loss, r, y), rtol=1e-6, atol=1e-7)
    H = model.hess(r, y)
    assert H.shape == r.shape + (model.k,)
    np.testing.assert_allclose(H, _fd(model.grad, r, y, h=1e-5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H, np.swapaxes(H, -1, -2), atol=1e-10)


def test_custom_fd_derivatives_match_exact():
    model = _custom_model()
    r, y = _points(model)
    g, h = _custom_exact(r, y)
    np.testing.assert_allclose(model.grad(r, y), g, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(model.hess(r, y), h, rtol=1e-4, atol=1e-5)  # FD of FD: ~eps/h^2


def test_population_loss_linear_against_fresh_test_set():
    model = P.linear(0.4)
    d, N = 40, 400_000
    rng = np.random.default_rng(7)
    ts = rng.standard_normal((d, 1))
    th = 0.6 * ts + 0.8 * rng.standard_normal((d, 1))
    Q, M, S = th.T @ th / d, th.T @ ts / d, ts.T @ ts / d
    exact = P.population_loss(model, Q, M, S)
    x = rng.standard_normal((N, d)) / np.sqrt(d)
    y = model.label(x @ ts, rng.standard_normal(N))
    losses = model.loss(x @ th, y)
    mc, se = losses.mean(), losses.std() / np.sqrt(N)
    assert abs(mc - exact) < 5 * se, (mc, exact, se)
    # and the closed form itself
    assert exact == pytest.approx(0.5 * (Q[0, 0] - 2 * M[0, 0] + S[0, 0] + 0.16), rel=1e-14)


@pytest.mark.parametrize("k,kstar", [(2, 2), (3, 2), (1, 2)])
def test_init_moments_match_finite_d_initialisation(k, kstar):
    prob = P.Problem(P.committee(k, kstar, "erf"), delta=0.01, init_scale=0.5, init_overlap=0.7)
    d = 40_000
    inst = instance_for_seed(prob, d, s=0, seed=1, with_data=False)
    Sstar = inst.theta_star.T @ inst.theta_star / d
    C0, M0 = prob.init_moments(Sstar)
    Q0 = inst.theta0.T @ inst.theta0 / d
    Me = inst.theta0.T @ inst.theta_star / d
    tol = 6 / np.sqrt(d)
    np.testing.assert_allclose(Q0, C0, atol=tol)
    np.testing.assert_allclose(Me, M0, atol=tol)
    C0i, M0i = prob.init_moments()
    assert C0i.shape == (k, k) and M0i.shape == (k, kstar)
    np.testing.assert_allclose(np.diag(C0i), 0.25 + 0.49 * (np.arange(k) < min(k, kstar)))


def _tanh_loss(r, y):  # module-level: a custom model built from these pickles
    return 0.5 * (np.tanh(r[..., 0]) - y) ** 2


def _tanh_label(rs, eps):
    return np.tanh(rs[..., 0]) + 0.1 * eps


@pytest.mark.parametrize("name,model", _presets() + [("custom-fd", P.custom(_tanh_loss, _tanh_label))],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_models_pickle_natively(name, model):
    """Worker processes rebuild models from the pickle: same fields, same numbers."""
    import pickle

    q = pickle.loads(pickle.dumps(P.Problem(model, delta=2.0, ridge=0.1))).model
    assert q == model and type(q) is type(model)
    r, y = _points(model, N=7, seed=3)
    rs, eps = np.random.default_rng(4).standard_normal((7, model.kstar)), np.random.default_rng(5).standard_normal(7)
    for fn in ("loss", "grad", "hess"):
        np.testing.assert_array_equal(getattr(q, fn)(r, y), getattr(model, fn)(r, y))
    np.testing.assert_array_equal(q.labels(rs, eps), model.labels(rs, eps))
    assert (q.name, q.k, q.kstar, q.noise, q.meta, q.smooth, q.kernel_spec) == (
        model.name, model.k, model.kstar, model.noise, model.meta, model.smooth, model.kernel_spec)
    if model.pop_loss is not None:
        Q, M = np.array([[[1.1] * model.k] * model.k]) * 0.3 + np.eye(model.k), np.full((1, model.k, model.kstar), 0.4)
        np.testing.assert_array_equal(q.pop_loss(Q, M, np.eye(model.kstar)), model.pop_loss(Q, M, np.eye(model.kstar)))


def test_flag_overrides_pickle_and_unpicklable_callables_fail_loudly():
    import copy
    import dataclasses
    import pickle

    mc = dataclasses.replace(P.linear(0.3), linear_square=False)
    assert pickle.loads(pickle.dumps(mc)).linear_square is False
    rough = dataclasses.replace(P.committee(2, 2, "erf"), smooth=False)
    assert pickle.loads(pickle.dumps(rough)).smooth is False
    custom = P.custom(lambda r, y: 0.5 * (r[..., 0] - y) ** 2, lambda rs, e: rs[..., 0])
    assert copy.deepcopy(custom).loss is custom.loss
    with pytest.raises(Exception):
        pickle.dumps(custom)  # lambdas do not pickle
    with pytest.raises(TypeError):
        dataclasses.replace(P.logistic(), loss=lambda r, y: 0 * r[..., 0])  # a preset's loss is a method


def test_committee_population_loss_closed_forms():
    """erf / relu / x^2 committees: closed-form pair moments; checked at known points and by Monte Carlo."""
    pm = P._pair_moment
    one, zero = np.ones(1), np.zeros(1)
    assert pm("erf", one, one, one)[0] == pytest.approx(1 / 3)  # E[erf(u/sqrt2)^2] = (2/pi) asin(1/2)
    assert pm("relu", one, one, zero)[0] == pytest.approx(1 / (2 * np.pi))  # (E relu(u))^2
    assert pm("relu", 4 * one, one, 2 * one)[0] == pytest.approx(1.0)  # v = u/2: E[relu(u)^2] / 2 = 1
    assert pm("quadratic", 2 * one, 3 * one, one)[0] == pytest.approx(8.0)
    assert P.committee(2, 2, "tanh").pop_loss is None  # no closed form: quadrature
    rng = np.random.default_rng(5)
    for act in ("erf", "relu", "quadratic"):
        k, ks = 3, 2
        m = P.committee(k, ks, act, 0.2)
        B = rng.standard_normal((ks, ks)) * 0.3
        S = B @ B.T + np.eye(ks)
        M = rng.standard_normal((1, k, ks)) * 0.7
        E = rng.standard_normal((1, k, k)) * 0.5
        Q = M @ np.linalg.inv(S) @ M.transpose(0, 2, 1) + E @ E.transpose(0, 2, 1) + 0.05 * np.eye(k)
        L = np.linalg.cholesky(np.block([[Q[0], M[0]], [M[0].T, S]]))
        z = rng.standard_normal((2_000_000, k + ks)) @ L.T
        vals = 0.5 * (m.predictor(z[:, :k]) - m.target(z[:, k:])) ** 2 + 0.5 * 0.2**2
        se = vals.std() / np.sqrt(len(vals))
        assert abs(P.population_loss(m, Q, M, S)[0] - vals.mean()) < 5 * se, act
