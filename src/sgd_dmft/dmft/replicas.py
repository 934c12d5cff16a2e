"""Replicas: independent marches of ``P`` paths each, run here or in worker processes, reduced in
replica order (curves kept per replica, kernels summed), with batches added to meet an accuracy
target (accuracy.py).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from .. import parallel
from ..progress import enabled as progress_enabled
from ..models.population import population_loss
from .accuracy import Target, extra_replicas, relative_error
from .march import march
from .planning import kernel_index

KERNELS = (("C_theta", "C"), ("R_theta", "R"), ("C_F", "CF"), ("R_F", "RF"))


def summarize(K, snaps, clip, problem, keep_kernels: bool | int) -> dict:
    """A replica's kernels reduced to what ``solve`` keeps: Q (T1, k, k), M (T1, k, ks), the train
    estimate and the test loss (T1,), snapshots, clip, and (``keep_kernels``) the two-time kernels on
    the times of :func:`kernel_index`."""
    Ct = K.blocks("C")
    Q = np.diagonal(Ct, axis1=0, axis2=1).transpose(2, 0, 1).copy()  # (T1, k, k)
    M = K.M.reshape(len(K.train), problem.k, problem.kstar).copy()
    # the test loss once per replica (the sample process may have computed it already)
    test = K.test if K.test is not None else population_loss(problem.model, Q, M)
    out = dict(Q=Q, M=M, train=K.train, test=test, r_snap=snaps, clip=clip, window_edge=K.window_edge)
    idx = kernel_index(len(K.train), keep_kernels)
    if idx is not None:
        every = len(idx) == len(K.train)
        kern = {name: np.ascontiguousarray(b if every else b[np.ix_(idx, idx)])
                for name, b in ((name, K.blocks(attr)) for name, attr in KERNELS)}
        kern["mu"] = np.ascontiguousarray(K.mu.reshape(len(K.train), problem.k, problem.kstar))  # (on every time: T k k* words)
        out["kernels"] = kern
    return out


_CONTROLLER: list = [None, -1]  # this process's ThreadpoolController and len(sys.modules) when it was made


def blas_limits(threads: int | None):
    """``threadpool_limits(limits=threads, user_api="blas")`` as a context manager, on a controller kept per
    process (finding the loaded libraries costs 2-3 ms, once per replica and level before; a tiny solve
    paid it tens of times). Made again when modules were imported since, which may have loaded a BLAS."""
    if _CONTROLLER[0] is None or _CONTROLLER[1] != len(sys.modules):
        _CONTROLLER[:] = [ThreadpoolController(), len(sys.modules)]
    return _CONTROLLER[0].limit(limits=threads, user_api="blas")


def replica(problem, law, schedule, process, P: int, snap_idx: np.ndarray, keep_kernels: bool | int, blas_threads,
            seq: np.random.SeedSequence, pbar=None) -> dict:
    """One replica (a chunk of ``P`` paths) reduced by :func:`summarize`; runs in a worker process too."""
    with blas_limits(blas_threads):
        K, snaps, clip = march(problem, law, schedule, process, P, np.random.default_rng(seq), snap_idx, pbar)
    return summarize(K, snaps, clip, problem, keep_kernels)


class Reduction:
    """Running reduction of the replicas, in replica order: curves kept per replica, kernels summed."""

    def __init__(self):
        self.Q, self.M, self.train, self.test, self.snaps, self.clips = [], [], [], [], [], []
        self.edges: list[float] = []
        self.sums: dict[str, np.ndarray] = {}

    @property
    def count(self) -> int:
        return len(self.Q)

    def add(self, rep: dict) -> None:
        self.Q.append(rep["Q"])
        self.M.append(rep["M"])
        self.train.append(rep["train"])
        self.test.append(rep["test"])
        self.snaps.append(rep["r_snap"])
        self.clips.append(rep["clip"])
        self.edges.append(rep.get("window_edge", 0.0))
        for name, a in rep.get("kernels", {}).items():
            if name in self.sums:
                self.sums[name] += a
            else:
                self.sums[name] = a


def replica_curves(problem, process, red: Reduction) -> tuple[np.ndarray, np.ndarray]:
    """Per-replica ``(train_loss, test_loss)``, each ``(R, T+1)``."""
    ter = np.stack(red.test)
    # Monte Carlo: train = test + the sample process's estimate of the gap (control variate, processes.py)
    trr = np.stack(red.train) + (ter if process.train_is_gap else 0.0)
    return trr, ter


def run_replicas(fn, args: tuple, entropy: np.random.SeedSequence, R: int, T: int, W: int, progress: bool,
                 desc: str, red, target: Target | None = None, curves=None, pool: parallel.Pool | None = None) -> int:
    """Run ``R`` replicas ``fn(*args, seq)`` (``W`` processes at most) into ``red`` (``.add``, ``.count``)
    as they arrive, then more in batches until ``target`` is met (``curves(red) -> (train, test)`` per
    replica); returns the workers used. ``T`` steps per replica (progress bar units). ``pool``: the solve's
    :class:`~sgd_dmft.parallel.Pool`, whose workers every batch (and every level) reuses; None: one per batch."""
    pbar = None
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        pbar = tqdm(total=R * T, desc=desc, unit="step", leave=False)

    kept = [0.0]  # bytes one replica keeps in the reduction (the memory bound of added batches)

    def on_result(i: int, rep: dict, local: bool) -> None:
        red.add(rep)
        kept[0] = kept[0] or _kept_bytes(rep)
        if pbar is not None and not local:
            pbar.update(T)

    t0, used = time.perf_counter(), 1
    try:
        n_new = R
        while n_new > 0:
            tasks = [args + (sq,) for sq in entropy.spawn(n_new)]
            used = max(used, parallel.map_ordered(fn, tasks, workers=W, on_result=on_result,
                                                  local_kwargs={"pbar": pbar}, spawn_cost_s=parallel.SPAWN_COST_S,
                                                  pool=pool))
            n_new = 0 if target is None else extra_replicas(target, red.count, relative_error(*curves(red)),
                                                            time.perf_counter() - t0, kept[0])
            if pbar is not None and n_new:
                pbar.total += n_new * T
                pbar.refresh()
    finally:
        if pbar is not None:
            pbar.close()
    return used


def _kept_bytes(rep) -> float:
    """Bytes of the arrays a replica's result leaves in the reduction (its kernels are summed, not kept)."""
    if isinstance(rep, dict):
        return float(sum(_kept_bytes(v) for k, v in rep.items() if k != "kernels"))
    return float(getattr(rep, "nbytes", 0))
