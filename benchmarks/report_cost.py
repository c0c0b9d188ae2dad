"""What ``python -m verify`` costs: wall and CPU time of ``--quick`` (and, with ``--full``, the default run).

The aim is ``--quick`` in under a minute and the full default run in under ten on the project's 2-core
machine; the tests run ``--quick`` but do not time it. Each run is a fresh subprocess writing to a temporary folder
(no cache). Baseline, timed in the same process: ``python -c "import verify"``, the interpreter, JAX and catcomp
starting up, which every run pays once.

    python benchmarks/report_cost.py            # --quick, best of 2
    python benchmarks/report_cost.py --full     # also the default run (minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time


def timed(args, env=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child and its children) of ``python *args`` (in environment ``env``, by
    default this process's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time the full default run (once)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    base = min(timed(["-c", "import verify"]) for _ in range(args.repeats))
    print(f"  import verify (baseline)       wall {base[0]:6.1f} s   CPU {base[1]:6.1f} s")
    runs = [("--quick --jobs 1", ["--quick", "--jobs", "1"])]
    if args.full:
        runs.append(("default run", []))
    for label, extra in runs:
        repeats = args.repeats if "--quick" in extra else 1
        best = None
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                result = timed(["-m", "verify", *extra, "--no-progress", "--out", out])
            best = result if best is None or result[0] < best[0] else best
        print(f"  {label:30s} wall {best[0]:6.1f} s   CPU {best[1]:6.1f} s   ({best[0] / base[0]:.0f}× the baseline's wall)")


if __name__ == "__main__":
    main()
