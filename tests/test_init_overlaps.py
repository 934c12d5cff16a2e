"""Any initial overlaps (issue 22): ``Problem(init_q=Q_0, init_m=M_0)`` and ``problem.init_q`` /
``problem.init_m``. Validated (shapes, symmetry, ``Q_0 - M_0 M_0^T >= 0``, not mixed with init_scale /
init_overlap), the special case ``c^2 I + B B^T`` is the old Problem itself, the simulators draw instances
with those overlaps, and theory (online ODE, multi-pass DMFT) meets finite-d simulations started there."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgd_dmft import dmft, laws
from sgd_dmft import online as O
from sgd_dmft import problem as P
from sgd_dmft.config import parse_config
from sgd_dmft.errors import ConfigError
from sgd_dmft.simulate import instance_for_seed, simulate

from test_dmft import Z_MAX, _zscores

# a rank-1 noise part (units correlated, different norms) plus teacher overlaps
V = np.array([[0.6], [0.3]])
M2 = np.array([[0.3], [0.1]])
Q2 = V @ V.T + M2 @ M2.T
# the published committee's shape: k = 4 students on k* = 2 teachers, Q_0 of rank 3
M4 = np.array([[0.4, 0.0], [0.0, 0.3], [0.2, 0.2], [0.0, 0.0]])
N4 = np.diag([0.3, 0.2, 0.0, 0.25])
N4[2, 2], N4[0, 2], N4[2, 0] = 0.3, 0.3, 0.3  # units 0 and 2 share their noise: N4 has rank 3
Q4 = N4 + M4 @ M4.T


@pytest.mark.parametrize("kw,key,match", [
    (dict(init_q=[[1.0, 0.0]]), "problem.init_q", "2 x 2"),
    (dict(init_q=[[1.0, 0.5], [0.4, 1.0]]), "problem.init_q", "symmetric"),
    (dict(init_q=[[1.0, 0.0], [0.0, 1.0]], init_m=[[1.2], [0.0]]), "problem.init_q", "positive semidefinite"),
    (dict(init_q=[[1.0, 0.0], [0.0, float("nan")]]), "problem.init_q", "finite"),
    (dict(init_m=[[0.1], [0.1]]), "problem.init_m", "without init_q"),
    (dict(init_q=[[1.0, 0.0], [0.0, 1.0]], init_overlap=0.2), "problem.init_q", "either"),
    (dict(init_q=[[1.0, 0.0], [0.0, 1.0]], init_m=[[0.1, 0.2], [0.0, 0.0]]), "problem.init_m", "2 x 1"),
])
def test_bad_overlaps_are_one_line_errors_naming_the_key(kw, key, match):
    with pytest.raises(ConfigError, match=match) as e:
        P.Problem(P.committee(2, 1, "erf", 0.1), delta=2.0, **kw)
    assert e.value.key == key and "\n" not in str(e.value)


def test_special_case_is_the_old_problem_and_rank_deficient_is_allowed():
    old = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.1, init_scale=0.4, init_overlap=0.3)
    new = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.1, init_q=(0.16 + 0.09) * np.eye(2),
                    init_m=0.3 * np.eye(2))
    assert new == old  # the same object: solvers, simulators and golden outputs see no difference
    pr = P.Problem(P.committee(4, 2, "erf", 0.1), delta=2.0, init_q=Q4, init_m=M4)
    C0, M0 = pr.init_moments()
    np.testing.assert_allclose(C0, Q4, atol=1e-14)
    np.testing.assert_allclose(M0, M4, atol=1e-14)
    assert np.linalg.matrix_rank(pr.noise_cov()) == 3
    np.testing.assert_allclose(pr.noise_factor() @ pr.noise_factor().T, N4, atol=1e-12)
    same = P.Problem(P.committee(2, 1, "erf", 0.1), delta=2.0, init_q=np.ones((2, 2)))  # two equal units
    np.testing.assert_allclose(same.init_moments()[0], np.ones((2, 2)))
    assert "init_q" in pr.attrs() and pr.with_(ridge=0.3).init_moments()[0] == pytest.approx(Q4)


def test_instances_have_the_overlaps_up_to_finite_d_fluctuation():
    pr = P.Problem(P.committee(4, 2, "erf", 0.1), delta=2.0, init_q=Q4, init_m=M4)
    d = 20000
    inst = instance_for_seed(pr, d, 0, with_data=False)
    Qe = inst.theta0.T @ inst.theta0 / d
    Me = inst.theta0.T @ inst.theta_star / d
    tol = 5.0 * math.sqrt(2.0 / d) * (1.0 + float(np.max(np.abs(Q4))))  # O(1/sqrt d) sample covariances
    assert np.max(np.abs(Qe - Q4)) < tol and np.max(np.abs(Me - M4)) < tol


def test_config_keys_build_the_problem_and_refuse_mixing():
    base = {"problem": {"model": "committee", "student_width": 2, "teacher_width": 1, "activation": "erf",
                        "init_q": Q2.tolist(), "init_m": M2.tolist()}}
    cfg = parse_config(base)
    np.testing.assert_allclose(cfg.make_problem().init_moments()[0], Q2, atol=1e-14)
    for extra, key in (({"init_scale": 0.3}, "problem.init_scale"), ({"init_m": [[0.1, 0.1]]}, "problem.init_m")):
        with pytest.raises(ConfigError) as e:
            parse_config({"problem": {**base["problem"], **extra}})
        assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        parse_config({"problem": {**base["problem"], "init_q": 0.0}})
    assert e.value.key == "problem.init_m"


def test_online_ode_from_a_rank_3_start_matches_online_sgd():
    """The published committee's shape (k = 4 students, k* = 2 teachers, rank-3 Q_0): the online ODE
    against one-pass SGD started with the same overlaps, at d = 1000 and 2000."""
    pr = P.Problem(P.committee(4, 2, "erf", 0.1), delta=2.0, ridge=0.0, init_q=Q4, init_m=M4)
    gamma, t_max = 0.5, 1.5
    dt = t_max / 6
    ode = O.solve_online(pr, gamma=gamma, t_max=t_max, dt=dt)
    _online_sgd_agrees(pr, ode, gamma, ((1000, 6), (2000, 4)), seed=5)
    assert float(ode.Q.values[0, 0, 2]) == pytest.approx(Q4[0, 2])


def _online_sgd_agrees(pr, ode, gamma: float, sizes, seed: int) -> None:
    """One-pass SGD started at the problem's overlaps, at each (d, seeds), within 5 s.e. + 3e-3 of ``ode``."""
    t = ode.time.values
    for d, S in sizes:
        sim = simulate(pr, "online", t_max=float(t[-1]), dt=float(t[1] - t[0]), d=d, gamma=gamma, seeds=S, seed=seed)
        for v in ("test_loss", "M", "Q"):
            a = sim[v].values.reshape(S, len(t), -1)
            se = a.std(0, ddof=1) / math.sqrt(S)
            err = np.abs(a.mean(0) - ode[v].values.reshape(len(t), -1))
            assert np.all(err < 5 * se + 3e-3), (d, v, float(np.max(err - 5 * se)))


