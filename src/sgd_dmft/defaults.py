"""One home for the default values shared by the API and the configuration (CLI).

``config.SCHEMA`` reads its defaults from here, and so do the API entries that take the same quantity
(``simulate.simulate``, ``dmft.solve``, ``models.make_model``, ``models.Problem``, ...):
``tests/test_defaults.py`` checks every API signature default against the config default of the key it
stands for, so that the two cannot drift. The table (with the few deliberate differences) is in
docs/conventions.md, "Defaults". A leaf: imports nothing of the package.

Units follow docs/conventions.md: time is gradient-flow time (an SGD epoch lasts ``gamma``), ``gamma`` is the
per-visit step (``eta = gamma * batch / n``), memory in GiB.
"""

from __future__ import annotations

__all__ = ["MODEL", "ACTIVATION", "DELTA", "NOISE", "RIDGE", "INIT_SCALE", "ALGORITHM", "GAMMA", "T_MAX", "DT",
           "D", "BATCH", "BATCHING", "SEEDS", "SEED", "MAX_MEMORY_GB", "PATHS", "REPLICAS"]

# [problem]
MODEL = "logistic"  #: the preset model's name
ACTIVATION = "erf"  #: the student's activation (committee, two_layer)
DELTA = 2.0  #: sample ratio n / d (dimensionless)
NOISE = 0.0  #: std of the label noise (label units)
RIDGE = 0.1  #: ridge lambda of the penalty lambda |theta_j|^2 / 2 (config; Problem keeps 0.0, see conventions.md)
INIT_SCALE = 0.5  #: theta_0 = init_overlap theta* + init_scale Z (std of the random part, per coordinate x sqrt d)

# [dynamics]
ALGORITHM = "sgd"  #: the training algorithm
GAMMA = 0.5  #: per-visit step scale (an SGD epoch lasts gamma in gradient-flow time)
T_MAX = 4.0  #: horizon, gradient-flow time
DT = 0.01  #: time-grid step, gradient-flow time

# [simulation]
D = 2000  #: dimension of the finite-d simulations
BATCH = 1  #: mini-batch size kappa (samples)
BATCHING = "uniform"  #: uniform batches of size kappa (true mini-batch SGD), or Bernoulli membership
SEEDS = 8  #: independent simulation runs (their spread gives the standard errors)
SEED = 0  #: base random seed (simulation and solver)
MAX_MEMORY_GB = 8.0  #: memory budget of one run, GiB (simulation and solver)

# [solver]
PATHS = 8000  #: Monte Carlo paths of the DMFT sample process, in total over the replicas
REPLICAS = 8  #: independent DMFT replicas (their spread gives the standard errors: 7 degrees of freedom)
