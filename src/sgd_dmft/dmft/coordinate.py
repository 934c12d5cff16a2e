"""The coordinate process: kernels as block matrices and the deterministic step ``m -> m + 1``.

Ridge makes the coordinate process linear and Gaussian, so its second moments follow deterministic
recursions (docs/theory.md section 3, "Coordinate process"). Kernels are stored as block matrices
with row/column index ``m * k + a`` (time m, component a), so that every sum over past times is one
BLAS product: ``C[(m,a),(s,b)] = C_theta[m,s,a,b]`` etc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..laws import Schedule


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
        self.decays = 1.0 - schedule.steps * ridge
        self.eye = np.eye(k)

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
        if m:
            Rm[bn, : m * k] = decay * Rm[bm, : m * k] - RFrow @ Rm[:upto, : m * k]
        # C[m+1, s] for s <= m:  (1 - dt ridge) C[m,s] - sum_u R_F[m,u] C[u,s] - mu_m M_s^T
        #                        + sum_{v<s} C_F[m,v] R_theta[s,v]^T      (E[U_m theta_s^T] term)
        row = decay * Cm[bm, :upto] - RFrow @ Cm[:upto, :upto] - mu[bm] @ Mt[:upto].T
        row += CFrow @ Rm[:upto, :upto].T
        Cm[bn, :upto] = row
        Cm[:upto, bn] = row.T
        cmm = decay * row[:, m * k :].T - RFrow @ row.T - mu[bm] @ Mt[bn].T + CFrow @ Rm[bn, :upto].T
        Cm[bn, bn] = 0.5 * (cmm + cmm.T)
        return float(np.trace(Cm[bn, bn]))
