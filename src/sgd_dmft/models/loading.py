"""Custom models from a configuration: ``problem.model = "package.module:function"`` or
``problem.model = "path/to/file.py:function"``. A custom model RUNS PYTHON CODE, so it is loaded only
from a trusted configuration (``--trust-code`` on the command line, ``trust_code=True`` in the API);
without trust such a configuration is refused (one-line ConfigError naming ``problem.model``) and
nothing is imported.

* ``package.module:function``: ``package.module`` is imported from the installed environment
  (``sys.path``); a module file in the working directory is NOT found implicitly.
* ``path/to/file.py:function``: that file, imported as the module ``file`` with its directory appended
  to ``sys.path`` (so that the solver's spawn worker processes, which inherit ``sys.path``, unpickle
  the model); a relative path is resolved against the config file's directory (or the working
  directory for a value that did not come from a file, e.g. ``-s`` or ``parse_config``).

``function`` is called with no arguments and returns a :class:`~.base.Model` (e.g.
``sgd_dmft.custom(...)``, a preset, or an instance of a user subclass); the model's callables are then
checked once for shapes (:func:`.problem.check_model`). Keep the callables module-level so that the
model pickles. A module whose source changed since it was loaded is reloaded (:func:`source_hash`
also goes into the sweep cache key).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

from ..errors import ConfigError
from .base import Model

__all__ = ["ENTRY_PATTERN", "PATH_PATTERN", "is_entry", "is_path_entry", "load_model", "resolve_entry",
           "source_hash", "trust_error"]

ENTRY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
PATH_PATTERN = re.compile(r"^(?P<path>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")
_HOW = ("a custom model is 'package.module:function' (installed) or 'path/to/file.py:function', a function "
        "of no arguments returning a sgd_dmft Model")
_LOADED: dict[str, str] = {}  # module file -> sha256 of the source it was loaded from


def is_path_entry(spec: object) -> bool:
    """Whether ``spec`` has the form ``path/to/file.py:function``."""
    return isinstance(spec, str) and "\n" not in spec and PATH_PATTERN.fullmatch(spec) is not None


def is_entry(spec: object) -> bool:
    """Whether ``spec`` names a custom model: ``package.module:function`` or ``path/to/file.py:function``."""
    return isinstance(spec, str) and (ENTRY_PATTERN.fullmatch(spec) is not None or is_path_entry(spec))


def _fail(spec: str, what: str) -> ConfigError:
    return ConfigError(f"problem.model = {spec!r}: {what}; {_HOW}", key="problem.model")


def trust_error(spec: str) -> ConfigError:
    """The refusal of a custom model from a configuration that is not trusted (nothing imported)."""
    return ConfigError(
        f"problem.model = {spec!r}: a custom model imports and runs Python code, allowed only from a trusted "
        f"config: pass --trust-code (command line) or trust_code=True (Python API), or use a preset "
        f"(linear, logistic, phase_retrieval, committee, two_layer)", key="problem.model")


def resolve_entry(spec: str, base_dir: str | Path | None = None) -> str:
    """A path form with its file made absolute (relative to ``base_dir``, default the working directory);
    any other spec unchanged."""
    if not is_path_entry(spec):
        return spec
    m = PATH_PATTERN.fullmatch(spec)
    path = Path(m["path"]).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else os.getcwd()) / path
    return f"{os.path.normpath(path.absolute())}:{m['func']}"


def _file_hash(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def source_hash(spec: str) -> str:
    """sha256 of the source file of a custom model's module ('' when it has none or cannot be read):
    the file of a path form, the module's file of a ``package.module`` form (not the modules it imports)."""
    if is_path_entry(spec):
        return _file_hash(PATH_PATTERN.fullmatch(spec)["path"])
    if not is_entry(spec):
        return ""
    module = spec.split(":")[0]
    mod = sys.modules.get(module)
    origin = getattr(mod, "__file__", None)
    if origin is None:
        try:
            origin = getattr(importlib.util.find_spec(module), "origin", None)
        except Exception:  # noqa: BLE001 - a parent package failing to import: no source to hash
            origin = None
    return _file_hash(origin) if origin else ""


def _first_line(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"SystemExit: exit status {e.code!r}"
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _import(spec: str, module: str):
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise _fail(spec, f"cannot import module '{module}' ({type(e).__name__}: {e}; a module file is given by "
                          f"its path, 'path/to/{module.split('.')[-1]}.py:function')") from None
    except (Exception, SystemExit) as e:  # an error inside the user's module (or its exit())
        raise _fail(spec, f"importing module '{module}' failed ({_first_line(e)})") from None
    return _fresh(spec, mod)


def _fresh(spec: str, mod):
    """``mod``, reloaded if its source file changed since this process loaded it."""
    file = getattr(mod, "__file__", None)
    if not file:
        return mod
    now = _file_hash(file)
    if _LOADED.setdefault(file, now) != now:
        try:
            os.unlink(importlib.util.cache_from_source(file))  # its bytecode may pass the mtime/size check
        except (OSError, ValueError, NotImplementedError):
            pass
        try:
            mod = importlib.reload(mod)
        except (Exception, SystemExit) as e:
            raise _fail(spec, f"reloading the edited module '{mod.__name__}' failed ({_first_line(e)})") from None
        _LOADED[file] = now
    return mod


def _import_file(spec: str, path: Path):
    """The module of a file, imported by its name with its directory on ``sys.path`` (picklable)."""
    if not path.is_file():
        raise _fail(spec, f"no such file '{path}' (or not a regular file)")
    name = path.stem
    if not name.isidentifier():
        raise _fail(spec, f"the file name '{path.name}' is not a Python module name (letters, digits, _)")
    directory = str(path.parent)
    if name not in sys.modules and directory not in sys.path:
        sys.path.append(directory)  # after the installed environment: an installed name wins (checked below)
        importlib.invalidate_caches()
    mod = _import(spec, name)
    file = getattr(mod, "__file__", None)
    if not file or os.path.realpath(file) != os.path.realpath(path):
        raise _fail(spec, f"the module name '{name}' is taken by {file or 'a built-in module'}; rename the file")
    return mod


def load_model(spec: str, trust_code: bool = False) -> Model:
    """The model returned by ``package.module:function`` or ``path/to/file.py:function``: imports and runs
    that code, so only with ``trust_code=True`` (else :func:`trust_error`). One-line ConfigError naming
    ``problem.model`` when the form is wrong, the import fails, the attribute is missing or not callable,
    the call fails or returns anything but a :class:`~.base.Model`."""
    if not is_entry(spec):
        raise _fail(spec, "not of the form 'package.module:function' or 'path/to/file.py:function'")
    if trust_code is not True:
        raise trust_error(spec)
    if is_path_entry(spec):
        m = PATH_PATTERN.fullmatch(spec)
        module, func = m["path"], m["func"]
        mod = _import_file(spec, Path(resolve_entry(spec).rsplit(":", 1)[0]))
    else:
        module, func = spec.split(":")
        mod = _import(spec, module)
    fn = getattr(mod, func, None)
    if fn is None or not callable(fn):
        raise _fail(spec, f"module '{module}' has no callable '{func}'")
    try:
        model = fn()
    except ConfigError:
        raise
    except (Exception, SystemExit) as e:
        raise _fail(spec, f"calling {func}() failed ({_first_line(e)})") from None
    if not isinstance(model, Model):
        raise _fail(spec, f"{func}() returned {type(model).__name__}, not a Model")
    return model
