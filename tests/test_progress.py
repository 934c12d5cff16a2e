"""progress.py: the one rule that shows progress bars (solver, simulators, sweeps, CLI)."""

import io

from sgd_dmft import progress


def test_one_progress_rule():
    """progress.enabled: an explicit request wins; None (the CLI's default) shows a bar on a terminal only."""
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress.enabled(True, io.StringIO()) and not progress.enabled(False, Tty())
    assert progress.enabled(None, Tty()) and not progress.enabled(None, io.StringIO())
    assert not progress.enabled(None, object())  # no isatty


def test_no_other_rule_in_the_package():
    """Only progress.py asks whether stderr is a terminal; every bar's switch goes through progress.enabled."""
    from pathlib import Path

    pkg = Path(progress.__file__).parent
    others = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if "isatty" in p.read_text()]
    assert others == ["progress.py"], others
    for p in pkg.rglob("*.py"):
        if "tqdm(" in p.read_text():
            assert "progress_enabled(" in p.read_text(), p
