"""Long horizons on graded time grids (``dt_m = clip(growth * t_m, dt, dt_max)``).

(a) Linear model, gradient flow to t = 1000 (200000 steps of the initial dt = 0.005) on 2940 graded
    grid points: DMFT exact path against the Marchenko-Pastur closed form of gradient flow, and a
    finite-d simulation (d = 1000) of the same graded recursion. Inset: the grid's own error.
(b) Logistic SGD (gamma = 0.5) over 200 epochs (t = 100) on 2047 graded grid points (20000 steps of
    the initial dt = 0.005; dt_max = gamma / 10): DMFT against true mini-batch SGD (kappa = 1) at
    d = 1000, recorded on the same grid.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from _common import Figure, plot_sim, plot_theory, theory_curve
from sgd_dmft import dmft, exact, laws
from sgd_dmft import problem as pb
from sgd_dmft.results import discrepancy
from sgd_dmft.simulate import simulate

NAME = "fig_long_horizon"


def linear_gf(fig_: Figure, ax):
    prob = pb.Problem(pb.linear(noise=0.3), delta=0.5, ridge=0.01, init_scale=0.5, init_overlap=0.2)
    t_max, dt, grid = 1000.0, 0.005, dict(growth=0.01, dt_max=0.4)
    law = laws.GD(dt, **grid)
    th = dmft.solve(prob, law, t_max=t_max, keep_kernels=False, process=dmft.ExactLinearPath())  # not the closed form
    gf = exact.gf_linear(prob, th.time.values)
    sim = simulate(prob, "gd", t_max=t_max, dt=dt, d=1000, seeds=6, seed=1, **grid)
    for ds, label in ((th, "dmft_graded_gd"), (gf, "gf_closed_form"), (sim, "sim_graded_gd_d1000")):
        fig_.save(ds, label)
    x = th.time.values
    for var, c in (("train_loss", "tab:blue"), ("test_loss", "tab:red")):
        plot_sim(ax, sim, var, color=c, label=f"{var}: simulation d=1000 (6 seeds)", x=None, lw=3)
        t, m, _ = theory_curve(th, var)
        ax.plot(t[1:], m[1:], color="k", lw=1.2, ls="--", label=f"{var}: DMFT, graded grid" if c == "tab:blue" else None)
        ax.plot(t[1:], gf[var].values[1:], color=c, lw=0.8, ls=":", label=f"{var}: GF closed form")
    err = np.max([np.abs(th[v].values - gf[v].values) for v in ("train_loss", "test_loss")], axis=0)
    ax.set(xscale="log", xlim=(x[1], x[-1]), xlabel="time t (log)", ylabel="loss",
           title=f"(a) linear GF to t={x[-1]:.0f}: {len(x) - 1} graded steps (uniform: {t_max / dt:.0f})")
    ax.legend(fontsize=6.5, loc="lower left")
    ins = ax.inset_axes([0.62, 0.55, 0.35, 0.35])
    ins.loglog(x[1:], err[1:], color="tab:purple", lw=1)
    ins.set_title("|DMFT - GF closed form|", fontsize=7)
    ins.tick_params(labelsize=6)
    fig_.summary["linear"] = {
        "grid_steps": len(x) - 1, "uniform_equivalent": int(t_max / dt), "max_err_vs_gf": float(err.max()),
        "max_z_vs_sim": {v: discrepancy(th, sim, v)["max_z"] for v in ("train_loss", "test_loss")},
    }


def logistic_sgd(fig_: Figure, ax):
    prob = pb.Problem(pb.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    gamma, t_max, dt, grid = 0.5, 100.0, 0.005, dict(growth=0.05, dt_max=0.05)
    law = laws.SGD(dt, gamma, **grid)
    th = dmft.solve(prob, law, t_max=t_max, paths=4000, replicas=4, seed=3, keep_kernels=False, workers=2)
    sim = simulate(prob, "sgd", t_max=t_max, dt=dt, d=1000, gamma=gamma, batch=1, seeds=8, seed=2, **grid)
    fig_.save(th, "dmft_graded_sgd")
    fig_.save(sim, "sim_sgd_kappa1_d1000")
    for var, c in (("train_loss", "tab:blue"), ("test_loss", "tab:red")):
        plot_sim(ax, sim, var, color=c, label=f"{var}: SGD kappa=1, d=1000 (8 seeds)")
        plot_theory(ax, th, var, color="k", label=f"{var}: DMFT, graded grid" if c == "tab:blue" else None)
    x = th.time.values
    ax.set(xscale="log", xlim=(x[1], x[-1]), xlabel="time t (log); one epoch = gamma = 0.5", ylabel="loss",
           title=f"(b) logistic SGD, 200 epochs: {len(x) - 1} graded steps (uniform: {t_max / dt:.0f})")
    ax.legend(fontsize=6.5, loc="lower left")
    fig_.summary["logistic_sgd"] = {
        "grid_steps": len(x) - 1, "uniform_equivalent": int(t_max / dt),
        "discrepancy": {v: discrepancy(th, sim, v) for v in ("train_loss", "test_loss")},
    }


def main():
    fig_ = Figure(NAME)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    linear_gf(fig_, a)
    logistic_sgd(fig_, b)
    fig.tight_layout()
    fig_.finish(fig)


if __name__ == "__main__":
    main()
