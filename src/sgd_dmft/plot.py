"""Figures: learning curves and overlaps, simulations (mean +- 2 stderr over seeds) vs theory; sweeps.

:func:`curves_figure` / :func:`plot_curves`: one panel per quantity, lettered (a), (b), ...: train
and test loss, the 0-1 test error when a dataset carries ``test_error`` (the classifiers' theory and
simulations do, a probability: models.zero_one_error; drawn only where present), every entry ``M_ab`` of the
teacher overlap and every ``Q_ab`` (``a <= b``) of the self-overlap. Theory: a line with a filled
+-2 s.e. band; simulation: open markers with +-2 s.e. bars (and thin per-seed lines). One legend for
the figure; colour tells the entries of M and Q apart, each labelled at its right end. For SGD-type
algorithms (``sgd``, ``sme``, ``reshuffle``: one epoch = ``gamma`` units of ``t``) the top axis
is in epochs, or ``x="epochs"`` plots against epochs.

:func:`sweep_figure` / :func:`plot_sweep`: a sweep directory's curves, one per grid point, coloured
by the first swept key; the final value vs that key; and, with simulations, the theory-vs-simulation
``max_t |z|`` per point. :func:`sweep_summary`: the same numbers as text (``sgd-dmft show``).

The figure of one run lives in :mod:`sgd_dmft.curve_plot`, the sweep figures in :mod:`sgd_dmft.sweep_plot`;
both are re-exported here (the home of every name before).
"""

from __future__ import annotations

from .curve_plot import (  # noqa: F401  (the figure of one run; its home was here)
    EPOCH_ALGORITHMS, PANELS, TIME_LABEL, curves_figure, describe, epoch_length, plot_curves,
)
from .sweep_plot import plot_sweep, sweep_figure, sweep_finals, sweep_summary  # noqa: F401  (sweeps)

__all__ = ["curves_figure", "plot_curves", "describe", "epoch_length", "sweep_figure", "plot_sweep",
           "sweep_finals", "sweep_summary", "EPOCH_ALGORITHMS", "PANELS", "TIME_LABEL"]
