"""TOML configuration: schema, defaults, validation, and construction of problems and laws.

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
``gamma / dt`` for reshuffling, ...) live in laws.py and grid.py only: validation builds the law and
translates its error to the ``dynamics.<key>`` it comes from. This module keeps the rules that only
concern a configuration (widths vs model, ``batch <= n``, online SGD on a uniform grid, ...).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from . import defaults as D
from . import laws
from . import models as problem  # the models package, under the name this module has always used
from .errors import ConfigError, did_you_mean
from .grid import TimeGrid
from .models.loading import is_entry, load_model, resolve_entry, trust_error
from .models.problem import check_model
from .models.presets import LOSSES

__all__ = ["ALGORITHMS", "Config", "ConfigError", "SCHEMA", "defaults", "load_config", "parse_config",
           "config_from_dataset", "parse_value", "resolve_key", "suggest"]

MODELS = problem.MODELS
ACTIVATIONS = problem.ACTIVATIONS
# the algorithms: every law of laws.LAWS, and one-pass SGD (no law: online.py), listed before
# 'persistent' as they always were (the order of the "one of ..." messages)
_LAST = laws.LAWS.index("persistent")
ALGORITHMS = laws.LAWS[:_LAST] + ("online",) + laws.LAWS[_LAST:]
BATCHINGS = ("uniform", "bernoulli")
COMPRESS = ("auto", "off")
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
# Schema
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    kind: str  # "bool" | "int" | "float" | "str"
    default: Any
    allowed: str  # human-readable description of allowed values
    check: Callable[[Any], bool] = lambda v: True
    doc: str = ""


def _choice(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


def _fmt_choices(options: tuple[str, ...]) -> str:
    return "one of " + " | ".join(options)


MAX_D = 10**9  # simulation.d (the memory estimate refuses most of the range below it)
MAX_SEEDS = 10**6  # simulation.seeds
MAX_MAGNITUDE = 1e12  # |value| of the float keys of [problem] and [dynamics]
MAX_INIT = 1e6  # |init_scale|, |init_overlap| (their trace Q_0 is bounded by Problem: models/problem.py Q0_MAX)

SCHEMA: dict[str, dict[str, _Key]] = {
    "problem": {
        "model": _Key("str", D.MODEL, _fmt_choices(MODELS) + ", or a custom model 'package.module:function' or "
                      "'path/to/file.py:function' returning a Model (runs code: needs --trust-code / trust_code=True)",
                      lambda v: v in MODELS or is_entry(v),
                      "teacher-student model (a preset, or a custom model 'package.module:function' or "
                      "'path/to/file.py:function': Python code, loaded only from a trusted config)"),
        "delta": _Key("float", D.DELTA, "a finite number > 0", lambda v: v > 0, "sample ratio n / d"),
        "noise": _Key("float", D.NOISE, "a finite number >= 0", lambda v: v >= 0, "std of additive label noise"),
        "ridge": _Key("float", D.RIDGE, "a finite number >= 0", lambda v: v >= 0,
                      "ridge lambda in G(theta_j) = lambda |theta_j|^2 / 2"),
        "student_width": _Key("int", 1, "an integer >= 1", lambda v: v >= 1, "student width k"),
        "teacher_width": _Key("int", 1, "an integer >= 1", lambda v: v >= 1, "teacher width k*"),
        "activation": _Key("str", D.ACTIVATION, _fmt_choices(ACTIVATIONS), _choice(ACTIVATIONS),
                           "the student's activation s (committee, two_layer)"),
        "teacher": _Key("str", "", "a link in z1..zK, numbers, + - * / ^, he1..he6, tanh, erf, relu, sign, "
                        "sqrt(constant) ('' = mean_b s(z_b))", lambda v: True,
                        "two_layer: the link g(z1..z_k*) of y = g(r*) + noise eps"),
        "second_layer": _Key("weights", "mean", "'mean' (1/k each), a number or a list of student_width numbers",
                             lambda v: True, "two_layer: the second layer a of f(r) = sum_a a_a s(r_a + b_a)"),
        "bias": _Key("weights", 0.0, "a number or a list of student_width numbers", lambda v: True,
                     "two_layer: the biases b"),
        "loss": _Key("str", "square", _fmt_choices(LOSSES), _choice(LOSSES),
                     "two_layer: square (f - y)^2 / 2, or logistic log(1 + exp(-y f)) with y = sign(g + noise eps)"),
        "init_scale": _Key("float", D.INIT_SCALE, "a finite number >= 0", lambda v: v >= 0,
                           "theta_0 = init_overlap theta* + init_scale Z"),
        "init_overlap": _Key("matrix", 0.0, "a finite number, or a student_width x teacher_width matrix (list of rows)",
                             lambda v: True, "initial alignment theta_0 = theta* B^T + init_scale Z: a number c "
                             "(B = c x the selection matrix; needs k == k* when nonzero) or the k x k* matrix B"),
        "init_q": _Key("matrix", 0.0, "a student_width x student_width matrix (list of rows); 0 = not given",
                       lambda v: True, "any initial overlaps: Q_0 = theta_0^T theta_0 / d, with init_m (in place of "
                       "init_scale / init_overlap; Q_0 - M_0 M_0^T positive semidefinite)"),
        "init_m": _Key("matrix", 0.0, "a student_width x teacher_width matrix (list of rows); 0 = zero",
                       lambda v: True, "with init_q: M_0 = theta_0^T theta* / d"),
    },
    "dynamics": {
        "algorithm": _Key("str", D.ALGORITHM, _fmt_choices(ALGORITHMS), _choice(ALGORITHMS), "training algorithm"),
        "gamma": _Key("float", D.GAMMA, "a finite number > 0", lambda v: v > 0,
                      "per-visit step; SGD learning rate eta = gamma * batch / n"),
        "t_max": _Key("float", D.T_MAX, "a finite number > 0", lambda v: v > 0, "final time t = steps * eta"),
        "dt": _Key("float", D.DT, "a finite number > 0", lambda v: v > 0, "time-grid step"),
        "growth": _Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "graded grid for long horizons: step clip(growth * t, dt, dt_max); 0 = uniform"),
        "dt_max": _Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "largest step of a graded grid (0 = no cap; sgd/persistent need one)"),
        "persist_b": _Key("float", 0.5, "a number in (0, 1]", lambda v: 0 < v <= 1,
                          "persistent law: stationary on-fraction b"),
        "persist_tau": _Key("float", 1.0, "a finite number > 0", lambda v: v > 0,
                            "persistent law: persistence time"),
        "lr_times": _Key("times", [], "a list of increasing times > 0", lambda v: True,
                         "learning-rate schedule: the times t where the factor changes"),
        "lr_factors": _Key("times", [], "a list of numbers >= 0, one more than lr_times ([] = constant 1)",
                           lambda v: True, "the step is gamma x lr_factors[i] on [lr_times[i-1], lr_times[i]) "
                           "(weight decay included, as torch.optim.lr_scheduler); cosine: [final factor]"),
        "lr_schedule": _Key("str", "steps", "one of steps | cosine | warmup",
                            lambda v: v in ("steps", "cosine", "warmup"),
                            "steps: lr_times / lr_factors; cosine: annealing from 1 to lr_factors[0] (default 0) "
                            "over t_max, in 64 constant pieces; warmup: linear from lr_factors[0] (default 0) to 1 "
                            "over [0, lr_times[0]], in 16 pieces"),
    },
    "simulation": {
        "d": _Key("int", D.D, f"an integer in [10, {MAX_D}]", lambda v: 10 <= v <= MAX_D, "dimension"),
        "batch": _Key("int", D.BATCH, "an integer >= 1 (and <= n)", lambda v: v >= 1, "mini-batch size kappa"),
        "batching": _Key("str", D.BATCHING, _fmt_choices(BATCHINGS), _choice(BATCHINGS),
                         "uniform batches of size kappa, or Bernoulli(dt/gamma) membership"),
        "seeds": _Key("int", D.SEEDS, f"an integer in [1, {MAX_SEEDS}]", lambda v: 1 <= v <= MAX_SEEDS, "independent runs"),
        "seed": _Key("int", D.SEED, "an integer in [0, 2^63)", lambda v: 0 <= v < 2**63, "base random seed"),
        "max_memory_gb": _Key("float", D.MAX_MEMORY_GB, "a finite number > 0", lambda v: v > 0,
                              "memory budget of a simulation (GiB; refused up front past it)"),
    },
    "solver": {
        "paths": _Key("int", D.PATHS, "an integer in [10, 2^53]", lambda v: 10 <= v <= 2**53, "Monte Carlo paths of the sample process (in total, split over replicas)"),
        "replicas": _Key("int", D.REPLICAS, "an integer in [2, 2^53]", lambda v: 2 <= v <= 2**53,
                         "independent replicas (for stderr)"),
        "seed": _Key("int", D.SEED, "an integer in [0, 2^63)", lambda v: 0 <= v < 2**63, "solver random seed"),
        "max_memory_gb": _Key("float", D.MAX_MEMORY_GB, "a finite number > 0", lambda v: v > 0,
                              "memory budget (paths are split into more replicas to fit)"),
        "workers": _Key("int", 0, "an integer in [0, 1024]", lambda v: 0 <= v <= 1024,
                        "replicas run in this many processes at once (0 = one per CPU core, up to replicas)"),
        "extrapolate": _Key("bool", True, "true or false", lambda v: True,
                            "the continuous-time limit dt -> 0 (Richardson over dt, 2 dt, error from 4 dt, ~1.3x the raw "
                            "cost; gf, sgd, sme, reshuffle, persistent on uniform grids); false: the raw recursion at dt"),
        "extrapolate_graded": _Key("bool", True, "true or false", lambda v: True,
                                   "graded grids too (nested levels: pairs of steps merged, ~1.3x the raw cost; "
                                   "each step split in two where merged steps are not allowed, 4-5x); false: a graded "
                                   "grid gives its raw recursion"),
        "rtol": _Key("float", 0.0, "a finite number >= 0 (0: no target)", lambda v: v >= 0,
                     "target relative standard error of train/test loss (worst over t > 0): replicas are added"),
        "max_time_s": _Key("float", 0.0, "a finite number >= 0 (0: no limit)", lambda v: v >= 0,
                           "wall-time budget of the replicas added for rtol"),
        "tail": _Key("float", 0.0, "a number in [0, 1]", lambda v: 0 <= v <= 1,
                     "mass of the largest teacher fields |r*| whose paths get R_F by integration by parts at fixed "
                     "r* (unstable large-label visits; docs/theory.md section 3c)"),
        "response_window": _Key("float", 0.0, "a finite number >= 0 (0: the whole past)", lambda v: v >= 0,
                                "pathwise tangents keep this much time of the past (R_F = 0 beyond it): work and "
                                "memory linear in the horizon; the error it causes is estimated and warned about"),
        "compress": _Key("str", "auto", _fmt_choices(COMPRESS), _choice(COMPRESS),
                         "auto: a long run (over a minute on one core on the uniform grid with the whole past) gets a "
                         "graded grid (SGD-type laws: steps growing 2 % of t up to gamma / 4) and, if still long, "
                         "solver.response_window = 30; only where dynamics.growth and solver.response_window are 0; "
                         "the plan, the attrs 'compressed' and the result's config say what ran"),
    },
}

SECTIONS = tuple(SCHEMA)


def defaults() -> dict[str, dict[str, Any]]:
    """The default configuration as a nested dict."""
    return {s: {k: spec.default for k, spec in keys.items()} for s, keys in SCHEMA.items()}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def suggest(word: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to a misspelt ``word`` (case-insensitive), or '' if none
    is close (:func:`sgd_dmft.errors.did_you_mean`)."""
    return did_you_mean(word, options)


