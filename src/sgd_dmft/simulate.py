"""Finite-d simulators: the ground truth the DMFT is checked against (THEORY.md sections 1-2).

Conventions
-----------
* ``x_i ~ N(0, I_d / d)`` (rows of ``X``, n x d), ``n = round(delta * d)``; teacher ``theta*`` (d x k*)
  with i.i.d. N(0, 1) entries; labels ``y_i = model.label(r*_i, eps_i)``, ``eps_i ~ N(0, 1)``.
* ``theta_0 = init_overlap * theta* P^T + init_scale * Z`` with ``Z`` i.i.d. N(0, 1) and ``P`` (k x k*)
  the same selection matrix as :meth:`Problem.init_moments` (ones on the first ``min(k, k*)``
  diagonal entries: ``theta*[:, :k]`` when ``k <= k*``, zero-padded columns when ``k > k*``), so the
  empirical initial overlaps match the DMFT's initial condition.
* Sum-loss convention, ridge ``lambda |theta_j|^2 / 2``: ``grad L = X^T F(X theta, y) + lambda theta``.
* Records on the grid ``t_m = m * dt``, ``m = 0 .. round(t_max / dt)``; record ``m = 0`` is the
  initial condition.

Algorithms
----------
``"gd"`` / ``"gf"``
    full-batch GD ``theta <- theta - dt (X^T F + lambda theta)`` (gf = gd at a small dt); implemented
    through the law path with ``laws.GD(dt)``.
``"law"`` (and ``"sgd"`` with ``batching="bernoulli"``, ``"sme"``, ``"gd"``)
    the per-sample multiplier recursion that the DMFT solves at d = infinity,
    ``theta_{m+1} = theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m} - dt lambda theta_m`` with
    ``r_{i,m} = x_i^T theta_m`` (pre-update) and ``S = law.sample(rng, n, T)``, recorded at ``t_m``
    before the update of step m.
``"sgd"`` (``batching="uniform"``)
    mini-batch SGD, ``kappa = batch`` samples drawn uniformly without replacement inside a batch,
    independently across steps; ``eta = gamma kappa / n``, update
    ``theta <- theta - eta ((n / kappa) sum_{i in B} x_i F_i^T + lambda theta)``; time ``K eta``
    after K steps; grid time ``t_m`` is recorded after step ``round(t_m / eta)``.
``"reshuffle"``
    random reshuffling: each epoch a fresh permutation of the n samples is cut into consecutive
    batches of kappa (the last one smaller when kappa does not divide n). A step over a batch B
    lasts ``gamma |B| / n`` (``= eta`` for full batches), so one epoch is exactly gamma time units
    and every sample's jump is gamma; ``t_m`` is recorded at the batch boundary nearest to it.
``"online"``
    one-pass SGD: kappa fresh samples ``(x, y)`` at every step, ``eta = gamma kappa / n`` with
    ``n = round(delta d)`` used only to set the time scale. There is no training set: ``train_loss``
    is NaN (the loss on fresh samples is the test loss).

``test_loss`` is the exact population loss of the current ``theta`` for the *drawn* teacher:
``population_loss(model, Q, M, S*)`` with the empirical ``S* = theta*^T theta* / d``.

Speed: the per-step loops of sgd / reshuffle / online are numba kernels for the preset models
(gradient re-implemented below, validated against ``model.grad`` at start-up), a per-step numpy
loop for custom models. The ridge shrinkage is carried as a scalar, ``theta = c * theta_tilde``,
so a kappa = 1 step costs O(d k). The law path uses BLAS matrix products (``X theta`` is needed at
every grid step anyway, to record the training loss).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import numba
import numpy as np
import xarray as xr

from . import laws as _laws
from .laws import Law
from .problem import Model, Problem, population_loss

ALGORITHMS = ("gf", "gd", "sgd", "sme", "reshuffle", "online", "law")
BATCHINGS = ("uniform", "bernoulli")

Q_MAX = 1e12  # divergence threshold on the diagonal of Q = theta^T theta / d
_RENORM = 1e-3  # fold the ridge scalar c back into theta_tilde when |c| falls below this


class SimulationDiverged(ValueError):
    """The iterates became non-finite or exploded (``Q > 1e12``)."""


# ============================================================================================
# Instance: data, teacher, initialisation
# ============================================================================================
@dataclass
class Instance:
    """One random instance of the problem at dimension d (``X`` is None for online SGD)."""

    X: np.ndarray | None  # (n, d)
    y: np.ndarray | None  # (n,)
    theta_star: np.ndarray  # (d, k*)
    theta0: np.ndarray  # (d, k)
    n: int
    d: int


def n_samples(problem: Problem, d: int) -> int:
    return int(round(problem.delta * d))


def _rngs(seed: int, s: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(data rng, algorithm rng) of seed value ``s`` of a run with base seed ``seed``."""
    ss = np.random.SeedSequence([int(seed), int(s)])
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def _init_projection(problem: Problem) -> np.ndarray:
    k, ks = problem.k, problem.kstar
    P = np.zeros((k, ks))
    m = min(k, ks)
    P[np.arange(m), np.arange(m)] = 1.0
    return P


