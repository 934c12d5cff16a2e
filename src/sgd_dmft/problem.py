"""Alias module: the models moved to :mod:`sgd_dmft.models` (this name keeps working).

See :mod:`sgd_dmft.models` for the layout and docs/theory.md section 1 for the conventions.
"""

from __future__ import annotations

from .models import (ACTIVATIONS, MODELS, Model, Problem, committee, custom, linear, logistic, make_model,
                     phase_retrieval, population_expectation, population_loss)
from .models.activations import pair_moment as _pair_moment
from .models.gaussian import gh_nodes as _gh_nodes
from .models.gaussian import sqrtm_psd as _sqrtm_psd

__all__ = [
    "Model", "Problem", "custom", "make_model", "population_loss", "population_expectation", "linear",
    "logistic", "phase_retrieval", "committee", "MODELS", "ACTIVATIONS",
]

_ = (_pair_moment, _gh_nodes, _sqrtm_psd)  # private names kept for existing callers
