"""The command line's output through the standard ``logging`` module (logger ``"sgd_dmft"``): the plan and
progress lines at INFO (printed through click on stdout, a sweep's on stderr), ``-q`` WARNING, ``-v`` DEBUG
(``debug: ...`` on stderr). Used by cli.py."""

from __future__ import annotations

import logging
from pathlib import Path

import click

__all__ = ["log", "EchoHandler", "configure_logging", "say", "say_err", "debug_run", "debug_written", "accuracy_note"]

log = logging.getLogger("sgd_dmft")


class EchoHandler(logging.Handler):
    """The package's log records on the terminal through click: INFO as plain lines on stdout (on stderr
    for a record with ``extra={"err": True}``), other levels on stderr as ``<level>: message``."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno == logging.INFO:
            click.echo(msg, err=bool(getattr(record, "err", False)))
        else:
            click.echo(f"{record.levelname.lower()}: {msg}", err=True)


def configure_logging(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Level of the ``sgd_dmft`` logger for this invocation (-q WARNING, default INFO, -v DEBUG) and a
    handler printing it, both undone when the command ends (CliRunner invokes several in one process)."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
    handler, old_level = EchoHandler(), log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)

    def restore() -> None:
        log.removeHandler(handler)
        log.setLevel(old_level)
    ctx.call_on_close(restore)


def say(line: str) -> None:
    """A plan / progress line (INFO on stdout; silenced by -q)."""
    log.info(line)


def say_err(line: str) -> None:
    """A plan / progress line on stderr (INFO; silenced by -q)."""
    log.info(line, extra={"err": True})


def debug_run(ds, kind: str) -> None:
    """-v: what a run chose (levels, process, replicas, paths, workers), from its attrs."""
    keys = ("closed_form", "process", "extrapolated", "levels", "replicas", "paths", "workers", "algorithm", "batch",
            "seeds", "d")
    chosen = ", ".join(f"{k} = {ds.attrs[k]}" for k in keys if k in ds.attrs)
    log.debug("%s: %s", kind, chosen or "no attrs")


def debug_written(written) -> None:
    """-v: the size of each file written."""
    for path in written.values():
        log.debug("%s: %d bytes", path, Path(path).stat().st_size)


def accuracy_note(ds) -> str:
    """``"; accuracy: ..."``: a theory's worst relative standard error and dt error over t > 0 (its attrs
    ``rtol_achieved``, ``dt_error_rel_max``), or ``""`` (a simulation)."""
    se, dt = ds.attrs.get("rtol_achieved"), ds.attrs.get("dt_error_rel_max")
    if se is None:
        return ""
    dt_part = f", dt error up to {float(dt):.2%}" if dt is not None else ""
    return f"; accuracy: standard error up to {float(se):.2%}{dt_part} of the loss (train and test, t > 0)"
