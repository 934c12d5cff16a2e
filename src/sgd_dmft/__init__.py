"""sgd-dmft: exact high-dimensional learning curves of multi-pass SGD, SME and gradient flow.

Implements the dynamical mean-field theory (DMFT) of Fan & Wang (arXiv:2601.21093) for
multi-index teacher-student models, and finite-d simulators to check it against.
"""

__version__ = "0.1.0"
