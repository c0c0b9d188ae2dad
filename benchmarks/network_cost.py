"""What learned scores cost, and what the paper's sweeps at ``--size paper`` would cost on this machine.

Four parts, each timed after compilation (compile time printed separately) in one process, so the ratios are
measured under the same load; the load average is printed with every timing (the machine is shared).

1. ``training`` — Adam steps of the conditional ε-MLP (:func:`verify.train_network`) on NFC_OOD's three sources
   (pools of 1000), for ``NetworkConfig.small()``, ``.default()`` and ``.paper()``: seconds per 1000 steps, the
   ``paper`` configuration timed on ``--paper-steps`` steps only (not its 20 000). Ratios against ``default``.
2. ``fkc`` — sampler throughput (particle-steps per second) with network scores (``default`` and ``paper``-size
   MLPs at their initial parameters: the cost does not depend on the values) beside the exact scores
   (:func:`verify.source_scores`), naive (K = 1) and FKC at ``--particles``, ``--swarms`` swarms; fewer steps for
   the networks (``--net-steps``; the paper-size MLP ``--paper-net-steps`` and ``--paper-net-swarms``, its cost
   being ~5 MFLOP per particle-step), the rate is per particle-step. Ratio exact / network.
3. ``analytic`` — the analytic (exact-score) columns of the paper's sweep at its size: 4 Gaussian settings × K ∈ {1
   (naive), 4, 16, 64, 256} × 30 runs × 5000 swarms × 500 steps. Measured on NFC_OOD for ``--analytic-runs`` runs
   at full size per K, extrapolated to 4 settings × 30 runs (assumed to cost the same per particle-step: their
   scores have one form, diagonal Gaussians, and one compiled sampler per K).
4. ``projection`` (needs 1 and 2) — the learned sweep at ``--size paper``, from the measured rates: 6 settings × n ∈
   {100, 1000, 10 000} × 30 runs of ``NetworkConfig.paper()`` training (20 000 steps), plus for every (setting, n ∈
   {100, 1000, 10 000, analytical}, run) the samplers at K ∈ {1, 4, 16, 64, 256} with 5000 swarms × 500 steps.

By default the swarms are sharded over one emulated JAX CPU device per core, as in ``fkc_throughput.py``. A compile
time is the first call less a later one: noisy under load, and 0 where an earlier part compiled the same shape (part 3
reuses part 2's K = 16 and 64). The paper-size network's naive (K = 1) rate is measured on very little work, so it is
underestimated; K = 1 is 1/341 of the projected sampling.

    python benchmarks/network_cost.py                       # all parts (about 15 minutes on 2 loaded cores)
    python benchmarks/network_cost.py --parts training fkc  # the rates and the projection only
    python benchmarks/network_cost.py --parts analytic --analytic-runs 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

PARTS = ("training", "fkc", "analytic")


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--steps", type=int, default=1000, help="training steps timed for small and default")
    p.add_argument("--paper-steps", type=int, default=200, help="training steps timed for the paper configuration")
    p.add_argument("--swarms", type=int, default=5000)
    p.add_argument("--particles", type=int, nargs="+", default=[16, 64])
    p.add_argument("--exact-steps", type=int, default=500, help="sampler steps with exact scores")
    p.add_argument("--net-steps", type=int, default=20, help="sampler steps with the default-size network")
    p.add_argument("--paper-net-steps", type=int, default=2, help="sampler steps with the paper-size network")
    p.add_argument("--paper-net-swarms", type=int, default=1000, help="swarms with the paper-size network")
    p.add_argument("--analytic-runs", type=int, default=1, help="runs of NFC_OOD timed per K in part 3")
    p.add_argument("--devices", type=int, default=os.cpu_count(), help="emulated CPU devices (default: one per core)")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    from cpu_devices import emulate_cpu_devices

    emulate_cpu_devices(ARGS.devices)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import verify  # noqa: E402,F401  (float64)
from closed_form import VPSchedule, paper_setting  # noqa: E402
from verify import fkc_sample, naive_sde_sample, source_scores  # noqa: E402
from verify.samplers.networks import (  # noqa: E402
    NetworkConfig,
    TrainResult,
    init_network,
    network_scores,
    train_network,
)

#: The paper's sweep (the authors' sizes).
PAPER_K = (1, 4, 16, 64, 256)
PAPER_RUNS, PAPER_SWARMS, PAPER_STEPS = 30, 5000, 500
PAPER_POOLS = (100, 1000, 10_000)
N_SETTINGS, N_GAUSSIAN_SETTINGS = 6, 4


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def timed(fn):
    """(seconds, output) of one call, waiting for the result."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def compile_and_time(fn, repeats: int = 2):
    """(compile seconds ≈ first call − best later call, best later call seconds)."""
    first, _ = timed(fn)
    best = min(timed(fn)[0] for _ in range(repeats))
    return max(first - best, 0.0), best


