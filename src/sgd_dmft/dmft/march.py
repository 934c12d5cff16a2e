"""One replica of the forward march: the sample process fills row m, the coordinate process steps.

The march is causal: kernels at step m need ``C_theta`` up to m only, so everything is solved
forward in time, with no fixed-point iteration (docs/theory.md section 3).
"""

from __future__ import annotations

import numpy as np

from .coordinate import CoordinateProcess, Kernels
from .divergence import Q_MAX, GrowthDetector, diverged  # noqa: F401  (Q_MAX: its name here stays)
from .processes import SampleProcess


def march(problem, law, schedule, process: SampleProcess, paths: int, rng: np.random.Generator,
          snap_idx: np.ndarray, pbar=None, inputs=None) -> tuple[Kernels, np.ndarray, float]:
    """Run one replica over ``m = 0 .. T``; returns ``(kernels, pre-activation snapshots, clip)``.

    ``process`` is resolved (:meth:`SampleProcess.resolve`); ``paths`` is this replica's path count;
    ``inputs``: the Monte Carlo replica's random inputs (``processes.Inputs``) when given, else drawn
    from ``rng`` (coupled Richardson levels pass them).
    """
    C0, M0 = problem.init_moments()
    coord = CoordinateProcess(problem.k, problem.kstar, problem.ridge, schedule, C0, M0)
    sample = process.start(problem, schedule, coord, paths, rng, snap_idx, law,
                           **({} if inputs is None else {"inputs": inputs}))
    T = schedule.T
    growth = GrowthDetector()
    growth.update(float(np.trace(C0)))
    for m in range(T + 1):
        sample.row(m, last=m == T)
        if m == T:
            break
        why = growth.update(coord.step(m))
        if why is not None:
            raise diverged(law, schedule.times[m + 1], why)
        if pbar is not None:
            pbar.update(1)
    return coord.K, sample.snapshots, sample.clip
