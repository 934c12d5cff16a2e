"""Sweep figures: a sweep directory's curves, one per grid point, coloured by the first swept key; the final
value vs that key; and, with simulations, the theory-vs-simulation ``max_t |z|`` per point
(:func:`sweep_figure` / :func:`plot_sweep`). :func:`sweep_summary`: the same numbers as text (``sgd-dmft show``).

Re-exported by :mod:`sgd_dmft.plot` (the names' earlier home).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

from .curve_plot import (COLORS, PANELS, TIME_LABEL, curves_figure, epoch_length, fmt_value, marker_index,
                         plot_curves, plt)  # (plt: pyplot, imported after the headless backend is chosen)
from .curves import mean_stderr_da
from .results import SEED_DIM, TIME_DIM, atomic_write, theory_mean_stderr

def _sweep_dims(theory: xr.Dataset) -> tuple[list[str], list[str]]:
    """The swept dims and config keys of a sweep Dataset (ValueError when its attrs do not say them)."""
    try:
        dims, keys = json.loads(theory.attrs["sweep_dims"]), json.loads(theory.attrs["sweep_keys"])
        ok = (isinstance(dims, list) and isinstance(keys, list) and len(dims) == len(keys) >= 1
              and all(isinstance(d, str) and d in theory.dims for d in dims))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError("not a sweep dataset: attributes sweep_dims / sweep_keys missing or not its dimensions")
    return [str(d) for d in dims], [str(k) for k in keys]


def _last_finite(a: np.ndarray) -> np.ndarray:
    """Last finite value along the last axis (each point's own t_max when t_max is swept); NaN if none."""
    fin = np.isfinite(a)
    idx = np.where(fin.any(-1), a.shape[-1] - 1 - np.argmax(fin[..., ::-1], axis=-1), 0)
    return np.where(fin.any(-1), np.take_along_axis(a, idx[..., None], -1)[..., 0], np.nan)


def _sweep_mean_se(ds: xr.Dataset | None, var: str, dims: Sequence[str], is_sim: bool):
    """``(mean, s.e.)`` DataArrays on ``(*dims, time)`` (sim: over seeds); Nones when absent or not scalar."""
    if ds is None or var not in ds or set(ds[var].dims) - set(dims) - {TIME_DIM, SEED_DIM}:
        return None, None
    if is_sim:
        m, se = mean_stderr_da(ds[var], SEED_DIM)
    else:
        m = ds[var]
        se = ds[f"{var}_stderr"] if f"{var}_stderr" in ds else xr.zeros_like(m)
    return m.transpose(*dims, TIME_DIM), se.transpose(*dims, TIME_DIM)


def sweep_finals(theory: xr.Dataset, sim: xr.Dataset | None, var: str = "test_loss") -> dict[str, Any]:
    """Per grid point: final ``var`` of theory and simulation (mean, s.e.) and ``z`` = max over time of
    ``|theory - sim| / sqrt(se_theory^2 + se_sim^2)`` (NaN without simulations); arrays on the swept dims."""
    dims, _ = _sweep_dims(theory)
    out: dict[str, Any] = {"dims": dims}
    tm, tse = _sweep_mean_se(theory, var, dims, False)
    sm, sse = _sweep_mean_se(sim, var, dims, True)
    shape = tuple(theory.sizes[d] for d in dims)
    for key, (m, se) in (("theory", (tm, tse)), ("sim", (sm, sse))):
        out[key] = ((_last_finite(np.asarray(m.values, float)), _last_finite(np.asarray(se.values, float)))
                    if m is not None else None)
    out["z"] = np.full(shape, np.nan)
    if tm is not None and sm is not None:
        if not np.array_equal(tm[TIME_DIM].values, sm[TIME_DIM].values):
            tm, tse = tm.interp({TIME_DIM: sm[TIME_DIM]}), tse.interp({TIME_DIM: sm[TIME_DIM]})
        gap = np.abs(np.asarray(tm.values, float) - np.asarray(sm.values, float))
        err = np.sqrt(np.asarray(tse.values, float) ** 2 + np.asarray(sse.values, float) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(err > 0, gap / np.where(err > 0, err, 1.0), np.where(gap > 0, np.inf, 0.0))
        z = np.where(np.isfinite(gap), z, np.nan)
        mx = np.where(np.isnan(z), -np.inf, z).max(-1)
        out["z"] = np.where(mx == -np.inf, np.nan, mx)
    return out


def _value_colors(values: np.ndarray):
    """A colour per value of the first swept key, and a ScalarMappable for a colourbar (None: not numeric)."""
    numeric = np.issubdtype(values.dtype, np.number) and len(values) > 1
    if not numeric:
        return [COLORS[i % len(COLORS)] for i in range(len(values))], None
    v = values.astype(float)
    lognorm = np.all(v > 0) and v.max() / v.min() > 20
    norm = (matplotlib.colors.LogNorm if lognorm else matplotlib.colors.Normalize)(v.min(), v.max())
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.9 * norm(x)) for x in v], matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)