# ------------------------------------------------------------------------------------------------ 1. training
def training_rates(args, sources, schedule) -> dict:
    """Seconds per training step of each configuration (conditional model, pools of 1000)."""
    print(f"\n1. Training (conditional ε-MLP, NFC_OOD's 3 sources, pools of 1000) — {load()}")
    print(f"   {'config':8s} {'width×depth':>11s} {'batch':>5s} {'steps timed':>11s} {'compile s':>9s} "
          f"{'s / 1000 steps':>14s} {'× default':>9s} {'full run':>10s}")
    rates = {}
    for name in ("default", "small", "paper"):
        cfg = getattr(NetworkConfig, name)()
        steps = args.paper_steps if name == "paper" else args.steps
        timed_cfg = cfg._replace(iterations=steps)
        calls = iter(range(10))

        def train(timed_cfg=timed_cfg, steps=steps):
            # A new key per call: the time cannot come from anything cached.
            key = jax.random.key(next(calls))
            return train_network(key, sources, schedule, 1000, timed_cfg, chunk=steps, progress=False).params

        compile_s, run_s = compile_and_time(train, repeats=1)
        rates[name] = run_s / steps
        ratio = rates[name] / rates["default"]
        print(f"   {name:8s} {cfg.width:>5d}×{cfg.depth:<5d} {cfg.batch:>5d} {steps:>11d} {compile_s:>9.1f} "
              f"{1000 * rates[name]:>14.2f} {ratio:>8.1f}× {rates[name] * cfg.iterations / 60:>7.1f} min  "
              f"({load()})", flush=True)
    return rates


# ------------------------------------------------------------------------------------------------ 2. samplers
def sampler_rate(scores, weights, schedule, swarms, k, steps) -> tuple[float, float]:
    """(compile seconds, particle-steps per second) of the naive sampler (k = 1) or FKC with k particles."""
    keys = iter(range(10))

    def run():
        key = jax.random.key(next(keys))
        if k == 1:
            return naive_sde_sample(key, scores, weights, schedule, swarms, n_steps=steps)
        return fkc_sample(key, scores, weights, schedule, swarms, k, n_steps=steps).samples

    compile_s, run_s = compile_and_time(run, repeats=1)
    return compile_s, swarms * k * steps / run_s


def network_score_set(name, setting, schedule):
    cfg = getattr(NetworkConfig, name)()
    params = init_network(jax.random.key(0), cfg, setting.composition.dim, len(setting.sources))
    return network_scores(TrainResult(params, jnp.zeros(cfg.iterations), cfg, len(setting.sources)), schedule)


def fkc_rates(args, setting, schedule) -> dict:
    """Particle-steps per second of each score kind at each K (and K = 1, naive)."""
    weights = setting.composition.weights
    kinds = {"exact": (source_scores(setting.composition, schedule), args.swarms, args.exact_steps),
             "network default": (network_score_set("default", setting, schedule), args.swarms, args.net_steps),
             "network paper": (network_score_set("paper", setting, schedule), args.paper_net_swarms,
                               args.paper_net_steps)}
    ks = (1, *args.particles)
    print(f"\n2. Sampler throughput, NFC_OOD, float64 (particle-steps / s; K = 1 is the naive sampler) — {load()}")
    print(f"   {'scores':16s} {'swarms':>6s} {'steps':>5s} " + " ".join(f"{'K = ' + str(k):>10s}" for k in ks)
          + "   compile s (per K)   exact / network")
    rates = {}
    for kind, (scores, swarms, steps) in kinds.items():
        row, compiles = [], []
        for k in ks:
            compile_s, rate = sampler_rate(scores, weights, schedule, swarms, k, steps)
            rates[kind, k] = rate
            row.append(rate)
            compiles.append(compile_s)
        ratio = "" if kind == "exact" else " ".join(f"{rates['exact', k] / rates[kind, k]:.0f}×" for k in ks)
        print(f"   {kind:16s} {swarms:>6d} {steps:>5d} " + " ".join(f"{r:>10.3g}" for r in row) + "   "
              + " ".join(f"{c:.1f}" for c in compiles) + f"   {ratio} slower  ({load()})", flush=True)
    return rates


