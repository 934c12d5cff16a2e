"""Response estimators of the Monte Carlo sample process: ``R_F[m, s]`` and ``mu_m``.

``R_F[m,s] = delta E[d h_m / d w_s]`` and ``mu_m = delta E[d h_m / d r*]`` (docs/theory.md section 3):

* :class:`PathwiseTangents`: tangents ``J_{m,s} = d r_m / d w_s`` carried along every path (only at
  its visits for sparse laws), ``mu`` from Gaussian integration by parts of ``E[h_m r*^T]``. Low
  variance; needs a Hessian without Dirac masses (smooth ``F``).
* :class:`GaussianIBP`: Gaussian integration by parts for all of them through the Cholesky factor,
  ``E[grad_g h_m] = E[h_m z^T] L^{-1}`` over ``g = (r*, w_0..w_m) = L z``: the distributional
  derivative, right for kinks such as relu; noisier.

A response object is an immutable specification; :meth:`start` builds the per-replica state whose
``update(step, K, coord)`` fills block row ``m`` of ``R_F`` and ``mu``. The compiled steps of the tangent
recursion are in :mod:`.tangent_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.linalg import solve_triangular

from .tangent_kernels import tangent_step, tangent_step_k1, window_step, window_step_k1


WINDOW_SHARE = 0.25  # PathwiseTangents.share of a windowed dense law (measured: docstring there)
MIN_TANGENT_PATHS = 256  # a replica's tangent paths when fewer than all


def window_starts(times: np.ndarray, window: float) -> np.ndarray:
    """``lo[m]``: the first grid index ``s`` with ``t_s >= t_m - window`` (the tangent window of step m)."""
    return np.searchsorted(times, times - window - 1e-9 * max(1.0, float(times[-1])), side="left").astype(np.int64)


def window_width(lo: np.ndarray) -> int:
    """Rows of a windowed store's slot: the most grid steps any window ``[lo[m], m]`` spans."""
    return int(np.max(np.arange(len(lo)) - lo)) + 1


def window_slots(active: np.ndarray, lo: np.ndarray) -> int:
    """The ring size ``V`` of a windowed store: one more than the most visits any path has in a window
    ``[lo[m], m]`` (``active`` (P, steps) bool, exact from the pre-drawn multipliers)."""
    if active.shape[1] == 0:
        return 1
    c = np.concatenate([np.zeros((active.shape[0], 1), dtype=np.int64), np.cumsum(active, axis=1)], axis=1)
    m = np.arange(active.shape[1])
    return int(np.max(c[:, m + 1] - c[:, lo[m]], initial=0)) + 1


