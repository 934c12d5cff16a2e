"""The discrete-time DMFT solver, parametrised by the law of the per-sample step multipliers.

Solves, on the law's time grid ``t_0 = 0 < t_1 < ... < t_T`` (uniform ``t_m = m * dt`` with
``T = round(t_max / dt)``, or graded, ``dt_m = t_{m+1} - t_m`` growing with t: laws.graded_times),
the d = infinity limit of the recursion

    theta_{m+1} = theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m} - dt_m * ridge * theta_m

(see laws.py, THEORY.md section 3 and docs/theory.md for the derivation). Two effective processes:

* coordinate (ridge penalty => linear and Gaussian, solved by deterministic recursions):
  ``theta_{m+1} = (1 - dt_m*ridge) theta_m - sum_{s<=m} R_F[m,s] theta_s - mu_m theta* - U_m``,
  ``Cov(U_m, U_s) = C_F[m,s]``;
* sample (Monte Carlo over ``paths`` paths, or exact for square loss + linear student + GD/GF):
  ``r_m = w_m - sum_{s<m} R_theta[m,s] F(r_s, y) S_s``, ``(r*, w_0, w_1, ...)`` Gaussian with
  ``Cov(w_m, w_s) = C_theta[m,s]``, ``Cov(w_m, r*) = M_m``, ``Cov(r*) = I``.

Closure: ``C_F[m,s] = delta E[h_m h_s^T]``, ``R_F[m,s] = delta E[d h_m / d w_s]`` (pathwise tangents,
only at the times a path is active: cheap for SGD's sparse jumps), ``mu_m = delta E[d h_m / d r*]``
from Gaussian integration by parts (``E[h_m r*^T] = mu_m/delta + sum_s R_F[m,s]/delta M_s``), so the
link is never differentiated (sign labels work); ``h_m = F(r_m, y) S_m``.

The march is causal: kernels at step m need C_theta up to m only, so everything is solved forward in
time, with the Gaussian fields drawn through an incrementally grown Cholesky factor. No fixed-point
iteration is needed. Standard errors come from ``replicas`` independent replicas of the whole march.

Units: time t is gradient-flow time (one SGD epoch lasts ``gamma``); losses use the sum-loss
convention of problem.py (per-sample loss ``l(r, y)``; ``train_loss`` is its mean over samples).
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass

import numpy as np
import xarray as xr
from numba import njit
from scipy.linalg import solve_triangular
from threadpoolctl import threadpool_limits

from . import __version__
from .laws import Law
from .problem import Problem, population_loss


class SolverDiverged(ValueError):
    """The DMFT solution blew up (NaN/overflow), e.g. past a stability edge in gamma."""


class MemoryLimitExceeded(ValueError):
    """The estimated memory of a run exceeds ``max_memory_gb``."""


# ------------------------------------------------------------------------------------------------
# Pathwise tangents d h_m / d w_s, only at the times a path is active (S_m != 0)
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _tangent_step(m, Rt_m, H_m, S_m, rb, G, act_t, n_act, RFsum):  # pragma: no cover - compiled
    """Advance the tangents of all paths to step m and accumulate the R_F estimator into RFsum.

    Rt_m (T+1, k, k) = R_theta[m, :]; H_m (P, k, k) = H(r_m, y); S_m (P,) multipliers at step m;
    G (P, nmax, T+1, k, k): G[p, j, s] = d h_u / d w_s at the j-th active time u = act_t[p, j]
    (active: S_u != 0), h_u = F(r_u, y) S_u. The tangent of the pre-activation is
    J_{m,s} = d r_m / d w_s = delta_{ms} I - sum_{active u < m} R_theta[m,u] G_{u,s}.
    RFsum (m+1, k, k) is overwritten with sum_p d h_m / d w_s (rb=False: pathwise, only active
    paths contribute) or with sum_p H_m J_{m,s} (rb=True, Rao-Blackwellised: for i.i.d. multipliers
    S_m is independent of (H_m, J_{m,.}), so E[S_m H_m J] = E[S] E[H_m J] and every path contributes).
    """
    P = H_m.shape[0]
    k = H_m.shape[1]
    J = np.zeros((m + 1, k, k))
    RFsum[:, :, :] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not (active or rb):
            continue
        J[:, :, :] = 0.0
        for a in range(k):
            J[m, a, a] = 1.0
        for j in range(n_act[p]):
            u = act_t[p, j]
            for s in range(u + 1):
                for a in range(k):
                    for c in range(k):
                        acc = 0.0
                        for b in range(k):
                            acc += Rt_m[u, a, b] * G[p, j, s, b, c]
                        J[s, a, c] -= acc
        jn = n_act[p]
        if active:
            act_t[p, jn] = m
            n_act[p] = jn + 1
        sm = S_m[p]
        for s in range(m + 1):
            for a in range(k):
                for c in range(k):
                    acc = 0.0
                    for b in range(k):
                        acc += H_m[p, a, b] * J[s, b, c]
                    if active:
                        G[p, jn, s, a, c] = acc * sm
                    RFsum[s, a, c] += acc if rb else acc * sm


@njit(cache=True)
def _tangent_step_k1(m, Rt_m, H_m, S_m, rb, G, act_t, n_act, RFsum):  # pragma: no cover - compiled
    """``_tangent_step`` for k = 1 (scalar blocks; contiguous inner loops that LLVM vectorises).

    Rt_m (T+1,); H_m (P,); G (P, nmax, T+1); RFsum (m+1,)."""
    P = H_m.shape[0]
    J = np.zeros(m + 1)
    RFsum[:] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not (active or rb):
            continue
        J[:] = 0.0
        J[m] = 1.0
        for j in range(n_act[p]):
            u = act_t[p, j]
            c = Rt_m[u]
            g = G[p, j]
            for s in range(u + 1):
                J[s] -= c * g[s]
        jn = n_act[p]
        hp = H_m[p]
        sm = S_m[p]
        wgt = hp if rb else hp * sm
        for s in range(m + 1):
            RFsum[s] += wgt * J[s]
        if active:
            act_t[p, jn] = m
            n_act[p] = jn + 1
            gn = G[p, jn]
            hs = hp * sm
            for s in range(m + 1):
                gn[s] = hs * J[s]


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


# ------------------------------------------------------------------------------------------------
# Memory estimate
# ------------------------------------------------------------------------------------------------
def _exact_path(problem: Problem, law: Law) -> bool:
    """Square loss + linear student + i.i.d. multipliers: deterministic second-moment closure."""
    return bool(problem.model.linear_square and law.independent_steps)


def _n_steps(t_max: float, law: Law) -> int:
    """Number of grid steps T of the law's grid up to (the grid point nearest to) t_max."""
    return len(law.times(t_max)) - 1


