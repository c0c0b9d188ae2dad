"""FKC throughput on the paper's NFC_OOD setting: catcomp's jitted sampler beside a straightforward NumPy version.

Setting: exact scores, 5000 swarms, 500 steps, K ∈ {16, 64}, float64, systematic resampling every step,
start N(0, I), one output per swarm picked uniformly at random. Prints, for each K, the wall time after compilation
(best of ``--repeats`` runs) and particle-steps per second (swarms × K × steps / time), for catcomp and for the NumPy
implementation timed in the same process; plus the cost of the Gaussian noise alone with both of catcomp's noise
methods, the piece that dominates.

By default the swarms are sharded over one emulated JAX CPU device per core
(``--xla_force_host_platform_device_count``, set before JAX starts); ``--devices 1`` disables that. NumPy runs
single-threaded elementwise code (no BLAS-heavy work here).

    python benchmarks/fkc_throughput.py                 # full run (the NumPy K = 64 pass takes a while)
    python benchmarks/fkc_throughput.py --numpy-steps 50   # NumPy timed on 50 steps, scaled to 500
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--swarms", type=int, default=5000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--particles", type=int, nargs="+", default=[16, 64])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration; the best is reported")
    p.add_argument("--devices", type=int, default=os.cpu_count(), help="emulated CPU devices (default: one per core)")
    p.add_argument("--noise", choices=["hash", "threefry"], default="hash", help="catcomp's noise method")
    p.add_argument("--numpy-steps", type=int, default=None,
                   help="time NumPy on this many steps and scale linearly to --steps (default: all steps)")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import verify  # noqa: E402,F401  (float64)
from closed_form import VPSchedule, paper_setting, reverse_time_grid  # noqa: E402
from verify import fkc_sample, naive_sde_sample, source_scores  # noqa: E402
from verify.samplers.noise import standard_normal  # noqa: E402
from verify.samplers.staging import CPU_COMPILER_OPTIONS  # noqa: E402


# ------------------------------------------------------------------------------------------------ NumPy reference
def numpy_fkc(seed, comp, schedule, n_swarms, n_particles, n_steps, run_steps=None):
    """The same algorithm in plain NumPy float64: exact diagonal-Gaussian scores, EM move, FKC potential
    g = ½β[(1 − Σw)d + ‖S‖² − Σ w_i‖s_i‖²], systematic resampling within each swarm every step, uniform final pick.
    Returns (samples, log Ẑ per swarm)."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(comp.weights, dtype=np.float64)
    means = np.stack([np.asarray(s.mean) for s in comp.sources])  # (m, d)
    variances = np.stack([np.diag(np.asarray(s.cov)) for s in comp.sources])  # diagonal covariances (m, d)
    d = means.shape[1]
    grid = reverse_time_grid(schedule, n_steps)
    s_, k_ = n_swarms, n_particles
    x = rng.standard_normal((s_, k_, d))
    log_z = np.zeros(s_)
    rows = np.arange(s_)[:, None]
    for step in range(n_steps if run_steps is None else run_steps):
        t, h = grid[step], grid[step] - grid[step + 1]
        beta = float(schedule.beta(t))
        a = float(schedule.alpha(t))
        s2 = float(schedule.sigma2(t))
        src = [-(x - a * means[i]) / (a * a * variances[i] + s2) for i in range(len(weights))]
        comp_score = sum(w * s for w, s in zip(weights, src))
        quad = np.sum(comp_score**2, axis=-1) - sum(w * np.sum(s**2, axis=-1) for w, s in zip(weights, src))
        inc = h * 0.5 * beta * ((1.0 - weights.sum()) * d + quad)  # weights were uniform after last resampling
        top = inc.max(axis=1, keepdims=True)
        e = np.exp(inc - top)
        total = e.sum(axis=1, keepdims=True)
        log_z += (top + np.log(total / k_))[:, 0]
        cdf = np.cumsum(e / total, axis=1)
        cdf /= cdf[:, -1:]
        positions = (rng.random((s_, 1)) + np.arange(k_)) / k_
        # One searchsorted for all swarms: offset swarm r's values by r (they lie in [0, 1]).
        flat = np.searchsorted((cdf + rows).ravel(), (positions + rows).ravel(), side="right")
        idx = np.minimum(flat.reshape(s_, k_) - rows * k_, k_ - 1)
        x = np.take_along_axis(x, idx[..., None], axis=1)
        comp_score = np.take_along_axis(comp_score, idx[..., None], axis=1)
        x = x + h * (0.5 * beta * x + beta * comp_score) + np.sqrt(beta * h) * rng.standard_normal(x.shape)
    pick = rng.integers(0, k_, size=s_)
    return x[np.arange(s_), pick], log_z


