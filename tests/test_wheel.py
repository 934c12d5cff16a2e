"""The package as a user installs it: a wheel built from this tree, installed into a fresh virtual
environment, gives the ``sgd-dmft`` command and an importable ``sgd_dmft`` of the right version, loaded
from that environment (not from src/). Offline: the wheel is built without build isolation (setuptools
from the test environment) and the fresh environment sees the test environment's dependencies through
a .pth file, so ``pip install --no-deps`` needs no index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import sgd_dmft

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("setuptools", minversion="77")  # license = "MIT" (PEP 639) needs setuptools >= 77


def _run(cmd, cwd, env=None, timeout=120) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the tree (the build writes build/ and *.egg-info next to its sources)."""
    src = tmp / "tree"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src],
         cwd=tmp, env=_clean_env(), timeout=180)
    (wheel,) = (tmp / "dist").glob("sgd_dmft-*.whl")
    return wheel


def _fresh_venv(tmp: Path) -> Path:
    """A venv without pip whose site-packages also reads this environment's (dependencies only: a path
    in a .pth file does not run that directory's own .pth files, so an editable install there stays off)."""
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return env_dir


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_wheel_installs_into_a_fresh_venv_with_its_command(tmp_path):
    wheel = _build_wheel(tmp_path)
    env_dir = _fresh_venv(tmp_path)
    py, env = env_dir / "bin" / "python", _clean_env()
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", wheel], cwd=tmp_path, env=env)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = _run([py, "-c", "import sgd_dmft; print(sgd_dmft.__version__); print(sgd_dmft.__file__)"], cwd=outside,
               env=env).split()
    assert out[0] == sgd_dmft.__version__
    assert Path(out[1]).resolve().is_relative_to(env_dir.resolve()), out[1]  # the wheel's copy, not src/
    assert not Path(out[1]).resolve().is_relative_to(ROOT)
    help_text = _run([env_dir / "bin" / "sgd-dmft", "--help"], cwd=outside, env=env)
    for command in ("solve", "simulate", "compare", "show", "sweep"):
        assert command in help_text
    # the package data and the lazy re-exports work from the installed copy
    _run([py, "-c", "import sgd_dmft, importlib.resources as r; assert r.files('sgd_dmft').joinpath('py.typed')"
          ".is_file(); sgd_dmft.solve; sgd_dmft.from_arrays"], cwd=outside, env=env)
