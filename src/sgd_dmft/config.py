"""TOML configuration: validation, and construction of problems and laws (the schema of the keys, their
defaults and per-key coercion: config_schema.py, re-exported here).

A configuration has four sections, every key optional (defaults below)::

    [problem]     model, delta, noise, ridge, student_width, teacher_width, activation,
                  init_scale, init_overlap
    [dynamics]    algorithm, gamma, t_max, dt, growth, dt_max, persist_b, persist_tau
    [simulation]  d, batch, batching, seeds, seed
    [solver]      paths, replicas, seed, max_memory_gb, workers

Every key is validated; any problem raises :class:`~sgd_dmft.errors.ConfigError` (a ``ValueError``)
with a one-line message naming the key as ``section.key``, the offending value and what is allowed.
Unknown keys get a "did you mean" suggestion. See README.md for the full reference table.

The rules of the step-multiplier laws and of the time grid (``dt <= gamma`` for SGD, an integer
``gamma / dt`` for reshuffling, ...) live in laws.py and grid.py only: validation builds the law (the
algorithm registry's, algorithms.py), translates its error to the ``dynamics.<key>`` it comes from, and keeps
it: ``Config.make_law()`` returns that law, built once per configuration (its sections are not to be mutated:
``with_overrides`` gives a new, validated one). This module keeps the rules that only
concern a configuration (widths vs model, ``batch <= n``, online SGD on a uniform grid, ...).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from . import algorithms, laws
from . import models as problem  # the models package, under the name this module has always used
from .arguments import check_paths
from .config_schema import (ACTIVATIONS, ALGORITHMS, BATCHINGS, COMPRESS, MAX_D, MAX_INIT, MAX_MAGNITUDE,  # noqa: F401
                            MAX_SEEDS, MODELS, SCHEMA, SECTIONS, Key, all_dotted, coerce, defaults, resolve_key,
                            suggest, typename)
from .conventions import n_samples, sgd_eta
from .errors import ConfigError
from .grid import TimeGrid
from .models.loading import is_entry, load_model, resolve_entry, trust_error
from .models.problem import check_model

__all__ = ["ALGORITHMS", "Config", "ConfigError", "SCHEMA", "defaults", "load_config", "parse_config",
           "config_from_dataset", "parse_value", "resolve_key", "suggest"]

# the config key of each parameter of a law (laws' ConfigError.key) or of its grid
LAW_KEYS = {"dt": "dynamics.dt", "dt_max": "dynamics.dt_max", "growth": "dynamics.growth",
            "b": "dynamics.persist_b", "tau": "dynamics.persist_tau", "gamma": "dynamics.gamma",
            "dynamics.lr_times": "dynamics.lr_times", "dynamics.lr_factors": "dynamics.lr_factors"}


def parse_value(text: str) -> Any:
    """A command-line value read as TOML (``0.5`` -> 0.5, ``[1, 2]`` -> list), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _cross_checks(c: dict[str, dict[str, Any]], trust_code: bool) -> laws.Law | None:
    """The rules across keys; returns the law of ``[dynamics]`` (built once, here: the Config keeps it)."""
    _check_magnitudes(c)
    _check_widths(c["problem"], trust_code)
    law = _check_dynamics(c["dynamics"])
    _check_samples(c["problem"], c["simulation"])
    _check_solver(c["solver"])
    return law


def _check_magnitudes(c: dict[str, dict[str, Any]]) -> None:
    """Float keys of [problem] and [dynamics] of magnitude <= MAX_MAGNITUDE, the initialisation's <= MAX_INIT
    (beyond them the initial overlaps overflow, or no run can be meaningful)."""
    for section in ("problem", "dynamics"):
        for key, spec in SCHEMA[section].items():
            v = c[section].get(key)
            if spec.kind != "float" or not isinstance(v, float):
                continue
            bound = MAX_INIT if key in ("init_scale", "init_overlap") else MAX_MAGNITUDE
            if abs(v) > bound:
                raise ConfigError(f"{section}.{key} = {v!r}: must be {spec.allowed} of magnitude <= {bound:g}",
                                  key=f"{section}.{key}")


def _check_solver(so: dict[str, Any]) -> None:
    """Monte Carlo paths are split over the replicas: at least 2 paths per replica (arguments.check_paths)."""
    check_paths(so["paths"], so["replicas"], "solver.paths", "solver.replicas")


