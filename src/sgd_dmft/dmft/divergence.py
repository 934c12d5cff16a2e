"""The solver's view of the stability rules (sgd_dmft/stability.py, shared with the simulators)."""

from ..stability import (  # noqa: F401
    GROWTH_FACTOR, GROWTH_FLOOR, GROWTH_WINDOW, Q_MAX, GrowthDetector, check_explicit_steps, check_jumps,
    check_simulation_stability, check_stability, diverged, gd_edge, largest_step,
)
