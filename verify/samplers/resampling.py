r"""Resampling schemes for sequential Monte Carlo, as small pure functions ``(key, weights, n) -> indices``.

``weights`` are normalized probabilities of shape ``(N,)``; the result holds ``n`` ancestor indices in ``[0, N)``.
Both schemes are *unbiased*: the expected number of copies of particle ``j`` is ``n·w_j`` (Douc, Cappé & Moulines
2005). Multinomial draws the ``n`` ancestors independently; systematic uses one uniform ``u`` and the evenly spaced
positions ``(m + u)/n``, which has lower variance and is what the paper's FKC sampler uses.

Both are written as counts-then-indices, with no search: with ``C_j = Σ_{i≤j} w_i``, the number of positions below
``C_j`` is ``N_j`` (a non-decreasing integer), and slot ``m`` receives ancestor ``#{j : N_j ≤ m}``. This is a
scatter-add and a cumulative sum, which vectorizes over swarms (``jax.vmap``) far better than a binary search. Both
running sums (``C`` and the marks' sum) are small matrix products (:func:`cumulative_sum`), not ``jnp.cumsum``.
Along a diffusion path the weights of a step are nearly equal, and every ancestor lies within :data:`BAND` slots of
its own; the indices then come from a few elementwise comparisons of shifted counts (:func:`_banded_indices`), and
the scatter runs only for a batch where some ancestor lies farther (one test for the whole batch, the same integers
either way). Systematic's uniform ``u`` comes from the counter hash of :mod:`verify.samplers.noise`
(:func:`systematic_uniforms`).

*When* to resample is a separate, small strategy object (as in BlackJAX's adaptive SMC): :func:`always`,
:func:`below_ess` or :func:`never`. Each is called on a batch of swarms as
``strategy(key, weights, ess, log_weights, arrays) -> (log_weights, arrays, resampled)``: it draws ancestors with
its scheme for the swarms it resamples, gathers every array of ``arrays`` (shape ``(S, K, ...)``) along the particle
axis (one flat index into the ``(S·K, ...)`` rows; ``flat_gather=False``, for a swarm axis sharded over devices,
gathers within each swarm's row instead, so no device reads another's particles), resets those swarms' log weights to ``−log K`` and leaves the
other swarms untouched. A strategy called on a block of a run's swarms takes ``row_offset``, the block's first swarm
in the run, which systematic resampling passes on so that each swarm draws its own uniform whatever the block.
Strategies compare and hash with their class: they are static data of the compiled samplers.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from closed_form.errors import CatcompError, InvalidWeightsError, NonFiniteInputError, ShapeMismatchError
from closed_form.validation import check_finite, is_concrete
from verify.samplers.noise import flat_index, splitmix64


def _indices_from_counts(cum_counts, n):
    """Slot ``m`` gets ancestor ``#{j : cum_counts[j] ≤ m}``; ``cum_counts`` is non-decreasing along the last axis
    with last entry ``n``. Leading axes are batch axes (a ``vmap``, which keeps the scatter local to each row, so a
    swarm-sharded batch needs no communication).

    With as many ancestors as slots (``N = n``, as in the samplers) and every slot's ancestor within
    :data:`BAND` of the slot, the indices come from :func:`_banded_indices` (elementwise comparisons); otherwise, or
    when any slot of the batch lies farther, from the offspring scatter and the marks' running sum. Both give the same
    integers."""

    # The last count is n by definition (C_N = 1). Computed, it can round to n − 1 — in float32 ``n·1 − u`` rounds to
    # ``n − 1`` when ``u`` lies within half an ulp of ``n`` below 1 (probability ~2⁻²³·n per swarm and step) — and
    # slot n − 1 would then take the out-of-range ancestor N (a NaN particle). Pin it.
    cum_counts = cum_counts.at[..., -1].set(n)
    if cum_counts.shape[-1] != n or n <= 2 * BAND + 1:
        return _scattered_indices(cum_counts, n)
    return jax.lax.cond(_within_band(cum_counts, BAND), partial(_banded_indices, band=BAND),
                        partial(_scattered_indices, n=n), cum_counts)


def _scattered_indices(cum_counts, n):
    """:func:`_indices_from_counts` for any counts: the offspring scatter-add and the marks' running sum."""

    def one(cc):
        return jnp.zeros(n + 1, dtype=jnp.int32).at[cc].add(1)[:n]

    for _ in range(cum_counts.ndim - 1):
        one = jax.vmap(one)
    # The marks' running sum, exactly: every partial sum is an integer ≤ n, exact in float32 for n < 2²⁴ (float64
    # beyond), so any summation order gives the same integers.
    float_dtype = jnp.float32 if n < 2**24 else jnp.float64
    return jnp.rint(cumulative_sum(one(cum_counts).astype(float_dtype))).astype(jnp.int32)


