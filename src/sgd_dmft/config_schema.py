"""The configuration's schema: every key of the four sections, its type, default, allowed values and
meaning (:data:`SCHEMA`), and the per-key coercion of a value read from TOML (:func:`coerce`); the rules across
keys, and the objects built from a configuration, are config.py's. Re-exported by config.py (``config.SCHEMA``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Collection

from . import algorithms
from . import defaults as D
from . import models
from .errors import ConfigError, did_you_mean
from .models.loading import is_entry
from .models.presets import LOSSES

__all__ = ["SCHEMA", "SECTIONS", "Key", "ALGORITHMS", "BATCHINGS", "COMPRESS", "MODELS", "ACTIVATIONS", "MAX_D",
           "MAX_SEEDS", "MAX_MAGNITUDE", "MAX_INIT", "defaults", "suggest", "resolve_key", "all_dotted", "coerce",
           "typename", "coerce_array"]

MODELS = models.MODELS
ACTIVATIONS = models.ACTIVATIONS
# the algorithms: the registry's names, a live view (an algorithm registered later is allowed too; algorithms.py)
ALGORITHMS = algorithms.REGISTRY.keys()
BATCHINGS = ("uniform", "bernoulli")
COMPRESS = ("auto", "off")
# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    kind: str  # "bool" | "int" | "float" | "str"
    default: Any
    describe: str | Callable[[], str]  # the allowed values in words (a callable: said when asked)
    check: Callable[[Any], bool] = lambda v: True
    doc: str = ""

    @property
    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        return self.describe() if callable(self.describe) else self.describe


def _choice(options: Collection[str]) -> Callable[[Any], bool]:
    return lambda v: v in options


def _fmt_choices(options: Collection[str]) -> str:
    return "one of " + " | ".join(options)


MAX_D = 10**9  # simulation.d (the memory estimate refuses most of the range below it)
MAX_SEEDS = 10**6  # simulation.seeds
MAX_MAGNITUDE = 1e12  # |value| of the float keys of [problem] and [dynamics]
MAX_INIT = 1e6  # |init_scale|, |init_overlap| (their trace Q_0 is bounded by Problem: models/problem.py Q0_MAX)

SCHEMA: dict[str, dict[str, Key]] = {
    "problem": {
        "model": Key("str", D.MODEL, _fmt_choices(MODELS) + ", or a custom model 'package.module:function' or "
                      "'path/to/file.py:function' returning a Model (runs code: needs --trust-code / trust_code=True)",
                      lambda v: v in MODELS or is_entry(v),
                      "teacher-student model (a preset, or a custom model 'package.module:function' or "
                      "'path/to/file.py:function': Python code, loaded only from a trusted config)"),
        "delta": Key("float", D.DELTA, "a finite number > 0", lambda v: v > 0, "sample ratio n / d"),
        "noise": Key("float", D.NOISE, "a finite number >= 0", lambda v: v >= 0, "std of additive label noise"),
        "ridge": Key("float", D.RIDGE, "a finite number >= 0", lambda v: v >= 0,
                      "ridge lambda in G(theta_j) = lambda |theta_j|^2 / 2"),
        "student_width": Key("int", 1, "an integer >= 1", lambda v: v >= 1, "student width k"),
        "teacher_width": Key("int", 1, "an integer >= 1", lambda v: v >= 1, "teacher width k*"),
        "activation": Key("str", D.ACTIVATION, _fmt_choices(ACTIVATIONS), _choice(ACTIVATIONS),
                           "the student's activation s (committee, two_layer)"),
        "teacher": Key("str", "", "a link in z1..zK, numbers, + - * / ^, he1..he6, tanh, erf, relu, sign, "
                        "sqrt(constant) ('' = mean_b s(z_b))", lambda v: True,
                        "two_layer: the link g(z1..z_k*) of y = g(r*) + noise eps"),
        "second_layer": Key("weights", "mean", "'mean' (1/k each), a number or a list of student_width numbers",
                             lambda v: True, "two_layer: the second layer a of f(r) = sum_a a_a s(r_a + b_a)"),
        "bias": Key("weights", 0.0, "a number or a list of student_width numbers", lambda v: True,
                     "two_layer: the biases b"),
        "loss": Key("str", "square", _fmt_choices(LOSSES), _choice(LOSSES),
                     "two_layer: square (f - y)^2 / 2, or logistic log(1 + exp(-y f)) with y = sign(g + noise eps)"),
        "init_scale": Key("float", D.INIT_SCALE, "a finite number >= 0", lambda v: v >= 0,
                           "theta_0 = init_overlap theta* + init_scale Z"),
        "init_overlap": Key("matrix", 0.0, "a finite number, or a student_width x teacher_width matrix (list of rows)",
                             lambda v: True, "initial alignment theta_0 = theta* B^T + init_scale Z: a number c "
                             "(B = c x the selection matrix; needs k == k* when nonzero) or the k x k* matrix B"),
        "init_q": Key("matrix", 0.0, "a student_width x student_width matrix (list of rows); 0 = not given",
                       lambda v: True, "any initial overlaps: Q_0 = theta_0^T theta_0 / d, with init_m (in place of "
                       "init_scale / init_overlap; Q_0 - M_0 M_0^T positive semidefinite)"),
        "init_m": Key("matrix", 0.0, "a student_width x teacher_width matrix (list of rows); 0 = zero",
                       lambda v: True, "with init_q: M_0 = theta_0^T theta* / d"),
    },
    "dynamics": {
        "algorithm": Key("str", D.ALGORITHM, lambda: _fmt_choices(ALGORITHMS), _choice(ALGORITHMS),
                          "training algorithm"),
        "gamma": Key("float", D.GAMMA, "a finite number > 0", lambda v: v > 0,
                      "per-visit step; SGD learning rate eta = gamma * batch / n"),
        "t_max": Key("float", D.T_MAX, "a finite number > 0", lambda v: v > 0, "final time t = steps * eta"),
        "dt": Key("float", D.DT, "a finite number > 0", lambda v: v > 0, "time-grid step"),
        "growth": Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "graded grid for long horizons: step clip(growth * t, dt, dt_max); 0 = uniform"),
        "dt_max": Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "largest step of a graded grid (0 = no cap; sgd/persistent need one)"),
        "persist_b": Key("float", 0.5, "a number in (0, 1]", lambda v: 0 < v <= 1,
                          "persistent law: stationary on-fraction b"),
        "persist_tau": Key("float", 1.0, "a finite number > 0", lambda v: v > 0,
                            "persistent law: persistence time"),
        "lr_times": Key("times", [], "a list of increasing times > 0", lambda v: True,
                         "learning-rate schedule: the times t where the factor changes"),
        "lr_factors": Key("times", [], "a list of numbers >= 0, one more than lr_times ([] = constant 1)",
                           lambda v: True, "the step is gamma x lr_factors[i] on [lr_times[i-1], lr_times[i]) "
                           "(weight decay included, as torch.optim.lr_scheduler); cosine: [final factor]"),
        "lr_schedule": Key("str", "steps", "one of steps | cosine | warmup",
                            lambda v: v in ("steps", "cosine", "warmup"),
                            "steps: lr_times / lr_factors; cosine: annealing from 1 to lr_factors[0] (default 0) "
                            "over t_max, in 64 constant pieces; warmup: linear from lr_factors[0] (default 0) to 1 "
                            "over [0, lr_times[0]], in 16 pieces"),
    },
    "simulation": {
        "d": Key("int", D.D, f"an integer in [10, {MAX_D}]", lambda v: 10 <= v <= MAX_D, "dimension"),
        "batch": Key("int", D.BATCH, "an integer >= 1 (and <= n)", lambda v: v >= 1, "mini-batch size kappa"),
        "batching": Key("str", D.BATCHING, _fmt_choices(BATCHINGS), _choice(BATCHINGS),
                         "uniform batches of size kappa, or Bernoulli(dt/gamma) membership"),
        "seeds": Key("int", D.SEEDS, f"an integer in [1, {MAX_SEEDS}]", lambda v: 1 <= v <= MAX_SEEDS, "independent runs"),
        "seed": Key("int", D.SEED, "an integer in [0, 2^63)", lambda v: 0 <= v < 2**63, "base random seed"),
        "max_memory_gb": Key("float", D.MAX_MEMORY_GB, "a finite number > 0", lambda v: v > 0,
                              "memory budget of a simulation (GiB; refused up front past it)"),
    },
    "solver": {
        "paths": Key("int", D.PATHS, "an integer in [10, 2^53]", lambda v: 10 <= v <= 2**53, "Monte Carlo paths of the sample process (in total, split over replicas)"),
        "replicas": Key("int", D.REPLICAS, "an integer in [2, 2^53]", lambda v: 2 <= v <= 2**53,
                         "independent replicas (for stderr)"),
        "seed": Key("int", D.SEED, "an integer in [0, 2^63)", lambda v: 0 <= v < 2**63, "solver random seed"),
        "max_memory_gb": Key("float", D.MAX_MEMORY_GB, "a finite number > 0", lambda v: v > 0,
                              "memory budget (paths are split into more replicas to fit)"),
        "workers": Key("int", 0, "an integer in [0, 1024]", lambda v: 0 <= v <= 1024,
                        "replicas run in this many processes at once (0 = one per CPU core, up to replicas)"),
        "extrapolate": Key("bool", True, "true or false", lambda v: True,
                            "the continuous-time limit dt -> 0 (Richardson over dt, 2 dt, error from 4 dt, ~1.3x the raw "
                            "cost; gf, sgd, sme, reshuffle, persistent on uniform grids); false: the raw recursion at dt"),
        "extrapolate_graded": Key("bool", True, "true or false", lambda v: True,
                                   "graded grids too (nested levels: pairs of steps merged, ~1.3x the raw cost; "
                                   "each step split in two where merged steps are not allowed, 4-5x); false: a graded "
                                   "grid gives its raw recursion"),
        "rtol": Key("float", 0.0, "a finite number >= 0 (0: no target)", lambda v: v >= 0,
                     "target relative standard error of train/test loss (worst over t > 0): replicas are added"),
        "max_time_s": Key("float", 0.0, "a finite number >= 0 (0: no limit)", lambda v: v >= 0,
                           "wall-time budget of the replicas added for rtol"),
        "tail": Key("float", 0.0, "a number in [0, 1]", lambda v: 0 <= v <= 1,
                     "mass of the largest teacher fields |r*| whose paths get R_F by integration by parts at fixed "
                     "r* (unstable large-label visits; docs/theory.md section 3c)"),
        "response_window": Key("float", 0.0, "a finite number >= 0 (0: the whole past)", lambda v: v >= 0,
                                "pathwise tangents keep this much time of the past (R_F = 0 beyond it): work and "
                                "memory linear in the horizon; the error it causes is estimated and warned about"),
        "tangent_share": Key("float", 0.0, "0 (auto) or a number in (0, 1]", lambda v: 0 <= v <= 1,
                              "share of each replica's paths that carry the pathwise tangents (R_F estimated on them, "
                              "at least 256, scaled to all the paths); 0: a quarter for a windowed gf / gd / sme (their "
                              "tangents are most of a long run: 5x faster, standard errors ~1.2x), every path otherwise"),
        "compress": Key("str", "auto", _fmt_choices(COMPRESS), _choice(COMPRESS),
                         "auto: a long run (over a minute on one core on the uniform grid with the whole past) gets a "
                         "graded grid (steps growing 2 % of t up to gamma / 4 for SGD-type laws; for gf / gd / sme up "
                         "to a step whose 4 dt Richardson level stays below 2 / a bound on the Hessian, where the "
                         "model has one, e.g. logistic) and, if still long, solver.response_window = 30 (past 5 min "
                         "on one core even so: steps up to gamma / 2, or the level at the bound's edge); a long gd "
                         "is answered by its dt -> 0 limit with its distance from it in dt_error; only "
                         "where dynamics.growth and solver.response_window are 0; the plan, the attrs 'compressed' "
                         "and the result's config say what ran"),
    },
}

SECTIONS = tuple(SCHEMA)


def defaults() -> dict[str, dict[str, Any]]:
    """The default configuration as a nested dict."""
    return {s: {k: spec.default for k, spec in keys.items()} for s, keys in SCHEMA.items()}


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
        sugg = f" (did you mean '{elsewhere[0]}'?)" if elsewhere else suggest(name, all_dotted())
        raise ConfigError(f"{what} {name!r} is not a config key{sugg}", key=name)
    hits = [f"{s}.{name}" for s, keys in SCHEMA.items() if name in keys]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"{what} {name!r} is ambiguous: write one of {', '.join(hits)}", key=name)
    shorts = sorted({k for keys in SCHEMA.values() for k in keys})
    raise ConfigError(f"{what} {name!r} is not a config key{suggest(name, shorts)}", key=name)


def all_dotted() -> list[str]:
    return [f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys]


def typename(v: Any) -> str:
    return type(v).__name__


def coerce(section: str, key: str, value: Any) -> Any:
    spec = SCHEMA[section][key]
    name = f"{section}.{key}"
    if spec.kind in ("weights", "matrix"):
        return coerce_array(name, spec, value)
    if spec.kind == "times":
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or not all(math.isfinite(float(v)) and abs(float(v)) <= MAX_MAGNITUDE for v in value):
            raise ConfigError(f"{name} = {value!r}: must be {spec.allowed} (finite)", key=name)
        return [float(v) for v in value]
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} = {value!r} ({typename(value)}): must be {spec.allowed}")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {value!r} ({typename(value)}): must be {spec.allowed}")
        v: Any = int(value)
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} = {value!r} ({typename(value)}): must be {spec.allowed}")
        try:
            v = float(value)
        except OverflowError:  # an integer beyond the float range
            v = math.inf
        if not math.isfinite(v):
            raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r} ({typename(value)}): must be {spec.allowed}")
        v = value
    if not spec.check(v):
        extra = ""
        if spec.kind == "str":  # the enumerated values: 'one of a | b | c[, or ...]'
            extra = suggest(v, spec.allowed.removeprefix("one of ").split(",")[0].split(" | "))
        raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}{extra}")
    return v


def coerce_array(name: str, spec: Key, value: Any) -> Any:
    """``weights``: 'mean' (second_layer), a number or a flat list of numbers; ``matrix``: a number or a
    list of equal-length lists of numbers. Numbers as floats, finite and of magnitude <= MAX_INIT."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def bad(why: str = "") -> ConfigError:
        return ConfigError(f"{name} = {value!r}{' (' + typename(value) + ')' if not why else ''}: "
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
