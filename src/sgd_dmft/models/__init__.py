"""Teacher-student models: activations and their closed forms, presets, custom models, the problem.

Layout (imports flow downwards only; nothing here imports the solver, simulators or CLI):

* :mod:`.gaussian` -- Gauss-Hermite nodes, PSD square root, the joint covariance of ``(r, r*)``,
  ``population_expectation``;
* :mod:`.closed_forms` -- Saad-Solla integrals, pair moments, committee loss and expectations,
  the logistic split quadrature;
* :mod:`.activations` -- :class:`Activation` (f, f', f'', pair moment, smoothness, kernel code);
* :mod:`.base` -- the :class:`Model` base, :class:`CustomModel`, :func:`custom`;
* :mod:`.presets` -- linear, logistic, phase retrieval, committee, :func:`make_model`;
* :mod:`.problem` -- :class:`Problem`; :mod:`.population` -- :func:`population_loss`.
"""

from .activations import ACTIVATIONS, ERF, QUADRATIC, RELU, TANH, Activation, get_activation, pair_moment
from .base import CustomModel, Model, custom
from .gaussian import gh_nodes, joint_cov, population_expectation, sqrtm_psd
from .population import population_loss
from .presets import (MODELS, Committee, Linear, Logistic, PhaseRetrieval, committee, linear, logistic,
                      make_model, phase_retrieval)
from .problem import Problem

__all__ = [
    "ACTIVATIONS", "ERF", "RELU", "TANH", "QUADRATIC", "Activation", "get_activation", "pair_moment",
    "Model", "CustomModel", "custom", "gh_nodes", "joint_cov", "population_expectation", "sqrtm_psd",
    "population_loss", "MODELS", "Linear", "Logistic", "PhaseRetrieval", "Committee", "linear", "logistic",
    "phase_retrieval", "committee", "make_model", "Problem",
]
