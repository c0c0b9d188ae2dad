r"""What every reverse-time sampler here shares: the time grid, the start draw, the Euler–Maruyama move (the
*mutation* of the Feynman–Kac corrector), the key layout.

Grid (the paper's): :func:`closed_form.reverse_time_grid` — ``n_steps`` uniform steps from ``T`` to ``0``, clamped
to ``[eps, T − eps]``. Step ``k`` goes from ``t_k = grid[k]`` to ``grid[k + 1]`` with ``h_k = grid[k] − grid[k+1]``
and evaluates drift and scores at ``t_k``. The Euler–Maruyama move of the reverse SDE
``dx = [½βx + βS] dτ + √β dW`` with ``β = β(t_k)`` is

.. math:: x' = x + h_k\big(\tfrac12 β x + β S(x, t_k)\big) + \sqrt{β h_k}\, z,\qquad z \sim N(0, I).

followed, optionally, by MCMC corrector moves toward ``π_{t_{k+1}}`` (:func:`mutate`; the naive sampler and FKC
both move with it).

Key layout: a sampler splits its key into five streams — start, noise, resampling, final pick, corrector — and
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
from verify.samplers.mcmc import MALA, apply_corrector, check_corrector
from verify.samplers.noise import check_noise_method, standard_normal
from verify.samplers.scores import check_scores_and_weights, infer_dim, path_log_density
from verify.samplers.sharding import constrain
from verify.samplers.staging import Static, combine, partition

START_NAMES = ("standard",)


class Keys(NamedTuple):
    """The five independent key streams of one sampler call."""

    start: jax.Array
    noise: jax.Array
    resample: jax.Array
    pick: jax.Array
    corrector: jax.Array


def split_keys(key) -> Keys:
    return Keys(*jax.random.split(key, 5))


class StepKeys(NamedTuple):
    """The keys of one step: Gaussian increments, resampling, corrector."""

    noise: jax.Array
    resample: jax.Array
    corrector: jax.Array


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


def draw_start(key, start, shape, dim):
    """``shape + (dim,)`` draws from the start law (float64)."""
    if isinstance(start, str):
        return jax.random.normal(key, tuple(shape) + (dim,), dtype=jnp.float64)
    return start.sample(key, tuple(shape))


def em_move(x, drift_score, h, beta, z):
    """One Euler–Maruyama step of the reverse SDE with composed score ``drift_score`` at ``t`` (see module doc)."""
    return x + h * (0.5 * beta * x + beta * drift_score) + jnp.sqrt(beta * h) * z


class Mutation(NamedTuple):
    """What the move of a step needs besides the particles: the schedule, how to draw the noise, the sharding of
    the leading (swarm) axis, and the optional corrector with the composed score (and, for MALA, log density) it
    targets.

    Attributes
    ----------
    schedule : VPSchedule or CosineSchedule
    noise : ``"hash"`` or ``"threefry"`` (:mod:`verify.samplers.noise`)
    sharding : jax.sharding.Sharding or None
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
    score_fn : callable ``(x, t) -> S(x, t)``, used by the corrector only
    log_density : callable ``(x, t) -> log γ_t(x)`` or None, used by MALA only
    """

    schedule: object
    noise: str = "hash"
    sharding: object = None
    corrector: object = None
    score_fn: object = None
    log_density: object = None


def mutate(mutation: Mutation, keys: StepKeys, x, drift_score, t, h):
    r"""The move of one step from ``t`` to ``t − h``: Euler–Maruyama, then the corrector (if any) at ``t − h``.

    .. math:: x' = x + h\big(\tfrac12 β(t) x + β(t) S\big) + \sqrt{β(t) h}\, z,\qquad z \sim N(0, I),

    with ``z`` drawn from ``keys.noise`` (shape of ``x``, sharded along its first axis) and ``S = drift_score``,
    the composed score at ``(x, t)``; then ``mutation.corrector.n_steps`` Langevin moves (ULA or MALA, keys from
    ``keys.corrector``) toward ``π_{t−h}``.

    Returns
    -------
    x' : array, the shape of ``x``
    acceptance : scalar array or None
        The corrector's mean acceptance rate (1 for ULA); ``None`` without a corrector.
    """
    beta = mutation.schedule.beta(t)
    z = constrain(standard_normal(keys.noise, x.shape, mutation.noise), mutation.sharding)
    x = em_move(x, drift_score, h, beta, z)
    acceptance = None
    if mutation.corrector is not None:
        x, acceptance = apply_corrector(keys.corrector, mutation.corrector, x, t - h, mutation.score_fn,
                                        mutation.log_density, mutation.noise)
    return x, acceptance


class Setup(NamedTuple):
    """Validated inputs of a sampler call: the traced and static parts of ``(scores, start, corrector)``, the
    weights as Python floats, and the problem's dimension."""

    arrays: tuple
    static: Static
    weights: tuple
    n_steps: int
    eps: float
    dim: int


def prepare(scores, weights, schedule, n_steps, start, eps, corrector, noise) -> Setup:
    """Validate what every sampler takes (raising the errors its docstring lists) and split it for ``jax.jit``.

    A :class:`verify.MALA` corrector without a log density gets the composed one of the score objects.
    """
    scores, weights = check_scores_and_weights(scores, weights)
    n_steps = check_positive_int(n_steps, "n_steps")
    dim = check_start(start, infer_dim(scores))
    check_corrector(corrector)
    check_noise_method(noise)
    if isinstance(corrector, MALA) and corrector.log_density is None:
        corrector = corrector._replace(log_density=path_log_density(scores, weights))
    time_steps(schedule, n_steps, eps)  # validates eps
    arrays, static = partition((scores, start, corrector))
    return Setup(arrays, static, weights, n_steps, float(eps), dim)


def unpack(key, arrays, static, shape, dim, sharding):
    """Inside the traced sampler: ``(scores, corrector, keys, x0)`` with ``x0`` of ``shape + (dim,)`` from the start
    law, sharded along its first axis."""
    scores, start, corrector = combine(arrays, static)
    keys = split_keys(key)
    x0 = constrain(draw_start(keys.start, start, shape, dim), sharding)
    return scores, corrector, keys, x0


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

