"""User (PyTorch) conventions <-> internal conventions: same pre-activations step by step, round trip."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sgd_dmft.conventions import data_from_internal, data_to_internal, from_pytorch, to_pytorch


def _F_logistic(r, y):  # gradient of log(1 + exp(-y r)) w.r.t. r
    return -y / (1.0 + np.exp(y * r))


@pytest.mark.parametrize("B, wd", [(1, 0.0), (4, 0.01), (25, 0.1)])
def test_same_preactivations_step_by_step(B, wd):
    rng = np.random.default_rng(0)
    d, n, steps, lr = 50, 100, 40, 0.05
    X_raw = rng.standard_normal((n, d))
    w_star = rng.standard_normal(d) / math.sqrt(d)
    y = np.sign(X_raw @ w_star)
    w = 0.5 * rng.standard_normal(d) / math.sqrt(d)
    batches = [rng.choice(n, size=B, replace=False) for _ in range(steps)]

    p = from_pytorch(lr, B, n, d, weight_decay=wd, steps=steps, init_std=0.5 / math.sqrt(d))
    eta, lam, kappa = p["eta"], p["ridge"], p["batch_size"]
    assert p["delta"] == n / d and p["gamma"] == pytest.approx(eta * n / kappa)
    assert p["t"] == pytest.approx(steps * eta) and p["epochs"] == pytest.approx(steps * B / n)
    assert p["epochs"] * p["gamma"] == pytest.approx(p["t"]) and p["init_scale"] == pytest.approx(0.5)

    X, theta = data_to_internal(X_raw, w)
    assert np.allclose(X @ theta, X_raw @ w, rtol=1e-13, atol=1e-13)
    for b in batches:
        # PyTorch: mean loss over the batch + weight decay, on raw data
        g_user = X_raw[b].T @ _F_logistic(X_raw[b] @ w, y[b]) / B + wd * w
        w = w - lr * g_user
        # internal: summed risk, (n / kappa) rescaled batch gradient, ridge lambda, step eta
        g_int = (n / kappa) * X[b].T @ _F_logistic(X[b] @ theta, y[b]) + lam * theta
        theta = theta - eta * g_int
        np.testing.assert_allclose(X @ theta, X_raw @ w, rtol=1e-11, atol=1e-12)
    X_back, w_back = data_from_internal(X, theta)
    np.testing.assert_allclose(X_back, X_raw, rtol=1e-14)
    np.testing.assert_allclose(w_back, w, rtol=1e-11, atol=1e-14)


@settings(max_examples=200, deadline=None)
@given(lr=st.floats(1e-5, 10.0), B=st.integers(1, 64), n=st.integers(64, 10_000), d=st.integers(1, 5_000),
       wd=st.floats(0.0, 1.0), steps=st.integers(0, 10**6), init_std=st.floats(0.0, 2.0))
def test_round_trip_identity(lr, B, n, d, wd, steps, init_std):
    p = from_pytorch(lr, B, n, d, weight_decay=wd, steps=steps, init_std=init_std)
    q = to_pytorch(p["gamma"], p["delta"], d, batch_size=p["batch_size"], ridge=p["ridge"], t=p["t"],
                   init_scale=p["init_scale"])
    assert q["n"] == n and q["d"] == d and q["batch_size"] == B
    assert q["lr"] == pytest.approx(lr, rel=1e-12)
    assert q["weight_decay"] == pytest.approx(wd, rel=1e-12, abs=1e-300)
    assert q["steps"] == pytest.approx(steps, rel=1e-12, abs=1e-9)
    assert q["eta"] == pytest.approx(p["eta"], rel=1e-12)
    assert q["epochs"] == pytest.approx(p["epochs"], rel=1e-12, abs=1e-12)
    assert q["init_std"] == pytest.approx(init_std, rel=1e-12, abs=1e-300)
    # and the other way round
    r = from_pytorch(q["lr"], q["batch_size"], q["n"], q["d"], weight_decay=q["weight_decay"], steps=q["steps"])
    for key in ("gamma", "delta", "eta", "ridge", "t"):
        assert r[key] == pytest.approx(p[key], rel=1e-12, abs=1e-300)


def test_known_values_and_errors():
    p = from_pytorch(lr=0.01, batch_size=10, n=2000, d=1000, weight_decay=0.05, steps=200)
    assert p["batch_size"] == 10 and p["init_scale"] is None
    assert (p["gamma"], p["delta"], p["eta"], p["ridge"], p["t"], p["epochs"]) == pytest.approx(
        (1.0, 2.0, 0.005, 0.1, 1.0, 1.0))
    assert from_pytorch(0.1, 1, 10, 10)["t"] is None
    for bad in [dict(lr=0.0), dict(lr=-1.0), dict(batch_size=0), dict(n=0), dict(d=0), dict(weight_decay=-1.0),
                dict(batch_size=11)]:
        kw = dict(lr=0.1, batch_size=1, n=10, d=10) | bad
        with pytest.raises(ValueError):
            from_pytorch(**kw)
    with pytest.raises(ValueError):
        to_pytorch(gamma=1.0, delta=0.01, d=10)
    with pytest.raises(ValueError):
        to_pytorch(gamma=0.0, delta=1.0, d=10)


USER = ("lr", "batch_size", "n", "d", "weight_decay", "steps", "init_std", "loss_scale")
INTERNAL = ("gamma", "delta", "d", "batch_size", "ridge", "t", "init_scale", "loss_scale")


@settings(max_examples=100, deadline=None)
@given(lr=st.floats(1e-5, 10.0), B=st.integers(1, 64), n=st.integers(64, 10_000), d=st.integers(1, 5_000),
       wd=st.floats(0.0, 1.0), steps=st.integers(0, 10**6), init_std=st.floats(0.0, 2.0),
       c=st.sampled_from([1.0, 2.0, 0.5]))
def test_same_names_both_ways(lr, B, n, d, wd, steps, init_std, c):
    """from_pytorch returns to_pytorch's arguments and vice versa: ** round trips, both directions."""
    kw = dict(lr=lr, batch_size=B, n=n, d=d, weight_decay=wd, steps=steps, init_std=init_std, loss_scale=c)
    p = from_pytorch(**kw)
    assert set(INTERNAL) <= set(p)
    q = to_pytorch(**p)
    assert set(USER) <= set(q)
    for key in USER:
        assert q[key] == pytest.approx(kw[key], rel=1e-12, abs=1e-9), key
    r = from_pytorch(**q)
    for key in INTERNAL + ("eta", "epochs"):
        assert r[key] == pytest.approx(p[key], rel=1e-12, abs=1e-12), key