# ------------------------------------------------------------------------------------------------ timing
def best_time(fn, repeats):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(args):
    schedule = VPSchedule()
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, schedule)
    target_var = float(np.asarray(comp.target.cov)[0, 0])
    s_, n_steps = args.swarms, args.steps
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
          f"load average {load[0]:.2f} at start")
    print(f"JAX {jax.__version__} on {len(jax.devices())} {jax.devices()[0].platform.upper()} device(s); "
          f"NumPy {np.__version__}; NFC_OOD, {s_} swarms, {n_steps} steps, float64, noise={args.noise!r} "
          f"(target variance {target_var:.3f})")
    print()
    header = f"{'K':>4} {'catcomp s':>10} {'particle-steps/s':>17} {'NumPy s':>9} {'particle-steps/s':>17} " \
             f"{'speed-up':>8}  output variance (catcomp / NumPy)"
    print(header)
    rows = []
    for k in args.particles:
        def run_jax(key=jax.random.key(0), k=k):
            return fkc_sample(key, scores, comp.weights, schedule, s_, k, n_steps=n_steps, noise=args.noise)

        jax.block_until_ready(run_jax())  # compile
        t_jax, res = best_time(run_jax, args.repeats)
        run_steps = args.numpy_steps or n_steps
        t0 = time.perf_counter()
        np_samples, _ = numpy_fkc(0, comp, schedule, s_, k, n_steps, run_steps=run_steps)
        t_np = (time.perf_counter() - t0) * n_steps / run_steps
        work = s_ * k * n_steps
        var_jax = float(np.asarray(res.samples).var(0).mean())
        var_np = float(np_samples.var(0).mean()) if run_steps == n_steps else float("nan")
        print(f"{k:>4} {t_jax:>10.2f} {work / t_jax:>17.3g} {t_np:>9.2f} {work / t_np:>17.3g} {t_np / t_jax:>7.1f}x"
              f"  {var_jax:.3f} / {var_np:.3f}", flush=True)
        rows.append((k, t_jax, t_np))
    if args.numpy_steps and args.numpy_steps != n_steps:
        print(f"(NumPy timed on {args.numpy_steps} steps and scaled to {n_steps}; its output variance is not shown)")

    # The naive sampler (the paper's K = 0 reference), and the noise alone: 500 steps of (swarms, 64, 2) draws.
    def run_naive(key=jax.random.key(0)):
        return naive_sde_sample(key, scores, comp.weights, schedule, s_, n_steps=n_steps, noise=args.noise)

    jax.block_until_ready(run_naive())
    t_naive, _ = best_time(run_naive, args.repeats)
    print(f"\nnaive SDE ({s_} samples, {n_steps} steps): {t_naive:.3f} s")
    k_max = max(args.particles)
    for method in ("hash", "threefry"):
        noise = jax.jit(lambda key, m=method: jax.lax.scan(
            lambda acc, i: (acc + standard_normal(jax.random.fold_in(key, i), (s_, k_max, 2), m), None),
            jnp.zeros((s_, k_max, 2)), jnp.arange(n_steps))[0], compiler_options=CPU_COMPILER_OPTIONS)
        jax.block_until_ready(noise(jax.random.key(0)))
        t_noise, _ = best_time(lambda: noise(jax.random.key(1)), args.repeats)
        print(f"noise alone, {method:8s}: {t_noise:.2f} s for {n_steps} × {s_} × {k_max} × 2 draws "
              f"(one device, unsharded)")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main(ARGS) else 1)
