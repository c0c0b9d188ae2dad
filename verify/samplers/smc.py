r"""Feynman–Kac corrector (FKC) sequential Monte Carlo for the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}``.

Feynman–Kac model (Skreta et al. 2025; derivation in ``paper_notes.md``, "Feynman–Kac corrector weights"):

* **mutation** — each particle takes an Euler–Maruyama step of the naive reverse SDE
  ``dx = [½βx + βS] dτ + √β dW``, ``S = Σ_i w_i s_i``, ``s_i = ∇log q^i_t``, then optional MCMC corrector moves
  (:func:`verify.samplers.discretization.mutate`);
* **potential** — its log weight grows, per unit reverse time, by

  .. math:: g(x, t) = \tfrac12 β(t)\Big[(1 − \textstyle\sum_i w_i)\,d + \lVert S\rVert^2 − \sum_i w_i \lVert s_i\rVert^2\Big],

  so that the weighted particle law follows the *unnormalized* path ``γ_t = Π_i (q^i_t)^{w_i}``: for any ``φ``,
  ``E[W_t φ(x_t)] = ∫ γ_t φ / Z_{t_0}`` when the particles start from ``π_{t_0}``;
* **resampling** — within each swarm, by a strategy of :mod:`verify.samplers.resampling`: :func:`always` (every step, as in
  the paper), :func:`below_ess` (when the effective sample size falls below ``c · K``) or :func:`never`.

Step ``k`` on the grid (``t_k``, ``h_k``): evaluate scores at ``(x, t_k)``; add the left-point increment
``h_k g(x, t_k)`` (clipped to ``±weight_clip`` if given, as the authors' ``g_clip``); update the log normalizing
constant; resample; move with the (resampled) composed score; optionally apply an MCMC corrector at ``t_{k+1}``.
After the last step each swarm returns one particle drawn with probability proportional to its final weight — a
uniform pick when the last step resampled — never a fixed slot (a fixed slot is biased; ``tests/test_samplers.py``).

**The kernel.** As in BlackJAX's SMC, the sampler is a state and a transition: :class:`FKCState` (particles, log
weights, ``log Ẑ``, resampling counts, and the carried composed score of the authors' ordering),
:func:`fkc_init` and :func:`fkc_step` ``(key, state, t, h, model) -> (state, FKCInfo)``, with the Feynman–Kac
parts named by :class:`FKCModel` and computed by :func:`verify.samplers.discretization.mutate` (mutation, shared with
:func:`verify.naive_sde_sample`), :func:`fkc_potential` and the resampling strategy. :func:`fkc_sample` is
:func:`fkc_init`, a ``lax.scan`` of :func:`fkc_step` over the grid, and :func:`fkc_pick`, jitted once per
configuration with the swarm axis sharded over the devices (:mod:`verify.samplers.sharding`).

**Consistency (declared, tested).** As ``K → ∞`` each swarm's output converges in law to the Euler–Maruyama
discretization of the FK-weighted path, which tends to ``π_{t_min}`` as the step size goes to zero; the weighted
cloud after ``m`` steps targets ``π_{grid[m]}``. Started from ``π_{t_0}`` (:func:`closed_form.start_law` ``"path"``),
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

from closed_form.errors import CatcompError, NonFiniteInputError, ShapeMismatchError
from verify.samplers.discretization import (
    Mutation,
    StepKeys,
    check_positive_int,
    composed,
    composed_score_only,
    mutate,
    prepare,
    step_keys,
    time_steps,
    unpack,
)
from verify.samplers.mcmc import MALA, check_corrector
from verify.samplers.noise import check_noise_method
from verify.samplers.resampling import STRATEGIES, BelowESS, always, below_ess, get_resampler, never
from verify.samplers.scores import check_scores_and_weights, infer_dim, path_log_density
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
    """The state of an FKC run between steps (the ``lax.scan`` carry of :func:`fkc_sample`).

    Attributes
    ----------
    particles : (S, K, d)
        ``S`` swarms of ``K`` particles.
    log_weights : (S, K)
        Normalized log weights: ``logsumexp`` over each swarm's particles is 0.
    log_normalizer : (S,)
        ``log Ẑ`` so far: the sum of the steps' :attr:`FKCInfo.log_normalizer_increment`.
    n_resampling : (S,) int32
        Resampling events so far.
    score : (S, K, d) or None
        The composed score ``S(x, t)`` at the particles and the current time, carried to the next move by the
        authors' ordering (``variant="authors"``); ``None`` for catcomp's ordering, which evaluates it in the step.
    """

    particles: jax.Array
    log_weights: jax.Array
    log_normalizer: jax.Array
    n_resampling: jax.Array
    score: jax.Array | None = None


class FKCInfo(NamedTuple):
    """What one :func:`fkc_step` reports, per swarm.

    Attributes
    ----------
    ess : (S,)
        Kish effective sample size ``1 / Σ_j W_j²`` of the reweighted, normalized weights ``W``, before resampling.
    resampled : (S,) bool
        Whether the swarm was resampled.
    log_normalizer_increment : (S,)
        ``log Σ_j W_j^− e^{ΔL_j}``: the log of this step's factor of ``Ẑ``, with ``W^−`` the normalized weights
        before the step and ``ΔL`` the potential's increments.
    acceptance : scalar or None
        The corrector's mean acceptance rate (1 for ULA), ``None`` without a corrector.
    """

    ess: jax.Array
    resampled: jax.Array
    log_normalizer_increment: jax.Array
    acceptance: jax.Array | None


class FKCModel(NamedTuple):
    r"""The Feynman–Kac model one :func:`fkc_step` runs (build and validate it with :func:`fkc_model`).

    Attributes
    ----------
    scores : tuple of score functions ``s_i(x, t)``
    weights : tuple of float ``w_i``
    schedule : VPSchedule or CosineSchedule
    dim : int
    resampling : :class:`verify.samplers.resampling.Always`, :class:`~verify.samplers.resampling.BelowESS` or
        :class:`~verify.samplers.resampling.Never` — the resampling strategy.
    weight_clip : float or None
        Clip of the potential's increment ``h g`` to ``[−weight_clip, weight_clip]``.
    g_clip : float or None
        Clip of the rate ``g`` to ``[−g_clip, g_clip]`` before multiplying by ``h`` (the authors').
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
        MCMC moves after the Euler–Maruyama move (a MALA corrector carries its log density).
    noise : ``"hash"`` or ``"threefry"``
    variant : ``"catcomp"`` or ``"authors"``
        The order of potential and mutation within a step (:func:`fkc_step`).
    sharding : jax.sharding.Sharding or None
        Sharding of the swarm axis (:func:`verify.samplers.sharding.swarm_sharding`).
    """

    scores: tuple
    weights: tuple
    schedule: object
    dim: int
    resampling: object
    weight_clip: float | None = None
    g_clip: float | None = None
    corrector: object = None
    noise: str = "hash"
    variant: str = "catcomp"
    sharding: object = None


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


# ------------------------------------------------------------------------------------------------ the kernel
def fkc_model(scores, weights, schedule, *, resampling=None, weight_clip=None, corrector=None, noise: str = "hash",
              variant: str = "catcomp", g_clip="default", dim: int | None = None, sharding=None) -> FKCModel:
    r"""Validate the parts of a Feynman–Kac model and bundle them for :func:`fkc_init` / :func:`fkc_step`.

    Parameters
    ----------
    scores, weights, schedule, corrector, noise, variant, weight_clip, g_clip
        As in :func:`fkc_sample`.
    resampling : strategy, optional
        :func:`verify.samplers.resampling.always` (default, with systematic resampling), :func:`~verify.samplers.resampling.below_ess`
        or :func:`~verify.samplers.resampling.never`.
    dim : int, optional
        The dimension, needed when no score declares one (``.dim``).
    sharding : jax.sharding.Sharding, optional
        Sharding of the swarm axis; ``None`` leaves placement to JAX.

    Raises
    ------
    CatcompError
        An unknown strategy, variant or noise method; a non-positive clip; ``g_clip`` without
        ``variant="authors"``; ``variant="authors"`` with ``weight_clip`` or a corrector; no dimension.
    ShapeMismatchError, NonFiniteInputError
        Score/weight count mismatch or disagreeing dimensions; NaN weights or clips.
    """
    scores, weights = check_scores_and_weights(scores, weights)
    declared = infer_dim(scores)
    if dim is None:
        if declared is None:
            raise CatcompError("these score functions do not declare a dimension (.dim); pass dim=d.")
        dim = declared
    dim = check_positive_int(dim, "dim")
    if declared is not None and dim != declared:
        raise ShapeMismatchError(f"dim = {dim} but the score functions have dimension {declared}.")
    resampling = always() if resampling is None else resampling
    if not isinstance(resampling, STRATEGIES):
        raise CatcompError(f"resampling must be always(...), below_ess(...) or never(), got "
                           f"{type(resampling).__name__}.")
    weight_clip = _check_clip(weight_clip, "weight_clip")
    g_clip = _check_variant(variant, g_clip, weight_clip, corrector)
    check_corrector(corrector)
    check_noise_method(noise)
    if isinstance(corrector, MALA) and corrector.log_density is None:
        corrector = corrector._replace(log_density=path_log_density(scores, weights))
    return FKCModel(scores, weights, schedule, dim, resampling, weight_clip, g_clip, corrector, noise, variant,
                    sharding)


def fkc_potential(model: FKCModel, x, t, h):
    r"""The potential's log-weight increment over a step of length ``h`` evaluated at ``(x, t)``, and ``S(x, t)``.

    .. math:: ΔL = \operatorname{clip}_{c_L}\!\big(h \cdot \operatorname{clip}_{c_g}(g(x, t))\big),

    with ``g`` the rate of the module doc (:func:`fkc_log_weight_rate`), ``c_g = model.g_clip`` and
    ``c_L = model.weight_clip`` (each clip skipped when ``None``). Returns ``(ΔL, S)``, shapes ``x.shape[:-1]`` and
    ``x.shape``; the composed score is returned so that the move reuses it (one score evaluation per step).
    """
    s, s_comp = composed(model.scores, model.weights, x, t)
    g = fkc_log_weight_rate(s, s_comp, model.weights, model.schedule.beta(t), model.dim)
    if model.g_clip is not None:
        g = jnp.clip(g, -model.g_clip, model.g_clip)
    increment = h * g
    if model.weight_clip is not None:
        increment = jnp.clip(increment, -model.weight_clip, model.weight_clip)
    return increment, s_comp


def _mutation(model: FKCModel) -> Mutation:
    corrector = model.corrector
    log_density = corrector.log_density if isinstance(corrector, MALA) else None
    return Mutation(model.schedule, model.noise, model.sharding, corrector,
                    partial(composed_score_only, model.scores, model.weights), log_density)


def _reweight(log_weights, increment):
    r"""``L ← L + ΔL`` renormalized, with the normalized weights ``W``, ``log Σ_j e^{L_j + ΔL_j}`` (the step's
    factor of ``Ẑ``, since ``L`` was normalized) and the ESS ``1 / Σ_j W_j²``."""
    # One exponential per particle serves the normalizer, the new weights, the ESS and the resampler.
    log_w = log_weights + increment
    top = jnp.max(log_w, axis=-1, keepdims=True)
    e = jnp.exp(log_w - top)
    total = jnp.sum(e, axis=-1, keepdims=True)
    w_norm = e / total
    log_total = top + jnp.log(total)
    ess = 1.0 / jnp.sum(w_norm**2, axis=-1)
    return log_w - log_total, w_norm, log_total[..., 0], ess


def fkc_init(particles, model: FKCModel, t=None) -> FKCState:
    r"""The state before the first step: ``particles`` ``(S, K, d)`` with equal weights ``−log K``, ``log Ẑ = 0``,
    no resampling; for ``variant="authors"`` also the composed score at ``(particles, t)``, ``t`` the first grid
    time (required then, ignored otherwise)."""
    sh = model.sharding
    particles = constrain(particles, sh)
    n_swarms, n_particles = particles.shape[-3], particles.shape[-2]
    score = None
    if model.variant == "authors":
        if t is None:
            raise CatcompError("variant='authors' evaluates the scores at the first grid time; pass t=grid[0].")
        score = constrain(composed_score_only(model.scores, model.weights, particles, jnp.asarray(t)), sh)
    return FKCState(
        particles,
        constrain(jnp.full((n_swarms, n_particles), -math.log(n_particles), dtype=particles.dtype), sh),
        constrain(jnp.zeros(n_swarms, dtype=particles.dtype), sh),
        constrain(jnp.zeros(n_swarms, dtype=jnp.int32), sh),
        score,
    )


def fkc_step(key, state: FKCState, t, h, model: FKCModel) -> tuple[FKCState, FKCInfo]:
    r"""One FKC step from ``t`` to ``t − h``: potential, reweighting, resampling, mutation.

    catcomp's ordering (``model.variant == "catcomp"``): with ``S`` and ``ΔL = fkc_potential(x, t, h)`` at the
    current particles (the left point),

    .. math:: L_j ← L_j + ΔL_j − \log Z_k,\quad \log Z_k = \log \textstyle\sum_j e^{L_j + ΔL_j},\quad
              \log Ẑ ← \log Ẑ + \log Z_k,

    then the strategy resamples ``(x, S)`` within each swarm, and every particle moves by
    :func:`verify.samplers.discretization.mutate` with its (resampled) ``S``. The authors' ordering first moves with the
    carried ``S(x_k, t_k)``, then evaluates ``ΔL`` and ``S`` at ``(x_{k+1}, t − h)``, reweights and resamples
    ``(x_{k+1}, S)``, and carries ``S`` to the next step.

    Parameters
    ----------
    key : jax.random key or :class:`verify.samplers.discretization.StepKeys`
        A single key is split into the step's noise, resampling and corrector keys; :func:`fkc_sample` passes
        :func:`verify.samplers.discretization.step_keys` of its streams.
    state : FKCState
    t, h : scalar
        The step's start time and length (``t − h`` is where it ends).
    model : FKCModel

    Returns
    -------
    (FKCState, FKCInfo)
    """
    keys = key if isinstance(key, StepKeys) else StepKeys(*jax.random.split(key, 3))
    sh = model.sharding
    mutation = _mutation(model)
    x, acceptance = state.particles, None
    if model.variant == "authors":
        x, _ = mutate(mutation, keys, x, state.score, t, h)
        increment, score = fkc_potential(model, x, t - h, h)
    else:
        increment, score = fkc_potential(model, x, t, h)
    log_w, w_norm, log_z_step, ess = _reweight(state.log_weights, increment)
    log_w, (x, score), resampled = model.resampling(keys.resample, w_norm, ess, log_w, (x, score))
    if model.variant == "authors":
        score = constrain(score, sh)
    else:
        x, acceptance = mutate(mutation, keys, x, score, t, h)
        score = None
    state = FKCState(constrain(x, sh), constrain(log_w, sh), constrain(state.log_normalizer + log_z_step, sh),
                     constrain(state.n_resampling + resampled.astype(state.n_resampling.dtype), sh), score)
    return state, FKCInfo(ess, resampled, log_z_step, acceptance)


def fkc_pick(key, state: FKCState):
    """One particle per swarm, drawn with probability proportional to its weight ``exp(log_weights)``; ``(S, d)``."""
    pick = jax.random.categorical(key, state.log_weights, axis=-1)
    return jnp.take_along_axis(state.particles, pick[:, None, None], axis=1)[:, 0, :]


# ------------------------------------------------------------------------------------------------ the sampler
class _Config(NamedTuple):
    weights: tuple
    schedule: object
    n_swarms: int
    n_particles: int
    n_steps: int
    stop_after: int
    eps: float
    dim: int
    resampling: object
    weight_clip: float | None
    sharding: object
    noise: str
    variant: str = "catcomp"
    g_clip: float | None = None


def fkc_sample(key, scores, weights, schedule, n_swarms: int, n_particles: int, n_steps: int = 500,
               resampling: str = "systematic", ess_threshold=None, weight_clip=None, start="standard", *,
               eps: float = 1e-5, corrector=None, stop_after: int | None = None, noise: str = "hash",
               variant: str = "catcomp", g_clip="default") -> FKCResult:
    r"""Feynman–Kac corrected sampling of ``π_t`` with ``n_swarms`` independent swarms of ``n_particles`` each.

    Parameters
    ----------
    key : jax.random key
    scores : sequence of score functions ``s_i(x, t)`` (:mod:`verify.samplers.scores`)
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
    start : ``"standard"`` or a distribution (:func:`closed_form.start_law`)
    eps : float
        Clamp of the time grid.
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
    stop_after : int, optional
        Run only the first ``stop_after`` steps of the ``n_steps`` grid, ending at ``grid[stop_after]``.
    noise : ``"hash"`` (default) or ``"threefry"``
        How the Gaussian increments are drawn (:mod:`verify.samplers.noise`).
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
    strategy = resampling_strategy(resampling, ess_threshold, n_particles)
    weight_clip = _check_clip(weight_clip, "weight_clip")
    g_clip = _check_variant(variant, g_clip, weight_clip, corrector)
    setup = prepare(scores, weights, schedule, n_steps, start, eps, corrector, noise)
    cfg = _Config(setup.weights, schedule, n_swarms, n_particles, n_steps, stop_after, setup.eps, setup.dim,
                  strategy, weight_clip, swarm_sharding(n_swarms), noise, variant, g_clip)
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
    return _check_clip(g_clip, "g_clip")


def _check_clip(clip, name):
    """``None`` or a positive float; NaN and non-positive values raise."""
    if clip is None:
        return None
    clip = float(clip)
    if math.isnan(clip):
        raise NonFiniteInputError(f"{name} is NaN; pass None or a positive number.")
    if clip <= 0:
        raise CatcompError(f"{name} must be None or positive, got {clip}.")
    return clip


def resampling_strategy(resampling: str = "systematic", ess_threshold=None, n_particles: int = 2):
    """The strategy :func:`fkc_sample`'s options name: ``ess_threshold=None`` → ``always(resampling)``, a threshold
    ``c ∈ (0, 1]`` → ``below_ess(c, resampling)``, and ``c = 0`` or one particle per swarm → ``never()``.

    Raises :class:`CatcompError` for an unknown scheme or a threshold outside ``[0, 1]``, :class:`NonFiniteInputError`
    for a NaN/inf threshold.
    """
    scheme = get_resampler(resampling)
    strategy = always(scheme) if ess_threshold is None else below_ess(ess_threshold, scheme)
    if n_particles == 1 or (isinstance(strategy, BelowESS) and strategy.threshold == 0.0):
        return never()
    return strategy


def _fkc(key, arrays, static, cfg: _Config) -> FKCResult:
    scores, corrector, keys, x0 = unpack(key, arrays, static, (cfg.n_swarms, cfg.n_particles), cfg.dim,
                                         cfg.sharding)
    model = FKCModel(scores, cfg.weights, cfg.schedule, cfg.dim, cfg.resampling, cfg.weight_clip, cfg.g_clip,
                     corrector, cfg.noise, cfg.variant, cfg.sharding)
    t, h = time_steps(cfg.schedule, cfg.n_steps, cfg.eps)
    m = cfg.stop_after

    def step(state, inputs):
        k, t_k, h_k = inputs
        state, info = fkc_step(step_keys(keys, k), state, t_k, h_k, model)
        # Only the swarm-mean ESS leaves the loop: the per-swarm info would be stored for every step.
        return state, (jnp.mean(info.ess), info.acceptance)

    init = fkc_init(x0, model, t[0])
    final, (ess, acc) = jax.lax.scan(step, init, (jnp.arange(m), jnp.asarray(t[:m]), jnp.asarray(h[:m])))
    return FKCResult(fkc_pick(keys.pick, final), final.particles, final.log_weights, final.log_normalizer, ess,
                     final.n_resampling, acc)


_fkc = jit_sampler(_fkc, ("static", "cfg"))