def _sweep_curves(ax, theory, sim, var: str, dims, colors) -> None:
    """One theory curve per grid point (colour: the first key's value; line style: the other keys')."""
    tm, _ = _sweep_mean_se(theory, var, dims, False)
    sm, _ = _sweep_mean_se(sim, var, dims, True)
    styles = ("-", "--", ":", "-.")
    for idx in itertools.product(*[range(theory.sizes[d]) for d in dims]):
        combo = int(np.ravel_multi_index(idx[1:], [theory.sizes[d] for d in dims[1:]])) if dims[1:] else 0
        label = ", ".join(f"{d}={fmt_value(theory[d].values[i])}" for d, i in zip(dims, idx))
        col, ls = colors[idx[0]], styles[combo % len(styles)]
        if tm is not None:
            line, = ax.plot(tm[TIME_DIM].values, tm.values[idx], color=col, ls=ls, lw=1.4)
            line.set_gid(f"curve:{label}")
        if sm is not None:
            t = sm[TIME_DIM].values
            i = marker_index(t)
            ax.plot(t[i], sm.values[idx][i], "o", ms=3, mfc="white", mec=col, zorder=4)
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(rf"{var.replace('_', ' ')}" if var not in ("test_loss", "train_loss")
                  else dict((p[0], p[2]) for p in PANELS)[var])
    ax.grid(alpha=0.3)


def _sweep_final(ax, x, xv, numeric, fin, dims, theory) -> None:
    """Final value vs the first swept key, one line per value of the other keys (theory; sim open)."""
    combos = list(itertools.product(*[range(theory.sizes[d]) for d in dims[1:]]))
    for c, combo in enumerate(combos):
        col = COLORS[c % len(COLORS)]
        lab = ", ".join(f"{d}={fmt_value(theory[d].values[i])}" for d, i in zip(dims[1:], combo))
        sel = (slice(None),) + tuple(combo)
        if fin["theory"] is not None:
            m, se = fin["theory"]
            ax.errorbar(x, m[sel], yerr=2 * se[sel], color=col, marker=".", capsize=2,
                        label=(lab + ": " if lab else "") + "theory")
        if fin["sim"] is not None:
            m, se = fin["sim"]
            ax.errorbar(x, m[sel], yerr=2 * se[sel], color=col, marker="o", mfc="none", ls=":", capsize=2,
                        label=(lab + ": " if lab else "") + "simulation")
    if not numeric:
        ax.set_xticks(x, [str(v) for v in xv])
    elif len(x) > 2 and np.all(x > 0) and x.max() / x.min() > 20:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _sweep_z(ax, x, xv, numeric, z, dims, theory) -> None:
    """max_t |z| of theory vs simulation per grid point, with the 2 and 3 lines."""
    for c, combo in enumerate(itertools.product(*[range(theory.sizes[d]) for d in dims[1:]])):
        sel = (slice(None),) + tuple(combo)
        ax.plot(x, z[sel], marker="s", ls="none", color=COLORS[c % len(COLORS)])
        for xi, zi in zip(x, z[sel]):
            if np.isfinite(zi):
                ax.annotate(f"{zi:.1f}", (xi, zi), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
    for level, ls in ((2, ":"), (3, "--")):
        ax.axhline(level, color="0.4", ls=ls, lw=0.8)
    ax.set_ylim(0, max(3.5, float(np.nanmax(np.where(np.isinf(z), np.nan, z), initial=0)) * 1.25))
    if not numeric:
        ax.set_xticks(x, [str(v) for v in xv])
    elif len(x) > 2 and np.all(x > 0) and x.max() / x.min() > 20:
        ax.set_xscale("log")
    ax.set_ylabel(r"max$_t\,|z|$, theory vs simulation")
    ax.grid(alpha=0.3)


def sweep_figure(theory: xr.Dataset, sim: xr.Dataset | None, var: str = "test_loss") -> plt.Figure:
    """The figure of :func:`plot_sweep` (a matplotlib Figure; the caller closes it): (a) ``var`` vs t, one
    curve per grid point coloured by the first swept key; (b) the final ``var`` vs that key; (c) with
    simulations, ``max_t |z|`` of theory vs simulation per point."""
    dims, keys = _sweep_dims(theory)
    xv = theory[dims[0]].values
    numeric = np.issubdtype(xv.dtype, np.number)
    x = xv.astype(float) if numeric else np.arange(len(xv), dtype=float)
    fin = sweep_finals(theory, sim, var)
    has_z = sim is not None and np.isfinite(fin["z"]).any() | np.isinf(fin["z"]).any()
    n = 3 if has_z else 2
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.2), layout="constrained")
    colors, mappable = _value_colors(xv)
    _sweep_curves(axes[0], theory, sim, var, dims, colors)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes[0], label=f"{dims[0]} ({keys[0]})", pad=0.01)
    else:
        axes[0].legend([Line2D([], [], color=c) for c in colors], [str(v) for v in xv], title=dims[0], fontsize=8)
    _sweep_final(axes[1], x, xv, numeric, fin, dims, theory)
    axes[1].set_xlabel(f"{dims[0]} ({keys[0]})")
    axes[1].set_ylabel(f"final {var.replace('_', ' ')}" + r" ($\pm$ 2 s.e.)")
    titles = [f"{var.replace('_', ' ')} vs time, one curve per point", f"final {var.replace('_', ' ')}"]
    if has_z:
        _sweep_z(axes[2], x, xv, numeric, fin["z"], dims, theory)
        axes[2].set_xlabel(f"{dims[0]} ({keys[0]})")
        titles.append("theory vs simulation")
    for i, (ax, t) in enumerate(zip(axes, titles)):
        ax.set_title(f"({chr(ord('a') + i)}) {t}", loc="left", fontsize=10)
    nd = int(theory.attrs.get("n_diverged", 0))
    fig.suptitle(f"sweep over {', '.join(keys)}" + (f"; {nd} point(s) diverged (NaN)" if nd else "")
                 + ("; markers: simulations" if sim is not None else ""), fontsize=10)
    return fig