def make_instance(problem: Problem, d: int, rng: np.random.Generator, with_data: bool = True) -> Instance:
    """Draw teacher, initialisation and (unless ``with_data=False``) the training set.

    Draw order: ``theta*``, ``Z``, ``X``, ``eps``, so all algorithms run with the same seed share the
    teacher and the initialisation, and all but online share the data.
    """
    model = problem.model
    n = n_samples(problem, d)
    theta_star = rng.standard_normal((d, model.kstar))
    Z = rng.standard_normal((d, model.k))
    theta0 = problem.init_scale * Z
    if problem.init_overlap != 0.0:
        theta0 = theta0 + problem.init_overlap * (theta_star @ _init_projection(problem).T)
    X = y = None
    if with_data:
        X = rng.standard_normal((n, d))
        X *= 1.0 / math.sqrt(d)
        eps = rng.standard_normal(n)
        y = np.asarray(model.label(X @ theta_star, eps), dtype=np.float64)
    return Instance(X=X, y=y, theta_star=theta_star, theta0=np.ascontiguousarray(theta0), n=n, d=d)


def instance_for_seed(problem: Problem, d: int, s: int, seed: int = 0, with_data: bool = True) -> Instance:
    """The instance that :func:`simulate` uses for seed value ``s`` (base seed ``seed``)."""
    return make_instance(problem, d, _rngs(seed, s)[0], with_data=with_data)


# ============================================================================================
# Numba kernels for the preset models
# ============================================================================================
_MODEL_CODES = {"linear": 0, "logistic": 1, "phase_retrieval": 2, "committee": 3}
_ACT_CODES = {"erf": 0, "relu": 1, "tanh": 2, "quadratic": 3}
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT2_PI = math.sqrt(2.0 / math.pi)


@numba.njit(cache=True, inline="always")
def _act_nb(acode, x):
    if acode == 0:
        return math.erf(x * _INV_SQRT2)
    elif acode == 1:
        return x if x > 0.0 else 0.0
    elif acode == 2:
        return math.tanh(x)
    else:
        return x * x


@numba.njit(cache=True, inline="always")
def _dact_nb(acode, x):
    if acode == 0:
        return _SQRT2_PI * math.exp(-0.5 * x * x)
    elif acode == 1:
        return 1.0 if x > 0.0 else 0.0
    elif acode == 2:
        t = math.tanh(x)
        return 1.0 - t * t
    else:
        return 2.0 * x


@numba.njit(cache=True)
def _grad_nb(mcode, acode, r, y, out):
    """``out[:] = F(r, y)`` for a preset model; ``r``, ``out`` of length k."""
    k = r.shape[0]
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
def _grad_rows_nb(mcode, acode, R, y, out):
    for i in range(R.shape[0]):
        _grad_nb(mcode, acode, R[i], y[i], out[i])