#: The half-width of the band of :func:`_banded_indices`: when every ancestor of a batch lies within ``BAND`` slots of
#: its own, the indices come from ``2·BAND + 1`` elementwise comparisons per slot instead of the scatter.
BAND = 2


def _shift(a, delta: int, fill, axis: int):
    """``b[..., m, ...] = a[..., m + delta, ...]`` along ``axis``, ``fill`` where ``m + delta`` falls outside."""
    axis = axis % a.ndim
    k = a.shape[axis]
    pad_shape = a.shape[:axis] + (min(abs(delta), k),) + a.shape[axis + 1:]
    pad = jnp.full(pad_shape, fill, dtype=a.dtype)
    if delta >= 0:
        return jnp.concatenate([jax.lax.slice_in_dim(a, min(delta, k), k, axis=axis), pad], axis=axis)
    return jnp.concatenate([pad, jax.lax.slice_in_dim(a, 0, max(k + delta, 0), axis=axis)], axis=axis)


def _within_band(cum_counts, band: int):
    r"""Whether every slot's ancestor ``a_m = #{j : N_j ≤ m}`` lies within ``band`` of ``m``, for the whole batch.

    ``N`` (``cum_counts``: non-decreasing rows of as many entries as slots) is monotone, so ``a_m ≥ m − b`` exactly
    when ``N_{m−b−1} ≤ m``, and ``a_m ≤ m + b`` exactly when ``N_{m+b} > m`` (each condition void where the index
    falls outside the row)."""
    k = cum_counts.shape[-1]
    m = jnp.arange(k, dtype=cum_counts.dtype)
    return jnp.all((_shift(cum_counts, -band - 1, 0, -1) <= m) & (_shift(cum_counts, band, k + 1, -1) > m))


def _banded_indices(cum_counts, band: int):
    r"""The ancestors ``a_m = #{j : N_j ≤ m}`` when every one lies within ``band`` of its slot
    (:func:`_within_band`), from ``2·band + 1`` elementwise comparisons per slot.

    Then every ``j < m − b`` counts and no ``j > m + b`` does, so ``a_m = (m − b) + Σ_{|δ| ≤ b} [N_{m+δ} ≤ m]``,
    where an index below 0 counts as one (it cancels a ``j < m − b`` that does not exist) and one beyond the row as
    zero.
    """
    k = cum_counts.shape[-1]
    m = jnp.arange(k, dtype=cum_counts.dtype)
    idx = m - band
    for delta in range(-band, band + 1):
        idx = idx + (_shift(cum_counts, delta, 0 if delta < 0 else k + 1, -1) <= m).astype(cum_counts.dtype)
    return idx


#: Above this many entries :func:`cumulative_sum` uses two levels of blocks (one product would cost ``N²``).
SINGLE_PRODUCT_MAX = 64


def _upper_ones(n, dtype):
    return jnp.asarray(np.triu(np.ones((n, n))), dtype=dtype)


@jax.jit
def cumulative_sum(x):
    r"""Running sum along the last axis, ``y_j = Σ_{i≤j} x_i``, as small matrix products: XLA:CPU compiles
    ``jnp.cumsum`` to a windowed reduction whose cost grows like ``N·√N`` per row and does not vectorize, while a
    product with a triangular matrix of ones is one vectorized library call.

    ``N ≤`` :data:`SINGLE_PRODUCT_MAX`: ``y = x U`` with ``U_{ij} = [i ≤ j]`` (``N²`` multiply-adds per row). Larger
    ``N``: blocks of ``b = 16`` (``N`` padded with zeros to a multiple of ``b``): the within-block running sums
    ``x_B U_b``, plus each block's offset, the exclusive running sum of the block totals (``(N/b)²`` more; a third level
    of blocks beyond ``N/b > 64``), i.e. ``N(b + N/b)`` per row instead of ``N²``. The sums are the same as a
    sequential cumulative sum up to rounding (a different order of addition).
    """
    n = x.shape[-1]
    if n <= SINGLE_PRODUCT_MAX:
        return x @ _upper_ones(n, x.dtype)
    b = 16
    nb = -(-n // b)
    pad = nb * b - n
    xb = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)]) if pad else x
    xb = xb.reshape(x.shape[:-1] + (nb, b))
    inner = xb @ _upper_ones(b, x.dtype)
    offsets = cumulative_sum(inner[..., -1]) - inner[..., -1]
    y = (inner + offsets[..., None]).reshape(x.shape[:-1] + (nb * b,))
    return y[..., :n] if pad else y


