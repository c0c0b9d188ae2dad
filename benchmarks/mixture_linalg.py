"""What the per-component linear algebra of ``GaussianMixture`` costs against one batched LAPACK call.

``GaussianMixture`` factors, solves and back-substitutes one component at a time (a Python loop of unbatched calls)
because jaxlib 0.10's batched CPU LAPACK kernels can deadlock XLA's intra-op thread pool (``tests/README.md``, "The
hang guard, and the deadlock it once caught"). This times ``logpdf`` and ``score`` of an isotropic mixture in
dimension ``d`` with ``K`` components on ``n`` points, eager (each call dispatched op by op, as in the tests) and
under ``jax.jit``, for the current per-component code and, as the baseline in the same process, the batched
formulation it replaced (written out below). Each timing is the best of ``--repeats`` after a warm-up call, blocking
on the result, so the baseline cannot have two batched calls in flight and cannot deadlock here.

    python benchmarks/mixture_linalg.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

import closed_form  # noqa: F401  (float64)
from closed_form import GaussianMixture
from closed_form.gaussian import LOG_2PI


def batched_logpdf_and_score(mix, x):
    """The replaced formulation: one batched triangular solve and one batched Cholesky solve over the components."""
    diff_t = jnp.swapaxes(x[None, :, :] - mix.means[:, None, :], -1, -2)
    z = solve_triangular(mix.chols, diff_t, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(mix.chols, axis1=-2, axis2=-1)), axis=-1)
    log_joint = jnp.log(mix.weights)[:, None] - 0.5 * jnp.sum(z**2, axis=-2) - 0.5 * logdet[:, None]
    log_joint = log_joint - 0.5 * mix.dim * LOG_2PI
    r = jax.nn.softmax(log_joint, axis=0)
    score = jnp.einsum("kn,kdn->nd", r, -cho_solve((mix.chols, True), diff_t))
    return jax.scipy.special.logsumexp(log_joint, axis=0), score


def current_logpdf_and_score(mix, x):
    return mix.logpdf(x), mix.score(x)


def best_of(fn, repeats):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=4000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or 'unknown processor'}; "
          f"jax {jax.__version__}; n = {args.n} points")
    print(f"{'d':>3} {'K':>3} {'mode':>6} {'batched (s)':>12} {'per-component (s)':>18} {'ratio':>6} {'max |Δ|':>9}")
    rng = np.random.default_rng(0)
    for d, k in ((2, 2), (2, 8), (10, 8), (10, 32)):
        mix = GaussianMixture.isotropic(np.full(k, 1.0 / k), rng.normal(size=(k, d)) * 2.0, 1.3)
        x = jnp.asarray(rng.normal(size=(args.n, d)) * 2.0)
        ref, cur = batched_logpdf_and_score(mix, x), current_logpdf_and_score(mix, x)
        gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(ref, cur))
        for mode in ("eager", "jit"):
            base, new = batched_logpdf_and_score, current_logpdf_and_score
            if mode == "jit":
                base, new = jax.jit(base), jax.jit(new)
            t_base = best_of(lambda: base(mix, x), args.repeats)
            t_new = best_of(lambda: new(mix, x), args.repeats)
            print(f"{d:>3} {k:>3} {mode:>6} {t_base:>12.4f} {t_new:>18.4f} {t_new / t_base:>6.2f} {gap:>9.1e}")


if __name__ == "__main__":
    main()
