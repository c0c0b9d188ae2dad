"""What FKC costs over the naive sampler on the same particles, and what each resampling alternative costs.

Setting (the paper's analytic FKC runs): NFC_OOD, exact scores, ``--swarms`` swarms (5000), ``--steps`` steps (500),
start N(0, I), systematic resampling every step unless stated. For each K, in one process and interleaved (every
repeat runs every candidate once, in turn), the naive Euler–Maruyama sampler on ``swarms × K`` particles (the
baseline: the same moves without weights) and FKC with

* ``default`` — :func:`verify.systematic`: offspring counts, a scatter-add and a cumulative sum, both running sums
  as small matrix products (:func:`verify.samplers.resampling.cumulative_sum`);
* ``before`` — the sampler as it was before that change, in the same process: ``jnp.cumsum`` (XLA's windowed
  reduction) for both running sums and ``jnp.max`` for the reweighting's per-swarm maximum (identical outputs);
* ``scan cumsum`` — both running sums as a sequential ``lax.scan`` over the K particles, vectorized over swarms
  (identical indices);
* ``binary search`` — slot ``m`` takes ``#{j : n C_j − u ≤ m}`` by a branchless binary search of ``⌈log₂(K + 1)⌉``
  levels, each a gather within the swarm (identical indices);
* ``compare-all`` — sorting-free and search-free: slot ``m`` takes ``Σ_j [n C_j − u ≤ m]``, ``K²`` comparisons per
  swarm (identical indices);
* ``ess < K/2`` — resample a swarm only when its ESS falls below ``K/2`` (``ess_threshold=0.5``; changes the
  algorithm, not only its cost);
* ``no resampling`` — ``ess_threshold=0``: the potential and the reweighting at every step, the weights carried to
  the end (on NFC_OOD they hardly degenerate: a mean ESS of 54 of 64 after the 500 steps);
* ``weights only`` — not a sampler: the potential and the reweighting at every step, then the weights reset to
  ``1/K`` with no ancestors drawn and nothing gathered, so every particle moves as in the naive sampler (the same
  bits with the same key): the floor under every resampling scheme, what FKC's weights cost by themselves;
* ``authors`` — the paper authors' kernel (``variant="authors"``: move, potential at the new point with the rate
  clipped, resampling of the particles and their scores);
* ``float32`` — the default resampling with ``dtype="float32"`` (and the naive sampler in float32 beside it);
* ``scatter indices`` — the indices as at the stop before the banded ones: the offspring scatter and the marks'
  running sum at every step, never the elementwise comparisons (identical samples);
* ``box-muller``, ``float32 box-muller`` — FKC with ``noise="box-muller"`` (:mod:`verify.samplers.noise`), against
  the naive sampler with the same noise and dtype;
* ``one block`` — the default with the whole batch at every step instead of :func:`verify.samplers.model.block_count`'s
  blocks of swarms (the same draws; differs from the default only where the default splits, K = 256);
* ``naive gathered`` — not FKC: the naive sampler laid out as ``(swarms, K, d)`` with its particles read through an
  identity gather each step, as FKC's move reads the resampled ones (the same numbers as the naive sampler); its
  ratio is against the shipped naive sampler.

Reported: the median over repeats of wall time and of process CPU time (all threads) for each, and the median of the
per-repeat ratios FKC / naive (float32 FKC against float32 naive, and float32 against float64). The machine's load
average is printed before and after: on a shared machine CPU time is the steadier measure, and ratios within one
repeat cancel most of the load.

    python benchmarks/fkc_ratio.py                           # K = 64 and 256, 5 repeats, the paper's size
    python benchmarks/fkc_ratio.py --particles 64 --swarms 1000 --steps 100 --repeats 3   # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import verify  # noqa: F401  (float64)
from closed_form import VPSchedule, paper_setting
from verify import fkc_sample, naive_sde_sample, source_scores
from verify.samplers.resampling import Always, always, systematic


def binary_search_systematic(key, weights, n):
    """Slot ``m`` takes ``#{j : n C_j − u ≤ m}`` (the same indices as :func:`verify.systematic`), by a branchless
    binary search: ``pos ← pos + b`` for ``b`` = the powers of two ≤ K in decreasing order whenever
    ``pos + b ≤ K`` and ``v[pos + b − 1] ≤ m``."""
    c = jnp.cumsum(weights, axis=-1)
    c = c / c[..., -1:]
    u = jax.random.uniform(key, c.shape[:-1] + (1,), dtype=c.dtype)
    v = n * c - u
    k = v.shape[-1]
    queries = jnp.broadcast_to(jnp.arange(n, dtype=c.dtype), v.shape[:-1] + (n,))
    pos = jnp.zeros(queries.shape, dtype=jnp.int32)
    b = 1 << (k.bit_length() - 1)
    while b >= 1:
        probe = pos + b
        val = jnp.take_along_axis(v, jnp.minimum(probe, k) - 1, axis=-1)
        pos = jnp.where((probe <= k) & (val <= queries), probe, pos)
        b >>= 1
    return pos


def _systematic_with(cumsum):
    def resample(key, weights, n):
        c = cumsum(weights)
        c = c / c[..., -1:]
        u = jax.random.uniform(key, c.shape[:-1] + (1,), dtype=c.dtype)
        cum_counts = jnp.clip(jnp.ceil(n * c - u), 0, n).astype(jnp.int32)
        marks = jax.vmap(lambda cc: jnp.zeros(n + 1, dtype=jnp.int32).at[cc].add(1)[:n])(
            cum_counts.reshape(-1, cum_counts.shape[-1])).reshape(cum_counts.shape)
        return cumsum(marks)

    return resample


def _scan_cumsum(x):
    """Sequential running sum along the last axis: a ``lax.scan`` over it, each step a vector over the rows."""
    xt = jnp.moveaxis(x, -1, 0)
    _, ys = jax.lax.scan(lambda c, xi: (c + xi, c + xi), jnp.zeros(xt.shape[1:], xt.dtype), xt)
    return jnp.moveaxis(ys, 0, -1)


def scatter_systematic(key, weights, n):
    """Systematic indices always through the offspring scatter and the marks' running sum (no band test)."""
    from verify.samplers import resampling

    c = resampling._cumulative(weights)
    u = resampling.systematic_uniforms(key, c.shape[:-1] + (1,), c.dtype)
    counts = jnp.clip(jnp.ceil(n * c - u), 0, n).astype(jnp.int32).at[..., -1].set(n)
    return resampling._scattered_indices(counts, n)


