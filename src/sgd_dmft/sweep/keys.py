"""Sweep grid points: the swept keys resolved against the config schema, every point validated as a config
(a ConfigError naming the point), the ``--set key=v1,v2`` syntax parsed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..config import Config, ConfigError, parse_value
from ..config import resolve_key as config_resolve_key

THEORY, SIMULATION = "theory", "simulation"
KINDS = (THEORY, SIMULATION)
_RESERVED_DIMS = {"time", "time2", "snap_time", "seed", "k", "kstar", "k2", "path"}


def resolve_key(name: str) -> str:
    """``gamma`` -> ``dynamics.gamma``; ``dynamics.gamma`` stays; unknown or ambiguous -> ConfigError (the rule of
    every ``-s/--set``: :func:`sgd_dmft.config.resolve_key`)."""
    return config_resolve_key(name, "sweep key")


def _dim_names(keys: Sequence[str]) -> list[str]:
    shorts = [k.split(".", 1)[1] for k in keys]
    out = []
    for dotted, short in zip(keys, shorts):
        ok = shorts.count(short) == 1 and short not in _RESERVED_DIMS
        out.append(short if ok else dotted.replace(".", "_"))
    return out


def label(keys: Sequence[str], values: Sequence[Any]) -> str:
    """``dynamics.gamma=0.5, problem.delta=1``: a grid point in messages."""
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, values))


@dataclass
class Grid:
    """The validated product grid: dotted keys, dimension names, normalised values, points (index tuples,
    row-major) and one Config per point."""

    keys: list[str]  # dotted
    dims: list[str]
    coords: list[list[Any]]  # normalised values (from the validated configs)
    points: list[tuple[int, ...]]  # index tuples, row-major
    configs: list[Config]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


def build_grid(config: Config, grid: Mapping[str, Sequence[Any]], simulate: bool = False) -> Grid:
    """Resolve the keys and validate every grid point (ConfigError naming the point on failure)."""
    if not grid:
        raise ConfigError("sweep: give at least one key to sweep (e.g. --set gamma=0.1,0.5,1)")
    keys: list[str] = []
    values: list[list[Any]] = []
    for name, vals in grid.items():
        dotted = resolve_key(name)
        if dotted in keys:
            raise ConfigError(f"sweep key {dotted!r} is given twice")
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence):
            vals = [vals]
        vals = list(vals)
        if not vals:
            raise ConfigError(f"sweep key {dotted!r} has no values")
        keys.append(dotted)
        values.append(vals)
    for dotted, vals in zip(keys, values):
        if dotted in ("dynamics.dt", "dynamics.growth", "dynamics.dt_max") and len(vals) > 1:
            raise ConfigError(
                f"sweep key {dotted!r}: sweeping the time grid is not supported (grid points must share "
                "the time grid); run one sweep per grid (sweeping dynamics.t_max is fine)")
    points = list(itertools.product(*[range(len(v)) for v in values]))
    configs = []
    for idx in points:
        raw = [values[j][i] for j, i in enumerate(idx)]
        try:
            # the sweep runs tasks in parallel: each task's solver runs its replicas in its own process
            cfg = config.with_overrides({**dict(zip(keys, raw)), "solver.workers": 1})
            _check_runnable(cfg, simulate)
        except ConfigError as e:
            raise ConfigError(f"grid point {label(keys, raw)}: {e}") from None
        configs.append(cfg)
    from .. import run

    configs = run.shared_grid(configs)  # long points compressed: one graded grid for all (run.compress)
    # normalised coordinates (e.g. 1 -> 1.0 for float keys) from the validated configs
    coords: list[list[Any]] = []
    for j, dotted in enumerate(keys):
        col = []
        for i in range(len(values[j])):
            p = next(k for k, idx in enumerate(points) if idx[j] == i)
            col.append(configs[p].flat()[dotted])
        if len(set(col)) != len(col):
            raise ConfigError(f"sweep key {dotted!r} has repeated values: {col}")
        coords.append(col)
    return Grid(keys=keys, dims=_dim_names(keys), coords=coords, points=points, configs=configs)


def _check_runnable(cfg: Config, simulate: bool) -> None:
    try:  # (the law was built by validation, parse_config)
        cfg.make_problem()
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["gamma=0.1,0.5,1", "algorithm=gd,sgd"]`` -> ``{"gamma": [0.1, 0.5, 1], ...}`` (TOML values).

    A value that is a whole TOML array (``delta=[1, 2]``) is also accepted.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=v1,v2,...")
        k, v = (s.strip() for s in item.split("=", 1))
        if not k or not v:
            raise ConfigError(f"--set {item!r}: expected key=v1,v2,...")
        whole = parse_value(v)
        vals = whole if isinstance(whole, list) else [parse_value(x.strip()) for x in v.split(",") if x.strip()]
        if k in out:
            raise ConfigError(f"--set {k!r} given twice")
        out[k] = vals
    return out