def test_multipass_dmft_from_correlated_units_matches_sgd():
    """Multi-pass SGD (Bernoulli recursion of the law, the DMFT's own) from correlated units of different
    norms (rank-1 noise part): DMFT against simulations at d = 1000 and 2000."""
    pr = P.Problem(P.committee(2, 1, "erf", 0.1), delta=2.0, ridge=0.05, init_q=Q2, init_m=M2)
    law = laws.SGD(0.05, 0.5)
    th = dmft.solve(pr, law, t_max=1.5, paths=8000, replicas=4, seed=2, extrapolate=False, keep_kernels=False)
    idx = np.arange(0, th.sizes["time"], 6)
    for d in (1000, 2000):
        sim = simulate(pr, "law", law=law, t_max=1.5, dt=law.dt, d=d, seeds=8, seed=4)
        for var in ("test_loss", "train_loss"):
            z = _zscores(th, sim, var, idx)
            assert np.max(np.abs(z)) < Z_MAX, (d, var, z)
        m = sim.M.values[:, idx][..., 0].mean(0)
        np.testing.assert_allclose(th.M.values[idx, :, 0], m, atol=0.03)


def test_ten_student_committee_from_a_config_with_its_own_overlaps():
    """The published online case's shape (IdePHICS/DimensionlessDynamicsSGD: an erf committee of 10 student
    and 2 teacher units from a rank-3 Q_0): built from a config, the online ODE against one-pass SGD at
    d = 1000 and 2000 started with the same overlaps."""
    rng = np.random.default_rng(3)
    U = rng.standard_normal((10, 3)) / math.sqrt(6)  # Q_0 = U U^T: rank 3
    M0 = U[:, :2] @ np.diag([0.4, 0.3])  # teacher overlaps inside the span, Q_0 - M_0 M_0^T >= 0
    cfg = parse_config({"problem": {"model": "committee", "student_width": 10, "teacher_width": 2,
                                    "activation": "erf", "noise": 0.1, "delta": 2.0, "ridge": 0.0,
                                    "init_q": (U @ U.T).tolist(), "init_m": M0.tolist()}})
    pr = cfg.make_problem()
    assert np.linalg.matrix_rank(pr.init_moments()[0], tol=1e-10) == 3
    gamma, t_max = 0.5, 1.0
    dt = t_max / 4
    ode = O.solve_online(pr, gamma=gamma, t_max=t_max, dt=dt)
    _online_sgd_agrees(pr, ode, gamma, ((1000, 4), (2000, 4)), seed=9)
