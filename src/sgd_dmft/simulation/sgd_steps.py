"""The step algorithms: true mini-batch SGD, reshuffling and one-pass SGD (:class:`MiniBatchSGD`,
:class:`Reshuffling`, :class:`OnlineSGD` on the common :class:`SGDSteps`; see :mod:`.algorithms` for the
conventions), and the batch-size schedule :class:`BatchSchedule`.
"""

from __future__ import annotations

import abc
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..conventions import sgd_eta, sgd_steps
from ..errors import ConfigError
from ..laws import LRSchedule
from .algorithm_base import Algorithm, Batches, is_real
from .batches import ReshuffleStream, reshuffle_record_steps, uniform_batches
from .kernels import kernel_codes, run_steps
from .recorder import Recorder, diverged

if TYPE_CHECKING:
    from ..models import Model
    from .instance import Instance

__all__ = ["SGDSteps", "BatchSchedule", "MiniBatchSGD", "Reshuffling", "OnlineSGD"]


@dataclass(frozen=True)
class SGDSteps(Algorithm):
    """Steps ``theta <- fac theta - gamma sum_{i in B} x_i F_i^T`` over batches of ``batch`` samples
    (``fac = 1 - eta lambda``, ``eta = gamma batch / n``); subclasses say which samples (``_batches``)."""

    gamma: float
    batch: int = 1
    lr: LRSchedule | None = field(default=None, kw_only=True)  # the step gamma f(t), weight decay included

    def __post_init__(self):
        if not (is_real(self.gamma) and math.isfinite(self.gamma) and self.gamma > 0):
            raise ConfigError(f"gamma={self.gamma!r} is not allowed: must be a finite number > 0", key="gamma")
        if self.lr is not None and not isinstance(self.lr, LRSchedule):
            raise ConfigError(f"lr={self.lr!r} is not allowed: must be a sgd_dmft.laws.LRSchedule or None", key="lr")
        if not (isinstance(self.batch, numbers.Integral) and not isinstance(self.batch, bool) and self.batch >= 1):
            raise ConfigError(f"batch={self.batch!r} is not allowed: must be an integer >= 1", key="batch")

    def check(self, n):
        if self.batch > n:
            raise ConfigError(f"batch={self.batch} is not allowed: must be in [1, n={n}] (n = round(delta d))",
                              key="batch")

    def eta(self, n: int) -> float:
        """The SGD step ``gamma * batch / n`` (gradient-flow time of one full-batch step; conventions.sgd_eta)."""
        return sgd_eta(self.gamma, self.batch, n)

    def record_steps(self, times: np.ndarray, n: int) -> np.ndarray:
        """Step count after which each grid time is recorded, ``(R,)`` int64."""
        return np.rint(times / self.eta(n)).astype(np.int64)

    def time_of_step(self, K: int, n: int) -> float:
        """Gradient-flow time after K steps."""
        return K * self.eta(n)

    def n_steps(self, times, n):
        return sgd_steps(times[-1], self.gamma, self.batch, n)

    def attrs(self, n):
        return {"gamma": float(self.gamma), "batch": int(self.batch), "batching": "none",
                "eta": float(self.eta(n)), "law": "none", **(self.lr.attrs() if self.lr is not None else {})}

    def _steps_to_jump(self, K: int, n: int) -> float:
        """Steps from step ``K`` to the next jump of the learning-rate schedule (inf without one)."""
        if self.lr is None:
            return math.inf
        t = self.time_of_step(K, n)
        later = [tj for tj in self.lr.times if tj > t * (1 + 1e-9) + 1e-12]
        return max(1, math.ceil(later[0] / self.eta(n) - 1e-9) - K) if later else math.inf

    def eta_at(self, K: int, n: int) -> float:
        """The step of step ``K`` in units of t (``gamma kappa / n``; a batch-size schedule changes kappa)."""
        return self.eta(n)

    @property
    def _varying(self) -> bool:
        """Whether the step changes along the run (a learning-rate schedule)."""
        return self.lr is not None

    @property
    def _max_batch(self) -> int:
        return int(self.batch)

    def _step(self, K: int, n: int, ridge: float) -> tuple[float, float]:
        """``(gamma f, 1 - eta_K f ridge)`` with ``f`` the learning-rate factor at step ``K``'s time."""
        f = 1.0 if self.lr is None else float(self.lr.factor(self.time_of_step(K, n)))
        return self.gamma * f, 1.0 - self.eta_at(K, n) * f * ridge

    @abc.abstractmethod
    def _batches(self, rng: np.random.Generator, inst: Instance, model: Model) -> Batches:
        """The batch source of one run."""

    def run(self, problem, inst, times, rng, pbar=None):
        model, n, d, kappa = problem.model, inst.n, inst.d, self._max_batch
        fac = 1.0 - self.eta(n) * problem.ridge
        rec_steps = self.record_steps(times, n)
        source = self._batches(rng, inst, model)
        codes = kernel_codes(model)
        rec = Recorder(model, inst, len(times), self.name, self.gamma, train=self.with_data)
        # steps per chunk: bounded memory for the index / fresh-data arrays
        chunk = max(1, 2_000_000 // max(kappa * (1 if self.with_data else d), 1))
        tt, c, K = inst.theta0.copy(), 1.0, 0
        for m, Kr in enumerate(rec_steps):
            while K < Kr:
                ns = int(min(Kr - K, chunk, self._steps_to_jump(K, n)))
                Xc, yc, idx, ptr = source(ns, K)
                gamma, fac = self._step(K, n, problem.ridge) if self._varying else (self.gamma, fac)
                c, fail = run_steps(model, codes, Xc, yc, tt, c, idx, ptr, gamma, fac)
                if fail >= 0:
                    raise diverged(self.name, self.gamma, self.time_of_step(K + fail, n))
                K += ns
                if pbar is not None:
                    pbar.update(ns)
            rec.record(m, self.time_of_step(K, n), tt * c)
        return rec, tt * c


@dataclass(frozen=True)
class BatchSchedule:
    """Batch sizes along a run: ``sizes[i]`` samples per step on ``[times[i-1], times[i])`` (units of t)."""

    times: tuple[float, ...]
    sizes: tuple[int, ...]

    def __post_init__(self):
        t = np.asarray(self.times, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(np.diff(t) <= 0):
            raise ConfigError(f"batch times={list(self.times)!r} are not allowed: must be increasing finite times > 0",
                              key="batches")
        ok = all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1 for k in self.sizes)
        if not ok or len(self.sizes) != len(t) + 1:
            raise ConfigError(f"batch sizes={list(self.sizes)!r} are not allowed: must be {len(t) + 1} integers >= 1 "
                              f"(one more than the times)", key="batches")


@dataclass(frozen=True)
class MiniBatchSGD(SGDSteps):
    """Mini-batch SGD: ``batch`` samples uniform without replacement per step, independent across steps.

    ``batches``: a :class:`BatchSchedule` (then ``batch`` is unused): the batch size changes along the run at
    fixed ``gamma`` (the lr scaled with the batch, ``eta = gamma kappa / n``), each step still moving its
    samples by ``gamma``: a sample is visited at rate ``1 / gamma`` whatever kappa is, so at the critical
    scale (``kappa = o(n)``) the d = infinity curve is the constant-batch one (tests/test_schedules.py)."""

    name: str = field(default="sgd", kw_only=True)
    batches: BatchSchedule | None = field(default=None, kw_only=True)

    def attrs(self, n):
        out = {**super().attrs(n), "batching": "uniform"}
        if self.batches is not None:
            out.update(batch_times=json.dumps(list(self.batches.times)), batch_sizes=json.dumps(list(self.batches.sizes)))
        return out

    def check(self, n):
        if self._max_batch > n:
            raise ConfigError(f"batch={self._max_batch} is not allowed: must be in [1, n={n}] (n = round(delta d))",
                              key="batch")

    @property
    def _varying(self) -> bool:
        return self.lr is not None or self.batches is not None

    @property
    def _max_batch(self) -> int:
        return int(self.batch if self.batches is None else max(self.batches.sizes))

    def _pieces(self, n: int):
        """``(t0, K0, eta, kappa)`` per piece of the batch schedule: start time, start step, step, batch."""
        kap = np.asarray(self.batches.sizes, dtype=np.int64)
        t0 = np.concatenate([[0.0], np.asarray(self.batches.times)])
        eta = sgd_eta(self.gamma, kap, n)
        K0 = np.concatenate([[0], np.cumsum(np.rint(np.diff(t0) / eta[:-1]).astype(np.int64))])
        return t0, K0, eta, kap

    def _piece(self, K: int, n: int) -> int:
        return int(np.searchsorted(self._pieces(n)[1], K, side="right") - 1)

    def eta_at(self, K, n):
        return self.eta(n) if self.batches is None else float(self._pieces(n)[2][self._piece(K, n)])

    def record_steps(self, times, n):
        if self.batches is None:
            return super().record_steps(times, n)
        t0, K0, eta, _ = self._pieces(n)
        j = np.searchsorted(t0, np.asarray(times) * (1 + 1e-12), side="right") - 1
        return (K0[j] + np.rint((np.asarray(times) - t0[j]) / eta[j])).astype(np.int64)

    def time_of_step(self, K, n):
        if self.batches is None:
            return super().time_of_step(K, n)
        t0, K0, eta, _ = self._pieces(n)
        j = self._piece(K, n)
        return float(t0[j] + (K - K0[j]) * eta[j])

    def n_steps(self, times, n):
        return super().n_steps(times, n) if self.batches is None else int(self.record_steps(times[-1:], n)[0])

    def _steps_to_jump(self, K, n):
        if self.batches is None:
            return super()._steps_to_jump(K, n)
        t0, K0, eta, _ = self._pieces(n)
        jumps = [k for k in K0 if k > K]
        if self.lr is not None:
            jumps += [int(self.record_steps(np.array([t]), n)[0]) for t in self.lr.times]
        later = [k for k in jumps if k > K]
        return max(1, min(later) - K) if later else math.inf

    def _batches(self, rng, inst, model):
        n = inst.n

        def take(ns, K=0):
            kappa = self.batch if self.batches is None else int(self._pieces(n)[3][self._piece(K, n)])
            idx = uniform_batches(rng, n, kappa, ns).astype(np.int64).ravel()
            return inst.X, inst.y, idx, np.arange(ns + 1, dtype=np.int64) * kappa

        return take


@dataclass(frozen=True)
class Reshuffling(SGDSteps):
    """Random reshuffling: a fresh permutation every epoch, cut into consecutive batches of ``batch``."""

    name: str = field(default="reshuffle", kw_only=True)

    def record_steps(self, times, n):
        return reshuffle_record_steps(times, n, self.batch, self.gamma)

    def time_of_step(self, K, n):
        e, j = divmod(K, -(-n // self.batch))
        return self.gamma * (e * n + min(j * self.batch, n)) / n

    def n_steps(self, times, n):
        return int(self.record_steps(times[-1:], n)[0])

    def _batches(self, rng, inst, model):
        stream = ReshuffleStream(rng, inst.n, self.batch)

        def take(ns, K=0):
            idx, ptr = stream.take(ns)
            return inst.X, inst.y, idx, ptr

        return take


@dataclass(frozen=True)
class OnlineSGD(SGDSteps):
    """One-pass SGD: ``batch`` fresh samples ``(x, y)`` per step (no training set; batch > n allowed)."""

    name: str = field(default="online", kw_only=True)
    with_data: ClassVar[bool] = False

    def check(self, n):
        pass

    def _batches(self, rng, inst, model):
        d, kappa = inst.d, self.batch

        def take(ns, K=0):
            nsamp = ns * kappa
            Xc = rng.standard_normal((nsamp, d))
            Xc *= 1.0 / math.sqrt(d)
            eps = rng.standard_normal(nsamp)
            yc = np.asarray(model.label(Xc @ inst.theta_star, eps), dtype=np.float64)
            return Xc, yc, np.arange(nsamp, dtype=np.int64), np.arange(ns + 1, dtype=np.int64) * kappa

        return take
