"""Claim: batch-size invariance. Finite-d mini-batch SGD (batches drawn uniformly, eta = gamma kappa / n)
with kappa = 1, n^0.5 and n^0.8 follows one DMFT curve: the critical-scale SGD limit (Poisson jumps,
grid dt = gamma / 50), which does not depend on the batch size. Gradient flow (GD DMFT) is shown to make
clear that the common curve is not GF.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from _common import Figure, on_grid, plot_sim, plot_theory, sim_curve, theory_curve, z_gap
from sgd_dmft import dmft, laws
from sgd_dmft import problem as pb
from sgd_dmft.simulate import n_samples, simulate

NAME = "fig_batch_invariance"
D = int(os.environ.get("FIG_D", 2000))
SEEDS = int(os.environ.get("FIG_SEEDS", 8))
PATHS = int(os.environ.get("FIG_PATHS", 8000))
GAMMA, DELTA, T_MAX = 2.0, 2.0, 6.0


def main():
    f = Figure(NAME)
    prob = pb.Problem(pb.logistic(), delta=DELTA, init_scale=0.5)
    n = n_samples(prob, D)
    dt = GAMMA / 50
    th = dmft.solve(prob, laws.SGD(dt, GAMMA), t_max=T_MAX, paths=PATHS, replicas=4, seed=11, keep_kernels=False)
    f.save(th, "theory_sgd")
    gf = dmft.solve(prob, laws.GD(0.05), t_max=T_MAX, paths=PATHS // 2, replicas=4, seed=12, keep_kernels=False)
    f.save(gf, "theory_gd")
    kappas = {"1": 1, "n^0.5": int(round(n**0.5)), "n^0.8": int(round(n**0.8))}
    fig, axs = plt.subplots(1, 3, figsize=(17, 5.2), constrained_layout=True)
    f.summary.update(d=D, n=n, seeds=SEEDS, paths=PATHS, gamma=GAMMA, delta=DELTA, max_z={}, max_abs={})
    for var, ax in zip(("train_loss", "test_loss", "M"), axs):
        plot_theory(ax, th, var, color="k", label=f"DMFT SGD, gamma={GAMMA:g} (Poisson limit, dt={dt:g})")
        plot_theory(ax, gf, var, color="gray", ls=":", label="DMFT gradient flow (GD dt=0.05)")
    for (lab, kappa), c in zip(kappas.items(), ("tab:red", "tab:green", "tab:blue")):
        eta = GAMMA * kappa / n
        rec_dt = eta * max(1, round(0.2 / eta))  # record on step times (no staircase from rounding)
        sim = simulate(prob, "sgd", t_max=rec_dt * int(T_MAX / rec_dt), dt=rec_dt, d=D, gamma=GAMMA, batch=kappa, batching="uniform",
                       seeds=SEEDS, seed=100)
        f.save(sim, f"sim_kappa{kappa}")
        for var, ax in zip(("train_loss", "test_loss", "M"), axs):
            plot_sim(ax, sim, var, color=c, label=f"SGD d={D}, kappa={lab}={kappa}, eta={GAMMA * kappa / n:.3g}")
            s = sim_curve(sim, var)
            z = z_gap(s, on_grid(theory_curve(th, var), s[0]))
            gap = np.abs(s[1] - np.interp(s[0], *theory_curve(th, var)[:2]))
            f.summary["max_z"][f"{var}_kappa{lab}"] = round(float(np.max(z[1:])), 2)
            f.summary["max_abs"][f"{var}_kappa{lab}"] = round(float(np.max(gap)), 4)
    for var, ax in zip(("train_loss", "test_loss", "M"), axs):
        ax.set(xlabel="time t = steps x eta (one epoch = gamma)", ylabel=var)
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=7)
    fig.suptitle(f"Batch-size invariance: logistic, delta={DELTA:g}, gamma={GAMMA:g}; simulations d={D} (n={n}), "
                 f"{SEEDS} seeds each (mean ± 2 s.e.); DMFT {PATHS} paths / 4 replicas (± 2 s.e.)")
    f.finish(fig)


if __name__ == "__main__":
    main()
