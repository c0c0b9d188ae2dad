"""The paper-size analytic FKC sweep, end to end, through the public samplers; prints its wall time.

The sweep: the four Gaussian paper settings (FC_ID, FC_OOD, NFC_ID, NFC_OOD), exact scores, K ∈ {1, 4, 16, 64, 256}
(K = 1 is the naive sampler, run by ``fkc_sample`` with one particle per swarm), ``--runs`` independent runs (30) of
``--swarms`` swarms (5000) and ``--steps`` steps (500) each, start N(0, I), systematic resampling every step. Each run
keeps its samples' mean and covariance (what the paper's tables need); the run keys are ``fold_in(key(seed), i)``.

    python benchmarks/paper_sweep.py                       # the whole sweep (float64)
    python benchmarks/paper_sweep.py --dtype float32       # in float32, as the authors run
    python benchmarks/paper_sweep.py --runs 1              # one run per cell (a 30th of the work)

Prints the wall time per (setting, K) cell and in total, with the load average before and after: on a shared machine
say so beside the number.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import verify  # noqa: F401  (float64)
from closed_form import VPSchedule, paper_setting
from verify import fkc_sample, source_scores

SETTINGS = ("FC_ID", "FC_OOD", "NFC_ID", "NFC_OOD")
PARTICLES = (1, 4, 16, 64, 256)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--swarms", type=int, default=5000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--particles", type=int, nargs="+", default=list(PARTICLES))
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    schedule = VPSchedule()
    print(f"{os.cpu_count()} CPU cores (shared machine: check the load); load average {os.getloadavg()[0]:.2f} at "
          f"start; {len(args.settings)} settings × K ∈ {args.particles} × {args.runs} runs × {args.swarms} swarms × "
          f"{args.steps} steps, exact scores, {args.dtype}")
    start = time.perf_counter()
    rows = []
    for name in args.settings:
        comp = paper_setting(name).composition
        scores = source_scores(comp, schedule)
        for k in args.particles:
            t0 = time.perf_counter()
            moments = []
            for i in range(args.runs):
                key = jax.random.fold_in(jax.random.key(args.seed), i)
                x = np.asarray(fkc_sample(key, scores, comp.weights, schedule, args.swarms, k, n_steps=args.steps,
                                          dtype=args.dtype).samples, dtype=np.float64)
                moments.append((x.mean(0), np.cov(x.T)))
            seconds = time.perf_counter() - t0
            var = np.mean([np.trace(c) / c.shape[0] for _, c in moments])
            rows.append((name, k, seconds))
            print(f"  {name:8s} K = {k:3d}: {seconds:7.1f} s  (mean output variance {var:.4f}; load "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    total = time.perf_counter() - start
    print(f"total wall time {total:.1f} s = {total / 60:.2f} min (compilation included); load average "
          f"{os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
