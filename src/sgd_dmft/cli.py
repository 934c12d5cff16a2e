"""Command line: ``sgd-dmft simulate | solve | compare | show | sweep`` (the computations: run.py, sweep.py).

Exit status: 0 ok; 2 invalid configuration, a bad ``--out`` or a refused request (memory or cost
estimate past its limit: ``--force`` lifts the cost limit); 3 diverged run (simulation or solver,
including a stability condition checked up front), a non-finite result or a comparison whose
standard errors cannot be trusted; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); 1 other
errors. Errors are reported as one line ``error: <message>`` on stderr, and nothing is written unless
the whole computation succeeded: ``--out`` is checked before the run, the files of a result set are
written into a staging directory and replace the previous set as a whole (results.write_result_set),
and ``show`` refuses a set whose files come from different runs. A config with a custom model
(``problem.model = 'module:function'`` or ``'file.py:function'``: Python code) is refused (exit 2) unless
the command is given ``--trust-code``.

Verbosity (global options, before the command): the plan and progress lines go through the standard
``logging`` module, logger ``"sgd_dmft"`` (level INFO, printed on stdout as before; a sweep's on stderr);
``-q/--quiet`` silences them and the progress bars (results, ``wrote`` lines and errors stay),
``-v/--verbose`` adds DEBUG lines on stderr (``debug: ...``: the config and overrides, the output
directory, the levels / process / replicas a run chose, the size of each file written).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from . import run
from .config import Config, ConfigError, load_config, parse_value
from .errors import Diverged, MemoryLimitExceeded, SgdDmftError
from .cli_logging import accuracy_note, configure_logging, debug_run, debug_written, log, say, say_err
from .cli_show import fmt, printable, show_lines, show_sweep_lines
from .progress import enabled as progress_enabled

EXIT_ERROR, EXIT_CONFIG, EXIT_DIVERGED = 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every cleanup path of Ctrl-C runs (pools shut down,
    staging directories removed)."""


_TERMINATING: list[bool] = [False]  # set by the handler: a SIGTERM came, whatever exception it turned into


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess
    _TERMINATING[0] = True
    raise Terminated()


def _quiet_unraisable(default):
    """``sys.unraisablehook`` that drops a Ctrl-C / SIGTERM raised where Python cannot propagate it (a ctypes
    callback of numba's compiler: 'Exception ignored ...'); the flag makes the run stop at the next check."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _TERMINATING[0] = _TERMINATING[0] or isinstance(unraisable.exc_value, Terminated)
            return
        default(unraisable)
    return hook


def _interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM behind ``exc``: itself, one in its chain (a handler that raised inside a
    numba-compiled call surfaces as SystemError with the interrupt as its context), or a Terminated
    when the SIGTERM handler ran; None for an ordinary error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return Terminated() if _TERMINATING[0] else None


class _Main(click.Group):
    """Ctrl-C -> exit 130 and SIGTERM -> exit 143 with one line (click's own 'Aborted!' is exit 1)."""

    def invoke(self, ctx: click.Context):
        old, old_hook = None, sys.unraisablehook
        _TERMINATING[0] = False
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, _on_sigterm)
            sys.unraisablehook = _quiet_unraisable(old_hook)
        try:
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except Exception as exc:  # noqa: BLE001 - a SIGTERM / Ctrl-C that surfaced as another error
                intr = _interruption(exc)
                if intr is None:
                    raise
                raise intr from None
        except KeyboardInterrupt as exc:
            note = (ctx.obj or {}).get("interrupt_note", "nothing was written")
            if getattr(exc, "published", None) is not None:
                note = f"the new result set in {exc.published} was written completely before it"
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            click.echo(f"error: {what}; {note}", err=True)
            raise click.exceptions.Exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)
                sys.unraisablehook = old_hook
COMPARED_VARS = run.COMPARED_VARS

# the computations live in run.py; these names stay importable from here
run_theory = run.run_theory
run_simulation = run.run_simulation
compare_datasets = run.compare_datasets


