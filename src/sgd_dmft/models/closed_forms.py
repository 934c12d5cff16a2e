"""Closed forms: the one home of each formula used by the population loss and the online ODEs.

Everything here is a function of Gaussian covariances (see docs/theory.md section 3, "Test loss"):

* Saad & Solla (1995) integrals for ``g(x) = erf(x / sqrt 2)``, ``g'(x) = sqrt(2/pi) exp(-x^2/2)``:
  ``I2`` (the erf pair moment), ``J2``, ``I3``, ``I4``;
* the relu (arc-cosine kernel, Cho & Saul 2009) and quadratic (Isserlis) pair moments;
* the soft-committee population loss from any closed-form pair moment, and the erf committee's
  online expectations ``(E[F r*^T], E[F r^T], E[F F^T])``;
* the linear model's online expectations;
* the logistic split quadrature (:class:`LogisticSplitRule`): the label is a step in ``r*`` (or
  ``r* + noise eps``), so ``r*`` is integrated with Gauss-Legendre on either side of the jump and the
  conditional part of ``r`` with Gauss-Hermite; it gives both the population loss and the online
  expectations.

Covariance arguments are broadcast elementwise (``C11``, ``C22``, ``C12``: any common shape).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from .gaussian import gauss_hermite_e, gauss_legendre, joint_cov

Array = NDArray[np.float64]
PairMoment = Callable[[Array, Array, Array], Array]

_TWO_PI = 2.0 / math.pi

__all__ = [
    "I2", "J2", "I3", "I4", "arccos_pair_moment", "isserlis_pair_moment", "linear_pair_moment", "erf_gauss_mean",
    "relu_gauss_mean", "quadratic_gauss_mean", "linear_gauss_mean", "committee_loss",
    "committee_erf_loss", "committee_erf_expectations", "linear_expectations", "LogisticSplitRule",
    "sigmoid", "softplus", "sign_disagreement",
]


def sign_disagreement(Q: Array, M: Array, rho: Array | float) -> Array:
    """``P(sign r != sign z)`` for centred jointly Gaussian ``(r, z)`` with ``var r = Q``, ``var z = rho``,
    ``cov(r, z) = M``: ``arccos(M / sqrt(Q rho)) / pi`` (a probability in [0, 1]; 1/2 where ``Q rho = 0``).
    The test 0-1 error of a linear classifier ``sign(r)`` on labels ``sign(z)`` (Sheppard's formula)."""
    Q, M = np.asarray(Q, dtype=np.float64), np.asarray(M, dtype=np.float64)
    scale = np.sqrt(np.maximum(Q * rho, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(scale > 0, M / np.where(scale > 0, scale, 1.0), 0.0)
    return np.arccos(np.clip(c, -1.0, 1.0)) / np.pi


def sigmoid(z: Array) -> Array:
    """``1 / (1 + exp(-z))``, written as ``(1 + tanh(z / 2)) / 2`` (no overflow)."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softplus(z: Array) -> Array:
    """``log(1 + exp(z))``, as ``max(z, 0) + log1p(exp(-|z|))`` (no overflow; 2x faster than
    ``np.logaddexp(0, z)``, to the last bit or two)."""
    z = np.asarray(z, dtype=float)
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


# ------------------------------------------------------------------------------------------------
# Pair moments E[s(u) s(v)] of centred Gaussian (u, v): variances C11, C22, covariance C12
# ------------------------------------------------------------------------------------------------
def I2(C11, C22, C12):
    """``E[g(u) g(v)] = (2/pi) asin(C12 / sqrt((1 + C11)(1 + C22)))`` (the erf pair moment)."""
    return _TWO_PI * np.arcsin(np.clip(C12 / np.sqrt((1.0 + C11) * (1.0 + C22)), -1.0, 1.0))


def arccos_pair_moment(q1, q2, c):
    """``E[relu(u) relu(v)] = sqrt(q1 q2) (sin th + (pi - th) cos th) / (2 pi)``, ``cos th = c / sqrt(q1 q2)``."""
    n = np.sqrt(np.clip(q1 * q2, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        th = np.arccos(np.clip(np.where(n > 0, c / np.where(n > 0, n, 1.0), 1.0), -1.0, 1.0))
    return n / (2 * math.pi) * (np.sin(th) + (math.pi - th) * np.cos(th))


def isserlis_pair_moment(q1, q2, c):
    """``E[u^2 v^2] = q1 q2 + 2 c^2``."""
    return q1 * q2 + 2.0 * c * c


def linear_pair_moment(q1, q2, c):
    """``E[u v] = c``."""
    return c + 0.0 * (q1 + q2)


# ------------------------------------------------------------------------------------------------
# Gaussian means E[s(mu + sigma w)], w ~ N(0, 1) (mu, sigma >= 0 broadcast elementwise)
# ------------------------------------------------------------------------------------------------
def erf_gauss_mean(mu, sigma):
    """``E[erf((mu + sigma w) / sqrt 2)] = erf(mu / sqrt(2 (1 + sigma^2)))``."""
    from scipy.special import erf

    return erf(mu / np.sqrt(2.0 * (1.0 + sigma * sigma)))


def relu_gauss_mean(mu, sigma):
    """``E[relu(mu + sigma w)] = mu Phi(mu / sigma) + sigma phi(mu / sigma)`` (``relu(mu)`` at sigma = 0)."""
    s = np.where(sigma > 0, sigma, 1.0)
    z = mu / s
    out = mu * ndtr(z) + s * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return np.where(sigma > 0, out, np.maximum(mu, 0.0))


def quadratic_gauss_mean(mu, sigma):
    """``E[(mu + sigma w)^2] = mu^2 + sigma^2``."""
    return mu * mu + sigma * sigma


def linear_gauss_mean(mu, sigma):
    """``E[mu + sigma w] = mu``."""
    return mu + 0.0 * sigma


def J2(C11, C22, C12):
    """``E[g'(u) g'(v)]``."""
    return _TWO_PI / np.sqrt((1 + C11) * (1 + C22) - C12**2)


def I3(C11, C33, C12, C13, C23):
    """``E[g'(u) v g(w)]`` (variables 1 = u, 2 = v, 3 = w)."""
    L3 = (1 + C11) * (1 + C33) - C13**2
    return _TWO_PI / np.sqrt(L3) * (C23 * (1 + C11) - C12 * C13) / (1 + C11)


def I4(C11, C22, C33, C44, C12, C13, C14, C23, C24, C34):
    """``E[g'(u) g'(v) g(w) g(z)]`` (variables 1..4 = u, v, w, z)."""
    L4 = (1 + C11) * (1 + C22) - C12**2
    L0 = L4 * C34 - C23 * C24 * (1 + C11) - C13 * C14 * (1 + C22) + C12 * C13 * C24 + C12 * C14 * C23
    L1 = L4 * (1 + C33) - C23**2 * (1 + C11) - C13**2 * (1 + C22) + 2 * C12 * C13 * C23
    L2 = L4 * (1 + C44) - C24**2 * (1 + C11) - C14**2 * (1 + C22) + 2 * C12 * C14 * C24
    arg = np.clip(L0 / np.sqrt(L1 * L2), -1.0, 1.0)
    return (4 / math.pi**2) / np.sqrt(L4) * np.arcsin(arg)


# ------------------------------------------------------------------------------------------------
# Soft committee f(r) = mean_a s(r_a), y = mean_b s(r*_b) + noise eps, square loss
# ------------------------------------------------------------------------------------------------
def committee_loss(pair_moment: PairMoment, Q: Array, M: Array, S: Array, noise: float) -> Array:
    """Population loss ``E[(mean_a s(r_a) - mean_b s(r*_b))^2] / 2 + noise^2 / 2`` from the pair moments.

    ``Q`` (T, k, k), ``M`` (T, k, k*), ``S`` (k*, k*); returns (T,).
    """
    qd = np.diagonal(Q, axis1=1, axis2=2)  # (T, k)
    sd = np.diagonal(S)  # (k*,)
    ff = pair_moment(qd[:, :, None], qd[:, None, :], Q).mean(axis=(1, 2))
    fg = pair_moment(qd[:, :, None], sd[None, None, :], M).mean(axis=(1, 2))
    gg = pair_moment(sd[:, None], sd[None, :], S).mean()
    return 0.5 * (ff - 2.0 * fg + gg) + 0.5 * noise**2


def committee_erf_loss(Q: Array, M: Array, noise: float = 0.0) -> Array:
    """Population loss of the erf soft committee at ``S* = I``; ``Q`` (T, k, k), ``M`` (T, k, k*) -> (T,)
    (:func:`committee_loss` with the erf pair moment ``I2``)."""
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    return committee_loss(I2, Q, M, np.eye(M.shape[2]), noise)


def committee_erf_expectations(Q: Array, M: Array, noise: float = 0.0):
    """``(E[F r*^T] (k, k*), E[F r^T] (k, k), E[F F^T] (k, k))`` for the erf soft committee at ``S* = I``.

    ``F_a = (f - y) g'(r_a) / k`` with ``f = mean_a g(r_a)``, ``y = mean_b g(r*_b) + noise eps``.
    """
    k, ks = M.shape
    K = k + ks
    C = joint_cov(Q, M)
    c = np.concatenate([np.full(k, 1.0 / k), np.full(ks, -1.0 / ks)])
    dg = np.diag(C)
    a = np.arange(k)[:, None, None]
    cc = np.arange(K)[None, :, None]
    j = np.arange(K)[None, None, :]
    i3 = I3(dg[a], dg[j], C[a, cc], C[a, j], C[cc, j])  # (k, K, K): E[g'(z_a) z_c g(z_j)]
    EFz = (i3 @ c) / k  # (k, K)
    A = np.arange(k)[:, None, None, None]
    B = np.arange(k)[None, :, None, None]
    Jj = np.arange(K)[None, None, :, None]
    Ll = np.arange(K)[None, None, None, :]
    i4 = I4(dg[A], dg[B], dg[Jj], dg[Ll], C[A, B], C[A, Jj], C[A, Ll], C[B, Jj], C[B, Ll], C[Jj, Ll])
    EFF = np.einsum("abjl,j,l->ab", i4, c, c) / k**2
    if noise:
        ak, bk = np.arange(k)[:, None], np.arange(k)[None, :]
        EFF = EFF + noise**2 * J2(dg[ak], dg[bk], C[ak, bk]) / k**2
    return EFz[:, k:], EFz[:, :k], 0.5 * (EFF + EFF.T)


def linear_expectations(Q: Array, M: Array, noise: float = 0.0):
    """Linear model at ``S* = I``: ``E[F r*] = M - 1``, ``E[F r] = Q - M``, ``E[F^2] = Q - 2M + 1 + noise^2``
    (each (1, 1))."""
    s2 = noise**2
    q, m = Q[0, 0], M[0, 0]
    return np.array([[m - 1.0]]), np.array([[q - m]]), np.array([[q - 2 * m + 1.0 + s2]])


# ------------------------------------------------------------------------------------------------
# Logistic model: split quadrature
# ------------------------------------------------------------------------------------------------
class LogisticSplitRule:
    """Split quadrature for ``y = sign(r* + noise eps)`` (k = k* = 1).

    ``u = r* / s`` on ``[-half_width, 0]`` and ``[0, half_width]`` (``n_legendre`` Gauss-Legendre
    nodes each, weights include the standard-normal density), times ``n_hermite`` Gauss-Hermite
    nodes ``xi`` for the conditional part of ``r``. ``P(y = +1 | u) = Phi(s u / noise)`` (a step at
    noise 0), so the jump never falls inside a Gauss rule.
    """

    def __init__(self, noise: float, n_legendre: int, half_width: float, n_hermite: int):
        xl, wl = gauss_legendre(n_legendre)
        h = half_width
        u = np.concatenate([-h + h * xl, h + h * xl])
        self.u = u
        self.wu = np.concatenate([h * wl, h * wl]) * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
        xg, wg = gauss_hermite_e(n_hermite)
        self.xi, self.wxi = xg, wg / wg.sum()
        self.noise = noise
        self.p_unit = self.p_plus(1.0)  # at S* = 1 (the online expectations), computed once

    @classmethod
    def for_loss(cls, noise: float) -> "LogisticSplitRule":
        """2 x 100 Legendre on |u| <= 8 x 48 Hermite: within 1.3e-11 of 2 x 200 x 80 for |a| <= 30, b in [0.1, 10]."""
        return cls(noise, 100, 4, 48)

    @classmethod
    def for_online(cls, noise: float) -> "LogisticSplitRule":
        """2 x 150 Legendre on |u| <= 10 (tails carry < 1e-23 of the mass) x 80 Hermite."""
        return cls(noise, 150, 5, 80)

    def p_plus(self, s: float = 1.0) -> Array:
        """``P(y = +1 | r* = s u)`` on the ``u`` nodes."""
        if self.noise > 0:
            return ndtr(s * self.u / self.noise)
        return (self.u >= 0).astype(np.float64)

    def loss(self, Q: Array, M: Array, S: Array) -> Array:
        """Population loss ``E[log(1 + exp(-y r))]``; ``Q``, ``M`` (T, 1, 1), ``S`` (1, 1) -> (T,).

        Conditioned on ``r*``: ``r = a r* + b xi`` with ``a = M / S*``, ``b^2 = Q - M^2 / S*``.
        """
        s = math.sqrt(float(S[0, 0]))
        u, wu, xg, wg = self.u, self.wu, self.xi, self.wxi
        p_plus = self.p_plus(s)
        a = M[:, 0, 0] / float(S[0, 0])
        b = np.sqrt(np.clip(Q[:, 0, 0] - M[:, 0, 0] ** 2 / float(S[0, 0]), 0.0, None))
        out = np.empty(len(a))
        for i in range(0, len(a), 32):  # chunks of 32 times: bounded temporaries (32 x 200 x 48)
            c = slice(i, i + 32)
            r = a[c, None, None] * (s * u)[None, :, None] + b[c, None, None] * xg[None, None, :]
            lp = softplus(-r) @ wg  # (t, U): E_xi loss for y = +1
            # y = -1: softplus(r) = softplus(-r) + r, and E_xi r = a s u (the weights are symmetric)
            lm = lp + a[c, None] * (s * u)[None, :]
            out[c] = (p_plus * lp + (1 - p_plus) * lm) @ wu
        return out

    def grad_moments(self, Q: Array, M: Array):
        """``(E[F r*], E[F r], E[F^2])`` (each (1, 1)) at ``S* = I``, ``F = -y sigmoid(-y r)``."""
        p_plus = self.p_unit
        a = float(M[0, 0])
        b = math.sqrt(max(float(Q[0, 0]) - a * a, 0.0))
        r = a * self.u[:, None] + b * self.xi[None, :]  # (U, X)
        sp = 0.5 * (1.0 + np.tanh(0.5 * r))  # sigmoid(r)
        Fp = -(1.0 - sp)  # y = +1: -sigmoid(-r)
        Fm = sp  # y = -1: sigmoid(r)
        pp = p_plus[:, None]
        W = self.wu[:, None] * self.wxi[None, :]
        EF_rs = np.sum(W * (pp * Fp + (1 - pp) * Fm) * self.u[:, None])
        EF_r = np.sum(W * (pp * Fp + (1 - pp) * Fm) * r)
        EFF = np.sum(W * (pp * Fp**2 + (1 - pp) * Fm**2))
        return np.array([[EF_rs]]), np.array([[EF_r]]), np.array([[EFF]])
