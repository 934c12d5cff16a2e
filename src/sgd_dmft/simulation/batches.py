"""Which samples each step uses: uniform mini-batches and random reshuffling (index streams).

A batch stream yields flat sample indices ``idx`` and pointers ``ptr`` (step s uses
``idx[ptr[s]:ptr[s+1]]``), the input of :func:`sgd_dmft.simulation.kernels.run_steps`. Time is
gradient-flow time (docs/conventions.md): a step over a batch B lasts ``gamma |B| / n``, so one epoch
of reshuffling lasts ``gamma``.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_batches(rng: np.random.Generator, n: int, kappa: int, n_steps: int) -> np.ndarray:
    """``(n_steps, kappa)`` sample indices: each row uniform without replacement, rows independent."""
    if kappa == 1:
        return rng.integers(0, n, size=(n_steps, 1))
    if kappa * (kappa - 1) < n:  # duplicates rare: rejection (exactly uniform over distinct tuples)
        out = rng.integers(0, n, size=(n_steps, kappa))
        while True:
            srt = np.sort(out, axis=1)
            bad = np.nonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))[0]
            if bad.size == 0:
                return out
            out[bad] = rng.integers(0, n, size=(bad.size, kappa))
    out = np.empty((n_steps, kappa), dtype=np.int64)
    for s in range(n_steps):
        out[s] = rng.choice(n, size=kappa, replace=False)
    return out


class ReshuffleStream:
    """Random reshuffling: each epoch a fresh permutation of the n samples cut into consecutive batches
    of kappa; :meth:`take` continues where the previous call stopped."""

    def __init__(self, rng: np.random.Generator, n: int, kappa: int):
        self.rng, self.n, self.kappa = rng, n, kappa
        self.nb = -(-n // kappa)  # batches per epoch
        self._perm = None
        self._pos = self.nb  # batch position inside the current epoch

    def batch_sizes(self) -> np.ndarray:
        """Sizes of the ``ceil(n / kappa)`` batches of an epoch (the last one smaller when kappa does not
        divide n)."""
        sz = np.full(self.nb, self.kappa, dtype=np.int64)
        sz[-1] = self.n - self.kappa * (self.nb - 1)
        return sz

    def take(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Next ``n_steps`` batches as (flat indices, pointers of length n_steps + 1)."""
        idx_parts, sizes = [], []
        left = n_steps
        while left > 0:
            if self._pos == self.nb:
                self._perm = self.rng.permutation(self.n)
                self._pos = 0
            m = min(left, self.nb - self._pos)
            a = self._pos * self.kappa
            b = min((self._pos + m) * self.kappa, self.n)
            idx_parts.append(self._perm[a:b])
            sz = self.batch_sizes()[self._pos:self._pos + m]
            sizes.append(sz)
            self._pos += m
            left -= m
        idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int64)
        sz = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
        ptr = np.zeros(n_steps + 1, dtype=np.int64)
        np.cumsum(sz, out=ptr[1:])
        return idx.astype(np.int64), ptr


def reshuffle_record_steps(times: np.ndarray, n: int, kappa: int, gamma: float) -> np.ndarray:
    """Step index (batch boundary) whose elapsed time is nearest to each ``t`` in ``times``.

    ``times``: gradient-flow times, shape ``(R,)``; a step over batch B lasts ``gamma |B| / n``.
    Returns the step counts, shape ``(R,)``, int64.
    """
    nb = -(-n // kappa)
    out = np.empty(len(times), dtype=np.int64)
    for j, t in enumerate(times):
        c = t * n / gamma  # samples processed at time t
        e = math.floor(c / n + 1e-12)
        w = c - e * n
        lo = min(int(math.floor(w / kappa + 1e-12)), nb)
        best = lo
        if lo < nb:
            c_lo, c_hi = lo * kappa, min((lo + 1) * kappa, n)
            if abs(c_hi - w) < abs(w - c_lo) - 1e-9:
                best = lo + 1
        out[j] = e * nb + best
    return out