def _check_widths(p: dict[str, Any], trust_code: bool) -> None:
    """The [problem] rules across keys: widths, two_layer-only keys, the teacher link, init_overlap's shape."""
    k, ks, model = p["student_width"], p["teacher_width"], p["model"]
    if is_entry(model):  # import and build it now (trusted only): a failure is a config error before any run
        loaded = load_model(model, trust_code)
        check_model(loaded)
        k, ks = loaded.k, loaded.kstar
    elif model not in ("committee", "two_layer"):
        for key, w in (("student_width", k), ("teacher_width", ks)):
            if w != 1:
                raise ConfigError(f"problem.{key} = {w}: model '{model}' needs {key} = 1 (only 'committee' and "
                                  "'two_layer' allow wider)")
    if model != "two_layer":
        for key in ("teacher", "second_layer", "bias", "loss"):
            if p[key] != SCHEMA["problem"][key].default:
                raise ConfigError(f"problem.{key} = {p[key]!r}: only model 'two_layer' takes {key} (model is '{model}')")
    else:
        _two_layer_model(p)  # the teacher link, second_layer / bias lengths
    _check_init_overlaps(p, k, ks)
    ov = p["init_overlap"]
    if isinstance(ov, list):
        if (len(ov), len(ov[0])) != (k, ks):
            raise ConfigError(f"problem.init_overlap = {ov!r}: must be a k x k* = {k} x {ks} matrix (a list of rows)")
    elif ov != 0.0 and k != ks:
        raise ConfigError(
            f"problem.init_overlap = {ov!r}: a nonzero number needs student_width == teacher_width (got {k} and "
            f"{ks}); give the {k} x {ks} matrix B of theta_0 = theta* B^T + init_scale Z instead")


def _check_init_overlaps(p: dict[str, Any], k: int, ks: int) -> None:
    """``init_q`` / ``init_m``: matrices of the widths, given together, not mixed with init_scale / init_overlap
    (the positive semidefinite rule is the Problem's, reported with the same key)."""
    q, m = p["init_q"], p["init_m"]
    if q == 0.0 and m == 0.0:
        return
    if q == 0.0:
        raise ConfigError(f"problem.init_m = {m!r}: needs problem.init_q (the k x k matrix Q_0) beside it",
                          key="problem.init_m")
    for key, val, shape in (("init_q", q, (k, k)), ("init_m", m, (k, ks))):
        if key == "init_m" and val == 0.0:
            continue
        if not isinstance(val, list) or (len(val), len(val[0])) != shape:
            raise ConfigError(f"problem.{key} = {val!r}: must be a {shape[0]} x {shape[1]} matrix (a list of rows; "
                              f"student_width = {k}, teacher_width = {ks})", key=f"problem.{key}")
    for key in ("init_scale", "init_overlap"):
        if p[key] != SCHEMA["problem"][key].default:
            raise ConfigError(f"problem.{key} = {p[key]!r}: not allowed with problem.init_q (give the initial "
                              f"overlaps either as init_q / init_m or as init_scale / init_overlap)", key=f"problem.{key}")


def _two_layer_model(p: Mapping[str, Any]) -> problem.Model:
    """The two_layer preset of ``p`` (its ConfigErrors name problem.teacher / second_layer / bias / loss)."""
    return problem.make_model(
        "two_layer", k=p["student_width"], kstar=p["teacher_width"], activation=p["activation"], noise=p["noise"],
        teacher=p["teacher"] or None, second_layer=None if p["second_layer"] == "mean" else p["second_layer"],
        bias=p["bias"], loss=p["loss"])


def _check_dynamics(dy: dict[str, Any]) -> laws.Law | None:
    """The config-only rules of ``[dynamics]``, then the law's (and the grid's) own, by building them: the
    law (None for an algorithm without one, one-pass SGD)."""
    t_max, dt = dy["t_max"], dy["dt"]
    if dt > t_max:
        raise ConfigError(f"dynamics.dt = {dt!r}: must be <= dynamics.t_max = {t_max!r}")
    if algorithms.spec(dy["algorithm"]).law is None:  # no law: the schedule and the record grid (graded allowed)
        lr_schedule(dy)
        try:
            TimeGrid(dt, dy["growth"], dy["dt_max"] or None)
        except ConfigError as e:
            raise _law_error(dy, e) from None
        return None
    return _build_law(dy)


def lr_schedule(dy: Mapping[str, Any]) -> laws.LRSchedule | None:
    """The learning-rate schedule of ``[dynamics]`` (None: constant), ConfigErrors naming the key."""
    times, factors = dy["lr_times"], dy["lr_factors"]
    if dy["lr_schedule"] == "cosine":
        if times or len(factors) > 1:
            raise ConfigError(f"dynamics.lr_times = {times!r}: lr_schedule = 'cosine' takes no lr_times and at most "
                              f"one lr_factors entry (the final factor)", key="dynamics.lr_times")
        return laws.LRSchedule.cosine(dy["t_max"], factors[0] if factors else 0.0)
    if dy["lr_schedule"] == "warmup":
        if len(times) != 1 or len(factors) > 1:
            raise ConfigError(f"dynamics.lr_times = {times!r}: lr_schedule = 'warmup' takes one lr_times entry (the "
                              f"warm-up's end) and at most one lr_factors entry (the start)", key="dynamics.lr_times")
        return laws.LRSchedule.warmup(times[0], factors[0] if factors else 0.0)
    if not times and not factors:
        return None
    return laws.LRSchedule(tuple(times), tuple(factors) if factors else (1.0,) * (len(times) + 1))


