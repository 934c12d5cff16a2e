"""Figures: learning curves and overlaps, simulations (mean +- 2 stderr over seeds) vs theory."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import matplotlib

if not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")  # headless by default; a backend already chosen (a notebook's inline one) is kept
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from .curves import mean_stderr_da  # noqa: E402
from .results import SEED_DIM, TIME_DIM, atomic_write, theory_mean_stderr  # noqa: E402,F401

TIME_LABEL = "time t (= steps x eta)"
PANELS = (
    ("train_loss", "train loss (mean over the training set)"),
    ("test_loss", "test loss (fresh data)"),
    ("M", "overlap M_aa = theta_a . theta*_a / d"),
    ("Q", "self-overlap Q_aa = |theta_a|^2 / d"),
)
_SIM_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
_TH_COLORS = ("tab:red", "tab:orange", "black", "tab:gray", "tab:cyan", "gold")


def _attr(ds_list, *names) -> Any:
    for ds in ds_list:
        if ds is None:
            continue
        for n in names:
            if n in ds.attrs:
                return ds.attrs[n]
    return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def describe(sim: xr.Dataset | None, theory: xr.Dataset | None) -> str:
    """One-line description: algorithm, gamma, delta, d, seeds, paths (whatever is known)."""
    both = [sim, theory]
    parts = []
    for label, names in (
        ("model", ("problem.model", "model")),
        ("algorithm", ("dynamics.algorithm", "algorithm")),
        ("gamma", ("dynamics.gamma", "gamma")),
        ("delta", ("problem.delta", "delta")),
        ("ridge", ("problem.ridge", "ridge")),
    ):
        v = _attr(both, *names)
        if v is not None:
            parts.append(f"{label}={_fmt(v)}")
    if sim is not None:
        d = _attr([sim], "simulation.d", "d")
        if d is not None:
            parts.append(f"d={_fmt(d)}")
        seeds = sim.sizes.get(SEED_DIM, 1)
        parts.append(f"seeds={seeds}")
        b = _attr([sim], "simulation.batch", "batch")
        if b is not None:
            parts.append(f"batch={_fmt(b)}")
    if theory is not None:
        p = _attr([theory], "solver.paths", "paths")
        r = _attr([theory], "solver.replicas", "replicas")
        if p is not None:
            parts.append(f"paths={_fmt(p)}" + (f" ({_fmt(r)} replicas)" if r is not None else ""))
    return ", ".join(parts)


def _components(da: xr.DataArray) -> list[tuple[str, xr.DataArray]]:
    """Scalar-per-time curves of a variable: itself, or the diagonal entries of a matrix variable."""
    extra = [d for d in da.dims if d not in (TIME_DIM, SEED_DIM)]
    if not extra:
        return [("", da)]
    if len(extra) == 2:
        n = min(da.sizes[extra[0]], da.sizes[extra[1]])
        return [(f"[{a + 1}{a + 1}]" if n > 1 else "", da.isel({extra[0]: a, extra[1]: a})) for a in range(n)]
    out = []
    for idx in np.ndindex(*[da.sizes[d] for d in extra]):
        out.append(("[" + ",".join(str(i + 1) for i in idx) + "]", da.isel(dict(zip(extra, idx)))))
    return out


def _plot_sim(ax, var_da: xr.DataArray, per_seed: bool) -> None:
    """Simulation curves of one variable: mean over seeds +- 2 s.e. (and thin per-seed lines)."""
    for c, (suffix, da) in enumerate(_components(var_da)):
        col = _SIM_COLORS[c % len(_SIM_COLORS)]
        t = da[TIME_DIM].values
        m, se = mean_stderr_da(da, SEED_DIM)
        if per_seed and SEED_DIM in da.dims and da.sizes[SEED_DIM] > 1:
            for s in range(da.sizes[SEED_DIM]):
                ax.plot(t, da.isel({SEED_DIM: s}).values, color=col, lw=0.4, alpha=0.25)
        ax.fill_between(t, (m - 2 * se).values, (m + 2 * se).values, color=col, alpha=0.25, lw=0)
        ax.plot(t, m.values, color=col, lw=1.4, label=f"simulation{suffix} (mean ± 2 s.e.)")


def _plot_theory(ax, theory: xr.Dataset, var: str) -> None:
    """Theory curves of one variable, with a +-2 s.e. band from ``<var>_stderr`` when present."""
    comps = _components(theory[var])
    se_comps = (_components(theory[f"{var}_stderr"]) if f"{var}_stderr" in theory
                else [(s, None) for s, _ in comps])
    for c, ((suffix, da), (_, se)) in enumerate(zip(comps, se_comps)):
        col = _TH_COLORS[c % len(_TH_COLORS)]
        t = da[TIME_DIM].values
        if SEED_DIM in da.dims:
            m, se = mean_stderr_da(da, SEED_DIM)
        else:
            m = da
        if se is not None:
            ax.fill_between(t, (m - 2 * se).values, (m + 2 * se).values, color=col, alpha=0.2, lw=0)
        ax.plot(t, m.values, color=col, lw=1.6, ls="--",
                label=f"DMFT theory{suffix}" + (" (± 2 s.e.)" if se is not None else ""))


def plot_curves(sim: xr.Dataset | None, theory: xr.Dataset | None, path: str | Path, *,
                per_seed: bool = True, title: str | None = None) -> Path:
    """Four panels (train loss, test loss, diag M, diag Q) vs time; PNG at dpi 150, written atomically.

    On a graded grid (attr ``grid_growth > 0``) the time axis is logarithmic.

    Simulations: mean over ``seed`` with a +-2 standard-error band (and thin per-seed lines if
    ``per_seed``). Theory: a line with a +-2 stderr band from ``<var>_stderr`` when present.
    """
    if sim is None and theory is None:
        raise ValueError("plot_curves needs a simulation or a theory dataset")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, constrained_layout=True)
    for ax, (var, ylabel) in zip(axes.ravel(), PANELS):
        present = False
        if sim is not None and var in sim:
            present = True
            _plot_sim(ax, sim[var], per_seed)
        if theory is not None and var in theory:
            present = True
            _plot_theory(ax, theory, var)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if present:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, f"no '{var}'", ha="center", va="center", transform=ax.transAxes, color="gray")
    graded = any(ds is not None and float(ds.attrs.get("grid_growth", 0.0) or 0.0) > 0 for ds in (sim, theory))
    for ax in axes[-1]:
        ax.set_xlabel(TIME_LABEL + (", log scale (graded grid)" if graded else ""))
    if graded:  # a graded grid spans decades of t: show them (t = 0 drops off a log axis)
        t_all = np.concatenate([ds[TIME_DIM].values for ds in (sim, theory) if ds is not None])
        pos = t_all[t_all > 0]
        if len(pos):
            axes[0, 0].set_xscale("log")
            axes[0, 0].set_xlim(pos.min(), pos.max())
    fig.suptitle(title if title is not None else describe(sim, theory), fontsize=11)
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_curves", "describe", "theory_mean_stderr"]
