"""Online (one-pass) SGD: the delta -> infinity ODEs for the overlaps (derived below; the setting is
that of docs/theory.md section 1).

Derivation (kappa = 1; any kappa << d gives the same limit). One step on a fresh sample,
``theta' = c theta - gamma x F(r, y)^T`` with ``c = 1 - eta ridge``, ``eta = gamma / n``,
``r = theta^T x``, ``r* = theta*^T x``, ``|x|^2 = 1 + O(d^{-1/2})``:

    M' - M = -eta ridge M - (gamma / d) F r*^T,
    Q' - Q = (c^2 - 1) Q - (c gamma / d) (F r^T + r F^T) + (gamma^2 |x|^2 / d) F F^T.

A unit of ``tau`` is ``d`` steps (``d`` fresh samples per dimension), i.e. ``t = d eta = gamma /
delta``, so ``tau = delta t / gamma`` and, averaging over the fresh sample (law of large numbers),

    dM/dtau = -gamma E[F r*^T] - (gamma ridge / delta) M,
    dQ/dtau = -gamma (E[F r^T] + E[r F^T]) + gamma^2 E[F F^T] - 2 (gamma ridge / delta) Q,

with ``(r, r*) ~ N(0, [[Q, M], [M^T, I]])`` and the label noise. The ridge enters through
``ridge / delta`` (with ridge fixed the penalty vanishes as delta -> infinity).

Expectations
------------
Each model says what it knows (``Model.online_expectations()``, closed forms in
:mod:`sgd_dmft.models.closed_forms`):

* linear model: ``E[F r*] = M - 1``, ``E[F r] = Q - M``, ``E[F^2] = Q - 2M + 1 + noise^2``;
* soft committee with ``erf(x / sqrt 2)`` (``f = mean_a g(r_a)``): Saad & Solla (1995) closed forms
  (``I2``, ``I3``, ``I4``, ``J2``);
* logistic: exact split quadrature (the label is a step in r* (+ noise)): Gauss-Legendre in r* on
  each side of the jump, Gauss-Hermite in the conditional part of r;
* other models: tensor Gauss-Hermite for ``k + k* (+1 noise dim) <= 4``, Monte Carlo beyond (fixed
  samples per replica so the ODE is smooth; ``replicas`` independent sample sets give the stderr).
  Square-loss models with additive noise integrate the noise analytically.

The ODE is integrated in ``tau`` with scipy's RK45 (``rtol``) and reported on ``t_m = m dt``.
``online_linear_map`` is the exact delta -> infinity limit of the *discrete* grid recursion that the
DMFT solves for ``laws.SGD(dt, gamma)`` (Bernoulli batches of ``d dtau`` fresh samples per step); it
tends to the ODE as ``dtau -> 0`` (first order).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from ._version import __version__
from .curves import TEST_ERROR_UNITS, TIME_UNITS, exact_vars, theory_vars
from .errors import ConfigError, SolverDiverged
from .models import Model, Problem, classifies, population_loss, zero_one_error
from .models.closed_forms import I2, I3, I4, J2, committee_erf_expectations, committee_erf_loss
from .models.gaussian import gh_nodes, joint_cov, sqrtm_psd
from .models.population import label_uses_eps

__all__ = [
    "I2",
    "J2",
    "I3",
    "I4",
    "expectations",
    "committee_erf_expectations",
    "committee_erf_loss",
    "online_rhs",
    "solve_online",
    "online_linear_map",
]

Q_MAX = 1e10


# ------------------------------------------------------------------------------------------------
# Generic expectations
# ------------------------------------------------------------------------------------------------
def _noise_dim(model: Model) -> bool:
    """Whether the expectations integrate ``eps`` numerically: never for additive noise, nor at zero
    noise when the label does not depend on ``eps`` (:func:`~sgd_dmft.models.population.label_uses_eps`),
    so that e.g. k = k* = 2 at noise 0 stays on Gauss-Hermite (D = 4)."""
    return label_uses_eps(model)


class _Nodes:
    """Standard-normal nodes ``z`` (N, D) and weights ``w`` (N,) for ``(r, r*, [eps])`` expectations."""

    def __init__(self, model: Model, method: str, rng: np.random.Generator | None, mc_samples: int):
        k, ks = model.k, model.kstar
        self.noise_dim = _noise_dim(model)
        D = k + ks + (1 if self.noise_dim else 0)
        if method == "auto":
            method = "gh" if D <= 4 else "mc"
        self.method = method
        if method == "gh":
            n1 = {1: 120, 2: 60, 3: 30, 4: 16}.get(D, 8)
            self.z, self.w = gh_nodes(D, max_nodes=n1**D)
        elif method == "mc":
            rng = rng if rng is not None else np.random.default_rng(0)
            z = rng.standard_normal((mc_samples // 2, D))
            self.z = np.concatenate([z, -z])  # antithetic
            self.w = np.full(self.z.shape[0], 1.0 / self.z.shape[0])
        else:
            raise ValueError(f"method={method!r} is not 'auto', 'gh' or 'mc'")
        self.k, self.ks = k, ks


def _generic_expectations(model: Model, Q: np.ndarray, M: np.ndarray, nodes: _Nodes):
    """``(E[F r*^T], E[F r^T], E[F F^T])`` by quadrature / Monte Carlo on ``nodes``, S* = I."""
    k, ks = model.k, model.kstar
    A = sqrtm_psd(joint_cov(Q, M))
    g = nodes.z[:, : k + ks] @ A.T
    r, rs = g[:, :k], g[:, k:]
    w = nodes.w
    if model.additive_noise:
        f, tg = model.predictor, model.target
        res = f(r) - tg(rs)  # F = (res - noise eps) f'(r); eps integrated analytically
        fp = model.grad(r, f(r) - 1.0)  # = f'(r) (grad at residual 1)
        F = res[:, None] * fp
        EFF = (F * w[:, None]).T @ F + model.noise**2 * (fp * w[:, None]).T @ fp
    else:
        eps = nodes.z[:, -1] if nodes.noise_dim else np.zeros(r.shape[0])
        y = model.label(rs, eps)
        F = np.asarray(model.grad(r, y), dtype=np.float64).reshape(r.shape[0], k)
        EFF = (F * w[:, None]).T @ F
    Fw = F * w[:, None]
    return Fw.T @ rs, Fw.T @ r, 0.5 * (EFF + EFF.T)


def expectations(problem: Problem | Model, Q: np.ndarray, M: np.ndarray, *, method: str = "auto",
                 mc_samples: int = 2**16, rng: np.random.Generator | None = None):
    """``(E[F r*^T] (k, k*), E[F r^T] (k, k), E[F F^T] (k, k))`` at overlaps ``(Q, M)``, S* = I.

    ``method``: ``"auto"`` (the model's closed form where it has one, else Gauss-Hermite for
    ``D = k + k* (+1) <= 4``, Monte Carlo beyond), ``"closed"``, ``"gh"`` or ``"mc"``.
    """
    model = problem.model if isinstance(problem, Problem) else problem
    return _expectation_fn(model, method, mc_samples, rng)(np.asarray(Q, float), np.asarray(M, float))


def _expectation_fn(model: Model, method: str, mc_samples: int, rng):
    if method in ("auto", "closed"):
        closed = model.online_expectations()
        if closed is not None:
            return closed
        if method == "closed":
            raise ValueError(f"no closed form for model {model.name!r}")
        method = "auto"
    nodes = _Nodes(model, method, rng, mc_samples)
    return lambda Q, M: _generic_expectations(model, Q, M, nodes)


# ------------------------------------------------------------------------------------------------
# The ODE
# ------------------------------------------------------------------------------------------------
def online_rhs(problem: Problem, gamma: float, expect=None, lr=None):
    """``f(tau, y)`` for the state ``y = [Q.ravel(), M.ravel()]`` (derivatives in tau). ``lr``: a learning-rate
    schedule (laws.LRSchedule, in units of t = gamma tau / delta): the step ``gamma f(t)``, ridge included."""
    k, ks = problem.k, problem.kstar
    ex = expect if expect is not None else _expectation_fn(problem.model, "auto", 2**16, None)

    def f(tau, y):
        g = gamma if lr is None else gamma * float(lr.factor(tau * gamma / problem.delta))
        rho = g * problem.ridge / problem.delta
        Q = y[: k * k].reshape(k, k)
        M = y[k * k:].reshape(k, ks)
        Q = 0.5 * (Q + Q.T)
        EFrs, EFr, EFF = ex(Q, M)
        dM = -g * EFrs - rho * M
        dQ = -g * (EFr + EFr.T) + g**2 * EFF - 2 * rho * Q
        return np.concatenate([dQ.ravel(), dM.ravel()])

    return f


def _rk4(f, y0, taus, h_max, gamma, k, ks):
    out = np.empty((len(taus), y0.size))
    out[0] = y = y0.copy()
    for m in range(1, len(taus)):
        span = taus[m] - taus[m - 1]
        ns = max(1, int(math.ceil(span / h_max - 1e-9)))
        h = span / ns
        t = taus[m - 1]
        for _ in range(ns):
            k1 = f(t, y)
            k2 = f(t + h / 2, y + h / 2 * k1)
            k3 = f(t + h / 2, y + h / 2 * k2)
            k4 = f(t + h, y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += h
        if not np.all(np.isfinite(y)) or np.max(np.abs(y[: k * k])) > Q_MAX:
            raise SolverDiverged(f"online ODE diverged at tau={taus[m]:.4g} (gamma={gamma:g})")
        out[m] = y
    Q = out[:, : k * k].reshape(-1, k, k)
    return 0.5 * (Q + np.swapaxes(Q, 1, 2)), out[:, k * k:].reshape(-1, k, ks)


def _integrate(problem: Problem, gamma: float, taus: np.ndarray, expect, rtol: float, atol: float,
               fixed_step: float | None = None, lr=None):
    k, ks = problem.k, problem.kstar
    C0, M0 = problem.init_moments()
    y0 = np.concatenate([C0.ravel(), M0.ravel()])
    f = online_rhs(problem, gamma, expect, lr)

    def blow(tau, y):
        return Q_MAX - np.max(np.abs(y[: k * k]))

    blow.terminal = True
    if fixed_step is not None:  # classical RK4 (Monte Carlo expectations: piecewise-smooth right-hand side)
        return _rk4(f, y0, taus, fixed_step, gamma, k, ks)
    with np.errstate(all="ignore"):
        sol = solve_ivp(f, (0.0, float(taus[-1])), y0, method="RK45", t_eval=taus, rtol=rtol, atol=atol,
                        events=blow)
    if sol.status == 1 or not sol.success or sol.y.shape[1] != len(taus) or not np.all(np.isfinite(sol.y)):
        t_fail = float(sol.t[-1]) if sol.t.size else 0.0
        raise SolverDiverged(f"online ODE diverged at tau={t_fail:.4g} (gamma={gamma:g}): {sol.message}")
    Y = sol.y.T
    Q = Y[:, : k * k].reshape(-1, k, k)
    Q = 0.5 * (Q + np.swapaxes(Q, 1, 2))
    M = Y[:, k * k:].reshape(-1, k, ks)
    return Q, M


def _replicas(problem: Problem, gamma: float, taus: np.ndarray, method: str, mc_samples: int, replicas: int,
              seed: int, rtol: float, atol: float, rk4_step: float, lr=None):
    """Per-replica ``(Q (R, T+1, k, k), M (R, T+1, k, k*), test loss (R, T+1), expectations kind)``."""
    model = problem.model
    closed = model.online_expectations() is not None
    D = model.k + model.kstar + (1 if _noise_dim(model) else 0)
    if method == "mc" or (method == "auto" and not closed and D > 4):
        seqs = np.random.SeedSequence(seed).spawn(max(2, int(replicas)))
        runs = [_integrate(problem, gamma, taus,
                           _expectation_fn(model, "mc", mc_samples, np.random.default_rng(s)), rtol, atol,
                           fixed_step=rk4_step / max(gamma, gamma**2), lr=lr)
                for s in seqs]
        Qr = np.stack([r[0] for r in runs])
        Mr = np.stack([r[1] for r in runs])
        Lr = np.stack([population_loss(model, q, m) for q, m in runs])
        return Qr, Mr, Lr, "mc"
    Q, M = _integrate(problem, gamma, taus, _expectation_fn(model, method, mc_samples, None), rtol, atol, lr=lr)
    kind = "closed" if closed and method in ("auto", "closed") else "gh"
    return Q[None], M[None], population_loss(model, Q, M)[None], kind


MAX_STEPS = 10**7  # grid points of solve_online (t_max / dt, or the record times)
METHODS = ("auto", "closed", "gh", "mc")


def _check_online(problem, gamma, t_max, dt, method, mc_samples, replicas, seed, rtol, atol, rk4_step,
                  times=None) -> tuple:
    """solve_online's arguments, checked (ConfigError naming the parameter, arguments.py) and normalised;
    ``t_max`` and ``dt`` may be None when record ``times`` are given."""
    from . import arguments as a

    out = (a.problem(problem), a.number("gamma", gamma, 0.0, lo_open=True))
    if times is not None:
        out += (None, None)
    else:
        out += (a.number("t_max", t_max, 0.0, lo_open=True), a.number("dt", dt, 0.0, lo_open=True))
        if out[3] > out[2]:
            raise ConfigError(f"dt={dt!r} is not allowed: must be <= t_max={t_max!r}", key="dt")
        if not out[2] / out[3] <= MAX_STEPS:
            raise ConfigError(f"dt={dt!r} is not allowed: t_max / dt = {out[2] / out[3]:.3g} grid points, at most "
                              f"{MAX_STEPS:g}", key="dt")
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not allowed: must be one of {', '.join(METHODS)}", key="method")
    return out + (method, a.integer("mc_samples", mc_samples, 1, 2**26), a.integer("replicas", replicas, 1, 10**4),
                  a.integer("seed", seed, 0), a.number("rtol", rtol, 0.0, lo_open=True),
                  a.number("atol", atol, 0.0, lo_open=True), a.number("rk4_step", rk4_step, 0.0, lo_open=True))


def solve_online(problem: Problem, *, gamma: float, t_max: float | None = None, dt: float | None = None,
                 method: str = "auto", mc_samples: int = 2**15, replicas: int = 4, seed: int = 0, rtol: float = 1e-8,
                 atol: float = 1e-11, rk4_step: float = 0.02, times=None, lr=None) -> xr.Dataset:
    """Online-SGD overlaps on the grid ``t_m = m dt`` up to ``t_max`` (``tau_m = delta t_m / gamma``), or at
    any increasing record ``times`` from 0 (graded or log-spaced records for long horizons: the adaptive
    ODE solver's cost does not depend on them). ``lr``: a learning-rate schedule (laws.LRSchedule; the step
    ``gamma f(t)``, ridge included; docs/theory.md 1b).

    Returns a Dataset on ``time`` with ``train_loss`` (= ``test_loss``: the population loss, there is
    no training set), ``test_loss``, ``M`` (time, k, kstar), ``Q`` (time, k, k2), ``*_stderr`` (zero
    unless Monte Carlo expectations were used: then the spread over ``replicas`` sample sets) and a
    ``tau`` coordinate. Deterministic expectations: RK45 at ``rtol``; Monte Carlo ones: classical RK4
    with step ``rk4_step / max(gamma, gamma^2)`` in tau (the sampled right-hand side is only
    piecewise smooth, which defeats adaptive step control). Raises
    :class:`sgd_dmft.errors.SolverDiverged` if the ODE blows up, ConfigError (key = the parameter) for an
    invalid argument.
    """
    problem, gamma, t_max, dt, method, mc_samples, replicas, seed, rtol, atol, rk4_step = _check_online(
        problem, gamma, t_max, dt, method, mc_samples, replicas, seed, rtol, atol, rk4_step, times)
    times = _online_times(t_max, dt, times)
    taus = problem.delta * times / gamma
    Qr, Mr, Lr, kind = _replicas(problem, gamma, taus, method, mc_samples, replicas, seed, rtol, atol, rk4_step, lr)
    R = Qr.shape[0]
    data = theory_vars({"test_loss": Lr, "M": Mr, "Q": Qr})
    data["train_loss"] = data["test_loss"]
    data["train_loss_stderr"] = data["test_loss_stderr"]
    if classifies(problem.model):  # the test 0-1 error of each replica's overlaps (probability)
        data.update(theory_vars({"test_error": np.stack([zero_one_error(problem.model, q, m) for q, m in zip(Qr, Mr)])}))
    ds = xr.Dataset(data, coords={"time": times, "tau": ("time", taus)})
    ds["time"].attrs.update(units=TIME_UNITS)
    ds["tau"].attrs.update(units="fresh samples per dimension, tau = delta t / gamma")
    if "test_error" in ds:
        ds["test_error"].attrs["units"] = ds["test_error_stderr"].attrs["units"] = TEST_ERROR_UNITS
    ds.attrs.update(
        kind="theory",
        solver="online-ode",
        algorithm="online",
        expectations=kind,
        dt=float(dt if dt is not None else times[1] - times[0]),
        gamma=float(gamma),
        t_max=float(times[-1]),
        **problem.attrs(),
        **(lr.attrs() if lr is not None else {}),
        replicas=int(R),
        paths=int(mc_samples * R if kind == "mc" else 0),
        rtol=float(rtol),
        seed=int(seed),
        train_loss_note="online SGD: train_loss = test_loss (population loss on fresh samples)",
        sgd_dmft_version=__version__,
    )
    return ds


def _online_times(t_max, dt, times) -> np.ndarray:
    """The record times: ``times`` as given (increasing, from 0), or ``m dt`` up to ``t_max`` (``t_max``,
    ``dt`` and gamma already checked by :func:`_check_online`)."""
    if times is None:
        return np.arange(int(round(t_max / dt)) + 1) * dt
    t = np.asarray(times, dtype=np.float64)
    if not (t.ndim == 1 and t.size >= 2 and t[0] == 0.0 and np.all(np.diff(t) > 0) and np.all(np.isfinite(t))):
        raise ConfigError(f"times={t.size} record times are not allowed: must be increasing finite times from 0",
                          key="times")
    return t


# ------------------------------------------------------------------------------------------------
# Exact delta -> infinity limit of the DMFT grid recursion (linear model)
# ------------------------------------------------------------------------------------------------
def online_linear_map(problem: Problem, *, gamma: float, dt: float, n_steps: int) -> xr.Dataset:
    """delta -> infinity limit, at fixed ``dtau = delta dt / gamma``, of the grid recursion for
    ``laws.SGD(dt, gamma)`` on the linear model: each step uses ``d dtau`` fresh samples (batch
    ``W = X_B^T X_B`` with ``E W = dtau I``, ``E W^2 = (dtau + dtau^2) I``), ``c = 1 - dt ridge``:

        M' = c M - gamma dtau (M - 1),
        Q' = c^2 Q - 2 c gamma dtau (Q - M) + gamma^2 (dtau + dtau^2)(Q - 2M + 1) + gamma^2 dtau noise^2.

    The ``dtau^2`` term and the discrete steps are the O(dtau) differences from the ODE.
    """
    model = problem.model
    if not (model.linear_square and model.k == 1 and model.kstar == 1):
        raise ValueError(f"online_linear_map needs the linear model; got {model.name!r}")
    dtau = problem.delta * dt / gamma
    c = 1.0 - dt * problem.ridge
    s2 = model.noise**2
    C0, M0 = problem.init_moments()
    Q = np.empty(n_steps + 1)
    M = np.empty(n_steps + 1)
    Q[0], M[0] = C0[0, 0], M0[0, 0]
    g = gamma * dtau
    for m in range(n_steps):
        q, mm = Q[m], M[m]
        M[m + 1] = c * mm - g * (mm - 1.0)
        Q[m + 1] = c * c * q - 2 * c * g * (q - mm) + gamma * g * (1 + dtau) * (q - 2 * mm + 1.0) + gamma * g * s2
    times = np.arange(n_steps + 1) * dt
    loss = 0.5 * (Q - 2 * M + 1.0 + s2)
    data = exact_vars({"test_loss": loss, "train_loss": loss.copy(), "M": M[:, None, None], "Q": Q[:, None, None]})
    return xr.Dataset(
        data,
        coords={"time": times, "tau": ("time", problem.delta * times / gamma)},
        attrs=dict(kind="theory", solver="online-linear-map", algorithm="online", gamma=float(gamma), dt=float(dt),
                   delta=float(problem.delta), ridge=float(problem.ridge), model=model.name),
    )
