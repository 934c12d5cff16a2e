"""The figure of one run: learning curves and overlaps, simulations (mean +- 2 stderr over seeds) vs theory.

:func:`curves_figure` / :func:`plot_curves`: one panel per quantity, lettered (a), (b), ...: train
and test loss, the 0-1 test error when a dataset carries ``test_error`` (the classifiers' theory and
simulations do, a probability: models.zero_one_error; drawn only where present), every entry ``M_ab`` of the
teacher overlap and every ``Q_ab`` (``a <= b``) of the self-overlap. Theory: a line with a filled
+-2 s.e. band; simulation: open markers with +-2 s.e. bars (and thin per-seed lines). One legend for
the figure; colour tells the entries of M and Q apart, each labelled at its right end. For SGD-type
algorithms (``sgd``, ``sme``, ``reshuffle``: one epoch = ``gamma`` units of ``t``) the top axis
is in epochs, or ``x="epochs"`` plots against epochs.

Re-exported by :mod:`sgd_dmft.plot` (the names' earlier home).
"""

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
from matplotlib.legend_handler import HandlerTuple  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .algorithms import REGISTRY  # noqa: E402
from .curves import mean_stderr_da  # noqa: E402
from .results import SEED_DIM, TIME_DIM, atomic_write, theory_mean_stderr  # noqa: E402,F401

TIME_LABEL = r"time $t$ (= steps $\times\,\eta$)"
# one epoch = gamma units of t: the built-in algorithms that say so (epoch_length asks the registry, algorithms.py)
EPOCH_ALGORITHMS = tuple(name for name, s in REGISTRY.items() if s.epoch)
# (variable, panel title, y label): panels in this order, those present in a dataset
PANELS = (
    ("train_loss", "training loss", r"$\mathcal{L}_{\mathrm{train}}(t)$"),
    ("test_loss", "test loss", r"$\mathcal{L}_{\mathrm{test}}(t)$"),
    ("test_error", "0-1 test error", r"$P(\hat{y} \neq y)$"),
    ("M", "teacher overlap", r"$M_{ab} = \theta_a\cdot\theta^*_b/d$"),
    ("Q", "self-overlap", r"$Q_{ab} = \theta_a\cdot\theta_b/d$"),
)
_SYMBOL = {"M": "M", "Q": "Q"}
COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray")
_N_MARKERS = 16  # simulation markers per curve


def _attr(ds_list, *names) -> Any:
    for ds in ds_list:
        if ds is None:
            continue
        for n in names:
            if n in ds.attrs:
                return ds.attrs[n]
    return None