def _one_line(exc) -> str:
    msg = " ".join(str(exc).split())
    if isinstance(exc, BaseException):
        if isinstance(exc, MemoryError):
            msg = f"out of memory{': ' + msg if msg else ''} (lower the sizes of the run, e.g. simulation.d, solver.paths)"
        elif not msg:
            msg = type(exc).__name__
        if isinstance(exc, OSError):  # e.g. where publish.py left a user's entries it could not move back
            msg = " ".join([msg, *(" ".join(str(n).split()) for n in getattr(exc, "__notes__", ()))])
    return msg


def _classify(exc: BaseException) -> int | None:
    """Exit status of a known failure (None: not ours, let it raise with its traceback)."""
    if getattr(exc, "exit_status", None) in (EXIT_CONFIG, EXIT_DIVERGED):  # e.g. planning.CostLimitExceeded
        return exc.exit_status
    if isinstance(exc, (ConfigError, MemoryLimitExceeded)):  # invalid or refused up front
        return EXIT_CONFIG
    if isinstance(exc, Diverged):  # solver, simulation, non-finite result (a divergence is raised as one)
        return EXIT_DIVERGED
    if isinstance(exc, (SgdDmftError, ValueError, ArithmeticError, MemoryError, OSError, ImportError)):
        return EXIT_ERROR  # a stray overflow is not a divergence: inputs are checked up front (exit 2)
    return None


def _run(fn, *args, **kw):
    """Call ``fn``; map known failures to ``error: <msg>`` + exit code (traceback with --traceback)."""
    ctx = click.get_current_context()
    try:
        if _TERMINATING[0]:  # a SIGTERM that was swallowed where it was raised (see _quiet_unraisable)
            raise Terminated()
        out = fn(*args, **kw)
        if _TERMINATING[0]:
            raise Terminated()
        return out
    except Exception as exc:  # noqa: BLE001
        intr = _interruption(exc)
        if intr is not None:
            raise intr from None
        code = _classify(exc)
        if code is None or (ctx.find_root().obj or {}).get("traceback"):
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        ctx.exit(code)


def _load(config_path: str, overrides: tuple[str, ...], trust_code: bool = False) -> Config:
    cfg = load_config(config_path, trust_code=trust_code)
    if overrides:
        ov = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected key=value (section.key, or a short key such as gamma)")
            k, v = item.split("=", 1)
            ov[k.strip()] = parse_value(v.strip())
        cfg = cfg.with_overrides(ov)
    return cfg


def _progress(flag: bool | None) -> bool:
    """The progress rule (progress.enabled), silenced by -q unless asked for."""
    if flag is None and not log.isEnabledFor(logging.INFO):  # -q
        return False
    return progress_enabled(flag)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
_set_option = click.option("--set", "-s", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                           help="Override a config value (TOML syntax), e.g. -s dynamics.gamma=0.3 or -s gamma=0.3 "
                           "(a short key names its unique section). Repeatable.")
_progress_option = click.option("--progress/--no-progress", default=None,
                                 help="Progress bar (default: on when stderr is a terminal).")
_out_option = click.option("--out", "out", required=True, type=click.Path(),
                           help="Output directory (created if needed; a previous result set there is replaced).")
_force_option = click.option("--force", is_flag=True,
                             help="Run even when the cost estimate is past its limit (memory limits still apply).")
_trust_option = click.option("--trust-code", "trust_code", is_flag=True,
                             help="Allow a custom model, problem.model = 'package.module:function' or "
                                  "'path/to/file.py:function': imports and runs that Python code. Only for "
                                  "configs you trust (without it such a config is refused, exit 2).")


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Debug lines on stderr (config, levels chosen, files written).")
@click.option("-q", "--quiet", is_flag=True, help="No plan lines and no progress bars (results and errors stay).")
@click.version_option(package_name="sgd-dmft")
@click.pass_context
def main(ctx: click.Context, traceback: bool, verbose: bool, quiet: bool) -> None:
    """Exact high-dimensional learning curves (DMFT) of SGD on multi-index models, and simulations."""
    ctx.obj = {"traceback": traceback}
    configure_logging(ctx, verbose, quiet)


