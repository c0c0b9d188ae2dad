r"""The authors' Monte Carlo estimator of the sensitivity metric ``log rESS_i⁻¹ = log(1 + χ²(Q‖P_i))``.

For ``Q ∝ Π_j P_j^{w_j}`` and a source ``P_i``, the importance weights of ``Q`` under ``P_i`` are, up to a constant,
``log w_i(x) = Σ_j w_j log P_j(x) − log P_i(x)``. The estimator is the self-normalized

.. math:: \widehat{\log rESS_i^{-1}} = \log\frac{N\sum_n w_n^2}{(\sum_n w_n)^2} \;\in [0, \log N],

on ``N`` draws of ``P_i``; the metric is ``max_i`` of it, and the authors report the median over independent draws
(standard error :data:`MEDIAN_SE_FACTOR` ``· sd/√n``). Because ``Σ w² ≤ (Σ w)²`` it can never exceed ``log N``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from verify.samplers.staging import CPU_COMPILER_OPTIONS

#: Standard error of the median of n normal draws: √(π/2)·sd/√n (asymptotic efficiency of the median), to 4 digits.
MEDIAN_SE_FACTOR = 1.2533


@jax.jit
def neg_log_ress(log_w) -> jax.Array:
    r"""``−log rESS = log(N Σ w²/(Σ w)²)`` of self-normalized weights ``exp(log_w)`` over the last axis; in
    ``[0, log N]`` (Cauchy–Schwarz below, ``Σ w² ≤ (Σ w)²`` above). Jitted: one program per shape."""
    n = log_w.shape[-1]
    return logsumexp(2.0 * log_w, axis=-1) + math.log(n) - 2.0 * logsumexp(log_w, axis=-1)


def composition_log_weights(sources, weights, i: int, x) -> jax.Array:
    r"""``log w_i(x) = Σ_j w_j log P_j(x) − log P_i(x)``: the unnormalized log density ratio of the composition to
    source ``i`` (constant dropped), at points ``x`` of shape ``(..., d)``."""
    total = sum(w * s.logpdf(x) for w, s in zip(weights, sources) if w != 0.0)
    return total - sources[i].logpdf(x)


def ress_estimates(key, sources, weights, n_eval: int, n_draws: int) -> np.ndarray:
    r"""The authors' estimator of ``log rESS_i⁻¹`` per draw and source: array ``(n_draws, n_sources)``, each entry
    from ``n_eval`` fresh draws of ``P_i``."""
    return np.asarray(_ress_draws(key, tuple(sources), tuple(float(w) for w in weights), int(n_eval), int(n_draws)))


@partial(jax.jit, static_argnums=(2, 3, 4), compiler_options=CPU_COMPILER_OPTIONS)
def _ress_draws(key, sources, weights, n_eval, n_draws):
    # Sources are pytree arguments, so one compilation serves every configuration of a family; the draws' keys are
    # folded in here too (no eager program per n_draws).
    keys = jax.vmap(lambda d: jax.random.fold_in(key, d))(jnp.arange(n_draws))
    def one(k):
        out = []
        for i, src in enumerate(sources):
            x = src.sample(jax.random.fold_in(k, i), n_eval)
            out.append(neg_log_ress(composition_log_weights(sources, weights, i, x)))
        return jnp.stack(out)

    return jax.vmap(one)(keys)


__all__ = ["MEDIAN_SE_FACTOR", "composition_log_weights", "neg_log_ress", "ress_estimates"]
