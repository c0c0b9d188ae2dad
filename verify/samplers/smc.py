r"""Feynman–Kac corrector (FKC) sequential Monte Carlo for the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}``.

Feynman–Kac model (Skreta et al. 2025; derivation in ``paper_notes.md``, "Feynman–Kac corrector weights"):

* **mutation** — each particle takes an Euler–Maruyama step of the naive reverse SDE
  ``dx = [½βx + βS] dτ + √β dW``, ``S = Σ_i w_i s_i``, ``s_i = ∇log q^i_t`` (:mod:`verify.discretization`);
* **potential** — its log weight grows, per unit reverse time, by

  .. math:: g(x, t) = \tfrac12 β(t)\Big[(1 − \textstyle\sum_i w_i)\,d + \lVert S\rVert^2 − \sum_i w_i \lVert s_i\rVert^2\Big],

  so that the weighted particle law follows the *unnormalized* path ``γ_t = Π_i (q^i_t)^{w_i}``: for any ``φ``,
  ``E[W_t φ(x_t)] = ∫ γ_t φ / Z_{t_0}`` when the particles start from ``π_{t_0}``;
* **resampling** — within each swarm, when the effective sample size falls below ``ess_threshold · K`` (every step
  when ``ess_threshold`` is ``None``, as in the paper).

Step ``k`` on the grid (``t_k``, ``h_k``): evaluate scores at ``(x, t_k)``; add the left-point increment
``h_k g(x, t_k)`` (clipped to ``±weight_clip`` if given, as the authors' ``g_clip``); update the log normalizing
constant; resample; move with the (resampled) composed score; optionally apply an MCMC corrector at ``t_{k+1}``.
After the last step each swarm returns one particle drawn with probability proportional to its final weight — a
uniform pick when the last step resampled — never a fixed slot (a fixed slot is biased; ``tests/test_samplers.py``).

**Consistency (declared, tested).** As ``K → ∞`` each swarm's output converges in law to the Euler–Maruyama
discretization of the FK-weighted path, which tends to ``π_{t_min}`` as the step size goes to zero; the weighted
cloud after ``m`` steps targets ``π_{grid[m]}``. Started from ``π_{t_0}`` (:func:`verify.start_law` ``"path"``),
``Ẑ = exp(log_normalizer)`` is for every ``K`` an unbiased estimate (up to time discretization) of

.. math:: Z(π_{t_{end}}) / Z(π_{t_0}),\qquad Z(π_t) = ∫ Π_i (q^i_t)^{w_i} dx,

with ``q^i_t`` the normalized diffused sources and ``t_end`` the last time reached. From another start (the paper's
``N(0, I)``) the same quantity is estimated with an initialization error that vanishes as ``N(0, I) → π_{t_0}``.
With ``n_particles = 1`` no resampling happens and the samples are exactly those of
:func:`verify.naive_sde_sample` with the same key.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from closed_form.errors import CatcompError, NonFiniteInputError
from verify.samplers.discretization import (
    check_positive_int,
    composed,
    composed_score_only,
    em_move,
    prepare,
    time_steps,
    unpack,
)
from verify.samplers.mcmc import MALA, apply_corrector
from verify.samplers.noise import standard_normal
from verify.samplers.resampling import get_resampler
from verify.samplers.sharding import constrain, swarm_sharding
from verify.samplers.staging import jit_sampler


class FKCResult(NamedTuple):
    """Output of :func:`fkc_sample`.

    Attributes
    ----------
    samples : (n_swarms, d)
        One particle per swarm, drawn with probability proportional to its final weight.
    particles : (n_swarms, K, d)
        The final particle clouds.
    log_weights : (n_swarms, K)
        Their final normalized log weights (``logsumexp`` over particles is 0).
    log_normalizer : (n_swarms,)
        Per-swarm ``log Ẑ`` (module doc: estimates ``log Z(π_{t_end}) − log Z(π_{t_0})``).
    ess : (n_steps_run,)
        Effective sample size per step (after the weight increment, before resampling), mean over swarms.
    n_resampling : (n_swarms,)
        Resampling events per swarm.
    acceptance : (n_steps_run,) or None
        Mean MALA acceptance rate per step (1 for ULA), ``None`` without a corrector.
    """

    samples: jax.Array
    particles: jax.Array
    log_weights: jax.Array
    log_normalizer: jax.Array
    ess: jax.Array
    n_resampling: jax.Array
    acceptance: jax.Array | None


class FKCState(NamedTuple):
    """The scan carry: particles ``(S, K, d)``, normalized log weights ``(S, K)``, ``log Ẑ`` and resampling counts
    ``(S,)``."""

    particles: jax.Array
    log_weights: jax.Array
    log_normalizer: jax.Array
    n_resampling: jax.Array


class _Config(NamedTuple):
    weights: tuple
    schedule: object
    n_swarms: int
    n_particles: int
    n_steps: int
    stop_after: int
    eps: float
    dim: int
    resampling: str
    ess_threshold: float | None
    weight_clip: float | None
    sharding: object
    noise: str
    variant: str = "catcomp"
    g_clip: float | None = None


#: ``fkc_sample``'s variants: catcomp's left-point weights, and the authors' sampler (``variant="authors"``).
FKC_VARIANTS = ("catcomp", "authors")

#: The authors' clip of the weight rate ``g`` (their ``g_clip``).
AUTHORS_G_CLIP = 15.0


def fkc_log_weight_rate(source_scores, composed_score, weights, beta, dim: int):
    r"""``g = ½β[(1 − Σ_i w_i) d + ‖S‖² − Σ_i w_i ‖s_i‖²]`` per particle (module doc), shape ``S.shape[:-1]``.

    ``source_scores`` is the list of ``s_i`` (each ``(..., d)``), ``composed_score`` is ``S = Σ_i w_i s_i``.
    """
    quad = jnp.sum(composed_score**2, axis=-1)
    for w, s in zip(weights, source_scores):
        if w != 0.0:
            quad = quad - w * jnp.sum(s**2, axis=-1)
    return 0.5 * beta * ((1.0 - math.fsum(weights)) * dim + quad)


def fkc_sample(key, scores, weights, schedule, n_swarms: int, n_particles: int, n_steps: int = 500,
               resampling: str = "systematic", ess_threshold=None, weight_clip=None, start="standard", *,
               eps: float = 1e-5, corrector=None, stop_after: int | None = None, noise: str = "hash",
               variant: str = "catcomp", g_clip="default") -> FKCResult:
    r"""Feynman–Kac corrected sampling of ``π_t`` with ``n_swarms`` independent swarms of ``n_particles`` each.

    Parameters
    ----------
    key : jax.random key
    scores : sequence of score functions ``s_i(x, t)`` (:mod:`verify.scores`)
    weights : sequence of float, one per score
    schedule : VPSchedule or CosineSchedule
    n_swarms, n_particles, n_steps : int
        ``n_particles = 1`` is the naive sampler.
    resampling : ``"systematic"`` (the paper's) or ``"multinomial"``
    ess_threshold : None or float in ``[0, 1]``
        Resample a swarm when its ESS falls below ``ess_threshold · n_particles``; ``None`` resamples every step
        (the paper's), ``0`` never.
    weight_clip : None or float > 0
        Clip each step's log-weight increment ``h_k g`` to ``[−weight_clip, weight_clip]`` (the authors' ``g_clip``
        is 15); ``None`` does not clip. Clipping biases the weights.
    start : ``"standard"`` or a distribution (:func:`verify.start_law`)
    eps : float
        Clamp of the time grid.
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
    stop_after : int, optional
        Run only the first ``stop_after`` steps of the ``n_steps`` grid, ending at ``grid[stop_after]``.
    noise : ``"hash"`` (default) or ``"threefry"``
        How the Gaussian increments are drawn (:mod:`verify.noise`).
    variant : ``"catcomp"`` (default) or ``"authors"``
        ``"authors"`` reproduces the paper authors' sampler: step ``k`` first moves with the scores at
        ``(x_k, t_k)``, then evaluates ``g`` at the *new* point and time ``(x_{k+1}, t_{k+1})``, clips the *rate*
        ``g`` to ``[−g_clip, g_clip]`` and adds ``h_k · g`` before resampling (the scores at the new point are
        carried to the next move, so each step still evaluates the scores once). catcomp's default adds the
        left-point increment ``h_k g(x_k, t_k)`` before the move. Their clip bounds each increment by
        ``h_k g_clip`` (0.03 at 500 steps), whereas ``weight_clip`` bounds the increment itself, so
        ``weight_clip = 15`` almost never fires and does not reproduce them. No corrector with this variant (the
        authors use none). Their code steps by ``1/n_steps`` throughout; the grid here differs by the clamp ``eps``
        at the first and last step. Their potential's divergence term is ``(Σ_i w_i − 1)·d·β/2``, the opposite sign of
        the one derived here; with weights summing to one (all their experiments) the term vanishes and the two
        agree.
    g_clip : float or None
        The clip of the rate ``g`` for ``variant="authors"``; default :data:`AUTHORS_G_CLIP` (15), ``None`` for no
        clip. Only valid with ``variant="authors"``.

    Returns
    -------
    FKCResult

    Raises
    ------
    CatcompError
        Non-positive counts, an unknown resampling scheme or start, an ESS threshold outside ``[0, 1]``, a
        non-positive clip, ``stop_after`` outside ``[1, n_steps]``, an unknown variant, ``g_clip`` without
        ``variant="authors"``, or ``variant="authors"`` with ``weight_clip`` or a corrector.
    ShapeMismatchError, NonFiniteInputError
        Score/weight count mismatch; NaN weights, threshold or clip.
    """
    n_swarms = check_positive_int(n_swarms, "n_swarms")
    n_particles = check_positive_int(n_particles, "n_particles")
    n_steps = check_positive_int(n_steps, "n_steps")
    stop_after = n_steps if stop_after is None else check_positive_int(stop_after, "stop_after")
    if stop_after > n_steps:
        raise CatcompError(f"stop_after must lie in [1, n_steps = {n_steps}], got {stop_after}.")
    get_resampler(resampling)
    if ess_threshold is not None:
        ess_threshold = float(ess_threshold)
        if not math.isfinite(ess_threshold):
            raise NonFiniteInputError(f"ess_threshold is {ess_threshold}; pass None or a number in [0, 1].")
        if not 0.0 <= ess_threshold <= 1.0:
            raise CatcompError(f"ess_threshold must be None or lie in [0, 1], got {ess_threshold}.")
    if weight_clip is not None:
        weight_clip = float(weight_clip)
        if math.isnan(weight_clip):
            raise NonFiniteInputError("weight_clip is NaN; pass None or a positive number.")
        if weight_clip <= 0:
            raise CatcompError(f"weight_clip must be None or positive, got {weight_clip}.")
    g_clip = _check_variant(variant, g_clip, weight_clip, corrector)
    setup = prepare(scores, weights, schedule, n_steps, start, eps, corrector, noise)
    cfg = _Config(setup.weights, schedule, n_swarms, n_particles, n_steps, stop_after, setup.eps, setup.dim,
                  resampling, ess_threshold, weight_clip, swarm_sharding(n_swarms), noise, variant, g_clip)
    return _fkc(key, setup.arrays, setup.static, cfg)


def _check_variant(variant, g_clip, weight_clip, corrector):
    """Validate ``variant`` and ``g_clip``; return the clip to use (``None`` for the default variant)."""
    if variant not in FKC_VARIANTS:
        raise CatcompError(f"unknown variant {variant!r}; valid variants are {', '.join(FKC_VARIANTS)}.")
    if variant == "catcomp":
        if not (isinstance(g_clip, str) and g_clip == "default"):
            raise CatcompError("g_clip clips the weight rate of variant='authors' only; for catcomp's variant clip "
                               "the increment with weight_clip.")
        return None
    if weight_clip is not None:
        raise CatcompError("variant='authors' clips the rate with g_clip; weight_clip must be None with it.")
    if corrector is not None:
        raise CatcompError("variant='authors' runs without a corrector (the authors use none); pass corrector=None.")
    if isinstance(g_clip, str) and g_clip == "default":
        return AUTHORS_G_CLIP
    if g_clip is None:
        return None
    g_clip = float(g_clip)
    if math.isnan(g_clip):
        raise NonFiniteInputError("g_clip is NaN; pass None or a positive number.")
    if g_clip <= 0:
        raise CatcompError(f"g_clip must be None or positive, got {g_clip}.")
    return g_clip


def _fkc(key, arrays, static, cfg: _Config) -> FKCResult:
    n_s, n_p, sh = cfg.n_swarms, cfg.n_particles, cfg.sharding
    scores, corrector, keys, x0 = unpack(key, arrays, static, (n_s, n_p), cfg.dim, sh)
    resampler = get_resampler(cfg.resampling)
    never = n_p == 1 or cfg.ess_threshold == 0.0
    always = cfg.ess_threshold is None
    score_fn = partial(composed_score_only, scores, cfg.weights)
    log_density = corrector.log_density if isinstance(corrector, MALA) else None
    log_k = math.log(n_p)

    def reweight_resample(k, x, s_comp, log_w, log_z, n_res, inc):
        """Add the increments, update ``log Ẑ``, resample ``(x, s_comp)`` within each swarm; returns them with the
        per-swarm ESS (before resampling)."""
        # log Σ_j W_j e^{inc_j} with W the normalized weights: this step's factor of the normalizing constant.
        # One exponential per particle serves the normalizer, the new weights, the ESS and the resampler.
        log_w = log_w + inc
        top = jnp.max(log_w, axis=-1, keepdims=True)
        e = jnp.exp(log_w - top)
        total = jnp.sum(e, axis=-1, keepdims=True)
        w_norm = e / total
        log_total = top + jnp.log(total)
        log_z = log_z + log_total[:, 0]
        log_w = log_w - log_total
        ess = 1.0 / jnp.sum(w_norm**2, axis=-1)
        if not never:
            idx = resampler(jax.random.fold_in(keys.resample, k), w_norm, n_p)  # one independent draw per swarm
            if not always:
                do = ess < cfg.ess_threshold * n_p
                idx = jnp.where(do[:, None], idx, jnp.arange(n_p, dtype=idx.dtype))
            x = jnp.take_along_axis(x, idx[..., None], axis=1)
            s_comp = jnp.take_along_axis(s_comp, idx[..., None], axis=1)
            if always:
                log_w = jnp.full_like(log_w, -log_k)
                n_res = n_res + 1
            else:
                log_w = jnp.where(do[:, None], -log_k, log_w)
                n_res = n_res + do.astype(n_res.dtype)
        return x, s_comp, log_w, log_z, n_res, ess

    def step(state: FKCState, inputs):
        k, t, h = inputs
        x, log_w, log_z, n_res = state
        beta = cfg.schedule.beta(t)
        s, s_comp = composed(scores, cfg.weights, x, t)
        inc = h * fkc_log_weight_rate(s, s_comp, cfg.weights, beta, cfg.dim)
        if cfg.weight_clip is not None:
            inc = jnp.clip(inc, -cfg.weight_clip, cfg.weight_clip)
        x, s_comp, log_w, log_z, n_res, ess = reweight_resample(k, x, s_comp, log_w, log_z, n_res, inc)
        z = constrain(standard_normal(jax.random.fold_in(keys.noise, k), x.shape, cfg.noise), sh)
        x = em_move(x, s_comp, h, beta, z)
        acc = None
        if corrector is not None:
            x, acc = apply_corrector(jax.random.fold_in(keys.corrector, k), corrector, x, t - h, score_fn,
                                     log_density, cfg.noise)
        state = FKCState(constrain(x, sh), constrain(log_w, sh), constrain(log_z, sh), constrain(n_res, sh))
        return state, (jnp.mean(ess), acc)

    def step_authors(carry, inputs):
        # The authors' order: move with the scores carried from the last step (at x_k, t_k), then weight by the
        # clipped rate at (x_{k+1}, t_{k+1}) and resample; the new scores ride along for the next move.
        state, s_comp = carry
        k, t, h = inputs
        x, log_w, log_z, n_res = state
        z = constrain(standard_normal(jax.random.fold_in(keys.noise, k), x.shape, cfg.noise), sh)
        x = em_move(x, s_comp, h, cfg.schedule.beta(t), z)
        t_next = t - h
        s, s_comp = composed(scores, cfg.weights, x, t_next)
        g = fkc_log_weight_rate(s, s_comp, cfg.weights, cfg.schedule.beta(t_next), cfg.dim)
        if cfg.g_clip is not None:
            g = jnp.clip(g, -cfg.g_clip, cfg.g_clip)
        x, s_comp, log_w, log_z, n_res, ess = reweight_resample(k, x, s_comp, log_w, log_z, n_res, h * g)
        state = FKCState(constrain(x, sh), constrain(log_w, sh), constrain(log_z, sh), constrain(n_res, sh))
        return (state, constrain(s_comp, sh)), (jnp.mean(ess), None)

    init = FKCState(
        x0,
        constrain(jnp.full((n_s, n_p), -log_k, dtype=x0.dtype), sh),
        constrain(jnp.zeros(n_s, dtype=x0.dtype), sh),
        constrain(jnp.zeros(n_s, dtype=jnp.int32), sh),
    )
    t, h = time_steps(cfg.schedule, cfg.n_steps, cfg.eps)
    m = cfg.stop_after
    xs = (jnp.arange(m), jnp.asarray(t[:m]), jnp.asarray(h[:m]))
    if cfg.variant == "authors":
        s0 = composed_score_only(scores, cfg.weights, x0, jnp.asarray(t[0]))
        (final, _), (ess, acc) = jax.lax.scan(step_authors, (init, constrain(s0, sh)), xs)
    else:
        final, (ess, acc) = jax.lax.scan(step, init, xs)
    pick = jax.random.categorical(keys.pick, final.log_weights, axis=-1)
    samples = jnp.take_along_axis(final.particles, pick[:, None, None], axis=1)[:, 0, :]
    return FKCResult(samples, final.particles, final.log_weights, final.log_normalizer, ess, final.n_resampling,
                     acc)


_fkc = jit_sampler(_fkc, ("static", "cfg"))

