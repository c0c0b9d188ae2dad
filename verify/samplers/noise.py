r"""Standard normal noise for the samplers: JAX's generator, or counter-based hashes that are several times cheaper.

The reverse samplers draw ``n_steps × n_swarms × K × d`` standard normals — 320 million for the paper's FKC run
(5000 swarms, ``K = 64``, 500 steps, ``d = 2``) — and on a CPU that dominates their cost. Three methods:

``"threefry"``
    ``jax.random.normal(key, shape, float64)``: JAX's threefry bits (64 per draw) through the float64 inverse error
    function. Full float64 resolution; measured ~7 s of one core for those 320 million draws.
``"hash"`` (default)
    A counter-based generator: the step key gives a 64-bit seed ``s`` (``jax.random.bits``), and element ``i`` of the
    flattened array gets the SplitMix64 output ``mix64(s + (i + 1)·γ)``, ``γ = 0x9E3779B97F4A7C15`` (Steele, Lea &
    Flood 2014; the generator passes BigCrush). Its top 23 bits ``m`` give the uniform ``u = (m + ½)·2⁻²² − 1``,
    exact in float32 and strictly inside ``(−1, 1)``, mapped by ``z = √2·erfinv(u)`` in float32
    (``jax.lax.erf_inv``) and returned as float64. Measured ~0.9 s for the same 320 million draws.

``"box-muller"``
    The same counter-based hash, one per *pair* of elements, through the Box–Muller transform (Box & Muller 1958)
    in float32: elements ``2p`` and ``2p + 1`` of the flattened array share ``h = mix64(s + (p + 1)·γ)``, whose top
    23 bits ``m₁`` and next 23 bits ``m₂`` give ``u_k = (m_k + ½)·2⁻²³ ∈ (0, 1)``; then ``R = √(−2 log u₁)`` and
    ``z_{2p} = R cos 2πu₂``, ``z_{2p+1} = R sin 2πu₂`` (a sine written as ``cos 2π(u₂ − ¼)``, so that every element
    is the same elementwise computation and vectorizes). ``(z_{2p}, z_{2p+1})`` are two independent standard
    normals, exactly for continuous ``u`` (``R²`` is χ²₂ and the angle uniform, independently). The cosine is a
    short polynomial after reduction to an eighth of a turn (absolute error below 2.5e-7), not XLA's general
    ``cos``. No inverse error function, so cheaper than ``"hash"`` (CPU time per float64 draw on this project's
    2-core machine, arrays of 2²⁰: threefry 29 ns, hash 6.7 ns, box-muller 2.5 ns), with a longer tail:
    ``|z| ≤ √(−2 log 2⁻²⁴) = 5.77`` (``P(|Z| > 5.77) ≈ 8e-9``). Opt-in: ``"hash"`` stays the default, so results
    from a seed do not change.

What the ``"hash"`` draws give up: resolution. ``z`` takes ``2²³`` distinct values with float32 rounding (relative
``6e-8``), and ``|z| ≤ 5.3`` (``P(|Z| > 5.3) ≈ 1.2e-7``, so the variance of the draws is ``1 − 2e-6``). Both are
far below the Monte Carlo error of any experiment here; the tests check moments, the distribution function,
independence across elements and steps, and every sampler's output against exact laws with this default.

All three depend only on the key and the element's index in the global array, never on how the array is
sharded across devices, so results do not change with the device count.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError

NOISE_METHODS = ("hash", "threefry", "box-muller")

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def check_noise_method(method: str) -> str:
    if method not in NOISE_METHODS:
        raise CatcompError(f"unknown noise method {method!r}; valid methods are {', '.join(NOISE_METHODS)}.")
    return method


@jax.jit
def splitmix64(seed, counter):
    """SplitMix64 output for ``counter`` (uint64 array) under ``seed`` (uint64 scalar): ``mix64(seed + (counter+1)γ)``.

    ``mix64(z)``: ``z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9``, ``z ← (z ⊕ z≫27)·0x94D049BB133111EB``, ``z ⊕ z≫31``
    (arithmetic mod 2⁶⁴).
    """
    z = seed + (counter + jnp.uint64(1)) * _GAMMA
    z = (z ^ (z >> jnp.uint64(30))) * _M1
    z = (z ^ (z >> jnp.uint64(27))) * _M2
    return z ^ (z >> jnp.uint64(31))


def _uniform23(bits):
    """``(m + ½)·2⁻²² − 1`` for a 23-bit integer ``m``: exact in float32, symmetric, strictly inside (−1, 1)."""
    return (bits.astype(jnp.float32) + jnp.float32(0.5)) * jnp.float32(2.0**-22) - jnp.float32(1.0)


def flat_index(shape, offset=0):
    """The row-major flat index of every element of ``shape`` (uint64) plus ``offset`` (the index of the array's
    first element within a larger array of which it is a block of leading rows), built from per-axis iotas so that
    it stays elementwise (and hence shardable) whatever the shape."""
    index = jnp.broadcast_to(jnp.asarray(offset).astype(jnp.uint64), shape)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        index = index + jax.lax.broadcasted_iota(jnp.uint64, shape, axis) * jnp.uint64(stride)
        stride *= shape[axis]
    return index


def hash_normal(key, shape, dtype=jnp.float64, offset=0):
    """Standard normals of ``shape`` (float64, or ``dtype``) by the ``"hash"`` method (module doc); the values are
    computed in float32 and are the same for either dtype.

    Element ``i`` of the row-major flattened array uses the top 23 bits of its own hash ``mix64(s + (i + 1)γ)``,
    with ``i`` counted from ``offset``: a block of rows drawn with the offset of its first element is that block of
    the whole array's draws. Everything is elementwise (no interleaving of two draws per hash, which XLA:CPU cannot
    vectorize and which measured 2× slower than a second hash), so an element's value depends only on the key and
    its index.
    """
    return _hash_normal(key, offset, tuple(int(n) for n in shape), jnp.dtype(dtype))


# One compiled program per (shape, dtype) when called outside a trace, instead of one per elementwise operation.
@partial(jax.jit, static_argnums=(2, 3))
def _hash_normal(key, offset, shape, dtype):
    seed = jax.random.bits(key, (), dtype=jnp.uint64)
    u = _uniform23(splitmix64(seed, flat_index(shape, offset)) >> jnp.uint64(41))
    z = jnp.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)
    return z.astype(dtype)


def box_muller_normal(key, shape, dtype=jnp.float64, offset=0):
    """Standard normals of ``shape`` (float64, or ``dtype``) by the ``"box-muller"`` method (module doc), computed in
    float32. Element ``i`` of the row-major flattened array, counted from ``offset`` (as in :func:`hash_normal`), is
    ``R cos 2π(u₂ − (i mod 2)/4)`` with ``R`` and ``u₂`` from the hash of its pair ``⌊i/2⌋``, so a value depends
    only on the key and its index."""
    return _box_muller_normal(key, offset, tuple(int(n) for n in shape), jnp.dtype(dtype))


def cos_two_pi(v):
    """``cos 2πv`` for float32 ``v``: reduced to ``y ∈ [0, ⅛]`` turn (``cos 2πv = ±cos 2πy`` or ``±sin 2π(¼ − y)``)
    and evaluated by the Taylor polynomials of degree 8 (cosine) and 9 (sine) on ``[0, π/4]``, whose truncation
    errors are below 3e-8 there."""
    w = jnp.abs(v - jnp.round(v))  # [0, ½]: cos 2πv = cos 2πw
    flip = w > jnp.float32(0.25)
    y = jnp.where(flip, jnp.float32(0.5) - w, w)  # [0, ¼]: cos 2πw = ∓ cos 2πy
    use_sine = y > jnp.float32(0.125)
    a = jnp.float32(2.0 * np.pi) * jnp.where(use_sine, jnp.float32(0.25) - y, y)  # [0, π/4]
    a2 = a * a
    c = 1.0 + a2 * (-1 / 2 + a2 * (1 / 24 + a2 * (-1 / 720 + a2 * (1 / 40320))))
    s = a * (1.0 + a2 * (-1 / 6 + a2 * (1 / 120 + a2 * (-1 / 5040 + a2 * (1 / 362880)))))
    r = jnp.where(use_sine, s, c).astype(jnp.float32)
    return jnp.where(flip, -r, r)


@partial(jax.jit, static_argnums=(2, 3))
def _box_muller_normal(key, offset, shape, dtype):
    seed = jax.random.bits(key, (), dtype=jnp.uint64)
    index = flat_index(shape, offset)
    h = splitmix64(seed, index >> jnp.uint64(1))
    u1 = _unit23(h >> jnp.uint64(41))
    u2 = _unit23((h >> jnp.uint64(18)) & jnp.uint64(0x7FFFFF))
    radius = jnp.sqrt(jnp.float32(-2.0) * jnp.log(u1))
    quarter = jnp.float32(0.25) * (index & jnp.uint64(1)).astype(jnp.float32)
    return (radius * cos_two_pi(u2 - quarter)).astype(dtype)


def _unit23(bits):
    """``(m + ½)·2⁻²³`` for a 23-bit integer ``m``: exact in float32, strictly inside (0, 1)."""
    return (bits.astype(jnp.float32) + jnp.float32(0.5)) * jnp.float32(2.0**-23)


def standard_normal(key, shape, method: str = "hash", dtype=jnp.float64, offset=0):
    """Standard normal draws of ``shape`` as ``dtype`` (float64 by default) by ``method`` ∈ :data:`NOISE_METHODS`
    (module doc). ``"threefry"`` draws in ``dtype`` directly.

    ``offset`` (``"hash"`` and ``"box-muller"``): the flat index of the array's first element within a larger array
    whose leading rows it is; the draws are then those of the larger array's block. ``"threefry"`` cannot draw a
    block of a larger array and takes ``offset=0`` only.
    """
    if method == "hash":
        return hash_normal(key, shape, dtype, offset)
    if method == "threefry":
        if not (isinstance(offset, int) and offset == 0):
            raise CatcompError("noise='threefry' cannot draw a block of a larger array; pass offset=0 or use the "
                               "'hash' or 'box-muller' noise.")
        return jax.random.normal(key, tuple(shape), dtype=dtype)
    if method == "box-muller":
        return box_muller_normal(key, shape, dtype, offset)
    raise CatcompError(f"unknown noise method {method!r}; valid methods are {', '.join(NOISE_METHODS)}.")
