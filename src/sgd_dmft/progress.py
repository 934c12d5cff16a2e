"""Progress bars: one rule decides whether one is shown, for the solver's replicas, the simulators, sweeps
and the command line (:func:`enabled`)."""

from __future__ import annotations

import sys
from typing import Any


def enabled(requested: bool | None, stream: Any = None) -> bool:
    """Whether to show a progress bar: ``requested`` when it is given (``progress=True`` / ``False``, the
    CLI's ``--progress`` / ``--no-progress``); ``None`` (the CLI's default): when ``stream`` (default
    ``sys.stderr``, where tqdm writes) is a terminal."""
    if requested is not None:
        return bool(requested)
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