def _cumulative(weights):
    c = cumulative_sum(weights)
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


def systematic(key, weights, n: int, row_offset=0):
    r"""Systematic resampling: positions ``p_m = (m + u)/n``, ``u ~ U[0, 1)`` (:func:`systematic_uniforms`),
    ``m = 0..n−1``; slot ``m`` takes the ancestor ``j`` with ``C_{j−1} ≤ p_m < C_j``.

    The count of positions below ``C_j`` is ``N_j = clip(⌈n C_j − u⌉, 0, n)``. ``weights`` may carry leading batch
    axes ``(..., N)``: each row then gets its own ``u`` and the result has shape ``(..., n)``. ``row_offset``: the
    index of the first row within a larger batch whose block of rows ``weights`` is; each row then draws the ``u``
    it draws in the larger batch.
    """
    _check_weights(weights)
    return _systematic(key, weights, row_offset, n)


@partial(jax.jit, static_argnums=3)
def _systematic(key, weights, row_offset, n: int):
    # One program per shape (called on its own) or inlined into the caller's (inside a sampler's jit).
    c = _cumulative(weights)
    u = _systematic_uniforms(key, row_offset, c.shape[:-1] + (1,), jnp.dtype(c.dtype))
    return _systematic_indices(c, u, n)


def systematic_uniforms(key, shape, dtype, row_offset=0):
    r"""The uniforms ``u ∈ [0, 1)`` of :func:`systematic`, one per row: the counter hash of
    :mod:`verify.samplers.noise` (``mix64(s + (i + 1)·γ)`` for row ``i``, counted from ``row_offset``, seed ``s``
    from ``key``), its top 24 bits times ``2⁻²⁴`` in float32 or top 53 bits times ``2⁻⁵³`` in float64 (exact).
    XLA:CPU runs JAX's threefry generator as a loop over its rounds; this is one elementwise pass."""
    return _systematic_uniforms(key, row_offset, tuple(int(n) for n in shape), jnp.dtype(dtype))


@partial(jax.jit, static_argnums=(2, 3))
def _systematic_uniforms(key, row_offset, shape, dtype):
    # One program per (shape, dtype) called on its own; inlined into a sampler's program.
    seed = jax.random.bits(key, (), dtype=jnp.uint64)
    h = splitmix64(seed, flat_index(shape, row_offset))
    if jnp.dtype(dtype) == jnp.float32:
        return (h >> jnp.uint64(40)).astype(jnp.float32) * jnp.float32(2.0**-24)
    return (h >> jnp.uint64(11)).astype(jnp.float64) * 2.0**-53


def _systematic_indices(c, u, n: int):
    """Systematic ancestors from the normalized cumulative weights ``c`` and the uniforms ``u`` (shape ``(..., 1)``)."""
    cum_counts = jnp.clip(jnp.ceil(n * c - u), 0, n).astype(jnp.int32)
    return _indices_from_counts(cum_counts, n)


def multinomial(key, weights, n: int):
    r"""Multinomial resampling: ``n`` independent ancestors ``j ~ Categorical(w)``, by inverse CDF of sorted
    uniforms (``n + 1`` exponential spacings, so no sort is needed); returned in increasing order. Batch axes as in
    :func:`systematic`."""
    _check_weights(weights)
    return _multinomial(key, weights, n)


@partial(jax.jit, static_argnums=2)
def _multinomial(key, weights, n: int):
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


@partial(jax.jit, static_argnames="axis")
def effective_sample_size(log_weights, axis: int = -1):
    r"""Kish's effective sample size ``(Σ w)² / Σ w²`` from (unnormalized) log weights, along ``axis``.

    Equals ``N`` for equal weights and ``1`` when one weight dominates.
    """
    return jnp.exp(2.0 * logsumexp(log_weights, axis=axis) - logsumexp(2.0 * log_weights, axis=axis))


