"""Command line: ``sgd-dmft simulate | solve | compare | show | sweep`` (the computations: run.py, sweep.py).

Exit status: 0 ok; 2 invalid configuration; 3 diverged run (simulation or solver) or non-finite
result; 1 other errors. Errors are reported as one line ``error: <message>`` on stderr, and nothing
is written unless the whole computation succeeded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import run
from .config import Config, ConfigError, load_config, parse_value
from .errors import Diverged, SgdDmftError

EXIT_ERROR, EXIT_CONFIG, EXIT_DIVERGED = 1, 2, 3
COMPARED_VARS = run.COMPARED_VARS

# the computations live in run.py; these names stay importable from here
run_theory = run.run_theory
run_simulation = run.run_simulation
compare_datasets = run.compare_datasets


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _classify(exc: BaseException) -> int | None:
    """Exit status of a known failure (None: not ours, let it raise with its traceback)."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, Diverged):  # solver, simulation, non-finite result
        return EXIT_DIVERGED
    if isinstance(exc, (SgdDmftError, ValueError, MemoryError, OSError, ImportError)):
        return EXIT_ERROR
    return None


def _run(fn, *args, **kw):
    """Call ``fn``; map known failures to ``error: <msg>`` + exit code (traceback with --traceback)."""
    ctx = click.get_current_context()
    try:
        return fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001
        code = _classify(exc)
        if code is None or (ctx.find_root().obj or {}).get("traceback"):
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        ctx.exit(code)


def _load(config_path: str, overrides: tuple[str, ...]) -> Config:
    cfg = load_config(config_path)
    if overrides:
        ov = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected section.key=value")
            k, v = item.split("=", 1)
            ov[k.strip()] = parse_value(v.strip())
        cfg = cfg.with_overrides(ov)
    return cfg


def _progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
_set_option = click.option("--set", "-s", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                           help="Override a config value (TOML syntax), e.g. -s dynamics.gamma=0.3. Repeatable.")
_progress_option = click.option("--progress/--no-progress", default=None,
                                 help="Progress bar (default: on when stderr is a terminal).")
