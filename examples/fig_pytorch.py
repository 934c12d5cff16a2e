"""The PyTorch user's path (docs/pytorch.md): real ``torch.optim.SGD`` loops over a shuffling
``DataLoader`` against the d = infinity theory obtained through ``sgd_dmft.conventions.from_pytorch``.

(a, b) erf committee, k = k* = 2 (``torch.erf(h / sqrt 2)``, prediction ``h.mean(-1)``), ``nn.MSELoss``
(loss_scale = 2), ``nn.Linear``'s default init (init_scale = 1/sqrt 3), B dividing n;
(c) logistic regression under ``nn.BCEWithLogitsLoss`` with targets (y + 1) / 2, weight decay, and a
batch that does not divide n (the mean-reduced last batch is an O(B / n) effect). Theory:
``laws.Reshuffle`` (a shuffling DataLoader is random reshuffling), continuous-time limit. Dotted: the
theory a user gets with the two common mistakes (MSELoss factor 2 ignored, ``"sgd"`` law).
Losses in the package's units (the PyTorch loss / loss_scale); test loss = exact population loss of
the trained weights' overlaps (M = W w*, Q = W W^T). Exits 0 with a message when torch is absent.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

try:
    import torch
except ImportError:  # optional extra: pip install -e '.[torch]'
    torch = None

NAME = "fig_pytorch"
D = int(os.environ.get("FIG_D", 1000))
SEEDS = int(os.environ.get("FIG_SEEDS", 6))
PATHS = int(os.environ.get("FIG_PATHS", 4000))
EPOCHS = 6
GAMMA = 1.0  # lr = GAMMA * B / (loss_scale * d): the critical scale at every d
CASES = {  # PyTorch-side settings of each run (init_std in units of 1/sqrt(d); "default": nn.Linear's)
    "committee": dict(delta=2.0, batch_size=20, lr=GAMMA * 20 / (2.0 * D), weight_decay=0.0, init_std="default",
                      loss_scale=2.0),
    "logistic": dict(delta=2.0, batch_size=30, lr=GAMMA * 30 / D, weight_decay=0.05, init_std=0.5, loss_scale=1.0),
}


def teacher_labels(case: str, X: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """Labels ``(n,)`` for raw data ``X`` ``(n, d)`` and teacher ``w_star`` ``(d, k*)``."""
    rs = X @ w_star
    if case == "committee":
        return torch.erf(rs / math.sqrt(2.0)).mean(-1)
    return torch.where(rs[:, 0] >= 0, 1.0, -1.0).to(X.dtype)  # y in {-1, 1}


def predict(case: str, lin: torch.nn.Linear, xb: torch.Tensor) -> torch.Tensor:
    """The student's output ``(B,)``: erf committee mean readout, or the logistic logit."""
    h = lin(xb)
    return torch.erf(h / math.sqrt(2.0)).mean(-1) if case == "committee" else h[:, 0]


def loss_fn(case: str):
    """``(f, y) -> mean batch loss`` as a PyTorch user writes it."""
    if case == "committee":
        return torch.nn.MSELoss()
    bce = torch.nn.BCEWithLogitsLoss()
    return lambda f, y: bce(f, (y + 1.0) / 2.0)  # targets in {0, 1}