def law_args(dy: Mapping[str, Any], sim: Mapping[str, Any] | None = None, **changes: Any) -> algorithms.LawArgs:
    """The values an algorithm is built from (algorithms.LawArgs): ``[dynamics]``, and ``simulation.batch`` /
    ``batching`` where ``sim`` is given; ``dynamics.dt_max = 0`` is no cap."""
    args = dict(dt=dy["dt"], gamma=dy["gamma"], b=dy["persist_b"], tau=dy["persist_tau"],
                growth=dy["growth"], dt_max=dy["dt_max"] or None, lr=lr_schedule(dy))
    if sim is not None:
        args.update(batch=sim["batch"], batching=sim["batching"])
    args.update(changes)
    return algorithms.LawArgs(**args)


def _build_law(dy: Mapping[str, Any]) -> laws.Law:
    """The law of ``[dynamics]`` (the registry's, algorithms.py); its ConfigError becomes one naming
    ``dynamics.<key>``."""
    try:
        return algorithms.spec(dy["algorithm"]).make_law(law_args(dy))
    except ConfigError as e:
        raise _law_error(dy, e) from None


def _law_error(dy: Mapping[str, Any], e: ConfigError) -> ConfigError:
    """A law's (or grid's) error as a config error: ``dynamics.<key> = <value>: <the law's rule>``."""
    alg, growth, dt_max = dy["algorithm"], dy["growth"], dy["dt_max"]
    spec = algorithms.spec(alg)
    if growth > 0 and not dt_max and spec.law is not None:
        try:  # refused without a cap, accepted with the smallest graded one: the cap is what is missing
            spec.make_law(law_args(dy, dt_max=math.nextafter(dy["dt"], math.inf)))
        except ConfigError:
            pass
        else:
            return ConfigError(f"dynamics.dt_max = {dt_max!r}: a graded grid (dynamics.growth = {growth!r}) for "
                               f"algorithm '{alg}' needs a cap dt_max > 0 ({e})", key="dynamics.dt_max")
    key = LAW_KEYS.get(e.key or "", "dynamics.algorithm")
    value = dy[key.split(".", 1)[1]]
    return ConfigError(f"{key} = {value!r}: not allowed for algorithm '{alg}': {e}", key=key)


def _check_samples(p: dict[str, Any], sim: dict[str, Any]) -> None:
    n = n_samples(p["delta"], sim["d"])
    if n < 1:
        raise ConfigError(
            f"problem.delta = {p['delta']!r}: n = round(delta * d) = {n} with d = {sim['d']}; need n >= 1")
    if sim["batch"] > n:
        raise ConfigError(
            f"simulation.batch = {sim['batch']}: must be <= n = round(delta * d) = {n}")


