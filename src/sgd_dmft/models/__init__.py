"""Teacher-student models: activations and their closed forms, presets, custom models, the problem.

Layout (imports flow downwards only; nothing here imports the solver, simulators or CLI):

* :mod:`.gaussian` -- Gauss-Hermite nodes, PSD square root, the joint covariance of ``(r, r*)``,
  ``population_expectation``;
* :mod:`.closed_forms` -- Saad-Solla integrals, pair moments, committee loss and expectations,
  the logistic split quadrature;
* :mod:`.activations` -- :class:`Activation` (f, f', f'', pair moment, smoothness, kernel code);
* :mod:`.base` -- the :class:`Model` base, :class:`CustomModel`, :func:`custom`;
* :mod:`.teachers` -- teacher links: :class:`Expression` (the safe ``problem.teacher`` vocabulary),
  :class:`ActivationMean` (the parser: :mod:`.teacher_parser`; finite label variance: :mod:`.label_variance`);
* :mod:`.losses` -- loss rules (:class:`Loss`: square, logistic) and the escape tails of visit maps;
* :mod:`.two_layer_model` -- :class:`TwoLayer` (the presets re-export it);
* :mod:`.presets` -- linear, logistic, phase retrieval, committee, two_layer, :func:`make_model`;
* :mod:`.loading` -- custom models from ``"package.module:function"``;
* :mod:`.problem` -- :class:`Problem`, :func:`check_model`; :mod:`.population` -- :func:`population_loss`
  (the two-layer rules: :mod:`.two_layer_quadrature`).
"""

from .activations import ACTIVATIONS, ERF, LINEAR, QUADRATIC, RELU, TANH, Activation, get_activation, pair_moment
from .base import CustomModel, Model, custom
from .gaussian import gh_nodes, joint_cov, population_expectation, sqrtm_psd
from .loading import load_model
from .losses import LOSS_RULES, Loss
from .population import classifies, population_loss, population_loss_error, zero_one_error
from .presets import (LOSSES, MODELS, Committee, Linear, Logistic, PhaseRetrieval, TwoLayer, committee, linear,
                      logistic, make_model, phase_retrieval, two_layer)
from .problem import Problem, check_model
from .teachers import ActivationMean, Expression

__all__ = [
    "ACTIVATIONS", "ERF", "RELU", "TANH", "QUADRATIC", "LINEAR", "Activation", "get_activation", "pair_moment",
    "Model", "CustomModel", "custom", "gh_nodes", "joint_cov", "population_expectation", "sqrtm_psd",
    "population_loss", "MODELS", "Linear", "Logistic", "PhaseRetrieval", "Committee", "linear", "logistic",
    "phase_retrieval", "committee", "make_model", "Problem", "LOSSES", "TwoLayer", "two_layer", "Expression",
    "ActivationMean", "load_model", "check_model", "population_loss_error", "zero_one_error", "classifies",
    "Loss", "LOSS_RULES",
]