def resolve_key(name: str, what: str = "key") -> str:
    """The ``section.key`` a command-line key names, the one rule of every ``-s/--set`` (``compare``, ``solve``,
    ``simulate``, ``sweep``): ``gamma`` -> ``dynamics.gamma`` (a short name resolves to the unique section that
    has it); ``dynamics.gamma`` stays. An ambiguous short name (``seed``: ``simulation.seed``,
    ``solver.seed``) is refused with its candidates; an unknown one with the nearest name. ``what`` names the
    key in the message (``"sweep key"``)."""
    name = name.strip()
    if "." in name:
        s, k = name.split(".", 1)
        if s in SCHEMA and k in SCHEMA[s]:
            return name
        elsewhere = [f"{s2}.{k}" for s2, keys in SCHEMA.items() if k in keys]
        sugg = f" (did you mean '{elsewhere[0]}'?)" if elsewhere else suggest(name, _all_dotted())
        raise ConfigError(f"{what} {name!r} is not a config key{sugg}", key=name)
    hits = [f"{s}.{name}" for s, keys in SCHEMA.items() if name in keys]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"{what} {name!r} is ambiguous: write one of {', '.join(hits)}", key=name)
    shorts = sorted({k for keys in SCHEMA.values() for k in keys})
    raise ConfigError(f"{what} {name!r} is not a config key{suggest(name, shorts)}", key=name)


