"""The simulated-algorithm interface: :class:`Algorithm` (one method, ``run``), the batch-source type and
the number check the algorithms share. The algorithms: :mod:`.law_recursion` (the law's own recursion),
:mod:`.sgd_steps` (mini-batch SGD, reshuffling, online SGD); :mod:`.algorithms` re-exports them all.
"""

from __future__ import annotations

import abc
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np

from ..errors import ConfigError
from ..grid import TimeGrid
from .recorder import Recorder

if TYPE_CHECKING:
    from ..models import Problem
    from .instance import Instance

__all__ = ["Algorithm", "Batches", "is_real"]

Batches = Callable[[int], tuple]  # n_steps -> (X, y, idx, ptr): the rows each of the next steps uses


@dataclass(frozen=True)
class Algorithm(abc.ABC):
    """A simulated algorithm. ``name`` labels the run (dataset attrs, divergence messages)."""

    name: str = field(default="", kw_only=True)
    with_data: ClassVar[bool] = True  # False: fresh samples at every step, no training set

    @abc.abstractmethod
    def run(self, problem: Problem, inst: Instance, times: np.ndarray, rng: np.random.Generator,
            pbar=None) -> tuple[Recorder, np.ndarray]:
        """Run one seed from ``inst.theta0``, recording at the grid ``times`` ``(R,)``.

        ``rng`` drives the algorithm (batches, multipliers, fresh samples); ``pbar`` (tqdm or None) is
        advanced by the number of steps taken. Returns the recorder and the final ``theta`` ``(d, k)``.
        Raises :class:`~sgd_dmft.errors.SimulationDiverged` on blow-up.
        """

    def record_grid(self, grid: TimeGrid | None) -> TimeGrid:
        """The grid to record on, given ``simulate``'s ``grid=`` argument."""
        if not isinstance(grid, TimeGrid):
            raise ConfigError(f"grid={grid!r} is not allowed: {type(self).__name__} needs a record grid "
                              f"(grid=sgd_dmft.grid.TimeGrid(dt))", key="grid")
        return grid

    def check(self, n: int) -> None:
        """Raise :class:`~sgd_dmft.errors.ConfigError` when the algorithm cannot run on n samples."""

    def n_steps(self, times: np.ndarray, n: int) -> int:
        """Steps one seed takes up to ``times[-1]`` (the progress bar's unit)."""
        return len(times) - 1

    def attrs(self, n: int) -> dict:
        """Dataset attributes of the run: ``gamma``, ``batch``, ``batching``, ``eta``, ``law``, ..."""
        return {}


def is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)