def train_one(case: str, d: int, seed: int, epochs: int = EPOCHS, records_per_epoch: int = 4,
              dtype=None) -> dict[str, np.ndarray]:
    """One seed: fresh teacher and data (torch RNG), ``nn.Linear(d, k, bias=False)``, SGD over a
    shuffling DataLoader for ``epochs`` epochs. Returns ``epochs`` (R,) (samples seen / n), ``M`` (R, k, k*),
    ``Q`` (R, k, k), ``Sstar`` (k*, k*), ``train_loss`` (R,) in the package's units."""
    c = CASES[case]
    k = ks = 2 if case == "committee" else 1
    n, B = int(round(c["delta"] * d)), c["batch_size"]
    dtype = dtype or torch.float32
    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    w_star = torch.randn(d, ks, generator=g, dtype=dtype) / math.sqrt(d)
    y = teacher_labels(case, X, w_star)
    torch.manual_seed(2000 + seed)
    lin = torch.nn.Linear(d, k, bias=False).to(dtype)  # default init: kaiming-uniform, init_scale 1/sqrt 3
    if c["init_std"] != "default":
        torch.nn.init.normal_(lin.weight, std=c["init_std"] / math.sqrt(d))
    opt = torch.optim.SGD(lin.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=B, shuffle=True,
                                         generator=torch.Generator().manual_seed(3000 + seed))
    lf, spe = loss_fn(case), len(loader)
    marks = {int(round(j * spe / records_per_epoch)) for j in range(1, records_per_epoch + 1)}
    out = {"epochs": [], "M": [], "Q": [], "train_loss": []}

    def record(seen: int):
        with torch.no_grad():
            W = lin.weight
            out["epochs"].append(seen / n)
            out["M"].append((W @ w_star).double().numpy())
            out["Q"].append((W @ W.T).double().numpy())
            out["train_loss"].append(float(lf(predict(case, lin, X), y)) / c["loss_scale"])

    record(0)
    for ep in range(epochs):
        seen = ep * n
        for step, (xb, yb) in enumerate(loader, start=1):
            opt.zero_grad()
            lf(predict(case, lin, xb), yb).backward()
            opt.step()
            seen += len(xb)
            if step in marks:
                record(seen)
    res = {key: np.asarray(v) for key, v in out.items()}
    res["Sstar"] = (w_star.T @ w_star).double().numpy()
    return res


def package_problem(case: str, d: int):
    """``(Problem, from_pytorch dict)`` of a case at dimension ``d``."""
    from sgd_dmft import Problem, make_model
    from sgd_dmft.conventions import from_pytorch, linear_default_init_std

    c = CASES[case]
    n = int(round(c["delta"] * d))
    init_std = linear_default_init_std(d) if c["init_std"] == "default" else c["init_std"] / math.sqrt(d)
    p = from_pytorch(lr=c["lr"], batch_size=c["batch_size"], n=n, d=d, weight_decay=c["weight_decay"],
                     epochs=EPOCHS, init_std=init_std, loss_scale=c["loss_scale"])
    model = make_model("committee", k=2, kstar=2, activation="erf") if case == "committee" else make_model("logistic")
    return Problem(model, delta=p["delta"], ridge=p["ridge"], init_scale=p["init_scale"]), p


def torch_dataset(case: str, d: int, seeds: int, gamma: float):
    """The torch runs through the public own-curves path, ``sgd_dmft.from_arrays`` (time = gamma x epochs;
    test loss exact from M, Q)."""
    import sgd_dmft
    from sgd_dmft import population_loss

    prob, _ = package_problem(case, d)
    runs = [train_one(case, d, s) for s in range(seeds)]
    attrs = dict(algorithm="pytorch-dataloader-sgd", d=d, torch_version=torch.__version__,
                 **{key: str(v) for key, v in CASES[case].items()})
    return sgd_dmft.from_arrays(
        gamma * runs[0]["epochs"], train_loss=np.stack([r["train_loss"] for r in runs]),
        test_loss=np.stack([population_loss(prob.model, r["Q"], r["M"], r["Sstar"]) for r in runs]),
        M=np.stack([r["M"] for r in runs]), Q=np.stack([r["Q"] for r in runs]), attrs=attrs)


