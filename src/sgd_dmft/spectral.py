"""The limiting spectral law of ``A = X^T X`` (d x d) for ``x_i ~ N(0, I_d / d)``, ``n = delta d``, and its
quadrature (the closed forms of exact.py integrate over it; exact.py re-exports these names).

``A = delta * (G^T G / n)`` with ``G`` an n x d standard Gaussian matrix, so its empirical spectral
law converges to a Marchenko-Pastur law rescaled by ``delta`` (the free Poisson law of rate delta):

    mu(ds) = max(0, 1 - delta) delta_0(ds) + sqrt((b - s)(s - a)) / (2 pi s) 1_[a, b](s) ds,
    a, b = (sqrt(delta) -/+ 1)^2,

mean ``delta`` (= tr A / d), variance ``delta``. Its orthogonal polynomials have the constant
Jacobi recurrence ``alpha_0 = delta, alpha_j = delta + 1 (j >= 1), beta_j = delta`` (free Charlier
polynomials), so the Gauss rule of ``mu`` itself (atom included) is one symmetric tridiagonal
eigenproblem (Golub-Welsch): N nodes integrate polynomials of degree <= 2N - 1 exactly, and the
1/s factor of the density or the atom at 0 never enter. ``mp_quadrature(..., method="chebyshev")``
is the independent route (Gauss-Chebyshev of the second kind on [a, b] plus the atom); the tests
check both against each other and against sampled eigenvalues.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import eigh_tridiagonal

__all__ = ["mp_support", "mp_atom", "mp_density", "mp_quadrature"]


def mp_support(delta: float) -> tuple[float, float]:
    """Edges ``(a, b) = ((sqrt(delta) - 1)^2, (sqrt(delta) + 1)^2)`` of the continuous part."""
    sd = math.sqrt(delta)
    return (sd - 1.0) ** 2, (sd + 1.0) ** 2


def mp_atom(delta: float) -> float:
    """Mass of the atom at 0: ``max(0, 1 - delta)`` (d - n zero eigenvalues when n < d)."""
    return max(0.0, 1.0 - float(delta))


def mp_density(delta: float, s=None):
    """Density of the continuous part of the spectral law of ``A = X^T X``.

    ``sqrt((b - s)(s - a)) / (2 pi s)`` on ``[a, b]`` (zero outside); total mass ``min(1, delta)``.
    With ``s`` given, returns the density at ``s``; without, returns the function.
    """
    if delta <= 0:
        raise ValueError(f"delta={delta} must be positive")
    a, b = mp_support(delta)

    def dens(x):
        x = np.asarray(x, dtype=np.float64)
        inside = (x > a) & (x < b) & (x > 0)
        out = np.zeros_like(x)
        xi = x[inside]
        out[inside] = np.sqrt((b - xi) * (xi - a)) / (2 * math.pi * xi)
        return out

    return dens if s is None else dens(s)


def _gauss_mp(delta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    diag = np.full(n, delta + 1.0)
    diag[0] = delta
    off = np.full(n - 1, math.sqrt(delta))
    nodes, vecs = eigh_tridiagonal(diag, off)
    w = vecs[0] ** 2
    return np.clip(nodes, 0.0, None), w / w.sum()


def _chebyshev_mp(delta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = mp_support(delta)
    j = np.arange(1, n + 1)
    th = j * math.pi / (n + 1)
    x = np.cos(th)
    wx = math.pi / (n + 1) * np.sin(th) ** 2  # int_{-1}^{1} g(x) sqrt(1 - x^2) dx
    h = 0.5 * (b - a)
    s = 0.5 * (a + b) + h * x
    w = wx * h * h / (2 * math.pi * s)
    atom = mp_atom(delta)
    if atom > 0:
        s = np.concatenate([[0.0], s])
        w = np.concatenate([[atom], w])
    return s, w


def mp_quadrature(delta: float, n: int = 200, method: str = "gauss") -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights ``(s_j, w_j)`` with ``sum_j w_j f(s_j) ~ int f d mu`` for the spectral law of A.

    ``method="gauss"``: the n-point Gauss rule of mu (Golub-Welsch on its Jacobi matrix, atom at 0
    included automatically; exact for polynomials of degree <= 2n - 1).
    ``method="chebyshev"``: Gauss-Chebyshev of the second kind on [a, b] (resolves the sqrt edges)
    for the continuous part, plus a node at 0 carrying the atom when delta < 1. Its accuracy degrades
    as delta -> 1 (the 1/s factor of the density approaches the edge a -> 0).
    """
    if delta <= 0:
        raise ValueError(f"delta={delta} must be positive")
    if n < 1:
        raise ValueError(f"n={n} must be positive")
    if method == "gauss":
        return _gauss_mp(float(delta), int(n))
    if method == "chebyshev":
        return _chebyshev_mp(float(delta), int(n))
    raise ValueError(f"method={method!r} is not 'gauss' or 'chebyshev'")