def _prepare(config: str, out: str, overrides: tuple[str, ...], names: tuple[str, ...]) -> tuple[Config, Path]:
    """The validated config and the checked ``--out`` (before anything runs; exit 2 on either)."""
    from .results import check_out_dir

    out_dir = _run(check_out_dir, out, names)
    trust = bool(click.get_current_context().params.get("trust_code"))
    cfg = _run(_load, config, overrides, trust)
    log.debug("config %s%s; output directory %s", config, "".join(f" -s {o}" for o in overrides), out_dir)
    return cfg, out_dir


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_force_option
@_set_option
@_trust_option
def simulate(config: str, out: str, progress: bool | None, force: bool, overrides: tuple[str, ...],
             trust_code: bool) -> None:
    """Finite-d simulation: writes OUT/result.nc and OUT/figure.png."""
    _single_run("simulation", lambda cfg, prog: run.run_simulation(cfg, prog, announce=say, force=force),
                config, out, progress, overrides)


def _single_run(kind: str, runner, config: str, out: str, progress: bool | None,
                overrides: tuple[str, ...]) -> None:
    """Validate, run ``runner(cfg, progress)``, then write OUT/result.nc and OUT/figure.png as one set."""
    from .plot import plot_curves
    from .results import new_set_id, write_dataset, write_result_set

    cfg, out_dir = _prepare(config, out, overrides, ("result.nc", "figure.png"))
    ds = _run(runner, cfg, _progress(progress))
    ds.attrs["result_set"] = new_set_id()
    sim, theory = (ds, None) if kind == "simulation" else (None, ds)
    written = _run(write_result_set, out_dir, {
        "result.nc": lambda p: write_dataset(ds, p, cfg),
        "figure.png": lambda p: plot_curves(sim, theory, p),
    })
    click.echo(f"{kind}: {ds.attrs['wall_time_s']:.1f} s{accuracy_note(ds)}")
    debug_run(ds, kind)
    for path in written.values():
        click.echo(f"wrote {path}")
    debug_written(written)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_force_option
@_set_option
@_trust_option
def solve(config: str, out: str, progress: bool | None, force: bool, overrides: tuple[str, ...],
          trust_code: bool) -> None:
    """Theory only (DMFT solver, or online ODEs): writes OUT/result.nc and OUT/figure.png."""
    _single_run("theory", lambda cfg, prog: run.run_theory(cfg, prog, announce=say, force=force), config,
                out, progress, overrides)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_out_option
