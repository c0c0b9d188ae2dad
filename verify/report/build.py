"""The report: run the registered experiments and write CSVs, JSON sidecars, tables, figures and ``summary.md``.

Layout of the output folder::

    data/<experiment>.csv     tidy results, one row per measurement
    data/<experiment>.json    sidecar: configuration, seeds, package versions, x64 flag, git commit, wall time
    tables/<table>.tex        booktabs LaTeX built from the CSVs only
    figures/<figure>.pdf/.png seaborn figures built from the CSVs only
    report.tex                the report by claim: verdicts, checks, tables and figures (verify.report.document)
    appendix_derivations.tex  the closed forms derived by SymPy (theory.derivations), typeset
    summary.md                every claim with its verdict and the numbers behind it
    cache/                    finished cells, keyed by configuration, seed and code version
    cache/networks/           trained network parameters (verify.samplers.network_cache), so recomputed cells
                              do not retrain

Exit status of :func:`build_report` (and of ``python -m verify``): 0 when nothing failed, 1 when an asserted check
(a bound or identity the theory guarantees) fails, 2 when an experiment could not be completed (an exception in a
cell, a table or a figure) and no asserted check failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from verify.report.cache import CellCache, atomic_write, code_version
from verify.report.claims import FAILS, INCONCLUSIVE, CheckResult, Outcome
from verify.report.provenance import git_state, package_versions, x64_enabled
from verify.report.registry import Experiment, Registry
from verify.report.runner import CellOutcome, plan_cells, run_cells
from verify.report.summary import ExperimentRecord, write_summary
from verify.report.document import report_document
from verify.report.tables import write_tables

EXIT_OK, EXIT_ASSERTION_FAILED, EXIT_ERROR = 0, 1, 2


@dataclass
class ReportResult:
    """What a report run produced: per-experiment records, check results, exit status and counts."""

    records: list[ExperimentRecord]
    checks: list[CheckResult]
    exit_code: int
    computed: int
    cached: int
    wall_time: float
    out: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def assemble(cells: list[CellOutcome]) -> pd.DataFrame:
    """Concatenate an experiment's cell frames in cell order, adding each configuration key the frame lacks as a
    leading column."""
    frames = []
    for outcome in sorted(cells, key=lambda o: o.cell.index):
        frame = outcome.result.frame.copy()
        extra = [k for k in outcome.cell.config if k not in frame.columns]
        for position, k in enumerate(extra):
            value = outcome.cell.config[k]
            frame.insert(position, k, [json.dumps(value) if isinstance(value, (list, dict)) else value] * len(frame))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _sidecar(experiment: Experiment, cells: list[CellOutcome], frame: pd.DataFrame, seed: int, cache: CellCache,
             elapsed: float, size: str = "default") -> dict:
    ordered = sorted(cells, key=lambda o: o.cell.index)
    return {
        "experiment": experiment.name,
        "title": experiment.title,
        "configuration": {
            "compute": experiment.compute,
            "size": size,
            "cells": [{"config": o.cell.config, "seed": o.cell.seed, "cache_key": o.cell.key,
                       "wall_time_s": o.result.wall_time, "cached": o.cached} for o in ordered],
        },
        "seed": seed,
        "code_version": cache.version,
        "git": git_state(),
        "package_versions": package_versions(),
        "x64": all(o.result.x64 for o in ordered) and x64_enabled(),
        "wall_time_s": {"compute": sum(o.result.wall_time for o in ordered), "elapsed_this_run": elapsed},
        "rows": len(frame),
        "columns": list(frame.columns),
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _evaluate_checks(experiment: Experiment, frame: pd.DataFrame) -> list[CheckResult]:
    results = []
    for check in experiment.checks:
        try:
            outcome = check.evaluate(frame)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"check returned {type(outcome).__name__}, not an Outcome")
            if check.asserted and outcome.status == INCONCLUSIVE:
                outcome = Outcome(FAILS, outcome.numbers, "an asserted check must decide, but it returned "
                                  f"inconclusive: {outcome.note}", outcome.judged)
        except Exception as err:  # noqa: BLE001 - a check that cannot be evaluated fails, visibly
            outcome = Outcome(FAILS, {}, f"the check raised {type(err).__name__}: {err}")
        results.append(CheckResult(experiment.name, check, outcome))
    return results


def build_report(registry: Registry, out, *, names=None, size: str = "default", settings=None, seed: int = 0,
                 executor: cf.Executor | None = None, jobs: int = 1, progress: bool | None = None,
                 echo: Callable[[str], None] = print, cache_version: str | None = None) -> ReportResult:
    """Run the selected experiments of ``registry`` and write the report to ``out`` (layout in the module docstring).

    Parameters
    ----------
    names : iterable of str, optional
        Experiments to run (``--only``); all registered ones when omitted.
    size : {"quick", "default", "paper"}
        ``"quick"``: small cells (what the tests run); ``"paper"``: the authors' sizes where an experiment defines
        them (``--size paper``).
    settings : sequence of closed_form.Setting, optional
        Run every experiment that takes a setting on these instead of its own (``--settings FILE``); the others are
        reported as not applicable, with the reason.
    executor : concurrent.futures.Executor, optional
        Where cells run (e.g. ``dask.distributed.Client(...).get_executor()``); by default local processes
        (``jobs`` of them; ``jobs == 1`` runs in this process). An executor passed in is not shut down.
    progress : bool, optional
        Show a tqdm progress bar of cells (default: when the terminal is interactive).
    cache_version : str, optional
        Code version for the cache keys; the hash of the source by default (tests pin it).
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    selected = {e.name for e in registry.select(names)}
    cache = CellCache(out / "cache", version=cache_version)
    records: dict[str, ExperimentRecord] = {}
    runnable: dict[str, Experiment] = {}
    planned = []
    for experiment in registry:
        record = ExperimentRecord(experiment.name, experiment.title, "not selected", claims=experiment.claims)
        records[experiment.name] = record
        if experiment.name not in selected:
            continue
        missing = experiment.missing_requirements()
        if missing:
            record.status, record.missing = "awaiting", missing
            echo(f"- {experiment.name}: awaits {', '.join(missing)} (not run)")
            continue
        cells = plan_cells(experiment, seed, cache, size, settings)
        if not cells and settings is not None:
            record.status, record.error = "not applicable", experiment.not_applicable(size, settings)
            echo(f"- {experiment.name}: not applicable ({record.error})")
            continue
        if not cells:
            record.status = "skipped at --size quick"
            echo(f"- {experiment.name}: no quick cells (too slow for --size quick; runs at the default size)")
            continue
        if settings is not None:  # the settings it runs on say why it skips the others
            record.not_applicable_to = tuple((s.name, why) for s in settings
                                             if (why := experiment.reason_not_applicable(s)) is not None)
        runnable[experiment.name] = experiment
        record.cells = len(cells)
        planned.extend(cells)

    finished: dict[str, list[CellOutcome]] = {name: [] for name in runnable}
    started: dict[str, float] = {}
    check_results: list[CheckResult] = []
    tables, figures = [], []
    bar = tqdm(total=len(planned), desc="cells", unit="cell", disable=(not progress) if progress is not None else None)
    say = (lambda text: bar.write(text)) if not bar.disable else echo

    def finish(experiment: Experiment, cells: list[CellOutcome]):
        record = records[experiment.name]
        record.computed = sum(not o.cached for o in cells)
        record.cached = sum(o.cached for o in cells)
        record.wall_time = sum(o.result.wall_time for o in cells if o.result is not None)
        failed = [o for o in cells if o.error]
        if failed:
            record.status, record.error = "error", failed[0].error
            say(f"✗ {experiment.name}: {len(failed)} of {len(cells)} cells failed — {failed[0].error.splitlines()[-1]}")
            return
        try:
            frame = assemble(cells)
            if experiment.derive is not None:
                frame = experiment.derive(frame)
            csv_path = out / "data" / f"{experiment.name}.csv"
            atomic_write(csv_path, frame.to_csv(index=False, float_format="%.17g"))
            elapsed = time.perf_counter() - started.get(experiment.name, start)
            sidecar = _sidecar(experiment, cells, frame, seed, cache, elapsed, size)
            atomic_write(csv_path.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=False) + "\n")
            record.outputs.append(f"data/{experiment.name}.csv")
            for spec in experiment.tables:
                written = write_tables(spec, csv_path, out / "tables")
                tables.extend(written)
                record.outputs.extend(f"tables/{p.name}" for p in written)
            saved = pd.read_csv(csv_path)
            for spec in experiment.figures:
                from verify.report.figures import save_figure

                fig = spec.draw(saved)
                written = save_figure(fig, out / "figures", spec.name)
                figures.extend(written)
                record.outputs.append(f"figures/{spec.name}.pdf")
            results = _evaluate_checks(experiment, saved)
        except Exception as err:  # noqa: BLE001 - reported, the run goes on
            record.status, record.error = "error", "".join(traceback.format_exception(err))
            say(f"✗ {experiment.name}: {type(err).__name__}: {err}")
            return
        record.status = "ran"
        check_results.extend(results)
        verdicts = ", ".join(f"{r.check.claim} {r.outcome.status}" for r in results) or "no checks"
        say(f"✓ {experiment.name}: {len(cells)} cells ({record.computed} computed, {record.cached} cached, "
            f"{record.wall_time:.1f} s compute) → {len(experiment.tables)} table(s), {len(experiment.figures)} "
            f"figure(s); {verdicts}")

    def on_done(outcome: CellOutcome):
        name = outcome.cell.experiment
        started.setdefault(name, time.perf_counter())
        finished[name].append(outcome)
        bar.update(1)
        if len(finished[name]) == records[name].cells:
            finish(runnable[name], finished[name])

    try:
        stats = run_cells(runnable, planned, cache, executor, jobs, on_done,
                          network_cache=str(cache.root / "networks"))
    finally:
        bar.close()

    appendix = _derivations_appendix(cache, out)
    wall = time.perf_counter() - start
    asserted_failed = any(r.check.asserted and r.outcome.status == FAILS for r in check_results)
    errored = any(r.status == "error" for r in records.values())
    exit_code = EXIT_ASSERTION_FAILED if asserted_failed else EXIT_ERROR if errored else EXIT_OK
    git = git_state()
    run_info = {
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "size": size,
        "settings": "the paper's" if settings is None else ", ".join(s.name for s in settings),
        "seed": seed,
        "experiments": f"{sum(r.status == 'ran' for r in records.values())} ran of {len(records)} registered",
        "cells": f"{stats.computed} computed, {stats.cached} from the cache, {stats.failed} failed",
        "wall time": f"{wall:.1f} s",
        "code version": cache.version,
        "git commit": f"{git['commit']}{' (with uncommitted changes)' if git['dirty'] else ''}",
        "float64": x64_enabled(),
        "exit status": exit_code,
    }
    write_summary(out / "summary.md", list(records.values()), check_results, run_info)
    captions = {spec.name: spec.caption for e in registry for spec in e.figures}
    atomic_write(out / "report.tex", report_document(list(records.values()), check_results, run_info, captions,
                                                     appendix.relative_to(out).as_posix()))
    return ReportResult(list(records.values()), check_results, exit_code, stats.computed, stats.cached, wall, out,
                        tables, figures)


def _derivations_appendix(cache: CellCache, out: Path) -> Path:
    """Write ``out/appendix_derivations.tex`` (:func:`theory.derivations.appendix_latex`). The SymPy derivations take
    about 10 s of CPU, so their LaTeX is kept in the cache folder, keyed by the hash of :mod:`theory`'s source."""
    cached = cache.root / f"appendix_derivations_{code_version(('theory',))}.tex"
    if not cached.exists():
        from theory.derivations import appendix_latex

        atomic_write(cached, appendix_latex())
    return atomic_write(out / "appendix_derivations.tex", cached.read_text())


def describe(registry: Registry) -> str:
    """``--list``: one line per registered experiment with its cell counts, claims and availability."""
    lines = []
    for e in registry:
        missing = e.missing_requirements()
        state = f"awaits {', '.join(missing)}" if missing else "ready"
        claims = ",".join(e.claims) or "-"
        lines.append(f"{e.name:24s} {len(e.default):4d} cells ({len(e.quick)} quick)  claims {claims:14s} {state:10s}"
                     f"  {e.title}")
    return "\n".join(lines)