def _all_dotted() -> list[str]:
    return [f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys]


def _typename(v: Any) -> str:
    return type(v).__name__


def _coerce(section: str, key: str, value: Any) -> Any:
    spec = SCHEMA[section][key]
    name = f"{section}.{key}"
    if spec.kind in ("weights", "matrix"):
        return _coerce_array(name, spec, value)
    if spec.kind == "times":
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or not all(math.isfinite(float(v)) and abs(float(v)) <= MAX_MAGNITUDE for v in value):
            raise ConfigError(f"{name} = {value!r}: must be {spec.allowed} (finite)", key=name)
        return [float(v) for v in value]
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        v: Any = int(value)
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        try:
            v = float(value)
        except OverflowError:  # an integer beyond the float range
            v = math.inf
        if not math.isfinite(v):
            raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        v = value
    if not spec.check(v):
        extra = ""
        if spec.kind == "str":  # the enumerated values: 'one of a | b | c[, or ...]'
            extra = suggest(v, spec.allowed.removeprefix("one of ").split(",")[0].split(" | "))
        raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}{extra}")
    return v


def _cross_checks(c: dict[str, dict[str, Any]], trust_code: bool) -> None:
    _check_magnitudes(c)
    _check_widths(c["problem"], trust_code)
    _check_dynamics(c["dynamics"])
    _check_samples(c["problem"], c["simulation"])
    _check_solver(c["solver"])


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
    """Monte Carlo paths are split over the replicas: at least 2 paths per replica."""
    if so["paths"] < 2 * so["replicas"]:
        raise ConfigError(f"solver.paths = {so['paths']}: must be >= 2 * solver.replicas = {2 * so['replicas']} "
                          f"(the paths are split over the replicas)", key="solver.paths")


