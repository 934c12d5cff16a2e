"""docs/tutorial.ipynb runs inside the test suite (tiny settings, seconds), so it can never go stale:
every cell executes without error, its own asserts hold, and it shows a figure and the power statement."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def _client(tmp_path):
    import nbclient  # in the test extra: missing is a broken environment, not a skip
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, startup_timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    return nb, client


def _start_or_skip(client) -> None:
    """Start the kernel; only a kernel that cannot start skips (a failing cell fails the test)."""
    try:
        client.km = client.create_kernel_manager()
        client.start_new_kernel()
        client.start_new_kernel_client()
    except Exception as e:  # noqa: BLE001 - NoSuchKernel, a kernel that died or timed out at start
        try:
            if client.km is not None:
                client._cleanup_kernel()
        finally:
            pytest.skip(f"the Jupyter kernel 'python3' cannot start ({type(e).__name__}: {e}); tutorial not run")


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts.extend(str(v) for k, v in o.get("data", {}).items() if k == "text/plain")
    return "".join(parts)


def test_tutorial_notebook_executes(tmp_path):
    nb, client = _client(tmp_path)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    _start_or_skip(client)
    try:
        client.execute()  # reuses the started kernel and shuts it down at the end
    finally:
        if client.km is not None:
            client._cleanup_kernel()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = "\n".join(_text(c) for c in code)
    for fragment in ("max z =", "detectable gap", "linearly interpolated", "git_revision", "gamma"):
        assert fragment in text, fragment
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the theory-vs-simulation figure and the sweep's curves


def test_importing_the_plots_keeps_a_chosen_backend():
    """``sgd_dmft.plot`` falls back to Agg only when no backend was chosen: a notebook's inline backend
    (ipykernel sets MPLBACKEND) keeps working after ``from sgd_dmft import plot``."""
    import os
    import subprocess
    import sys

    code = "import sgd_dmft.plot, matplotlib; print(matplotlib.get_backend().lower())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "svg"
