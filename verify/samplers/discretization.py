r"""What every reverse-time sampler here shares: the time grid, the start draw, the Euler–Maruyama move (the
*mutation* of the Feynman–Kac corrector), the key layout.

Grid (the paper's): :func:`closed_form.reverse_time_grid` — ``n_steps`` uniform steps from ``T`` to ``0``, clamped
to ``[eps, T − eps]``. Step ``k`` goes from ``t_k = grid[k]`` to ``grid[k + 1]`` with ``h_k = grid[k] − grid[k+1]``
and evaluates drift and scores at ``t_k``. The Euler–Maruyama move of the reverse SDE
``dx = [½βx + βS] dτ + √β dW`` with ``β = β(t_k)`` is

.. math:: x' = x + h_k\big(\tfrac12 β x + β S(x, t_k)\big) + \sqrt{β h_k}\, z,\qquad z \sim N(0, I).

followed, optionally, by MCMC corrector moves toward ``π_{t_{k+1}}`` (:func:`mutate`; the naive sampler and FKC
both move with it).

Key layout: a sampler splits its key (a JAX key, or an int seed: :func:`as_key`) into five streams — start, noise, resampling, final pick, corrector — and
folds the step index into a stream to get that step's keys (:func:`step_keys`). The naive sampler and FKC with one
particle per swarm share the start and noise streams, so with the same key they produce the same samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from closed_form import reverse_time_grid
from closed_form.errors import CatcompError, ShapeMismatchError
from verify.samplers.mcmc import apply_corrector
from verify.samplers.noise import standard_normal
from verify.samplers.sharding import constrain

START_NAMES = ("standard",)


class Keys(NamedTuple):
    """The five independent key streams of one sampler call."""

    start: jax.Array
    noise: jax.Array
    resample: jax.Array
    pick: jax.Array
    corrector: jax.Array


def as_key(key):
    """``key`` as a JAX PRNG key: a key passes through, an ``int`` seed becomes ``jax.random.key(seed)``.

    Raises :class:`CatcompError` for anything else, saying how to make a key.
    """
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                       or (key.dtype == jnp.uint32 and key.shape == (2,))):
        return key
    raise CatcompError(f"key must be a JAX PRNG key (jax.random.key(seed)) or an int seed, got {type(key).__name__}"
                       f"{'' if not hasattr(key, 'dtype') else f' of dtype {key.dtype}'}.")


def split_keys(key) -> Keys:
    """The five streams of ``key`` (a JAX key, or an int seed: :func:`as_key`)."""
    return _split_keys(as_key(key))


@jax.jit
def _split_keys(key) -> Keys:
    # One compiled program (per key type) instead of an eager split and five eager slices.
    return Keys(*jax.random.split(key, 5))


class StepKeys(NamedTuple):
    """The keys of one step: Gaussian increments, resampling, corrector."""

    noise: jax.Array
    resample: jax.Array
    corrector: jax.Array


@jax.jit
def step_keys(keys: Keys, k) -> StepKeys:
    """Step ``k``'s keys: the step index folded into the noise, resampling and corrector streams of ``keys``."""
    return StepKeys(jax.random.fold_in(keys.noise, k), jax.random.fold_in(keys.resample, k),
                    jax.random.fold_in(keys.corrector, k))


def time_steps(schedule, n_steps: int, eps: float):
    """``(t_k, h_k)`` for ``k = 0..n_steps−1`` as float64 NumPy arrays, from :func:`closed_form.reverse_time_grid`."""
    grid = reverse_time_grid(schedule, n_steps, eps)
    return grid[:-1], grid[:-1] - grid[1:]


