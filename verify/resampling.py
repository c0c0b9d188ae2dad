r"""Resampling schemes for sequential Monte Carlo, as small pure functions ``(key, weights, n) -> indices``.

``weights`` are normalized probabilities of shape ``(N,)``; the result holds ``n`` ancestor indices in ``[0, N)``.
Both schemes are *unbiased*: the expected number of copies of particle ``j`` is ``n·w_j`` (Douc, Cappé & Moulines
2005). Multinomial draws the ``n`` ancestors independently; systematic uses one uniform ``u`` and the evenly spaced
positions ``(m + u)/n``, which has lower variance and is what the paper's FKC sampler uses.

Both are written as counts-then-indices, with no search: with ``C_j = Σ_{i≤j} w_i``, the number of positions below
``C_j`` is ``N_j`` (a non-decreasing integer), and slot ``m`` receives ancestor ``#{j : N_j ≤ m}``. This is a
scatter-add and a cumulative sum, which vectorizes over swarms (``jax.vmap``) far better than a binary search.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from closed_form.errors import CatcompError, InvalidWeightsError, ShapeMismatchError
from closed_form.validation import check_finite, is_concrete


def _indices_from_counts(cum_counts, n):
    """Slot ``m`` gets ancestor ``#{j : cum_counts[j] ≤ m}``; ``cum_counts`` is non-decreasing along the last axis
    with last entry ``n``. Leading axes are batch axes (a ``vmap``, which keeps the scatter local to each row, so a
    swarm-sharded batch needs no communication)."""

    def one(cc):
        marks = jnp.zeros(n + 1, dtype=jnp.int32).at[cc].add(1)
        return jnp.cumsum(marks[:n], dtype=jnp.int32)

    for _ in range(cum_counts.ndim - 1):
        one = jax.vmap(one)
    return one(cum_counts)


def _cumulative(weights):
    c = jnp.cumsum(weights, axis=-1)
    # Rounding can leave C_N slightly off 1; pin the end so every position falls inside [0, C_N).
    return c / c[..., -1:]


def _check_weights(weights):
    """Shape always; values only when concrete (inside ``jax.jit`` they are tracers and cannot be read)."""
    if jnp.ndim(weights) < 1 or jnp.shape(weights)[-1] < 1:
        raise ShapeMismatchError(f"weights has shape {jnp.shape(weights)}; expected (..., N) with N ≥ 1.")
    if is_concrete(weights):
        check_finite(weights, "weights")
        w = np.asarray(weights)
        if np.any(w < 0) or np.any(w.sum(axis=-1) <= 0):
            raise InvalidWeightsError("resampling weights must be non-negative with a positive sum in every row.")


def systematic(key, weights, n: int):
    r"""Systematic resampling: positions ``p_m = (m + u)/n``, ``u ~ U[0, 1)``, ``m = 0..n−1``; slot ``m`` takes the
    ancestor ``j`` with ``C_{j−1} ≤ p_m < C_j``.

    The count of positions below ``C_j`` is ``N_j = clip(⌈n C_j − u⌉, 0, n)``. ``weights`` may carry leading batch
    axes ``(..., N)``: each row then gets its own ``u`` and the result has shape ``(..., n)``.
    """
    _check_weights(weights)
    c = _cumulative(weights)
    u = jax.random.uniform(key, c.shape[:-1] + (1,), dtype=c.dtype)
    cum_counts = jnp.clip(jnp.ceil(n * c - u), 0, n).astype(jnp.int32)
    return _indices_from_counts(cum_counts, n)


def multinomial(key, weights, n: int):
    r"""Multinomial resampling: ``n`` independent ancestors ``j ~ Categorical(w)``, by inverse CDF of sorted
    uniforms (``n + 1`` exponential spacings, so no sort is needed); returned in increasing order. Batch axes as in
    :func:`systematic`."""
    _check_weights(weights)
    c = _cumulative(weights)
    e = jax.random.exponential(key, c.shape[:-1] + (n + 1,), dtype=c.dtype)
    u = jnp.cumsum(e, axis=-1)[..., :n] / jnp.sum(e, axis=-1, keepdims=True)  # sorted uniforms on (0, 1)
    search = partial(jnp.searchsorted, side="left")  # #{m : u_m < C_j}
    for _ in range(c.ndim - 1):
        search = jax.vmap(search)
    return _indices_from_counts(search(u, c).astype(jnp.int32), n)


RESAMPLERS = {"systematic": systematic, "multinomial": multinomial}


def get_resampler(name: str):
    """The resampling function called ``name``; raises :class:`CatcompError` listing the valid names otherwise."""
    if name not in RESAMPLERS:
        raise CatcompError(f"unknown resampling scheme {name!r}; valid names are {', '.join(sorted(RESAMPLERS))}.")
    return RESAMPLERS[name]


def effective_sample_size(log_weights, axis: int = -1):
    r"""Kish's effective sample size ``(Σ w)² / Σ w²`` from (unnormalized) log weights, along ``axis``.

    Equals ``N`` for equal weights and ``1`` when one weight dominates.
    """
    return jnp.exp(2.0 * logsumexp(log_weights, axis=axis) - logsumexp(2.0 * log_weights, axis=axis))
