"""A real torch.optim.SGD loop (docs/pytorch.md) against the package: step by step against its own
simulator (same data, same permutations: pre-activations equal to rounding), and against the theory
within noise at a small size. Skipped when torch is absent (it is an optional extra)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sgd_dmft import Problem, laws, make_model, solve  # noqa: E402
from sgd_dmft.conventions import LINEAR_DEFAULT_INIT_SCALE, from_pytorch, linear_default_init_std  # noqa: E402
from sgd_dmft.results import discrepancy  # noqa: E402
from sgd_dmft.simulation import Reshuffling, run_seed  # noqa: E402
from sgd_dmft.simulation.instance import instance_for_seed, seed_rngs  # noqa: E402


class _Replay(torch.utils.data.Sampler):
    """Batches of a DataLoader that replay the package's reshuffling permutations (one per epoch)."""

    def __init__(self, rng: np.random.Generator, n: int, B: int, epochs: int):
        self.perms = [rng.permutation(n) for _ in range(epochs)]
        self.B = B

    def __iter__(self):
        for p in self.perms:
            for a in range(0, len(p), self.B):
                yield p[a:a + self.B].tolist()

    def __len__(self):
        return sum(-(-len(p) // self.B) for p in self.perms)


def _torch_loss(case: str, reduction: str):
    if case == "committee":
        return torch.nn.MSELoss(reduction=reduction)
    bce = torch.nn.BCEWithLogitsLoss(reduction=reduction)
    return lambda f, y: bce(f, (y + 1.0) / 2.0)  # targets in {0, 1}


def _predict(case: str, lin, xb):
    h = lin(xb)
    return torch.erf(h / math.sqrt(2.0)).mean(-1) if case == "committee" else h[:, 0]


@pytest.mark.parametrize("case, B, reduction", [("committee", 10, "mean"), ("committee", 7, "sum"),
                                                ("logistic", 8, "mean"), ("logistic", 7, "sum")])
def test_dataloader_loop_is_reshuffle_step_by_step(case, B, reduction):
    """DataLoader SGD == simulate's "reshuffle" on the same instance and permutations, with the
    loss_scale of nn.MSELoss (2) and BCEWithLogitsLoss on (y + 1) / 2; B not dividing n needs
    reduction="sum" with lr / B and weight_decay * B (the package moves every sample by gamma)."""
    d, delta, epochs, wd = 60, 2.0, 3, 0.02
    model = make_model("committee", k=2, kstar=2) if case == "committee" else make_model("logistic")
    c = 2.0 if case == "committee" else 1.0
    lr = 0.5 * B / (c * d)  # gamma = c lr d / B = 0.5
    n = int(round(delta * d))
    p = from_pytorch(lr=lr, batch_size=B, n=n, d=d, weight_decay=wd, epochs=epochs, loss_scale=c)
    prob = Problem(model, delta=p["delta"], ridge=p["ridge"], init_scale=0.5)
    inst = instance_for_seed(prob, d, 0, seed=5)
    X_raw = torch.tensor(inst.X * math.sqrt(d))
    y = torch.tensor(inst.y)
    lin = torch.nn.Linear(d, model.k, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(inst.theta0.T / math.sqrt(d)))
    sampler = _Replay(seed_rngs(5, 0)[1], n, B, epochs)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_raw, y), batch_sampler=sampler)
    if reduction == "sum":  # the same step as the mean over a full batch: lr / B, weight decay wd * B
        opt = torch.optim.SGD(lin.parameters(), lr=lr / B, weight_decay=wd * B)
    else:
        opt = torch.optim.SGD(lin.parameters(), lr=lr, weight_decay=wd)
    lf = _torch_loss(case, reduction)
    for xb, yb in loader:
        opt.zero_grad()
        lf(_predict(case, lin, xb), yb).backward()
        opt.step()
    assert len(loader) == epochs * p["steps_per_epoch"]
    _, theta, _ = run_seed(prob, Reshuffling(p["gamma"], B), np.array([0.0, p["t"]]), d, 0, seed=5)
    r_pkg = inst.X @ theta
    r_torch = (X_raw @ lin.weight.detach().T).numpy()
    np.testing.assert_allclose(r_torch, r_pkg, rtol=1e-9, atol=1e-10)


def test_linear_default_init_scale():
    """nn.Linear's default init has init_scale = |W|_F^2 / k = 1/sqrt(3)^2 in internal units."""
    d = 800
    torch.manual_seed(0)
    W = torch.nn.Linear(d, 50, bias=False).weight.detach().double()
    q = float((W @ W.T).diagonal().mean())  # Q_aa = init_scale^2 (user and internal units agree)
    assert math.sqrt(q) == pytest.approx(LINEAR_DEFAULT_INIT_SCALE, rel=0.02)
    assert float(W.abs().max()) <= 1 / math.sqrt(d)
    assert linear_default_init_std(d) * math.sqrt(d) == pytest.approx(1 / math.sqrt(3))


def test_bce_targets_and_mse_factor():
    """BCEWithLogits on (y + 1) / 2 is log(1 + exp(-y f)); MSELoss is twice (f - y)^2 / 2."""
    g = torch.Generator().manual_seed(1)
    f, y = torch.randn(100, generator=g, dtype=torch.float64), torch.sign(torch.randn(100, generator=g)).double()
    lg = make_model("logistic").loss(f.numpy()[:, None], y.numpy()).mean()
    assert float(torch.nn.BCEWithLogitsLoss()(f, (y + 1) / 2)) == pytest.approx(lg, rel=1e-12)
    sq = make_model("linear").loss(f.numpy()[:, None], y.numpy()).mean()
    assert float(torch.nn.MSELoss()(f, y)) == pytest.approx(2 * sq, rel=1e-12)


