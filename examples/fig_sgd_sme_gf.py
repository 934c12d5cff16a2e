"""Claim: SGD, its stochastic modified equation (SME) and gradient flow (GF) are three different
dynamics for a nonlinear model, while SGD = SME for the linear model.

Nonlinear setting: logistic regression, delta = 0.5, gamma = 10 (one visit moves a sample's margin by
up to gamma * |F| ~ 10: a strongly nonlinear jump, where SGD's Poisson jumps and SME's Gaussian
increments differ beyond their shared first two moments). Both laws on the grid dt = 0.2 (SGD:
S = gamma Bernoulli(dt/gamma); SME: Euler-Maruyama S = dt + sqrt(gamma dt) N(0,1)); finite-d
simulations of the same laws (and of SME at dt = 0.05, to show the gap is not a time-step artefact).
Linear setting: noisy linear regression, exact DMFT paths (SGD and SME share E[S] and E[S^2] and
coincide up to the O(dt^2) term of E[S^2]).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from _common import Figure, on_grid, plot_sim, plot_theory, sim_curve, theory_curve, z_gap
from sgd_dmft import dmft, laws
from sgd_dmft import problem as pb
from sgd_dmft.simulate import simulate

NAME = "fig_sgd_sme_gf"
D = int(os.environ.get("FIG_D", 1000))
SEEDS = int(os.environ.get("FIG_SEEDS", 16))
PATHS = int(os.environ.get("FIG_PATHS", 12000))
GAMMA, DELTA, DT, T_MAX = 10.0, 0.5, 0.2, 16.0


def nonlinear(f: Figure, axs):
    prob = pb.Problem(pb.logistic(), delta=DELTA, init_scale=0.5)
    th = {
        "sgd": dmft.solve(prob, laws.SGD(DT, GAMMA), t_max=T_MAX, paths=PATHS, replicas=4, seed=31, keep_kernels=False, extrapolate=False),
        "sme": dmft.solve(prob, laws.SME(DT, GAMMA), t_max=T_MAX, paths=PATHS, replicas=4, seed=32, keep_kernels=False, extrapolate=False),
        "gf": dmft.solve(prob, laws.GD(DT), t_max=T_MAX, paths=PATHS // 2, replicas=4, seed=33, keep_kernels=False, extrapolate=False),
    }
    sim = {
        "sgd": simulate(prob, "law", law=laws.SGD(DT, GAMMA), t_max=T_MAX, dt=DT, d=D, gamma=GAMMA, seeds=SEEDS, seed=500),
        "sme": simulate(prob, "law", law=laws.SME(DT, GAMMA), t_max=T_MAX, dt=DT, d=D, gamma=GAMMA, seeds=SEEDS, seed=600),
        "sme_dt0.05": simulate(prob, "law", law=laws.SME(0.05, GAMMA), t_max=T_MAX, dt=0.05, d=D, gamma=GAMMA,
                               seeds=SEEDS // 2, seed=700),
        "gf": simulate(prob, "gd", t_max=T_MAX, dt=DT, d=D, seeds=4, seed=800),
    }
    for k, ds in th.items():
        f.save(ds, f"logistic_theory_{k}")
    for k, ds in sim.items():
        f.save(ds, f"logistic_sim_{k}")
    col = {"sgd": "tab:red", "sme": "tab:blue", "gf": "k", "sme_dt0.05": "tab:cyan"}
    out = {}
    for var, ax in zip(("train_loss", "test_loss", "M"), axs):
        for k in ("sgd", "sme", "gf"):
            plot_theory(ax, th[k], var, color=col[k], label=f"DMFT {k.upper()} ({th[k].attrs['paths']} paths)")
        for k, ds in sim.items():
            plot_sim(ax, ds, var, color=col[k], ls=":" if k != "sme_dt0.05" else "-.",
                     label=f"sim {k.upper()}, d={D}, {ds.sizes['seed']} seeds")
        tS, tM, tG = (theory_curve(th[k], var) for k in ("sgd", "sme", "gf"))
        sS, sM = sim_curve(sim["sgd"], var), sim_curve(sim["sme"], var)
        late = tS[0] >= 2.0
        z_th = z_gap(tS, tM)
        z_sim = z_gap(sS, sM)
        z_gf = z_gap(tS, tG)
        z_mg = z_gap(tM, tG)
        i = int(np.argmax(np.where(late, z_th, 0)))
        out[var] = {
            "dmft_sgd_vs_sme_max_z": round(float(np.max(z_th[late])), 1),
            "dmft_sgd_vs_sme_final": [round(float(tS[1][-1]), 4), round(float(tM[1][-1]), 4),
                                      round(float(z_th[-1]), 1)],
            "sim_sgd_vs_sme_max_z": round(float(np.max(z_sim[late])), 1),
            "sim_sgd_vs_sme_final": [round(float(sS[1][-1]), 4), round(float(sM[1][-1]), 4), round(float(z_sim[-1]), 1)],
            "dmft_sgd_vs_gf_max_z": round(float(np.max(z_gf[late])), 1),
            "dmft_sme_vs_gf_max_z": round(float(np.max(z_mg[late])), 1),
            "sim_sgd_vs_sme_dt0.05_final": (lambda a, b: [round(float(a[1][-1]), 4), round(float(b[1][-1]), 4),
                                                           round(float(z_gap(a, b)[-1]), 1)])(
                sS, on_grid(sim_curve(sim["sme_dt0.05"], var), sS[0])),
            "dmft_vs_sim_max_z": {k: round(float(np.max(z_gap(sim_curve(sim[k], var),
                                                               on_grid(theory_curve(th[k], var), sim[k]["time"].values))[1:])), 2)
                                  for k in ("sgd", "sme")},
        }
        o = out[var]
        ax.set(xlabel="time t (one epoch = gamma = 10)", ylabel=var,
               title=f"logistic {var}: SGD-SME gap {o['dmft_sgd_vs_sme_max_z']:.0f} s.e. (DMFT), "
                     f"{o['sim_sgd_vs_sme_max_z']:.0f} s.e. (sims)")
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=6)
    f.summary["logistic"] = out


def linear(f: Figure, ax):
    prob = pb.Problem(pb.linear(noise=0.5), delta=2.0, init_scale=0.5)
    g, dt, t_max = 1.0, 0.01, 6.0
    th_sgd = dmft.solve(prob, laws.SGD(dt, g), t_max=t_max, keep_kernels=False, extrapolate=False)
    th_sme = dmft.solve(prob, laws.SME(dt, g), t_max=t_max, keep_kernels=False, extrapolate=False)
    th_gf = dmft.solve(prob, laws.GD(dt), t_max=t_max, keep_kernels=False, extrapolate=False)
    sims = {k: simulate(prob, "law", law=L(dt, g), t_max=t_max, dt=dt, d=D, gamma=g, seeds=8, seed=900)
            for k, L in (("sgd", laws.SGD), ("sme", laws.SME))}
    for ds, lab in ((th_sgd, "linear_theory_sgd"), (th_sme, "linear_theory_sme"), (th_gf, "linear_theory_gf"),
                    (sims["sgd"], "linear_sim_sgd"), (sims["sme"], "linear_sim_sme")):
        f.save(ds, lab)
    plot_theory(ax, th_sgd, "train_loss", color="tab:red", ls="-", lw=3, label="DMFT SGD (exact path)")
    plot_theory(ax, th_sme, "train_loss", color="tab:blue", ls="--", label="DMFT SME (exact path)")
    plot_theory(ax, th_gf, "train_loss", color="k", ls=":", label="DMFT GF")
    plot_sim(ax, sims["sgd"], "train_loss", color="salmon", label=f"sim SGD law dt={dt:g}, d={D}, 8 seeds")
    plot_sim(ax, sims["sme"], "train_loss", color="lightskyblue", label=f"sim SME law dt={dt:g}, d={D}, 8 seeds")
    diff = float(np.abs(th_sgd.train_loss - th_sme.train_loss).max())
    gap_gf = float(np.abs(th_sgd.train_loss - th_gf.train_loss).max())
    zs = z_gap(sim_curve(sims["sgd"], "train_loss"), sim_curve(sims["sme"], "train_loss"))
    f.summary["linear"] = {"dmft_max_abs_sgd_minus_sme": diff, "dmft_max_abs_sgd_minus_gf": gap_gf,
                           "sim_sgd_vs_sme_max_z": round(float(np.max(zs[1:])), 2)}
    ax.set(xlabel="time t", ylabel="train loss", yscale="log",
           title=f"linear, delta=2, noise=.5, gamma={g:g}, dt={dt:g}: max|SGD-SME|={diff:.1e}, |SGD-GF|={gap_gf:.2f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def main():
    f = Figure(NAME)
    fig, axs = plt.subplots(2, 2, figsize=(14, 10), constrained_layout=True)
    nonlinear(f, [axs[0, 0], axs[0, 1], axs[1, 0]])
    linear(f, axs[1, 1])
    fig.suptitle(f"SGD vs SME vs GF. Logistic: delta={DELTA:g}, gamma={GAMMA:g}, dt={DT:g}; DMFT {PATHS} paths / 4 "
                 f"replicas; simulations d={D}, {SEEDS} seeds (mean ± 2 s.e.)")
    f.finish(fig)


if __name__ == "__main__":
    main()
