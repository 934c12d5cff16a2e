"""One random instance of the problem at dimension d: teacher, initialisation, training set.

Conventions (docs/conventions.md; docs/theory.md section 1): ``x_i ~ N(0, I_d / d)`` (rows of ``X``,
shape ``(n, d)``), ``n = round(delta * d)``; teacher ``theta*`` of shape ``(d, k*)`` with i.i.d. N(0, 1)
entries; labels ``y_i = model.label(x_i^T theta*, eps_i)`` with ``eps_i ~ N(0, 1)``; initialisation
``theta_0 = init_overlap * theta* P^T + init_scale * Z`` (shape ``(d, k)``) with ``Z`` i.i.d. N(0, 1) and
``P = problem.init_projection()`` (``k x k*``), the selection matrix of the DMFT's initial condition, so
the empirical initial overlaps match the theory's.

Seeds: seed value ``s`` of a run with base seed ``seed`` uses ``SeedSequence([seed, s]).spawn(2)``:
the first child draws the instance, the second drives the algorithm (:func:`seed_rngs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import conventions

if TYPE_CHECKING:
    from ..models import Problem


@dataclass
class Instance:
    """One random instance of the problem at dimension d (``X``, ``y`` are None for online SGD)."""

    X: np.ndarray | None  # (n, d), rows x_i ~ N(0, I_d / d)
    y: np.ndarray | None  # (n,)
    theta_star: np.ndarray  # (d, k*)
    theta0: np.ndarray  # (d, k), C-contiguous
    n: int
    d: int


def n_samples(problem: Problem, d: int) -> int:
    """Number of training samples ``n = round(delta * d)`` (conventions.n_samples)."""
    return conventions.n_samples(problem.delta, d)


def seed_rngs(seed: int, s: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(data rng, algorithm rng) of seed value ``s`` of a run with base seed ``seed``."""
    ss = np.random.SeedSequence([int(seed), int(s)])
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def make_instance(problem: Problem, d: int, rng: np.random.Generator, with_data: bool = True) -> Instance:
    """Draw teacher, initialisation and (unless ``with_data=False``) the training set.

    Draw order: ``theta*``, ``Z``, ``X``, ``eps``, so all algorithms run with the same seed share the
    teacher and the initialisation, and all but online share the data.
    """
    model = problem.model
    n = n_samples(problem, d)
    theta_star = rng.standard_normal((d, model.kstar))
    Z = rng.standard_normal((d, model.k))
    theta0 = problem.init_scale * Z if problem.init_noise is None else Z @ problem.noise_factor().T
    if problem.init_overlap != 0.0:
        theta0 = theta0 + problem.init_overlap * (theta_star @ problem.init_projection().T)
    X = y = None
    if with_data:
        X = rng.standard_normal((n, d))
        X *= 1.0 / math.sqrt(d)
        eps = rng.standard_normal(n)
        y = np.asarray(model.label(X @ theta_star, eps), dtype=np.float64)
    return Instance(X=X, y=y, theta_star=theta_star, theta0=np.ascontiguousarray(theta0), n=n, d=d)


def instance_for_seed(problem: Problem, d: int, s: int, seed: int = 0, with_data: bool = True) -> Instance:
    """The instance that ``simulate`` uses for seed value ``s`` (base seed ``seed``)."""
    return make_instance(problem, d, seed_rngs(seed, s)[0], with_data=with_data)
