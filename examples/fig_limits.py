"""Claim: the limits of the SGD DMFT.

(a) gamma -> 0 (SGD -> gradient flow): SGD DMFT curves for gamma in {1, 1/2, 1/4, 1/8} approach GF.
    Linear model: exact deterministic paths (no Monte Carlo), GF from ``exact.gf_linear``; the sup
    distance over t in [0, T] decays like gamma^1 (fitted slope shown). Logistic model: Monte Carlo
    DMFT of SGD(dt, gamma) against the GD(dt) DMFT (the same grid; GD at dt = 0.02 is GF to O(dt)).
(b) delta -> infinity at tau = delta t / gamma fixed: the DMFT in the first epoch (t <= 4 gamma /
    delta < gamma) tends to the online-SGD ODE, for delta in {4, 16, 64}.
"""

from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt

from _common import Figure, band, fit_rate, plot_theory, theory_curve
from sgd_dmft import dmft, exact, laws, online
from sgd_dmft import problem as pb

NAME = "fig_limits"
GAMMAS = (1.0, 0.5, 0.25, 0.125)
COLORS = ("tab:red", "tab:orange", "tab:green", "tab:blue")


def gf_limit_linear(fig_: Figure, ax, axr):
    prob = pb.Problem(pb.linear(noise=0.5), delta=2.0, init_scale=0.5)
    t_max, dt = 3.0, 0.004
    T = int(round(t_max / dt))
    gd = exact.gd_linear(prob, dt, T)  # GF on the same grid (isolates gamma from the O(dt) grid error)
    gf = exact.gf_linear(prob, gd["time"].values)
    fig_.save(gd, "linear_gd")
    fig_.save(gf, "linear_gf")
    gammas = GAMMAS + (0.0625, 0.03125)
    dist = {"sgd": [], "sme": []}
    for i, g in enumerate(gammas):
        for alg, Law in (("sgd", laws.SGD), ("sme", laws.SME)):
            ds = dmft.solve(prob, Law(dt, g), t_max=t_max, keep_kernels=False, extrapolate=False)
            fig_.save(ds, f"linear_{alg}_gamma{g:g}")
            dist[alg].append(float(np.abs(ds.train_loss - gd.train_loss).max()))
            if alg == "sgd" and i < len(COLORS):
                plot_theory(ax, ds, "train_loss", color=COLORS[i], ls="-", label=f"SGD DMFT, gamma={g:g} (exact path)")
    t, m, _ = theory_curve(gf, "train_loss")
    ax.plot(t, m, "k--", lw=2, label="GF (exact, Marchenko-Pastur)")
    ax.set(xlabel="time t", ylabel="train loss", yscale="log",
           title=f"(a) linear, delta=2, noise=0.5, dt={dt:g}, d=inf (exact path)")
    ax.legend(fontsize=7)
    gam = np.array(gammas)
    out = {}
    for alg, mk in (("sgd", "o"), ("sme", "s")):
        s4, _ = fit_rate(gam[:4], dist[alg][:4])
        s3, c0 = fit_rate(gam[-3:], dist[alg][-3:])
        out[alg] = {"gamma_1_to_1/8": s4, "gamma_1/8_to_1/32": s3}
        axr.loglog(gam, dist[alg], mk, label=f"{alg.upper()} linear: slope {s4:.2f} (gamma 1..1/8), "
                                               f"{s3:.3f} (1/8..1/32)")
        axr.loglog(gam, np.exp(c0) * gam**s3, "k:", lw=0.8)
    fig_.summary["linear_gammas"] = list(gammas)
    fig_.summary["linear_sup_dist_to_GD_dt"] = dist
    fig_.summary["linear_fitted_rate"] = out
    fig_.summary["linear_grid_error_GD_vs_GF"] = float(np.abs(gd.train_loss - gf.train_loss).max())
    return out


