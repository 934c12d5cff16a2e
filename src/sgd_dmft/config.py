"""TOML configuration: schema, defaults, validation, and construction of problems and laws.

A configuration has four sections, every key optional (defaults below)::

    [problem]     model, delta, noise, ridge, student_width, teacher_width, activation,
                  init_scale, init_overlap
    [dynamics]    algorithm, gamma, t_max, dt, growth, dt_max, persist_b, persist_tau
    [simulation]  d, batch, batching, seeds, seed
    [solver]      paths, replicas, seed, max_memory_gb, workers

Every key is validated; any problem raises :class:`ConfigError` (a ``ValueError``) with a one-line
message naming the key as ``section.key``, the offending value and what is allowed. Unknown keys get
a "did you mean" suggestion. See README.md for the full reference table.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from . import laws, problem

MODELS = problem.MODELS
ACTIVATIONS = problem.ACTIVATIONS
ALGORITHMS = ("gf", "gd", "sgd", "sme", "reshuffle", "online", "persistent")
BATCHINGS = ("uniform", "bernoulli")


class ConfigError(ValueError):
    """An invalid configuration (one-line message naming the key, the value and what is allowed)."""


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    kind: str  # "int" | "float" | "str"
    default: Any
    allowed: str  # human-readable description of allowed values
    check: Callable[[Any], bool] = lambda v: True
    doc: str = ""


def _choice(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


def _fmt_choices(options: tuple[str, ...]) -> str:
    return "one of " + " | ".join(options)


SCHEMA: dict[str, dict[str, _Key]] = {
    "problem": {
        "model": _Key("str", "logistic", _fmt_choices(MODELS), _choice(MODELS),
                      "teacher-student model"),
        "delta": _Key("float", 2.0, "a finite number > 0", lambda v: v > 0, "sample ratio n / d"),
        "noise": _Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0, "std of additive label noise"),
        "ridge": _Key("float", 0.1, "a finite number >= 0", lambda v: v >= 0,
                      "ridge lambda in G(theta_j) = lambda |theta_j|^2 / 2"),
        "student_width": _Key("int", 1, "an integer >= 1", lambda v: v >= 1, "student width k"),
        "teacher_width": _Key("int", 1, "an integer >= 1", lambda v: v >= 1, "teacher width k*"),
        "activation": _Key("str", "erf", _fmt_choices(ACTIVATIONS), _choice(ACTIVATIONS),
                           "committee activation"),
        "init_scale": _Key("float", 0.5, "a finite number >= 0", lambda v: v >= 0,
                           "theta_0 = init_overlap theta* + init_scale Z"),
        "init_overlap": _Key("float", 0.0, "a finite number", lambda v: True,
                             "initial alignment with the teacher (needs k == k* when nonzero)"),
    },
    "dynamics": {
        "algorithm": _Key("str", "sgd", _fmt_choices(ALGORITHMS), _choice(ALGORITHMS), "training algorithm"),
        "gamma": _Key("float", 0.5, "a finite number > 0", lambda v: v > 0,
                      "per-visit step; SGD learning rate eta = gamma * batch / n"),
        "t_max": _Key("float", 4.0, "a finite number > 0", lambda v: v > 0, "final time t = steps * eta"),
        "dt": _Key("float", 0.01, "a finite number > 0", lambda v: v > 0, "time-grid step"),
        "growth": _Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "graded grid for long horizons: step clip(growth * t, dt, dt_max); 0 = uniform"),
        "dt_max": _Key("float", 0.0, "a finite number >= 0", lambda v: v >= 0,
                       "largest step of a graded grid (0 = no cap; sgd/persistent need one)"),
        "persist_b": _Key("float", 0.5, "a number in (0, 1]", lambda v: 0 < v <= 1,
                          "persistent law: stationary on-fraction b"),
        "persist_tau": _Key("float", 1.0, "a finite number > 0", lambda v: v > 0,
                            "persistent law: persistence time"),
    },
    "simulation": {
        "d": _Key("int", 2000, "an integer >= 10", lambda v: v >= 10, "dimension"),
        "batch": _Key("int", 1, "an integer >= 1 (and <= n)", lambda v: v >= 1, "mini-batch size kappa"),
        "batching": _Key("str", "uniform", _fmt_choices(BATCHINGS), _choice(BATCHINGS),
                         "uniform batches of size kappa, or Bernoulli(dt/gamma) membership"),
        "seeds": _Key("int", 8, "an integer >= 1", lambda v: v >= 1, "independent runs"),
        "seed": _Key("int", 0, "an integer >= 0", lambda v: v >= 0, "base random seed"),
    },
    "solver": {
        "paths": _Key("int", 8000, "an integer >= 10", lambda v: v >= 10, "Monte Carlo paths of the sample process (in total, split over replicas)"),
        "replicas": _Key("int", 8, "an integer >= 2", lambda v: v >= 2, "independent replicas (for stderr)"),
        "seed": _Key("int", 0, "an integer >= 0", lambda v: v >= 0, "solver random seed"),
        "max_memory_gb": _Key("float", 8.0, "a finite number > 0", lambda v: v > 0,
                              "memory budget (paths are split into more replicas to fit)"),
        "workers": _Key("int", 0, "an integer >= 0", lambda v: v >= 0,
                        "replicas run in this many processes at once (0 = one per CPU core, up to replicas)"),
    },
}

SECTIONS = tuple(SCHEMA)


def defaults() -> dict[str, dict[str, Any]]:
    """The default configuration as a nested dict."""
    return {s: {k: spec.default for k, spec in keys.items()} for s, keys in SCHEMA.items()}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _suggest(word: str, options: list[str]) -> str:
    m = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{m[0]}'?)" if m else ""


def _all_dotted() -> list[str]:
    return [f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys]


def _typename(v: Any) -> str:
    return type(v).__name__


def _coerce(section: str, key: str, value: Any) -> Any:
    spec = SCHEMA[section][key]
    name = f"{section}.{key}"
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        v: Any = int(value)
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r} ({_typename(value)}): must be {spec.allowed}")
        v = value
    if not spec.check(v):
        extra = ""
        if spec.kind == "str":
            extra = _suggest(v, [o for o in spec.allowed.removeprefix("one of ").split(" | ")])
        raise ConfigError(f"{name} = {value!r}: must be {spec.allowed}{extra}")
    return v


def _cross_checks(c: dict[str, dict[str, Any]]) -> None:
    p, dy, sim = c["problem"], c["dynamics"], c["simulation"]
    k, ks = p["student_width"], p["teacher_width"]
    if p["model"] != "committee":
        if k != 1:
            raise ConfigError(
                f"problem.student_width = {k}: model '{p['model']}' needs student_width = 1 (only 'committee' allows wider)")
        if ks != 1:
            raise ConfigError(
                f"problem.teacher_width = {ks}: model '{p['model']}' needs teacher_width = 1 (only 'committee' allows wider)")
    if p["init_overlap"] != 0.0 and k != ks:
        raise ConfigError(
            f"problem.init_overlap = {p['init_overlap']!r}: a nonzero initial overlap needs "
            f"student_width == teacher_width (got {k} and {ks})")
    gamma, t_max, dt = dy["gamma"], dy["t_max"], dy["dt"]
    alg = dy["algorithm"]
    if dt > t_max:
        raise ConfigError(f"dynamics.dt = {dt!r}: must be <= dynamics.t_max = {t_max!r}")
    if alg == "sgd" and dt > gamma:
        raise ConfigError(
            f"dynamics.dt = {dt!r}: for algorithm '{alg}' dt must be <= dynamics.gamma = {gamma!r} "
            f"(Bernoulli selection probability dt/gamma <= 1)")
    growth, dt_max = dy["growth"], dy["dt_max"]
    if dt_max and dt_max < dt:
        raise ConfigError(f"dynamics.dt_max = {dt_max!r}: must be >= dynamics.dt = {dt!r} (or 0 = no cap)")
    if growth > 0:
        if alg in ("reshuffle", "online"):
            raise ConfigError(f"dynamics.growth = {growth!r}: algorithm '{alg}' needs a uniform grid (growth = 0)")
        if alg == "sgd" and not (0 < dt_max <= gamma):
            raise ConfigError(
                f"dynamics.dt_max = {dt_max!r}: a graded grid for 'sgd' needs 0 < dt_max <= dynamics.gamma = {gamma!r} "
                f"(Bernoulli p = dt_m/gamma <= 1; the Poisson limit wants dt_max << gamma)")
        if alg == "persistent" and not dt_max:
            raise ConfigError(f"dynamics.dt_max = {dt_max!r}: a graded grid for 'persistent' needs a cap dt_max > 0")
    if alg == "persistent":
        dt = max(dt, dt_max) if growth > 0 else dt
    if alg == "reshuffle":
        q = gamma / dt
        if abs(q - round(q)) > 1e-9 * max(1.0, q) or round(q) < 1:
            raise ConfigError(
                f"dynamics.dt = {dt!r}: for algorithm 'reshuffle' gamma/dt must be a positive integer "
                f"(steps per epoch); got gamma/dt = {q:g}")
    if alg == "persistent":
        b, tau = dy["persist_b"], dy["persist_tau"]
        if dt * max(b, 1 - b) / tau > 1:
            raise ConfigError(
                f"dynamics.persist_tau = {tau!r}: too small for the largest step {dt!r} and persist_b = {b!r} "
                f"(needs dt * max(b, 1 - b) / tau <= 1)")
    n = int(round(p["delta"] * sim["d"]))
    if n < 1:
        raise ConfigError(
            f"problem.delta = {p['delta']!r}: n = round(delta * d) = {n} with d = {sim['d']}; need n >= 1")
    if sim["batch"] > n:
        raise ConfigError(
            f"simulation.batch = {sim['batch']}: must be <= n = round(delta * d) = {n}")


def _validate(mapping: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"configuration must be a table/mapping, got {_typename(mapping)}")
    out = defaults()
    for section, body in mapping.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section {str(section)!r}{_suggest(str(section), list(SECTIONS))}; allowed: {', '.join(SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"section {section!r} must be a table, got {body!r} ({_typename(body)})")
        for key, value in body.items():
            if key not in SCHEMA[section]:
                dotted = f"{section}.{key}"
                elsewhere = [s for s in SECTIONS if key in SCHEMA[s]]
                sugg = f" (did you mean '{elsewhere[0]}.{key}'?)" if elsewhere else _suggest(dotted, _all_dotted())
                if not sugg:
                    sugg = _suggest(str(key), list(SCHEMA[section]))
                    sugg = sugg.replace("'", f"'{section}.", 1) if sugg else ""
                raise ConfigError(f"unknown key {dotted!r}{sugg}")
            out[section][key] = _coerce(section, key, value)
    _cross_checks(out)
    return out


# --------------------------------------------------------------------------------------------
# The Config object
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """A validated, normalised configuration (every key present, floats as float)."""

    problem: dict
    dynamics: dict
    simulation: dict
    solver: dict

    # ---- serialisation ----
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(getattr(self, s)) for s in SECTIONS}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def flat(self) -> dict[str, Any]:
        """``{"problem.delta": 2.0, ...}``."""
        return {f"{s}.{k}": v for s, body in self.to_dict().items() for k, v in body.items()}

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """A new config with ``{"section.key": value}`` overrides applied (validated again)."""
        d = self.to_dict()
        for dotted, value in overrides.items():
            if "." not in dotted:
                raise ConfigError(f"override key {dotted!r} must be 'section.key'{_suggest(dotted, _all_dotted())}")
            s, k = dotted.split(".", 1)
            d.setdefault(s, {})[k] = value
        return parse_config(d)

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
        p = self.problem
        return problem.make_model(p["model"], k=p["student_width"], kstar=p["teacher_width"],
                                  activation=p["activation"], noise=p["noise"])

    def make_problem(self) -> problem.Problem:
        p = self.problem
        return problem.Problem(model=self.make_model(), delta=p["delta"], ridge=p["ridge"],
                               init_scale=p["init_scale"], init_overlap=p["init_overlap"])

    def make_law(self) -> laws.Law:
        dy = self.dynamics
        if dy["algorithm"] == "online":
            raise ConfigError(
                "dynamics.algorithm = 'online': one-pass SGD has no step-multiplier law "
                "(use sgd_dmft.online.solve_online)")
        try:
            return laws.make_law(dy["algorithm"], dy["dt"], gamma=dy["gamma"], b=dy["persist_b"],
                                 tau=dy["persist_tau"], growth=dy["growth"], dt_max=dy["dt_max"] or None)
        except ValueError as e:  # should be prevented by the cross-checks
            raise ConfigError(f"dynamics: {e}") from e


def parse_config(mapping: Mapping[str, Any]) -> Config:
    """Validate a nested mapping (as read from TOML) and return a normalised :class:`Config`."""
    c = _validate(mapping)
    return Config(problem=c["problem"], dynamics=c["dynamics"], simulation=c["simulation"], solver=c["solver"])


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file '{path}': {e.strerror or e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in '{path}': {e}") from e
    return parse_config(data)