def test_loss_scale_mse_doubles_gamma():
    """nn.MSELoss is twice the package's square loss: same lr, twice gamma, half the ridge."""
    a = from_pytorch(lr=0.01, batch_size=10, n=2000, d=1000, weight_decay=0.05, steps=200)
    b = from_pytorch(lr=0.01, batch_size=10, n=2000, d=1000, weight_decay=0.05, steps=200, loss_scale=2.0)
    assert b["gamma"] == pytest.approx(2 * a["gamma"]) and b["t"] == pytest.approx(2 * a["t"])
    assert b["ridge"] == pytest.approx(a["ridge"] / 2) and b["epochs"] == a["epochs"]


def test_mse_step_is_twice_the_internal_step():
    """One PyTorch-style step on mean (f - y)^2 with lr = one internal step with gamma = 2 lr d / B."""
    rng = np.random.default_rng(3)
    d, n, B, lr = 40, 80, 8, 0.05
    X_raw, w = rng.standard_normal((n, d)), rng.standard_normal(d) / math.sqrt(d)
    y = X_raw @ rng.standard_normal(d) / math.sqrt(d)
    b = rng.choice(n, B, replace=False)
    w1 = w - lr * X_raw[b].T @ (2 * (X_raw[b] @ w - y[b])) / B  # grad of mean (f - y)^2
    p = from_pytorch(lr, B, n, d, loss_scale=2.0)
    X, theta = data_to_internal(X_raw, w)
    theta1 = theta - p["gamma"] * X[b].T @ (X[b] @ theta - y[b])  # F = f - y for (f - y)^2 / 2
    np.testing.assert_allclose(X @ theta1, X_raw @ w1, rtol=1e-12, atol=1e-12)


def test_epochs_of_a_dataloader_loop():
    """B not dividing n: ceil(n / B) steps per epoch; epochs give t = epochs * gamma."""
    p = from_pytorch(lr=0.01, batch_size=30, n=1000, d=500, epochs=3)
    assert p["steps_per_epoch"] == 34 and p["t"] == pytest.approx(3 * p["gamma"]) and p["epochs"] == 3
    assert from_pytorch(lr=0.01, batch_size=30, n=1000, d=500, epochs=3, steps=102)["t"] == pytest.approx(p["t"])
    assert from_pytorch(lr=0.01, batch_size=30, n=1000, d=500, epochs=3, steps=100)["t"] == pytest.approx(p["t"])
    with pytest.raises(ValueError, match="disagree"):
        from_pytorch(lr=0.01, batch_size=30, n=1000, d=500, epochs=3, steps=50)
    with pytest.raises(ValueError, match="eta"):
        from_pytorch(lr=0.01, batch_size=30, n=1000, d=500, eta=1.0)
    with pytest.raises(ValueError, match="n="):
        to_pytorch(gamma=1.0, delta=2.0, d=500, n=999)


def test_linear_default_init_and_deprecated_names():
    """nn.Linear's default init is init_scale = 1/sqrt 3; the old key "batch" still reads, with a warning."""
    from sgd_dmft.conventions import LINEAR_DEFAULT_INIT_SCALE, linear_default_init_std

    d = 700
    p = from_pytorch(lr=0.01, batch_size=10, n=1400, d=d, init_std=linear_default_init_std(d))
    assert p["init_scale"] == pytest.approx(LINEAR_DEFAULT_INIT_SCALE) == pytest.approx(1 / math.sqrt(3))
    # the std of U(-1/sqrt d, 1/sqrt d), the kaiming-uniform(a = sqrt 5) bound of nn.Linear
    w = np.random.default_rng(0).uniform(-1 / math.sqrt(d), 1 / math.sqrt(d), size=(d, 400))
    assert w.std() * math.sqrt(d) == pytest.approx(1 / math.sqrt(3), rel=0.01)
    with pytest.warns(DeprecationWarning, match="batch_size"):
        assert p["batch"] == 10
    with pytest.warns(DeprecationWarning, match="batch_size"):
        assert to_pytorch(gamma=1.0, delta=2.0, d=10, batch=4)["batch_size"] == 4
    assert "batch" not in p


def test_from_pytorch_warns_far_from_the_critical_scale():
    """issue 21: a PyTorch lr read literally (gamma 50) went unnoticed."""
    import warnings

    from sgd_dmft.conventions import from_pytorch

    with pytest.warns(RuntimeWarning, match="critical scale"):
        from_pytorch(lr=0.1, batch_size=8, n=8000, d=4000)  # gamma = 0.1 * 4000 / 8 = 50
    with pytest.warns(RuntimeWarning, match="gradient flow"):
        from_pytorch(lr=1e-6, batch_size=8, n=8000, d=4000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_pytorch(lr=0.002, batch_size=8, n=8000, d=4000)["gamma"] == pytest.approx(1.0)
