"""Running experiment cells through any :class:`concurrent.futures.Executor`, with the cell cache in front.

The work sent to an executor is :func:`compute_cell` with plain arguments (an import path, a configuration dict and
an integer seed), so it pickles for worker processes and for Dask workers alike; results come back to the calling
process, which alone writes to disk. Default executors:

* ``jobs == 1``: :class:`InlineExecutor`, the cells run one after another in this process;
* ``jobs > 1``: a :class:`~concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method (JAX is
  multithreaded and does not survive ``fork``); each worker imports catcomp afresh, which switches it to float64.

Any other executor works unchanged, e.g. a Dask cluster's ``Client.get_executor()``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from verify.report.cache import CachedCell, CellCache, module_version, stable_hash
from verify.report.registry import Experiment, resolve


class CellError(RuntimeError):
    """A cell's compute function returned something the report cannot use (not a DataFrame, silent NaNs, …)."""


def cell_seed(seed: int, experiment: str, config: dict) -> int:
    """The seed of one cell: a stream of ``np.random.SeedSequence`` keyed by the run seed, the experiment name and
    the configuration, so cells are independent of each other and of the order (or the executor) that runs them."""
    digest = int(stable_hash({"experiment": experiment, "config": config}), 16)
    return int(np.random.SeedSequence([int(seed), digest]).generate_state(1, dtype=np.uint32)[0] >> 1)


def compute_cell(compute: str, config: dict, seed_argument: str | None, seed: int,
                 allow_nan: tuple[str, ...] = (), seed_kind: str = "int",
                 network_cache: str | None = None) -> CachedCell:
    """Run one cell: ``function(**config, <seed_argument>=seed)`` (``jax.random.key(seed)`` for
    ``seed_kind="jax_key"``). Returns the frame, the compute time and the worker's float64 flag.

    ``network_cache`` (a folder) switches on the trained-parameter cache of
    :func:`verify.samplers.network_cache.network_cache` for the call, so networks a cell trained before are loaded
    instead of retrained (bit-identical); passed as an argument, it reaches any executor's workers.

    Raises
    ------
    CellError
        If the function does not return a non-empty DataFrame, or returns NaN in a column not in ``allow_nan``.
    """
    import verify  # noqa: F401  (switches JAX to float64 in a fresh worker before anything runs)
    from verify.report.provenance import x64_enabled

    function = resolve(compute)
    kwargs = dict(config)
    if "setting" in kwargs:
        from closed_form import as_setting

        kwargs["setting"] = as_setting(kwargs["setting"])
    if seed_argument:
        if seed_kind == "jax_key":
            import jax

            kwargs[seed_argument] = jax.random.key(seed)
        else:
            kwargs[seed_argument] = seed
    from verify.samplers.network_cache import network_cache as parameter_cache

    start = time.perf_counter()
    with parameter_cache(network_cache) if network_cache is not None else contextlib.nullcontext():
        frame = function(**kwargs)
    elapsed = time.perf_counter() - start
    if not isinstance(frame, pd.DataFrame):
        raise CellError(f"{compute} returned {type(frame).__name__}; a compute function must return a DataFrame.")
    if frame.empty:
        raise CellError(f"{compute}({config}) returned an empty DataFrame.")
    if any(name is not None for name in frame.index.names):  # a labelled index is data: keep it as columns
        frame = frame.reset_index()
    frame = flatten_array_columns(frame)
    numeric = frame.select_dtypes(include="number")
    nan_columns = [c for c in numeric.columns if numeric[c].isna().any() and c not in allow_nan]
    if nan_columns:
        raise CellError(f"{compute}({config}) returned NaN in columns {nan_columns}; NaN is never a silent result "
                        "(declare the columns in Experiment.allow_nan if missing values are meant).")
    return CachedCell(frame=frame, wall_time=elapsed, x64=x64_enabled())


def flatten_array_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Expand columns whose entries are arrays into scalar columns ``name[i]`` / ``name[i,j]`` so the frame fits a
    CSV (covariance matrices in a results table, say). Entries of one column must share a shape."""
    out = {}
    for name in frame.columns:
        values = frame[name].to_list()
        if values and all(hasattr(v, "__len__") and not isinstance(v, str) for v in values):
            arrays = [np.asarray(v, dtype=np.float64) for v in values]
            shapes = {a.shape for a in arrays}
            if len(shapes) != 1:
                raise CellError(f"column {name!r} holds arrays of different shapes {sorted(shapes)}.")
            for index in np.ndindex(arrays[0].shape):
                out[f"{name}[{','.join(map(str, index))}]"] = [float(a[index]) for a in arrays]
        else:
            out[name] = frame[name].to_numpy()
    return pd.DataFrame(out, index=frame.index)


class InlineExecutor(cf.Executor):
    """Runs each submitted call at once in the calling process and returns an already finished future."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future, as other executors do
            future.set_exception(err)
        return future