@dataclass(frozen=True)
class PathwiseTangents:
    """Pathwise tangents (float32 store, triangular: a visit at step u keeps its ``u + 1`` rows of ``k^2``,
    ``sum over visits of (u + 1)`` rows per path, about half of ``visits x (T+1)``).

    ``rao_blackwell``: estimate with ``E[S_m]`` in place of the sampled ``S_m`` at the current step
    (valid for i.i.d. laws; lower variance, every path's tangent at every step). None: on for dense
    i.i.d. laws (SME), off otherwise (for SGD it would cost ``O(P J T^2)`` instead of ``O(P J T^2 dt/gamma)``).

    ``tail``: the probability mass of teacher fields ``r*`` (the largest ``|r*|``: ``|r*|^2`` above the
    chi-square quantile ``1 - tail`` with ``k*`` degrees of freedom) whose paths get ``R_F`` by Gaussian
    integration by parts in the student fields, *conditional on r** (docs/theory.md section 3c), instead
    of tangents. Both estimators have the same conditional mean given ``(r*, label noise)``, so any
    partition by ``r*`` is unbiased; the point is that a path whose own visit map is expanding (a large
    label that the student cannot fit stably: phase retrieval with ``y > 1 / (2 gamma)``, He3 targets)
    has a tangent that grows exponentially with its visits, while its integration-by-parts term stays
    bounded. 0: tangents on every path (the estimator before issue 10).

    ``single``: accumulate a path's tangent in float32 (the store's precision). None: for sparse laws
    (SGD, reshuffling: a tangent sums O(visits) rows; 27 % faster), float64 for dense ones (a GD tangent
    sums one row per step, where float32 moved a graded GD standard error by 1.2e-5 relative).

    ``share``: the fraction of a replica's paths that carry tangents (the first ``tangent_paths(P)`` of
    them: the paths are i.i.d., so any fixed subset estimates the same mean, scaled back to all paths). None:
    :data:`WINDOW_SHARE` for a dense law with a ``window`` (a long GF, GD or SME run, where the tangents'
    ``O(P W^2)`` a step is most of the work: logistic GF to t = 100, 5x faster at 1 / 4, the stated standard
    errors 1.02x (train) and 1.2x (test) over 5 seeds, the curves within 0.35 / 0.62 s.e.; docs/theory.md 4d),
    1 otherwise (SGD's tangents are ~20 % of a long run; a run without a window is short).
    """

    rao_blackwell: bool | None = None
    tail: float = 0.0
    single: bool | None = None
    window: float | None = None
    share: float | None = None
    name = "pathwise"

    def __post_init__(self):
        if not (isinstance(self.tail, (int, float)) and 0.0 <= float(self.tail) <= 1.0):
            raise ValueError(f"PathwiseTangents.tail={self.tail!r} is not allowed: must be a probability in [0, 1]")
        if self.window is not None and not (isinstance(self.window, (int, float)) and float(self.window) > 0):
            raise ValueError(f"PathwiseTangents.window={self.window!r} is not allowed: must be a time > 0 or None")
        if self.share is not None and not (isinstance(self.share, (int, float)) and 0.0 < float(self.share) <= 1.0):
            raise ValueError(f"PathwiseTangents.share={self.share!r} is not allowed: must be in (0, 1] or None")

    def resolve(self, law) -> "PathwiseTangents":
        rb = bool(law.independent_steps and not law.sparse) if self.rao_blackwell is None else bool(self.rao_blackwell)
        single = bool(law.sparse) if self.single is None else bool(self.single)
        window = None if self.window is None else float(self.window)
        share = (WINDOW_SHARE if window is not None and not law.sparse else 1.0) if self.share is None else self.share
        return PathwiseTangents(rb, float(self.tail), single, window, float(share))

    def tangent_paths(self, P: int) -> int:
        """Paths of a replica of ``P`` that carry tangents: ``share`` of them, at least ``min(P, MIN_TANGENT_PATHS)``."""
        share = 1.0 if self.share is None else float(self.share)
        return int(min(P, max(np.ceil(share * P), MIN_TANGENT_PATHS)))

    def store_bytes(self, rows: float, k: int) -> float:
        """Bytes per path of the tangent store of ``rows`` rows (planning.store_rows: its expectation)."""
        return 4.0 * rows * k * k

    def start(self, P: int, nmax: int, T1: int, k: int, active: np.ndarray, times: np.ndarray | None = None):
        """``active`` (P, steps) bool: the steps at which each path is visited (``S != 0``); ``times``:
        the grid (for a ``window``)."""
        Pt = self.tangent_paths(P)
        if self.window is not None and times is not None:
            return _Windowed(bool(self.rao_blackwell), Pt, k, float(self.tail), bool(self.single), active[:Pt],
                             window_starts(times, self.window))
        return _Pathwise(bool(self.rao_blackwell), Pt, nmax, T1, k, float(self.tail), bool(self.single), active[:Pt])


def triangular_offsets(active: np.ndarray, nmax: int) -> tuple[np.ndarray, int]:
    """Row offsets of the triangular tangent store: ``off[p, j]`` where path p's j-th visit starts,
    ``off[p, n_p]`` where its rows end (entries past ``n_p`` repeat that end); and the total row count.

    ``active`` (P, steps) bool; the j-th visit at step u holds rows ``off[p, j] .. off[p, j] + u``."""
    off = np.empty((active.shape[0], int(nmax) + 1), dtype=np.int64)
    rows = _offsets(np.ascontiguousarray(active, dtype=np.bool_), off)
    return off, int(rows)