def check_start(start, dim):
    """Validate ``start``: ``"standard"`` (``N(0, I)``, the paper's) or a distribution with ``sample(key, shape)``
    and ``dim`` (a :class:`closed_form.Gaussian` such as ``π_T`` or ``Q_T``, or a mixture). Returns the dimension."""
    if isinstance(start, str):
        if start not in START_NAMES:
            raise CatcompError(
                f"unknown start {start!r}; pass 'standard' for N(0, I) or a distribution such as "
                "start_law(composition, schedule, 'path') (π_T) or start_law(..., 'target') (Q_T)."
            )
        if dim is None:
            raise CatcompError(
                "start='standard' needs the dimension, and these score functions do not declare one (.dim); pass "
                "start=Gaussian.standard(d) instead."
            )
        return dim
    if not (hasattr(start, "sample") and hasattr(start, "dim")):
        raise CatcompError(f"start must be 'standard' or a distribution with .sample and .dim, got {type(start).__name__}.")
    if dim is not None and start.dim != dim:
        raise ShapeMismatchError(f"start has dimension {start.dim} but the score functions have dimension {dim}.")
    return int(start.dim)


def draw_start(key, start, shape, dim, dtype=jnp.float64):
    """``shape + (dim,)`` draws from the start law (``"standard"`` or ``None``: ``N(0, I)``), drawn in float64 and
    returned as ``dtype``."""
    if start is None or isinstance(start, str):
        x = jax.random.normal(key, tuple(shape) + (dim,), dtype=jnp.float64)
    else:
        x = jnp.asarray(start.sample(key, tuple(shape)))
    return x.astype(dtype)


def em_move(x, drift_score, h, beta, z):
    """One Euler–Maruyama step of the reverse SDE with composed score ``drift_score`` at ``t`` (see module doc)."""
    return x + h * (0.5 * beta * x + beta * drift_score) + jnp.sqrt(beta * h) * z


def mutate(model, keys: StepKeys, x, drift_score, t, h):
    r"""The move of one step from ``t`` to ``t − h``: Euler–Maruyama, then the corrector (if any) at ``t − h``.

    .. math:: x' = x + h\big(\tfrac12 β(t) x + β(t) S\big) + \sqrt{β(t) h}\, z,\qquad z \sim N(0, I),

    with ``z`` drawn from ``keys.noise`` (shape and dtype of ``x``, sharded along its first axis by
    ``model.sharding``, by ``model.noise``) and ``S = drift_score``, the composed score at ``(x, t)``; then
    ``model.corrector.n_steps`` Langevin moves (ULA or MALA, keys from ``keys.corrector``) toward ``π_{t−h}`` with
    the model's composed score and log density. ``model`` is a :class:`verify.samplers.model.FKCModel`; FKC's
    kernels and the naive sampler all move with this function.

    Returns
    -------
    x' : array, the shape of ``x``
    acceptance : scalar array or None
        The corrector's mean acceptance rate (1 for ULA); ``None`` without a corrector.
    """
    beta = model.schedule.beta(t)
    z = constrain(standard_normal(keys.noise, x.shape, model.noise, x.dtype, noise_offset(model, x.shape)),
                  model.sharding)
    x = em_move(x, drift_score, h, beta, z)
    acceptance = None
    if model.corrector is not None:
        x, acceptance = apply_corrector(keys.corrector, model.corrector, x, t - h, model.composed_score,
                                        model.log_density, model.noise)
    return x, acceptance


def noise_offset(model, shape):
    """The flat index, in the whole run's ``(n_swarms, ...)`` array, of the first element of an array of ``shape`` for
    the block of swarms that starts at ``model.swarm_offset`` (``0`` for a model that is not a block, and always for
    threefry noise, which cannot draw a block)."""
    if model.noise == "threefry" or model.swarm_offset is None:
        return 0
    return jnp.asarray(model.swarm_offset).astype(jnp.uint64) * np.uint64(np.prod(shape[1:], dtype=np.int64))


def composed(scores, weights, x, t):
    """``([s_i(x, t)], Σ_i w_i s_i(x, t))``; zero weights are skipped in the sum."""
    s = [sc(x, t) for sc in scores]
    total = None
    for w, si in zip(weights, s):
        if w == 0.0:
            continue
        term = si if w == 1.0 else w * si
        total = term if total is None else total + term
    return s, total


def composed_score_only(scores, weights, x, t):
    """``Σ_i w_i s_i(x, t)`` (bind ``scores`` and ``weights`` with ``functools.partial``)."""
    return composed(scores, weights, x, t)[1]


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CatcompError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)

