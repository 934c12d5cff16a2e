"""Shared helpers for the figure scripts ``examples/fig_*.py`` (one script per claim of the paper).

Every script writes ``out/figures/<name>/<name>.png`` plus its data (netCDF, one file per theory or
simulation dataset) and a ``summary.json`` next to it, and nothing else: the tracked copies in
``docs/figures/<name>.png`` (shown by the README) are replaced only on request, ``--publish`` on the
command line or ``FIG_PUBLISH=1`` (``make figures PUBLISH=1``). ``FIG_OUT`` moves ``out/figures``.
Bands: theory = mean +- 2 s.e. over the DMFT's independent Monte Carlo replicas (zero for the exact
paths); simulations = mean +- 2 s.e. over seeds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from sgd_dmft.results import sim_mean_stderr, theory_mean_stderr, write_dataset, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("FIG_OUT", ROOT / "out" / "figures"))
DOCS = ROOT / "docs" / "figures"


def publish_requested(argv: list[str] | None = None) -> bool:
    """Whether the PNG goes to the tracked ``docs/figures/`` too: ``--publish`` or ``FIG_PUBLISH=1``."""
    return "--publish" in (sys.argv[1:] if argv is None else argv) or os.environ.get("FIG_PUBLISH", "") == "1"


class Figure:
    """Output folder, timer and saving for one figure script."""

    def __init__(self, name: str):
        self.name = name
        self.dir = OUT / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.summary: dict = {}

    def save(self, ds: xr.Dataset, label: str, **attrs) -> Path:
        """Write a dataset atomically to ``out/figures/<name>/<label>.nc``."""
        if "time2" in ds.dims:  # drop the two-time kernels: only the curves are needed
            ds = ds.drop_dims(["time2"], errors="ignore")
        return write_dataset(ds, self.dir / f"{label}.nc", attrs=attrs or None)

    def finish(self, fig) -> Path:
        """Save the figure and ``summary.json`` under ``out/figures/<name>/``; copy the PNG to
        ``docs/figures/`` only when publishing was requested."""
        png = self.dir / f"{self.name}.png"
        fig.savefig(png, dpi=110)
        plt.close(fig)
        if publish_requested():
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, DOCS / f"{self.name}.png")
            print(f"published {DOCS / (self.name + '.png')}", file=sys.stderr)
        self.summary["run_time_s"] = round(time.time() - self.t0, 1)
        write_json(self.summary, self.dir / "summary.json")
        print(json.dumps(self.summary, indent=1, default=float))
        print(f"wrote {png} ({self.summary['run_time_s']} s)", file=sys.stderr)
        return png


def scalar(da: xr.DataArray) -> xr.DataArray:
    """First component of a matrix-valued variable (M, Q), the variable itself otherwise."""
    extra = [d for d in da.dims if d not in ("time", "seed")]
    return da.isel({d: 0 for d in extra})


def theory_curve(ds: xr.Dataset, var: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, se = theory_mean_stderr(ds, var)
    return ds["time"].values, scalar(m).values, scalar(se).values


def sim_curve(ds: xr.Dataset, var: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, se = sim_mean_stderr(ds, var)
    return ds["time"].values, scalar(m).values, scalar(se).values


def band(ax, t, m, se, *, color, label, ls="-", lw=1.5, alpha=0.25, marker=None, x=None):
    """A curve with its +-2 s.e. band; ``x`` replaces ``t`` on the horizontal axis."""
    x = t if x is None else x
    ax.fill_between(x, m - 2 * se, m + 2 * se, color=color, alpha=alpha, lw=0)
    ax.plot(x, m, color=color, ls=ls, lw=lw, label=label, marker=marker, ms=3)


def plot_theory(ax, ds, var, *, color, label, ls="--", x=None, lw=1.6):
    t, m, se = theory_curve(ds, var)
    band(ax, t, m, se, color=color, label=label, ls=ls, lw=lw, alpha=0.2, x=x)


def plot_sim(ax, ds, var, *, color, label, ls="-", x=None, lw=1.2):
    t, m, se = sim_curve(ds, var)
    band(ax, t, m, se, color=color, label=label, ls=ls, lw=lw, alpha=0.3, x=x)


def z_gap(a: tuple, b: tuple) -> np.ndarray:
    """|a - b| / sqrt(se_a^2 + se_b^2) pointwise, for two (t, mean, se) curves on the same grid."""
    _, ma, sa = a
    _, mb, sb = b
    e = np.sqrt(sa**2 + sb**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, np.abs(ma - mb) / np.where(e > 0, e, 1.0), np.inf)


def on_grid(curve: tuple, times: np.ndarray) -> tuple:
    """Interpolate a (t, mean, se) curve onto ``times``."""
    t, m, se = curve
    return times, np.interp(times, t, m), np.interp(times, t, se)


def fit_rate(x, y) -> tuple[float, float]:
    """Least-squares slope and intercept of log y against log x."""
    A = np.vstack([np.log(x), np.ones(len(x))]).T
    (s, c), *_ = np.linalg.lstsq(A, np.log(y), rcond=None)
    return float(s), float(c)


__all__ = ["Figure", "scalar", "theory_curve", "sim_curve", "band", "plot_theory", "plot_sim", "z_gap",
           "on_grid", "fit_rate", "math"]
