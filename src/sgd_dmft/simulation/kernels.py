"""How a run of SGD steps is computed: numba kernels for the preset models, a numpy loop otherwise.

Every step of mini-batch SGD, reshuffling and online SGD is (sum-loss convention, docs/conventions.md)

    theta <- fac * theta - gamma * sum_{i in B} x_i F(x_i^T theta, y_i)^T,

with all ``r_i = x_i^T theta`` formed at the pre-update theta; ``F = d loss / d r`` (shape ``(k,)``
per sample), ``fac = 1 - eta * ridge``, ``eta = gamma * kappa / n``. The kernel re-implements ``F`` for
the preset models (selected by ``model.kernel_spec``) and is validated against ``model.grad`` at
start-up; any other model runs the numpy loop. The ridge shrinkage is carried as a scalar,
``theta = c * theta_tilde``, so a kappa = 1 step costs O(d k).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from ..models import Model

_RENORM = 1e-3  # fold the ridge scalar c back into theta_tilde when |c| falls below this
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT2_PI = math.sqrt(2.0 / math.pi)

# The codes are ``model.kernel_spec`` = (model code, activation code): models linear 0, logistic 1,
# phase_retrieval 2, committee 3, two-layer square loss 4, two-layer logistic loss 5; activations erf 0,
# relu 1, tanh 2, quadratic 3, linear 4 (Activation.code). The two-layer kernels read
# ``params = model.kernel_params`` = [a_1..a_k, b_1..b_k] (second layer, biases); the others ignore it.
_NO_PARAMS = np.zeros(0)


@numba.njit(cache=True, inline="always")
def _act_nb(acode, x):
    if acode == 0:
        return math.erf(x * _INV_SQRT2)
    elif acode == 1:
        return x if x > 0.0 else 0.0
    elif acode == 2:
        return math.tanh(x)
    elif acode == 3:
        return x * x
    else:
        return x


@numba.njit(cache=True, inline="always")
def _dact_nb(acode, x):
    if acode == 0:
        return _SQRT2_PI * math.exp(-0.5 * x * x)
    elif acode == 1:
        return 1.0 if x > 0.0 else 0.0
    elif acode == 2:
        t = math.tanh(x)
        return 1.0 - t * t
    elif acode == 3:
        return 2.0 * x
    else:
        return 1.0


@numba.njit(cache=True)
def _two_layer_nb(mcode, acode, r, y, out, params):
    """``out[:] = F(r, y)`` of the two-layer student ``f = sum_a a_a s(r_a + b_a)``: square loss
    (mcode 4) ``F_a = (f - y) a_a s'``, logistic (5) ``F_a = -y sigmoid(-y f) a_a s'``."""
    k = r.shape[0]
    f = 0.0
    for a in range(k):
        f += params[a] * _act_nb(acode, r[a] + params[k + a])
    if mcode == 4:
        res = f - y
    else:
        res = -y * 0.5 * (1.0 + math.tanh(-0.5 * y * f))
    for a in range(k):
        out[a] = res * params[a] * _dact_nb(acode, r[a] + params[k + a])


@numba.njit(cache=True)
def _grad_nb(mcode, acode, r, y, out, params):
    """``out[:] = F(r, y)`` for a preset model; ``r``, ``out`` of length k."""
    k = r.shape[0]
    if mcode >= 4:
        _two_layer_nb(mcode, acode, r, y, out, params)
        return
    if mcode == 0:  # linear
        out[0] = r[0] - y
    elif mcode == 1:  # logistic: -y sigmoid(-y r)
        z = -y * r[0]
        out[0] = -y * 0.5 * (1.0 + math.tanh(0.5 * z))
    elif mcode == 2:  # phase retrieval
        out[0] = (r[0] * r[0] - y) * 2.0 * r[0]
    else:  # committee
        f = 0.0
        for a in range(k):
            f += _act_nb(acode, r[a])
        f /= k
        res = (f - y) / k
        for a in range(k):
            out[a] = res * _dact_nb(acode, r[a])


@numba.njit(cache=True)
def _grad_rows_nb(mcode, acode, R, y, out, params):
    """``out[i] = F(R[i], y[i])`` for every row; ``R``, ``out`` of shape ``(N, k)``."""
    for i in range(R.shape[0]):
        _grad_nb(mcode, acode, R[i], y[i], out[i], params)


# 'reassoc' lets the d-long dot products vectorise (a kappa = 1 step is latency-bound otherwise); no
# 'nnan'/'ninf' so that the divergence checks stay valid. Results stay deterministic on a given machine.
_FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(cache=True, fastmath=_FASTMATH)
def _steps_kernel(X, y, tt, c, idx, ptr, gamma, fac, mcode, acode, params):
    """Run ``len(ptr) - 1`` SGD steps in place on ``theta = c * tt`` (``tt`` of shape ``(d, k)``).

    Step s uses the batch ``idx[ptr[s]:ptr[s+1]]`` (rows of X): all ``r_i = x_i^T theta`` are formed at
    the pre-update theta, then ``theta <- fac * theta - gamma * sum_{i in B} x_i F(r_i, y_i)^T``.
    Returns ``(c, s_fail)`` with ``s_fail = -1`` when every step stayed finite, else the failing step.
    """
    d, k = tt.shape
    n_steps = ptr.shape[0] - 1
    maxb = 1
    for s in range(n_steps):
        if ptr[s + 1] - ptr[s] > maxb:
            maxb = ptr[s + 1] - ptr[s]
    rb = np.empty((maxb, k))
    Fb = np.empty((maxb, k))
    for s in range(n_steps):
        b0 = ptr[s]
        nb = ptr[s + 1] - b0
        for j in range(nb):
            i = idx[b0 + j]
            for a in range(k):
                acc = 0.0
                for l in range(d):
                    acc += X[i, l] * tt[l, a]
                rb[j, a] = c * acc
            _grad_nb(mcode, acode, rb[j], y[i], Fb[j], params)
            for a in range(k):
                if not math.isfinite(Fb[j, a]) or abs(rb[j, a]) > 1e100:
                    return c, s
        # ridge as a scalar factor; fold it back when it gets small
        if abs(c * fac) < _RENORM or abs(c * fac) > 1.0 / _RENORM:
            for l in range(d):
                for a in range(k):
                    tt[l, a] *= c
            c = 1.0
        cn = c * fac
        if abs(cn) < _RENORM:  # |fac| itself tiny: shrink explicitly
            for l in range(d):
                for a in range(k):
                    tt[l, a] *= fac
            cn = 1.0
            c = 1.0
        coef = gamma / cn
        for j in range(nb):
            i = idx[b0 + j]
            if k == 1:
                g = coef * Fb[j, 0]
                for l in range(d):
                    tt[l, 0] -= g * X[i, l]
            else:
                for l in range(d):
                    xl = coef * X[i, l]
                    for a in range(k):
                        tt[l, a] -= xl * Fb[j, a]
        c = cn
    return c, -1


def _steps_numpy(model: Model, X, y, theta, idx, ptr, gamma, fac):
    """Per-step numpy loop (custom models): same recursion as :func:`_steps_kernel` with c = 1."""
    for s in range(len(ptr) - 1):
        B = idx[ptr[s]:ptr[s + 1]]
        XB = X[B]
        r = XB @ theta
        F = np.asarray(model.grad(r, y[B]), dtype=np.float64).reshape(len(B), -1)
        if not np.all(np.isfinite(F)) or np.max(np.abs(r)) > 1e100:
            return s
        theta *= fac
        theta -= gamma * (XB.T @ F)
    return -1


def kernel_codes(model: Model) -> tuple[int, int] | None:
    """The kernel's ``(model code, activation code)`` for ``model``, or None (then the numpy loop runs).

    The kernel's gradient is checked against ``model.grad`` on 16 random points (guards against a
    model that claims a preset's kernel but computes another gradient).
    """
    spec = model.kernel_spec
    if spec is None:
        return None
    mcode, acode = (int(v) for v in spec)
    rng = np.random.default_rng(12345)
    R = rng.standard_normal((16, model.k)) * 1.5
    y = np.asarray(model.label(rng.standard_normal((16, model.kstar)), rng.standard_normal(16)), dtype=np.float64)
    out = np.empty_like(R)
    _grad_rows_nb(mcode, acode, R, y, out, kernel_params(model))
    ref = np.asarray(model.grad(R, y), dtype=np.float64)
    if ref.shape != out.shape or not np.allclose(out, ref, rtol=1e-10, atol=1e-12):
        return None
    return mcode, acode


def kernel_params(model: Model) -> np.ndarray:
    """The kernel's float parameters of ``model`` (``model.kernel_params``; empty for the other presets)."""
    p = getattr(model, "kernel_params", None)
    return _NO_PARAMS if p is None else np.ascontiguousarray(p, dtype=np.float64)


