"""The models package: activations and their closed forms, capabilities, the init projection."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sgd_dmft import models
from sgd_dmft.models import activations as A
from sgd_dmft.models import closed_forms as CF
from sgd_dmft.models.gaussian import joint_cov


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", models.ACTIVATIONS)
def test_activation_derivatives_match_finite_differences(name):
    act = models.get_activation(name)
    x = np.linspace(-3.0, 3.0, 61) + 0.013  # off the relu kink
    h = 1e-5
    np.testing.assert_allclose(act.df(x), (act.f(x + h) - act.f(x - h)) / (2 * h), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(act.d2f(x), (act.df(x + h) - act.df(x - h)) / (2 * h), rtol=1e-6, atol=1e-7)
    assert act.f(x).shape == act.df(x).shape == act.d2f(x).shape == x.shape


def test_activation_registry_codes_and_smoothness():
    assert models.ACTIVATIONS == ("erf", "relu", "tanh", "quadratic", "linear")
    assert [models.get_activation(a).code for a in models.ACTIVATIONS] == [0, 1, 2, 3, 4]
    assert [models.get_activation(a).smooth for a in models.ACTIVATIONS] == [True, False, True, True, True]
    assert models.get_activation(A.RELU) is A.RELU
    assert A.TANH.pair_moment is None and A.pair_moment("tanh", 1.0, 1.0, 0.5) is None
    with pytest.raises(ValueError) as err:
        models.get_activation("sigmoid")
    msg = str(err.value)
    assert "\n" not in msg and "'sigmoid'" in msg and all(a in msg for a in models.ACTIVATIONS)


@pytest.mark.parametrize("name", ["erf", "relu", "quadratic"])
def test_pair_moments_match_monte_carlo(name):
    """``E[s(u) s(v)]`` in closed form against 10^6 samples, at three covariances (incl. negative c)."""
    act = models.get_activation(name)
    rng = np.random.default_rng(11)
    for q1, q2, c in ((1.0, 1.0, 0.5), (2.5, 0.4, -0.7), (0.3, 1.7, 0.1)):
        L = np.linalg.cholesky(np.array([[q1, c], [c, q2]]))
        z = rng.standard_normal((1_000_000, 2)) @ L.T
        vals = act.f(z[:, 0]) * act.f(z[:, 1])
        se = vals.std() / math.sqrt(len(vals))
        got = float(act.pair_moment(np.float64(q1), np.float64(q2), np.float64(c)))
        assert abs(got - vals.mean()) < 5 * se, (name, q1, q2, c, got, vals.mean(), se)


def test_erf_pair_moment_is_saad_solla_I2():
    from sgd_dmft import online

    assert A.ERF.pair_moment is CF.I2 is online.I2
    assert A.ERF.committee_expectations is CF.committee_erf_expectations


# --------------------------------------------------------------------------------------------
# Models: capabilities and flags
# --------------------------------------------------------------------------------------------
def _custom():
    return models.custom(lambda r, y: 0.5 * (r[..., 0] - y) ** 2, lambda rs, e: rs[..., 0])


def test_kernel_specs():
    assert models.linear().kernel_spec == (0, 0)
    assert models.logistic(0.1).kernel_spec == (1, 0)
    assert models.phase_retrieval().kernel_spec == (2, 0)
    for a in models.ACTIVATIONS:
        assert models.committee(2, 3, a).kernel_spec == (3, models.get_activation(a).code)
    assert _custom().kernel_spec is None


def test_capabilities_replace_names():
    lin = models.linear(0.2)
    assert lin.linear_square and lin.online_expectations() is not None
    assert dataclasses.replace(lin, linear_square=False).online_expectations() is None
    assert models.logistic().online_expectations() is not None
    assert models.committee(2, 2, "erf").online_expectations() is not None
    for m in (models.committee(2, 2, "relu"), models.committee(1, 1, "tanh"), models.phase_retrieval(), _custom()):
        assert m.online_expectations() is None and not m.linear_square
    # eps: integrated analytically (additive noise), absent (noise 0) or numerically (custom: always)
    assert not models.linear(0.3).eps_dim and not models.logistic(0.0).eps_dim
    assert models.logistic(0.2).eps_dim and _custom().eps_dim
    # the committee's smoothness follows its activation unless overridden
    assert models.committee(2, 2, "relu").smooth is False and models.committee(2, 2, "erf").smooth is True
    assert dataclasses.replace(models.committee(2, 2, "erf"), smooth=False).smooth is False
    assert models.committee(2, 2, "relu").meta == {"activation": "relu"}
    assert models.committee(2, 2, "tanh").pop_loss is None and models.committee(2, 2, "relu").pop_loss is not None
    assert _custom().predictor is None and _custom().pop_loss is None


def test_make_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="'ridge'"):
        models.make_model("ridge")
    with pytest.raises(ValueError, match="sigmoid"):
        models.make_model("committee", k=2, kstar=2, activation="sigmoid")
    m = models.make_model("committee", k=3, kstar=1, activation="tanh", noise=0.1)
    assert (m.k, m.kstar, m.noise, m.activation) == (3, 1, 0.1, A.TANH)


def test_problem_alias_module_reexports():
    from sgd_dmft import problem as P

    assert P.Problem is models.Problem and P.Model is models.Model and P.make_model is models.make_model
    assert P.linear(0.1) == models.linear(0.1) and P.MODELS == models.MODELS


# --------------------------------------------------------------------------------------------
# Problem: the init projection
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,kstar", [(1, 1), (2, 3), (3, 2)])
def test_init_projection_and_moments(k, kstar):
    prob = models.Problem(models.committee(k, kstar), delta=1.0, init_scale=0.5, init_overlap=0.7)
    P = prob.init_projection()
    assert P.shape == (k, kstar)
    np.testing.assert_array_equal(P, np.eye(k, kstar))
    S = np.eye(kstar) + 0.2 * np.ones((kstar, kstar))
    C0, M0 = prob.init_moments(S)
    np.testing.assert_allclose(C0, 0.49 * P @ S @ P.T + 0.25 * np.eye(k), rtol=1e-15)
    np.testing.assert_allclose(M0, 0.7 * P @ S, rtol=1e-15)
    C0z, M0z = prob.with_(init_overlap=0.0).init_moments(S)
    np.testing.assert_array_equal(C0z, 0.25 * np.eye(k))
    np.testing.assert_array_equal(M0z, np.zeros((k, kstar)))


# --------------------------------------------------------------------------------------------
# Gaussian helpers and closed forms
# --------------------------------------------------------------------------------------------
def test_joint_cov_batched_and_single():
    rng = np.random.default_rng(0)
    Q, M, S = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3)), rng.standard_normal((3, 3))
    C = joint_cov(Q, M, S)
    assert C.shape == (4, 5, 5)
    for t in range(4):
        np.testing.assert_array_equal(C[t], joint_cov(Q[t], M[t], S))
        np.testing.assert_array_equal(C[t], np.block([[Q[t], M[t]], [M[t].T, S]]))
    np.testing.assert_array_equal(joint_cov(Q[0], M[0])[2:, 2:], np.eye(3))


def test_committee_loss_is_the_quadratic_form_of_pair_moments():
    """``E[(f - y)^2] / 2 = c^T P c / 2`` with ``P`` the pair moments of the joint covariance and
    ``c = (1/k, ..., -1/k*, ...)``: the erf committee loss against that form written out here."""
    rng = np.random.default_rng(2)
    B = rng.standard_normal((5, 5))
    C = B @ B.T / 5 + 0.3 * np.eye(5)
    C[3:, 3:] = np.eye(2)
    while np.linalg.eigvalsh(C).min() < 0.05:
        C[:3, :3] += 0.1 * np.eye(3)
    Q, M = C[None, :3, :3], C[None, :3, 3:]
    c = np.concatenate([np.full(3, 1 / 3), np.full(2, -1 / 2)])
    dg = np.diag(C)
    want = 0.5 * c @ ((2 / np.pi) * np.arcsin(C / np.sqrt(np.outer(1 + dg, 1 + dg)))) @ c + 0.5 * 0.09
    np.testing.assert_allclose(CF.committee_erf_loss(Q, M, 0.3), [want], rtol=1e-13)
    np.testing.assert_allclose(CF.committee_loss(CF.I2, Q, M, np.eye(2), 0.3), [want], rtol=1e-13)


@pytest.mark.parametrize("noise,s2", [(0.0, 1.0), (0.2, 1.0), (0.3, 1.7)])
def test_logistic_population_loss_matches_monte_carlo(noise, s2):
    """The split quadrature at S* != 1 too (``r* = s u``)."""
    model = models.logistic(noise)
    Q, M, S = np.array([[1.4]]), np.array([[0.8]]), np.array([[s2]])
    rng = np.random.default_rng(9)
    N = 2_000_000
    L = np.linalg.cholesky(np.block([[Q, M], [M.T, S]]))
    z = rng.standard_normal((N, 2)) @ L.T
    vals = model.loss(z[:, :1], model.label(z[:, 1:], rng.standard_normal(N)))
    se = vals.std() / math.sqrt(N)
    got = float(models.population_loss(model, Q, M, S))
    assert abs(got - vals.mean()) < 5 * se, (got, vals.mean(), se)
