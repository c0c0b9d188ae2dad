"""What the test suite costs without and with JAX's persistent compilation cache (``tests/conftest.py``).

Three runs of ``python -m pytest -n 2`` in fresh subprocesses, timed in this process: the baseline with the cache
turned off (``CATCOMP_TEST_COMPILATION_CACHE=0``), then a *first* run into an empty cache folder (what a fresh clone
or CI pays) and a *later* run that finds the folder filled. ``--load N`` keeps N busy-looping processes running
throughout, the way other work shares the machine; test paths or options after ``--`` go to pytest.

    python benchmarks/suite_cost.py                      # the whole suite, three times (about 25 min here)
    python benchmarks/suite_cost.py --load 1             # the same with one other CPU-bound process
    python benchmarks/suite_cost.py -- tests/test_samplers.py
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from report_cost import timed

ROOT = Path(__file__).resolve().parents[1]
CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "CATCOMP_TEST_COMPILATION_CACHE")


def suite(pytest_args, **cache) -> tuple[float, float]:
    """(wall, CPU) seconds of one test run, with this process's cache variables replaced by ``cache``."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES} | cache
    return timed(["-m", "pytest", "-n", "2", "-q", "-p", "no:randomly", *pytest_args], env=env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, metavar="N", help="busy-looping processes alongside")
    parser.add_argument("pytest_args", nargs="*", help="after --: test paths and pytest options")
    args = parser.parse_args()
    os.chdir(ROOT)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.load} busy process(es) alongside")
        base = suite(args.pytest_args, CATCOMP_TEST_COMPILATION_CACHE="0")
        print(f"  no compilation cache (baseline)   wall {base[0] / 60:5.1f} min   CPU {base[1] / 60:5.1f} min")
        with tempfile.TemporaryDirectory() as folder:
            cache = dict(JAX_COMPILATION_CACHE_DIR=folder, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                         JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
            for label in ("first run, empty cache", "later run, filled cache"):
                wall, cpu = suite(args.pytest_args, **cache)
                print(f"  {label:32s}  wall {wall / 60:5.1f} min   CPU {cpu / 60:5.1f} min   "
                      f"({wall / base[0]:.2f}× the baseline's wall)")
            size = sum(f.stat().st_size for f in Path(folder).iterdir())
            print(f"  cache: {len(list(Path(folder).iterdir()))} files, {size / 2**20:.0f} MiB")
    finally:
        for process in busy:
            process.kill()


if __name__ == "__main__":
    main()