# ------------------------------------------------------------------------------------------------ 3. analytic
def analytic_columns(args, schedule) -> float:
    """Measured seconds of the analytic columns at the paper's size (NFC_OOD, extrapolated); returns the total."""
    setting = paper_setting("NFC_OOD")
    scores, weights = source_scores(setting.composition, schedule), setting.composition.weights
    runs = args.analytic_runs
    print(f"\n3. Analytic columns at the paper's size: {N_GAUSSIAN_SETTINGS} Gaussian settings × K ∈ {PAPER_K} × "
          f"{PAPER_RUNS} runs × {PAPER_SWARMS} swarms × {PAPER_STEPS} steps, exact scores; NFC_OOD timed on {runs} "
          f"run(s) per K — {load()}")
    total = 0.0
    for k in PAPER_K:
        def run(key):
            if k == 1:
                return naive_sde_sample(key, scores, weights, schedule, PAPER_SWARMS, n_steps=PAPER_STEPS)
            return fkc_sample(key, scores, weights, schedule, PAPER_SWARMS, k, n_steps=PAPER_STEPS).samples

        first, _ = timed(lambda: run(jax.random.key(0)))
        times = [first] + [timed(lambda r=r: run(jax.random.key(r)))[0] for r in range(1, runs + 1)]
        per_run = min(times[1:])
        compile_s = max(first - per_run, 0.0)
        # One compilation per K for the whole sweep: the settings share shapes and the arrays are traced.
        cost = compile_s + per_run * N_GAUSSIAN_SETTINGS * PAPER_RUNS
        total += cost
        print(f"   K = {k:>3d}: {per_run:6.2f} s per run ({PAPER_SWARMS * k * PAPER_STEPS / per_run:.3g} particle-steps"
              f"/s), compile {compile_s:.1f} s → {cost / 60:6.1f} min for {N_GAUSSIAN_SETTINGS * PAPER_RUNS} runs  "
              f"({load()})", flush=True)
    print(f"   total, projected from these rates: {total / 60:.1f} min on this machine")
    return total


# ------------------------------------------------------------------------------------------------ 4. projection
def projection(train_rates: dict, rates: dict, args) -> None:
    """Hours of the paper's learned sweep on this machine from the measured rates."""
    networks = N_SETTINGS * len(PAPER_POOLS) * PAPER_RUNS
    paper_cfg = NetworkConfig.paper()
    train_s = networks * paper_cfg.iterations * train_rates["paper"]

    def sampler_seconds(kind, configs):
        total = 0.0
        for k in PAPER_K:
            # The rate measured at the nearest measured K (the cost per particle-step is flat for the networks).
            near = min((kk for (kd, kk) in rates if kd == kind), key=lambda kk: abs(kk - k))
            total += configs * PAPER_SWARMS * k * PAPER_STEPS / rates[kind, near]
        return total

    net_s = sampler_seconds("network paper", networks)
    exact_s = sampler_seconds("exact", N_SETTINGS * PAPER_RUNS)
    print(f"\n4. Projected cost of the learned sweep at --size paper on this machine ({platform.machine()}, "
          f"{os.cpu_count()} cores, shared; {load()}):")
    print(f"   training: {networks} networks × {paper_cfg.iterations} steps at {1000 * train_rates['paper']:.0f} s "
          f"per 1000 steps → {train_s / 3600:,.0f} h")
    print(f"   sampling with the paper-size networks: {networks} × K ∈ {PAPER_K} × {PAPER_SWARMS} swarms × "
          f"{PAPER_STEPS} steps → {net_s / 3600:,.0f} h")
    print(f"   sampling with exact scores (the analytical column, {N_SETTINGS} settings × {PAPER_RUNS} runs; the "
          f"NFC_OOD rate for all) → {exact_s / 3600:.1f} h")
    print(f"   total ≈ {(train_s + net_s + exact_s) / 3600:,.0f} h (≈ {(train_s + net_s + exact_s) / 86400:,.0f} "
          "days). A GPU was not measured; no GPU figure is projected.")


def main(args):
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; JAX {jax.__version__} on "
          f"{len(jax.devices())} {jax.devices()[0].platform.upper()} device(s), float64; {load()} at start")
    schedule = VPSchedule()
    setting = paper_setting("NFC_OOD")
    train_rates = training_rates(args, setting.sources, schedule) if "training" in args.parts else None
    rates = fkc_rates(args, setting, schedule) if "fkc" in args.parts else None
    if "analytic" in args.parts:
        analytic_columns(args, schedule)
    if train_rates is not None and rates is not None:
        projection(train_rates, rates, args)
    print(f"\n{load()} at end")
    return True


if __name__ == "__main__":
    sys.exit(0 if main(ARGS) else 1)