def theories(case: str, d: int) -> dict:
    """The theory through from_pytorch (reshuffling), and for the committee the mistaken mapping."""
    from sgd_dmft import laws, solve

    prob, p = package_problem(case, d)
    g, t = p["gamma"], p["t"]
    out = {"theory": solve(prob, laws.Reshuffle(g / 10, g), t_max=t, paths=PATHS, replicas=4, seed=7,
                           keep_kernels=False)}
    if case == "committee":  # loss factor 2 ignored (gamma halved) and the default "sgd" law
        g2 = g / p["loss_scale"]
        out["naive"] = solve(prob.with_(ridge=p["ridge"] * p["loss_scale"]), laws.SGD(g2 / 10, g2),
                             t_max=EPOCHS * g2, paths=PATHS // 2, replicas=4, seed=8, keep_kernels=False)
    return out


def main():
    if torch is None:
        print(f"{NAME}: torch is not installed (pip install -e '.[torch]'); skipped")
        return 0
    import matplotlib.pyplot as plt

    from _common import Figure, plot_sim, plot_theory
    from sgd_dmft.results import discrepancy, power_statement

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    f = Figure(NAME)
    f.summary.update(d=D, seeds=SEEDS, paths=PATHS, epochs=EPOCHS, torch=torch.__version__, max_z={}, mapping={})
    fig, axs = plt.subplots(1, 3, figsize=(17, 5.0), constrained_layout=True)
    for case in CASES:
        prob, p = package_problem(case, D)
        f.summary["mapping"][case] = {key: p[key] for key in ("gamma", "delta", "ridge", "t", "init_scale",
                                                               "steps_per_epoch", "loss_scale")}
        th = theories(case, D)
        sim = torch_dataset(case, D, SEEDS, p["gamma"])
        f.save(sim, f"torch_{case}")
        for lab, ds in th.items():
            f.save(ds, f"{lab}_{case}")
        for var in ("train_loss", "test_loss", "M"):
            dz = discrepancy(th["theory"], sim, var)
            f.summary["max_z"][f"{case}_{var}"] = round(float(dz["max_z"]), 2)
            f.summary.setdefault("power", {})[f"{case}_{var}"] = power_statement(dz)
            if "naive" in th:  # the mistaken mapping, judged by the same seeds
                f.summary.setdefault("max_z_wrong_mapping", {})[f"{case}_{var}"] = round(
                    float(discrepancy(th["naive"], sim, var)["max_z"]), 2)
        _panels(case, axs, th, sim, p, plot_sim, plot_theory)
    for ax in axs:
        ax.set(xlabel="epochs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"torch.optim.SGD over DataLoader(shuffle=True), d={D}, {SEEDS} seeds (mean ± 2 s.e.) vs "
                 f"DMFT through from_pytorch (reshuffle law, dt -> 0; ± 2 s.e.)")
    f.finish(fig)
    return 0


def _panels(case, axs, th, sim, p, plot_sim, plot_theory):
    """Draw one case: committee losses (a) and overlaps (b), logistic losses (c)."""
    g = p["gamma"]
    x_th, x_sim = th["theory"]["time"].values / g, sim["time"].values / g
    if case == "committee":
        ax = axs[0]
        for var, col in (("train_loss", "tab:blue"), ("test_loss", "tab:red")):
            plot_theory(ax, th["theory"], var, color="k", label=f"theory {var}" if var == "test_loss" else None,
                        x=x_th)
            plot_sim(ax, sim, var, color=col, label=f"torch {var} (MSELoss / 2)", x=x_sim)
        nv = th["naive"]
        plot_theory(ax, nv, "test_loss", color="gray", ls=":", x=nv["time"].values / (g / p["loss_scale"]),
                    label="theory, factor 2 ignored + 'sgd' law")
        ax.set(title=f"erf committee k=k*=2, nn.MSELoss, nn.Linear default init\n"
                     f"gamma = 2 lr d / B = {g:g}, init_scale = 1/sqrt 3", ylabel="loss (package units)")
        for a, col in ((0, "tab:green"), (1, "tab:purple")):
            dsel = dict(k=a, kstar=a)
            plot_theory(axs[1], th["theory"].isel(dsel), "M", color="k", x=x_th,
                        label="theory" if a == 0 else None)
            plot_sim(axs[1], sim.isel(dsel), "M", color=col, label=f"torch M_{a + 1}{a + 1} = (W w*)", x=x_sim)
        axs[1].set(title="committee overlaps M_aa", ylabel="M")
    else:
        for var, col in (("train_loss", "tab:blue"), ("test_loss", "tab:red")):
            plot_theory(axs[2], th["theory"], var, color="k", x=x_th, label="theory" if var == "test_loss" else None)
            plot_sim(axs[2], sim, var, color=col, label=f"torch {var}", x=x_sim)
        axs[2].set(title=f"logistic, BCEWithLogitsLoss(f, (y+1)/2), weight_decay={CASES[case]['weight_decay']}\n"
                         f"B={p['batch_size']} does not divide n={p['n']} ({p['steps_per_epoch']} steps/epoch), "
                         f"gamma = {g:g}, ridge = {p['ridge']:g}", ylabel="loss")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