#: The resampler before the matrix-product running sums: ``jnp.cumsum`` for both.
before_systematic = _systematic_with(lambda x: jnp.cumsum(x, axis=-1))
scan_systematic = _systematic_with(_scan_cumsum)


def compare_all_systematic(key, weights, n):
    """Slot ``m`` takes ``#{j : n C_j − u ≤ m}`` by comparing against every ``j`` (``K²`` per swarm)."""
    c = jnp.cumsum(weights, axis=-1)
    c = c / c[..., -1:]
    u = jax.random.uniform(key, c.shape[:-1] + (1,), dtype=c.dtype)
    v = n * c - u
    m = jnp.arange(n, dtype=c.dtype)
    return jnp.sum(v[..., None, :] <= m[:, None], axis=-1, dtype=jnp.int32)


def candidates(scores, weights, schedule, swarms, k, steps):
    def fkc(**kw):
        return lambda key: fkc_sample(key, scores, weights, schedule, swarms, k, n_steps=steps, **kw).samples

    def naive(**kw):
        return lambda key: naive_sde_sample(key, scores, weights, schedule, swarms * k, n_steps=steps, **kw)

    return {
        "naive": naive(),
        "default": fkc(),
        "before": _with_strategy(scores, weights, schedule, swarms, k, steps, before_systematic,
                                 row_max=lambda a: jnp.max(a, axis=-1)),
        "scan cumsum": _with_strategy(scores, weights, schedule, swarms, k, steps, scan_systematic),
        "binary search": _with_strategy(scores, weights, schedule, swarms, k, steps, binary_search_systematic),
        "compare-all": _with_strategy(scores, weights, schedule, swarms, k, steps, compare_all_systematic),
        "ess < K/2": fkc(ess_threshold=0.5),
        "no resampling": fkc(ess_threshold=0.0),
        "weights only": _weights_only(scores, weights, schedule, swarms, k, steps),
        "authors": fkc(variant="authors"),
        "naive float32": naive(dtype="float32"),
        "float32": fkc(dtype="float32"),
        "scatter indices": _with_strategy(scores, weights, schedule, swarms, k, steps, scatter_systematic),
        "naive box-muller": naive(noise="box-muller"),
        "box-muller": fkc(noise="box-muller"),
        "naive float32 box-muller": naive(dtype="float32", noise="box-muller"),
        "float32 box-muller": fkc(dtype="float32", noise="box-muller"),
        "one block": _in_blocks(scores, weights, schedule, swarms, k, steps, 1),
        "naive gathered": _naive_gathered(scores, weights, schedule, swarms, k, steps),
    }


