"""Kinked models (issue 13): the smoothness probe, the estimator check, and the Dandi et al. 2024 case.

The case: multi-index GD of Dandi et al. 2024 (IdePHICS/benefit-reusing-batch): delta 3, GD with
step 0.2 (internal units), 6 steps, student ``f(r) = relu(r1)/sqrt 2 - relu(r2)/sqrt 2``, teacher
``y = tanh(z1 + He3(z2))``, ``He3(z) = z^3 - 3z``, ``M0 = 0``, ``Q0 = I``, square loss, ridge 0,
through ``sgd_dmft.custom(loss, label, k=2, kstar=2, grad=F)``. Measured (1.6M paths, 16 replicas):
integration by parts Q11 = 0.813, test loss 0.3501 at step 6; pathwise tangents (the Dirac mass of
the kink lost) Q11 = 0.579, test loss 0.3230. M_1 is the same for both (mu is integration by parts in
both) and equals the closed form below.

First step in closed form. At step 0, ``r = w_0`` is independent of ``r*`` (``M0 = 0``), and GD gives
``theta_1 = theta_0 - dt sum_i x_i F(r_i, y_i)^T``, so ``M_1 = -dt delta E[F(r, y) r*^T]``. With
``F_a = (f(r) - y) f'_a(r_a)`` only the ``-y`` part correlates with ``r*``:
``E[F_a r*_b] = -E[f'_a(r_a)] E[y r*_b]``, ``E[f'_1] = 1/(2 sqrt 2) = -E[f'_2]``, hence
``M_1[a, b] = dt delta E[f'_a] E[y z_b]``. By Gaussian integration by parts ``E[y z1] =
E[sech^2(z1 + He3(z2))] = 1 - E[y^2]`` (quadrature: 0.357662), ``E[y z2] = E[sech^2(.) He3'(z2)]``
(-0.298420).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

import sgd_dmft
from sgd_dmft import laws
from sgd_dmft.dmft import GaussianIBP, MonteCarlo, PathwiseTangents, choose_process, solve
from sgd_dmft.dmft.applicability import check_estimator, expected_stderr_note
from sgd_dmft.errors import ConfigError
from sgd_dmft.models import ACTIVATIONS, MODELS, Problem, make_model, presets
from sgd_dmft.models.probe import ModelProbeWarning, probe_model

S2 = math.sqrt(2.0)
DT, DELTA = 0.2, 3.0
E_YZ = (0.357662053008, -0.298419811085)  # E[y z1], E[y z2] (quadrature, 1e-11)


# --- the Dandi et al. model (module-level callables: the model pickles) ---------------------------
def _f(r):
    return (np.maximum(r[..., 0], 0.0) - np.maximum(r[..., 1], 0.0)) / S2


def _fprime(r):
    return np.stack([(r[..., 0] > 0).astype(float) / S2, -(r[..., 1] > 0).astype(float) / S2], axis=-1)


def dandi_loss(r, y):
    return 0.5 * (_f(r) - y) ** 2


def dandi_grad(r, y):
    return (_f(r) - y)[..., None] * _fprime(r)


def dandi_hess_without_dirac(r, y):
    fp = _fprime(r)
    return fp[..., :, None] * fp[..., None, :]


def dandi_label(rstar, eps):
    z1, z2 = rstar[..., 0], rstar[..., 1]
    return np.tanh(z1 + z2**3 - 3.0 * z2)


def dandi_problem(**kw) -> Problem:
    model = sgd_dmft.custom(dandi_loss, dandi_label, k=2, kstar=2, grad=dandi_grad, **kw)
    return Problem(model, delta=DELTA, ridge=0.0, init_scale=1.0, init_overlap=0.0)


def tanh_loss(r, y):
    return 0.5 * (np.tanh(r[..., 0]) - y) ** 2


def tanh_grad(r, y):
    t = np.tanh(r[..., 0])
    return ((t - y) * (1 - t * t))[..., None]


def tanh_label(rstar, eps):
    return np.tanh(rstar[..., 0]) + 0.1 * eps


def _m1_closed_form() -> np.ndarray:
    """(k, k*) = (2, 2): ``M_1[a, b] = dt delta E[f'_a] E[y z_b]``."""
    efp = np.array([1.0, -1.0]) / (2 * S2)
    return DT * DELTA * np.outer(efp, E_YZ)


# --- the probe and the flags -------------------------------------------------------------------------
def test_default_construction_finds_the_kink_and_picks_integration_by_parts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prob = dandi_problem()
    model = prob.model
    assert model.smooth is False and model.probe.kinked and model.probe.jump_fraction > 0.01
    assert model.probe.grad_mismatch == 0.0  # the supplied grad matches differences of the loss
    proc = choose_process(prob, laws.GD(DT))
    assert isinstance(proc.responses, GaussianIBP)
    check_estimator(prob, proc)  # the right estimator: no complaint
    # the kink is found without a supplied grad too (grad and hess by finite differences)
    assert sgd_dmft.custom(dandi_loss, dandi_label, k=2, kstar=2).smooth is False


def test_explicit_wrong_flag_warns_and_wins():
    with pytest.warns(ModelProbeWarning, match=r"smooth=True was declared but the probe finds grad jumps"):
        prob = dandi_problem(smooth=True)
    assert prob.model.smooth is True
    # pathwise tangents then run (the declared flag is the escape hatch) but warn again at solve time
    with pytest.warns(ModelProbeWarning, match=r"responses=pathwise on model=custom"):
        check_estimator(prob, choose_process(prob, laws.GD(DT)))
    with pytest.warns(ModelProbeWarning, match=r"smooth=False was declared"):
        smooth = sgd_dmft.custom(tanh_loss, tanh_label, smooth=False)
    assert smooth.smooth is False


def test_pathwise_estimator_on_the_kinked_model_refuses():
    prob = dandi_problem()
    for kw in ({"responses": "pathwise"}, {"process": MonteCarlo(responses=PathwiseTangents())}):
        with pytest.raises(ConfigError, match=r"^responses=pathwise is not allowed for model=custom: .*"
                                              r"process=None.*GaussianIBP\(\)\)$") as err:
            with pytest.warns(DeprecationWarning, match=r"solve\(responses='pathwise'\) is deprecated") \
                    if "responses" in kw else warnings.catch_warnings():
                solve(prob, laws.GD(DT), t_max=0.2, paths=400, replicas=2, extrapolate=False, **kw)
        assert err.value.key == "responses" and "\n" not in str(err.value)
    # a declared kink is refused the same way, whatever the probe says
    with pytest.warns(ModelProbeWarning):
        declared = Problem(sgd_dmft.custom(tanh_loss, tanh_label, smooth=False), delta=2.0)
    with pytest.raises(ConfigError, match="declared smooth=False"):
        check_estimator(declared, choose_process(declared, laws.GD(0.1), responses="pathwise"))


def test_smooth_custom_model_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model in (sgd_dmft.custom(tanh_loss, tanh_label), sgd_dmft.custom(tanh_loss, tanh_label, grad=tanh_grad),
                      sgd_dmft.custom(lambda r, y: 0.5 * (np.tanh(r[..., 0]) - y) ** 2,
                                      lambda rs, e: np.tanh(rs[..., 0]) + 0.1 * e)):  # the golden model
            assert model.smooth is True and not model.probe.kinked and model.probe.max_jump < 1e-4
            prob = Problem(model, delta=2.0, ridge=0.1)
            proc = choose_process(prob, laws.SGD(0.05, 0.5))
            assert isinstance(proc.responses, PathwiseTangents)
            check_estimator(prob, proc)


def _presets():
    out = []
    for name in MODELS:
        if name == "committee":
            out += [presets.committee(k, 2, a, 0.1) for a in ACTIVATIONS for k in (1, 2, 4)]
        else:
            try:
                out += [make_model(name, noise=0.0), make_model(name, noise=0.3)]
            except (TypeError, ValueError):  # a preset that needs more arguments: not in this sweep
                continue
    return out


@pytest.mark.parametrize("model", _presets(), ids=lambda m: f"{m.name}-{m.meta.get('activation', '')}-k{m.k}")
def test_presets_flags_agree_with_the_probe(model):
    """No false alarms: linear, logistic, phase retrieval, committee erf / tanh / quadratic are smooth;
    the relu committee is kinked, as the package's own flags say."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the presets' grad and hess also match finite differences
        report = probe_model(model, check_grad=True, check_hess=True)
    assert report.kinked is (not model.smooth), report
    if model.smooth:
        check_estimator(Problem(model, delta=2.0), MonteCarlo(responses=PathwiseTangents()))


def test_probe_is_fast_and_deterministic():
    model = presets.committee(4, 4, "erf")
    best = min(_timed(lambda: probe_model(model, check_grad=True, check_hess=True)) for _ in range(3))
    assert best < 0.1, best  # measured 15 ms on a loaded core (the target is < 50 ms)
    a, b = probe_model(dandi_problem().model), probe_model(dandi_problem().model)
    assert a == b


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_integration_by_parts_note_for_full_batch_laws():
    prob = dandi_problem()
    ibp = choose_process(prob, laws.GD(DT))
    note = expected_stderr_note(prob, ibp, laws.GD(DT))
    assert note is not None and note.startswith("integration by parts with GD: expect s.e.(M) ~ ")
    assert expected_stderr_note(prob, ibp, laws.SGD(0.05, 0.5)) is None
    smooth = Problem(sgd_dmft.custom(tanh_loss, tanh_label), delta=2.0)
    assert expected_stderr_note(smooth, choose_process(smooth, laws.GD(0.1)), laws.GD(0.1)) is None


# --- the first GD step in closed form ----------------------------------------------------------------
def test_first_step_expectations_by_quadrature():
    """``E[y z1] = 1 - E[y^2]`` (Stein, since tanh' = 1 - tanh^2) and the two E[y z_b] to 1e-9."""
    x, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / math.sqrt(2 * math.pi)
    z2 = np.linspace(-10.0, 10.0, 40001)
    w2 = np.exp(-0.5 * z2**2) / math.sqrt(2 * math.pi) * (z2[1] - z2[0])
    y = dandi_label(np.stack(np.broadcast_arrays(x[:, None], z2[None, :]), axis=-1), None)
    W = w[:, None] * w2[None, :]
    eyz = (np.sum(W * y * x[:, None]), np.sum(W * y * z2[None, :]))
    np.testing.assert_allclose(eyz, E_YZ, atol=1e-9)
    assert abs(eyz[0] - (1.0 - np.sum(W * y * y))) < 1e-9


def test_first_step_matches_the_closed_form_solver_and_simulation():
    prob = dandi_problem()
    m1 = _m1_closed_form()
    ds = solve(prob, laws.GD(DT), t_max=DT, paths=40000, replicas=4, seed=3, extrapolate=False, keep_kernels=False)
    assert ds.attrs["responses"] == "stein"
    z = (ds.M.values[1] - m1) / ds.M_stderr.values[1]
    assert np.all(np.abs(z) < 4.0), np.round(z, 2)
    from sgd_dmft.simulate import simulate

    sim = simulate(prob, "gd", t_max=DT, dt=DT, d=400, seeds=3, seed=5)
    dm = sim.M.values[:, 1] - sim.M.values[:, 0]  # the increment: free of the finite-d M_0 ~ N(0, 1/d)
    z_sim = (dm.mean(axis=0) - m1) / (dm.std(axis=0, ddof=1) / math.sqrt(dm.shape[0]) + 2e-3)
    assert np.all(np.abs(z_sim) < 4.0), np.round(z_sim, 2)


# --- the whole case against finite-d simulation (slow) -----------------------------------------------
@pytest.mark.slow
def test_dandi_case_against_simulation():
    """Integration by parts agrees with a d = 1000 simulation over the 6 steps; pathwise tangents
    (forced with smooth=True and a hess without the Dirac mass) are far off in Q (the issue's 0.579)."""
    from sgd_dmft.simulate import simulate

    prob = dandi_problem()
    kw = dict(t_max=6 * DT, paths=320000, replicas=16, seed=1, extrapolate=False, keep_kernels=False)
    th = solve(prob, laws.GD(DT), **kw)
    sim = simulate(prob, "gd", t_max=6 * DT, dt=DT, d=1000, seeds=10, seed=5)
    S = sim.sizes["seed"]
    for var, sel in (("test_loss", np.s_[:]), ("Q", np.s_[:, 0, 0]), ("Q", np.s_[:, 1, 1]), ("M", np.s_[:, 0, 0])):
        a, sa = th[var].values[sel], th[var + "_stderr"].values[sel]
        b = sim[var].values.mean(axis=0)[sel]
        sb = sim[var].values.std(axis=0, ddof=1)[sel] / math.sqrt(S)
        z = (a[1:] - b[1:]) / np.hypot(sa[1:], sb[1:])
        assert np.all(np.abs(z) < 4.0), (var, np.round(z, 2))
    with pytest.warns(ModelProbeWarning):
        forced = Problem(sgd_dmft.custom(dandi_loss, dandi_label, k=2, kstar=2, grad=dandi_grad,
                                         hess=dandi_hess_without_dirac, smooth=True), delta=DELTA, init_scale=1.0)
        pw = solve(forced, laws.GD(DT), **{**kw, "paths": 160000})
    assert pw.attrs["responses"] == "pathwise"
    assert pw.Q.values[6, 0, 0] < th.Q.values[6, 0, 0] - 0.15  # 0.579 against 0.813


def _scalar_only_loss(r, y):
    if np.ndim(r) > 1:
        raise TypeError("one sample at a time")
    return 0.5 * (r[0] - y) ** 2


def _small_batch_loss(r, y):
    if np.shape(r)[0] > 100:
        raise MemoryError("batches of at most 100")
    return 0.5 * (r[..., 0] - y) ** 2


def test_probe_failure_is_a_config_error_unless_smooth_is_declared():
    """The shape check (8 points) runs first; a loss that fails only on the probe's 2048 points reaches
    the probe's own error."""
    with pytest.raises(ConfigError, match=r"loss\(r \(8, 1\), y \(8,\)\) failed: TypeError") as err:
        sgd_dmft.custom(_scalar_only_loss, tanh_label)
    assert err.value.key == "problem.model"
    with pytest.raises(ConfigError, match=r"the smoothness probe could not evaluate grad.*pass smooth=True") as err:
        sgd_dmft.custom(_small_batch_loss, tanh_label)
    assert err.value.key == "smooth"
    with pytest.warns(ModelProbeWarning, match=r"the declared smooth=True is used"):
        model = sgd_dmft.custom(_small_batch_loss, tanh_label, smooth=True)
    assert model.smooth is True and model.probe is None
