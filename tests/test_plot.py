"""Figures: panel letters, math labels, one legend, every M / Q entry, the epochs axis (curves_figure);
the sweep figure (a curve per grid point, z per point); ``show`` on a sweep directory. Tiny synthetic
datasets built with the package's own helpers (from_arrays, theory_vars): a few seconds in all."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from clitools import cli
from sgd_dmft import from_arrays
from sgd_dmft.curves import theory_vars
from sgd_dmft.plot import curves_figure, plot_curves, plot_sweep, sweep_figure, sweep_summary

T = np.linspace(0.0, 2.0, 21)
ATTRS = {"dynamics.algorithm": "sgd", "dynamics.gamma": 0.5, "problem.delta": 2.0, "simulation.d": 100}


def _curves(rng, n, k, kstar, noise):
    base = np.exp(-T)
    return dict(train_loss=base + noise * rng.standard_normal((n, T.size)),
                test_loss=base + 0.1 + noise * rng.standard_normal((n, T.size)),
                M=(1 - base)[None, :, None, None] * np.arange(1, k * kstar + 1).reshape(1, 1, k, kstar)
                + noise * rng.standard_normal((n, T.size, k, kstar)),
                Q=np.broadcast_to((0.25 + T)[None, :, None, None], (n, T.size, k, k))
                + noise * rng.standard_normal((n, T.size, k, k)))


def sim_theory(k=1, kstar=1, attrs=ATTRS):
    rng = np.random.default_rng(0)
    sim = from_arrays(T, **_curves(rng, 4, k, kstar, 0.01), attrs=attrs)
    theory = xr.Dataset(theory_vars(_curves(rng, 3, k, kstar, 0.005)), coords={"time": T}, attrs=dict(attrs))
    return sim, theory


def _lines(fig, suffix):
    return [ln.get_gid() for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").endswith(suffix)]


def _epoch_axes(fig):
    return [c for ax in fig.axes for c in ax.child_axes if c.get_xlabel() == "epochs"]


@pytest.mark.parametrize("k, kstar", [(1, 1), (2, 2), (1, 3)])
def test_curves_figure_panels_labels_legend_entries(k, kstar):
    sim, theory = sim_theory(k, kstar)
    fig = curves_figure(sim, theory)
    try:
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
        titles = [ax.get_title(loc="left") for ax in panels]
        assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)"], titles
        assert all("$" in ax.get_ylabel() for ax in panels)
        assert "$" in panels[-1].get_xlabel() and "$M_{ab}" in panels[2].get_ylabel()
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
        for kind in (":sim", ":theory"):
            m = [g for g in _lines(fig, kind) if g.startswith("M")]
            q = [g for g in _lines(fig, kind) if g.startswith("Q")]
            assert len(m) == k * kstar and len(q) == k * (k + 1) // 2, (m, q)
        if k * kstar > 1:  # every entry is labelled M_ab where it ends
            labels = {t.get_text() for t in panels[2].texts}
            assert labels == {f"$M_{{{a + 1}{b + 1}}}$" for a in range(k) for b in range(kstar)}
        assert len(_epoch_axes(fig)) == 2  # SGD: the top row has an epochs axis
    finally:
        plt.close(fig)


def test_epochs_only_where_defined_and_x_epochs():
    sim, theory = sim_theory(attrs={**ATTRS, "dynamics.algorithm": "gd"})
    fig = curves_figure(sim, theory)
    assert not _epoch_axes(fig)
    plt.close(fig)
    with pytest.raises(ValueError, match="epochs"):
        curves_figure(sim, theory, x="epochs")
    for extra in ({"dynamics.algorithm": "online"}, {"dynamics.lr_factors": "[0.1]"}):  # no epochs / schedule
        fig = curves_figure(*sim_theory(attrs={**ATTRS, **extra}))
        assert not _epoch_axes(fig)
        plt.close(fig)
    sim, theory = sim_theory()
    fig = curves_figure(sim, theory, x="epochs")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "" and "epochs" in fig.axes[2].get_xlabel()
    assert max(ln.get_xdata()[-1] for ln in ax.get_lines()) == pytest.approx(T[-1] / 0.5)
    plt.close(fig)


def test_zero_one_error_panel_only_when_recorded(tmp_path):
    sim, theory = sim_theory()
    sim["test_error"] = sim["test_loss"] * 0.3
    fig = curves_figure(sim, theory)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
    assert titles[2] == "(c) 0-1 test error" and len(titles) == 5
    assert _lines(fig, ":sim").count("test_error:sim") == 1 and "test_error:theory" not in _lines(fig, ":theory")
    plt.close(fig)
    assert plot_curves(sim, None, tmp_path / "s.png").stat().st_size > 0  # simulation alone
    assert plot_curves(None, theory, tmp_path / "t.png").stat().st_size > 0


def sweep_sets(simulate=True):
    gammas, seeds = np.array([0.1, 0.5, 1.0]), 4
    rng = np.random.default_rng(1)
    curve = np.exp(-T[None, :] * (1 + gammas[:, None]))
    attrs = {"sweep_dims": json.dumps(["gamma"]), "sweep_keys": json.dumps(["dynamics.gamma"]), "n_diverged": 0}
    th = xr.Dataset({"test_loss": (("gamma", "time"), curve), "test_loss_stderr": (("gamma", "time"), 0.01 + 0 * curve),
                     "diverged": (("gamma",), np.zeros(3, np.int8))},
                    coords={"gamma": gammas, "time": T}, attrs=dict(attrs, kind="theory-sweep"))
    sim = xr.Dataset({"test_loss": (("gamma", "seed", "time"),
                                    curve[:, None, :] + 0.02 * rng.standard_normal((3, seeds, T.size)))},
                     coords={"gamma": gammas, "seed": np.arange(seeds), "time": T},
                     attrs=dict(attrs, kind="simulation-sweep"))
    return th, (sim if simulate else None)


def test_sweep_figure_curve_per_value_and_z_per_point(tmp_path):
    th, sim = sweep_sets()
    fig = sweep_figure(th, sim)
    try:
        curves = [ln for ln in fig.axes[0].get_lines() if (ln.get_gid() or "").startswith("curve:")]
        assert len(curves) == 3 and {ln.get_gid() for ln in curves} == {"curve:gamma=0.1", "curve:gamma=0.5",
                                                                          "curve:gamma=1"}
        titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
        assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)"]
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)  # numeric values: a colour bar
        assert len(titles) == 3 and len(fig.axes[2].texts) == 3  # one z annotation per point
    finally:
        plt.close(fig)
    fig = sweep_figure(*sweep_sets(simulate=False))
    assert len([ax for ax in fig.axes if ax.get_title(loc="left")]) == 2  # no simulations: no z panel
    plt.close(fig)
    assert plot_sweep(th, sim, tmp_path / "sweep.png").stat().st_size > 0


def test_show_on_a_sweep_directory(tmp_path):
    th, sim = sweep_sets()
    th.to_netcdf(tmp_path / "sweep.nc")
    sim.to_netcdf(tmp_path / "sweep_sim.nc")
    r = cli("show", tmp_path)
    assert r.exit_code == 0, r.output
    assert "dynamics.gamma (gamma) = [0.1, 0.5, 1]" in r.output
    for g in ("0.1", "0.5", "1"):
        line = next(ln for ln in r.output.splitlines() if ln.startswith(f"  gamma={g}:"))
        assert line.count("+-") == 2 and "z = " in line
    assert "sweep_sim.nc" in r.output
    lines = sweep_summary(*sweep_sets(simulate=False))
    assert len([ln for ln in lines if ln.startswith("  gamma=")]) == 3 and "z =" not in "".join(lines)
    th.attrs["sweep_dims"] = "not json"
    (tmp_path / "sweep_sim.nc").unlink()
    th.to_netcdf(tmp_path / "sweep.nc")
    r = cli("show", tmp_path)
    assert r.exit_code != 0 and "not a sweep dataset" in r.stderr


def test_sweep_figure_two_keys():
    th, sim = sweep_sets()
    th2 = xr.concat([th, th * 1.1], dim=xr.DataArray([0.0, 0.1], dims="ridge", name="ridge"))
    sim2 = xr.concat([sim, sim * 1.1], dim=xr.DataArray([0.0, 0.1], dims="ridge", name="ridge"))
    for ds in (th2, sim2):
        ds.attrs.update(sweep_dims=json.dumps(["gamma", "ridge"]), sweep_keys=json.dumps(["dynamics.gamma",
                                                                                          "problem.ridge"]))
    fig = sweep_figure(th2.transpose("gamma", "ridge", ...), sim2.transpose("gamma", "ridge", ...))
    curves = [ln for ln in fig.axes[0].get_lines() if (ln.get_gid() or "").startswith("curve:")]
    assert len(curves) == 6 and len(fig.axes[2].texts) == 6
    plt.close(fig)
    lines = sweep_summary(th2.transpose("gamma", "ridge", ...), sim2.transpose("gamma", "ridge", ...))
    assert len([ln for ln in lines if ln.startswith("  gamma=")]) == 6