def _validate(mapping: Mapping[str, Any], trust_code: bool = False,
              base_dir: str | Path | None = None) -> tuple[dict[str, dict[str, Any]], laws.Law | None]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"configuration must be a table/mapping, got {typename(mapping)}")
    out = defaults()
    for section, body in mapping.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section {str(section)!r}{suggest(str(section), list(SECTIONS))}; allowed: {', '.join(SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"section {section!r} must be a table, got {body!r} ({typename(body)})")
        for key, value in body.items():
            if key not in SCHEMA[section]:
                dotted = f"{section}.{key}"
                elsewhere = [s for s in SECTIONS if key in SCHEMA[s]]
                sugg = f" (did you mean '{elsewhere[0]}.{key}'?)" if elsewhere else suggest(dotted, all_dotted())
                if not sugg:
                    sugg = suggest(str(key), list(SCHEMA[section]))
                    sugg = sugg.replace("'", f"'{section}.", 1) if sugg else ""
                raise ConfigError(f"unknown key {dotted!r}{sugg}")
            out[section][key] = coerce(section, key, value)
    model = out["problem"]["model"]
    if is_entry(model):  # code: refused before anything is imported unless trusted; a file path made absolute
        if trust_code is not True:
            raise trust_error(model)
        out["problem"]["model"] = resolve_entry(model, base_dir)
    return out, _cross_checks(out, trust_code)


# --------------------------------------------------------------------------------------------
# The Config object
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """A validated, normalised configuration (every key present, floats as float). ``trust_code``: whether
    a custom model (``problem.model = 'module:function'`` or ``'file.py:function'``, Python code) may be
    loaded; carried by :meth:`with_overrides` (sweep points) and by the sweeps' tasks."""

    problem: dict
    dynamics: dict
    simulation: dict
    solver: dict
    trust_code: bool = field(default=False, compare=False)
    # the law validation built (make_law returns it: a config's law is built once); None: built when asked
    _law: laws.Law | None = field(default=None, compare=False, repr=False)

    # ---- serialisation ----
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(getattr(self, s)) for s in SECTIONS}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def flat(self) -> dict[str, Any]:
        """``{"problem.delta": 2.0, ...}``."""
        return {f"{s}.{k}": v for s, body in self.to_dict().items() for k, v in body.items()}

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """A new config with ``{"section.key": value}`` overrides applied (validated again); a key may be short
        (``gamma``) as in :func:`resolve_key`."""
        d = self.to_dict()
        for name, value in overrides.items():
            s, k = resolve_key(name, "override key").split(".", 1)
            d[s][k] = value
        return parse_config(d, trust_code=self.trust_code)

    # ---- derived quantities ----
    @property
    def n(self) -> int:
        """Number of samples in the simulations, ``round(delta * d)`` (conventions.n_samples)."""
        return n_samples(self.problem["delta"], self.simulation["d"])

    @property
    def eta(self) -> float:
        """SGD learning rate (internal convention) ``gamma * batch / n`` (conventions.sgd_eta)."""
        return sgd_eta(self.dynamics["gamma"], self.simulation["batch"], self.n)

    # ---- construction ----
    def make_model(self) -> problem.Model:
        """The model of ``[problem]``: a preset, or a custom model (only when ``trust_code``)."""
        p = self.problem
        if is_entry(p["model"]):
            return load_model(p["model"], self.trust_code)
        if p["model"] == "two_layer":
            return _two_layer_model(p)
        return problem.make_model(p["model"], k=p["student_width"], kstar=p["teacher_width"],
                                  activation=p["activation"], noise=p["noise"])

    def make_problem(self) -> problem.Problem:
        p = self.problem
        if p["init_q"] != 0.0:  # any initial overlaps (validated by the Problem: Q_0 - M_0 M_0^T >= 0)
            m = p["init_m"] if p["init_m"] != 0.0 else None
            return problem.Problem(model=self.make_model(), delta=p["delta"], ridge=p["ridge"], init_q=p["init_q"],
                                   init_m=m)
        return problem.Problem(model=self.make_model(), delta=p["delta"], ridge=p["ridge"],
                               init_scale=p["init_scale"], init_overlap=p["init_overlap"])

    def make_law(self) -> laws.Law:
        """The step-multiplier law of ``[dynamics]``, the one validation built (laws are immutable);
        ConfigError for an algorithm without one ('online')."""
        dy = self.dynamics
        if algorithms.spec(dy["algorithm"]).law is None:
            raise ConfigError(
                f"dynamics.algorithm = {dy['algorithm']!r}: one-pass SGD has no step-multiplier law "
                "(use sgd_dmft.online.solve_online)")
        if self._law is None:  # a Config built by hand
            object.__setattr__(self, "_law", _build_law(dy))
        return self._law


def parse_config(mapping: Mapping[str, Any], trust_code: bool = False, *, base_dir: str | Path | None = None) -> Config:
    """Validate a nested mapping (as read from TOML) and return a normalised :class:`Config`.

    ``trust_code=True`` allows a custom model (``problem.model = 'package.module:function'`` or
    ``'path/to/file.py:function'``), which imports and runs that code; without it such a mapping is a
    ConfigError naming ``problem.model`` and nothing is imported. A relative file path is resolved against
    ``base_dir`` (default: the working directory) and stored absolute.
    """
    c, law = _validate(mapping, trust_code, base_dir)
    return Config(problem=c["problem"], dynamics=c["dynamics"], simulation=c["simulation"], solver=c["solver"],
                  trust_code=trust_code is True, _law=law)


def load_config(path: str | Path, trust_code: bool = False) -> Config:
    """Read and validate a TOML configuration file (``trust_code``: see :func:`parse_config`; a relative
    model file path is resolved against the file's directory)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file '{path}': {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
                          f"save it as UTF-8 TOML") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in '{path}': {e}") from e
    return parse_config(data, trust_code, base_dir=path.absolute().parent)


def config_from_dataset(ds: Any, trust_code: bool = False) -> Config | None:
    """The :class:`Config` stored in a result file's ``config_toml`` attribute (``ds``: an xarray Dataset),
    or None; a file is input like a config: a custom model in it is loaded only with ``trust_code=True``."""
    text = ds.attrs.get("config_toml")
    if not text:
        return None
    return parse_config(tomllib.loads(text), trust_code)
