"""Figures: learning curves and overlaps, simulations (mean +- 2 stderr over seeds) vs theory; sweeps.

:func:`curves_figure` / :func:`plot_curves`: the figure of one run (:mod:`sgd_dmft.curve_plot`: one lettered
panel per quantity, theory bands, simulation markers, epochs axis). :func:`sweep_figure` / :func:`plot_sweep`
/ :func:`sweep_summary`: a sweep directory's curves, finals and z per point (:mod:`sgd_dmft.sweep_plot`).
Both are re-exported here (the home of every name before).
"""

from __future__ import annotations

from .curve_plot import (  # noqa: F401  (the figure of one run; its home was here)
    EPOCH_ALGORITHMS, PANELS, TIME_LABEL, curves_figure, describe, epoch_length, plot_curves,
)
from .sweep_plot import plot_sweep, sweep_figure, sweep_finals, sweep_summary  # noqa: F401  (sweeps)

__all__ = ["curves_figure", "plot_curves", "describe", "epoch_length", "sweep_figure", "plot_sweep",
           "sweep_finals", "sweep_summary", "EPOCH_ALGORITHMS", "PANELS", "TIME_LABEL"]
