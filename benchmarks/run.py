"""Benchmark runner: `make bench` (or `python benchmarks/run.py [--quick]`).

Runs the simulator and DMFT benchmarks, prints one table per group and writes all rows as JSON to
benchmarks/results.json (machine facts included). Speed is measured here, never in tests.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_accuracy  # noqa: E402
import bench_dmft  # noqa: E402
import bench_horizon  # noqa: E402
import bench_simulate  # noqa: E402


def _table(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = [[str(r.get(k, "")) for r in rows] for k in keys]
    widths = [max(len(k), *(len(c) for c in col)) for k, col in zip(keys, cols)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for i in range(len(rows)):
        lines.append("  ".join(col[i].ljust(w) for col, w in zip(cols, widths)))
    return "\n".join(lines)


def main() -> None:
    quick = "--quick" in sys.argv
    t0 = time.time()
    sim_rows = bench_simulate.run(d=1000) if quick else bench_simulate.run()
    for r in sim_rows:
        for k, v in list(r.items()):
            if isinstance(v, float):
                r[k] = round(v, 4)
    print("\n== finite-d simulator (ref = plain numpy loop; gd: ref = the two matvecs)")
    print(_table(sim_rows))
    groups: dict[str, list[dict]] = {}
    for r in bench_dmft.run(quick) + ([] if quick else bench_accuracy.run()) + bench_horizon.run(quick):
        groups.setdefault(r["bench"], []).append(r)
    for name, rows in groups.items():
        print(f"\n== {name}")
        print(_table(rows))
    out = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "quick": quick,
        "wall_s": round(time.time() - t0, 1),
        "simulator": sim_rows,
        "dmft": groups,
    }
    path = Path(__file__).resolve().parent / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    print(f"\nwrote {path} ({out['wall_s']} s)")


if __name__ == "__main__":
    main()
