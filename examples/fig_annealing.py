"""Annealing multi-pass SGD: the final test loss against the time of a step decay of the learning rate.

Noisy least squares (linear model, label noise 0.5, delta 2, ridge 0.1), critical-scale SGD with gamma = 1.5
(one epoch = 1.5 units of t) up to t = 8; at time ``t_d`` the learning rate drops to ``DECAY`` times its value
(``laws.LRSchedule((t_d,), (1, DECAY))``: the factor scales each visit's jump, not the Poisson clock,
and the weight decay; docs/theory.md 1b). Panel (a): learning curves for a few decay times; panel (b):
the test loss at T against ``t_d`` (``t_d = T``: no decay). A decay too early stops the descent, too late
leaves the SGD noise floor (which grows with the step): the best decay time is in between. Theory: the
DMFT's dt -> 0 limit (exact path of the linear model; levels dt, 2 dt, 4 dt at dt = 0.02, decays on
multiples of 4 dt), with its dt error. Simulations:
true mini-batch SGD (batch 1) with the same schedule at d = ``FIG_D``, ``FIG_SEEDS`` seeds, mean +- 2 s.e.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from _common import Figure, plot_sim, plot_theory
from sgd_dmft import dmft, laws
from sgd_dmft import problem as pb
from sgd_dmft.grid import TimeGrid
from sgd_dmft.simulation import MiniBatchSGD, simulate

NAME = "fig_annealing"
D = int(os.environ.get("FIG_D", 1000))
SEEDS = int(os.environ.get("FIG_SEEDS", 8))
PATHS = int(os.environ.get("FIG_PATHS", 8000))
GAMMA, DELTA, RIDGE, NOISE, T_MAX, DT, DECAY = 1.5, 2.0, 0.1, 0.5, 8.0, 0.02, 0.1
DECAY_TIMES = (0.48, 1.04, 2.0, 3.04, 4.0, 6.0, 8.0)  # multiples of 4 dt; t_d = T_MAX: no decay within the run


def _one(prob, t_d: float, f: Figure):
    lr = laws.LRSchedule((t_d,), (1.0, DECAY)) if t_d < T_MAX else None
    th = dmft.solve(prob, laws.SGD(DT, GAMMA, lr=lr), t_max=T_MAX, paths=PATHS, replicas=8, seed=7,
                    keep_kernels=False)
    sim = simulate(prob, MiniBatchSGD(GAMMA, 1, lr=lr), t_max=T_MAX, d=D, grid=TimeGrid(0.12), seeds=SEEDS,
                   seed=int(100 * t_d))
    f.save(th, f"theory_td{t_d:g}")
    f.save(sim, f"sim_td{t_d:g}")
    return th, sim


def main():
    f = Figure(NAME)
    prob = pb.Problem(pb.linear(NOISE), delta=DELTA, ridge=RIDGE, init_scale=0.5)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    finals = []
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(DECAY_TIMES)))
    for t_d, c in zip(DECAY_TIMES, colors):
        th, sim = _one(prob, t_d, f)
        lab = f"decay at t={t_d:g}" if t_d < T_MAX else "no decay"
        if t_d in (0.48, 2.0, T_MAX):
            plot_theory(ax, th, "test_loss", color=c, label=f"DMFT, {lab}")
            plot_sim(ax, sim, "test_loss", color=c, label=f"SGD d={D}, {lab}")
        se = float(np.hypot(th.test_loss_stderr.values[-1], th.test_loss_dt_error.values[-1]))
        s = sim.test_loss.values[:, -1]
        finals.append((t_d, float(th.test_loss.values[-1]), se, float(s.mean()), float(s.std(ddof=1) / np.sqrt(len(s)))))
    F = np.array(finals)
    bx.errorbar(F[:, 0], F[:, 1], yerr=2 * F[:, 2], color="k", marker="o", capsize=3, label="DMFT (dt -> 0 limit)")
    bx.set_yscale("log")
    bx.errorbar(F[:, 0] + 0.05, F[:, 3], yerr=2 * F[:, 4], color="tab:red", marker="s", ls="none", capsize=3,
                label=f"true mini-batch SGD, d={D}, {SEEDS} seeds")
    z = (F[:, 1] - F[:, 3]) / np.hypot(F[:, 2], F[:, 4])
    f.summary.update(d=D, seeds=SEEDS, paths=PATHS, gamma=GAMMA, decay=DECAY, decay_times=list(DECAY_TIMES),
                     final_test_theory=[round(v, 4) for v in F[:, 1]], final_test_sim=[round(v, 4) for v in F[:, 3]],
                     max_abs_z=round(float(np.max(np.abs(z))), 2),
                     best_decay_time=float(F[np.argmin(F[:, 1]), 0]))
    ax.set(xlabel=f"time t (one epoch = gamma = {GAMMA:g})", ylabel="test loss", title="(a) learning curves")
    bx.set(xlabel=f"decay time t_d (lr x {DECAY:g} from t_d on)", ylabel=f"test loss at t = {T_MAX:g}",
           title=f"(b) final test loss against the decay time (max |z| = {np.max(np.abs(z)):.2f})")
    for a in (ax, bx):
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle(f"Annealing multi-pass SGD: noisy least squares (noise {NOISE:g}), delta={DELTA:g}, ridge={RIDGE:g}, "
                 f"gamma={GAMMA:g}\nDMFT exact path (dt -> 0 limit), simulations d={D}, {SEEDS} seeds (+- 2 s.e.)")
    f.finish(fig)


if __name__ == "__main__":
    main()
