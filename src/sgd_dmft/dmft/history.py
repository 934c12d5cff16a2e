"""History stores of the Monte Carlo sample process: what each path keeps of its past ``h_s``.

``r_m = w_m - sum_{s<m} R_theta[m,s] h_s`` and ``C_F[m,s] = delta E[h_m h_s^T]`` need the past
``h_s = F(r_s, y) S_s`` of every path. :class:`DenseHistory` keeps all of it (``(T+1) k x P``);
:class:`SparseHistory` keeps only the values at a path's visits (``S_s != 0``), which for SGD's
Poisson jumps is a fraction ``dt / gamma`` of the steps: ``O(P x visits)`` work per step.

:class:`Visits` is the list of a path's active steps, shared with the pathwise tangents.
"""

from __future__ import annotations

import numpy as np
from numba import njit


class Visits:
    """``t[p, j]``: the j-th active step of path p (``S != 0``), ``n[p]``: how many so far."""

    def __init__(self, P: int, nmax: int):
        self.t = np.zeros((P, nmax), dtype=np.int64)
        self.n = np.zeros(P, dtype=np.int64)

    def register(self, m: int, S: np.ndarray) -> None:
        """Record step m as a visit of every path with ``S[p] != 0``."""
        on = np.flatnonzero(S)
        self.t[on, self.n[on]] = m
        self.n[on] += 1


@njit(cache=True)
def _sparse_field(w, Rt_m, hval, act_t, n_act, r):  # pragma: no cover - compiled
    """r_p = w_p - sum_{active u < m} R_theta[m,u] h_u for every path (sparse laws: O(P x visits))."""
    P, k = w.shape
    for p in range(P):
        for a in range(k):
            r[p, a] = w[p, a]
        for j in range(n_act[p]):
            u = act_t[p, j]
            for a in range(k):
                acc = 0.0
                for b in range(k):
                    acc += Rt_m[u, a, b] * hval[p, j, b]
                r[p, a] -= acc


@njit(cache=True)
def _sparse_cf(m, hm, S_m, hval, act_t, n_act, CFrow):  # pragma: no cover - compiled
    """CFrow[s] = sum_p h_m h_s^T over paths active at m (others have h_m = 0); store h_m in hval."""
    P, k = hm.shape
    CFrow[:, :, :] = 0.0
    for p in range(P):
        if S_m[p] == 0.0:
            continue
        for j in range(n_act[p]):
            u = act_t[p, j]
            for a in range(k):
                for b in range(k):
                    CFrow[u, a, b] += hm[p, a] * hval[p, j, b]
        for a in range(k):
            for b in range(k):
                CFrow[m, a, b] += hm[p, a] * hm[p, b]
        for a in range(k):
            hval[p, n_act[p], a] = hm[p, a]


class DenseHistory:
    """Every path's ``h_s`` at every step: ``ht[(s, a), p]`` (time-major rows, paths contiguous)."""

    sparse = False

    def __init__(self, T1: int, k: int, P: int, nmax: int):
        self.k = k
        self.ht = np.zeros((T1 * k, P))

    def field(self, m: int, w: np.ndarray, wt: np.ndarray, Rrow: np.ndarray, Rm: np.ndarray,
              visits: Visits) -> np.ndarray:
        """Pre-activations ``r_m`` (P, k) from the fields ``w = wt.T`` and the memory term."""
        k = self.k
        return (wt - Rm[m * k : (m + 1) * k, : m * k] @ self.ht[: m * k]).T if m else w

    def cf_sums(self, m: int, hm: np.ndarray, S: np.ndarray, visits: Visits) -> np.ndarray:
        """Store ``h_m`` (P, k); return ``sum_p h_m h_s^T`` for ``s <= m`` as a block row (k, (m+1) k)."""
        k = self.k
        self.ht[m * k : (m + 1) * k] = hm.T
        return (self.ht[: (m + 1) * k] @ hm).T


class SparseHistory:
    """The values ``h_s`` at a path's visits only: ``hval[p, j]`` at the j-th visit ``visits.t[p, j]``."""

    sparse = True

    def __init__(self, T1: int, k: int, P: int, nmax: int):
        self.k = k
        self.hval = np.zeros((P, nmax, k))
        self.r = np.zeros((P, k))
        self.sums = np.zeros((T1, k, k))

    def field(self, m: int, w: np.ndarray, wt: np.ndarray, Rrow: np.ndarray, Rm: np.ndarray,
              visits: Visits) -> np.ndarray:
        _sparse_field(np.ascontiguousarray(w), Rrow, self.hval, visits.t, visits.n, self.r)
        return self.r

    def cf_sums(self, m: int, hm: np.ndarray, S: np.ndarray, visits: Visits) -> np.ndarray:
        k = self.k
        sums = self.sums[: m + 1]
        _sparse_cf(m, np.ascontiguousarray(hm), S, self.hval, visits.t, visits.n, sums)
        return sums.transpose(1, 0, 2).reshape(k, (m + 1) * k)
