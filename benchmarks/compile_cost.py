"""Where the test suite's JAX compilation time goes: per test file, per program, and eager vs staged.

A pytest plugin and a summary in one file. As a plugin it listens to JAX's monitoring events for tracing, lowering
and XLA compilation (``/jax/core/compile/*_duration``) in every test process and writes one JSON-lines file per
xdist worker, each event tagged with the test (and phase: setup, call, teardown) that caused it and, for XLA
compilations, the innermost line of this repository on the stack (``site``: the eager operation or the call of a
jitted function that needed a new program). Processes the tests start (the quick report, notebook kernels) are not
seen. Run from the repository root:

    PYTHONPATH=benchmarks python -m pytest -n 2 -p compile_cost --compile-cost-dir /tmp/cc   # record
    python benchmarks/compile_cost.py /tmp/cc                                                # summarize

For a first run's figures, start with an empty persistent cache (``pytest --cache-clear``, or
``CATCOMP_TEST_COMPILATION_CACHE=0``); with a filled one, "XLA compilation" is mostly loading from the cache.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

import pytest

PHASES = {
    "/jax/core/compile/jaxpr_trace_duration": "tracing",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering",
    "/jax/core/compile/backend_compile_duration": "XLA compilation",
}
#: A program whose XLA compilation takes less than this is counted as "small" (eager single operations and other
#: tiny programs; the samplers' programs take 0.5–3 s here).
SMALL_S = 0.3


# ------------------------------------------------------------------------------------------------ the plugin
class _Recorder:
    def __init__(self, folder: Path):
        self.folder = folder
        self.where = "<collection>"
        self.events: list[tuple[str, str, str, float]] = []

    def listen(self, event, duration, **kwargs):
        if event in PHASES:
            site = _call_site() if PHASES[event] == "XLA compilation" else ""
            self.events.append((self.where, PHASES[event], kwargs.get("fun_name", ""), float(duration), site))

    def write(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(self.folder / f"compile-{worker}.jsonl", "w") as f:
            for where, phase, name, seconds, site in self.events:
                record = {"test": where, "phase": phase, "program": name, "seconds": seconds}
                if site:
                    record["site"] = site
                f.write(json.dumps(record) + "\n")


_ROOT = str(Path(__file__).resolve().parents[1])


def _call_site() -> str:
    """``path:line`` of the innermost frame in this repository (outside ``benchmarks/``) that led to a compilation:
    the line whose eager operation or jitted call needed a new program."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_ROOT) and "/benchmarks/" not in name:
            return f"{os.path.relpath(name, _ROOT)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def pytest_addoption(parser):
    parser.addoption("--compile-cost-dir", default="compile-cost", help="folder for the per-worker event files")


def pytest_configure(config):
    import jax.monitoring

    config._compile_cost = _Recorder(Path(config.getoption("--compile-cost-dir")))
    jax.monitoring.register_event_duration_secs_listener(config._compile_cost.listen)


def _tag(item, when):
    recorder = getattr(item.config, "_compile_cost", None)
    if recorder is not None:
        recorder.where = item.nodeid if when == "call" else f"{item.nodeid} ({when})"


# tryfirst: the tag must be in place before pytest's own hooks set up fixtures, run the test or tear down.
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _tag(item, "setup")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    _tag(item, "call")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    _tag(item, "teardown")


def pytest_unconfigure(config):
    recorder = getattr(config, "_compile_cost", None)
    if recorder is None:
        return
    import jax.monitoring

    jax.monitoring.unregister_event_duration_listener(recorder.listen)
    if recorder.events:  # the xdist controller compiles nothing and writes nothing
        recorder.write()


# ------------------------------------------------------------------------------------------------ the summary
def load(folder: Path) -> list[dict]:
    events = []
    for path in sorted(folder.glob("compile-*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line]
    if not events:
        raise SystemExit(f"no compile-*.jsonl files with events in {folder}; record them with the plugin first.")
    return events


def summarize(events: list[dict], most: int = 15) -> str:
    lines = []
    by_phase = collections.Counter()
    for e in events:
        by_phase[e["phase"]] += e["seconds"]
    xla = [e for e in events if e["phase"] == "XLA compilation"]
    lines.append(f"{len(xla)} programs compiled; seconds summed over the test processes:")
    for phase in PHASES.values():
        lines.append(f"  {phase:16s} {by_phase[phase]:8.1f}")
    small = [e["seconds"] for e in xla if e["seconds"] < SMALL_S]
    lines.append(f"  of XLA compilation: {len(small)} programs under {SMALL_S} s took {sum(small):.1f} s, "
                 f"{len(xla) - len(small)} larger ones {sum(e['seconds'] for e in xla) - sum(small):.1f} s")

    def table(title, key):
        seconds, count = collections.Counter(), collections.Counter()
        for e in xla:
            seconds[key(e)] += e["seconds"]
            count[key(e)] += 1
        lines.append(f"\nXLA compilation by {title} (top {most}): seconds, programs")
        lines.extend(f"  {s:8.1f} {count[k]:6d}  {k}" for k, s in seconds.most_common(most))

    table("test file", lambda e: e["test"].split("::")[0])
    table("test", lambda e: e["test"])
    table("program", lambda e: e["program"])
    table("call site (the innermost line of this repository)", lambda e: e.get("site") or "?")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the plugin's --compile-cost-dir")
    parser.add_argument("--most", type=int, default=15, help="rows per table")
    args = parser.parse_args()
    print(summarize(load(args.folder), args.most))


if __name__ == "__main__":
    main()