_out_option = click.option("--out", "out", required=True, type=click.Path(file_okay=False),
                           help="Output directory (created if needed).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="sgd-dmft")
@click.pass_context
def main(ctx: click.Context, traceback: bool) -> None:
    """Exact high-dimensional learning curves (DMFT) of SGD on multi-index models, and simulations."""
    ctx.obj = {"traceback": traceback}


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_set_option
def simulate(config: str, out: str, progress: bool | None, overrides: tuple[str, ...]) -> None:
    """Finite-d simulation: writes OUT/result.nc and OUT/figure.png."""
    _single_run("simulation", run.run_simulation, config, out, progress, overrides)


def _single_run(kind: str, runner, config: str, out: str, progress: bool | None,
                overrides: tuple[str, ...]) -> None:
    """Validate, run ``runner(cfg, progress)``, then write OUT/result.nc and OUT/figure.png."""
    from .plot import plot_curves
    from .results import write_dataset

    cfg = _run(_load, config, overrides)
    ds = _run(runner, cfg, _progress(progress))
    out_dir = Path(out)
    nc = _run(write_dataset, ds, out_dir / "result.nc", cfg)
    sim, theory = (ds, None) if kind == "simulation" else (None, ds)
    png = _run(plot_curves, sim, theory, out_dir / "figure.png")
    click.echo(f"{kind}: {ds.attrs['wall_time_s']:.1f} s")
    click.echo(f"wrote {nc}")
    click.echo(f"wrote {png}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_set_option
def solve(config: str, out: str, progress: bool | None, overrides: tuple[str, ...]) -> None:
    """Theory only (DMFT solver, or online ODEs): writes OUT/result.nc and OUT/figure.png."""
    _single_run("theory", lambda cfg, prog: run.run_theory(cfg, prog, announce=click.echo), config, out, progress,
                overrides)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_set_option
def compare(config: str, out: str, progress: bool | None, overrides: tuple[str, ...]) -> None:
    """Theory and simulation: OUT/theory.nc, OUT/simulation.nc, OUT/figure.png, OUT/summary.json.

    Prints the largest |theory - simulation mean| in units of the combined standard error
    sqrt(se_theory^2 + se_sim^2) (se_sim = std over seeds / sqrt(seeds)).
    """
    from .plot import plot_curves
    from .results import write_dataset, write_json

    cfg = _run(_load, config, overrides)
    theory, sim, disc = _run(run.compare, cfg, _progress(progress), announce=click.echo)
    out_dir = Path(out)
    files = {
        "theory": str(_run(write_dataset, theory, out_dir / "theory.nc", cfg)),
        "simulation": str(_run(write_dataset, sim, out_dir / "simulation.nc", cfg)),
        "figure": str(_run(plot_curves, sim, theory, out_dir / "figure.png")),
    }
    summary = {
        "config": cfg.to_dict(),
        "discrepancy": disc,
        "wall_time_s": {"theory": theory.attrs.get("wall_time_s"), "simulation": sim.attrs.get("wall_time_s")},
        "files": files,
    }
    files["summary"] = str(_run(write_json, summary, out_dir / "summary.json"))
    click.echo(f"theory: {theory.attrs['wall_time_s']:.1f} s, simulation: {sim.attrs['wall_time_s']:.1f} s")
    for v, dd in disc.items():
        click.echo(f"{v}: max |theory - sim| = {dd['max_abs']:.4g}, "
                   f"max z = {dd['max_z']:.2f} combined s.e. (at t = {dd['at_time']:.3g}; "
                   f"Student-t normal-equivalent {dd['z_t']:.2f}, df {dd['df']:.3g})")
    for path in files.values():
        click.echo(f"wrote {path}")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def show(directory: str) -> None:
    """Summarise a result directory: configuration, final losses with errors, files."""
    from .results import final_values, read_dataset

    d = Path(directory)
    ncs = [p for p in (d / "result.nc", d / "theory.nc", d / "simulation.nc") if p.exists()]
    if not ncs:
        click.echo(f"error: no result.nc / theory.nc / simulation.nc in {d}", err=True)
        raise SystemExit(EXIT_ERROR)
    shown_config = False
    for p in ncs:
        ds = _run(read_dataset, p)
        if not shown_config and "config_toml" in ds.attrs:
            click.echo("# configuration")
            click.echo(ds.attrs["config_toml"].rstrip())
            click.echo("")
            shown_config = True
        kind = ds.attrs.get("kind", p.stem)
        t_end = float(ds["time"].values[-1]) if "time" in ds.coords else float("nan")
        extra = f", seeds={ds.sizes['seed']}" if "seed" in ds.dims else ""
        click.echo(f"{p.name} ({kind}{extra}, created {ds.attrs.get('created', '?')}, "
                   f"sgd_dmft {ds.attrs.get('sgd_dmft_version', '?')}):")
        for v in COMPARED_VARS:
            if v in ds:
                m, se = final_values(ds, v)
                click.echo(f"  {v}(t={t_end:g}) = {m:.6g} +- {se:.2g}")
    summ = d / "summary.json"
    if summ.exists():
        data = json.loads(summ.read_text())
        for v, dd in data.get("discrepancy", {}).items():
            zt = f" (Student-t normal-equivalent {dd['z_t']:.2f})" if "z_t" in dd else ""
            click.echo(f"discrepancy {v}: max z = {dd['max_z']:.2f}{zt} at t = {dd['at_time']:.3g}, "
                       f"max abs = {dd['max_abs']:.4g}")
    click.echo("files:")
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            click.echo(f"  {p}  ({p.stat().st_size} bytes)")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@click.option("--set", "-s", "sweeps", multiple=True, metavar="KEY=V1,V2,...",
              help="A swept key and its values, e.g. -s gamma=0.1,0.5,1 (short or section.key names). Repeatable.")
@click.option("--simulate", is_flag=True, help="Also run the finite-d simulations at every grid point.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the tasks on a Dask distributed scheduler (e.g. tcp://host:8786) instead of locally.")
@click.option("--workers", type=int, default=None,
              help="Local worker processes (default min(2, cpu count); 1 runs in this process).")
@_progress_option
def sweep(config: str, out: str, sweeps: tuple[str, ...], simulate: bool, scheduler: str | None,
          workers: int | None, progress: bool | None) -> None:
    """Theory (and simulations) over a product grid: OUT/sweep.nc, OUT/sweep_sim.nc, OUT/sweep.png.

    Finished tasks are cached in OUT/cache; a rerun or a resumed sweep recomputes nothing finished.
    """
    from . import sweep as sweep_mod

    cfg = _run(load_config, config)
    grid = _run(sweep_mod.parse_grid, sweeps)
    ds = _run(sweep_mod.run_sweep, cfg, grid, out, simulate=simulate, scheduler=scheduler,
              workers=workers, progress=_progress(progress))
    n, nd = int(ds.attrs["n_points"]), int(ds.attrs["n_diverged"])
    click.echo(f"sweep: {n} grid points over {', '.join(json.loads(ds.attrs['sweep_keys']))}"
               + (f", {nd} diverged (NaN; see attribute diverged_points)" if nd else ""))
    out_dir = Path(out)
    for name in ("sweep.nc", "sweep_sim.nc", "sweep.png"):
        if (out_dir / name).exists():
            click.echo(f"wrote {out_dir / name}")


if __name__ == "__main__":  # pragma: no cover
    main()