def _coerce_array(name: str, spec: _Key, value: Any) -> Any:
    """``weights``: 'mean' (second_layer), a number or a flat list of numbers; ``matrix``: a number or a
    list of equal-length lists of numbers. Numbers as floats, finite and of magnitude <= MAX_INIT."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def bad(why: str = "") -> ConfigError:
        return ConfigError(f"{name} = {value!r}{' (' + _typename(value) + ')' if not why else ''}: "
                           f"must be {spec.allowed}{why}", key=name)

    if spec.kind == "weights" and value == "mean" and name.endswith("second_layer"):
        return value
    if number(value):
        vals, out = [value], float(value)
    elif spec.kind == "weights" and isinstance(value, list) and value and all(number(v) for v in value):
        vals, out = value, [float(v) for v in value]
    elif (spec.kind == "matrix" and isinstance(value, list) and value and all(isinstance(r, list) and r for r in value)
          and all(number(v) for r in value for v in r) and len({len(r) for r in value}) == 1):
        vals, out = [v for r in value for v in r], [[float(v) for v in r] for r in value]
    else:
        raise bad()
    try:
        ok = all(math.isfinite(float(v)) and abs(float(v)) <= MAX_INIT for v in vals)
    except OverflowError:
        ok = False
    if not ok:
        raise bad(f" (finite, |value| <= {MAX_INIT:g})")
    return out


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


def _check_dynamics(dy: dict[str, Any]) -> None:
    """The config-only rules of ``[dynamics]``, then the law's (and the grid's) own, by building them."""
    t_max, dt, alg = dy["t_max"], dy["dt"], dy["algorithm"]
    if dt > t_max:
        raise ConfigError(f"dynamics.dt = {dt!r}: must be <= dynamics.t_max = {t_max!r}")
    if alg == "online":  # no law: the schedule and the record grid (graded records allowed)
        lr_schedule(dy)
        try:
            TimeGrid(dt, dy["growth"], dy["dt_max"] or None)
        except ConfigError as e:
            raise _law_error(dy, e) from None
    else:
        _build_law(dy)


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


def _law_args(dy: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    args = dict(dt=dy["dt"], gamma=dy["gamma"], b=dy["persist_b"], tau=dy["persist_tau"],
                growth=dy["growth"], dt_max=dy["dt_max"] or None, lr=lr_schedule(dy))  # dt_max = 0: no cap
    args.update(changes)
    return args


def _build_law(dy: Mapping[str, Any]) -> laws.Law:
    """The law of ``[dynamics]`` (laws.make_law); its ConfigError becomes one naming ``dynamics.<key>``."""
    try:
        return laws.make_law(dy["algorithm"], **_law_args(dy))
    except ConfigError as e:
        raise _law_error(dy, e) from None


def _law_error(dy: Mapping[str, Any], e: ConfigError) -> ConfigError:
    """A law's (or grid's) error as a config error: ``dynamics.<key> = <value>: <the law's rule>``."""
    alg, growth, dt_max = dy["algorithm"], dy["growth"], dy["dt_max"]
    if growth > 0 and not dt_max and alg != "online":
        try:  # refused without a cap, accepted with the smallest graded one: the cap is what is missing
            laws.make_law(alg, **_law_args(dy, dt_max=math.nextafter(dy["dt"], math.inf)))
        except ConfigError:
            pass
        else:
            return ConfigError(f"dynamics.dt_max = {dt_max!r}: a graded grid (dynamics.growth = {growth!r}) for "
                               f"algorithm '{alg}' needs a cap dt_max > 0 ({e})", key="dynamics.dt_max")
    key = LAW_KEYS.get(e.key or "", "dynamics.algorithm")
    value = dy[key.split(".", 1)[1]]
    return ConfigError(f"{key} = {value!r}: not allowed for algorithm '{alg}': {e}", key=key)


