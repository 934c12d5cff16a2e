"""The test 0-1 error of classifiers (issue 21B): one function of the overlaps (models.zero_one_error) for
the theory (DMFT M, Q) and the simulations (their empirical M, Q and teacher S*), checked against the
closed form of a noiseless sign teacher and a linear student, against Monte Carlo labels drawn as the model
draws them (noise included), and theory against simulation in units of the combined standard error."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from sgd_dmft import dmft, laws
from sgd_dmft import models as P
from sgd_dmft.online import solve_online
from sgd_dmft.plot import curves_figure
from sgd_dmft.results import read_dataset, write_dataset
from sgd_dmft.simulate import simulate

Z_MAX = 5.0  # as tests/test_dmft.py: ~10 checked times, Student-t errors


def test_noiseless_sign_teacher_closed_form():
    """Linear student sign(r), labels sign(r*): P(error) = arccos(M / sqrt(Q rho)) / pi, rho = S*."""
    rng = np.random.default_rng(0)
    Q = rng.uniform(0.1, 3.0, 50)
    rho = rng.uniform(0.5, 2.0, 50)
    M = rng.uniform(-1, 1, 50) * np.sqrt(Q * rho)
    for q, m, r in zip(Q, M, rho):
        got = P.zero_one_error(P.logistic(), np.array([[q]]), np.array([[m]]), np.array([[r]]))
        assert got == pytest.approx(np.arccos(m / np.sqrt(q * r)) / np.pi, abs=1e-14)
    batch = P.zero_one_error(P.logistic(), Q[:, None, None], M[:, None, None])  # S* = I
    assert batch.shape == (50,) and np.all((batch >= 0) & (batch <= 1))
    assert P.zero_one_error(P.logistic(), np.array([[1.0]]), np.array([[1.0]])) == pytest.approx(0.0, abs=1e-7)
    assert P.zero_one_error(P.logistic(), np.array([[0.0]]), np.array([[0.0]])) == 0.5  # theta = 0: a coin


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_labels_as_the_model_draws_them(noise):
    """Monte Carlo over (r, r*, eps) with the model's own label(): the noisy label is random."""
    model, rng = P.logistic(noise), np.random.default_rng(1)
    Q, M, n = 1.3, 0.6, 400_000
    rstar = rng.standard_normal(n)
    r = M * rstar + np.sqrt(Q - M**2) * rng.standard_normal(n)
    y = model.label(rstar[:, None], rng.standard_normal(n))
    wrong = (np.sign(r) != y).astype(float)
    want = P.zero_one_error(model, np.array([[Q]]), np.array([[M]]))
    assert abs(wrong.mean() - want) < 4 * wrong.std() / np.sqrt(n)


def test_only_classifiers_report_it():
    assert P.classifies(P.logistic()) and not P.classifies(P.linear()) and not P.classifies(P.committee())
    assert P.zero_one_error(P.linear(), np.eye(1), np.eye(1)) is None
    lin = P.Problem(P.linear(0.1), delta=2.0, ridge=0.1)
    assert "test_error" not in simulate(lin, "gd", t_max=0.2, dt=0.1, d=20, seeds=2)
    assert "test_error" not in dmft.solve(lin, laws.GD(0.1), t_max=0.2, paths=100, replicas=2)


def _z(th, sim, idx):
    a, sa = th["test_error"].values[idx], th["test_error_stderr"].values[idx]
    s = sim["test_error"].values[:, idx]
    return (a - s.mean(0)) / np.sqrt(sa**2 + s.var(0, ddof=1) / s.shape[0] + 1e-30)


def test_theory_matches_simulation(tmp_path):
    """Logistic SGD (the raw recursion on both sides) at d = 500: within Z_MAX combined s.e. at every
    checked time; the file round trip and the figure panel keep it."""
    prob = P.Problem(P.logistic(0.3), delta=2.0, ridge=0.1, init_scale=0.5)
    law = laws.SGD(0.05, 0.5)
    th = dmft.solve(prob, law, t_max=1.5, paths=4000, replicas=4, seed=1, extrapolate=False)
    sim = simulate(prob, "law", law=law, t_max=1.5, dt=law.dt, d=500, seeds=8, seed=7)
    assert th["test_error"].attrs["units"].startswith("probability") and "test_error" in sim
    idx = np.unique(np.linspace(0, th.sizes["time"] - 1, 10).round().astype(int))
    z = _z(th, sim, idx)
    assert np.all(np.abs(z) < Z_MAX), f"test_error: z = {np.round(z, 2)}"
    assert th["test_error"].values[-1] < 0.4 < th["test_error"].values[0]  # it learns
    back = read_dataset(write_dataset(sim, tmp_path / "sim.nc"))
    np.testing.assert_array_equal(back["test_error"].values, sim["test_error"].values)
    fig = curves_figure(sim, th)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
    plt.close(fig)
    assert "(c) 0-1 test error" in titles


def test_online_reports_it_per_replica():
    prob = P.Problem(P.logistic(), delta=2.0, ridge=0.1)
    ds = solve_online(prob, gamma=0.5, t_max=1.0, dt=0.25)
    assert "test_error" in ds and "test_error_stderr" in ds
    np.testing.assert_allclose(ds["test_error"].values,
                               P.zero_one_error(prob.model, ds["Q"].values, ds["M"].values), atol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_two_layer_logistic_rule_matches_the_closed_form(noise):
    """The two-layer logistic model's quadrature (QMC, the noise in closed form) on a linear unit and the link
    z1 is the logistic preset: within the rule's error (ZERO_ONE_POINTS Sobol points, ~1e-3)."""
    m = P.two_layer(1, 1, "linear", teacher="z1", second_layer=[1.0], loss="logistic", noise=noise)
    Q = np.linspace(0.2, 2.0, 40)[:, None, None]
    M = np.linspace(-0.9, 0.9, 40)[:, None, None] * np.sqrt(Q)
    got, want = P.zero_one_error(m, Q, M), P.zero_one_error(P.logistic(noise), Q, M)
    assert np.max(np.abs(got - want)) < 3e-3
    assert P.classifies(m) and not P.classifies(P.two_layer(loss="square"))


def test_two_layer_logistic_simulation_records_it():
    m = P.two_layer(2, 1, "tanh", teacher="sign(z1)", loss="logistic")
    sim = simulate(P.Problem(m, delta=2.0, ridge=0.1), "gd", t_max=0.4, dt=0.2, d=40, seeds=2)
    assert sim["test_error"].shape == (2, 3) and np.all((sim["test_error"] >= 0) & (sim["test_error"] <= 1))
