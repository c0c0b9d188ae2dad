r"""Naive composition: the reverse SDE and the probability-flow ODE driven by ``S = Σ_i w_i ∇log q^i_t``.

``S`` is the score of the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}``, not of the diffused target ``Q_t``; the
samplers here therefore sample the target only when ``π_t = Q_t`` for all ``t`` (factorized conditionals). What they
are consistent for is declared below and tested against the exact laws of :mod:`closed_form.laws`.

* :func:`naive_sde_sample` — Euler–Maruyama (strong order ½, weak order 1) on the paper's grid
  (:mod:`verify.samplers.discretization`); with affine scores its output law is exactly
  :func:`closed_form.laws.euler_maruyama_law` of :meth:`Composition.naive_field`.
* :func:`naive_ode_sample` — Heun's method (explicit trapezoidal rule, a second-order Runge–Kutta method) for
  ``dx/dτ = ½β(t)(x + S(x, t))``:

  .. math:: k_1 = f(x_k, t_k),\quad k_2 = f(x_k + h_k k_1, t_{k+1}),\quad x_{k+1} = x_k + \tfrac{h_k}{2}(k_1 + k_2),

  global error ``O(h²)`` (:data:`ODE_ORDER`); it converges to :func:`closed_form.laws.ode_law`.

Each call is one jitted ``lax.scan`` over the steps, vectorized over samples, float64, with the sample axis sharded
over all JAX devices (:mod:`verify.samplers.sharding`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from verify.samplers.discretization import (
    Mutation,
    check_positive_int,
    composed_score_only,
    mutate,
    prepare,
    step_keys,
    time_steps,
    unpack,
)
from verify.samplers.mcmc import MALA
from verify.samplers.sharding import constrain, swarm_sharding
from verify.samplers.staging import jit_sampler

#: Global order of accuracy of :func:`naive_ode_sample` (Heun) and weak order of :func:`naive_sde_sample` (EM).
ODE_ORDER = 2
SDE_WEAK_ORDER = 1


class _Config(NamedTuple):
    weights: tuple
    schedule: object
    n: int
    n_steps: int
    eps: float
    dim: int
    sharding: object
    noise: str


def _prepare(scores, weights, schedule, n, n_steps, start, eps, corrector, noise):
    n = check_positive_int(n, "n")
    setup = prepare(scores, weights, schedule, n_steps, start, eps, corrector, noise)
    cfg = _Config(setup.weights, schedule, n, setup.n_steps, setup.eps, setup.dim, swarm_sharding(n), noise)
    return setup.arrays, setup.static, cfg


def naive_sde_sample(key, scores, weights, schedule, n: int, n_steps: int = 500, start="standard", *,
                     eps: float = 1e-5, corrector=None, noise: str = "hash"):
    r"""``n`` samples of the naive composed reverse SDE by Euler–Maruyama (module doc), shape ``(n, d)``.

    Parameters
    ----------
    key : jax.random key
    scores : sequence of score functions ``s_i(x, t)`` (:mod:`verify.samplers.scores`)
    weights : sequence of float, one per score
    schedule : VPSchedule or CosineSchedule
    n, n_steps : int
    start : ``"standard"`` (``N(0, I)``, the paper's) or a distribution (e.g. :func:`closed_form.start_law`)
    eps : float
        Clamp of the time grid (the paper's ``1e-5``).
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
        Langevin moves toward ``π_{t_{k+1}}`` after each step.
    noise : ``"hash"`` (default) or ``"threefry"``
        How the Gaussian increments are drawn (:mod:`verify.samplers.noise`).

    Raises
    ------
    ShapeMismatchError, NonFiniteInputError, CatcompError
        For mismatched score/weight counts, NaN weights, non-positive ``n``/``n_steps``, an unknown start.
    """
    arrays, static, cfg = _prepare(scores, weights, schedule, n, n_steps, start, eps, corrector, noise)
    return _naive_sde(key, arrays, static, cfg)


def naive_ode_sample(key, scores, weights, schedule, n: int, n_steps: int = 500, start="standard", *,
                     eps: float = 1e-5):
    r"""``n`` samples of the naive composed probability-flow ODE by Heun's method (module doc), shape ``(n, d)``.

    The only randomness is the start draw (same stream as :func:`naive_sde_sample`). Parameters as there.
    """
    arrays, static, cfg = _prepare(scores, weights, schedule, n, n_steps, start, eps, None, "hash")
    return _naive_ode(key, arrays, static, cfg)


def _scan_inputs(cfg):
    t, h = time_steps(cfg.schedule, cfg.n_steps, cfg.eps)
    return jnp.arange(cfg.n_steps), jnp.asarray(t), jnp.asarray(h)


def _naive_sde(key, arrays, static, cfg: _Config):
    # Shape (n, 1, d): the same draws as FKC with one particle per swarm.
    scores, corrector, keys, x = unpack(key, arrays, static, (cfg.n, 1), cfg.dim, cfg.sharding)
    score_fn = partial(composed_score_only, scores, cfg.weights)
    log_density = corrector.log_density if isinstance(corrector, MALA) else None
    # The same move as FKC's mutation (verify.samplers.discretization.mutate), without the weights.
    mutation = Mutation(cfg.schedule, cfg.noise, cfg.sharding, corrector, score_fn, log_density)

    def step(x, inputs):
        k, t, h = inputs
        x, _ = mutate(mutation, step_keys(keys, k), x, score_fn(x, t), t, h)
        return constrain(x, cfg.sharding), None

    x, _ = jax.lax.scan(step, x, _scan_inputs(cfg))
    return x[:, 0, :]


def _naive_ode(key, arrays, static, cfg: _Config):
    scores, _, _, x = unpack(key, arrays, static, (cfg.n, 1), cfg.dim, cfg.sharding)
    score_fn = partial(composed_score_only, scores, cfg.weights)

    def velocity(x, t):
        return 0.5 * cfg.schedule.beta(t) * (x + score_fn(x, t))

    def step(x, inputs):
        _, t, h = inputs
        k1 = velocity(x, t)
        k2 = velocity(x + h * k1, t - h)
        return constrain(x + 0.5 * h * (k1 + k2), cfg.sharding), None

    x, _ = jax.lax.scan(step, x, _scan_inputs(cfg))
    return x[:, 0, :]


_naive_sde = jit_sampler(_naive_sde, ("static", "cfg"))
_naive_ode = jit_sampler(_naive_ode, ("static", "cfg"))

