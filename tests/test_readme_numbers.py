"""The README's numbers about runs are tied to the outputs that measure them
(benchmarks/readme_numbers.py): every registered number is found in the README exactly once, and the
script reports, checks and rewrites them from (here synthetic) outputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "benchmarks" / "readme_numbers.py")
rn = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("readme_numbers", rn)  # dataclasses look the module up
_spec.loader.exec_module(rn)


def _demo(tmp: Path, theory_s=2.3, sim_s=9.0, z_train=2.57, zt_train=2.37, z_test=1.59) -> Path:
    out = tmp / "out"
    (out / "demo").mkdir(parents=True)
    disc = {"train_loss": {"max_z": z_train, "z_t": zt_train}, "test_loss": {"max_z": z_test, "z_t": 1.5}}
    (out / "demo" / "summary.json").write_text(json.dumps({"discrepancy": disc,
                                                           "wall_time_s": {"theory": theory_s, "simulation": sim_s}}))
    return out


def test_every_claim_is_in_the_readme_once(tmp_path):
    rows = rn.evaluate((ROOT / "README.md").read_text(encoding="utf-8"), tmp_path, tmp_path / "none.json")
    assert [r["status"] for r in rows] == ["no output"] * len(rn.CLAIMS)  # nothing measured: nothing fails


def test_check_passes_on_matching_outputs_and_fails_on_different_ones(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    rows = rn.evaluate(readme.read_text(), _demo(tmp_path / "same"), tmp_path / "none.json")
    demo_rows = [r for r in rows if r["name"].startswith("demo")]
    args = ["--readme", str(readme), "--bench", str(tmp_path / "none.json")]
    if any(r["status"] == "differs" for r in demo_rows):  # the README was edited: the synthetic demo must follow
        pytest.fail(f"update _demo() to the README's demo numbers: {[(r['name'], r['readme']) for r in demo_rows]}")
    assert rn.main(args + ["--out", str(tmp_path / "same" / "out"), "--check"]) == 0
    other = _demo(tmp_path / "other", theory_s=3.14, z_train=3.456)
    assert rn.main(args + ["--out", str(other), "--check"]) == 1
    assert "differs  demo theory wall time [s]: README 2.3, latest 3.1" in capsys.readouterr().out


def test_write_replaces_only_the_measured_numbers(tmp_path):
    readme = tmp_path / "README.md"
    before = (ROOT / "README.md").read_text(encoding="utf-8")
    readme.write_text(before, encoding="utf-8")
    out = _demo(tmp_path, theory_s=12.34, sim_s=101.2, z_train=3.456)
    args = ["--readme", str(readme), "--out", str(out), "--bench", str(tmp_path / "none.json")]
    assert rn.main(args + ["--write"]) == 0
    after = readme.read_text(encoding="utf-8")
    assert "theory 12.3 s, simulation 101 s on 2 cores" in after and "measured max z 3.46 train" in after
    assert rn.main(args + ["--check"]) == 0
    assert len(after.splitlines()) == len(before.splitlines())
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 2, changed  # the two demo lines, nothing else


def test_sci_format_matches_the_readme_style():
    assert rn._sci(6.137e-4) == "6.1e-4" and rn._sci(1.2e-12) == "1.2e-12"
