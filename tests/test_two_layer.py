"""The two-layer preset: committee special case, derivatives, kernels, population-loss rule, config,
CLI, initial overlap matrix, user-callable checks, and theory against simulation."""

from __future__ import annotations

import math
import pickle
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from sgd_dmft import laws
from sgd_dmft.cli import main
from sgd_dmft.config import parse_config
from sgd_dmft.errors import ConfigError
from sgd_dmft.models import Problem, committee, custom, population_loss, two_layer
from sgd_dmft.models import population as POP
from sgd_dmft.models import two_layer_quadrature as RULE
from sgd_dmft.simulation import kernel_codes, make_instance
from sgd_dmft.simulation.kernels import _grad_rows_nb, kernel_params

SQ2 = 1 / math.sqrt(2)


def _pts(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    r = 1.2 * rng.standard_normal((n, model.k))
    y = np.asarray(model.label(rng.standard_normal((n, model.kstar)), rng.standard_normal(n)))
    return r, y


@pytest.mark.parametrize("act", ["erf", "relu", "tanh", "quadratic", "linear"])
def test_committee_is_a_special_case(act):
    c, t = committee(3, 2, act, 0.1), two_layer(3, 2, act, noise=0.1)
    r, y = _pts(c)
    rs = np.random.default_rng(1).standard_normal((64, 2))
    eps = np.random.default_rng(2).standard_normal(64)
    np.testing.assert_allclose(t.label(rs, eps), c.label(rs, eps), rtol=1e-14, atol=1e-15)
    for f in ("loss", "grad", "hess"):
        np.testing.assert_allclose(getattr(t, f)(r, y), getattr(c, f)(r, y), rtol=1e-13, atol=1e-14)
    Q = np.array([[[1.0, 0.2, 0.1], [0.2, 0.8, 0.0], [0.1, 0.0, 0.5]]])
    M = np.array([[[0.3, 0.1], [0.0, 0.2], [0.1, -0.1]]])
    # tanh has no pair moment: the committee's 5-d tensor Gauss-Hermite (11 nodes per axis) is the less accurate
    np.testing.assert_allclose(population_loss(t, Q, M), population_loss(c, Q, M), rtol=1e-4 if act == "tanh" else 1e-9)
    assert t.smooth == c.smooth


@pytest.mark.parametrize("loss", ["square", "logistic"])
@pytest.mark.parametrize("act", ["erf", "tanh", "quadratic", "relu"])
def test_derivatives_and_kernel(loss, act):
    m = two_layer(2, 2, act, teacher="z1 + he3(z2)/sqrt(6)", second_layer=[SQ2, -SQ2], bias=[0.2, -0.1],
                  loss=loss, noise=0.2)
    r, y = _pts(m)
    r = np.where(np.abs(r + np.asarray(m.bias)) < 1e-2, 0.3, r)
    h = 1e-6
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        np.testing.assert_allclose(m.grad(r, y)[:, a], (m.loss(r + e, y) - m.loss(r - e, y)) / (2 * h), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(m.hess(r, y)[:, :, a], (m.grad(r + e, y) - m.grad(r - e, y)) / (2 * h), rtol=1e-5, atol=1e-6)
    if loss == "logistic":
        assert set(np.unique(y)) <= {-1.0, 1.0}
    assert kernel_codes(m) == m.kernel_spec == (4 if loss == "square" else 5, m.activation.code)
    out = np.empty_like(r)
    _grad_rows_nb(*m.kernel_spec, r, y, out, kernel_params(m))
    np.testing.assert_allclose(out, m.grad(r, y), rtol=1e-12, atol=1e-14)
    assert pickle.loads(pickle.dumps(m)) == m


def _overlaps(k, ks, T, seed):
    """Random (Q, M) at S* = I with the joint covariance's smallest eigenvalue >= 0.05."""
    rng = np.random.default_rng(seed)
    Qs, Ms = [], []
    while len(Qs) < T:
        B = 0.6 * rng.standard_normal((k + ks, k + ks))
        C = B @ B.T
        Ti = np.linalg.inv(np.linalg.cholesky(C[k:, k:]))
        Tm = np.eye(k + ks)
        Tm[k:, k:] = Ti
        C = Tm @ C @ Tm.T
        if np.linalg.eigvalsh(C).min() >= 0.05:
            Qs.append(C[:k, :k])
            Ms.append(C[:k, k:])
    return np.array(Qs), np.array(Ms)


_RULE_CASES = [
    dict(k=2, kstar=1, activation="tanh", teacher="he3(z1)/sqrt(6)"),
    dict(k=2, kstar=2, activation="tanh", teacher="z1 + he3(z2)/sqrt(6)"),
    dict(k=2, kstar=2, activation="relu", teacher="z1 + he3(z2)/sqrt(6)", second_layer=[SQ2, -SQ2]),
    dict(k=2, kstar=1, activation="relu", teacher="tanh(z1)", bias=[0.3, -0.2]),
    dict(k=3, kstar=1, activation="erf", teacher="tanh(2 * z1)", bias=[0.3, -0.2, 0.1], noise=0.2),
    dict(k=1, kstar=3, activation="tanh", teacher="z1*z2 + z3"),
    dict(k=2, kstar=1, activation="tanh", teacher="tanh(z1)", loss="logistic", noise=0.3),
    dict(k=2, kstar=2, activation="erf", teacher="tanh(z1 + z2)", loss="logistic", noise=0.5),
]


@pytest.mark.parametrize("case", _RULE_CASES, ids=lambda c: f"{c['activation']}-{c['teacher']}-{c.get('loss', 'sq')}")
def test_population_rule_exact_to_1e8(case, monkeypatch):
    """Against the same rule with every node count doubled (a high-order reference) for k + k* <= 4,
    and against brute-force Monte Carlo (independent, at its own error). (Until session 5 the doubled
    rule was read back from the result cache, so this compared the rule with itself: the rule was then
    off by up to 3.6e-6 on these overlaps.)"""
    m = two_layer(**case)
    Q, M = _overlaps(m.k, m.kstar, 6, 0)
    Q, M = np.concatenate([Q, 9.0 * Q]), np.concatenate([M, M])  # and larger student norms (steeper units)
    v = population_loss(m, Q, M)
    monkeypatch.setattr(RULE, "_CACHE", type(RULE._CACHE)())  # the reference is computed, not recalled
    for name in ("N_OUTER", "N_INNER"):
        monkeypatch.setattr(RULE, name, 2 * getattr(RULE, name))
    monkeypatch.setattr(RULE, "N_POLY_EXTRA", 8)
    for name in ("N_TRANSVERSE", "N_TEACHER", "N_SOFTPLUS"):
        monkeypatch.setattr(RULE, name, {a: 2 * b for a, b in getattr(RULE, name).items()})
    ref = population_loss(m, Q, M)
    assert np.max(np.abs(v - ref)) < 1e-8
    rng = np.random.default_rng(5)
    n = 400_000
    for t in range(2):
        C = np.block([[Q[t], M[t]], [M[t].T, np.eye(m.kstar)]])
        g = rng.standard_normal((n, m.k + m.kstar)) @ np.linalg.cholesky(C).T
        sample = m.loss(g[:, : m.k], m.label(g[:, m.k:], rng.standard_normal(n)))
        assert abs(sample.mean() - v[t]) < 5 * sample.std() / math.sqrt(n)
    assert POP.population_loss_error(m, Q, M).max() == 0.0


def test_population_rule_beyond_four_teacher_dims_is_qmc_with_error():
    m = two_layer(1, 5, "tanh", teacher="z1 + z2 * z3 + tanh(z4 + z5)")
    Q, M = _overlaps(1, 5, 2, 1)
    assert POP.uses_qmc(m)
    err = POP.population_loss_error(m, Q, M)
    assert np.all(err > 0) and np.all(err < 1e-3)


def test_population_loss_cost():
    """k = 2 tanh student, k* = 2 staircase: a few ms per time point (vs 2^17 QMC points before)."""
    m = two_layer(2, 2, "tanh", teacher="z1 + he3(z2)/sqrt(6)")
    Q, M = _overlaps(2, 2, 100, 2)
    t0 = time.perf_counter()
    population_loss(m, Q, M)
    assert (time.perf_counter() - t0) / 100 < 0.02


def test_config_two_layer_and_errors(tmp_path, monkeypatch):
    base = {"model": "two_layer", "teacher": "z1 + he3(z2) / sqrt(6)", "teacher_width": 2, "student_width": 2,
            "activation": "relu", "second_layer": [SQ2, -SQ2], "bias": 0.1, "loss": "square",
            "init_overlap": [[0.3, 0.0], [0.0, 0.2]]}
    pb = parse_config({"problem": base}).make_problem()
    m = pb.model
    assert (m.k, m.kstar, m.activation.name, m.second_layer, m.bias, m.smooth) == (2, 2, "relu", (SQ2, -SQ2), (0.1, 0.1), False)
    np.testing.assert_array_equal(pb.init_projection(), [[0.3, 0.0], [0.0, 0.2]])
    dflt = parse_config({"problem": {"model": "two_layer", "student_width": 2}}).make_model()
    assert dflt.second_layer == (0.5, 0.5) and dflt.bias == (0.0, 0.0) and str(dflt.teacher) == "mean_b erf(z_b)"
    for bad, key in [({"teacher": "z3"}, "problem.teacher"), ({"teacher": "exp(z1)"}, "problem.teacher"),
                     ({"second_layer": [1.0]}, "problem.second_layer"), ({"bias": [0, 0, 0]}, "problem.bias"),
                     ({"loss": "hinge"}, "problem.loss"), ({"init_overlap": [[0.3], [0.1]]}, "problem.init_overlap"),
                     ({"second_layer": "first"}, "problem.second_layer")]:
        with pytest.raises(ConfigError) as e:
            parse_config({"problem": {**base, **bad}})
        assert str(e.value).startswith(key) and "\n" not in str(e.value)
    for key, val in [("teacher", "z1"), ("second_layer", [1.0]), ("bias", 0.5), ("loss", "logistic")]:
        with pytest.raises(ConfigError, match=f"problem.{key} .*only model 'two_layer'"):
            parse_config({"problem": {"model": "committee", key: val}})
    # a scalar overlap with k != k*: refused with the matrix as the way out
    with pytest.raises(ConfigError, match="matrix B"):
        parse_config({"problem": {**base, "teacher_width": 1, "teacher": "he3(z1)", "init_overlap": 0.3}})


def _write_module(tmp_path, monkeypatch):
    (tmp_path / "tl_user_models.py").write_text(
        "import numpy as np\nfrom sgd_dmft import custom\n"
        "def _loss(r, y):\n    return 0.5 * (np.tanh(r[..., 0]) - y) ** 2\n"
        "def _label(rs, e):\n    return rs[..., 0] ** 3 - 3 * rs[..., 0]\n"
        "def _label_2d(rs, e):\n    return rs[..., :1]\n"
        "def make():\n    return custom(_loss, _label, name='mine', smooth=True)\n"
        "def bad():\n    return custom(_loss, _label_2d, name='bad', smooth=True)\n"
        "def other():\n    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tl_user_models", None)


def test_custom_model_from_config(tmp_path, monkeypatch):
    _write_module(tmp_path, monkeypatch)
    m = parse_config({"problem": {"model": "tl_user_models:make"}}, trust_code=True).make_model()
    assert m.name == "mine"
    with pytest.raises(ConfigError, match="--trust-code"):  # a config is not code unless trusted
        parse_config({"problem": {"model": "tl_user_models:make"}})
    for spec, fragment in [("tl_user_models:bad", "label(rstar (8, 1), eps (8,)) returned shape (8, 1), expected (8,)"),
                           ("tl_user_models:other", "returned int, not a Model"),
                           ("tl_no_such_module:make", "cannot import module 'tl_no_such_module'"),
                           ("tl_user_models:nope", "has no callable 'nope'"),
                           (f"{tmp_path}/tl_missing.py:make", "no such file"),
                           (f"{tmp_path}/tl_user_models.py:other", "returned int, not a Model")]:
        with pytest.raises(ConfigError) as e:
            parse_config({"problem": {"model": spec}}, trust_code=True)
        assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_user_callable_shapes_checked_in_python():
    """At construction of the model, before the smoothness probe (which would fail on the shape with a
    numpy broadcast error), with or without a declared ``smooth``."""
    for smooth in (None, True):
        with pytest.raises(ConfigError, match=r"label\(rstar \(8, 1\), eps \(8,\)\) returned shape \(8, 1\), expected \(8,\)"):
            custom(lambda r, y: (r[..., 0] - y) ** 2, lambda rs, e: rs[..., :1], smooth=smooth)
        with pytest.raises(ConfigError, match=r"grad\(r \(8, 2\), y \(8,\)\) returned shape \(8,\), expected \(8, 2\)"):
            custom(lambda r, y: (r[..., 0] - y) ** 2, lambda rs, e: rs[..., 0], k=2, grad=lambda r, y: r[..., 0],
                   smooth=smooth)
    with pytest.raises(ConfigError, match="non-finite"):
        Problem(two_layer(2, 1, "tanh", teacher=_nan_link), delta=1.0)


def _nan_link(rs):
    return np.full(rs.shape[:-1], np.nan)


def test_init_overlap_matrix_moments_and_instance():
    m = two_layer(2, 3, "tanh", teacher="z1 * z2 + z3")
    B = [[0.3, 0.1, 0.0], [0.0, -0.2, 0.4]]
    pb = Problem(m, delta=1.0, init_scale=0.5, init_overlap=B)
    C0, M0 = pb.init_moments()
    np.testing.assert_allclose(M0, B)
    np.testing.assert_allclose(C0, np.array(B) @ np.array(B).T + 0.25 * np.eye(2))
    inst = make_instance(pb, 20000, np.random.default_rng(0), with_data=False)
    d = 20000
    np.testing.assert_allclose(inst.theta0.T @ inst.theta_star / d, M0, atol=0.03)
    np.testing.assert_allclose(inst.theta0.T @ inst.theta0 / d, C0, atol=0.03)
    # a multiple of the selection matrix is stored as the number
    assert Problem(committee(2, 2), delta=1.0, init_overlap=[[0.3, 0.0], [0.0, 0.3]]).init_overlap == 0.3
    assert "init_direction" in pb.attrs() and pb.attrs()["init_overlap"] == 1.0


def test_online_zero_noise_k2_needs_no_monte_carlo():
    from sgd_dmft.online import solve_online

    m = two_layer(2, 2, "tanh", teacher="z1 + he3(z2)/sqrt(6)")
    ds = solve_online(Problem(m, delta=2.0, init_overlap=0.2), gamma=0.5, t_max=0.5, dt=0.1)
    assert ds.attrs["expectations"] == "gh"
    cm = custom(lambda r, y: 0.5 * (np.tanh(r[..., 0]) - y) ** 2 + 0.5 * (np.tanh(r[..., 1])) ** 2,
                lambda rs, e: np.tanh(rs[..., 0]) + np.tanh(rs[..., 1]), k=2, kstar=2, smooth=True)
    assert solve_online(Problem(cm, delta=2.0), gamma=0.5, t_max=0.2, dt=0.1).attrs["expectations"] == "gh"


TOML = """
[problem]
model = "two_layer"
teacher = "{teacher}"
teacher_width = {ks}
student_width = 2
activation = "{act}"
second_layer = {a}
bias = [0.0, 0.0]
loss = "square"
delta = 2.0
noise = 0.1
ridge = 0.0
init_overlap = {ov}
[dynamics]
algorithm = "sgd"
gamma = 0.5
t_max = 0.2
dt = 0.05
[simulation]
d = 100
seeds = 2
[solver]
paths = 200
replicas = 2
workers = 1
"""


@pytest.mark.parametrize("teacher, ks, act, a, ov", [
    ("he3(z1) / sqrt(6)", 1, "tanh", "[0.5, 0.5]", "[[0.3], [0.0]]"),
    ("z1 + he3(z2) / sqrt(6)", 2, "relu", f"[{SQ2}, {-SQ2}]", "0.2"),
])
def test_cli_solve_compare_sweep(tmp_path, teacher, ks, act, a, ov):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML.format(teacher=teacher, ks=ks, act=act, a=a, ov=ov))
    runner = CliRunner()
    for args in (["solve", str(cfg), "--out", str(tmp_path / "s")],
                 ["compare", str(cfg), "--out", str(tmp_path / "c")],
                 ["sweep", str(cfg), "--out", str(tmp_path / "w"), "-s", "gamma=0.3,0.5", "--simulate", "--workers", "1"],
                 ["show", str(tmp_path / "c")]):
        res = runner.invoke(main, args + (["--no-progress"] if args[0] != "show" else []))
        assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.toml"
    bad.write_text(TOML.format(teacher="he3(z9)", ks=ks, act=act, a=a, ov=ov))
    res = runner.invoke(main, ["solve", str(bad), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "problem.teacher" in res.output


def _z_scores(prob, law, t_max, d, seeds, paths=4000, replicas=4):
    from sgd_dmft.dmft import solve
    from sgd_dmft.simulate import simulate

    th = solve(prob, law, t_max=t_max, paths=paths, replicas=replicas, extrapolate=False)
    sim = simulate(prob, "law", law=law, t_max=t_max, dt=law.dt, d=d, seeds=seeds)
    out = {}
    for v in ("train_loss", "test_loss"):
        sv = sim[v].values
        se = np.sqrt(th[v + "_stderr"].values ** 2 + sv.var(0, ddof=1) / sv.shape[0])
        out[v] = (th[v].values - sv.mean(0))[1:] / se[1:]
    return out


def test_theory_matches_simulation_small():
    prob = Problem(two_layer(2, 1, "tanh", teacher="he3(z1)/sqrt(6)", noise=0.1), delta=2.0, init_overlap=[[0.3], [0.0]])
    z = _z_scores(prob, laws.SGD(0.05, 0.5), 0.5, d=200, seeds=8, paths=2000, replicas=4)
    assert max(np.abs(v).max() for v in z.values()) < 4.0


_SLOW = [
    ("he3-tanh", dict(k=2, kstar=1, activation="tanh", teacher="he3(z1)/sqrt(6)", noise=0.1), [[0.3], [0.0]]),
    ("stair-tanh", dict(k=2, kstar=2, activation="tanh", teacher="z1 + he3(z2)/sqrt(6)", noise=0.1), 0.2),
    ("stair-relu-a", dict(k=2, kstar=2, activation="relu", teacher="z1 + he3(z2)/sqrt(6)",
                          second_layer=[SQ2, -SQ2], noise=0.1), 0.2),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, kw, ov", _SLOW, ids=[c[0] for c in _SLOW])
def test_theory_matches_simulation_in_d(name, kw, ov):
    """d = 1000, 2000: within the combined errors, and the mean |z| does not grow with d."""
    prob = Problem(two_layer(**kw), delta=2.0, init_overlap=ov)
    law = laws.SGD(0.05, 0.5)
    zs = {d: _z_scores(prob, law, 1.5, d=d, seeds=16, paths=8000, replicas=8) for d in (1000, 2000)}
    for d, z in zs.items():
        assert max(np.abs(v).max() for v in z.values()) < 4.0, (d, z)
    mean = {d: np.mean([np.abs(v).mean() for v in z.values()]) for d, z in zs.items()}
    assert mean[2000] < mean[1000] + 1.0, mean