def _max_active(law: Law, T1: int) -> int:
    """Upper bound on the number of active steps of one path over T1 grid points."""
    if not law.sparse:
        return T1
    # sparse laws have S in {0, gamma} with E[S_m] = dt_m, E[S_m^2] = gamma dt_m: active with
    # probability dt_m/gamma. Bound on the maximum over paths of the count: mean + 8 sd + slack.
    m1, m2 = law.moments(T1)
    mean = float(np.sum(m1**2 / m2))
    return int(min(T1, math.ceil(mean + 8 * math.sqrt(mean + 1) + 8)))


def estimate_memory(problem: Problem, law: Law, t_max: float, paths: int, replicas: int = 1,
                    keep_kernels: bool = True) -> float:
    """Peak memory in bytes of :func:`solve` (replicas run one after the other).

    Per replica: the Cholesky factor ``N^2`` and four kernels ``K^2`` (``K = (T+1) k``, ``N = K + k*``);
    for Monte Carlo, per path: its normals ``N``, multipliers ``T+1``, fields ``K`` (dense laws) and
    the float32 tangent store ``visits x (T+1) x k^2`` (visits = T+1 for dense laws, a Binomial bound
    for sparse ones); with ``keep_kernels``, the running sums of the kernels over replicas, ``4 K^2``.
    """
    k, ks = problem.k, problem.kstar
    T1 = _n_steps(t_max, law) + 1
    K = T1 * k
    exact = _exact_path(problem, law)
    N = ks + (0 if exact else K)
    P = 1 if exact else max(1, paths // max(1, replicas))
    det = 8 * (N * N + 4 * K * K)
    if exact:
        mc = 8 * 5 * T1 * T1
    else:
        # doubles: normals, multipliers, fields (dense laws), visit values; float32: the tangent store
        per_path = 8 * (N + T1 + (0 if law.sparse else K) + _max_active(law, T1) * k) + 4 * _max_active(law, T1) * T1 * k * k
        mc = P * per_path
    return float(det + mc + (8 * 4 * K * K if keep_kernels else 0))


MIN_PATHS_PER_REPLICA = 500
SPAWN_COST_S = 3.0  # starting worker processes (imports, compiled kernels): parallel replicas must save more


def plan_replicas(problem: Problem, law: Law, t_max: float, paths: int, replicas: int, max_memory_gb: float,
                  keep_kernels: bool = True, workers: int = 1) -> tuple[int, int, float]:
    """``(replicas, paths_per_replica, memory_bytes)`` of a run: chunking over paths.

    Replicas are independent marches run one after the other, so memory holds one replica's paths at
    a time. When ``paths / replicas`` paths do not fit in ``max_memory_gb``, the paths are split into
    more (smaller) replicas, down to ``MIN_PATHS_PER_REPLICA`` per replica (below that the O(1/P)
    bias of a replica's self-consistent kernels becomes visible); the total stays ``paths``. Raises
    :class:`MemoryLimitExceeded` when even that does not fit.
    """
    if _exact_path(problem, law):
        return 1, 1, estimate_memory(problem, law, t_max, 1, 1, keep_kernels)
    R = int(replicas)
    lim = max_memory_gb * 2**30

    def mem_of(R: int) -> float:  # `workers` replicas in flight, plus the running kernel sums
        one = estimate_memory(problem, law, t_max, paths, R, keep_kernels=False)
        kept = estimate_memory(problem, law, t_max, paths, R, keep_kernels) - one
        return min(max(1, workers), R) * (one + kept) + kept

    mem = mem_of(R)
    while mem > lim and paths // (R + 1) >= MIN_PATHS_PER_REPLICA:
        R = max(R + 1, int(math.ceil(R * mem / lim)))  # the per-path part scales ~ 1/R
        R = min(R, paths // MIN_PATHS_PER_REPLICA)
        mem = mem_of(R)
    if mem > lim:
        T = _n_steps(t_max, law)
        raise MemoryLimitExceeded(
            f"estimated memory {mem / 2**30:.2f} GiB exceeds solver.max_memory_gb={max_memory_gb:g} "
            f"(T={T} steps, {paths // R} paths per replica in {R} replicas, the smallest allowed chunk is "
            f"{MIN_PATHS_PER_REPLICA} paths): lower paths or the number of grid steps (long horizons: a graded "
            f"grid, dynamics.growth / dt_max), or raise max_memory_gb")
    return R, max(1, paths // R), mem


# ------------------------------------------------------------------------------------------------
# One replica of the forward march
# ------------------------------------------------------------------------------------------------
@dataclass
class _Kernels:
    Ct: np.ndarray  # (T1, T1, k, k)   C_theta
    Mt: np.ndarray  # (T1, k, ks)      E[theta_m theta*^T]
    Rt: np.ndarray  # (T1, T1, k, k)   R_theta
    CF: np.ndarray  # (T1, T1, k, k)   C_F (last row unused)
    RF: np.ndarray  # (T1, T1, k, k)   R_F
    mu: np.ndarray  # (T1, k, ks)
    train: np.ndarray  # (T1,) train loss (exact path) or the gap train - test (Monte Carlo)
    r_snap: np.ndarray  # (n_snap, P_snap, k)
    clip: float


@njit(cache=True)
def _forward_subst(L, n, C, out):  # pragma: no cover - compiled
    """Solve ``out @ L[:n, :n]^T = C`` (L lower triangular) in place of a copy-making LAPACK call."""
    k = C.shape[0]
    for a in range(k):
        for j in range(n):
            acc = C[a, j]
            for i in range(j):
                acc -= L[j, i] * out[a, i]
            out[a, j] = acc / L[j, j]


def _chol_extend(L: np.ndarray, n_prev: int, cross: np.ndarray, diag: np.ndarray) -> float:
    """Append a block row to the lower-triangular factor L in place; return the clipped mass.

    The Schur complement is factorised after clipping negative eigenvalues (rounding, or an exactly
    determined field such as ``w_0 = 0``) and adding a 1e-12 relative jitter.
    """
    k = diag.shape[0]
    if n_prev > 0:
        Lrow = L[n_prev : n_prev + k, :n_prev]
        _forward_subst(L, n_prev, np.ascontiguousarray(cross), Lrow)
        schur = diag - Lrow @ Lrow.T
    else:
        schur = diag.copy()
    schur = 0.5 * (schur + schur.T)
    lam, V = np.linalg.eigh(schur)
    scale = max(float(np.trace(diag)), 1e-300)
    clipped = float(max(0.0, -lam.min()) / scale)
    lam = np.clip(lam, 0.0, None) + 1e-12 * scale + 1e-300
    L[n_prev : n_prev + k, n_prev : n_prev + k] = np.linalg.cholesky((V * lam) @ V.T)
    return clipped


def _march(problem: Problem, law: Law, T: int, paths: int, rng: np.random.Generator,
           snap_idx: np.ndarray, pbar=None, rao_blackwell: bool | None = None, stein: bool = False) -> _Kernels:
    """One replica of the forward march over m = 0..T.

    Kernels are stored as block matrices, row/column index ``m * k + a`` (time m, component a), so
    that every sum over past times is one BLAS product: ``Cm[(m,a),(s,b)] = C_theta[m,s,a,b]``, etc.
    """
    model = problem.model
    k, ks = problem.k, problem.kstar
    lam, delta = problem.ridge, problem.delta
    T1 = T + 1
    dts = law.steps(T1)  # dt_m: the step after grid time t_m (uniform unless the law's grid is graded)
    c1, c2 = law.moments(T1)  # E[S_m], E[S_m^2] per grid step
    tgrid = np.concatenate([[0.0], np.cumsum(dts)])
    K = T1 * k
    exact = _exact_path(problem, law)
    P = 1 if exact else paths

    C0, M0 = problem.init_moments()
    Sstar = np.eye(ks)
    Sinv = np.linalg.inv(Sstar)
    Cm = np.zeros((K, K))  # C_theta
    Rm = np.zeros((K, K))  # R_theta (strictly block-lower)
    CFm = np.zeros((K, K))  # C_F
    RFm = np.zeros((K, K))  # R_F (block-lower incl. diagonal)
    Mt = np.zeros((K, ks))  # E[theta_m theta*^T]
    mu = np.zeros((K, ks))
    train = np.zeros(T1)
    Cm[:k, :k] = C0
    Mt[:k] = M0
    eye = np.eye(k)
    decays = 1.0 - dts * lam

    N = ks + (0 if exact else K)
    L = np.zeros((N, N))  # Cholesky factor of Cov(r*, w_0, ..., w_T), grown block by block
    L[:ks, :ks] = np.linalg.cholesky(Sstar)
    clip = 0.0
    snap_r = np.zeros((len(snap_idx), 0 if exact else min(P, 5000), k))

    if exact:
        Abar, X, Y = np.zeros((T1, T1)), np.zeros((T1, T1)), np.zeros((T1, T1))
        E1 = np.zeros((T1, T1))  # E[S_u e_u e_s]: c1 X[u,s] (u >= s), Y[s,u] (u < s)
        Az = np.eye(T1)  # I + R_theta diag(c1), grown row by row (the triangular system of Zv)
        noise2 = model.noise**2
    else:
        # path-minor layouts (time-major rows, paths contiguous) so that every product is a BLAS
        # call on contiguous blocks
        Zt = rng.standard_normal((N, P))
        eps = rng.standard_normal(P)
        Smat = law.sample(rng, P, T1)
        rstar = (L[:ks, :ks] @ Zt[:ks]).T
        y = model.labels(rstar, eps)
        # sparse laws (SGD, reshuffling) keep only the visits: h at the active times of each path
        sparse = bool(law.sparse)
        ht = None if sparse else np.zeros((K, P))  # ht[(m,a), p] = F_a(r_m, y) S_m
        nmax = max(1, int((Smat[:, :T] != 0).sum(axis=1).max()))
        act_t = np.zeros((P, nmax), dtype=np.int64)
        n_act = np.zeros(P, dtype=np.int64)
        RFsum = np.zeros((T1, k, k))
        if not stein:
            G = np.zeros((P, nmax, T1, k, k), dtype=np.float32)  # tangent store (float32: half the memory traffic)
            if k == 1:
                G1 = G.reshape(P, nmax, T1)  # a view: k = 1 blocks are scalars
                RFsum1 = np.zeros(T1)
        if sparse:
            hval = np.zeros((P, nmax, k))
            r_buf = np.zeros((P, k))
        # Rao-Blackwellised estimators (see _tangent_step) for i.i.d. dense laws (SME): there the
        # multiplier noise dominates the kernel estimates. For sparse laws (SGD) they would need every
        # path's tangent at every step, O(P J T^2) instead of O(P J T^2 dt / gamma): pathwise instead.
        rb = bool(law.independent_steps and not law.sparse) if rao_blackwell is None else bool(rao_blackwell)
        iid = bool(law.independent_steps)

    for m in range(T1):
        bm = slice(m * k, (m + 1) * k)  # block of time m
        upto = (m + 1) * k  # columns of times 0..m
        # ---- Gaussian field w_m: extend the Cholesky factor of (r*, w_0, ..., w_m)
        n_prev = ks + m * k
        if not exact:  # the exact path needs no Gaussian draws
            cross = np.concatenate([Mt[bm], Cm[bm, : m * k]], axis=1)
            clip = max(clip, _chol_extend(L, n_prev, cross, Cm[bm, bm]))

        if exact:
            # Square loss, linear student, i.i.d. multipliers (E[S] = c1, E[S^2] = c2): the residual
            # e_m = r_m - y = v_m - sum_{u<m} R_theta[m,u] S_u e_u, v = w - y, is linear in v with
            # random coefficients; its second moments close exactly (docs/theory.md, "exact path"):
            #   Zv[s] = E[v_m e_s], X[m,s] = E[e_m e_s] (s <= m), Y[m,s] = E[e_m e_s S_s] (s < m),
            #   Abar[m,s] = E[d e_m / d v_s] (the GD recursion with step c1).
            Vrow = Cm[m, : m + 1] - Mt[m, 0] - Mt[: m + 1, 0] + 1.0 + noise2
            Rrow = Rm[m, :m]
            Abar[m, m] = 1.0
            # E[S_u] = c1[u], E[S_u^2] = c2[u] may vary with u (graded grid); S_u is independent of
            # v and of e_s for s <= u.
            Az[m, :m] = Rm[m, :m] * c1[:m]
            Zv = np.empty(m + 1)
            _forward_subst(Az, m + 1, Vrow[None, :], Zv[None, :])
            if m:
                Rc = Rrow * c1[:m]
                Abar[m, :m] = -(Rc @ Abar[:m, :m])
                # Y[m,s] = c1_s Zv_s - c2_s R[m,s] X[s,s] - sum_{u>s} R[m,u] c1_u Y[u,s] - c1_s sum_{u<s} R[m,u] Y[s,u]
                Yp = Y[:m, :m]
                Y[m, :m] = c1[:m] * (Zv[:m] - Yp @ Rrow) - c2[:m] * Rrow * np.diagonal(X)[:m] - Rc @ Yp
                X[m, :m] = Zv[:m] - Rrow @ E1[:m, :m]
                X[m, m] = Zv[m] - Rrow @ Y[m, :m]
                E1[:m, m] = Y[m, :m]
            else:
                X[0, 0] = Zv[0]
            E1[m, : m + 1] = c1[m] * X[m, : m + 1]
            train[m] = 0.5 * X[m, m]
            CFm[m, :m] = CFm[:m, m] = delta * c1[m] * Y[m, :m]
            CFm[m, m] = delta * c2[m] * X[m, m]
            RFm[m, : m + 1] = delta * c1[m] * Abar[m, : m + 1]
            mu[m, 0] = -delta * c1[m] * Abar[m, : m + 1].sum()
        else:
            nm = n_prev + k
            wt = L[n_prev:nm, :nm] @ Zt[:nm]
            w = wt.T
            Rrow_blocks = np.ascontiguousarray(Rm[bm].reshape(k, T1, k).transpose(1, 0, 2))
            if sparse:
                _sparse_field(np.ascontiguousarray(w), Rrow_blocks, hval, act_t, n_act, r_buf)
                r = r_buf
            else:
                r = (wt - Rm[bm, : m * k] @ ht[: m * k]).T if m else w
            if not np.all(np.isfinite(r)):
                raise SolverDiverged(_diverged_msg(law, tgrid[m], "non-finite pre-activations"))
            S = Smat[:, m]
            s1 = float(c1[m])
            Fm = model.grad(r, y)
            hm = Fm * S[:, None]
            if not sparse:
                ht[bm] = hm.T
            # control variate: l(w_m, y) has the known mean test_loss(C_theta[m,m], M_m) and is
            # strongly correlated with l(r_m, y); record the low-variance gap E[l(r_m) - l(w_m)]
            train[m] = float(np.mean(model.loss(r, y) - model.loss(w, y)))
            j = np.searchsorted(snap_idx, m)
            if j < len(snap_idx) and snap_idx[j] == m:
                snap_r[j] = r[: snap_r.shape[1]]
            if m == T:
                break
            if sparse:
                _sparse_cf(m, np.ascontiguousarray(hm), S, hval, act_t, n_act, RFsum[: m + 1])
                CFm[bm, :upto] = (delta / P) * RFsum[: m + 1].transpose(1, 0, 2).reshape(k, upto)
            else:
                CFm[bm, :upto] = (delta / P) * (ht[:upto] @ hm).T
            CFm[: m * k, bm] = CFm[bm, : m * k].T
            # C_F (above) stays the pathwise Gram matrix (delta/P) sum_p h_p h_p^T: positive
            # semi-definite by construction, which keeps C_theta a covariance (a Rao-Blackwellised C_F
            # is not a Gram matrix and can turn C_theta indefinite).
            if stein:
                # Gaussian integration by parts over g = (r*, w_0..w_m) = L z: E[h_m z^T] = E[grad_g h_m] L,
                # so E[grad_g h_m] = E[h_m z^T] L^{-1}, R_F and mu at once. It is the distributional
                # derivative: it keeps the Dirac terms of a kink (relu) that pathwise tangents miss.
                # Rao-Blackwellised for i.i.d. laws (E[S] F_m in place of S_m F_m).
                if sparse:  # register the visit (done by the tangent kernels otherwise)
                    on = np.flatnonzero(S)
                    act_t[on, n_act[on]] = m
                    n_act[on] += 1
                Ehz = (Zt[:nm] @ (Fm * s1 if iid else hm)) / P  # (nm, k) = E[h_m z^T]^T
                grad = solve_triangular(L[:nm, :nm], Ehz, lower=True, trans="T", check_finite=False).T
                mu[bm] = delta * grad[:, :ks]  # delta E[d h_m / d r*] at fixed w
                RFm[bm, :upto] = delta * grad[:, ks:nm]
            else:
                Hm = np.ascontiguousarray(model.hess(r, y))
                if k == 1:
                    _tangent_step_k1(m, Rrow_blocks[:, 0, 0].copy(), Hm[:, 0, 0].copy(), S, rb, G1, act_t,
                                     n_act, RFsum1[: m + 1])
                    RFsum[: m + 1, 0, 0] = RFsum1[: m + 1]
                else:
                    _tangent_step(m, Rrow_blocks, Hm, S, rb, G, act_t, n_act, RFsum[: m + 1])
                # rb: S_m is independent of everything before step m (i.i.d. multipliers), so
                # E[S_m F_m (.)] = E[S] E[F_m (.)]: the kernel already holds H_m J, and E[S] F_m stands for h_m
                scale, hbar = (s1, Fm * s1) if rb else (1.0, hm)
                RFm[bm, :upto] = (delta * scale / P) * RFsum[: m + 1].transpose(1, 0, 2).reshape(k, upto)
                EhR = (hbar.T @ rstar) / P
                # teacher term by integration by parts: E[h r*^T] = mu/delta S* + sum_s R_F/delta M_s^T
                mu[bm] = delta * EhR - RFm[bm, :upto] @ Mt[:upto] @ Sinv

        if m == T:
            break
        # ---- coordinate process: step m -> m+1 (deterministic, Gaussian)
        bn = slice((m + 1) * k, (m + 2) * k)
        RFrow = RFm[bm, :upto]
        decay = decays[m]
        Mt[bn] = decay * Mt[bm] - RFrow @ Mt[:upto] - mu[bm] @ Sstar
        Rm[bn, bm] = eye
        if m:
            Rm[bn, : m * k] = decay * Rm[bm, : m * k] - RFrow @ Rm[:upto, : m * k]
        # C[m+1, s] for s <= m:  (1 - dt ridge) C[m,s] - sum_u R_F[m,u] C[u,s] - mu_m M_s^T
        #                        + sum_{v<s} C_F[m,v] R_theta[s,v]^T      (E[U_m theta_s^T] term)
        row = decay * Cm[bm, :upto] - RFrow @ Cm[:upto, :upto] - mu[bm] @ Mt[:upto].T
        row += CFm[bm, :upto] @ Rm[:upto, :upto].T
        Cm[bn, :upto] = row
        Cm[:upto, bn] = row.T
        cmm = decay * row[:, m * k :].T - RFrow @ row.T - mu[bm] @ Mt[bn].T + CFm[bm, :upto] @ Rm[bn, :upto].T
        Cm[bn, bn] = 0.5 * (cmm + cmm.T)
        q = float(np.trace(Cm[bn, bn]))
        if not np.isfinite(q) or q > 1e12:
            raise SolverDiverged(_diverged_msg(law, tgrid[m + 1], f"trace Q = {q:.3g}"))
        if pbar is not None:
            pbar.update(1)

    def blocks(A):
        return A.reshape(T1, k, T1, k).transpose(0, 2, 1, 3)

    return _Kernels(blocks(Cm), Mt.reshape(T1, k, ks), blocks(Rm), blocks(CFm), blocks(RFm),
                    mu.reshape(T1, k, ks), train, snap_r, clip)


def plan_run(problem: Problem, law: Law, t_max: float, paths: int, replicas: int, max_memory_gb: float,
             keep_kernels: bool = True, workers: int = 1) -> tuple[int, int, int, float]:
    """``(replicas, paths_per_replica, workers, memory_bytes)`` of a :func:`solve` call.

    The replicas (hence the results) do not depend on ``workers``: they are planned for one replica at
    a time (:func:`plan_replicas`), then as many run at once as the memory budget allows (at most
    ``workers``; 1 for a model that cannot be sent to another process, e.g. a custom one).
    """
    R, P, mem = plan_replicas(problem, law, t_max, int(paths), int(replicas), max_memory_gb, keep_kernels)
    W = min(max(1, int(workers)), R)
    if W > 1:
        import pickle

        try:
            pickle.dumps((problem, law))
        except Exception:  # a custom model's callables are closures: run the replicas here
            W = 1
    while W > 1:
        mem_w = plan_replicas(problem, law, t_max, P * R, R, math.inf, keep_kernels, W)[2]
        if mem_w <= max_memory_gb * 2**30:
            return R, P, W, mem_w
        W -= 1
    return R, P, W, mem


def _replica(problem: Problem, law: Law, T: int, P: int, snap_idx: np.ndarray, rao_blackwell, stein: bool,
             keep_kernels: bool, blas_threads, seq: np.random.SeedSequence, pbar=None) -> dict:
    """One replica (a chunk of ``P`` paths) reduced to what ``solve`` keeps; runs in a worker process too."""
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        rep = _march(problem, law, T, P, np.random.default_rng(seq), snap_idx, pbar, rao_blackwell, stein=stein)
    out = dict(Q=np.diagonal(rep.Ct, axis1=0, axis2=1).transpose(2, 0, 1).copy(),  # (T1, k, k)
               M=rep.Mt.copy(), train=rep.train, r_snap=rep.r_snap, clip=rep.clip)
    if keep_kernels:
        out["kernels"] = {name: np.ascontiguousarray(getattr(rep, name)) for name in ("Ct", "Rt", "CF", "RF", "mu")}
    return out


def _diverged_msg(law: Law, t: float, what: str) -> str:
    gam = getattr(law, "gamma", None)
    g = f", gamma={gam:g}" if gam is not None else ""
    hint = ""
    if law.graded:
        h = law.steps(len(law.times(t)))
        hint = (f"; graded grid, step at that time dt_m={h[-1]:g} (an explicit step must stay below "
                f"2 / the largest Hessian eigenvalue: lower dt_max={law.dt_max})")
    return f"DMFT solution diverged at t={t:.4g} ({what}) for algorithm={law.name}{g}, dt={law.dt:g}{hint}"


# ------------------------------------------------------------------------------------------------
# Public entry point
# ------------------------------------------------------------------------------------------------
def solve(
    problem: Problem,
    law: Law,
    *,
    t_max: float,
    paths: int = 4000,
    replicas: int = 4,
    seed: int = 0,
    max_memory_gb: float = 8.0,
    snapshots: int = 5,
    progress: bool = False,
    keep_kernels: bool = True,
    rao_blackwell: bool | None = None,
    blas_threads: int | None = 1,
    responses: str = "auto",
    workers: int = 1,
) -> xr.Dataset:
    """DMFT learning curves of the recursion driven by ``law`` at d = infinity.

    Parameters
    ----------
    problem: model, delta, ridge, initialisation (internal conventions, problem.py).
    law: step-multiplier law (laws.py); it fixes the time grid: ``t_m = m * dt``, or a graded grid
        (``growth > 0``: step ``clip(growth * t_m, dt, dt_max)``) for long horizons.
    t_max: horizon in units of t (gradient-flow time; an SGD epoch lasts gamma).
    paths: total Monte Carlo paths of the sample process, split over ``replicas`` independent
        replicas whose spread gives the standard errors. Ignored (exact, no Monte Carlo) for square
        loss with a linear student under a law with i.i.d. multipliers (GF/GD, SGD, SME): then the
        system closes on second moments.
    max_memory_gb: memory budget. Replicas run one after the other (chunks of paths); when
        ``paths / replicas`` paths do not fit, the paths are split into more replicas (at least
        ``MIN_PATHS_PER_REPLICA`` each; attrs ``replicas`` vs ``replicas_requested``), and a run that
        does not fit even so is refused (MemoryLimitExceeded) before it starts.
    rao_blackwell: estimate the kernels with E[S] and E[S^2] in place of the sampled multipliers
        at the current step (valid for i.i.d. laws; lower variance, more tangent work). Default:
        on for dense i.i.d. laws (SME), off otherwise.
    responses: how R_F and mu are estimated: ``"pathwise"`` (tangents d r_m / d w_s along each path,
        with mu from Gaussian integration by parts; low variance, needs a Hessian without Dirac
        masses), ``"stein"`` (Gaussian integration by parts for all of them through the Cholesky
        factor: the distributional derivative, right for kinks such as relu, noisier), ``"auto"``:
        stein when the model declares a non-smooth derivative (``Model.smooth = False``: relu), else
        pathwise.
    workers: run replicas in up to this many processes at once (``spawn``; preset models only, a
        custom model runs in this process). The first replica runs here and is timed: when the
        workers would save less than ``SPAWN_COST_S`` the rest follow here too.
        Results do not depend on it (each replica has its own seed); the memory budget counts the
        replicas in flight. attrs ``workers``: the number actually used.
    blas_threads: BLAS threads inside the march (its products are matrix-vector sized, where extra
        threads mostly contend; 1 is fastest on 2 cores and in process pools). None: leave as is.

    Returns
    -------
    xarray.Dataset on ``time`` (T+1 points) with ``train_loss``, ``test_loss`` (population loss
    from (Q, M)), ``M`` (time, k, kstar), ``Q`` (time, k, k2), each with ``<name>_stderr``, the
    kernels ``C_theta``, ``R_theta``, ``C_F``, ``R_F`` (time, time2, k, k2), ``mu``, pre-activation
    samples ``r_samples`` (snap_time, path, k), and diagnostics in attrs.
    """
    if not math.isfinite(t_max):
        raise ValueError(f"t_max={t_max} is not allowed: must be a finite time >= dt={law.dt}")
    times = law.times(t_max)
    T = len(times) - 1
    if T < 1:
        raise ValueError(f"t_max={t_max} is not allowed: must be at least one grid step dt={law.dt}")
    if not _exact_path(problem, law) and (int(replicas) < 1 or int(paths) < 2 * int(replicas)):
        raise ValueError(f"paths={paths}, replicas={replicas} are not allowed: need replicas >= 1 and "
                         f"paths >= 2 * replicas (paths are split over the replicas)")
    exact = _exact_path(problem, law)
    if responses not in ("auto", "pathwise", "stein"):
        raise ValueError(f"responses={responses!r} is not allowed: use 'auto', 'pathwise' or 'stein'")
    use_stein = responses == "stein" or (responses == "auto" and not problem.model.smooth)
    jump = getattr(law, "gamma", None) if law.name in ("sgd", "reshuffle") else None
    if problem.model.linear_square and jump is not None and jump > 2.0:
        # each visit maps the residual r - y -> (1 - gamma)(r - y): |1 - gamma| > 1 grows without bound
        raise SolverDiverged(
            f"DMFT run diverged: gamma={jump:g} is past the stability edge gamma = 2 of the linear model (a visit maps "
            f"r - y -> (1 - gamma)(r - y); algorithm={law.name}, dt={law.dt:g})"
        )
    R, P, W, mem = plan_run(problem, law, t_max, int(paths), int(replicas), max_memory_gb, keep_kernels, workers)
    snap_idx = np.unique(np.linspace(0, T, max(1, snapshots)).round().astype(int))
    seqs = np.random.SeedSequence(seed).spawn(R)
    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=R * T, desc=f"DMFT {law.name}", unit="step", leave=False)
    # replicas are chunks of paths, run one after the other (or `workers` at a time in processes); each
    # is reduced to its curves and added to the running kernel sums as it arrives, in replica order
    Qr, Mr, train_r, snaps, clips = [], [], [], [], []
    sums: dict[str, np.ndarray] = {}
    args = (problem, law, T, P, snap_idx, rao_blackwell, use_stein, keep_kernels, blas_threads)

    def reduce(rep: dict) -> None:
        Qr.append(rep["Q"])
        Mr.append(rep["M"])
        train_r.append(rep["train"])
        snaps.append(rep["r_snap"])
        clips.append(rep["clip"])
        for name, a in rep.get("kernels", {}).items():
            if name in sums:
                sums[name] += a
            else:
                sums[name] = a

    try:
        done = 0
        if W > 1:
            # the first replica runs here and is timed: spawning workers costs ~2-3 s (imports, compiled
            # kernels), worth it only when a replica takes longer than that
            t_first = _time.perf_counter()
            reduce(_replica(*args, seqs[0], pbar=pbar))
            done = 1
            tau = _time.perf_counter() - t_first
            if tau * (R - 1) * (1.0 - 1.0 / W) < SPAWN_COST_S:  # the time the workers would save
                W = 1
        if W > 1:
            import multiprocessing as mp
            import warnings
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            ex = ProcessPoolExecutor(max_workers=W, mp_context=mp.get_context("spawn"))
            try:
                futs = [ex.submit(_replica, *args, sq) for sq in seqs[done:]]
                for f in futs:
                    reduce(f.result())
                    done += 1
                    if pbar is not None:
                        pbar.update(T)
                ex.shutdown()
            except BrokenProcessPool:
                ex.shutdown(wait=False, cancel_futures=True)
                # typically a script without `if __name__ == "__main__":` (spawned workers re-run it)
                warnings.warn("DMFT worker processes failed to start (a script needs an `if __name__ == "
                              "'__main__':` guard for workers > 1); running the remaining replicas here",
                              RuntimeWarning, stacklevel=2)
                W = 1
            except BaseException:  # a diverged replica, Ctrl-C: do not wait for the queued replicas
                ex.shutdown(wait=False, cancel_futures=True)
                raise
        for sq in seqs[done:]:
            reduce(_replica(*args, sq, pbar=pbar))
    finally:
        if pbar is not None:
            pbar.close()

    time = times
    k, ks = problem.k, problem.kstar
    Qr, Mr = np.stack(Qr), np.stack(Mr)  # (R, T1, k, k), (R, T1, k, ks)
    ter = np.stack([population_loss(problem.model, Qr[i], Mr[i]) for i in range(R)])
    # Monte Carlo: train = test + E[l(r_m, y) - l(w_m, y)] (control variate, see _march)
    trr = np.stack(train_r) + (0.0 if exact else ter)

    def mean_se(a):
        mean = a.mean(axis=0)
        se = a.std(axis=0, ddof=1) / math.sqrt(R) if R > 1 else np.zeros_like(mean)
        return mean, se

    data = {}
    for name, arr, dims in (
        ("train_loss", trr, ("time",)),
        ("test_loss", ter, ("time",)),
        ("M", Mr, ("time", "k", "kstar")),
        ("Q", Qr, ("time", "k", "k2")),
    ):
        mean, se = mean_se(arr)
        data[name] = (dims, mean)
        data[name + "_stderr"] = (dims, se)
    if keep_kernels:
        kd = ("time", "time2", "k", "k2")
        for var, name in (("C_theta", "Ct"), ("R_theta", "Rt"), ("C_F", "CF"), ("R_F", "RF")):
            data[var] = (kd, sums[name] / R)
        data["mu"] = (("time", "k", "kstar"), sums["mu"] / R)
    if not exact:
        data["r_samples"] = (("snap_time", "path", "k"), np.concatenate(snaps, axis=1))
    ds = xr.Dataset(
        data,
        coords={"time": time, "time2": time, "snap_time": time[snap_idx]} if keep_kernels or not exact
        else {"time": time},
    )
    ds["time"].attrs.update(units="t = steps x eta (gradient-flow time; one epoch = gamma)")
    ds.attrs.update(
        kind="theory",
        solver="dmft-forward-march",
        algorithm=law.name,
        dt=float(law.dt),
        gamma=float(getattr(law, "gamma", 0.0)),
        t_max=float(times[-1]),
        grid_growth=float(law.growth if law.graded else 0.0),
        grid_dt_max=float(law.largest_step if law.graded else law.dt),
        grid_steps=int(T),
        **problem.attrs(),
        paths=int(0 if exact else P * R),
        replicas=int(R),
        replicas_requested=int(1 if exact else replicas),
        workers=int(W),
        seed=int(seed),
        exact_path=int(exact),
        responses="exact" if exact else ("stein" if use_stein else "pathwise"),
        cholesky_clip=float(max(clips)),
        memory_estimate_bytes=float(mem),
        sgd_dmft_version=__version__,
    )
    for v in ("train_loss", "test_loss", "M", "Q"):
        if not np.all(np.isfinite(ds[v].values)):
            raise SolverDiverged(_diverged_msg(law, float(time[-1]), f"non-finite {v}"))
    return ds