def plot_sweep(theory: xr.Dataset, sim: xr.Dataset | None, path: str | Path, var: str = "test_loss") -> Path:
    """:func:`sweep_figure` as a PNG (dpi 130), written atomically."""
    fig = sweep_figure(theory, sim, var)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))
    finally:
        plt.close(fig)
    return Path(path)


def sweep_summary(theory: xr.Dataset, sim: xr.Dataset | None, var: str = "test_loss") -> list[str]:
    """Text lines: the swept keys and values, then per grid point the final ``var`` of theory and
    simulation (+- s.e.) and the ``max_t |z|`` between them where simulations were run."""
    dims, keys = _sweep_dims(theory)
    lines = [f"sweep over {len(dims)} key(s), {int(np.prod([theory.sizes[d] for d in dims]))} point(s):"]
    for d, k in zip(dims, keys):
        lines.append(f"  {k} ({d}) = [{', '.join(fmt_value(v.item() if hasattr(v, 'item') else v) for v in theory[d].values)}]")
    fin = sweep_finals(theory, sim, var)
    div = np.asarray(theory["diverged"].values) if "diverged" in theory else None
    lines.append(f"final {var} per point (theory +- s.e.{' | simulation +- s.e. | max_t |z|' if sim is not None else ''}):")
    for idx in itertools.product(*[range(theory.sizes[d]) for d in dims]):
        pt = ", ".join(f"{d}={fmt_value(theory[d].values[i])}" for d, i in zip(dims, idx))
        parts = []
        for key in ("theory", "sim"):
            if fin[key] is not None:
                m, se = fin[key][0][idx], fin[key][1][idx]
                parts.append(f"{m:.6g} +- {se:.2g}" if np.isfinite(m) else "n/a")
        if sim is not None:
            parts.append(f"z = {fin['z'][idx]:.2f}" if not np.isnan(fin["z"][idx]) else "z = n/a")
        if div is not None and div[idx]:
            parts.append("diverged")
        lines.append(f"  {pt}: " + " | ".join(parts))
    return lines


__all__ = ["plot_curves", "curves_figure", "epoch_length", "plot_sweep", "sweep_figure",
           "sweep_finals", "sweep_summary", "theory_mean_stderr"]
