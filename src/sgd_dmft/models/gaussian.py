"""Gaussian expectations over the pre-activations ``(r, r*)`` (docs/theory.md section 1).

At overlaps ``Q = theta^T theta / d`` (k x k), ``M = theta^T theta* / d`` (k x k*) and
``S* = theta*^T theta* / d`` (k* x k*), a fresh sample has ``(r, r*) ~ N(0, [[Q, M], [M^T, S*]])``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

__all__ = ["gh_nodes", "gauss_legendre", "gauss_hermite_e", "sqrtm_psd", "joint_cov", "population_expectation"]


@lru_cache(maxsize=32)
def gauss_legendre(n: int) -> tuple[Array, Array]:
    """``numpy.polynomial.legendre.leggauss(n)``, computed once per ``n`` (read-only arrays: the quadrature
    rules of the population losses are built per replica and level, and the nodes cost more than the rule)."""
    return _frozen(np.polynomial.legendre.leggauss(n))


@lru_cache(maxsize=32)
def gauss_hermite_e(n: int) -> tuple[Array, Array]:
    """``numpy.polynomial.hermite_e.hermegauss(n)``, computed once per ``n`` (read-only arrays)."""
    return _frozen(np.polynomial.hermite_e.hermegauss(n))


def _frozen(arrays) -> tuple[Array, ...]:
    for a in arrays:
        a.setflags(write=False)
    return tuple(arrays)


def gh_nodes(dim: int, max_nodes: int = 200_000) -> tuple[Array, Array]:
    """Tensor Gauss-Hermite nodes (N, dim) and weights (N,) for a standard normal in ``dim`` dimensions.

    ``n1 = clip(max_nodes^(1/dim), 4, 60)`` nodes per axis; weights below 1e-300 are dropped.
    """
    n1 = max(4, min(60, int(max_nodes ** (1.0 / dim))))
    x, w = gauss_hermite_e(n1)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    wg = np.meshgrid(*([w] * dim), indexing="ij")
    weights = np.prod(np.stack([g.ravel() for g in wg], axis=-1), axis=-1)
    keep = weights > 1e-300
    return nodes[keep], weights[keep]


def sqrtm_psd(S: Array) -> Array:
    """A square root ``A`` with ``A A^T = S`` of a (batch of) symmetric PSD matrices ``(..., D, D)``
    (eigendecomposition, negative eigenvalues clipped to 0)."""
    lam, V = np.linalg.eigh(0.5 * (S + np.swapaxes(S, -1, -2)))
    return V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]


def joint_cov(Q: Array, M: Array, S: Array | None = None) -> Array:
    """The covariance ``[[Q, M], [M^T, S*]]`` of ``(r, r*)``: ``Q`` (..., k, k), ``M`` (..., k, k*),
    ``S`` (k*, k*) (default identity) -> (..., k + k*, k + k*)."""
    k, ks = Q.shape[-1], M.shape[-1]
    C = np.empty(Q.shape[:-2] + (k + ks, k + ks))
    C[..., :k, :k] = Q
    C[..., :k, k:] = M
    C[..., k:, :k] = np.swapaxes(M, -1, -2)
    C[..., k:, k:] = np.eye(ks) if S is None else S
    return C


def population_expectation(model, Q: Array, M: Array, Sstar: Array | None, fn, *, noise_dim: bool,
                           method: str = "auto", max_nodes: int = 200_000, seed: int = 12345,
                           qmc_points: int = 2**17) -> Array:
    """``E[fn(r, r*, eps)]`` for ``(r, r*) ~ N(0, [[Q, M], [M^T, S*]])``, eps ~ N(0,1) independent.

    ``Q`` (T, k, k), ``M`` (T, k, k*), ``Sstar`` (k*, k*) or None (identity); ``fn(r (N, k),
    r* (N, k*), eps (N,)) -> (N,)``. ``method``: ``"auto"`` (tensor Gauss-Hermite, :func:`gh_nodes` with
    ``max_nodes``, for k + k* (+1) <= 6, quasi-Monte Carlo beyond), ``"gh"`` or ``"qmc"`` (scrambled
    Sobol, ``qmc_points`` points, scrambling ``seed``). Returns (T,).
    ``model`` is unused (kept for the call shape).
    """
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    T, k = Q.shape[0], Q.shape[1]
    ks = M.shape[2]
    S = np.eye(ks) if Sstar is None else np.asarray(Sstar, dtype=np.float64)
    A = sqrtm_psd(joint_cov(Q, M, S))  # (T, D, D)
    D = k + ks + (1 if noise_dim else 0)
    if method == "gh" or (D <= 6 and method == "auto"):
        z, w = gh_nodes(D, max_nodes=max_nodes)
    else:
        from scipy.stats import norm, qmc

        u = qmc.Sobol(D, scramble=True, seed=seed).random(qmc_points)
        z = norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
        w = np.full(z.shape[0], 1.0 / z.shape[0])
    out = np.empty(T)
    zg = z[:, : k + ks]
    eps = z[:, -1] if noise_dim else np.zeros(z.shape[0])
    for t in range(T):
        g = zg @ A[t].T
        out[t] = np.dot(w, fn(g[:, :k], g[:, k:], eps))
    return out