def gf_limit_logistic(fig_: Figure, ax, axr, paths=8000):
    prob = pb.Problem(pb.logistic(), delta=2.0, init_scale=0.5)
    t_max, dt = 4.0, 0.02
    gd = dmft.solve(prob, laws.GD(dt), t_max=t_max, paths=paths // 2, replicas=4, seed=1, keep_kernels=False, extrapolate=False)
    fig_.save(gd, "logistic_gd")
    tg, mg, sg = theory_curve(gd, "train_loss")
    dist, dse = [], []
    for g, c in zip(GAMMAS, COLORS):
        ds = dmft.solve(prob, laws.SGD(dt, g), t_max=t_max, paths=paths, replicas=4, seed=2, keep_kernels=False, extrapolate=False)
        fig_.save(ds, f"logistic_sgd_gamma{g:g}")
        plot_theory(ax, ds, "train_loss", color=c, ls="-", label=f"SGD DMFT, gamma={g:g}")
        _, m, se = theory_curve(ds, "train_loss")
        # time-averaged gap (unbiased, unlike the sup of a noisy curve); its s.e. is bounded by the
        # time average of the pointwise combined s.e.
        dist.append(float(np.mean(m - mg)))
        dse.append(float(np.mean(np.hypot(se, sg))))
    band(ax, tg, mg, sg, color="k", ls="--", lw=2, label=f"GD(dt={dt:g}) DMFT (= GF to O(dt))")
    ax.set(xlabel="time t", ylabel="train loss",
           title=f"(a') logistic, delta=2, dt={dt:g}, DMFT {paths} paths / 4 replicas")
    ax.legend(fontsize=7)
    gam = np.array(GAMMAS)
    # weighted fit of log dist on log gamma (weights: relative errors) with the slope's standard error
    w = np.array(dist) / np.array(dse)
    (s, c0), cov = np.polyfit(np.log(gam), np.log(np.abs(dist)), 1, w=w, cov="unscaled")
    s_se = float(np.sqrt(cov[0, 0]))
    fig_.summary["logistic_fitted_rate_se"] = s_se
    axr.errorbar(gam, dist, yerr=2 * np.array(dse), fmt="^", color="tab:purple",
                 label=f"SGD logistic (time-averaged gap to GD, ± 2 s.e.): slope {s:.2f} ± {s_se:.2f}")
    axr.loglog(gam, np.exp(c0) * gam**s, ":", color="tab:purple", lw=0.8)
    fig_.summary["logistic_sup_dist"] = dist
    fig_.summary["logistic_sup_dist_se"] = dse
    fig_.summary["logistic_fitted_rate"] = s
    return s


def online_limit(fig_: Figure, axes, paths=16000):
    gamma, tau_max, n_tau = 1.0, 4.0, 250
    specs = (("linear", pb.linear(noise=0.5)), ("logistic", pb.logistic()))
    out = {}
    for ax, (mname, model) in zip(axes, specs):
        for delta, c in zip((4.0, 16.0, 64.0), ("tab:red", "tab:green", "tab:blue")):
            prob = pb.Problem(model, delta=delta, init_scale=0.5)
            dt = tau_max * gamma / delta / n_tau
            ds = dmft.solve(prob, laws.SGD(dt, gamma), t_max=n_tau * dt, paths=paths, replicas=4, seed=3,
                            keep_kernels=False, extrapolate=False)
            fig_.save(ds, f"online_{mname}_delta{delta:g}")
            tau = delta * ds["time"].values / gamma
            plot_theory(ax, ds, "test_loss", color=c, ls="-", x=tau,
                        label=f"DMFT delta={delta:g} (t <= {n_tau * dt:.3g} = {tau_max / delta:g} epochs)")
            if delta == 64.0:
                ode = online.solve_online(prob, gamma=gamma, t_max=n_tau * dt, dt=dt)
                fig_.save(ode, f"online_{mname}_ode")
                t, m, _ = theory_curve(ode, "test_loss")
                ax.plot(delta * t / gamma, m, "k--", lw=2, label="online SGD ODE (delta = inf)")
            # sup distance to the ODE (the ODE depends on delta only through tau)
            ode_d = online.solve_online(prob, gamma=gamma, t_max=n_tau * dt, dt=dt)
            out[f"{mname}_delta{delta:g}"] = float(np.abs(ds.test_loss.values - ode_d.test_loss.values).max())
        ax.set(xlabel="tau = delta t / gamma (fresh samples per dimension)", ylabel="test loss",
               title=f"(b) online limit, {mname}, gamma={gamma:g}, DMFT "
                     + ("exact path" if mname == "linear" else f"{paths} paths"))
        ax.legend(fontsize=7)
    fig_.summary["online_sup_dist_test_loss"] = out


def main():
    f = Figure(NAME)
    fig, axs = plt.subplots(2, 3, figsize=(17, 10), constrained_layout=True)
    rate_ax = axs[1, 2]
    gf_limit_linear(f, axs[0, 0], rate_ax)
    gf_limit_logistic(f, axs[0, 1], rate_ax)
    rate_ax.set(xlabel="gamma", ylabel="distance of SGD/SME train loss to GF (GD on the same dt)",
                title="rate of the gamma -> 0 limit (log-log, fitted slopes)")
    rate_ax.legend(fontsize=8)
    online_limit(f, [axs[0, 2], axs[1, 0]])
    axs[1, 1].set_axis_off()
    s = f.summary
    axs[1, 1].text(0.0, 0.95, "Measured:\n"
                   "linear, sup_t distance to GD(dt), fitted rate in gamma:\n"
                   + "".join(f"  {a.upper()}: {v['gamma_1_to_1/8']:.3f} (gamma 1..1/8), {v['gamma_1/8_to_1/32']:.3f} (1/8..1/32)\n"
                             for a, v in s["linear_fitted_rate"].items())
                   + f"  (grid error GD(dt) vs exact GF: {s['linear_grid_error_GD_vs_GF']:.1e})\n"
                   f"logistic SGD rate {s['logistic_fitted_rate']:.2f} ± {s['logistic_fitted_rate_se']:.2f} (1 s.e.)\n"
                   "online limit, sup |DMFT - ODE| (test loss):\n"
                   + "\n".join(f"  {k}: {v:.4f}" for k, v in s["online_sup_dist_test_loss"].items()),
                   va="top", family="monospace", fontsize=9)
    fig.suptitle("Limits of the SGD DMFT: gamma -> 0 gives gradient flow; delta -> inf at fixed tau gives online SGD "
                 "(theory only, d = infinity; bands = ± 2 s.e. over 4 Monte Carlo replicas)")
    f.finish(fig)


if __name__ == "__main__":
    main()