@njit(cache=True)
def _offsets(active, off):  # pragma: no cover - compiled
    """Fill ``off`` (see :func:`triangular_offsets`); returns the total row count (one pass, ~1 ms at
    1000 x 1000, where the numpy version took 16 ms per replica and level)."""
    P, steps = active.shape
    width = off.shape[1]
    end = 0
    for p in range(P):
        off[p, 0] = end
        j = 0
        for u in range(steps):
            if active[p, u]:
                end += u + 1
                j += 1
                off[p, j] = end
        for jj in range(j + 1, width):
            off[p, jj] = end
    return end


def tail_paths(rstar: np.ndarray, tail: float) -> np.ndarray:
    """Boolean (P,): the paths whose teacher field lies in the upper ``tail`` of its law, ``|r*|^2 >
    chi2_{k*}^{-1}(1 - tail)`` (``S* = I``); a fixed threshold, so the partition is a function of ``r*``."""
    if tail <= 0.0:
        return np.zeros(len(rstar), dtype=bool)
    if tail >= 1.0:
        return np.ones(len(rstar), dtype=bool)
    from scipy.stats import chi2

    return np.einsum("pk,pk->p", rstar, rstar) > chi2.isf(tail, rstar.shape[1])


class _Pathwise:
    def __init__(self, rb: bool, P: int, nmax: int, T1: int, k: int, tail: float, single: bool, active: np.ndarray):
        self.rb, self.k, self.tail, self.Pt, self.scale = rb, k, tail, P, 1.0
        self.Jbuf = np.zeros((T1, k, k) if k > 1 else T1, dtype=np.float32 if single else np.float64)
        self.off, rows = triangular_offsets(np.asarray(active, dtype=bool), nmax)
        self.G = np.zeros((max(1, rows), k, k), dtype=np.float32)  # float32: half the memory traffic
        self.sums = np.zeros((T1, k, k))
        self.use: np.ndarray | None = None  # paths on tangents (set at the first step, from r*)
        self.tail_idx = np.zeros(0, dtype=np.int64)
        if k == 1:
            self.G1 = self.G.reshape(-1)  # a view: k = 1 blocks are scalars
            self.sums1 = np.zeros(T1)

    def update(self, st, K, coord) -> None:
        """Block row m of R_F and mu from the tangents (``st``: the step's quantities)."""
        m, k, P, delta = st.m, self.k, st.P, st.delta
        if self.use is None:  # tangents on the first Pt paths outside the tail, scaled to all P outside it
            in_tail = tail_paths(st.rstar, self.tail)
            self.use, self.tail_idx = ~in_tail[: self.Pt], np.flatnonzero(in_tail)
            self.scale = (P - len(self.tail_idx)) / max(1, int(self.use.sum()))
        bm, upto = slice(m * k, (m + 1) * k), (m + 1) * k
        Pt = self.Pt  # the Hessian of the paths that carry tangents
        lo = self._accumulate(st, np.ascontiguousarray(st.model.hess(st.r[:Pt], st.y[:Pt])))
        sums = self.sums[: m + 1 - lo]
        # rb: S_m is independent of everything before step m (i.i.d. multipliers), so
        # E[S_m F_m (.)] = E[S] E[F_m (.)]: the kernel already holds H_m J, and E[S] F_m stands for h_m
        scale, hbar = (st.s1, st.Fm * st.s1) if self.rb else (1.0, st.hm)
        K.RF[bm, : lo * k] = 0.0
        K.RF[bm, lo * k : upto] = (delta * scale * self.scale / P) * sums.transpose(1, 0, 2).reshape(k, (m + 1 - lo) * k)
        if len(self.tail_idx):  # the tail paths' share of the mean: their sum over P
            K.RF[bm, :upto] += delta * stein_gradient(st, st.rstar.shape[1], self.tail_idx)
        self._record_edge(K.RF[bm, :upto], lo, m)
        EhR = (hbar.T @ st.rstar) / P
        # teacher term by integration by parts: E[h r*^T] = mu/delta S* + sum_s R_F/delta M_s^T
        K.mu[bm] = delta * EhR - K.RF[bm, :upto] @ K.M[:upto] @ coord.Sinv


    def _accumulate(self, st, Hm: np.ndarray) -> int:
        """Advance the tangents to step m and fill ``sums[: m + 1 - lo]`` with ``sum_p d h_m / d w_s``,
        ``s >= lo``; returns ``lo`` (0: the whole past). ``Hm``: the Hessians of the first ``Pt`` paths."""
        m, Pt = st.m, self.Pt
        if self.k == 1:
            Rt = st.Rrow[:, 0, 0].astype(self.Jbuf.dtype)
            tangent_step_k1(m, Rt, Hm[:, 0, 0].copy(), st.S[:Pt], self.rb, self.G1, self.off, st.visits.t[:Pt],
                             st.visits.n[:Pt], self.sums1[: m + 1], self.use, self.Jbuf)
            self.sums[: m + 1, 0, 0] = self.sums1[: m + 1]
        else:
            tangent_step(m, st.Rrow, Hm, st.S[:Pt], self.rb, self.G, self.off, st.visits.t[:Pt],
                         st.visits.n[:Pt], self.sums[: m + 1], self.use, self.Jbuf)
        return 0

    def _record_edge(self, row: np.ndarray, lo: int, m: int) -> None:
        """Windowed tangents record the share of R_F their window cuts (:class:`_Windowed`)."""