# ------------------------------------------------------------------------------------------------ strategies
def _gather(a, idx, in_range: bool = False, flat: bool = True):
    """``a[s, idx[s, m], ...]`` for every swarm ``s`` and slot ``m`` (``a`` of shape ``idx.shape + rest``; the batch
    axes before the particle axis are flattened into one), as one gather from the flattened ``(S·K, ...)`` array at
    ``s·K + idx[s, m]``.

    ``in_range=True`` promises ``0 ≤ idx < K`` (the built-in schemes, by construction: the last cumulative count is
    pinned to ``K``); otherwise an ancestor outside that range gives a NaN row, never another swarm's particle. A
    flat index, unchecked, is what XLA:CPU fuses into the move cheapest: ``take_along_axis`` builds an index tuple per
    element (a concatenation) and checks its bounds (measured 18–20 % of an FKC step at K = 64 and 256).

    ``flat=False`` gathers along the particle axis with ``take_along_axis`` instead: for a swarm axis sharded over
    devices, where a flat index into the global rows would make XLA gather every device's rows to every device.
    """
    if not flat:
        mode = "promise_in_bounds" if in_range else "fill"
        return jnp.take_along_axis(a, idx.reshape(idx.shape + (1,) * (a.ndim - idx.ndim)), axis=idx.ndim - 1,
                                   mode=mode)
    k = idx.shape[-1]
    s = math.prod(idx.shape[:-1])
    rest = a.shape[idx.ndim:]
    idx = idx.reshape(s, k)
    flat = idx + (jnp.arange(s, dtype=idx.dtype) * k)[:, None]
    rows = a.reshape((s * k,) + rest)
    if in_range:
        out = rows.at[flat].get(mode="promise_in_bounds")
    else:
        flat = jnp.where((idx >= 0) & (idx < k), flat, s * k)
        out = rows.at[flat].get(mode="fill", fill_value=jnp.nan if jnp.issubdtype(a.dtype, jnp.inexact) else 0)
    return out.reshape(a.shape)


def _in_range(resampler) -> bool:
    """Whether ``resampler``'s indices lie in ``[0, K)`` by construction (the built-in schemes)."""
    return resampler is systematic or resampler is multinomial


def _scheme(resampler):
    """A scheme given by name (:data:`RESAMPLERS`) or as a function ``(key, weights, n) -> indices``."""
    if isinstance(resampler, str):
        return get_resampler(resampler)
    if not callable(resampler):
        raise CatcompError(f"resampler must be a scheme name ({', '.join(sorted(RESAMPLERS))}) or a function "
                           f"(key, weights, n) -> indices, got {type(resampler).__name__}.")
    return resampler


def _same(self, other):
    return type(self) is type(other) and tuple.__eq__(self, other)


def _differ(self, other):
    return not _same(self, other)


def _hash(self):
    return hash((type(self), tuple(self)))


class Always(NamedTuple):
    """Resample every swarm at every step (the paper's FKC); build with :func:`always`."""

    resampler: Callable

    # A strategy is static data of the compiled samplers: it compares and hashes with its class (a NamedTuple alone
    # compares as a plain tuple, so a subclass with another ``apply`` would reuse this class's compiled program).
    __eq__, __ne__, __hash__ = _same, _differ, _hash

    def __call__(self, key, weights, ess, log_weights, arrays, *, flat_gather: bool = True, row_offset=0):
        return _apply(self, key, weights, ess, log_weights, tuple(arrays), flat_gather, row_offset)

    def apply(self, key, weights, ess, log_weights, arrays, flat_gather: bool = True, row_offset=0):
        n = weights.shape[-1]
        idx = _draw(self.resampler, key, weights, n, row_offset)  # one independent draw per swarm
        resampled = jnp.ones(ess.shape, dtype=bool)
        in_range = _in_range(self.resampler)
        # −log K in every slot, written as a function of the incoming log weights: a constant fill has no data
        # dependence on them, so XLA would copy the loop's weight buffer out and the fill back in at every step.
        uniform = jnp.asarray(-math.log(n), log_weights.dtype)
        return (jnp.clip(log_weights, uniform, uniform),
                tuple(_gather(a, idx, in_range, flat_gather) for a in arrays), resampled)


