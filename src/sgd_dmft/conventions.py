"""Map between "user" (PyTorch-style) conventions and the internal ones. See docs/conventions.md.

User conventions
    data ``x_raw ~ N(0, I_d)``; parameters ``w in R^{d x k}``, pre-activations ``w^T x_raw``;
    mean loss over a batch of size ``B`` plus PyTorch weight decay ``wd`` (an L2 penalty
    ``wd |w|^2 / 2``); ``torch.optim.SGD(lr=lr, weight_decay=wd)``:

        w <- w - lr * [ (1/B) sum_{i in batch} x_raw_i F_i^T + wd * w ].

Internal conventions (docs/theory.md section 0)
    ``x = x_raw / sqrt(d) ~ N(0, I_d / d)``, ``theta = sqrt(d) w`` (so ``theta^T x = w^T x_raw``: the
    pre-activations, hence losses and labels, are the same numbers); summed risk, ridge ``lambda``:

        theta <- theta - eta * [ (n/kappa) sum_{i in batch} x_i F_i^T + lambda * theta ].

Multiplying the user step by ``sqrt(d)`` and substituting:

        theta <- theta - (lr d / B) sum x_i F_i^T - lr * wd * theta,

so with ``kappa = B``:  ``eta n / kappa = lr d / B``  =>  ``eta = lr d / n = lr / delta``,
``gamma = eta n / kappa = lr d / B``, and ``eta lambda = lr wd``  =>  ``lambda = wd n / d = wd delta``.
Time ``t = steps * eta = steps * lr / delta``; epochs ``= steps * B / n = t / gamma``.
Initialisation ``w_0`` with i.i.d. ``N(0, s^2)`` entries is ``init_scale = s sqrt(d)``.
"""

from __future__ import annotations

import math


def from_pytorch(lr: float, batch_size: int, n: int, d: int, weight_decay: float = 0.0,
                 steps: float | None = None, init_std: float | None = None) -> dict[str, float | None]:
    """Internal parameters for a PyTorch-style run (``x_raw ~ N(0, I_d)``, mean batch loss).

    Returns ``dict(gamma, delta, eta, ridge, t, epochs, batch, init_scale)``; ``t``/``epochs`` are
    None when ``steps`` is None, ``init_scale`` None when ``init_std`` is None.

    * ``delta = n / d``          * ``eta = lr * d / n``        * ``gamma = eta * n / B = lr * d / B``
    * ``ridge = weight_decay * n / d``   * ``t = steps * eta``   * ``epochs = steps * B / n``
    * ``init_scale = init_std * sqrt(d)``
    """
    _check_pos(lr=lr, batch_size=batch_size, n=n, d=d)
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay} must be >= 0")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} must be <= n={n}")
    delta = n / d
    eta = lr * d / n
    gamma = eta * n / batch_size
    return {
        "gamma": gamma,
        "delta": delta,
        "eta": eta,
        "ridge": weight_decay * n / d,
        "t": None if steps is None else steps * eta,
        "epochs": None if steps is None else steps * batch_size / n,
        "batch": batch_size,
        "init_scale": None if init_std is None else init_std * math.sqrt(d),
    }


def to_pytorch(gamma: float, delta: float, d: int, batch_size: int = 1, ridge: float = 0.0,
               t: float | None = None, init_scale: float | None = None) -> dict[str, float | int | None]:
    """Inverse of :func:`from_pytorch`: PyTorch ``lr``, ``n``, ``weight_decay``, ``steps`` for internal params.

    Returns ``dict(lr, batch_size, n, d, weight_decay, steps, epochs, eta, init_std)`` with
    ``n = round(delta d)``, ``lr = gamma * B / d``, ``weight_decay = ridge * d / n``,
    ``eta = gamma * B / n``, ``steps = t / eta`` (a float; round it yourself), ``epochs = t / gamma``,
    ``init_std = init_scale / sqrt(d)``.
    """
    _check_pos(gamma=gamma, delta=delta, d=d, batch_size=batch_size)
    if ridge < 0:
        raise ValueError(f"ridge={ridge} must be >= 0")
    n = int(round(delta * d))
    if n < 1:
        raise ValueError(f"n = round(delta * d) = {n} must be >= 1")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} must be <= n={n}")
    eta = gamma * batch_size / n
    return {
        "lr": gamma * batch_size / d,
        "batch_size": batch_size,
        "n": n,
        "d": d,
        "weight_decay": ridge * d / n,
        "eta": eta,
        "steps": None if t is None else t / eta,
        "epochs": None if t is None else t / gamma,
        "init_std": None if init_scale is None else init_scale / math.sqrt(d),
    }


def data_to_internal(x_raw, w):
    """``(x, theta) = (x_raw / sqrt(d), sqrt(d) w)`` for ``x_raw`` of shape (n, d), ``w`` of shape (d, k)."""
    d = x_raw.shape[-1]
    return x_raw / math.sqrt(d), w * math.sqrt(d)


def data_from_internal(x, theta):
    """``(x_raw, w) = (sqrt(d) x, theta / sqrt(d))``."""
    d = x.shape[-1]
    return x * math.sqrt(d), theta / math.sqrt(d)


def _check_pos(**kw) -> None:
    for k, v in kw.items():
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"{k}={v!r} must be a finite number > 0")
