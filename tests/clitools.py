"""Shared helpers of the CLI tests: run a command in-process, assert a one-line error."""

from __future__ import annotations

from click.testing import CliRunner

from sgd_dmft.cli import main


def cli(*args):
    """Invoke ``sgd-dmft`` with ``args`` (converted to str) in this process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, code, *fragments):
    """Exit status ``code`` and one stderr line ``error: ...`` holding every fragment."""
    assert r.exit_code == code, (r.exit_code, r.output, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for f in fragments:
        assert f in r.stderr, (f, r.stderr)