def fmt_value(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
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
            parts.append(f"{label}={fmt_value(v)}")
    if sim is not None:
        d = _attr([sim], "simulation.d", "d")
        if d is not None:
            parts.append(f"d={fmt_value(d)}")
        seeds = sim.sizes.get(SEED_DIM, 1)
        parts.append(f"seeds={seeds}")
        b = _attr([sim], "simulation.batch", "batch")
        if b is not None:
            parts.append(f"batch={fmt_value(b)}")
    if theory is not None:
        p = _attr([theory], "solver.paths", "paths")
        r = _attr([theory], "solver.replicas", "replicas")
        if p is not None:
            parts.append(f"paths={fmt_value(p)}" + (f" ({fmt_value(r)} replicas)" if r is not None else ""))
    return ", ".join(parts)


def epoch_length(*datasets: xr.Dataset | None) -> float | None:
    """Units of ``t`` per epoch (``gamma``) for SGD-type algorithms with a constant step; None otherwise
    (full-batch GD / GF, one-pass SGD, persistent selection, a learning-rate schedule, unknown)."""
    alg = _attr(datasets, "dynamics.algorithm", "algorithm")
    gamma = _attr(datasets, "dynamics.gamma", "gamma")
    sched = _attr(datasets, "dynamics.lr_factors", "lr_factors")
    cosine = _attr(datasets, "dynamics.lr_schedule") == "cosine"
    scheduled = cosine or (sched is not None and np.size(sched) > 0 and str(sched) not in ("", "[]"))
    spec = REGISTRY.get(str(alg))
    if spec is None or not spec.epoch or gamma is None or scheduled:
        return None
    g = float(gamma)
    return g if np.isfinite(g) and g > 0 else None


def _entries(var: str, da: xr.DataArray) -> list[tuple[str, dict]]:
    """``(label, isel)`` of each scalar curve of a variable: itself, or every entry of a matrix
    (``M_ab`` all, ``Q_ab`` with ``a <= b``: Q is symmetric); label '' for a 1 x 1 matrix."""
    extra = [d for d in da.dims if d not in (TIME_DIM, SEED_DIM)]
    if not extra:
        return [("", {})]
    sizes = [da.sizes[d] for d in extra]
    out = []
    for idx in np.ndindex(*sizes):
        if var == "Q" and len(idx) == 2 and idx[0] > idx[1]:
            continue
        sub = "".join(str(i + 1) for i in idx) if len(idx) == 2 else ",".join(str(i + 1) for i in idx)
        out.append((sub if max(sizes) > 1 else "", dict(zip(extra, idx))))
    return out


def marker_index(t: np.ndarray) -> np.ndarray:
    return np.unique(np.linspace(0, len(t) - 1, min(_N_MARKERS, len(t))).round().astype(int))


def _draw_sim(ax, da: xr.DataArray, col: str, gid: str, per_seed: bool, alone: bool, xs: float) -> float:
    """Per-seed lines, the mean as open markers with +-2 s.e. bars (and a line when no theory is drawn)."""
    t = da[TIME_DIM].values / xs
    m, se = mean_stderr_da(da, SEED_DIM)
    m, se = np.asarray(m.values, dtype=float), np.asarray(se.values, dtype=float)
    if per_seed and SEED_DIM in da.dims and da.sizes[SEED_DIM] > 1:
        ax.plot(t, da.transpose(TIME_DIM, SEED_DIM).values, color="0.55", lw=0.4, alpha=0.3, zorder=1)
    line, = ax.plot(t, m, color=col, lw=1.0 if alone else 0.0, alpha=0.8, zorder=2)
    line.set_gid(gid)
    i = marker_index(t)
    ax.errorbar(t[i], m[i], yerr=2 * se[i], fmt="o", ms=3.5, mfc="white", mec=col, ecolor=col, elinewidth=0.9,
                capsize=1.5, mew=1.0, zorder=4)
    return float(m[-1])


def _draw_theory(ax, m: xr.DataArray, se: xr.DataArray, col: str, gid: str, xs: float) -> float:
    """The theory line over a filled +-2 s.e. band (alpha 0.3, drawn even where narrow)."""
    t = m[TIME_DIM].values / xs
    mv, sv = np.asarray(m.values, dtype=float), np.asarray(se.values, dtype=float)
    ax.fill_between(t, mv - 2 * sv, mv + 2 * sv, color=col, alpha=0.3, lw=0.6, zorder=3)
    line, = ax.plot(t, mv, color=col, lw=1.6, zorder=3)
    line.set_gid(gid)
    return float(mv[-1])


def _panel(ax, var: str, sim, theory, per_seed: bool, xs: float) -> bool:
    """Draw one variable (all its entries); False when neither dataset has it."""
    src = theory if theory is not None and var in theory else sim if sim is not None and var in sim else None
    if src is None:
        return False
    entries = _entries(var, src[var])
    tm, tse = theory_mean_stderr(theory, var) if theory is not None and var in theory else (None, None)
    labels: list[tuple[float, str, str]] = []
    for c, (sub, sel) in enumerate(entries):
        col = COLORS[c % len(COLORS)]
        name = f"{var}_{sub}" if sub else var
        ends = []
        if sim is not None and var in sim:
            ends.append(_draw_sim(ax, sim[var].isel(sel), col, f"{name}:sim", per_seed, tm is None, xs))
        if tm is not None:
            ends.append(_draw_theory(ax, tm.isel(sel), tse.isel(sel), col, f"{name}:theory", xs))
        if sub:
            labels.append((ends[-1], f"${_SYMBOL.get(var, var)}_{{{sub}}}$", col))
    _label_ends(ax, float(src[TIME_DIM].values[-1]) / xs, labels)
    return True


def _label_ends(ax, x_end: float, labels: list[tuple[float, str, str]]) -> None:
    """Each entry's name at the right end of its curve, pushed apart to at least 6% of the y range."""
    if not labels:
        return
    lo, hi = ax.get_ylim()
    gap = 0.06 * (hi - lo)
    labels = sorted(labels)
    ys = [labels[0][0]]
    for y, _, _ in labels[1:]:
        ys.append(max(y, ys[-1] + gap))
    for y_text, (_, text, col) in zip(ys, labels):
        ax.annotate(text, (x_end, y_text), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9,
                    color=col, annotation_clip=False)
    ax.set_ylim(lo, max(hi, ys[-1] + 0.5 * gap))


def _legend(fig, sim, theory, per_seed: bool) -> None:
    """One legend for the figure: the style of a simulation and of a theory curve."""
    handles, labels = [], []
    if sim is not None:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", ms=4))
        n, d = sim.sizes.get(SEED_DIM, 1), _attr([sim], "simulation.d", "d")
        labels.append(f"simulation: mean $\\pm$ 2 s.e. over {n} seed{'s' * (n != 1)}"
                      + (f", $d$ = {fmt_value(d)}" if d is not None else "") + (" (thin grey: each seed)" if per_seed and n > 1 else ""))
    if theory is not None:
        handles.append((Patch(color="0.3", alpha=0.3, lw=0), Line2D([], [], color="0.3", lw=1.6)))
        labels.append(r"DMFT theory $\pm$ 2 s.e. (band)")
    fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False,
               handler_map={tuple: HandlerTuple(ndivide=1)})


