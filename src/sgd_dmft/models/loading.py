"""Custom models from a configuration: ``problem.model = "package.module:function"``.

The convention of entry points (and of ``_target_`` in config frameworks): ``function`` is an attribute
of the importable module ``package.module`` (a module file in the working directory is found too), is
called with no arguments and returns a :class:`~.base.Model` (e.g. ``sgd_dmft.custom(...)``, a preset,
or an instance of a user subclass). The model's callables are then checked once for shapes
(:func:`.problem.check_model`). Keep the callables module-level so that the model pickles and the
solver's worker processes can rebuild it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from ..errors import ConfigError
from .base import Model

__all__ = ["ENTRY_PATTERN", "is_entry", "load_model"]

ENTRY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_HOW = "a custom model is 'package.module:function', a function of no arguments returning a sgd_dmft Model"


def is_entry(spec: object) -> bool:
    """Whether ``spec`` has the form ``package.module:function``."""
    return isinstance(spec, str) and ENTRY_PATTERN.match(spec) is not None


def _fail(spec: str, what: str) -> ConfigError:
    return ConfigError(f"problem.model = {spec!r}: {what}; {_HOW}", key="problem.model")


def _import(spec: str, module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if e.name == module.split(".")[0] and cwd not in sys.path:
            sys.path.append(cwd)  # a module file in the working directory (as `python -m` finds it)
            try:
                return importlib.import_module(module)
            except Exception:
                pass
        raise _fail(spec, f"cannot import module '{module}' ({type(e).__name__}: {e})") from None
    except Exception as e:  # an error inside the user's module
        first = str(e).splitlines()[0] if str(e) else ""
        raise _fail(spec, f"importing module '{module}' failed ({type(e).__name__}: {first})") from None


def load_model(spec: str) -> Model:
    """The model returned by ``package.module:function`` (one-line ConfigError naming ``problem.model``
    when the form is wrong, the import fails, the attribute is missing or not callable, the call fails
    or returns anything but a :class:`~.base.Model`)."""
    if not is_entry(spec):
        raise _fail(spec, "not of the form 'package.module:function'")
    module, func = spec.split(":")
    mod = _import(spec, module)
    fn = getattr(mod, func, None)
    if fn is None or not callable(fn):
        raise _fail(spec, f"module '{module}' has no callable '{func}'")
    try:
        model = fn()
    except ConfigError:
        raise
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise _fail(spec, f"calling {func}() failed ({type(e).__name__}: {first})") from None
    if not isinstance(model, Model):
        raise _fail(spec, f"{func}() returned {type(model).__name__}, not a Model")
    return model
