"""Exact output laws in dimension 200: the per-direction route and the matrix route, timed and checked.

The aim is dimension 200 in under a second. Two compositions of three Gaussian sources, weights (1, 1, −1):

* *commuting*: diagonal covariances, given to the laws as a :class:`~closed_form.CodiagonalField` (per direction);
* *non-commuting*: covariances with independent random eigenbases, so no basis diagonalizes every ``A_t`` and the
  laws integrate the full matrix moment ODE (``d² + d = 40,200`` unknowns) or run the ``d × d`` recursion.

For each, the wall time of ``sde_law``, ``ode_law`` and ``euler_maruyama_law(500)`` (best of ``--repeats`` after a
warm-up call that compiles the field). Baseline, timed in the same process: the same non-commuting laws with the
field written the direct way, three ``jnp.linalg.inv`` per evaluation (what ``Composition.naive_field`` did before
it eigendecomposed the sources once). Accuracy of the matrix route in dimension 200: the exact ``Q_t`` field started
at ``Q_T`` must return ``Q_{t_min}`` (closed form), forced through ``method="general"``.

    python benchmarks/exact_laws.py [--dim 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax.numpy as jnp
import numpy as np

import closed_form  # noqa: F401  (float64)
from closed_form import Gaussian, VPSchedule, codiagonal_field, compose, euler_maruyama_law, ode_law, sde_law


def random_spd(rng, dim, lo, hi, rotate=True):
    """An SPD matrix with eigenvalues uniform in ``[lo, hi]`` and a Haar-random eigenbasis (or the standard one)."""
    eig = rng.uniform(lo, hi, dim)
    if not rotate:
        return np.diag(eig)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    return (q * eig) @ q.T


def composition(dim, rotate, seed=0):
    """Σ₁, Σ₂ with spectra in [0.5, 2], Σ₀ in [2.5, 4]: ``Σ₁⁻¹ + Σ₂⁻¹ − Σ₀⁻¹ ⪰ 0.6 I``, a proper target."""
    rng = np.random.default_rng(seed)
    sources = [Gaussian(rng.normal(0.0, 1.0, dim), random_spd(rng, dim, 0.5, 2.0, rotate)),
               Gaussian(rng.normal(0.0, 1.0, dim), random_spd(rng, dim, 0.5, 2.0, rotate)),
               Gaussian(np.zeros(dim), random_spd(rng, dim, 2.5, 4.0, rotate))]
    return compose(sources, [1.0, 1.0, -1.0])


def inverse_field(comp, schedule):
    """The naive composed field with one dense inverse per source per evaluation (the baseline)."""
    weights = jnp.asarray(comp.weights)
    covs = jnp.stack([s.cov for s in comp.sources])
    means = jnp.stack([s.mean for s in comp.sources])
    eye = jnp.eye(comp.dim)

    def field(t):
        a, s2 = schedule.alpha(t), schedule.sigma2(t)
        precs = jnp.stack([jnp.linalg.inv(a**2 * c + s2 * eye) for c in covs])
        big_a = jnp.einsum("i,ijk->jk", weights, precs)
        return 0.5 * (big_a + big_a.T), jnp.einsum("i,ijk,ik->j", weights, precs, a * means)

    return field


def best_time(fn, repeats):
    fn()  # compile the field
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    schedule = VPSchedule()
    start = Gaussian.standard(args.dim)
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}; d = {args.dim}")

    laws = {"sde_law": lambda f, **kw: sde_law(f, schedule, start, **kw),
            "ode_law": lambda f, **kw: ode_law(f, schedule, start, **kw),
            "euler_maruyama_law(500)": lambda f, **kw: euler_maruyama_law(f, schedule, start, **kw)}
    commuting = composition(args.dim, rotate=False)
    general = composition(args.dim, rotate=True)
    fields = {
        "commuting, CodiagonalField": (codiagonal_field(commuting, schedule), {}),
        "non-commuting, naive_field": (general.naive_field(schedule), {}),
        "non-commuting, baseline (inverses)": (inverse_field(general, schedule), {}),
    }
    results = {}
    for label, (field, kw) in fields.items():
        for law, call in laws.items():
            seconds, out = best_time(lambda: call(field, **kw), args.repeats)
            results[label, law] = (seconds, out)
            print(f"  {label:36s} {law:24s} {seconds:7.3f} s")
    for law in laws:
        fast, base = results["non-commuting, naive_field", law], results["non-commuting, baseline (inverses)", law]
        rel = float(np.max(np.abs(np.asarray(fast[1].cov) - np.asarray(base[1].cov))) /
                    np.max(np.abs(np.asarray(base[1].cov))))
        print(f"  {law:24s} speed-up over the baseline {base[0] / fast[0]:5.1f}×, covariances agree to {rel:.1e}")

    target = general.target
    q_start = target.noised(schedule, schedule.T)
    t_min = 1e-4
    for name, law in (("sde_law", sde_law), ("ode_law", ode_law)):
        seconds, out = best_time(lambda: law(general.target_field(schedule), schedule, q_start, t_min,
                                             method="general"), 1)
        exact = target.noised(schedule, t_min)
        rel = float(np.max(np.abs(np.asarray(out.cov) - np.asarray(exact.cov))) / np.max(np.abs(np.asarray(exact.cov))))
        print(f"  exact Q_t field from Q_T, {name}, matrix route: {seconds:.3f} s, max relative error {rel:.1e}")


if __name__ == "__main__":
    main()
