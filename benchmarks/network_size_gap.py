r"""Small vs paper-size networks: the training-side DSM excess of ``NetworkConfig.default()`` and ``.paper()``.

On ``NFC_OOD`` with pools of ``n = 1000`` exact draws per source, both configurations are trained from the same key
(so on the same pools, the key derivation of ``verify.experiments.score_error_maps``) and measured by the same
Monte Carlo error map (:func:`verify.analysis.score_errors.score_error_map`, same draws for both):

* the training-side DSM excess per source ``ε_i^2(q^i) = (T − t_min)^{-1}∫σ_t^2 E_{q^i_t}‖ŝ_i − s_i‖^2 dt`` with its
  standard error, and their mean over the sources (the loss averages the conditions, so this mean is the excess of
  the loss over its minimum under the exact sources);
* the final training loss: the mean of the last ``--tail`` steps' batch losses, standard error ``std/√tail``
  (batches are independent given the parameters, which move little at the end), beside the loss's exact minimum
  under the exact sources, ``(T − t_min)^{-1}∫ mean_i (d − σ_t^2 tr Σ_{i,t}^{-1}) dt`` (Gaussian sources:
  ``E‖ε + σ_t s_i‖^2 = d − σ_t^2 E‖s_i‖^2``), by 64-node Gauss–Legendre in ``√t``. The loss is on the pool, not the
  exact sources, so ``loss − minimum`` is a second, pool-side estimate of the excess.

The paper configuration (4 × 512 units, 20 000 steps) takes about 30 min on the project's shared 2-core CPU; run it
once in the background at low priority::

    nice -n 15 python benchmarks/network_size_gap.py > /tmp/network_size_gap.log 2>&1 &
    python benchmarks/network_size_gap.py --paper-iterations 2000     # shorter; the output says how many steps
    python benchmarks/network_size_gap.py --skip-default --paper-iterations 6000 --n-mc 2000   # paper side only
    python benchmarks/network_size_gap.py --skip-paper --with-small --n-mc 2000   # small and default only (a minute)

It prints the machine and load, then one line per (configuration, source) and a JSON summary (also written to
``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from closed_form import VPSchedule, paper_setting
from verify.analysis.score_errors import PAPER_SOURCE_NAMES, score_error_map, sqrt_time_nodes
from verify.samplers.networks import NetworkConfig, network_scores, train_network


def loss_minimum(sources, schedule, t_min: float, n_nodes: int = 64) -> float:
    r"""``(T − t_min)^{-1}∫ mean_i (d − σ_t^2 tr Σ_{i,t}^{-1}) dt`` for Gaussian sources (module doc)."""
    nodes, weights = sqrt_time_nodes(t_min, float(schedule.T), n_nodes)
    vals = []
    for t in nodes:
        s2 = float(schedule.sigma2(jnp.asarray(t)))
        per = [s.dim - s2 * float(jnp.trace(s.noised(schedule, float(t)).precision)) for s in sources]
        vals.append(np.mean(per))
    return float(np.dot(weights, vals) / (float(schedule.T) - t_min))


def measure(config: NetworkConfig, label: str, setting, schedule, n: int, seed: int, n_mc: int, n_nodes: int,
            tail: int) -> dict:
    train_key, map_key = jax.random.split(jax.random.key(seed))
    start = time.perf_counter()
    cpu0 = time.process_time()
    result = train_network(jax.random.fold_in(train_key, n), setting.sources, schedule, n, config, progress=True)
    jax.block_until_ready(result.params)
    train_wall, train_cpu = time.perf_counter() - start, time.process_time() - cpu0
    frame = score_error_map(network_scores(result, schedule), setting.composition, schedule,
                            jax.random.fold_in(map_key, n), n_mc=n_mc, n_nodes=n_nodes, t_min=config.t_min,
                            source_names=PAPER_SOURCE_NAMES)
    exc = frame[(frame["quantity"] == "dsm_excess") & (frame["law"] == "train")]
    losses = np.asarray(result.losses)[-tail:]
    out = {
        "config": label, "width": config.width, "depth": config.depth, "iterations": config.iterations,
        "lr": config.lr, "batch": config.batch, "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "excess": {r.source: [r.mean, r.se] for r in exc.itertuples()},
        "excess_mean": [float(exc["mean"].mean()), float(np.sqrt(np.sum(exc["se"] ** 2)) / len(exc))],
        "final_loss": [float(losses.mean()), float(losses.std(ddof=1) / np.sqrt(len(losses)))],
        "ratios": {f"{r.source}/{r.law}": [r.mean, r.se]
                   for r in frame[frame["quantity"] == "ratio"].itertuples()},
    }
    for src, (m, se) in out["excess"].items():
        print(f"{label:>8} {src:>5}: training-side DSM excess {m:.5f} ± {se:.5f}", flush=True)
    print(f"{label:>8}  mean: {out['excess_mean'][0]:.5f} ± {out['excess_mean'][1]:.5f}; final loss (last {tail} "
          f"steps) {out['final_loss'][0]:.5f} ± {out['final_loss'][1]:.5f}; trained in {train_wall:.0f} s wall, "
          f"{train_cpu:.0f} s CPU", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="NFC_OOD")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper-iterations", type=int, default=None,
                        help="steps for the paper architecture (default: the paper's 20 000)")
    parser.add_argument("--n-mc", type=int, default=4000)
    parser.add_argument("--n-nodes", type=int, default=12)
    parser.add_argument("--tail", type=int, default=1000, help="final steps whose losses are averaged")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--with-small", action="store_true",
                        help="also NetworkConfig.small() (the learned sweep's default-size network)")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, started {time.strftime('%H:%M:%S %Z')}", flush=True)
    schedule = VPSchedule()
    setting = paper_setting(args.setting)
    minimum = loss_minimum(setting.sources, schedule, NetworkConfig().t_min)
    print(f"exact minimum of the loss under the exact sources: {minimum:.6f}", flush=True)
    configs = [("small", NetworkConfig.small())] if args.with_small else []
    configs += [] if args.skip_default else [("default", NetworkConfig.default())]
    if not args.skip_paper:
        paper = NetworkConfig.paper()
        if args.paper_iterations is not None:
            paper = paper._replace(iterations=args.paper_iterations)
        configs.append(("paper", paper))
    results = [measure(cfg, label, setting, schedule, args.n, args.seed, args.n_mc, args.n_nodes,
                       min(args.tail, cfg.iterations)) for label, cfg in configs]
    summary = {"setting": args.setting, "n": args.n, "seed": args.seed, "loss_minimum": minimum,
               "load_average_end": os.getloadavg(), "results": results}
    print(json.dumps(summary, indent=1), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
