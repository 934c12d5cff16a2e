"""Shared fixtures: the tiny logistic-SGD config of the hostile-input tests (a run of a few ms)."""

from __future__ import annotations

import pytest

TINY = """
[problem]
model = "logistic"
delta = 2.0
[dynamics]
algorithm = "sgd"
gamma = 0.5
t_max = 0.2
dt = 0.05
[simulation]
d = 20
seeds = 2
[solver]
paths = 40
replicas = 2
"""


@pytest.fixture
def tiny(tmp_path):
    """``TINY`` written to ``tmp_path / "tiny.toml"``."""
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p
