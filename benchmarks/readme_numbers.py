"""The numbers the README states about runs, checked against (or written from) the latest outputs.

Each claim below names a number in README.md (a regex whose groups are the numbers), the output file
that measures it (under ``out/``: ``make demo``, ``make figures``; ``benchmarks/results.json``: ``make
bench``) and how to read and format it. Usage::

    python benchmarks/readme_numbers.py            # table: README / latest output / status
    python benchmarks/readme_numbers.py --check    # exit 1 if a README number differs from its output
    python benchmarks/readme_numbers.py --write    # rewrite those README numbers from the outputs

A claim whose output is missing (not run here) is reported as ``no output`` and never fails ``--check``;
the numbers are measured on one machine (timings on this 2-core machine vary by ~20 %), so they are
compared as the README prints them (the same rounding), not within a tolerance.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


def _sci(x: float) -> str:
    """``6.1e-4`` (README style: no padded exponent)."""
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"


@dataclass(frozen=True)
class Claim:
    """A README number: ``pattern`` (spaces match any whitespace; each group is one number), the output
    ``source`` (relative to the out directory, or ``bench:`` for benchmarks/results.json), ``read``
    (the JSON -> one value per group, None when the output does not measure it) and ``fmt`` (one
    formatter, or one per group)."""

    name: str
    pattern: str
    source: str
    read: Callable[[dict], Any]
    fmt: Callable[[float], str] | tuple[Callable[[float], str], ...] = "{:.2f}".format

    def format(self, values: tuple) -> tuple[str, ...]:
        fmts = self.fmt if isinstance(self.fmt, tuple) else (self.fmt,) * len(values)
        return tuple(f(v) for f, v in zip(fmts, values))

    def regex(self) -> re.Pattern:
        return re.compile(r"\s+".join(self.pattern.split(" ")))


def _disc(var: str, key: str) -> Callable[[dict], float]:
    return lambda s: s["discrepancy"][var][key]


def _bi_max(s: dict) -> float:  # kappa = 1 and n^0.5 (not n^0.8, which the README says is off)
    return max(v for k, v in s["max_z"].items() if not k.endswith("n^0.8"))


def _sme(var: str) -> Callable[[dict], tuple]:
    return lambda s: (s["logistic"][var]["dmft_sgd_vs_sme_max_z"], s["logistic"][var]["sim_sgd_vs_sme_max_z"])


def _long_example(s: dict) -> tuple:
    d = s["discrepancy"]
    return (s["wall_time_s"]["theory"], s["wall_time_s"]["simulation"], d["train_loss"]["max_z"],
            d["test_loss"]["max_z"], d["test_loss"]["z_t"])


DEMO, BI = "demo/summary.json", "figures/fig_batch_invariance/summary.json"
LH, AN = "figures/fig_long_horizon/summary.json", "figures/fig_annealing/summary.json"
SSG, PT = "figures/fig_sgd_sme_gf/summary.json", "figures/fig_pytorch/summary.json"
_F0, _F1 = "{:.0f}".format, "{:.1f}".format
CLAIMS = (
    Claim("demo theory wall time [s]", r"theory (\d+\.\d) s, simulation", DEMO, lambda s: s["wall_time_s"]["theory"],
          "{:.1f}".format),
    Claim("demo simulation wall time [s]", r"simulation (\d+) s on 2 cores", DEMO,
          lambda s: s["wall_time_s"]["simulation"], "{:.0f}".format),
    Claim("demo max z train", r"measured max z (\d+\.\d\d) train", DEMO, _disc("train_loss", "max_z")),
    Claim("demo z_t train", r"train \(Student-t (\d+\.\d\d)\)", DEMO, _disc("train_loss", "z_t")),
    Claim("demo max z test", r"/ (\d+\.\d\d) test over", DEMO, _disc("test_loss", "max_z")),
    Claim("batch invariance max z (kappa 1, n^0.5)", r"max gap ≤ (\d+\.\d) combined", BI, _bi_max, "{:.1f}".format),
    Claim("long horizon GF grid points", r"to t = 1000 on (\d+) graded grid points", LH,
          lambda s: s["linear"]["grid_steps"], "{:d}".format),
    Claim("long horizon GF vs closed form", r"exact path is within (\d\.\de-\d) of the", LH,
          lambda s: s["linear"]["max_err_vs_gf"], _sci),
    Claim("long horizon GF vs simulation [s.e.]", r"within (\d+\.\d) s\.e\. of a d = 1000", LH,
          lambda s: max(s["linear"]["max_z_vs_sim"].values()), "{:.1f}".format),
    Claim("long horizon SGD gap", r"8 seeds, max gap (0\.\d{4}) \(", LH,
          lambda s: s["logistic_sgd"]["discrepancy"]["train_loss"]["max_abs"], "{:.4f}".format),
    Claim("long horizon SGD max z, z_t", r"\((\d+\.\d) s\.e\., Student-t normal-equivalent (\d+\.\d);", LH,
          lambda s: (s["logistic_sgd"]["discrepancy"]["train_loss"]["max_z"],
                     s["logistic_sgd"]["discrepancy"]["train_loss"]["z_t"]), "{:.1f}".format),
    Claim("annealing DMFT test loss (t_d 0.48 / 2 / none)", r"t = 8 is (0\.\d+) / (0\.\d+) / (0\.\d+) for", AN,
          lambda s: tuple(s["final_test_theory"][s["decay_times"].index(t)] for t in (0.48, 2.0, 8.0)),
          "{:.3f}".format),
    Claim("annealing simulated test loss", r"limit, against (0\.\d+) / (0\.\d+) / (0\.\d+) for true", AN,
          lambda s: tuple(s["final_test_sim"][s["decay_times"].index(t)] for t in (0.48, 2.0, 8.0)),
          "{:.3f}".format),
    Claim("annealing max |z|", r"max \|z\| (\d+\.\d\d) over seven", AN, lambda s: s["max_abs_z"]),
    Claim("long-horizon example (out/long): wall times [s], max z, z_t",
          r"nested levels\) (\d+) s and d = 1000 simulation (\d+) s; max z (\d+\.\d) train, (\d+\.\d) test "
          r"\(Student-t (\d+\.\d)\)\)", "long/summary.json", _long_example, (_F0, _F0, _F1, _F1, _F1)),
    Claim("SGD vs SME test loss [s.e.: DMFT, sims]", r"SGD and SME differs by (\d+) combined s\.e\. in the DMFT and "
          r"(\d+) in the simulations", SSG, _sme("test_loss"), _F0),
    Claim("SGD vs SME overlap M [s.e.: DMFT, sims]", r"the overlap M by (\d+) and (\d+) \(", SSG, _sme("M"), _F0),
    Claim("PyTorch loop vs theory max z", r"skipped without torch\): largest gap (\d+\.\d) combined", PT,
          lambda s: max(s["max_z"].values()), _F1),
    Claim("make bench wall time [min]", r"results\.json \(about (\d+) min", "bench:",
          lambda s: None if s.get("quick") else s["wall_s"] / 60, "{:.0f}".format),
)


def _load(claim: Claim, out: Path, bench: Path) -> dict | None:
    path = bench if claim.source == "bench:" else out / claim.source
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def evaluate(readme: str, out: Path, bench: Path) -> list[dict]:
    """Per claim: ``name``, ``readme`` (the numbers as written), ``latest`` (formatted from the output, or
    None), ``status`` (``ok``, ``differs``, ``no output``) and the match ``span`` in ``readme``."""
    rows = []
    for c in CLAIMS:
        found = list(c.regex().finditer(readme))
        if len(found) != 1:
            raise SystemExit(f"README.md: claim {c.name!r} matches {len(found)} times (pattern {c.pattern!r})")
        m, data = found[0], _load(c, out, bench)
        try:
            value = None if data is None else c.read(data)
        except (KeyError, ValueError, IndexError, TypeError):
            value = None
        values = value if isinstance(value, tuple) else (value,)
        latest = None if value is None else c.format(values)
        status = "no output" if latest is None else "ok" if latest == m.groups() else "differs"
        rows.append(dict(name=c.name, readme=m.groups(), latest=latest, status=status, match=m))
    return rows


def rewrite(readme: str, rows: list[dict]) -> str:
    """``readme`` with every measured number replaced by its latest value (the rest of the text unchanged)."""
    edits = sorted(((r["match"].span(i + 1), v) for r in rows if r["latest"] for i, v in enumerate(r["latest"])),
                   reverse=True)
    for (a, b), v in edits:
        readme = readme[:a] + v + readme[b:]
    return readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--out", type=Path, default=ROOT / "out", help="outputs of make demo / make figures")
    ap.add_argument("--bench", type=Path, default=ROOT / "benchmarks" / "results.json")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a README number differs from its output")
    mode.add_argument("--write", action="store_true", help="rewrite the README's numbers from the outputs")
    args = ap.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    rows = evaluate(text, args.out, args.bench)
    for r in rows:
        latest = " / ".join(r["latest"]) if r["latest"] else "-"
        print(f"{r['status']:>9}  {r['name']}: README {' / '.join(r['readme'])}, latest {latest}")
    if args.write:
        args.readme.write_text(rewrite(text, rows), encoding="utf-8")
        print(f"wrote {args.readme}")
    return 1 if args.check and any(r["status"] == "differs" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
