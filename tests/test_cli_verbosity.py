"""Global -q/--quiet and -v/--verbose: the plan and progress lines go through the ``sgd_dmft`` logger
(INFO, on stdout as before); -q silences them and the progress bars, -v adds ``debug:`` lines on stderr.
Tiny real runs, their entry points spied on by tests/test_cli.py (`spies`)."""

from __future__ import annotations

import logging

from click.testing import CliRunner

from sgd_dmft.cli import main
from test_cli import spies, tiny  # noqa: F401  (fixtures)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


PLAN = ("DMFT ", "simulation sgd:")  # the plan lines of the tiny runs


def _plan_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(PLAN)]


def test_default_prints_the_plan_on_stdout(tmp_path, tiny, spies):  # noqa: F811
    r = _run("compare", tiny(), "--out", tmp_path / "c", "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(_plan_lines(r.stdout)) == 2 and "debug:" not in r.output
    assert "wrote" in r.stdout and "max z" in r.stdout


def test_quiet_silences_plan_and_progress_but_not_results(tmp_path, tiny, spies):  # noqa: F811
    loud = _run("compare", tiny(), "--out", tmp_path / "a", "--no-progress")
    quiet = _run("-q", "compare", tiny(), "--out", tmp_path / "b")
    assert loud.exit_code == quiet.exit_code == 0, quiet.output
    assert _plan_lines(loud.stdout) and not _plan_lines(quiet.output) and "debug:" not in quiet.output
    assert spies["simulate"]["progress"] is False  # no bar, even where stderr is a terminal
    kept = [line for line in loud.stdout.splitlines() if "max z" in line or line.startswith(("theory:", "test_loss"))]
    assert kept and all(line.replace("/a", "/b") in quiet.stdout for line in kept if "wrote" not in line)
    assert (tmp_path / "b" / "summary.json").is_file()
    explicit = _run("--quiet", "simulate", tiny(), "--out", tmp_path / "p", "--progress")
    assert explicit.exit_code == 0 and spies["simulate"]["progress"] is True  # an explicit --progress wins


def test_verbose_adds_debug_lines_on_stderr(tmp_path, tiny, spies):  # noqa: F811
    r = _run("-v", "solve", tiny(), "--out", tmp_path / "s", "--no-progress", "-s", "solver.paths=400")
    assert r.exit_code == 0, r.output
    debug = [line for line in r.stderr.splitlines() if line.startswith("debug: ")]
    assert any("-s solver.paths=400" in line and "output directory" in line for line in debug), debug
    assert any(line.startswith("debug: theory: ") for line in debug), debug
    assert any("result.nc: " in line and line.endswith(" bytes") for line in debug), debug
    assert _plan_lines(r.stdout) and "debug:" not in r.stdout


def test_verbose_and_quiet_exclude_each_other_and_logging_is_restored(tmp_path, tiny, spies):  # noqa: F811
    r = _run("-v", "-q", "solve", tiny(), "--out", tmp_path / "s")
    assert r.exit_code == 2 and "exclude each other" in r.output
    log = logging.getLogger("sgd_dmft")
    before = (log.level, list(log.handlers))
    _run("-v", "solve", tiny(), "--out", tmp_path / "t", "--no-progress")
    assert (log.level, list(log.handlers)) == before


def test_help_names_the_global_options():
    out = _run("--help").output
    assert "-v, --verbose" in out and "-q, --quiet" in out