def _time_axes(fig, axes, sim, theory, x: str, gamma: float | None, ncols: int) -> None:
    """Log time on a graded grid; the bottom labels in t (or epochs); a top epochs axis on the first row."""
    graded = any(ds is not None and float(ds.attrs.get("grid_growth", 0.0) or 0.0) > 0 for ds in (sim, theory))
    xs = gamma if x == "epochs" else 1.0
    label = (rf"epochs (one epoch = $\gamma$ = {gamma:g} units of $t$)" if x == "epochs" else TIME_LABEL)
    if graded:  # a graded grid spans decades of t: show them (t = 0 drops off a log axis)
        t_all = np.concatenate([ds[TIME_DIM].values for ds in (sim, theory) if ds is not None]) / xs
        pos = t_all[t_all > 0]
        if len(pos):
            axes[0].set_xscale("log")
            axes[0].set_xlim(pos.min(), pos.max())
            label += ", log scale (graded grid)"
    for i, ax in enumerate(axes):
        if i + ncols >= len(axes):
            ax.set_xlabel(label)
        if gamma is not None and x != "epochs" and i < ncols:
            sec = ax.secondary_xaxis("top", functions=(lambda t, g=gamma: t / g, lambda e, g=gamma: e * g))
            sec.set_xlabel("epochs", fontsize=9)
            sec.tick_params(labelsize=8)


def curves_figure(sim: xr.Dataset | None, theory: xr.Dataset | None, *, per_seed: bool = True,
                  title: str | None = None, x: str = "t") -> plt.Figure:
    """The figure of :func:`plot_curves` (a matplotlib Figure; the caller closes it)."""
    if sim is None and theory is None:
        raise ValueError("plot_curves needs a simulation or a theory dataset")
    if x not in ("t", "epochs"):
        raise ValueError(f"x = {x!r}; allowed: 't' or 'epochs'")
    gamma = epoch_length(sim, theory)
    if x == "epochs" and gamma is None:
        raise ValueError("x = 'epochs' needs an SGD-type algorithm (sgd, sme, reshuffle) with a constant gamma "
                         "in the dataset attrs; plot against t instead")
    panels = [p for p in PANELS if p[0] in ("train_loss", "test_loss", "M", "Q")
              or any(ds is not None and p[0] in ds for ds in (sim, theory))]
    ncols = 2 if len(panels) <= 4 else 3
    nrows = -(-len(panels) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows + 0.6), sharex=True,
                             layout="constrained", squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes = axes[:len(panels)]
    xs = gamma if x == "epochs" else 1.0
    for i, (ax, (var, name, ylabel)) in enumerate(zip(axes, panels)):
        if not _panel(ax, var, sim, theory, per_seed, xs):
            ax.text(0.5, 0.5, f"no '{var}'", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_title(f"({chr(ord('a') + i)}) {name}", loc="left", fontsize=11)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _time_axes(fig, axes, sim, theory, x, gamma, ncols)
    _legend(fig, sim, theory, per_seed)
    fig.suptitle(title if title is not None else describe(sim, theory), fontsize=10)
    return fig


def plot_curves(sim: xr.Dataset | None, theory: xr.Dataset | None, path: str | Path, *,
                per_seed: bool = True, title: str | None = None, x: str = "t") -> Path:
    """Panels (a), (b), ... (train loss, test loss, 0-1 test error if recorded, every M_ab, every Q_ab)
    vs time; PNG at dpi 150, written atomically. ``x = "epochs"`` plots against epochs (SGD-type
    algorithms); otherwise the top axis shows epochs where one is defined (:func:`epoch_length`).

    On a graded grid (attr ``grid_growth > 0``) the time axis is logarithmic.

    Simulations: mean over ``seed`` as markers with +-2 standard-error bars (and thin per-seed lines if
    ``per_seed``). Theory: a line over a filled +-2 stderr band from ``<var>_stderr`` when present.
    """
    fig = curves_figure(sim, theory, per_seed=per_seed, title=title, x=x)
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    finally:
        plt.close(fig)
    return path
