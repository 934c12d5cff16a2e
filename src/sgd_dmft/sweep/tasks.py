"""One sweep task: a grid point's theory or simulation, run as a pure function of its config TOML
(:func:`run_task`, in this process, a spawn worker or a Dask worker) and reduced to its curves."""

from __future__ import annotations

from typing import Any

import xarray as xr

from .. import run
from ..config import Config
from ..errors import Diverged
from .cache import write_cache
from .keys import THEORY

_DROP_DIMS = {"time2", "snap_time", "path"}


def _is_divergence(exc: BaseException) -> bool:
    """Solver or simulation diverged, or a non-finite result: the point is NaN, the sweep goes on."""
    return isinstance(exc, Diverged)


def keep_curves(ds: xr.Dataset) -> xr.Dataset:
    """Keep the curves (variables on ``time`` only, no two-time kernels / samples)."""
    keep = [v for v, da in ds.data_vars.items() if "time" in da.dims and not (set(da.dims) & _DROP_DIMS)]
    out = ds[keep]
    drop = [c for c in out.coords if set(out[c].dims) & _DROP_DIMS or c in _DROP_DIMS]
    return out.drop_vars(drop)


def compute(cfg: Config, kind: str) -> xr.Dataset:
    """One task's computation (patched in tests to count calls); its budgets were checked up front."""
    return run.run_theory(cfg, force=True) if kind == THEORY else run.run_simulation(cfg, force=True)


def run_task(config_toml: str, kind: str, cache_file: str | None = None, trust_code: bool = False) -> dict[str, Any]:
    """Run one grid point: a pure function of its config TOML and kind (``trust_code``: the config's own,
    needed for a custom model).

    Returns ``{"status": "ok", "ds": Dataset}`` or ``{"status": "diverged", "message": str}``.
    With ``cache_file`` a finite result is also written there atomically (:func:`write_cache`).
    """
    import tomllib

    from ..config import parse_config
    from ..results import check_finite

    cfg = parse_config(tomllib.loads(config_toml), trust_code)
    try:
        ds = keep_curves(compute(cfg, kind))
        check_finite(ds, kind)
    except Exception as exc:  # noqa: BLE001
        if _is_divergence(exc):
            return {"status": "diverged", "message": " ".join(str(exc).split())}
        raise
    ds.attrs["kind"] = kind
    if cache_file is not None:
        try:
            write_cache(ds, cache_file, cfg, kind)
        except OSError:
            pass  # not writable from here (e.g. a remote worker): the client writes it
    return {"status": "ok", "ds": ds}