def _check_samples(p: dict[str, Any], sim: dict[str, Any]) -> None:
    n = int(round(p["delta"] * sim["d"]))
    if n < 1:
        raise ConfigError(
            f"problem.delta = {p['delta']!r}: n = round(delta * d) = {n} with d = {sim['d']}; need n >= 1")
    if sim["batch"] > n:
        raise ConfigError(
            f"simulation.batch = {sim['batch']}: must be <= n = round(delta * d) = {n}")


def _validate(mapping: Mapping[str, Any], trust_code: bool = False,
              base_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"configuration must be a table/mapping, got {_typename(mapping)}")
    out = defaults()
    for section, body in mapping.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section {str(section)!r}{suggest(str(section), list(SECTIONS))}; allowed: {', '.join(SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"section {section!r} must be a table, got {body!r} ({_typename(body)})")
        for key, value in body.items():
            if key not in SCHEMA[section]:
                dotted = f"{section}.{key}"
                elsewhere = [s for s in SECTIONS if key in SCHEMA[s]]
                sugg = f" (did you mean '{elsewhere[0]}.{key}'?)" if elsewhere else suggest(dotted, _all_dotted())
                if not sugg:
                    sugg = suggest(str(key), list(SCHEMA[section]))
                    sugg = sugg.replace("'", f"'{section}.", 1) if sugg else ""
                raise ConfigError(f"unknown key {dotted!r}{sugg}")
            out[section][key] = _coerce(section, key, value)
    model = out["problem"]["model"]
    if is_entry(model):  # code: refused before anything is imported unless trusted; a file path made absolute
        if trust_code is not True:
            raise trust_error(model)
        out["problem"]["model"] = resolve_entry(model, base_dir)
    _cross_checks(out, trust_code)
    return out


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
        """Number of samples in the simulations, ``round(delta * d)``."""
        return int(round(self.problem["delta"] * self.simulation["d"]))

    @property
    def eta(self) -> float:
        """SGD learning rate (internal convention) ``gamma * batch / n``."""
        return self.dynamics["gamma"] * self.simulation["batch"] / self.n

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
        """The step-multiplier law of ``[dynamics]`` (ConfigError for 'online', which has none)."""
        dy = self.dynamics
        if dy["algorithm"] == "online":
            raise ConfigError(
                "dynamics.algorithm = 'online': one-pass SGD has no step-multiplier law "
                "(use sgd_dmft.online.solve_online)")
        return _build_law(dy)


def parse_config(mapping: Mapping[str, Any], trust_code: bool = False, *, base_dir: str | Path | None = None) -> Config:
    """Validate a nested mapping (as read from TOML) and return a normalised :class:`Config`.

    ``trust_code=True`` allows a custom model (``problem.model = 'package.module:function'`` or
    ``'path/to/file.py:function'``), which imports and runs that code; without it such a mapping is a
    ConfigError naming ``problem.model`` and nothing is imported. A relative file path is resolved against
    ``base_dir`` (default: the working directory) and stored absolute.
    """
    c = _validate(mapping, trust_code, base_dir)
    return Config(problem=c["problem"], dynamics=c["dynamics"], simulation=c["simulation"], solver=c["solver"],
                  trust_code=trust_code is True)


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
