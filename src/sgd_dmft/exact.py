"""Closed forms for square loss with a linear student (``models.linear(noise)``) under GF and GD.

Conventions (docs/theory.md section 1, :mod:`sgd_dmft.models`): ``x_i ~ N(0, I_d / d)``, ``n = delta d``; teacher rows
N(0, 1); labels ``y = X theta* + noise * eps``; sum loss
``L = sum_i (x_i^T theta - y_i)^2 / 2 + ridge |theta|^2 / 2``; ``theta_0 = a theta* + c Z`` with
``a = init_overlap``, ``c = init_scale``.

The spectral law ``mu`` of ``A = X^T X`` (Marchenko-Pastur rescaled by delta) and its quadrature:
:mod:`sgd_dmft.spectral` (re-exported here).

Learning curves
---------------
In the eigenbasis of A, ``theta*``, ``Z`` and ``g = Sigma^{-1} V^T X^T eps`` have i.i.d. N(0, 1)
components independent of the spectrum, and ``(V^T X^T y)_j = s_j theta*_j + noise sqrt(s_j) g_j``.
With ``x = s + ridge`` and

    GF:  E(s, t) = exp(-x t),                    phi = (1 - E) / x   ( = t at x = 0),
    GD:  E(s, m) = (1 - dt x)^m,                 phi = (1 - E) / x   ( = m dt at x = 0),

each component is ``u = theta*(E a + phi s) + E c z + phi noise sqrt(s) g``, so at d = infinity

    M = int mu(ds) (E a + phi s),
    Q = int mu(ds) [(E a + phi s)^2 + E^2 c^2 + phi^2 noise^2 s],
    |X theta - y|^2 / d = int mu(ds) s [(E a + phi s - 1)^2 + E^2 c^2 + phi^2 noise^2 s]
                          - 2 noise^2 int mu(ds) s phi + noise^2 delta,

``train_loss = |X theta - y|^2 / (2 n)`` (mean per-sample loss, penalty excluded) and
``test_loss = (Q - 2 M + 1 + noise^2) / 2``. GD with step dt is exactly what the DMFT solver computes
on its grid for ``laws.GD(dt)``; with ``N >= n_steps + 2`` Gauss nodes ``gd_linear`` is exact up to
rounding (the integrands are polynomials in s of degree <= 2 n_steps + 1).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy.interpolate import CubicSpline

from ._version import __version__
from .curves import TIME_UNITS, exact_vars
from .errors import SolverDiverged
from .models import Problem, population_loss
from .spectral import mp_atom, mp_density, mp_quadrature, mp_support  # noqa: F401  (re-exported: their home was here)

__all__ = [
    "mp_support",
    "mp_atom",
    "mp_density",
    "mp_quadrature",
    "gf_linear",
    "gd_linear",
    "sgd_linear_second_moment",
    "sgd_linear_poisson",
]


# ------------------------------------------------------------------------------------------------
# Learning curves
# ------------------------------------------------------------------------------------------------
def _check_linear(problem: Problem) -> None:
    m = problem.model
    if not (m.linear_square and m.k == 1 and m.kstar == 1):
        raise ValueError(f"exact closed forms need the linear model (models.linear(noise)); got {m.name!r}")


def _test_loss(problem: Problem, Q: np.ndarray, M: np.ndarray, teacher_norm: float | None = None) -> np.ndarray:
    """The linear model's test loss ``(Q - 2 M + |theta*|^2 / d + noise^2) / 2`` on (T,) overlaps: its
    population loss (models/population.py, the one home of the formula); ``teacher_norm`` 1 by default."""
    S = None if teacher_norm is None else np.array([[teacher_norm]])
    return population_loss(problem.model, Q[:, None, None], M[:, None, None], S)


def _curves_from_EP(problem: Problem, s: np.ndarray, w: np.ndarray, E: np.ndarray, phi: np.ndarray):
    """Integrate the closed forms; ``E``, ``phi`` of shape (T, N) on nodes ``s`` (N,), weights ``w``."""
    a, c, sig2 = problem.init_overlap, problem.init_scale, problem.model.noise ** 2
    delta = problem.delta
    g = E * a + phi * s  # theta* coefficient
    M = g @ w
    Q = (g * g + (E * E) * c * c + phi * phi * sig2 * s) @ w
    res = (s * ((g - 1.0) ** 2 + (E * E) * c * c + phi * phi * sig2 * s)) @ w - 2 * sig2 * ((s * phi) @ w) + sig2 * delta
    train = res / (2 * delta)
    return train, _test_loss(problem, Q, M), M, Q


def n_nodes_gf(problem: Problem, t_max: float) -> int:
    """Gauss nodes of the Marchenko-Pastur law that resolve gradient flow up to ``t_max`` (at most 6000)."""
    _, b = mp_support(problem.delta)
    x = (b + abs(problem.ridge)) * max(t_max, 0.0)
    return int(min(6000, 80 + 4 * math.sqrt(40 * x) + 0.25 * x))


def _dataset(problem: Problem, times: np.ndarray, train, test, M, Q, algorithm: str, dt: float, n_nodes: int):
    data = exact_vars({"train_loss": train, "test_loss": test, "M": M[:, None, None], "Q": Q[:, None, None]})
    ds = xr.Dataset(data, coords={"time": np.asarray(times, dtype=np.float64)})
    ds["time"].attrs.update(units=TIME_UNITS)
    ds.attrs.update(
        kind="theory",
        solver="exact-marchenko-pastur",
        algorithm=algorithm,
        dt=float(dt),
        gamma=0.0,
        t_max=float(times[-1]) if len(times) else 0.0,
        **problem.attrs(),
        quadrature_nodes=int(n_nodes),
        paths=0,
        replicas=1,
        exact_path=1,
        sgd_dmft_version=__version__,
    )
    return ds


def gf_linear(problem: Problem, times, *, n_nodes: int | None = None) -> xr.Dataset:
    """Exact d = infinity gradient-flow learning curves of the linear model at ``times``.

    Returns a Dataset like ``dmft.solve``'s: ``train_loss``, ``test_loss``, ``M`` (time, k, kstar),
    ``Q`` (time, k, k2) and zero ``*_stderr``. ``n_nodes`` Gauss nodes of the spectral law (default
    grows with ``t_max (b + ridge)``; the error is at the level of rounding, see the tests).
    """
    _check_linear(problem)
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if np.any(times < 0):
        raise ValueError("times must be non-negative")
    N = int(n_nodes) if n_nodes is not None else n_nodes_gf(problem, float(times.max(initial=0.0)))
    s, w = mp_quadrature(problem.delta, N)
    x = s + problem.ridge
    tx = times[:, None] * x[None, :]
    E = np.exp(-tx)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(x[None, :] != 0, -np.expm1(-tx) / x[None, :], times[:, None])
    train, test, M, Q = _curves_from_EP(problem, s, w, E, phi)
    return _dataset(problem, times, train, test, M, Q, "gf", 0.0, N)


def gd_linear(problem: Problem, dt: float, n_steps: int, *, n_nodes: int | None = None,
              steps=None) -> xr.Dataset:
    """Exact d = infinity curves of full-batch GD with step ``dt`` (the DMFT of ``laws.GD(dt)``).

    ``theta_{m+1} = theta_m - dt_m ((A + ridge) theta_m - X^T y)``, recorded at ``t_m = dt_0 + ... +
    dt_{m-1}``, ``m = 0..n_steps``; ``dt_m = dt``, or ``steps[m]`` when a step sequence is given
    (a graded grid: ``laws.GD(dt, growth=..).steps(n_steps)``; then ``E = prod_j (1 - dt_j x)``).
    Default ``n_nodes = n_steps + 8``: exact up to rounding.
    """
    _check_linear(problem)
    if not dt > 0:
        raise ValueError(f"dt={dt} must be positive")
    n_steps = int(n_steps)
    h = np.full(n_steps, float(dt)) if steps is None else np.asarray(steps, dtype=np.float64)[:n_steps]
    if len(h) != n_steps or not np.all(h > 0):
        raise ValueError(f"steps must hold n_steps={n_steps} positive steps (got {len(h)})")
    N = int(n_nodes) if n_nodes is not None else n_steps + 8
    s, w = mp_quadrature(problem.delta, N)
    x = s + problem.ridge
    times = np.concatenate([[0.0], np.cumsum(h)])
    if steps is None:
        m = np.arange(n_steps + 1, dtype=np.float64)[:, None]
        base = 1.0 - dt * x[None, :]
        E = np.power(base, m)
        one_minus = np.where(base > 0, -np.expm1(m * np.log(np.abs(base) + (base <= 0))), 1.0 - E)
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(x[None, :] != 0, one_minus / x[None, :], m * dt)
    else:  # E_{m+1} = (1 - dt_m x) E_m, phi_{m+1} = (1 - dt_m x) phi_m + dt_m  (phi = (1 - E) / x)
        E = np.empty((n_steps + 1, N))
        phi = np.empty((n_steps + 1, N))
        E[0], phi[0] = 1.0, 0.0
        for j in range(n_steps):
            f = 1.0 - h[j] * x
            E[j + 1] = f * E[j]
            phi[j + 1] = f * phi[j] + h[j]
    if not np.all(np.isfinite(E)):
        raise SolverDiverged(f"GD with dt={h.max()} diverges (dt (b + ridge) > 2)")
    train, test, M, Q = _curves_from_EP(problem, s, w, E, phi)
    return _dataset(problem, times, train, test, M, Q, "gd", dt, N)


# ------------------------------------------------------------------------------------------------
# Critical-scale SGD in its Poisson limit: the homogenised-SGD Volterra equation (least squares)
# ------------------------------------------------------------------------------------------------
def _volterra(g: np.ndarray, K: np.ndarray, h: float) -> np.ndarray:
    """Trapezoidal solution of ``L(t_j) = g_j + int_0^t_j K(t_j - u) L(u) du`` on ``t_j = j h``
    (``K[j] = K(j h)``); second order in h."""
    L = np.empty(len(g))
    L[0] = g[0]
    for j in range(1, len(g)):
        acc = 0.5 * K[j] * L[0] + K[j - 1 : 0 : -1] @ L[1:j]
        L[j] = (g[j] + h * acc) / (1.0 - 0.5 * h * K[0])
    return L


def _convolve(K: np.ndarray, L: np.ndarray, h: float) -> np.ndarray:
    """``int_0^t_j K(t_j - u) L(u) du`` by the trapezoid on ``t_j = j h``."""
    out = np.zeros(len(L))
    for j in range(1, len(L)):
        out[j] = h * (0.5 * K[j] * L[0] + K[j - 1 : 0 : -1] @ L[1:j] + 0.5 * K[0] * L[j])
    return out


def _poisson_level(problem: Problem, gamma: float, n: int, h: float, s: np.ndarray, w: np.ndarray):
    tg = np.arange(n + 1) * h
    gf = gf_linear(problem, tg, n_nodes=len(s))
    ex = np.exp(-2.0 * np.outer(tg, s + problem.ridge))
    K2 = (gamma / problem.delta) * ((ex * s**2) @ w)
    K1 = 2.0 * gamma * ((ex * s) @ w)
    L = _volterra(gf.train_loss.values, K2, h)
    Q = gf.Q.values[:, 0, 0] + _convolve(K1, L, h)
    M = gf.M.values[:, 0, 0]
    return tg, L, _test_loss(problem, Q, M), M, Q


def sgd_linear_poisson(problem: Problem, gamma: float, times, *, h: float | None = None,
                       n_nodes: int | None = None) -> xr.Dataset:
    """Exact d = infinity curves of critical-scale SGD (its Poisson limit, batch ``kappa = o(n)``) on
    the linear model: the continuous-time limit that ``laws.SGD(dt, gamma)`` approaches as ``dt -> 0``.

    Derivation. Each sample is visited at rate ``1/gamma`` and a visit moves ``theta`` by
    ``-gamma x_i e_i`` (``e = X theta - y``). The mean ``m(t) = E theta`` follows gradient flow; the
    covariance ``V`` of ``theta - m`` obeys ``dV/dt = -(A + ridge) V - V (A + ridge) + gamma sum_i x_i x_i^T
    E[e_i^2]``, and in high dimension the sampled directions decouple from the residuals (homogenised
    SGD: ``sum_i x_i x_i^T E[e_i^2] -> 2 L(t) A`` with ``L`` the train loss, mean per-sample ``e^2 / 2``).
    Since ``2 n L = |X m - y|^2 + tr(A V)``:

        L(t) = L_GF(t) + (gamma / delta) int_0^t K2(t - u) L(u) du,   K2(tau) = int mu(ds) s^2 exp(-2 (s + ridge) tau),
        Q(t) = Q_GF(t) + 2 gamma int_0^t K1(t - u) L(u) du,          K1(tau) = int mu(ds) s exp(-2 (s + ridge) tau),

    ``M = M_GF``, ``test = (Q - 2 M + 1 + noise^2) / 2`` (mu: the spectral law of ``A = X^T X``). The
    Volterra equation is solved by the trapezoid at steps ``h`` and ``h/2``, Richardson-combined and
    interpolated by a cubic spline (fourth order; default ``h = min(1e-3, t_max / 400)``); the kernels by ``n_nodes`` Gauss nodes.
    ``<var>_dt_error``: the error of the step-``h/2`` solve, ``|f(h/2) - f(h)| / 3``, a bound on the
    combination's (O(h^4)) error.
    Does not use the DMFT solver; ``tests/test_extrapolation.py`` checks the solver against it.
    """
    _check_linear(problem)
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    t_max = float(times.max())
    if not (gamma > 0 and t_max > 0):
        raise ValueError(f"need gamma > 0 and max(times) > 0 (got {gamma}, {t_max})")
    N = int(n_nodes) if n_nodes is not None else max(200, n_nodes_gf(problem, 2 * t_max))
    s, w = mp_quadrature(problem.delta, N)
    hh = float(h) if h is not None else min(1e-3, t_max / 400)
    n = int(math.ceil(t_max / hh - 1e-9))  # the fine level has exactly 2n steps (nested points)
    tc, *coarse = _poisson_level(problem, gamma, n, hh, s, w)
    _, *fine = _poisson_level(problem, gamma, 2 * n, hh / 2, s, w)
    pairs = [(f[::2][: len(c)], c) for c, f in zip(coarse, fine)]
    # cubic between the Volterra nodes (fourth order, like the combination; linear would be second)
    train, test, M, Q = (CubicSpline(tc, (4.0 * f - c) / 3.0)(times) for f, c in pairs)
    ds = _dataset(problem, times, train, test, M, Q, "sgd-poisson", 0.0, N)
    ds.attrs.update(solver="exact-homogenised-sgd-volterra", gamma=float(gamma), volterra_step=hh)
    for name, (f, c) in zip(("train_loss", "test_loss", "M", "Q"), pairs):  # the fine level's own error
        err = np.interp(times, tc, np.abs(f - c) / 3.0)
        ds[name + "_dt_error"] = (ds[name].dims, err.reshape(ds[name].shape))
    return ds


# ------------------------------------------------------------------------------------------------
# Finite d: exact expectation over the step multipliers (linear model, i.i.d. law)
# ------------------------------------------------------------------------------------------------
def sgd_linear_second_moment(problem: Problem, law, X: np.ndarray, y: np.ndarray, theta_star: np.ndarray,
                             theta0: np.ndarray, n_steps: int) -> xr.Dataset:
    """Exact ``E_S`` of the overlaps of the grid recursion for a *fixed* finite-d instance.

    For the linear model and a law with i.i.d. multipliers (``E S = c1``, ``E S^2 = c2``, independent
    across samples and steps), ``z = (theta, 1)`` obeys ``z' = G z`` with
    ``G = diag(c, 1) - sum_i S_i u_i w_i^T``, ``u_i = (x_i, 0)``, ``w_i = (x_i, -y_i)``,
    ``c = 1 - dt ridge`` (per step ``dt_m`` on a graded grid), so ``Sigma = E[z z^T]`` follows the closed recursion

        Sigma' = C0 Sigma C0 - c1 (U W^T Sigma C0 + C0 Sigma W U^T) + c1^2 U W^T Sigma W U^T
                 + (c2 - c1^2) sum_i (w_i^T Sigma w_i) u_i u_i^T.

    Returns ``train_loss``, ``test_loss``, ``M``, ``Q`` (expected over the algorithm's randomness) on
    ``t_m = m dt``. Cost O(n_steps n d^2): an independent finite-d check of the DMFT's exact SGD path.
    """
    _check_linear(problem)
    n, d = X.shape
    c1s, c2s = law.moments(n_steps + 1)  # E[S_m], E[S_m^2] (per step on a graded grid)
    cs = law.decays(n_steps + 1, problem.ridge)
    z0 = np.concatenate([np.asarray(theta0, float).ravel(), [1.0]])
    Sig = np.outer(z0, z0)
    W = np.concatenate([X, -np.asarray(y, float).reshape(-1, 1)], axis=1)  # (n, d+1): rows w_i
    C0 = np.ones(d + 1)
    ts = np.asarray(theta_star, float).ravel()
    Q, M, tr = (np.empty(n_steps + 1) for _ in range(3))
    yv = np.asarray(y, float).ravel()
    A = X.T @ X
    for m in range(n_steps + 1):
        St = Sig[:d, :d]
        Q[m] = np.trace(St) / d
        M[m] = Sig[:d, d] @ ts / d
        tr[m] = (np.sum(A * St) - 2 * yv @ (X @ Sig[:d, d]) + yv @ yv) / (2 * n)
        if m == n_steps:
            break
        c1, c2 = c1s[m], c2s[m]
        C0[:d] = cs[m]
        SW = Sig @ W.T  # (d+1, n)
        WSW = W @ SW  # (n, n)
        UWS = np.zeros((d + 1, d + 1))
        UWS[:d] = X.T @ SW.T  # U W^T Sigma
        new = C0[:, None] * Sig * C0[None, :]
        cross = UWS * C0[None, :]
        new -= c1 * (cross + cross.T)
        inner = np.zeros((d + 1, d + 1))
        inner[:d, :d] = c1**2 * (X.T @ WSW @ X) + (c2 - c1**2) * (X.T * np.diagonal(WSW)) @ X
        Sig = new + inner
        Sig = 0.5 * (Sig + Sig.T)
    test = _test_loss(problem, Q, M, float(ts @ ts) / d)
    times = np.concatenate([[0.0], np.cumsum(law.steps(n_steps))])
    return _dataset(problem, times, tr, test, M, Q, getattr(law, "name", "law"), law.dt, 0)