def run_steps(model: Model, codes: tuple[int, int] | None, X: np.ndarray, y: np.ndarray, tt: np.ndarray, c: float,
              idx: np.ndarray, ptr: np.ndarray, gamma: float, fac: float) -> tuple[float, int]:
    """Run ``len(ptr) - 1`` steps in place on ``theta = c * tt`` with the kernel (``codes`` from
    :func:`kernel_codes`) or the numpy loop (``codes`` None, c unchanged).

    ``X`` ``(N, d)``, ``y`` ``(N,)``, ``tt`` ``(d, k)``; step s uses rows ``idx[ptr[s]:ptr[s+1]]``.
    Returns ``(c, s_fail)``: ``s_fail = -1`` when every step stayed finite, else the failing step.
    """
    if codes is not None:
        return _steps_kernel(X, y, tt, c, idx, ptr, float(gamma), float(fac), codes[0], codes[1],
                             kernel_params(model))
    return c, _steps_numpy(model, X, y, tt, idx, ptr, gamma, fac)


def sgd_step(model: Model, X: np.ndarray, y: np.ndarray, theta: np.ndarray, batch_idx, gamma: float,
             fac: float = 1.0) -> np.ndarray:
    """One SGD step over ``batch_idx`` from ``theta`` (shape ``(d, k)``, not modified) through the kernel.

    ``batch_idx`` of shape ``(kappa,)`` gives one new theta; of shape ``(N, kappa)`` gives ``N`` independent
    one-step outcomes from the same ``theta`` (shape ``(N, d, k)``).

    ``theta_new = fac * theta - gamma * sum_{i in B} x_i F(x_i^T theta, y_i)^T``; with
    ``eta = gamma kappa / n`` and ``fac = 1 - eta * ridge`` this is the step of the module docstring.
    """
    bi = np.asarray(batch_idx, dtype=np.int64)
    codes = kernel_codes(model)
    outs = []
    for row in (bi if bi.ndim == 2 else bi.reshape(1, -1)):
        tt = np.array(theta, dtype=np.float64, order="C")
        ptr = np.array([0, row.size], dtype=np.int64)
        c, _ = run_steps(model, codes, X, y, tt, 1.0, np.ascontiguousarray(row), ptr, gamma, fac)
        tt *= c
        outs.append(tt)
    return np.stack(outs) if bi.ndim == 2 else outs[0]
