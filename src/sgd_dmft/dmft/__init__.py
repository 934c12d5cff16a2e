"""The discrete-time DMFT solver, parametrised by the law of the per-sample step multipliers.

Solves, on the law's time grid ``t_0 = 0 < t_1 < ... < t_T`` (grid.py), the d = infinity limit of

    theta_{m+1} = theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m} - dt_m * ridge * theta_m

(docs/theory.md for the derivation). Two effective processes: the coordinate process (ridge => linear
and Gaussian, deterministic recursions: coordinate.py) and the sample process (``r_m = w_m -
sum_{s<m} R_theta[m,s] F(r_s, y) S_s`` with Gaussian fields of covariance ``C_theta``: processes.py,
exact for square loss + linear student + i.i.d. multipliers, else Monte Carlo with a history store
(history.py) and a response estimator (responses.py)). The march (march.py) is causal: one forward
pass, no fixed-point iteration. ``solve`` (driver.py) runs independent replicas for standard errors.

Units: time t is gradient-flow time (one SGD epoch lasts ``gamma``); losses use the sum-loss
convention of docs/conventions.md (``train_loss`` is the mean per-sample loss).
"""

from ..errors import MemoryLimitExceeded, SolverDiverged
from ..parallel import SPAWN_COST_S
from .history import DenseHistory, SparseHistory
from .extrapolate import levels
from .planning import (MIN_PATHS_PER_REPLICA, duration, estimate_memory, estimate_seconds, max_visits, plan_replicas,
                       plan_run)
from .options import Raw, Richardson, TheoryOptions
from .processes import ExactLinearPath, MonteCarlo, SampleProcess, choose_process
from .responses import GaussianIBP, PathwiseTangents
from .driver import solve

__all__ = [
    "solve", "SolverDiverged", "MemoryLimitExceeded", "estimate_memory", "plan_replicas", "plan_run",
    "MIN_PATHS_PER_REPLICA", "SPAWN_COST_S", "SampleProcess", "ExactLinearPath", "MonteCarlo", "DenseHistory",
    "SparseHistory", "PathwiseTangents", "GaussianIBP", "choose_process", "max_visits", "estimate_seconds",
    "duration", "levels", "TheoryOptions", "Richardson", "Raw",
]
