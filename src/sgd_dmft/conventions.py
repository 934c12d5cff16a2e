"""Map between "user" (PyTorch-style) conventions and the internal ones. See docs/conventions.md and,
for a PyTorch training loop, docs/pytorch.md.

User conventions
    data ``x_raw ~ N(0, I_d)``; parameters ``w in R^{d x k}``, pre-activations ``w^T x_raw``;
    mean loss over a batch of size ``B``, the user's loss being ``loss_scale`` times the package's
    (``nn.MSELoss`` is ``(f - y)^2``, twice the package's ``(f - y)^2 / 2``: ``loss_scale = 2``), plus
    PyTorch weight decay ``wd`` (an L2 penalty ``wd |w|^2 / 2``); ``torch.optim.SGD(lr=lr, weight_decay=wd)``:

        w <- w - lr * [ (c/B) sum_{i in batch} x_raw_i F_i^T + wd * w ],     c = loss_scale.

Internal conventions (docs/theory.md section 0)
    ``x = x_raw / sqrt(d) ~ N(0, I_d / d)``, ``theta = sqrt(d) w`` (so ``theta^T x = w^T x_raw``: the
    pre-activations, hence losses and labels, are the same numbers); summed risk, ridge ``lambda``:

        theta <- theta - eta * [ (n/kappa) sum_{i in batch} x_i F_i^T + lambda * theta ].

Multiplying the user step by ``sqrt(d)`` and substituting:

        theta <- theta - (c lr d / B) sum x_i F_i^T - lr * wd * theta,

so with ``kappa = B``:  ``eta n / kappa = c lr d / B``  =>  ``eta = c lr d / n = c lr / delta``,
``gamma = eta n / kappa = c lr d / B``, and ``eta lambda = lr wd``  =>  ``lambda = wd delta / c``.
Time ``t = steps * eta``; epochs ``= steps * B / n = t / gamma`` (a loop over a DataLoader with
``drop_last=False`` makes ``ceil(n / B)`` steps per epoch: give ``epochs`` then, ``t = epochs * gamma``).
Initialisation ``w_0`` with i.i.d. entries of standard deviation ``s`` is ``init_scale = s sqrt(d)``
(``nn.Linear``'s default, uniform on ``(-1/sqrt d, 1/sqrt d)``: ``s = 1/sqrt(3 d)``, ``init_scale = 1/sqrt 3``).

Names both ways: :func:`from_pytorch` takes the user names ``(lr, batch_size, n, d, weight_decay,
steps, init_std, loss_scale)`` and returns the internal ones ``(gamma, delta, d, batch_size, ridge, t,
init_scale, loss_scale)`` plus derived values; :func:`to_pytorch` takes the internal names and
returns the user ones plus the same derived values; each accepts the other's derived values
(checked for consistency), so ``to_pytorch(**from_pytorch(**kw))`` and ``from_pytorch(**to_pytorch(**kw))``
are round trips.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

from .errors import SgdDmftDeprecationWarning

__all__ = ["n_samples", "sgd_eta", "sgd_steps", "from_pytorch", "to_pytorch", "lr_schedule_from_pytorch", "data_to_internal",
           "data_from_internal", "LINEAR_DEFAULT_INIT_SCALE", "linear_default_init_std"]

def n_samples(delta: float, d: int) -> int:
    """The number of training samples at dimension ``d``: ``n = round(delta d)`` (the one home of the rule:
    the config, the simulators' instances and the PyTorch mapping call it)."""
    return int(round(delta * d))


def sgd_eta(gamma, batch, n: int):
    """The SGD step in units of t: ``eta = gamma batch / n`` (one step of ``batch`` samples; an epoch of
    ``n / batch`` steps lasts ``gamma``). ``batch`` may be an array (a batch-size schedule)."""
    return gamma * batch / n


def sgd_steps(t: float, gamma: float, batch: int, n: int) -> int:
    """The SGD steps up to time ``t``: ``round(t / eta)``, computed as ``round(t n / (gamma batch))``."""
    return int(round(t * n / (gamma * batch)))


#: ``init_scale`` of ``torch.nn.Linear``'s default weight init (kaiming-uniform with ``a = sqrt 5``):
#: entries uniform on ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``, std ``1/sqrt(3 fan_in)``, times ``sqrt(d)``.
LINEAR_DEFAULT_INIT_SCALE = 1.0 / math.sqrt(3.0)

_REL = 1e-9  # relative tolerance of the consistency checks on derived values


class _Params(dict):
    """The returned dict; ``["batch"]`` (the key before ``batch_size``) still reads, with a DeprecationWarning."""

    _ALIASES = {"batch": "batch_size"}

    def __missing__(self, key):
        if key in self._ALIASES:
            new = self._ALIASES[key]
            warnings.warn(f"key {key!r} is deprecated: use {new!r}", SgdDmftDeprecationWarning, stacklevel=2)
            return self[new]
        raise KeyError(key)


GAMMA_FAR = 10.0  # gamma = c lr d / B past which (or below 1 / GAMMA_FAR^2) from_pytorch warns


def _critical_scale(gamma: float, lr: float, B: int, d: int, c: float) -> None:
    """Warn when the step is far from the critical scale ``lr ~ B / (c d)`` (gamma of order one)."""
    crit = B / (c * d)
    if gamma > GAMMA_FAR:
        warnings.warn(f"from_pytorch: lr={lr:g} is {gamma:.3g} times the critical scale B / (c d) = {crit:.3g} "
                      f"(gamma = c lr d / B = {gamma:.3g}): each visit moves a sample's pre-activation by gamma times "
                      f"its gradient; check the lr is the one your loop uses (mean loss over the batch, loss_scale), "
                      f"and expect the theory to need many paths and dt << gamma (its curves warn when inaccurate)",
                      RuntimeWarning, stacklevel=3)
    elif gamma < GAMMA_FAR**-2:
        warnings.warn(f"from_pytorch: gamma = c lr d / B = {gamma:.3g} is far below the critical scale (lr ~ "
                      f"{crit:.3g}): SGD is gradient flow here up to O(gamma); laws.GF is the cheaper theory",
                      RuntimeWarning, stacklevel=3)


def linear_default_init_std(d: int) -> float:
    """Std of ``torch.nn.Linear(d, k)``'s default weight entries, ``1 / sqrt(3 d)`` (user units)."""
    _check_pos(d=d)
    return 1.0 / math.sqrt(3.0 * d)


def from_pytorch(lr: float, batch_size: int, n: int, d: int, weight_decay: float = 0.0,
                 steps: float | None = None, init_std: float | None = None, loss_scale: float = 1.0, *,
                 epochs: float | None = None, eta: float | None = None,
                 steps_per_epoch: int | None = None) -> dict[str, float | int | None]:
    """Internal parameters for a PyTorch-style run (``x_raw ~ N(0, I_d)``, mean batch loss).

    ``lr``, ``weight_decay``: ``torch.optim.SGD``'s; ``batch_size`` = B; ``n`` samples in dimension
    ``d``; ``steps`` optimiser steps or ``epochs`` passes (either; both must agree); ``init_std``: std
    of the entries of ``w_0`` (``linear_default_init_std(d)`` for ``nn.Linear``'s default);
    ``loss_scale``: the user's loss over the package's (``nn.MSELoss``: 2). ``eta``, ``steps_per_epoch``:
    optional, only checked (they are :func:`to_pytorch`'s derived outputs).

    Returns ``dict(gamma, delta, d, batch_size, ridge, t, init_scale, loss_scale, eta, epochs, n,
    steps_per_epoch)``: the arguments of :func:`to_pytorch` plus derived values (``t``/``epochs`` None
    without ``steps``/``epochs``, ``init_scale`` None without ``init_std``).

    * ``delta = n / d``   * ``eta = c lr d / n``   * ``gamma = c lr d / B``   * ``ridge = wd n / (c d)``
    * ``t = steps * eta`` (``= epochs * gamma``)   * ``epochs = steps * B / n``   * ``init_scale = init_std sqrt(d)``
    * ``steps_per_epoch = ceil(n / B)`` (a DataLoader with ``drop_last=False``)
    """
    _check_pos(lr=lr, batch_size=batch_size, n=n, d=d, loss_scale=loss_scale)
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay} must be >= 0")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} must be <= n={n}")
    eta_ = loss_scale * lr * d / n
    gamma = eta_ * n / batch_size
    spe = -(-n // batch_size)
    _check_same("eta", eta, eta_)
    _check_same("steps_per_epoch", steps_per_epoch, spe)
    _critical_scale(gamma, lr, batch_size, d, loss_scale)
    ep = _epochs(steps, epochs, batch_size, n, spe)
    return _Params(
        gamma=gamma, delta=n / d, d=d, batch_size=batch_size, ridge=weight_decay * n / (d * loss_scale),
        t=None if ep is None else (steps * eta_ if epochs is None else epochs * gamma),
        init_scale=None if init_std is None else init_std * math.sqrt(d), loss_scale=loss_scale,
        eta=eta_, epochs=ep, n=n, steps_per_epoch=spe,
    )


def to_pytorch(gamma: float, delta: float, d: int, batch_size: int = 1, ridge: float = 0.0,
               t: float | None = None, init_scale: float | None = None, loss_scale: float = 1.0, *,
               eta: float | None = None, epochs: float | None = None, n: int | None = None,
               steps_per_epoch: int | None = None, batch: int | None = None) -> dict[str, float | int | None]:
    """Inverse of :func:`from_pytorch`: PyTorch ``lr``, ``n``, ``weight_decay``, ``steps`` for internal params.

    ``eta``, ``epochs``, ``n``, ``steps_per_epoch``: optional, only checked (they are
    :func:`from_pytorch`'s derived outputs). ``batch``: deprecated alias of ``batch_size``.

    Returns ``dict(lr, batch_size, n, d, weight_decay, steps, init_std, loss_scale, eta, epochs,
    steps_per_epoch)``: the arguments of :func:`from_pytorch` plus derived values, with
    ``n = round(delta d)``, ``lr = gamma B / (c d)``, ``weight_decay = ridge c d / n``,
    ``eta = gamma B / n``, ``steps = t / eta`` (a float; round it yourself), ``epochs = t / gamma``,
    ``init_std = init_scale / sqrt(d)``, ``steps_per_epoch = ceil(n / B)``.
    """
    if batch is not None:
        warnings.warn("to_pytorch(batch=) is deprecated: use batch_size=", SgdDmftDeprecationWarning, stacklevel=2)
        batch_size = batch
    _check_pos(gamma=gamma, delta=delta, d=d, batch_size=batch_size, loss_scale=loss_scale)
    if ridge < 0:
        raise ValueError(f"ridge={ridge} must be >= 0")
    n_ = n_samples(delta, d)
    if n_ < 1:
        raise ValueError(f"n = round(delta * d) = {n_} must be >= 1")
    if batch_size > n_:
        raise ValueError(f"batch_size={batch_size} must be <= n={n_}")
    eta_ = sgd_eta(gamma, batch_size, n_)
    spe = -(-n_ // batch_size)
    for key, given, derived in (("n", n, n_), ("eta", eta, eta_), ("steps_per_epoch", steps_per_epoch, spe),
                                ("epochs", epochs, None if t is None else t / gamma)):
        _check_same(key, given, derived)
    return _Params(
        lr=gamma * batch_size / (d * loss_scale), batch_size=batch_size, n=n_, d=d,
        weight_decay=ridge * d * loss_scale / n_, steps=None if t is None else t / eta_,
        init_std=None if init_scale is None else init_scale / math.sqrt(d), loss_scale=loss_scale,
        eta=eta_, epochs=None if t is None else t / gamma, steps_per_epoch=spe,
    )


def _epochs(steps, epochs, batch_size: int, n: int, spe: int) -> float | None:
    """Epochs of a run given ``steps`` and/or ``epochs``: ``steps B / n``, or ``epochs``; both given
    must agree (``steps = epochs n / B`` or, for a DataLoader loop, ``steps = epochs ceil(n / B)``)."""
    if steps is not None and steps < 0:
        raise ValueError(f"steps={steps} must be >= 0")
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs={epochs} must be >= 0")
    if epochs is None:
        return None if steps is None else steps * batch_size / n
    if steps is not None and not (_close(steps * batch_size / n, epochs) or _close(steps, epochs * spe)):
        raise ValueError(f"steps={steps} and epochs={epochs} disagree: steps must be epochs * n / batch_size = "
                         f"{epochs * n / batch_size:g} or epochs * ceil(n / batch_size) = {epochs * spe:g}")
    return float(epochs)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=1e-12)


def _check_same(key: str, given, derived) -> None:
    """A derived value passed back in must equal the one computed (None given: nothing to check)."""
    if given is None:
        return
    if derived is None or not _close(float(given), float(derived)):
        raise ValueError(f"{key}={given!r} disagrees with the other arguments (they give {derived!r})")


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


def lr_schedule_from_pytorch(milestones: Sequence[float], decay: float, gamma: float):
    """The :class:`~sgd_dmft.laws.LRSchedule` of ``torch.optim.lr_scheduler.MultiStepLR(milestones, decay)``
    stepped once per epoch (``StepLR(step_size, decay)``: ``milestones = step_size, 2 step_size, ...``).

    ``milestones`` in epochs; ``gamma`` the run's (:func:`from_pytorch`): an epoch lasts ``gamma`` units of
    t, so the factor ``decay^j`` starts at ``t = milestones[j-1] * gamma``. The package's factor multiplies the
    whole step, weight decay included, as the scheduler does with the optimizer's lr."""
    from .laws import LRSchedule

    ms = [float(m) for m in milestones]
    return LRSchedule(tuple(m * gamma for m in ms), tuple(float(decay) ** j for j in range(len(ms) + 1)))
