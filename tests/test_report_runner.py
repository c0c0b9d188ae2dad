"""The report's machinery: atomic writes, the resumable cell cache, executors (inline, spawn pool, Dask), exit codes."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_helpers import count_calls, toy_registry

from verify.report.cache import atomic_write
from verify.experiments import REGISTRY
from verify.report.registry import Experiment, RegistryError, grid
from verify.report.build import EXIT_ASSERTION_FAILED, EXIT_ERROR, EXIT_OK, build_report
from verify.report.runner import cell_seed

VERSION = "test-version"  # pinned, so concurrent edits of the source cannot invalidate the cache mid-test


def build(registry, out, **kwargs):
    kwargs.setdefault("cache_version", VERSION)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("echo", lambda line: None)
    return build_report(registry, out, **kwargs)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["f.txt"]


def test_atomic_write_failing_before_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write(target, "old content")

    def broken_replace(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk vanished"):
        atomic_write(target, "new content that must not appear")
    assert target.read_text() == "old content"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_cache_resumes_without_recomputing(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    registry = toy_registry(markers)
    out = tmp_path / "out"
    first = build(registry, out)
    assert (first.exit_code, first.computed, first.cached, count_calls(markers)) == (EXIT_OK, 4, 0, 4)
    csv_first = (out / "data" / "toy.csv").read_text()

    second = build(registry, out)
    assert (second.computed, second.cached, count_calls(markers)) == (0, 4, 4)
    assert (out / "data" / "toy.csv").read_text() == csv_first

    entries = sorted((out / "cache" / "toy").glob("*.pkl"))
    entries[1].unlink()  # as if the run had been stopped before this cell finished
    third = build(registry, out)
    assert (third.computed, third.cached, count_calls(markers)) == (1, 3, 5)
    assert (out / "data" / "toy.csv").read_text() == csv_first

    fourth = build(registry, out, cache_version="another-version")
    assert (fourth.computed, count_calls(markers)) == (4, 9)


def test_an_interrupted_run_keeps_finished_cells(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    flag = tmp_path / "fail"
    flag.touch()
    registry = toy_registry(markers, values=(1.0,), fail_flag=str(flag))
    other = toy_registry(markers, values=(0.5, 1.5), fail_flag=None)
    both = type(registry)([registry["toy"], dataclasses.replace(other["toy"], name="toy_ok", tables=())])
    out = tmp_path / "out"
    first = build(both, out)
    assert first.exit_code == EXIT_ERROR
    assert {r.name: r.status for r in first.records} == {"toy": "error", "toy_ok": "ran"}
    assert "told to fail" in (out / "summary.md").read_text()
    flag.unlink()
    second = build(both, out)
    assert second.exit_code == EXIT_OK
    assert (second.computed, second.cached) == (1, 2)


def test_cell_results_do_not_depend_on_the_executor(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    registry = toy_registry(markers)
    build(registry, tmp_path / "inline", jobs=1)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        build(registry, tmp_path / "threads", executor=pool)
    build(registry, tmp_path / "spawn", jobs=2)  # spawn-context process pool, as python -m verify uses
    assert count_calls(markers) == 12
    frames = [pd.read_csv(tmp_path / d / "data" / "toy.csv") for d in ("inline", "threads", "spawn")]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_dask_client_executor_runs_a_quick_experiment_unchanged(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = build(REGISTRY, tmp_path / "dask", names=["path_gap"], size="quick", executor=client.get_executor())
    assert result.exit_code == EXIT_OK and result.computed == len(REGISTRY["path_gap"].quick)
    inline = build(REGISTRY, tmp_path / "inline", names=["path_gap"], size="quick", jobs=1)
    assert inline.exit_code == EXIT_OK
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dask" / "data" / "path_gap.csv"),
                                  pd.read_csv(tmp_path / "inline" / "data" / "path_gap.csv"))


def test_nan_in_a_result_fails_the_cell_loudly(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    result = build(toy_registry(markers, nan=True), tmp_path / "out")
    assert result.exit_code == EXIT_ERROR
    assert "NaN" in result.records[0].error
    assert not (tmp_path / "out" / "data" / "toy.csv").exists()


def test_a_failing_asserted_check_sets_the_exit_status(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    result = build(toy_registry(markers, failing_check=True), tmp_path / "out")
    assert result.exit_code == EXIT_ASSERTION_FAILED
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| F2 | ours | **fails** |" in summary and "| F1 | ours | **holds** |" in summary


def test_cell_seeds_are_distinct_and_independent_of_order():
    configs = grid(setting=("A", "B"), K=(1, 4, 16))
    seeds = [cell_seed(0, "exp", c) for c in configs]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [cell_seed(0, "exp", c) for c in configs]
    assert seeds != [cell_seed(1, "exp", c) for c in configs]
    assert all(0 <= s < 2**31 for s in seeds)


def test_registrations_are_validated(tmp_path):
    good = dict(name="x", title="t", compute="m:f", default=({"a": 1},), quick=({"a": 1},))
    Experiment(**good)
    with pytest.raises(RegistryError, match="module:function"):
        Experiment(**{**good, "compute": "no_colon"})
    with pytest.raises(RegistryError, match="JSON"):
        Experiment(**{**good, "default": ({"a": np.float64},)})
    with pytest.raises(RegistryError, match="seed"):
        Experiment(**{**good, "default": ({"seed": 3},)})
    with pytest.raises(RegistryError, match="registered: paper_targets"):
        REGISTRY.select(["nope"])
    registry = toy_registry(tmp_path)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(registry["toy"])


def test_an_experiment_awaiting_its_code_is_listed_not_run(tmp_path):
    registry = toy_registry(tmp_path)
    registry.register(Experiment(name="later", title="awaits code", compute="verify.not_landed_yet:f",
                                 default=({},), quick=({},), checks=REGISTRY["path_gap"].checks))
    result = build(registry, tmp_path / "out")
    status = {r.name: (r.status, r.missing) for r in result.records}
    assert status["later"] == ("awaiting", ("verify.not_landed_yet",))
    summary = Path(tmp_path / "out" / "summary.md").read_text()
    assert "`later` awaits `verify.not_landed_yet`" in summary


def test_a_cell_can_receive_its_seed_as_a_jax_key():
    import jax

    from verify.report.runner import compute_cell

    cell = compute_cell("report_helpers:keyed_cell", {"n": 3}, "key", 7, seed_kind="jax_key")
    assert cell.x64 is True
    np.testing.assert_array_equal(cell.frame["z"].to_numpy(), np.asarray(jax.random.normal(jax.random.key(7), (3,))))


def test_an_experiment_without_quick_cells_is_skipped_at_quick_size(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    slow = dataclasses.replace(toy_registry(markers)["toy"], quick=())
    registry = type(REGISTRY)([slow])
    quick = build(registry, tmp_path / "quick", size="quick")
    assert quick.records[0].status == "skipped at --size quick" and count_calls(markers) == 0
    assert "runs only at the default size" in (tmp_path / "quick" / "summary.md").read_text()
    full = build(registry, tmp_path / "full")
    assert full.records[0].status == "ran" and count_calls(markers) == 4


def test_code_version_hashes_whole_packages_and_nothing_outside_them(tmp_path, monkeypatch):
    """A package is hashed by folder: editing or adding any module in it (a subpackage's too) changes the version;
    editing a sibling package that is not listed (the report's, say) does not."""
    from verify.report.cache import code_version

    root = tmp_path / "fakepkg"
    for sub in ("", "compute", "compute/deep", "report"):
        (root / sub).mkdir(exist_ok=True)
        (root / sub / "__init__.py").write_text("")
    (root / "compute" / "kernel.py").write_text("X = 1\n")
    (root / "report" / "catalog.py").write_text("CAPTION = 'a'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    version = code_version(("fakepkg.compute",))
    (root / "report" / "catalog.py").write_text("CAPTION = 'b'\n")
    assert code_version(("fakepkg.compute",)) == version
    (root / "compute" / "kernel.py").write_text("X = 2\n")
    edited = code_version(("fakepkg.compute",))
    assert edited != version
    (root / "compute" / "deep" / "new.py").write_text("Y = 0\n")
    assert code_version(("fakepkg.compute",)) not in (version, edited)
    assert code_version(("fakepkg.absent",)) != code_version(("fakepkg.compute",))


def test_code_version_covers_the_computing_packages_and_not_the_report():
    """The default version hashes every module of closed_form, theory, verify.samplers and verify.analysis and none
    of verify.report or verify.experiments (each experiment's module is hashed into its own cells' keys): exactly the
    source tree's .py files less verify/report/, verify/experiments/, verify's two facade files and its two
    user-facing modules (diagnosis, notebooks), which no cell runs."""
    from verify.report.cache import hashed_files

    root = Path(__file__).resolve().parents[1]
    expected = {p.relative_to(root).as_posix() for top in ("closed_form", "theory", "verify")
                for p in (root / top).rglob("*.py")}
    expected = {p for p in expected if not p.startswith(("verify/report/", "verify/experiments/"))} - {
        "verify/__init__.py", "verify/__main__.py", "verify/diagnosis.py", "verify/notebooks.py"}
    files = dict(hashed_files())
    assert all(f is not None for f in files.values()), files
    assert set(files) == expected, set(files) ^ expected
    assert "verify/samplers/smc.py" in files and "theory/derivations/render.py" in files