class BelowESS(NamedTuple):
    """Resample a swarm when its effective sample size is below ``threshold · K``; build with :func:`below_ess`."""

    threshold: float
    resampler: Callable

    __eq__, __ne__, __hash__ = _same, _differ, _hash

    def __call__(self, key, weights, ess, log_weights, arrays, *, flat_gather: bool = True, row_offset=0):
        return _apply(self, key, weights, ess, log_weights, tuple(arrays), flat_gather, row_offset)

    def apply(self, key, weights, ess, log_weights, arrays, flat_gather: bool = True, row_offset=0):
        n = weights.shape[-1]
        resampled = ess < self.threshold * n

        def resample(_):
            idx = _draw(self.resampler, key, weights, n, row_offset)
            # Swarms that keep their particles take the identity ancestors, so one gather serves every swarm.
            idx = jnp.where(resampled[..., None], idx, jnp.arange(n, dtype=idx.dtype))
            return (jnp.where(resampled[..., None], jnp.asarray(-math.log(n), log_weights.dtype), log_weights),
                    tuple(_gather(a, idx, _in_range(self.resampler), flat_gather) for a in arrays))

        # A step where no swarm falls below the threshold skips the search and the gathers altogether.
        log_weights, arrays = jax.lax.cond(jnp.any(resampled), resample, lambda _: (log_weights, tuple(arrays)),
                                           None)
        return log_weights, arrays, resampled


class Never(NamedTuple):
    """Never resample (importance sampling along the path); build with :func:`never`."""

    __eq__, __ne__, __hash__ = _same, _differ, _hash

    def __call__(self, key, weights, ess, log_weights, arrays, *, flat_gather: bool = True, row_offset=0):
        return _apply(self, key, weights, ess, log_weights, tuple(arrays), flat_gather, row_offset)

    def apply(self, key, weights, ess, log_weights, arrays, flat_gather: bool = True, row_offset=0):
        return log_weights, tuple(arrays), jnp.zeros(ess.shape, dtype=bool)


@partial(jax.jit, static_argnums=(0, 6))
def _apply(strategy, key, weights, ess, log_weights, arrays, flat_gather=True, row_offset=0):
    """A strategy's step as one program per strategy and shapes (called on its own, e.g. step by step in tests), or
    inlined into the sampler's program (inside its jit)."""
    return strategy.apply(key, weights, ess, log_weights, arrays, flat_gather, row_offset)


def _draw(resampler, key, weights, n, row_offset):
    """``resampler``'s indices for a block of swarms starting at swarm ``row_offset`` of the run: systematic draws
    each swarm's uniform by its index in the run; other schemes are called as ``(key, weights, n)`` (the samplers
    split a run into blocks only with systematic resampling)."""
    if resampler is systematic:
        return systematic(key, weights, n, row_offset)
    return resampler(key, weights, n)


#: The resampling strategies :func:`always`, :func:`below_ess`, :func:`never` build.
STRATEGIES = (Always, BelowESS, Never)


def always(resampler="systematic") -> Always:
    r"""Resample every swarm at every step with ``resampler`` (a scheme name or a function
    ``(key, weights, n) -> indices`` such as :func:`systematic`); afterwards every log weight is ``−log K``."""
    return Always(_scheme(resampler))


def below_ess(threshold, resampler="systematic") -> BelowESS:
    r"""Resample a swarm exactly when its Kish effective sample size ``ESS = 1 / Σ_j W_j²`` (normalized weights
    ``W``) satisfies ``ESS < threshold · K``.

    ``threshold`` lies in ``[0, 1]``: ``0`` never resamples (``ESS ≥ 1``), ``1`` resamples unless the weights are
    exactly equal. Raises :class:`NonFiniteInputError` for NaN/inf and :class:`CatcompError` outside ``[0, 1]``.
    """
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise NonFiniteInputError(f"ess_threshold is {threshold}; pass None or a number in [0, 1].")
    if not 0.0 <= threshold <= 1.0:
        raise CatcompError(f"ess_threshold must be None or lie in [0, 1], got {threshold}.")
    return BelowESS(threshold, _scheme(resampler))


def never() -> Never:
    """Never resample: the swarms carry their importance weights to the end."""
    return Never()