def _in_blocks(scores, weights, schedule, swarms, k, steps, n_blocks):
    """The default FKC run with ``n_blocks`` blocks of swarms instead of :func:`verify.samplers.model.block_count`'s
    choice (identical draws; ``1``: the whole batch at every step)."""
    from verify.samplers import smc
    from verify.samplers.model import check_run, run_kernel

    model = smc.fkc_model(scores, weights, schedule)
    n_steps, stop_after, eps, start = check_run(schedule, steps, None, 1e-5, "standard", model.dim)
    return lambda key: run_kernel(key, model, start, swarms, k, n_steps, stop_after, eps, n_blocks=n_blocks).samples


class _WeightsOnly(Always):
    """A strategy that resets every swarm's weights to ``1/K`` and moves no particle (:func:`_weights_only`)."""

    def apply(self, key, weights, ess, log_weights, arrays, flat_gather=True, row_offset=0):
        uniform = jnp.asarray(-math.log(weights.shape[-1]), log_weights.dtype)
        return jnp.clip(log_weights, uniform, uniform), tuple(arrays), jnp.ones(ess.shape, dtype=bool)


def _weights_only(scores, weights, schedule, swarms, k, steps):
    """FKC's potential and reweighting at every step without the resampling (``weights only`` in the module doc)."""
    from verify.samplers import smc
    from verify.samplers.model import check_run, run_kernel

    model = smc.fkc_model(scores, weights, schedule, resampling=_WeightsOnly(systematic))
    n_steps, stop_after, eps, start = check_run(schedule, steps, None, 1e-5, "standard", model.dim)
    return lambda key: run_kernel(key, model, start, swarms, k, n_steps, stop_after, eps).samples


def _gathered_em_step(keys, x, t, h, model):
    """The naive sampler's Euler–Maruyama step with its particles first read through a gather of the identity
    ancestors, as FKC's move reads its resampled particles (the same numbers)."""
    from verify.samplers.discretization import mutate
    from verify.samplers.resampling import _gather

    x = _gather(x, jnp.broadcast_to(jnp.arange(x.shape[1], dtype=jnp.int32), x.shape[:2]), True)
    return mutate(model, keys, x, model.composed_score(x, t), t, h)[0], None


def _naive_gathered(scores, weights, schedule, swarms, k, steps):
    """The naive sampler on ``swarms × K`` particles laid out as FKC's ``(swarms, K, d)``, each step reading them
    through an identity gather: on XLA:CPU this runs the same move markedly faster than the shipped naive sampler
    (measured, not understood; see ``benchmarks/README.md``)."""
    from verify.samplers import naive as naive_module
    from verify.samplers.model import Kernel, build_model, check_run, run_kernel
    from verify.samplers.resampling import never

    kernel = Kernel("euler_maruyama_gathered", naive_module._init, _gathered_em_step, naive_module._record,
                    naive_module._finish, 1, "weak", naive_module._no_weight_options)
    model = build_model(scores, weights, schedule, kernel, resampling=never())
    n_steps, stop_after, eps, start = check_run(schedule, steps, None, 1e-5, "standard", model.dim)
    return lambda key: run_kernel(key, model, start, swarms, k, n_steps, stop_after, eps)


