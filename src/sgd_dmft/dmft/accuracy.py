"""Accuracy on request: add replicas until the standard error reaches ``rtol`` or the time is spent.

The target is the relative standard error of ``train_loss`` and ``test_loss``, worst over the
recorded times ``t > 0``: ``max_t se(t) / |value(t)|``. Replicas come in batches; the next batch is
sized from the error reached so far (the error falls as ``1 / sqrt(replicas)``), with 10 % margin,
and cut to what the remaining time allows at the measured time per replica. Without a time limit
the batches depend only on the numbers, so a seeded run is reproducible; with ``max_time_s`` they
depend on the machine's speed.

Every batch is bounded, so that no target allocates past what a run may hold: the total replicas stay
within ``MAX_REPLICAS``, their kept curves (Q, M, losses, snapshots: what a replica leaves in the
reduction) within ``KEPT_SHARE`` of the memory budget ``max_memory_gb``, and, without ``max_time_s``,
the projected time of the batch within ``DEFAULT_MAX_TIME_S`` (the cost limit of a run, about an hour).
A target past these bounds is *unreachable*: without ``max_time_s`` no batch is added at all (nothing
is spent on a hopeless target), with it the batches stop at the bound; either way a RuntimeWarning and
the result's attribute ``rtol_note`` say which bound and how many replicas the target would need
(``rtol = 1e-9`` asked for ~1e14 replicas and grew the memory by 2.6 GB in a minute before).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..curves import mean_stderr
from ..errors import ConfigError


MAX_REPLICAS = 4096  # total replicas an accuracy target may reach
KEPT_SHARE = 0.5  # share of max_memory_gb the kept per-replica curves may take
DEFAULT_MAX_TIME_S = 3600.0  # without max_time_s: a batch projected past this (budget.COST_LIMIT) is not run


@dataclass
class Target:
    """``rtol`` (None: no target), a wall-clock ``deadline`` (``time.perf_counter()`` units, or None), the
    memory budget ``memory_bytes`` (None: none) and ``notes`` (the bounds hit; shared by every share)."""

    rtol: float | None = None
    deadline: float | None = None
    memory_bytes: float | None = None
    notes: list = field(default_factory=list)

    def __post_init__(self):
        if self.rtol is not None and not (math.isfinite(self.rtol) and self.rtol > 0):
            raise ConfigError(f"rtol={self.rtol!r} is not allowed: must be a finite number > 0", key="rtol")

    @classmethod
    def make(cls, rtol: float | None, max_time_s: float | None, max_memory_gb: float | None = None) -> "Target":
        if max_time_s is not None and not (math.isfinite(max_time_s) and max_time_s > 0):
            raise ConfigError(f"max_time_s={max_time_s!r} is not allowed: must be a finite number of seconds > 0",
                              key="max_time_s")
        deadline = None if max_time_s is None else time.perf_counter() + float(max_time_s)
        return cls(rtol, deadline, None if max_memory_gb is None else float(max_memory_gb) * 2**30)

    def share(self, fraction: float) -> "Target":
        """A target for one stage getting ``fraction`` of the remaining time, with the same rtol."""
        if self.deadline is None:
            return Target(self.rtol, None, self.memory_bytes, self.notes)
        left = max(0.0, self.deadline - time.perf_counter())
        return Target(self.rtol, time.perf_counter() + fraction * left, self.memory_bytes, self.notes)

    def scaled(self, factor: float, fraction: float = 1.0) -> "Target":
        """The same deadline share with ``rtol * factor``."""
        t = self.share(fraction)
        return Target(None if t.rtol is None else t.rtol * factor, t.deadline, t.memory_bytes, t.notes)


def relative_error(train: np.ndarray, test: np.ndarray) -> float:
    """Worst relative standard error over ``t > 0`` of two per-replica curve sets ``(R, T+1)``."""
    worst = 0.0
    for a in (train, test):
        mean, se = mean_stderr(a)
        rel = np.abs(se[1:]) / np.maximum(np.abs(mean[1:]), 1e-300)
        worst = max(worst, float(np.max(rel)) if rel.size else 0.0)
    return worst


def _bound(target: Target, R: int, per_s: float, kept_bytes: float) -> tuple[float, str]:
    """The most replicas the target may reach, and the bound that sets it (module docstring)."""
    bounds = [(float(MAX_REPLICAS), f"the limit of {MAX_REPLICAS} replicas")]
    if target.memory_bytes is not None and kept_bytes > 0:
        bounds.append((math.floor(KEPT_SHARE * target.memory_bytes / kept_bytes),
                       f"{KEPT_SHARE:g} x max_memory_gb for their curves ({kept_bytes / 2**20:.3g} MiB each)"))
    if target.deadline is None:
        bounds.append((R + DEFAULT_MAX_TIME_S / max(per_s, 1e-9),
                       f"~{DEFAULT_MAX_TIME_S:g} s at {per_s:.3g} s per replica without max_time_s"))
    return min(bounds, key=lambda b: b[0])


def extra_replicas(target: Target, R: int, achieved: float, elapsed_s: float, kept_bytes: float = 0.0) -> int:
    """How many replicas to add (0: stop) after ``R`` replicas reached ``achieved`` in ``elapsed_s``;
    ``kept_bytes``: what one replica keeps (the memory bound). An unreachable target adds none without
    a deadline, or stops at its bound with one, and says so (``target.notes``, a RuntimeWarning)."""
    if target.rtol is None or not achieved > target.rtol or R < 2:
        return 0
    ratio = achieved / target.rtol
    need = R * 1.1 * min(ratio, 1e100) * min(ratio, 1e100)  # no OverflowError at rtol = 1e-300
    per = elapsed_s / max(R, 1)
    cap, why = _bound(target, R, per, kept_bytes)
    if need > cap:
        stop = target.deadline is None or cap <= R
        note = (f"rtol={target.rtol:.3g} is out of reach: about {need:.3g} replicas would be needed ({achieved:.3g} "
                f"reached with {R}), past {why}; {'stopped at' if stop else 'adding up to'} {min(R, int(cap)) if stop else int(cap)} "
                f"replicas (raise solver.paths per replica, lower the target, or set max_time_s)")
        if note not in target.notes:
            target.notes.append(note)
            warnings.warn(note, RuntimeWarning, stacklevel=4)
        if stop:
            return 0
        need = cap
    want = int(math.ceil(need)) - R
    if target.deadline is not None:
        left = target.deadline - time.perf_counter()
        want = min(want, int(left // max(per, 1e-9)))
    return max(0, want)
