"""The coordinate process: kernels as block matrices and the deterministic step ``m -> m + 1``.

Ridge makes the coordinate process linear and Gaussian, so its second moments follow deterministic
recursions (docs/theory.md section 3, "Coordinate process"). Kernels are stored as block matrices
with row/column index ``m * k + a`` (time m, component a), so that every sum over past times is one
BLAS product: ``C[(m,a),(s,b)] = C_theta[m,s,a,b]`` etc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..laws import Schedule


@njit(cache=True, fastmath=True)
def _memory_rows(m, k, decay, C, R, CF, RF, row, Rnew):  # pragma: no cover - compiled
    """The memory sums of the step ``m -> m + 1`` in one pass over ``C`` and the triangle of ``R``:

    ``row[a, s] = decay C[m a, s] - sum_u R_F[m a, u] C[u, s] + sum_{v < block(s)} C_F[m a, v] R[s, v]``
    and ``Rnew[a, v] = decay R[m a, v] - sum_u R_F[m a, u] R[u, v]`` (``v < m k``; ``R`` is strictly
    block-lower, so only its triangle is read). Reads ``C`` once and ``R`` twice over half of it, where
    three dense matrix-vector products read ``3 (m k)^2`` words (memory bound: 1.5-2x faster)."""
    upto = (m + 1) * k
    mk = m * k
    for a in range(k):
        for s in range(upto):
            row[a, s] = decay * C[mk + a, s]
        for v in range(mk):
            Rnew[a, v] = decay * R[mk + a, v]
    for u in range(upto):
        Cu = C[u]
        Ru = R[u]
        bu = (u // k) * k  # R[u, v] = 0 for v >= bu
        for a in range(k):
            c = RF[mk + a, u]
            if c == 0.0:
                continue
            ra = row[a]
            for s in range(upto):
                ra[s] -= c * Cu[s]
            na = Rnew[a]
            for v in range(min(bu, mk)):
                na[v] -= c * Ru[v]
    for s in range(upto):
        Rs = R[s]
        bs = (s // k) * k
        for a in range(k):
            cfa = CF[mk + a]
            acc = 0.0
            for v in range(bs):
                acc += cfa[v] * Rs[v]
            row[a, s] += acc


@dataclass
class Kernels:
    """One replica's kernels on ``T + 1`` grid times, as block matrices (``K = (T+1) k`` rows)."""

    C: np.ndarray  # (K, K)   C_theta
    R: np.ndarray  # (K, K)   R_theta (strictly block-lower)
    CF: np.ndarray  # (K, K)  C_F
    RF: np.ndarray  # (K, K)  R_F (block-lower incl. diagonal)
    M: np.ndarray  # (K, ks)  E[theta_m theta*^T]
    mu: np.ndarray  # (K, ks) teacher term
    train: np.ndarray  # (T+1,) the sample process's train-loss estimate (see SampleProcess)
    test: np.ndarray | None = None  # (T+1,) the population loss of (Q, M), where the sample process computed it
    window_edge: float = 0.0  # windowed tangents: largest share of an R_F row in the window's oldest tenth

    def blocks(self, name: str) -> np.ndarray:
        """A two-time kernel as ``(T+1, T+1, k, k)``."""
        A = getattr(self, name)
        T1 = len(self.train)
        k = A.shape[0] // T1
        return A.reshape(T1, k, T1, k).transpose(0, 2, 1, 3)


class CoordinateProcess:
    """Kernels of one replica and the deterministic recursion of the coordinate process.

    ``theta_{m+1} = (1 - dt_m ridge) theta_m - sum_{s<=m} R_F[m,s] theta_s - mu_m theta* - U_m``,
    ``Cov(U_m, U_s) = C_F[m,s]``; the sample process fills row ``m`` of ``C_F``, ``R_F``, ``mu``
    before :meth:`step` advances ``C_theta``, ``R_theta`` and ``M`` to ``m + 1``.
    """

    def __init__(self, k: int, ks: int, ridge: float, schedule: Schedule, C0: np.ndarray, M0: np.ndarray):
        T1 = schedule.T + 1
        K = T1 * k
        self.k, self.ks = k, ks
        self.Sstar = np.eye(ks)
        self.Sinv = np.linalg.inv(self.Sstar)
        self.K = Kernels(C=np.zeros((K, K)), R=np.zeros((K, K)), CF=np.zeros((K, K)), RF=np.zeros((K, K)),
                         M=np.zeros((K, ks)), mu=np.zeros((K, ks)), train=np.zeros(T1))
        self.K.C[:k, :k] = C0
        self.K.M[:k] = M0
        self.decays = schedule.decays(ridge)  # 1 - f_m dt_m ridge (f: the learning-rate factor)
        self.eye = np.eye(k)
        self.row, self.Rnew = np.empty((k, K)), np.empty((k, K))  # work space of the step

    def field_cov(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Cov(w_m, (r*, w_0..w_{m-1})), Cov(w_m))`` for the Cholesky factor: (k, ks + m k), (k, k)."""
        k, K = self.k, self.K
        bm = slice(m * k, (m + 1) * k)
        return np.concatenate([K.M[bm], K.C[bm, : m * k]], axis=1), K.C[bm, bm]

    def step(self, m: int) -> float:
        """Advance ``M``, ``R_theta``, ``C_theta`` from step ``m`` to ``m + 1``; return ``trace Q_{m+1}``."""
        k, K = self.k, self.K
        bm = slice(m * k, (m + 1) * k)
        bn = slice((m + 1) * k, (m + 2) * k)
        upto = (m + 1) * k
        Cm, Rm, Mt, mu = K.C, K.R, K.M, K.mu
        RFrow = K.RF[bm, :upto]
        CFrow = K.CF[bm, :upto]
        decay = self.decays[m]
        Mt[bn] = decay * Mt[bm] - RFrow @ Mt[:upto] - mu[bm] @ self.Sstar
        Rm[bn, bm] = self.eye
        # C[m+1, s] for s <= m:  (1 - dt ridge) C[m,s] - sum_u R_F[m,u] C[u,s] - mu_m M_s^T
        #                        + sum_{v<s} C_F[m,v] R_theta[s,v]^T      (E[U_m theta_s^T] term)
        row, Rnew = self.row[:, :upto], self.Rnew[:, : m * k]
        _memory_rows(m, k, decay, Cm, Rm, K.CF, K.RF, row, Rnew)
        row -= mu[bm] @ Mt[:upto].T
        if m:
            Rm[bn, : m * k] = Rnew
        Cm[bn, :upto] = row
        Cm[:upto, bn] = row.T
        cmm = decay * row[:, m * k :].T - RFrow @ row.T - mu[bm] @ Mt[bn].T + CFrow @ Rm[bn, :upto].T
        Cm[bn, bn] = 0.5 * (cmm + cmm.T)
        return float(np.trace(Cm[bn, bn]))
