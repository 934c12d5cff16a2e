"""What ``sgd-dmft show`` prints: a result set's configuration, final losses with errors and discrepancies,
or a sweep directory's summary; every text taken from the (untrusted) files escaped (:func:`printable`).
Used by cli.py."""

from __future__ import annotations

from pathlib import Path

from .run import COMPARED_VARS

__all__ = ["fmt", "printable", "show_config", "show_lines", "show_sweep_lines"]


def fmt(x, spec: str) -> str:
    """A number of a summary (None: not finite, the JSON convention of results.json_safe; anything else
    that is not a number: escaped, in quotes)."""
    if x is None:
        return "inf"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return repr(printable(x, 40))
    return format(x, spec)


def show_sweep_lines(d: Path) -> list[str]:
    """A sweep directory: the configuration, swept keys and values, per point the final test loss (theory,
    simulation) and max_t |z| (:func:`sgd_dmft.plot.sweep_summary`), the files; read lazily, printed escaped."""
    import xarray as xr

    from .plot import sweep_summary
    from .results import open_lazily, read_values

    opened = {n: open_lazily(d / n) for n in ("sweep.nc", "sweep_sim.nc") if (d / n).is_file()}
    try:
        small = {}
        for n, ds in opened.items():
            keep = [v for v in ("test_loss", "test_loss_stderr", "diverged") if v in ds]
            small[n] = xr.Dataset({v: (ds[v].dims, read_values(ds[v])) for v in keep},
                                  coords={c: ds[c].values for c in ds.coords if c in ds.dims}, attrs=ds.attrs)
    finally:
        for ds in opened.values():
            ds.close()
    th = small["sweep.nc"]
    out = show_config(th.attrs["config_toml"]) if "config_toml" in th.attrs else []
    out += [printable(line) for line in sweep_summary(th, small.get("sweep_sim.nc"))]
    return out + ["files:"] + [f"  {printable(p)}  ({p.stat().st_size} bytes)" for p in sorted(d.iterdir())
                               if p.is_file() and not p.name.startswith(".")]


def printable(value, limit: int = 300) -> str:
    """``value`` as one line of visible text: control and format characters (newlines, ESC, bidi overrides)
    written as escapes (``\\n``, ``\\x1b``, ``\\u202e``), cut at ``limit`` characters."""
    import unicodedata

    text = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] in "CZ" and ch != " "
                   else ch for ch in str(value))
    return text if len(text) <= limit else text[:limit] + "..."


def show_config(text) -> list[str]:
    """The stored configuration, parsed and written again (TOML: strings escaped, comments dropped), each
    line escaped; one escaped line when it does not parse."""
    import tomllib

    import tomli_w

    try:
        lines = tomli_w.dumps(tomllib.loads(str(text))).rstrip().splitlines()
    except (tomllib.TOMLDecodeError, TypeError, ValueError) as e:
        return ["# configuration (unreadable: " + printable(e, 120) + ")", ""]
    return ["# configuration"] + [printable(line) for line in lines] + [""]


def show_lines(datasets: dict, summary: dict | None) -> list[str]:
    """The lines ``show`` prints for the datasets and the summary (what it reads: the final losses)."""
    from . import results

    out: list[str] = []
    for p, ds in datasets.items():
        if not out and "config_toml" in ds.attrs:
            out += show_config(ds.attrs["config_toml"])
        a = {k: printable(ds.attrs.get(k, "?"), 80) for k in ("kind", "created", "sgd_dmft_version")}
        extra = f", seeds={ds.sizes['seed']}" if "seed" in ds.dims else ""
        out.append(f"{p.name} ({a['kind'] if 'kind' in ds.attrs else p.stem}{extra}, created {a['created']}, "
                   f"sgd_dmft {a['sgd_dmft_version']}):")
        for v in COMPARED_VARS:
            if v in ds and "time" in ds[v].dims and "time" in ds.coords:
                t_end = float(ds["time"].values[-1])
                m, se = results.final_values(ds, v, results.READ_MAX_BYTES)
                out.append(f"  {v}(t={t_end:g}) = {m:.6g} +- {se:.2g}")
            elif v in ds:
                out.append(f"  {v}: no time dimension (dims {printable(ds[v].dims, 80)})")
    disc = (summary or {}).get("discrepancy", {})
    for v, dd in (disc.items() if isinstance(disc, dict) else ()):
        dd = dd if isinstance(dd, dict) else {}
        zt = f" (Student-t normal-equivalent {fmt(dd['z_t'], '.2f')})" if "z_t" in dd else ""
        out.append(f"discrepancy {printable(v, 40)}: max z = {fmt(dd.get('max_z'), '.2f')}{zt} at t = "
                   f"{fmt(dd.get('at_time'), '.3g')}, max abs = {fmt(dd.get('max_abs'), '.4g')}")
    return out
