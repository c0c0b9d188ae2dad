r"""Standard normal noise for the samplers: JAX's generator, or a counter-based hash that is ~8× cheaper.

The reverse samplers draw ``n_steps × n_swarms × K × d`` standard normals — 320 million for the paper's FKC run
(5000 swarms, ``K = 64``, 500 steps, ``d = 2``) — and on a CPU that dominates their cost. Two methods:

``"threefry"``
    ``jax.random.normal(key, shape, float64)``: JAX's threefry bits (64 per draw) through the float64 inverse error
    function. Full float64 resolution; measured ~7 s of one core for those 320 million draws.
``"hash"`` (default)
    A counter-based generator: the step key gives a 64-bit seed ``s`` (``jax.random.bits``), and element ``i`` of the
    flattened array gets the SplitMix64 output ``mix64(s + (i + 1)·γ)``, ``γ = 0x9E3779B97F4A7C15`` (Steele, Lea &
    Flood 2014; the generator passes BigCrush). Its top 23 bits ``m`` give the uniform ``u = (m + ½)·2⁻²² − 1``,
    exact in float32 and strictly inside ``(−1, 1)``, mapped by ``z = √2·erfinv(u)`` in float32
    (:func:`erfinv32`, Giles' approximation with a bitwise logarithm) and returned as float64. About 4 ns per draw
    on this project's CPU, against 6 ns with ``jax.lax.erf_inv`` and 0.8 ns for the hash alone.

What the ``"hash"`` draws give up: resolution. ``z`` takes ``2²³`` distinct values with float32 rounding (relative
``6e-8``), and ``|z| ≤ 5.3`` (``P(|Z| > 5.3) ≈ 1.2e-7``, so the variance of the draws is ``1 − 2e-6``). Both are
far below the Monte Carlo error of any experiment here; the tests check moments, the distribution function,
independence across elements and steps, and every sampler's output against exact laws with this default.

Both methods depend only on the key and the element's index in the global array, never on how the array is
sharded across devices, so results do not change with the device count.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError

NOISE_METHODS = ("hash", "threefry")

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


def _flat_index(shape):
    """The row-major flat index of every element of ``shape`` (uint64), built from per-axis iotas so that it stays
    elementwise (and hence shardable) whatever the shape."""
    index = jnp.zeros(shape, dtype=jnp.uint64)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        index = index + jax.lax.broadcasted_iota(jnp.uint64, shape, axis) * jnp.uint64(stride)
        stride *= shape[axis]
    return index


def hash_normal(key, shape, dtype=jnp.float64):
    """Standard normals of ``shape`` (float64, or ``dtype``) by the ``"hash"`` method (module doc); the values are
    computed in float32 and are the same for either dtype.

    Element ``i`` of the row-major flattened array uses the top 23 bits of its own hash ``mix64(s + (i + 1)γ)``.
    Everything is elementwise (no interleaving of two draws per hash, which XLA:CPU cannot vectorize and which
    measured 2× slower than a second hash), so an element's value depends only on the key, the shape and its index.
    """
    return _hash_normal(key, tuple(int(n) for n in shape), jnp.dtype(dtype))


# One compiled program per (shape, dtype) when called outside a trace, instead of one per elementwise operation.
@partial(jax.jit, static_argnums=(1, 2))
def _hash_normal(key, shape, dtype):
    seed = jax.random.bits(key, (), dtype=jnp.uint64)
    u = _uniform23(splitmix64(seed, _flat_index(shape)) >> jnp.uint64(41))
    z = jnp.float32(np.sqrt(2.0)) * erfinv32(u)
    return z.astype(dtype)


# Cephes' single-precision logarithm (Moshier): log(1 + f) = f − f²/2 + f³·P(f) for f ∈ [√½ − 1, √2 − 1).
_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
# Giles (2011), "Approximating the erfinv function", GPU Computing Gems Jade, single precision: erfinv(x) = x·p(w),
# w = −log((1 − x)(1 + x)), with p a polynomial in w − 2.5 for w < 5 and in √w − 3 beyond (highest degree first).
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                   -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                0.00943887047, 1.00167406, 2.83297682)


def _horner(x, coefficients):
    p = jnp.float32(coefficients[0])
    for c in coefficients[1:]:
        p = p * x + jnp.float32(c)
    return p


def log32(x):
    """Natural logarithm of positive, normal float32 ``x`` from its exponent and mantissa bits (Cephes' ``logf``):
    ``x = 2^e m`` with ``m ∈ [√½, √2)``, ``log x = e·log 2 + log m``. Elementwise integer and float arithmetic only,
    which XLA:CPU vectorizes (its own ``log`` and ``log1p`` cost ~2 ns per float32 element here)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.int32)
    mantissa = jax.lax.bitcast_convert_type((bits & 0x007FFFFF) | 0x3F800000, jnp.float32)  # m ∈ [1, 2)
    big = mantissa > jnp.float32(np.sqrt(2.0))
    mantissa = jnp.where(big, jnp.float32(0.5) * mantissa, mantissa)
    e = ((bits >> 23) - 127 + big.astype(jnp.int32)).astype(jnp.float32)
    f = mantissa - jnp.float32(1.0)
    f2 = f * f
    # log 2 split as 0.693359375 (exact in float32) − 2.12194440e-4, as in Cephes.
    y = f * f2 * _horner(f, _LOG_P) - jnp.float32(2.12194440e-4) * e - jnp.float32(0.5) * f2
    return f + y + jnp.float32(0.693359375) * e


def erfinv32(x):
    """The inverse error function of float32 ``x ∈ (−1, 1)`` by Giles' single-precision approximation, with
    ``w = −log((1 − x)(1 + x))`` through :func:`log32`. Measured against float64 ``scipy.special.erfinv`` on every
    uniform of the ``"hash"`` grid: 2.6e-7 relative at most (``jax.lax.erf_inv``: 5.8e-6), at two thirds of the
    cost of ``jax.lax.erf_inv`` on XLA:CPU. On the hash grid ``1 ± x`` is exact, so ``w`` loses nothing near ±1."""
    w = -log32((jnp.float32(1.0) - x) * (jnp.float32(1.0) + x))
    central = _horner(w - jnp.float32(2.5), _ERFINV_CENTRAL)
    tail = _horner(jnp.sqrt(w) - jnp.float32(3.0), _ERFINV_TAIL)
    return jnp.where(w < jnp.float32(5.0), central, tail) * x


def standard_normal(key, shape, method: str = "hash", dtype=jnp.float64):
    """Standard normal draws of ``shape`` as ``dtype`` (float64 by default) by ``method`` ∈ :data:`NOISE_METHODS`
    (module doc). ``"threefry"`` draws in ``dtype`` directly."""
    if method == "hash":
        return hash_normal(key, shape, dtype)
    if method == "threefry":
        return jax.random.normal(key, tuple(shape), dtype=dtype)
    raise CatcompError(f"unknown noise method {method!r}; valid methods are {', '.join(NOISE_METHODS)}.")