def _single_threaded_worker():
    """Process-pool initializer: single-threaded Eigen kernels in XLA, so ``jobs`` workers share ``jobs`` cores
    instead of each spreading its matrix products over all of them. Runs before the worker's first JAX computation,
    when XLA reads its flags. (It does not shrink XLA's intra-op pool, and is not what keeps the workers clear of
    the batched-LAPACK deadlock: ``closed_form.mixture`` avoids batched LAPACK calls.)"""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def default_executor(jobs: int) -> cf.Executor:
    """``InlineExecutor`` for ``jobs == 1``, else a spawn-context process pool of ``jobs`` single-threaded workers."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}.")
    if jobs == 1:
        return InlineExecutor()
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_single_threaded_worker)


@dataclass(frozen=True)
class Cell:
    """One unit of work: an experiment's ``index``-th configuration with its seed and cache key."""

    experiment: str
    index: int
    config: dict
    seed: int
    key: str


@dataclass
class CellOutcome:
    """A finished (or failed) cell as the runner hands it back."""

    cell: Cell
    result: CachedCell | None
    cached: bool
    error: str | None = None


@dataclass
class RunStats:
    computed: int = 0
    cached: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def plan_cells(experiment: Experiment, seed: int, cache: CellCache, size: str = "default", settings=None) -> list[Cell]:
    """The experiment's cells at ``size`` (on ``settings`` where given), each with its seed and cache key."""
    cells = []
    module = module_version(experiment.compute.partition(":")[0])
    for index, config in enumerate(experiment.cells(size, settings)):
        s = cell_seed(seed, experiment.name, config)
        cells.append(Cell(experiment.name, index, config, s, cache.key(experiment.name, config, s, module)))
    return cells


def run_cells(experiments: dict[str, Experiment], cells: Iterable[Cell], cache: CellCache,
              executor: cf.Executor | None, jobs: int, on_done: Callable[[CellOutcome], None],
              max_in_flight: int | None = None, network_cache: str | None = None) -> RunStats:
    """Run ``cells``: load cached ones, send the rest through ``executor`` (or a default one for ``jobs``), store
    each result in ``cache`` as it arrives and call ``on_done`` for every cell.

    At most ``max_in_flight`` cells are submitted at once (default ``2·jobs`` for executors made here, all cells for
    one passed in), so results are stored, and experiments finish, while later cells still run. ``network_cache``
    is handed to every :func:`compute_cell`.
    """
    stats = RunStats()
    pending: list[Cell] = []
    for cell in cells:
        hit = cache.load(cell.experiment, cell.key)
        if hit is None:
            pending.append(cell)
        else:
            stats.cached += 1
            on_done(CellOutcome(cell, hit, cached=True))
    if not pending:
        return stats
    owned = executor is None
    if owned:
        executor = default_executor(jobs)
        limit = max_in_flight or max(2 * jobs, 1)
    else:
        limit = max_in_flight or len(pending)
    try:
        queue = list(reversed(pending))
        in_flight: dict[cf.Future, Cell] = {}
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                cell = queue.pop()
                exp = experiments[cell.experiment]
                future = executor.submit(compute_cell, exp.compute, cell.config, exp.seed_argument, cell.seed,
                                         exp.allow_nan, exp.seed_kind, network_cache)
                in_flight[future] = cell
            done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for future in done:
                cell = in_flight.pop(future)
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - a failed cell is reported, the run goes on
                    stats.failed += 1
                    text = "".join(traceback.format_exception(err)).rstrip()
                    stats.errors.append(f"{cell.experiment}[{cell.index}] {cell.config}: {text}")
                    on_done(CellOutcome(cell, None, cached=False, error=text))
                    continue
                cache.store(cell.experiment, cell.key, result)
                stats.computed += 1
                on_done(CellOutcome(cell, result, cached=False))
    finally:
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)
    return stats