def _with_strategy(scores, weights, schedule, swarms, k, steps, resampler, row_max=None):
    """FKC with a custom systematic resampler, through the kernel's public model (the sampler's options name the
    built-in schemes only). ``row_max`` replaces the reweighting's per-swarm maximum while the program is traced
    (its first call; later calls reuse the compiled program)."""
    from verify.samplers import smc
    from verify.samplers.model import check_run, run_kernel
    from verify.samplers.sharding import swarm_sharding

    model = smc.fkc_model(scores, weights, schedule, resampling=always(resampler), sharding=swarm_sharding(swarms))
    n_steps, stop_after, eps, start = check_run(schedule, steps, None, 1e-5, "standard", model.dim)
    traced = []

    def run(key):
        if row_max is None or traced:
            return run_kernel(key, model, start, swarms, k, n_steps, stop_after, eps).samples
        original = smc._row_max
        smc._row_max = row_max
        try:
            out = jax.block_until_ready(run_kernel(key, model, start, swarms, k, n_steps, stop_after, eps).samples)
        finally:
            smc._row_max = original
        traced.append(True)
        return out

    return run


def baseline(name: str) -> str:
    """The naive sampler a candidate is compared with: the same dtype and noise."""
    if name == "naive gathered":
        return "naive"
    return "naive" + (" float32" if "float32" in name else "") + (" box-muller" if "box-muller" in name else "")


def timed(fn, key):
    w0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(key))
    return time.perf_counter() - w0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--swarms", type=int, default=5000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--particles", type=int, nargs="+", default=[64, 256])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="+", default=None, help="candidates to run (always with the naive baseline)")
    args = p.parse_args()
    schedule = VPSchedule()
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, schedule)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, shared; load average "
          f"{os.getloadavg()[0]:.2f} at start; JAX {jax.__version__}, {len(jax.devices())} device(s)")
    print(f"NFC_OOD, exact scores, {args.swarms} swarms, {args.steps} steps, medians of {args.repeats} interleaved "
          "repeats after compilation")
    for k in args.particles:
        runs = candidates(scores, comp.weights, schedule, args.swarms, k, args.steps)
        if args.only:
            kept = {name for name in runs if name in args.only or name == "default"}
            kept |= {baseline(name) for name in kept}
            runs = {name: fn for name, fn in runs.items() if name in kept}
        first = {name: np.asarray(jax.block_until_ready(fn(jax.random.key(0)))) for name, fn in runs.items()}  # compile
        same = [name for name in ("before", "scan cumsum", "binary search", "compare-all", "scatter indices",
                                  "one block") if name in first]
        if same:
            print(f"\nK = {k}: samples identical to the default's with the same key: " + ", ".join(
                f"{name} {np.array_equal(first[name], first['default'])}" for name in same))
        wall = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        for r in range(args.repeats):
            for name, fn in runs.items():
                w, c = timed(fn, jax.random.key(r + 1))
                wall[name].append(w)
                cpu[name].append(c)
        print(f"\nK = {k} (load average {os.getloadavg()[0]:.2f})")
        print(f"  {'candidate':24s} {'wall s':>8s} {'CPU s':>8s} {'wall ratio':>11s} {'CPU ratio':>10s}  (ratio: FKC / "
              "naive of the same dtype, per repeat, median)")
        for name in runs:
            base = baseline(name)
            wr = np.median(np.asarray(wall[name]) / np.asarray(wall[base]))
            cr = np.median(np.asarray(cpu[name]) / np.asarray(cpu[base]))
            print(f"  {name:24s} {np.median(wall[name]):8.3f} {np.median(cpu[name]):8.3f} {wr:11.2f} {cr:10.2f}")
        if "float32" in runs:
            print(f"  float32 / float64 FKC: wall {np.median(np.asarray(wall['float32']) / np.asarray(wall['default'])):.2f}, "
                  f"CPU {np.median(np.asarray(cpu['float32']) / np.asarray(cpu['default'])):.2f}; naive: wall "
                  f"{np.median(np.asarray(wall['naive float32']) / np.asarray(wall['naive'])):.2f}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
