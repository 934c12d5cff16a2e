"""Teacher links: the safe expression vocabulary (values, errors naming the key, pickling)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import erf

from sgd_dmft.errors import ConfigError
from sgd_dmft.models.teachers import ActivationMean, Expression, parse_teacher

Z = np.random.default_rng(0).standard_normal((50, 3))
z1, z2, z3 = Z[:, 0], Z[:, 1], Z[:, 2]


@pytest.mark.parametrize("text, want", [
    ("he3(z1) / sqrt(6)", (z1**3 - 3 * z1) / np.sqrt(6)),
    ("z1 + he3(z2)/sqrt(6)", z1 + (z2**3 - 3 * z2) / np.sqrt(6)),
    ("z1*z2", z1 * z2),
    ("tanh(z1 + he3(z2))", np.tanh(z1 + z2**3 - 3 * z2)),
    ("sign(z1)", np.where(z1 >= 0, 1.0, -1.0)),
    ("relu(z3) - 0.5", np.maximum(z3, 0) - 0.5),
    ("erf(z1)", erf(z1 / np.sqrt(2))),
    ("z1^2 - 1 + he2(z2) + he4(z3) + he5(z1) + he6(z2) + he1(z3)",
     z1**2 - 1 + (z2**2 - 1) + (z3**4 - 6 * z3**2 + 3) + (z1**5 - 10 * z1**3 + 15 * z1)
     + (z2**6 - 15 * z2**4 + 45 * z2**2 - 15) + z3),
    ("-z1 ** 3 + 2e-1 * +z2", -(z1**3) + 0.2 * z2),
])
def test_values(text, want):
    np.testing.assert_allclose(Expression(text, 3)(Z), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text, fragment", [
    ("foo(z1)", "unknown function 'foo'"), ("z4", "out of range"), ("z0", "out of range"), ("x1", "unknown name"),
    ("__import__('os')", "unknown function"), ("z1.real", "not allowed"), ("lambda: z1", "not allowed"),
    ("sqrt(z1)", "constant only"), ("z1 ** z2", "must be a constant"), ("z1 ^ 0.5", "non-negative integer"),
    ("2", "uses no variable"), ("", "non-empty"), ("z1 +", "syntax error"), ("tanh(z1, z2)", "exactly one"),
    ("[z1]", "not allowed"), ("z1 if z2 else z3", "not allowed"), ("1 / 0 + z1", "not a finite number"),
    ("True * z1", "not a number"),
])
def test_errors_are_one_line_and_name_the_key(text, fragment):
    with pytest.raises(ConfigError) as e:
        Expression(text, 3)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("problem.teacher = ") and fragment in msg and "allowed:" in msg
    assert e.value.key == "problem.teacher"


def test_pickles_as_text_and_recompiles():
    e = Expression("z1 + he3(z2)/sqrt(6)", 2)
    state = e.__getstate__()
    assert state == {"text": "z1 + he3(z2)/sqrt(6)", "kstar": 2}
    f = pickle.loads(pickle.dumps(e))
    assert f == e and f._fn is None
    np.testing.assert_array_equal(f(Z[:, :2]), e(Z[:, :2]))
    assert e.variables == {1, 2} and e.polynomial and not Expression("tanh(z1)", 1).polynomial


def test_activation_mean_and_parse():
    np.testing.assert_allclose(ActivationMean("tanh", 3)(Z), np.tanh(Z).mean(-1))
    fn, used, poly = parse_teacher("he3(z2)", 2)
    assert used == {2} and poly and fn(tuple(Z[:, :2].T)).shape == (50,)