# 'reassoc' lets the d-long dot products vectorise (a kappa = 1 step is latency-bound otherwise); no
# 'nnan'/'ninf' so that the divergence checks stay valid. Results stay deterministic on a given machine.
_FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(cache=True, fastmath=_FASTMATH)
def _steps_kernel(X, y, tt, c, idx, ptr, gamma, fac, mcode, acode):
    """Run ``len(ptr) - 1`` SGD steps in place on ``theta = c * tt``.

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
            _grad_nb(mcode, acode, rb[j], y[i], Fb[j])
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


def _numba_codes(model: Model) -> tuple[int, int] | None:
    """(model code, activation code) when ``model`` is a preset whose gradient the kernel reproduces."""
    mcode = _MODEL_CODES.get(model.name)
    if mcode is None:
        return None
    acode = _ACT_CODES.get(model.meta.get("activation", "erf"), -1) if mcode == 3 else 0
    if acode < 0:
        return None
    if mcode != 3 and (model.k != 1 or model.kstar < 1):
        return None
    # validate against model.grad (guards against custom models that reuse a preset's name)
    rng = np.random.default_rng(12345)
    R = rng.standard_normal((16, model.k)) * 1.5
    y = np.asarray(model.label(rng.standard_normal((16, model.kstar)), rng.standard_normal(16)), dtype=np.float64)
    out = np.empty_like(R)
    _grad_rows_nb(mcode, acode, R, y, out)
    ref = np.asarray(model.grad(R, y), dtype=np.float64)
    if ref.shape != out.shape or not np.allclose(out, ref, rtol=1e-10, atol=1e-12):
        return None
    return mcode, acode


# ============================================================================================
# Batch streams (index generators) for sgd / reshuffle
# ============================================================================================
def uniform_batches(rng: np.random.Generator, n: int, kappa: int, n_steps: int) -> np.ndarray:
    """``(n_steps, kappa)`` sample indices: each row uniform without replacement, rows independent."""
    if kappa == 1:
        return rng.integers(0, n, size=(n_steps, 1))
    if kappa * (kappa - 1) < n:  # duplicates rare: rejection (exactly uniform over distinct tuples)
        out = rng.integers(0, n, size=(n_steps, kappa))
        while True:
            srt = np.sort(out, axis=1)
            bad = np.nonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))[0]
            if bad.size == 0:
                return out
            out[bad] = rng.integers(0, n, size=(bad.size, kappa))
    out = np.empty((n_steps, kappa), dtype=np.int64)
    for s in range(n_steps):
        out[s] = rng.choice(n, size=kappa, replace=False)
    return out


class ReshuffleStream:
    """Random reshuffling: each epoch a fresh permutation cut into consecutive batches of kappa."""

    def __init__(self, rng: np.random.Generator, n: int, kappa: int):
        self.rng, self.n, self.kappa = rng, n, kappa
        self.nb = -(-n // kappa)  # batches per epoch
        self._perm = None
        self._pos = self.nb  # batch position inside the current epoch

    def batch_sizes(self) -> np.ndarray:
        sz = np.full(self.nb, self.kappa, dtype=np.int64)
        sz[-1] = self.n - self.kappa * (self.nb - 1)
        return sz

    def take(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Next ``n_steps`` batches as (flat indices, pointers of length n_steps + 1)."""
        idx_parts, sizes = [], []
        left = n_steps
        while left > 0:
            if self._pos == self.nb:
                self._perm = self.rng.permutation(self.n)
                self._pos = 0
            m = min(left, self.nb - self._pos)
            a = self._pos * self.kappa
            b = min((self._pos + m) * self.kappa, self.n)
            idx_parts.append(self._perm[a:b])
            sz = self.batch_sizes()[self._pos:self._pos + m]
            sizes.append(sz)
            self._pos += m
            left -= m
        idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int64)
        sz = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
        ptr = np.zeros(n_steps + 1, dtype=np.int64)
        np.cumsum(sz, out=ptr[1:])
        return idx.astype(np.int64), ptr