def stein_gradient(st, lo: int = 0, idx: np.ndarray | None = None) -> np.ndarray:
    """``(1/P) sum_{p in idx} d h_m / d g_{lo:nm}`` by Gaussian integration by parts, (k, nm - lo).

    ``g = (r*, w_0..w_m) = L z`` with ``L`` lower triangular: ``E[grad_g h_m] = E[h_m z^T] L^{-1}``. From row
    ``lo`` on (``lo = k*``: the student fields ``w`` at fixed ``r*``) the block ``L[lo:nm, lo:nm]`` alone
    gives ``E[h z_w^T | r*] L_ww^{-1}``: Stein's identity in the normals ``z_w``, independent of ``r*``, so
    it holds on any set of paths ``idx`` chosen by ``r*`` (None: every path). Rao-Blackwellised
    (``E[S] F_m`` in place of ``h_m``) for i.i.d. multipliers."""
    sel = slice(None) if idx is None else idx
    hb = st.Fm[sel] * st.s1 if st.iid else st.hm[sel]
    Ehz = (st.Z[lo : st.nm, sel] @ hb) / st.P  # (nm - lo, k)
    return solve_triangular(st.L[lo : st.nm, lo : st.nm], Ehz, lower=True, trans="T", check_finite=False).T


@dataclass(frozen=True)
class GaussianIBP:
    """Gaussian integration by parts through the Cholesky factor (kinks such as relu; noisier).

    Rao-Blackwellised for i.i.d. laws (``E[S] F_m`` in place of ``S_m F_m``)."""

    name = "stein"

    def resolve(self, law) -> "GaussianIBP":
        return self

    def store_bytes(self, rows: float, k: int) -> float:
        return 0.0

    def tangent_paths(self, P: int) -> int:
        return 0

    def start(self, P: int, nmax: int, T1: int, k: int, active: np.ndarray | None = None, times=None) -> "_IBP":
        return _IBP(k)


