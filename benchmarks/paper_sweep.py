"""The paper-size analytic FKC sweep, end to end, through the public samplers; prints its wall time.

The sweep: the four Gaussian paper settings (FC_ID, FC_OOD, NFC_ID, NFC_OOD), exact scores, K ∈ {1, 4, 16, 64, 256}
(K = 1 is the naive sampler, run by ``fkc_sample`` with one particle per swarm), ``--runs`` independent runs (30) of
``--swarms`` swarms (5000) and ``--steps`` steps (500) each, start N(0, I), systematic resampling every step:
4 × 30 × 5000 × 500 × (1 + 4 + 16 + 64 + 256) = 1.0e11 particle-steps. Each run keeps its samples' mean and covariance (what the paper's tables need).

Two ways of using the machine better than one call per run:

* Calls of about ``--particles-per-call`` particles (default 2¹⁸): each cell's ``runs × swarms`` swarms are drawn in
  calls of ``c`` swarms, ``c`` the largest divisor of ``runs × swarms`` with ``c·K`` at most that many particles
  (150,000 swarms per call at K = 1, 3750 at K = 64, 1000 at K = 256), and the concatenated samples are cut into
  ``runs`` runs of ``swarms`` consecutive swarms (swarms are independent, so these are independent runs). Small
  calls amortize the per-call and per-step overhead at small K; at large K, calls of ~2¹⁸ particles keep each step's
  arrays in the CPU's caches: measured at K = 256 (float32, 100 steps, 2 devices, quiet) 10.3 ns of wall time per
  particle-step with 30,000 swarms per call, 8.2 with 1000, 9.8 with 250; at K = 64, 12.1 with 130,000, 9.3 with
  4000, 12.8 with 1000.
* ``--devices N`` emulated CPU devices (default 1), set before JAX starts: the swarm axis is sharded over them
  (:mod:`verify.samplers.sharding`), one thread each. One device (XLA's own threads within each operation) is now the
  faster choice here: the systematic resampling's band test is one conditional for the whole batch, so every extra
  device adds a cross-device reduction and a rendezvous per step (NFC_OOD, K = 256, 6 runs, float32, box-muller
  noise: 20.2 s on one device, 24.8 s on two).

The key of call ``c`` is ``fold_in(key(seed), c)``.

    python benchmarks/paper_sweep.py --dtype float32       # the whole sweep in float32, as the authors run
    python benchmarks/paper_sweep.py --dtype float32 --noise box-muller   # ... with the cheaper Gaussian noise
    python benchmarks/paper_sweep.py                       # in float64
    python benchmarks/paper_sweep.py --runs 1              # one run per cell (a 30th of the work)

Prints the wall time per (setting, K) cell and in total, with the load average before and after: on a shared machine
say so beside the number.
"""

from __future__ import annotations

import argparse
import os
import time

SETTINGS = ("FC_ID", "FC_OOD", "NFC_ID", "NFC_OOD")
PARTICLES = (1, 4, 16, 64, 256)
#: Particles per call that the sweep aims at by default (module doc).
PARTICLES_PER_CALL = 2**18


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--swarms", type=int, default=5000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--particles", type=int, nargs="+", default=list(PARTICLES))
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--noise", choices=["hash", "threefry", "box-muller"], default="hash",
                   help="the samplers' Gaussian noise (verify.samplers.noise; default hash)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--particles-per-call", type=int, default=PARTICLES_PER_CALL,
                   help="about this many particles per sampler call (default 2^18)")
    p.add_argument("--devices", type=int, default=1, help="emulated CPU devices (default 1)")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    from cpu_devices import emulate_cpu_devices

    emulate_cpu_devices(ARGS.devices)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import verify  # noqa: E402,F401  (float64)
from closed_form import VPSchedule, paper_setting  # noqa: E402
from verify import fkc_sample, source_scores  # noqa: E402


def swarms_per_call(total: int, k: int, particles: int) -> int:
    """The largest divisor ``c`` of ``total`` with ``c·k ≤ particles`` (at least 1)."""
    cap = max(1, particles // k)
    return max(c for c in range(1, min(cap, total) + 1) if total % c == 0)


def main(args):
    schedule = VPSchedule()
    steps = args.runs * args.swarms * args.steps * sum(args.particles) * len(args.settings)
    print(f"{os.cpu_count()} CPU cores (shared machine: check the load), {len(jax.devices())} JAX device(s); load "
          f"average {os.getloadavg()[0]:.2f} at start; {len(args.settings)} settings × K ∈ {args.particles} × "
          f"{args.runs} runs × {args.swarms} swarms × {args.steps} steps = {steps:.3g} particle-steps, exact scores, "
          f"{args.dtype}, noise {args.noise!r}", flush=True)
    start = time.perf_counter()
    cpu0 = time.process_time()
    for name in args.settings:
        comp = paper_setting(name).composition
        scores = source_scores(comp, schedule)
        for k in args.particles:
            t0 = time.perf_counter()
            n_total = args.runs * args.swarms
            c = swarms_per_call(n_total, k, args.particles_per_call)
            parts = []
            for call in range(n_total // c):
                key = jax.random.fold_in(jax.random.key(args.seed), call)
                parts.append(np.asarray(fkc_sample(key, scores, comp.weights, schedule, c, k, n_steps=args.steps,
                                                   dtype=args.dtype, noise=args.noise).samples, dtype=np.float64))
            runs = np.concatenate(parts).reshape(args.runs, args.swarms, -1)
            moments = [(run.mean(0), np.cov(run.T)) for run in runs]
            seconds = time.perf_counter() - t0
            var = np.mean([np.trace(cov) / cov.shape[0] for _, cov in moments])
            print(f"  {name:8s} K = {k:3d}: {seconds:7.1f} s  ({n_total // c} calls of {c} swarms; mean output variance "
                  f"{var:.4f}; load {os.getloadavg()[0]:.2f})", flush=True)
    total = time.perf_counter() - start
    print(f"total wall time {total:.1f} s = {total / 60:.2f} min (compilation included), process CPU time "
          f"{time.process_time() - cpu0:.1f} s; load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main(ARGS)