def _torch_logistic_run(d: int, n: int, B: int, lr: float, epochs: int, seed: int, step_lr=None,
                        weight_decay: float = 0.0) -> np.ndarray:
    """Test loss (package units, exact from M, Q) after each epoch of a float32 DataLoader loop, (epochs + 1,);
    ``step_lr = (step_size, gamma)``: a ``torch.optim.lr_scheduler.StepLR`` stepped once per epoch."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w_star = torch.randn(d, 1, generator=g) / math.sqrt(d)
    y = torch.where((X @ w_star)[:, 0] >= 0, 1.0, -1.0)
    torch.manual_seed(seed)
    lin = torch.nn.Linear(d, 1, bias=False)  # default init: init_scale 1/sqrt 3
    opt = torch.optim.SGD(lin.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, *step_lr) if step_lr else None
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=B, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    lf, model, out = _torch_loss("logistic", "mean"), make_model("logistic"), []
    for ep in range(epochs + 1):
        with torch.no_grad():
            W = lin.weight.double()
            M, Q, S = (W @ w_star.double()).numpy(), (W @ W.T).numpy(), (w_star.T @ w_star).double().numpy()
        out.append(float(model.pop_loss(Q[None], M[None], S)[0]))
        if ep == epochs:
            break
        for xb, yb in loader:
            opt.zero_grad()
            lf(_predict("logistic", lin, xb), yb).backward()
            opt.step()
        if sched is not None:
            sched.step()
    return np.asarray(out)


def test_torch_loop_matches_theory_small():
    """d = 300 logistic regression, DataLoader(shuffle=True), 8 seeds vs the reshuffling DMFT through
    from_pytorch: every epoch within 4.5 combined s.e. (Student-t equivalent below 4)."""
    import xarray as xr

    from sgd_dmft.curves import simulation_dataset

    torch.set_num_threads(1)
    d, n, B, lr, epochs, seeds = 300, 600, 6, 0.02, 3, 8  # gamma = lr d / B = 1
    p = from_pytorch(lr=lr, batch_size=B, n=n, d=d, epochs=epochs, init_std=linear_default_init_std(d))
    prob = Problem(make_model("logistic"), delta=p["delta"], init_scale=p["init_scale"])
    th = solve(prob, laws.Reshuffle(p["gamma"] / 5, p["gamma"]), t_max=p["t"], paths=2000, replicas=4, seed=3,
               keep_kernels=False)
    runs = np.stack([_torch_logistic_run(d, n, B, lr, epochs, s) for s in range(seeds)])
    times = p["gamma"] * np.arange(epochs + 1)
    empty = np.zeros((seeds, epochs + 1, 1, 1))
    sim = simulation_dataset(times, list(range(seeds)), {"train_loss": runs, "test_loss": runs, "M": empty,
                                                         "Q": empty}, {})
    assert isinstance(sim, xr.Dataset)
    dz = discrepancy(th, sim, "test_loss")
    assert dz["max_z"] < 4.5 and dz["z_t"] < 4.0, dz
    assert runs[:, -1].mean() < 0.8 * runs[:, 0].mean()  # it did learn


def test_torch_step_lr_matches_the_scheduled_theory():
    """StepLR(step_size=1, gamma=0.3) with weight decay, stepped per epoch, against the reshuffling DMFT with
    conventions.lr_schedule_from_pytorch (the factor scales each visit's jump and the weight decay): every
    epoch within 4.5 combined s.e., and the constant-lr theory is rejected."""
    from sgd_dmft.conventions import lr_schedule_from_pytorch
    from sgd_dmft.curves import simulation_dataset

    torch.set_num_threads(1)
    d, n, B, lr, epochs, seeds, wd = 300, 600, 6, 0.04, 4, 8, 0.05  # gamma = lr d / B = 2
    p = from_pytorch(lr=lr, batch_size=B, n=n, d=d, epochs=epochs, weight_decay=wd,
                     init_std=linear_default_init_std(d))
    prob = Problem(make_model("logistic"), delta=p["delta"], ridge=p["ridge"], init_scale=p["init_scale"])
    sched = lr_schedule_from_pytorch(range(1, epochs), 0.3, p["gamma"])
    kw = dict(t_max=p["t"], paths=4000, replicas=4, seed=3, keep_kernels=False)
    th = solve(prob, laws.Reshuffle(p["gamma"] / 10, p["gamma"], lr=sched), **kw)
    const = solve(prob, laws.Reshuffle(p["gamma"] / 10, p["gamma"]), **kw)
    runs = np.stack([_torch_logistic_run(d, n, B, lr, epochs, s, step_lr=(1, 0.3), weight_decay=wd)
                     for s in range(seeds)])
    times = p["gamma"] * np.arange(epochs + 1)
    empty = np.zeros((seeds, epochs + 1, 1, 1))
    sim = simulation_dataset(times, list(range(seeds)), {"train_loss": runs, "test_loss": runs, "M": empty,
                                                         "Q": empty}, {})
    dz = discrepancy(th, sim, "test_loss")
    assert dz["max_z"] < 4.5 and dz["z_t"] < 4.0, dz
    assert discrepancy(const, sim, "test_loss")["max_z"] > 5.0