class _IBP:
    def __init__(self, k: int):
        self.k = k

    def update(self, st, K, coord) -> None:
        m, k, delta, ks, nm = st.m, self.k, st.delta, coord.ks, st.nm
        bm, upto = slice(m * k, (m + 1) * k), (m + 1) * k
        grad = stein_gradient(st)  # (k, nm): E[grad_g h_m] over g = (r*, w_0..w_m)
        K.mu[bm] = delta * grad[:, :ks]  # delta E[d h_m / d r*] at fixed w
        K.RF[bm, :upto] = delta * grad[:, ks:nm]


class _Windowed(_Pathwise):
    """Pathwise tangents on a window of the past (``PathwiseTangents.window``): ``R_F[m, s] = 0`` for
    ``t_m - t_s > window``; the store is a ring of visit slots per path (``O(P V W)`` memory instead of
    ``O(P visits T)``, work ``O(P q^2 W^2)`` per step instead of ``O(P q^2 m^2)``). ``edge`` records the
    estimated share of ``sum_s |R_F[m, s]|`` that the window cuts, summed over the steps where it cuts
    (sums: Monte Carlo noise in single rows' tails is large): the masses ``a1``, ``a2`` of the oldest and
    second-oldest tenths of the window give the decay per tenth ``rho = a1 / a2`` and the geometric tail
    ``a1 rho / (1 - rho)`` beyond the window (1 where the response does not decay)."""

    def __init__(self, rb: bool, P: int, k: int, tail: float, single: bool, active: np.ndarray, lo: np.ndarray):
        self.rb, self.k, self.tail, self.lo, self.Pt, self.scale = rb, k, tail, lo, P, 1.0
        T1 = len(lo)
        width = window_width(lo)
        V = window_slots(np.asarray(active, dtype=bool), lo[: active.shape[1]])
        self.G = np.zeros((P, V, width, k, k), dtype=np.float32)
        self.base = np.zeros((P, V), dtype=np.int64)
        self.Jbuf = np.zeros((width, k, k), dtype=np.float32 if single else np.float64)
        self.sums = np.zeros((T1, k, k))
        self.use, self.tail_idx = None, np.zeros(0, dtype=np.int64)
        self.edge, self.masses = 0.0, np.zeros(3)
        if k == 1:  # views: k = 1 blocks are scalars
            self.G1, self.Jbuf1, self.sums1 = self.G.reshape(P, V, width), self.Jbuf.reshape(width), np.zeros(T1)

    def _accumulate(self, st, Hm: np.ndarray) -> int:
        m, lo, Pt = st.m, int(self.lo[st.m]), self.Pt
        win = self.sums[: m + 1 - lo]
        if self.k == 1:
            Rt = st.Rrow[:, 0, 0].astype(self.Jbuf.dtype)
            window_step_k1(m, lo, Rt, Hm[:, 0, 0].copy(), st.S[:Pt], self.rb, self.G1, self.base, st.visits.t[:Pt],
                           st.visits.n[:Pt], self.sums1[: m + 1 - lo], self.use, self.Jbuf1)
            win[:, 0, 0] = self.sums1[: m + 1 - lo]
        else:
            Rt = st.Rrow.astype(self.Jbuf.dtype) if self.Jbuf.dtype != st.Rrow.dtype else st.Rrow
            window_step(m, lo, Rt, Hm, st.S[:Pt], self.rb, self.G, self.base, st.visits.t[:Pt],
                        st.visits.n[:Pt], win, self.use, self.Jbuf)
        return lo

    def _record_edge(self, row: np.ndarray, lo: int, m: int) -> None:
        if lo == 0:
            return
        k = self.k
        tenth = max(1, (m + 1 - lo) // 10)
        mass = np.abs(row).reshape(k, -1, k).sum(axis=(0, 2))  # (m + 1,) per time
        tot = float(mass.sum())
        self.masses += (float(mass[lo : lo + tenth].sum()), float(mass[lo + tenth : lo + 2 * tenth].sum()), tot)
        a1, a2, tot = self.masses
        rho = a1 / a2 if a2 > 0 else 1.0
        self.edge = min(1.0, a1 * rho / (1.0 - rho) / tot) if rho < 1.0 else 1.0
