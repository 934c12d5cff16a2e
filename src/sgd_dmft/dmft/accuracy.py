"""Accuracy on request: add replicas until the standard error reaches ``rtol`` or the time is spent.

The target is the relative standard error of ``train_loss`` and ``test_loss``, worst over the
recorded times ``t > 0``: ``max_t se(t) / |value(t)|``. Replicas come in batches; the next batch is
sized from the error reached so far (the error falls as ``1 / sqrt(replicas)``), with 10 % margin,
and cut to what the remaining time allows at the measured time per replica. Without a time limit
the batches depend only on the numbers, so a seeded run is reproducible; with ``max_time_s`` they
depend on the machine's speed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..curves import mean_stderr
from ..errors import ConfigError


@dataclass
class Target:
    """``rtol`` (None: no target) and a wall-clock ``deadline`` (``time.perf_counter()`` units, or None)."""

    rtol: float | None = None
    deadline: float | None = None

    def __post_init__(self):
        if self.rtol is not None and not (math.isfinite(self.rtol) and self.rtol > 0):
            raise ConfigError(f"rtol={self.rtol!r} is not allowed: must be a finite number > 0", key="rtol")

    @classmethod
    def make(cls, rtol: float | None, max_time_s: float | None) -> "Target":
        if max_time_s is not None and not (math.isfinite(max_time_s) and max_time_s > 0):
            raise ConfigError(f"max_time_s={max_time_s!r} is not allowed: must be a finite number of seconds > 0",
                              key="max_time_s")
        return cls(rtol, None if max_time_s is None else time.perf_counter() + float(max_time_s))

    def share(self, fraction: float) -> "Target":
        """A target for one stage getting ``fraction`` of the remaining time, with the same rtol."""
        if self.deadline is None:
            return Target(self.rtol, None)
        left = max(0.0, self.deadline - time.perf_counter())
        return Target(self.rtol, time.perf_counter() + fraction * left)

    def scaled(self, factor: float, fraction: float = 1.0) -> "Target":
        """The same deadline share with ``rtol * factor``."""
        t = self.share(fraction)
        return Target(None if t.rtol is None else t.rtol * factor, t.deadline)


def relative_error(train: np.ndarray, test: np.ndarray) -> float:
    """Worst relative standard error over ``t > 0`` of two per-replica curve sets ``(R, T+1)``."""
    worst = 0.0
    for a in (train, test):
        mean, se = mean_stderr(a)
        rel = np.abs(se[1:]) / np.maximum(np.abs(mean[1:]), 1e-300)
        worst = max(worst, float(np.max(rel)) if rel.size else 0.0)
    return worst


def extra_replicas(target: Target, R: int, achieved: float, elapsed_s: float) -> int:
    """How many replicas to add (0: stop) after ``R`` replicas reached ``achieved`` in ``elapsed_s``."""
    if target.rtol is None or achieved <= target.rtol or R < 2:
        return 0
    want = int(math.ceil(R * (achieved / target.rtol) ** 2 * 1.1)) - R
    if target.deadline is not None:
        per = elapsed_s / max(R, 1)
        left = target.deadline - time.perf_counter()
        want = min(want, int(left // max(per, 1e-9)))
    return max(0, want)