@_progress_option
@_force_option
@_set_option
@_trust_option
def compare(config: str, out: str, progress: bool | None, force: bool, overrides: tuple[str, ...],
            trust_code: bool) -> None:
    """Theory and simulation: OUT/theory.nc, OUT/simulation.nc, OUT/figure.png, OUT/summary.json.

    Prints the largest |theory - simulation mean| in units of the combined standard error
    sqrt(se_theory^2 + se_sim^2) (se_sim = std over seeds / sqrt(seeds)). A theory whose standard error
    is not small against its curve (results.discrepancy: reliable) is refused, exit 3.
    """
    from .plot import plot_curves
    from .results import json_safe, new_set_id, power_statement, write_dataset, write_json, write_result_set

    names = ("theory.nc", "simulation.nc", "figure.png", "summary.json")
    cfg, out_dir = _prepare(config, out, overrides, names)
    theory, sim, disc = _run(run.compare, cfg, _progress(progress), announce=say, force=force)
    set_id = new_set_id()
    for ds in (theory, sim):
        ds.attrs["result_set"] = set_id
    summary = {
        "config": cfg.to_dict(),
        "discrepancy": json_safe(disc),
        "wall_time_s": {"theory": theory.attrs.get("wall_time_s"), "simulation": sim.attrs.get("wall_time_s")},
        "files": {k: str(out_dir / f"{k}.{ext}") for k, ext in
                  (("theory", "nc"), ("simulation", "nc"), ("figure", "png"), ("summary", "json"))},
        "result_set": set_id,
    }
    written = _run(write_result_set, out_dir, {
        "theory.nc": lambda p: write_dataset(theory, p, cfg),
        "simulation.nc": lambda p: write_dataset(sim, p, cfg),
        "figure.png": lambda p: plot_curves(sim, theory, p),
        "summary.json": lambda p: write_json(summary, p),
    })
    click.echo(f"theory: {theory.attrs['wall_time_s']:.1f} s, simulation: {sim.attrs['wall_time_s']:.1f} s")
    for v, dd in summary["discrepancy"].items():
        click.echo(f"{v}: max |theory - sim| = {dd['max_abs']:.4g}, "
                   f"max z = {fmt(dd['max_z'], '.2f')} combined s.e. (at t = {dd['at_time']:.3g}; "
                   f"Student-t normal-equivalent {fmt(dd['z_t'], '.2f')}, df {fmt(dd['df'], '.3g')}; "
                   f"theory relative s.e. <= {dd['theory_rel_se']:.2g})")
        click.echo(f"{v}: {power_statement(dd)}")
    debug_run(theory, "theory")
    debug_run(sim, "simulation")
    for path in written.values():
        click.echo(f"wrote {path}")
    debug_written(written)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def show(directory: str) -> None:
    """Summarise a result directory: configuration, final losses with errors, files. A sweep directory
    (sweep.nc): the swept keys and values, per point the final test loss, simulation and max_t |z|.

    The files are untrusted input: they are opened lazily and only what is printed is read (no variable
    larger than results.READ_MAX_BYTES), and every text taken from them is printed escaped (control
    characters, newlines, terminal escapes: :func:`printable`)."""
    from .results import read_result_set

    d = Path(directory)
    if (d / "sweep.nc").is_file() and not any((d / n).is_file() for n in ("result.nc", "theory.nc", "simulation.nc")):
        for line in _run(show_sweep_lines, d):
            click.echo(line)
        return
    datasets, summary = _run(read_result_set, d, lazy=True)
    try:
        for line in _run(show_lines, datasets, summary):
            click.echo(line)
    finally:
        for ds in datasets.values():
            ds.close()
    click.echo("files:")
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            click.echo(f"  {printable(p)}  ({p.stat().st_size} bytes)")


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
@_force_option
@_trust_option
@click.pass_context
def sweep(ctx: click.Context, config: str, out: str, sweeps: tuple[str, ...], simulate: bool, scheduler: str | None,
          workers: int | None, progress: bool | None, force: bool, trust_code: bool) -> None:
    """Theory (and simulations) over a product grid: OUT/sweep.nc, OUT/sweep_sim.nc, OUT/sweep.png.

    Finished tasks are cached in OUT/cache; a rerun or a resumed sweep recomputes nothing finished.
    """
    from . import sweep as sweep_mod
    from .results import check_out_dir

    out_dir = _run(check_out_dir, out, ("sweep.nc", "sweep_sim.nc", "sweep.png", "cache"), True)
    cfg = _run(load_config, config, trust_code)
    grid = _run(sweep_mod.parse_grid, sweeps)
    ctx.obj["interrupt_note"] = (f"finished tasks are cached in {out_dir / 'cache'}; rerun the same command to "
                                 f"resume")
    ds = _run(sweep_mod.run_sweep, cfg, grid, out_dir, simulate=simulate, scheduler=scheduler,
              workers=workers, progress=_progress(progress), force=force, announce=say_err)
    n, nd = int(ds.attrs["n_points"]), int(ds.attrs["n_diverged"])
    click.echo(f"sweep: {n} grid points over {', '.join(json.loads(ds.attrs['sweep_keys']))}"
               + (f", {nd} diverged (NaN; see attribute diverged_points)" if nd else ""))
    for name in ("sweep.nc", "sweep_sim.nc", "sweep.png"):
        if (out_dir / name).exists():
            click.echo(f"wrote {out_dir / name}")


if __name__ == "__main__":  # pragma: no cover
    main()
