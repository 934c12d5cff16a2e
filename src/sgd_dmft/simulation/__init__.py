"""Finite-d simulators: the ground truth the DMFT is checked against (docs/theory.md section 5).

``simulate(problem, algorithm, t_max=, d=, seeds=, grid=)`` with an algorithm object, the same
call shape as the solver's ``solve(problem, law, ...)``::

    from sgd_dmft import laws
    from sgd_dmft.grid import TimeGrid
    from sgd_dmft.simulation import LawRecursion, MiniBatchSGD, simulate
    sim = simulate(prob, MiniBatchSGD(gamma=0.5, batch=1), t_max=4.0, d=2000, seeds=8, grid=TimeGrid(0.01))
    same_as_theory = simulate(prob, LawRecursion(laws.SGD(0.01, 0.5)), t_max=4.0, d=2000, seeds=8)

The pieces: instance.py (teacher, data, initialisation, the per-seed rngs), algorithms.py (the
algorithm objects: algorithm_base.py, law_recursion.py, sgd_steps.py), batches.py (which samples a step uses), kernels.py (how
SGD steps are computed), recorder.py (what is recorded, divergence), driver.py (seeds -> Dataset).
"""

from ..errors import SimulationDiverged
from .algorithms import Algorithm, BatchSchedule, LawRecursion, MiniBatchSGD, OnlineSGD, Reshuffling, law_step
from .batches import ReshuffleStream, reshuffle_record_steps, uniform_batches
from .driver import run_seed, simulate
from .instance import Instance, instance_for_seed, make_instance, n_samples, seed_rngs
from .kernels import kernel_codes, sgd_step
from .recorder import Q_MAX, Recorder

__all__ = [
    "simulate", "run_seed", "Algorithm", "BatchSchedule", "LawRecursion", "MiniBatchSGD", "Reshuffling", "OnlineSGD",
    "Instance", "make_instance", "instance_for_seed", "n_samples", "seed_rngs",
    "uniform_batches", "ReshuffleStream", "reshuffle_record_steps", "sgd_step", "law_step", "kernel_codes",
    "Recorder", "Q_MAX", "SimulationDiverged",
]
