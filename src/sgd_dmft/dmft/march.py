"""One replica of the forward march: the sample process fills row m, the coordinate process steps.

The march is causal: kernels at step m need ``C_theta`` up to m only, so everything is solved
forward in time, with no fixed-point iteration (docs/theory.md section 3).
"""

from __future__ import annotations

import numpy as np

from .coordinate import CoordinateProcess, Kernels
from .divergence import diverged
from .processes import SampleProcess

Q_MAX = 1e12  # divergence threshold on trace Q


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
    for m in range(T + 1):
        sample.row(m, last=m == T)
        if m == T:
            break
        q = coord.step(m)
        if not np.isfinite(q) or q > Q_MAX:
            raise diverged(law, schedule.times[m + 1], f"trace Q = {q:.3g}")
        if pbar is not None:
            pbar.update(1)
    return coord.K, sample.snapshots, sample.clip