def reshuffle_record_steps(times: np.ndarray, n: int, kappa: int, gamma: float) -> np.ndarray:
    """Step index (batch boundary) whose elapsed time is nearest to each ``t`` in ``times``."""
    nb = -(-n // kappa)
    out = np.empty(len(times), dtype=np.int64)
    for j, t in enumerate(times):
        c = t * n / gamma  # samples processed at time t
        e = math.floor(c / n + 1e-12)
        w = c - e * n
        lo = min(int(math.floor(w / kappa + 1e-12)), nb)
        best = lo
        if lo < nb:
            c_lo, c_hi = lo * kappa, min((lo + 1) * kappa, n)
            if abs(c_hi - w) < abs(w - c_lo) - 1e-9:
                best = lo + 1
        out[j] = e * nb + best
    return out


# ============================================================================================
# Small step helpers (also used by the tests)
# ============================================================================================
def sgd_step(model: Model, X: np.ndarray, y: np.ndarray, theta: np.ndarray, batch_idx, gamma: float,
             fac: float = 1.0) -> np.ndarray:
    """One SGD step over ``batch_idx`` from ``theta`` (not modified) through the simulator's kernel.

    ``batch_idx`` of shape ``(kappa,)`` gives one new theta; of shape ``(N, kappa)`` gives ``N`` independent
    one-step outcomes from the same ``theta`` (shape ``(N, d, k)``).

    ``theta_new = fac * theta - gamma * sum_{i in B} x_i F(x_i^T theta, y_i)^T``; with
    ``eta = gamma kappa / n`` and ``fac = 1 - eta * ridge`` this is the step of module-level docs.
    """
    bi = np.asarray(batch_idx, dtype=np.int64)
    codes = _numba_codes(model)
    outs = []
    for row in (bi if bi.ndim == 2 else bi.reshape(1, -1)):
        tt = np.array(theta, dtype=np.float64, order="C")
        ptr = np.array([0, row.size], dtype=np.int64)
        if codes is not None:
            c, _ = _steps_kernel(X, y, tt, 1.0, np.ascontiguousarray(row), ptr, float(gamma), float(fac),
                                 codes[0], codes[1])
            tt *= c
        else:
            _steps_numpy(model, X, y, tt, row, ptr, gamma, fac)
        outs.append(tt)
    return np.stack(outs) if bi.ndim == 2 else outs[0]


def law_step(model: Model, X: np.ndarray, y: np.ndarray, theta: np.ndarray, S_m: np.ndarray, dt: float,
             ridge: float = 0.0) -> np.ndarray:
    """One step of the law recursion: ``theta - X^T (F(X theta, y) * S_m) - dt * ridge * theta``."""
    r = X @ theta
    F = np.asarray(model.grad(r, y), dtype=np.float64).reshape(r.shape)
    return (1.0 - dt * ridge) * theta - X.T @ (F * np.asarray(S_m)[:, None])


# ============================================================================================
# Per-seed runs
# ============================================================================================
def _diverged(algorithm: str, gamma: float, t: float, what: str = "non-finite iterates") -> SimulationDiverged:
    return SimulationDiverged(f"simulation diverged: algorithm={algorithm}, gamma={gamma:g}, at t={t:.6g} ({what})")


class _Recorder:
    def __init__(self, model: Model, inst: Instance, n_rec: int, algorithm: str, gamma: float, train: bool):
        self.model, self.inst = model, inst
        k, ks = model.k, model.kstar
        self.Q = np.full((n_rec, k, k), np.nan)
        self.M = np.full((n_rec, k, ks), np.nan)
        self.train = np.full(n_rec, np.nan)
        self.algorithm, self.gamma, self.do_train = algorithm, gamma, train

    def record(self, m: int, t: float, theta: np.ndarray, r: np.ndarray | None = None) -> None:
        d = self.inst.d
        Q = theta.T @ theta / d
        if not np.all(np.isfinite(Q)):
            raise _diverged(self.algorithm, self.gamma, t)
        if np.max(np.abs(np.diag(Q))) > Q_MAX:
            raise _diverged(self.algorithm, self.gamma, t, f"Q > {Q_MAX:g}")
        self.Q[m] = Q
        self.M[m] = theta.T @ self.inst.theta_star / d
        if self.do_train:
            if r is None:
                r = self.inst.X @ theta
            self.train[m] = float(np.mean(self.model.loss(r, self.inst.y)))


def _run_law(problem: Problem, law: Law, inst: Instance, T: int, rng: np.random.Generator, algorithm: str,
             gamma: float, pbar=None) -> tuple[_Recorder, np.ndarray]:
    model, X, y = problem.model, inst.X, inst.y
    dts = law.steps(T + 1)  # dt_m (uniform unless the law's grid is graded)
    tgrid = np.concatenate([[0.0], np.cumsum(dts)])
    facs = 1.0 - dts * problem.ridge
    rec = _Recorder(model, inst, T + 1, algorithm, gamma, train=True)
    theta = inst.theta0.copy()
    deterministic = law.deterministic
    if deterministic:
        s_consts = law.sample(rng, 1, T + 1)[0]
        St = ptr = rows = vals = None
        sparse = False
    else:
        S = np.asarray(law.sample(rng, inst.n, T), dtype=np.float64)
        nnz = np.count_nonzero(S)
        sparse = nnz < 0.25 * S.size
        if sparse:
            ms, rows = np.nonzero(S.T)  # sorted by step, then sample
            vals = S[rows, ms]
            ptr = np.searchsorted(ms, np.arange(T + 1))
            St = None
        else:
            St = np.ascontiguousarray(S.T)
        del S
    for m in range(T + 1):
        r = X @ theta
        rec.record(m, tgrid[m], theta, r)
        if m == T:
            break
        F = np.asarray(model.grad(r, y), dtype=np.float64).reshape(r.shape)
        if not np.all(np.isfinite(F)):
            raise _diverged(algorithm, gamma, tgrid[m])
        if deterministic:
            upd = X.T @ F
            upd *= s_consts[m]
        elif sparse:
            a, b = ptr[m], ptr[m + 1]
            if b > a:
                rr = rows[a:b]
                upd = X[rr].T @ (F[rr] * vals[a:b, None])
            else:
                upd = None
        else:
            upd = X.T @ (F * St[m][:, None])
        fac = facs[m]
        if fac != 1.0:
            theta *= fac
        if upd is not None:
            theta -= upd
        if pbar is not None:
            pbar.update(1)
    return rec, theta


def _run_steps(problem: Problem, algorithm: str, inst: Instance, times: np.ndarray, gamma: float, kappa: int,
               rng: np.random.Generator, pbar=None) -> tuple[_Recorder, np.ndarray]:
    model = problem.model
    n, d = inst.n, inst.d
    eta = gamma * kappa / n
    fac = 1.0 - eta * problem.ridge
    online = algorithm == "online"
    if algorithm == "reshuffle":
        rec_steps = reshuffle_record_steps(times, n, kappa, gamma)
        stream = ReshuffleStream(rng, n, kappa)
        step_time = None
    else:
        rec_steps = np.rint(times / eta).astype(np.int64)
        stream = None
        step_time = eta
    nb_epoch = -(-n // kappa)
    codes = _numba_codes(model)
    rec = _Recorder(model, inst, len(times), algorithm, gamma, train=not online)
    tt = inst.theta0.copy()
    c = 1.0

    def t_of_step(K: int) -> float:
        if step_time is not None:
            return K * step_time
        e, j = divmod(K, nb_epoch)
        return gamma * (e * n + min(j * kappa, n)) / n

    K = 0
    for m, Kr in enumerate(rec_steps):
        while K < Kr:  # process in chunks (bounded memory for the index / fresh-data arrays)
            ns = int(min(Kr - K, max(1, 2_000_000 // max(kappa * (d if online else 1), 1))))
            if stream is not None:
                idx, ptr = stream.take(ns)
                Xc, yc = inst.X, inst.y
            elif online:
                nsamp = ns * kappa
                Xc = rng.standard_normal((nsamp, d))
                Xc *= 1.0 / math.sqrt(d)
                eps = rng.standard_normal(nsamp)
                yc = np.asarray(model.label(Xc @ inst.theta_star, eps), dtype=np.float64)
                idx = np.arange(nsamp, dtype=np.int64)
                ptr = np.arange(ns + 1, dtype=np.int64) * kappa
            else:
                idx = uniform_batches(rng, n, kappa, ns).astype(np.int64).ravel()
                ptr = np.arange(ns + 1, dtype=np.int64) * kappa
                Xc, yc = inst.X, inst.y
            if codes is not None:
                c, fail = _steps_kernel(Xc, yc, tt, c, idx, ptr, float(gamma), float(fac), codes[0], codes[1])
            else:
                fail = _steps_numpy(model, Xc, yc, tt, idx, ptr, gamma, fac)
            if fail >= 0:
                raise _diverged(algorithm, gamma, t_of_step(K + fail))
            K += ns
            if pbar is not None:
                pbar.update(ns)
        theta = tt * c
        rec.record(m, t_of_step(K), theta)
    return rec, tt * c


def _simulate_seed(problem: Problem, algorithm: str, *, times: np.ndarray, d: int, gamma: float, batch: int,
                   batching: str, s: int, seed: int, law: Law | None, pbar=None):
    """Run one seed value on the record grid ``times``; returns ``(recorder, final theta, instance)``."""
    data_rng, alg_rng = _rngs(seed, s)
    inst = make_instance(problem, d, data_rng, with_data=(algorithm != "online"))
    T = len(times) - 1
    if law is not None:
        rec, theta = _run_law(problem, law, inst, T, alg_rng, algorithm, gamma, pbar)
    else:
        rec, theta = _run_steps(problem, algorithm, inst, times, gamma, batch, alg_rng, pbar)
    return rec, theta, inst


def _resolve_law(algorithm: str, batching: str, dt: float, gamma: float, law: Law | None,
                 grid: dict) -> Law | None:
    if algorithm == "law":
        if law is None:
            raise ValueError("algorithm='law' needs a law (a sgd_dmft.laws.Law instance)")
        if not math.isclose(law.dt, dt, rel_tol=1e-9):
            raise ValueError(f"law.dt={law.dt} differs from dt={dt}")
        if grid["growth"] != 0.0:
            raise ValueError(f"growth={grid['growth']} is not used with algorithm='law': the law carries its grid")
        return law
    if law is not None:
        raise ValueError(f"law= is only used with algorithm='law' (got algorithm={algorithm!r})")
    if algorithm in ("gd", "gf"):
        return _laws.GD(dt, **grid)
    if algorithm == "sme":
        return _laws.SME(dt, gamma, **grid)
    if algorithm == "sgd" and batching == "bernoulli":
        return _laws.SGD(dt, gamma, **grid)
    return None


def simulate(problem: Problem, algorithm: str, *, t_max: float, dt: float, d: int, gamma: float = 1.0,
             batch: int = 1, batching: str = "uniform", seeds: int | Sequence[int] = 1, seed: int = 0,
             law: Law | None = None, progress: bool = False, growth: float = 0.0,
             dt_max: float | None = None) -> xr.Dataset:
    """Finite-d simulation of ``algorithm`` on ``problem``; see the module docstring for the recursions.

    Parameters
    ----------
    problem: model, delta, ridge and initialisation.
    algorithm: ``gf | gd | sgd | sme | reshuffle | online | law``.
    t_max, dt: records at ``t_m = m dt``, ``m = 0 .. round(t_max / dt)``; for gd/gf/sme/law and
        bernoulli sgd ``dt`` is also the step of the recursion.
    d: dimension (``n = round(delta d)``).
    gamma: SGD step scale (``eta = gamma kappa / n``); for sme / bernoulli sgd the law's gamma.
    batch: kappa, the mini-batch size (sgd uniform, reshuffle, online).
    batching: ``uniform`` (true mini-batch SGD) or ``bernoulli`` (law path, ``laws.SGD(dt, gamma)``).
    seeds: number of seeds (values ``0..seeds-1``) or explicit seed values.
    seed: base seed; seed value ``s`` uses ``SeedSequence([seed, s])``.
    law: the multiplier law for ``algorithm="law"`` (it carries its own time grid).
    growth, dt_max: a graded grid (laws.graded_times): records, and for the law paths the steps
        ``dt_m`` of the recursion, on ``t_{m+1} = t_m + clip(growth t_m, dt, dt_max)``; for true
        mini-batch SGD (and reshuffle/online) only the record times (the step is eta).
    progress: tqdm bar over seeds x steps (shown only when stderr is a terminal).

    Returns an xarray Dataset with ``train_loss``, ``test_loss`` (seed, time), ``M`` (seed, time, k,
    kstar), ``Q`` (seed, time, k, k2). Raises :class:`SimulationDiverged` on blow-up.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {ALGORITHMS}")
    if batching not in BATCHINGS:
        raise ValueError(f"batching={batching!r} is not one of {BATCHINGS}")
    if not (dt > 0 and t_max >= 0):
        raise ValueError(f"need dt > 0 and t_max >= 0 (got dt={dt}, t_max={t_max})")
    if d < 1:
        raise ValueError(f"d={d} must be positive")
    model = problem.model
    n = n_samples(problem, d)
    if n < 1:
        raise ValueError(f"n = round(delta d) = {n} must be positive")
    law_obj = _resolve_law(algorithm, batching, dt, gamma, law, dict(growth=float(growth), dt_max=dt_max))
    if law_obj is None:
        if not (gamma > 0):
            raise ValueError(f"gamma={gamma} must be positive")
        if not (1 <= batch <= n or algorithm == "online"):
            raise ValueError(f"batch={batch} must be in [1, n={n}]")
        if batch < 1:
            raise ValueError(f"batch={batch} must be >= 1")
    seed_values = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_values:
        raise ValueError("no seeds")
    times = law_obj.times(t_max) if law_obj is not None else _laws.graded_times(t_max, dt, growth, dt_max)
    T = len(times) - 1

    pbar = None
    if progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        if law_obj is not None:
            per_seed = T
        elif algorithm == "reshuffle":
            per_seed = int(reshuffle_record_steps(times[-1:], n, batch, gamma)[0])
        else:
            per_seed = int(round(times[-1] * n / (gamma * batch)))
        pbar = tqdm(total=per_seed * len(seed_values), desc=f"simulate {algorithm} d={d}", unit="step")

    k, ks = model.k, model.kstar
    S_ = len(seed_values)
    train = np.empty((S_, T + 1))
    test = np.empty((S_, T + 1))
    Qa = np.empty((S_, T + 1, k, k))
    Ma = np.empty((S_, T + 1, k, ks))
    try:
        for j, s in enumerate(seed_values):
            rec, _, inst = _simulate_seed(problem, algorithm, times=times, d=d, gamma=gamma, batch=batch,
                                          batching=batching, s=s, seed=seed, law=law_obj, pbar=pbar)
            Sstar = inst.theta_star.T @ inst.theta_star / d
            train[j], Qa[j], Ma[j] = rec.train, rec.Q, rec.M
            test[j] = population_loss(model, rec.Q, rec.M, Sstar)
    finally:
        if pbar is not None:
            pbar.close()

    attrs = {
        "kind": "simulation",
        "algorithm": algorithm,
        "d": int(d),
        "n": int(n),
        "delta": float(problem.delta),
        "gamma": float(gamma),
        "dt": float(dt),
        "t_max": float(times[-1]),
        "grid_growth": float(law_obj.growth if law_obj is not None else growth),
        "batch": int(batch),
        "batching": batching if algorithm == "sgd" else "none",
        "eta": float(gamma * batch / n) if law_obj is None else float(dt),
        "ridge": float(problem.ridge),
        "init_scale": float(problem.init_scale),
        "init_overlap": float(problem.init_overlap),
        "model": model.name,
        "k": int(k),
        "kstar": int(ks),
        "noise": float(model.noise),
        "activation": str(model.meta.get("activation", "")),
        "law": law_obj.name if law_obj is not None else "none",
        "base_seed": int(seed),
        "train_loss_note": "NaN: online SGD has no training set" if algorithm == "online"
        else "mean over the n training samples of loss(r_i, y_i), penalty excluded",
    }
    if law_obj is not None:
        for key in ("b", "tau"):
            if hasattr(law_obj, key):
                attrs[f"law_{key}"] = float(getattr(law_obj, key))
    ds = xr.Dataset(
        data_vars={
            "train_loss": (("seed", "time"), train),
            "test_loss": (("seed", "time"), test),
            "M": (("seed", "time", "k", "kstar"), Ma),
            "Q": (("seed", "time", "k", "k2"), Qa),
        },
        coords={"seed": np.asarray(seed_values, dtype=np.int64), "time": times},
        attrs=attrs,
    )
    return ds


def iter_seed_runs(problem: Problem, algorithm: str, seeds: Sequence[int], **kw) -> Iterator[xr.Dataset]:
    """Yield one single-seed Dataset per seed value (same numbers as the joint run)."""
    for s in seeds:
        yield simulate(problem, algorithm, seeds=[s], **kw)
