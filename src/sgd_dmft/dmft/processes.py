"""Sample processes: how the solver obtains row ``m`` of ``C_F``, ``R_F``, ``mu`` (and the train loss).

A sample process is an immutable specification (NetKet style) with :meth:`SampleProcess.start`,
which builds one replica's state; the state's ``row(m, last)`` fills block row ``m`` of the kernels
from ``C_theta``, ``R_theta``, ``M`` up to ``m`` (the march is causal). Two processes:

* :class:`ExactLinearPath`: square loss with a linear student and i.i.d. multipliers; the residual
  is linear in the Gaussian fields with random coefficients, so its second moments close exactly
  (docs/theory.md section 4). No Monte Carlo.
* :class:`MonteCarlo`: ``P`` sample paths drawn through the growing Cholesky factor, with a history
  store (:class:`~.history.DenseHistory` / :class:`~.history.SparseHistory`) and a response
  estimator (:class:`~.responses.PathwiseTangents` / :class:`~.responses.GaussianIBP`).

``K.train[m]`` is the train loss (exact path) or, Monte Carlo, the train loss minus the test loss
(:attr:`train_is_gap`; the solver adds the test loss back). The Monte Carlo estimate uses the control
variate ``l(w_m, y)``, whose mean ``test_loss(C_theta[m,m], M_m)`` is known (a fresh sample sees the
cavity field): ``train = mean l(r) - beta_m (mean l(w) - test)``. ``MonteCarlo(train="optimal")``
(default) fits ``beta_m = Cov(l(r), l(w)) / Var(l(w))`` per step on the replica's paths, clipped to
[0, 1]; ``train="gap"`` is the earlier fixed ``beta = 1`` (docs/theory.md section 3b: on phase
retrieval the fixed gap has 34-200x the variance of the plain mean).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError
from ..models.population import population_loss
from .cholesky import GrowingCholesky, forward_subst
from .coordinate import CoordinateProcess
from .history import DenseHistory, SparseHistory, Visits
from .responses import GaussianIBP, PathwiseTangents


TRAIN_ESTIMATORS = ("optimal", "gap")
ESCAPE = 1e4  # a pre-activation beyond ESCAPE * sqrt(max(1, trace Q_m)) has escaped (dimensionless)
CLIP_LOST = 1e-6  # a clipped Schur complement past this share of a field's variance: the factor failed (rounding: ~eps)


class SampleProcess(abc.ABC):
    """How the sample side of the DMFT is computed; see the module docstring."""

    name: str = "?"
    train_is_gap: bool = False
    monte_carlo: bool = True

    def resolve(self, problem, law) -> "SampleProcess":
        """The concrete process for this problem and law (defaults filled in); checks applicability."""
        return self

    @abc.abstractmethod
    def start(self, problem, schedule, coord: CoordinateProcess, paths: int, rng: np.random.Generator,
              snap_idx: np.ndarray, law) -> Any:
        """Per-replica state with ``row(m, last)``, ``snapshots`` (n_snap, P_snap, k) and ``clip``."""


# ------------------------------------------------------------------------------------------------
# Exact second-moment closure
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExactLinearPath(SampleProcess):
    """Deterministic second-moment closure for square loss + linear student + i.i.d. multipliers."""

    name = "exact"
    monte_carlo = False

    def resolve(self, problem, law):
        if not (problem.model.linear_square and law.independent_steps):
            raise ConfigError(f"process=ExactLinearPath() needs square loss with a linear student and i.i.d. "
                              f"multipliers (got model={problem.model.name}, algorithm={law.name}): use MonteCarlo()",
                              key="process")
        return self

    def start(self, problem, schedule, coord, paths, rng, snap_idx, law):
        return _ExactState(problem, schedule, coord, snap_idx)


class _ExactState:
    """Square loss, linear student, i.i.d. multipliers (``E[S] = c1``, ``E[S^2] = c2``): the residual
    ``e_m = r_m - y = v_m - sum_{u<m} R_theta[m,u] S_u e_u``, ``v = w - y``, is linear in v with random
    coefficients; its second moments close exactly (docs/theory.md section 4):
    ``Zv[s] = E[v_m e_s]``, ``X[m,s] = E[e_m e_s]`` (s <= m), ``Y[m,s] = E[e_m e_s S_s]`` (s < m),
    ``Abar[m,s] = E[d e_m / d v_s]`` (the GD recursion with step c1)."""

    def __init__(self, problem, schedule, coord, snap_idx):
        T1 = schedule.T + 1
        self.K, self.delta = coord.K, problem.delta
        self.c1, self.c2 = schedule.mean, schedule.second
        self.noise2 = problem.model.noise**2
        self.Abar, self.X, self.Y = np.zeros((T1, T1)), np.zeros((T1, T1)), np.zeros((T1, T1))
        self.E1 = np.zeros((T1, T1))  # E[S_u e_u e_s]: c1 X[u,s] (u >= s), Y[s,u] (u < s)
        self.Az = np.eye(T1)  # I + R_theta diag(c1), grown row by row (the triangular system of Zv)
        self.snapshots = np.zeros((len(snap_idx), 0, problem.k))
        self.clip = 0.0

    def row(self, m: int, last: bool) -> None:
        K, c1, c2, delta = self.K, self.c1, self.c2, self.delta
        Abar, X, Y, E1 = self.Abar, self.X, self.Y, self.E1
        Vrow = K.C[m, : m + 1] - K.M[m, 0] - K.M[: m + 1, 0] + 1.0 + self.noise2
        Rrow = K.R[m, :m]
        Abar[m, m] = 1.0
        # E[S_u] = c1[u], E[S_u^2] = c2[u] may vary with u (graded grid); S_u is independent of
        # v and of e_s for s <= u.
        self.Az[m, :m] = K.R[m, :m] * c1[:m]
        Zv = np.empty(m + 1)
        forward_subst(self.Az, m + 1, Vrow[None, :], Zv[None, :])
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
        K.train[m] = 0.5 * X[m, m]
        K.CF[m, :m] = K.CF[:m, m] = delta * c1[m] * Y[m, :m]
        K.CF[m, m] = delta * c2[m] * X[m, m]
        K.RF[m, : m + 1] = delta * c1[m] * Abar[m, : m + 1]
        K.mu[m, 0] = -delta * c1[m] * Abar[m, : m + 1].sum()


# ------------------------------------------------------------------------------------------------
# Monte Carlo
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonteCarlo(SampleProcess):
    """Monte Carlo over sample paths.

    ``history``: ``DenseHistory`` or ``SparseHistory`` (the class); None: sparse for sparse laws (SGD,
    reshuffling), dense otherwise. ``responses``: ``PathwiseTangents()`` or ``GaussianIBP()``; None:
    integration by parts for a model with a kink (``model.smooth`` False), pathwise tangents otherwise.
    ``train``: the train-loss estimator, ``"optimal"`` (control variate ``l(w_m, y)`` with the
    variance-minimising coefficient fitted per step) or ``"gap"`` (coefficient 1, the estimator before
    issue 10; reproduces the recorded golden outputs). ``bias_replicas``: extra replicas of half the
    paths run after the solve to estimate the O(1/P) bias of a replica's self-consistent kernels
    (attrs ``<var>_bias_rel``; 0: not estimated, the default, no extra cost; see consistency.py).
    """

    history: type | None = None
    responses: PathwiseTangents | GaussianIBP | None = None
    train: str = "optimal"
    bias_replicas: int = 0
    name = "monte_carlo"
    train_is_gap = True

    def resolve(self, problem, law):
        if self.train not in TRAIN_ESTIMATORS:
            raise ConfigError(f"train={self.train!r} is not allowed: use one of {TRAIN_ESTIMATORS}", key="process")
        hist = self.history or (SparseHistory if law.sparse else DenseHistory)
        resp = self.responses or (PathwiseTangents() if problem.model.smooth else GaussianIBP())
        return MonteCarlo(hist, resp.resolve(law), self.train, int(self.bias_replicas))

    def start(self, problem, schedule, coord, paths, rng, snap_idx, law, inputs=None):
        return _MonteCarloState(self, problem, schedule, coord, paths, rng, snap_idx, law, inputs)

    @staticmethod
    def draw(problem, schedule, paths: int, rng: np.random.Generator, law, rows: int | None = None,
             after_z: dict | None = None, states: list | None = None) -> "Inputs":
        """The random inputs of one replica, in the order a replica draws them. ``states``: a list that gets
        the generator's state after ``Z``. ``rows``, ``after_z``: only the first ``rows`` of ``Z`` (a normal
        draw fills ``Z`` row by row: the same numbers), then the rest from ``after_z``, the state a full draw
        of this replica left (``states``): the same inputs, ``Z`` cut short, without drawing the rest of it."""
        N = problem.kstar + (schedule.T + 1) * problem.k
        Z = rng.standard_normal((N if rows is None or after_z is None else min(int(rows), N), paths))
        if after_z is not None and len(Z) < N:
            rng.bit_generator.state = after_z
        if states is not None:
            states.append(rng.bit_generator.state)
        eps = rng.standard_normal(paths)
        return Inputs(Z, eps, law.sample(rng, paths, schedule.T + 1))


class Inputs(NamedTuple):
    """The random inputs of a Monte Carlo replica: normals ``Z`` (ks + (T+1) k, P) of the Cholesky
    draws (rows ``:ks`` give r*), label noise ``eps`` (P,), multipliers ``S`` (P, T+1)."""

    Z: np.ndarray
    eps: np.ndarray
    S: np.ndarray


class Step(NamedTuple):
    """The per-step quantities a response estimator reads (P paths, k components)."""

    m: int
    P: int
    delta: float
    model: Any
    r: np.ndarray  # (P, k) pre-activations
    y: np.ndarray  # (P,) labels
    Fm: np.ndarray  # (P, k) F(r_m, y)
    hm: np.ndarray  # (P, k) F(r_m, y) S_m
    S: np.ndarray  # (P,) multipliers at step m
    s1: float  # E[S_m]
    iid: bool  # multipliers independent over steps
    Rrow: np.ndarray  # (T+1, k, k) R_theta[m, :]
    rstar: np.ndarray  # (P, ks)
    Z: np.ndarray  # (N, P) the paths' standard normals
    L: np.ndarray  # (N, N) the Cholesky factor
    nm: int  # rows of L in use (ks + (m+1) k)
    visits: Visits


class _MonteCarloState:
    """One replica of the Monte Carlo sample process (path-minor layouts: time-major rows, paths
    contiguous, so that every product is a BLAS call on contiguous blocks)."""

    def __init__(self, spec: MonteCarlo, problem, schedule, coord, P, rng, snap_idx, law, inputs=None):
        k, ks, T1 = problem.k, problem.kstar, schedule.T + 1
        self.coord, self.K, self.model, self.P, self.k, self.ks = coord, coord.K, problem.model, P, k, ks
        self.delta, self.c1, self.law, self.iid = problem.delta, schedule.mean, law, bool(law.independent_steps)
        N = ks + T1 * k
        self.chol = GrowingCholesky(N, coord.Sstar)
        self.Z, eps, self.Smat = inputs if inputs is not None else MonteCarlo.draw(problem, schedule, P, rng, law)
        if schedule.factor is not None:  # the inputs hold the unscaled multipliers (coupled levels coarsen those)
            self.Smat = self.Smat * schedule.factor[None, :]
        self.rstar = (self.chol.L[:ks, :ks] @ self.Z[:ks]).T
        self.y = self.model.labels(self.rstar, eps)
        active = self.Smat[:, : schedule.T] != 0
        nmax = max(1, int(active.sum(axis=1).max()))
        self.visits = Visits(P, nmax)
        self.history = spec.history(T1, k, P, nmax)
        self.responses = spec.responses.start(P, nmax, T1, k, active, schedule.times)
        self.snap_idx, self.times = snap_idx, schedule.times
        self.snapshots = np.zeros((len(snap_idx), min(P, 5000), k))
        self.train = _TrainEstimate(spec.train, T1)

    @property
    def clip(self) -> float:
        return self.chol.clip

    def _fields(self, m: int):
        """Extend the Cholesky factor of (r*, w_0..w_m) and draw ``w_m`` (P, k) and ``r_m`` (P, k)."""
        k, K = self.k, self.K
        n_prev = self.ks + m * k
        self.chol.extend(n_prev, *self.coord.field_cov(m))
        wt = self.chol.L[n_prev : n_prev + k, : n_prev + k] @ self.Z[: n_prev + k]
        w = wt.T
        T1 = len(self.times)
        Rrow = np.ascontiguousarray(K.R[m * k : (m + 1) * k].reshape(k, T1, k).transpose(1, 0, 2))
        r = self.history.field(m, w, wt, Rrow, K.R, self.visits)
        amax = float(np.max(np.abs(r))) if r.size else 0.0
        bound = ESCAPE * math.sqrt(max(1.0, float(np.trace(K.C[m * k : (m + 1) * k, m * k : (m + 1) * k]))))
        if not amax <= bound:
            raise self._escaped(m, r, amax, bound)
        return w, r, Rrow

    def _escaped(self, m: int, r: np.ndarray, amax: float, bound: float):
        """SolverDiverged for a path whose pre-activation left every plausible range (or is not finite)."""
        from .divergence import diverged

        if not math.isfinite(amax):
            return diverged(self.law, self.times[m], "non-finite pre-activations")
        p = int(np.argmax(np.max(np.abs(r), axis=1)))
        jump = getattr(self.law, "jump_size", None)
        hint = (f": its visits (jumps gamma F, gamma = {jump:g}) are unstable for its label (docs/theory.md "
                f"section 3c); lower dynamics.gamma" if jump else "")
        lost = self.chol.clip > CLIP_LOST
        if lost:  # (the factor of the field's covariance failed: not the step)
            hint = (f"; the sampled field's covariance had lost positive definiteness (negative Schur complements "
                    f"up to {self.chol.clip:.2g} of a field's variance): rounding in its factor after many steps, "
                    f"not the dynamics (fewer grid steps: a larger dynamics.growth or dt_max)")
        return diverged(self.law, self.times[m], f"a sample path escaped, |r| = {amax:.3g} > {bound:.3g} for the "
                                                 f"path with label y = {float(np.ravel(self.y[p])[0]):.4g}{hint}",
                        step_hint=not lost)

    def row(self, m: int, last: bool) -> None:
        K, k, P, model = self.K, self.k, self.P, self.model
        w, r, Rrow = self._fields(m)
        S = self.Smat[:, m]
        Fm = model.grad(r, self.y)
        hm = Fm * S[:, None]
        # control variate: l(w_m, y) has the known mean test_loss(C_theta[m,m], M_m)
        self.train.add(m, model.loss(r, self.y), model.loss(w, self.y))
        j = np.searchsorted(self.snap_idx, m)
        if j < len(self.snap_idx) and self.snap_idx[j] == m:
            self.snapshots[j] = r[: self.snapshots.shape[1]]
        if last:
            self.train.finish(K, self.model, k, self.ks)
            K.window_edge = float(getattr(self.responses, "edge", 0.0))
            return
        bm, upto = slice(m * k, (m + 1) * k), (m + 1) * k
        # C_F stays the pathwise Gram matrix (delta/P) sum_p h_p h_p^T: positive semi-definite by
        # construction, which keeps C_theta a covariance (a Rao-Blackwellised C_F is not a Gram
        # matrix and can turn C_theta indefinite).
        K.CF[bm, :upto] = (self.delta / P) * self.history.cf_sums(m, hm, S, self.visits)
        K.CF[: m * k, bm] = K.CF[bm, : m * k].T
        st = Step(m, P, self.delta, model, r, self.y, Fm, hm, S, float(self.c1[m]), self.iid, Rrow, self.rstar,
                  self.Z, self.chol.L, self.ks + upto, self.visits)
        self.responses.update(st, K, self.coord)
        self.visits.register(m, S)


class _TrainEstimate:
    """Per-step train-loss estimate with the control variate ``l(w_m, y)`` (known mean: the test loss).

    ``add(m, lr, lw)`` records the means of ``l(r_m, y)`` and ``l(w_m, y)`` over the P paths (each
    (P,)) and the coefficient ``beta_m`` (``"gap"``: 1; ``"optimal"``: ``Cov(lr, lw) / Var(lw)`` clipped
    to [0, 1], which minimises the variance of ``mean lr - beta (mean lw - test)``; fitted on the same
    paths, hence an O(1/P) bias ``-Cov(beta_hat, mean lw)``, far below the standard error).
    ``finish`` writes ``K.train[m] = train_m - test_m`` (the solver adds ``test_m`` back).
    """

    def __init__(self, kind: str, T1: int):
        self.kind = kind
        self.lr, self.lw, self.beta = np.zeros(T1), np.zeros(T1), np.ones(T1)

    def add(self, m: int, lr: np.ndarray, lw: np.ndarray) -> None:
        if self.kind == "gap":  # the earlier estimator, bit for bit: mean of the difference
            self.lr[m] = float(np.mean(lr - lw))
            return
        self.lr[m], self.lw[m] = float(np.mean(lr)), float(np.mean(lw))
        dw = lw - self.lw[m]
        vw = float(dw @ dw)
        beta = float((lr - self.lr[m]) @ dw) / vw if vw > 0.0 else 0.0
        self.beta[m] = min(1.0, max(0.0, beta)) if np.isfinite(beta) else 0.0

    def finish(self, K, model, k: int, ks: int) -> None:
        """Write ``K.train`` (T+1,) once ``C_theta`` and ``M`` are final (the last step)."""
        if self.kind == "gap":
            K.train[:] = self.lr
            return
        T1 = len(self.lr)
        Q = np.diagonal(K.blocks("C"), axis1=0, axis2=1).transpose(2, 0, 1)  # (T1, k, k)
        test = population_loss(model, Q, K.M.reshape(T1, k, ks))
        K.train[:] = self.lr - self.beta * (self.lw - test) - test
        K.test = test  # reused by replicas.summarize (the population loss is the costly part of a short solve)


RESPONSES = ("auto", "pathwise", "stein")


def choose_process(problem, law, process: SampleProcess | None = None, responses: str = "auto",
                   rao_blackwell: bool | None = None, tail: float = 0.0, window: float | None = None,
                   share: float | None = None) -> SampleProcess:
    """The resolved sample process of a solve.

    ``process`` given: that one (checked, defaults filled in). Else the exact path when it applies
    (square loss, linear student, i.i.d. multipliers), otherwise Monte Carlo with ``responses``
    (``"pathwise"``, ``"stein"`` = Gaussian integration by parts, ``"auto"``: stein for a model with a
    kink, pathwise otherwise) and ``rao_blackwell``, ``tail``, ``window`` (their memory in time units,
    None: the whole past), ``share`` (of the paths that carry them, None: the law's default) for the pathwise
    tangents.
    """
    if responses not in RESPONSES:
        raise ConfigError(f"responses={responses!r} is not allowed: use 'auto', 'pathwise' or 'stein'", key="responses")
    if process is not None:
        if not isinstance(process, SampleProcess):
            raise ConfigError(f"process={process!r} is not allowed: use ExactLinearPath() or MonteCarlo(...)",
                              key="process")
        return process.resolve(problem, law)
    if problem.model.linear_square and law.independent_steps:
        return ExactLinearPath()
    if responses == "stein" or (responses == "auto" and not problem.model.smooth):
        resp = GaussianIBP()
    else:
        resp = PathwiseTangents(rao_blackwell, tail, window=window, share=share)
    return MonteCarlo(responses=resp).resolve(problem, law)
