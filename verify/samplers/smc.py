r"""Feynman–Kac corrector (FKC) sequential Monte Carlo for the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}``.

Feynman–Kac model (Skreta et al. 2025; derivation in ``paper_notes.md``, "Deriving the FKC weights"):

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

**The kernels.** As in BlackJAX's SMC, the sampler is a state and a transition (:class:`verify.samplers.model.Kernel`):
:data:`FKC` (catcomp's ordering: potential at the left point, resampling, move) with :class:`FKCState`, and
:data:`AUTHORS` (the paper authors' ordering: move, potential at the new point with the rate clipped, resampling,
the composed score carried to the next move) with :class:`AuthorsState`. Both are built from the same parts:
:func:`fkc_potential`, :func:`reweight`, the resampling strategy, and :func:`verify.samplers.discretization.mutate`
(the move, shared with :func:`verify.naive_sde_sample`). :func:`fkc_init`, :func:`fkc_step` and :func:`fkc_pick`
run the model's kernel; :func:`fkc_sample` is :func:`fkc_init`, a ``lax.scan`` of :func:`fkc_step` over the grid and
:func:`fkc_pick` (:func:`verify.samplers.model.run_kernel`), jitted once per model structure, with the swarm axis
sharded over the devices (:mod:`verify.samplers.sharding`); a large run on one CPU device goes through blocks of
swarms, one after another, each drawing what it draws in the whole run (:func:`verify.samplers.model.block_count`).
The kernels declare weak order 1 in the step size (Euler–Maruyama moves, left-point or right-point weights).

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
from typing import NamedTuple

import jax
import jax.numpy as jnp

from closed_form.errors import CatcompError, NonFiniteInputError
from verify.samplers.discretization import StepKeys, as_key, check_positive_int, mutate
from verify.samplers.model import FKCModel, Kernel, build_model, check_run, run_kernel
from verify.samplers.resampling import BelowESS, always, below_ess, get_resampler, never
from verify.samplers.sharding import constrain, swarm_sharding
from verify.samplers.staging import computed_once, jit_sampler


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
    """The state of an FKC run between steps of the :data:`FKC` kernel (the ``lax.scan`` carry of
    :func:`fkc_sample`).

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
    """

    particles: jax.Array
    log_weights: jax.Array
    log_normalizer: jax.Array
    n_resampling: jax.Array


class AuthorsState(NamedTuple):
    """The state of the :data:`AUTHORS` kernel: :class:`FKCState`'s fields and the composed score ``S(x, t)`` at the
    particles and the current time, which the next step moves with."""

    particles: jax.Array
    log_weights: jax.Array
    log_normalizer: jax.Array
    n_resampling: jax.Array
    score: jax.Array


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


# ------------------------------------------------------------------------------------------------ shared parts
def fkc_potential(model: FKCModel, x, t, h):
    r"""The potential's log-weight increment over a step of length ``h`` evaluated at ``(x, t)``, and ``S(x, t)``.

    .. math:: ΔL = \operatorname{clip}_{c_L}\!\big(h \cdot \operatorname{clip}_{c_g}(g(x, t))\big),

    with ``g`` the rate of the module doc (:func:`fkc_log_weight_rate`), ``c_g = model.g_clip`` and
    ``c_L = model.weight_clip`` (each clip skipped when ``None``). Returns ``(ΔL, S)``, shapes ``x.shape[:-1]`` and
    ``x.shape``; the composed score is returned so that the move reuses it (one score evaluation per step).
    """
    s, s_comp = model.composed(x, t)
    g = fkc_log_weight_rate(s, s_comp, model.weights, model.schedule.beta(t), model.dim)
    if model.g_clip is not None:
        g = jnp.clip(g, -model.g_clip, model.g_clip)
    increment = h * g
    if model.weight_clip is not None:
        increment = jnp.clip(increment, -model.weight_clip, model.weight_clip)
    return increment, s_comp


def _row_reduce(a, combine, reduce):
    """Reduce along the last axis: for ``K`` a multiple of 8 above 8, an elementwise ``combine`` of the ``K/8``
    slices of 8 followed by ``reduce`` over 8. XLA:CPU fuses the elementwise part with the ops that produce ``a``
    and vectorizes it across swarms, whereas a row reduction of ``K`` is a separate pass over a materialized array
    (a scalar loop per swarm). A maximum is the same in any order; a sum changes only its rounding."""
    k = a.shape[-1]
    if k % 8 or not 8 < k <= 512:
        return reduce(a, axis=-1)
    b = a.reshape(a.shape[:-1] + (k // 8, 8))
    m = b[..., 0, :]
    for i in range(1, k // 8):
        m = combine(m, b[..., i, :])
    return reduce(m, axis=-1)


def _row_max(a):
    """``max`` along the last axis (:func:`_row_reduce`)."""
    return _row_reduce(a, jnp.maximum, jnp.max)


def _row_sum(a):
    """``sum`` along the last axis (:func:`_row_reduce`)."""
    return _row_reduce(a, jnp.add, jnp.sum)


def reweight(log_weights, increment):
    r"""``L ← L + ΔL`` renormalized: returns the new normalized log weights, the normalized weights ``W``,
    ``log Σ_j e^{L_j + ΔL_j}`` (the step's factor of ``Ẑ``, since ``L`` was normalized) and the ESS ``1 / Σ_j W_j²``.

    One exponential per particle: with ``a = L + ΔL``, ``m = max_j a_j`` and ``e = e^{a − m}``,
    ``log Z = m + log Σ e`` and ``W = e / Σ e``. The ESS is summed from ``W`` rather than as ``(Σ e)² / Σ e²``:
    XLA rewrites ``e · e`` as ``e^{2(a − m)}``, a second exponential per particle.
    """
    a = log_weights + increment
    top = _row_max(a)[..., None]
    e = jnp.exp(a - top)
    total = _row_sum(e)
    log_total = top[..., 0] + jnp.log(total)
    w = e / total[..., None]
    return a - log_total[..., None], w, log_total, 1.0 / _row_sum(w * w)


def _correct(key, state, increment, arrays, model: FKCModel):
    """Reweight by ``increment`` and apply the resampling strategy to ``arrays`` (the particles and their scores);
    returns the new log weights, arrays, ``log Ẑ``, resampling count and the step's info (without acceptance)."""
    log_w, w_norm, log_z_step, ess = reweight(state.log_weights, increment)
    sh = model.sharding
    # A flat gather indexes the global rows: with the swarm axis sharded, XLA would all-gather the particles.
    log_w, arrays, resampled = model.resampling(key, w_norm, ess, log_w, arrays, flat_gather=sh is None,
                                                row_offset=0 if model.swarm_offset is None else model.swarm_offset)
    return (constrain(log_w, sh), arrays, constrain(state.log_normalizer + log_z_step, sh),
            constrain(state.n_resampling + resampled.astype(state.n_resampling.dtype), sh),
            (ess, resampled, log_z_step))


def _start(particles, model: FKCModel):
    sh = model.sharding
    particles = constrain(particles, sh)
    n_swarms, n_particles = particles.shape[-3], particles.shape[-2]
    return (particles,
            constrain(jnp.full((n_swarms, n_particles), -math.log(n_particles), dtype=particles.dtype), sh),
            constrain(jnp.zeros(n_swarms, dtype=particles.dtype), sh),
            constrain(jnp.zeros(n_swarms, dtype=jnp.int32), sh))


def _record(info: FKCInfo):
    # Only the swarm-mean ESS leaves the loop: the per-swarm info would be stored for every step.
    return jnp.mean(info.ess), info.acceptance


def _finish(key, state, records) -> FKCResult:
    ess, acceptance = records
    return FKCResult(_fkc_pick(key, state), state.particles, state.log_weights, state.log_normalizer, ess,
                     state.n_resampling, acceptance)


def _as_step_keys(key):
    return key if isinstance(key, StepKeys) else StepKeys(*jax.random.split(key, 3))


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


def _is_default(g_clip) -> bool:
    return isinstance(g_clip, str) and g_clip == "default"


# ------------------------------------------------------------------------------------------------ catcomp's kernel
def _fkc_init(particles, model: FKCModel, t=None) -> FKCState:
    return FKCState(*_start(particles, model))


def _fkc_step(key, state: FKCState, t, h, model: FKCModel):
    keys = _as_step_keys(key)
    increment, score = fkc_potential(model, state.particles, t, h)
    log_w, (x, score), log_z, n_res, info = _correct(keys.resample, state, increment, (state.particles, score), model)
    x, acceptance = mutate(model, keys, x, score, t, h)
    return FKCState(constrain(x, model.sharding), log_w, log_z, n_res), FKCInfo(*info, acceptance)


def _fkc_options(weight_clip, g_clip, corrector):
    if not _is_default(g_clip):
        raise CatcompError("g_clip clips the weight rate of variant='authors' only; for catcomp's variant clip "
                           "the increment with weight_clip.")
    return _check_clip(weight_clip, "weight_clip"), None


#: catcomp's FKC kernel: left-point potential ``h_k g(x_k, t_k)`` (clipped by ``weight_clip``), reweighting and
#: resampling of ``(x, S)``, then the move with the resampled ``S`` and the optional corrector. Weak order 1.
FKC = Kernel("catcomp", _fkc_init, _fkc_step, _record, _finish, 1, "weak", _fkc_options)


# ------------------------------------------------------------------------------------------------ the authors' kernel
def _authors_init(particles, model: FKCModel, t=None) -> AuthorsState:
    if t is None:
        raise CatcompError("variant='authors' evaluates the scores at the first grid time; pass t=grid[0].")
    particles, log_w, log_z, n_res = _start(particles, model)
    score = constrain(model.composed_score(particles, jnp.asarray(t, dtype=particles.dtype)), model.sharding)
    return AuthorsState(particles, log_w, log_z, n_res, score)


def _authors_step(key, state: AuthorsState, t, h, model: FKCModel):
    keys = _as_step_keys(key)
    x, _ = mutate(model, keys, state.particles, state.score, t, h)
    # The moved particles feed the potential and both gathers; stored once instead of recomputed in each.
    x = computed_once(x, h)
    increment, score = fkc_potential(model, x, t - h, h)
    log_w, (x, score), log_z, n_res, info = _correct(keys.resample, state, increment, (x, score), model)
    sh = model.sharding
    return AuthorsState(constrain(x, sh), log_w, log_z, n_res, constrain(score, sh)), FKCInfo(*info, None)


def _authors_options(weight_clip, g_clip, corrector):
    if weight_clip is not None:
        raise CatcompError("variant='authors' clips the rate with g_clip; weight_clip must be None with it.")
    if corrector is not None:
        raise CatcompError("variant='authors' runs without a corrector (the authors use none); pass corrector=None.")
    return None, AUTHORS_G_CLIP if _is_default(g_clip) else _check_clip(g_clip, "g_clip")


#: The paper authors' kernel: move with the carried ``S(x_k, t_k)``, then the rate ``g`` at ``(x_{k+1}, t_{k+1})``
#: clipped to ``±g_clip``, times ``h_k``; reweighting and resampling of ``(x_{k+1}, S(x_{k+1}, t_{k+1}))``. Weak
#: order 1.
AUTHORS = Kernel("authors", _authors_init, _authors_step, _record, _finish, 1, "weak", _authors_options)

#: ``fkc_sample``'s variants by name: catcomp's left-point weights, and the authors' sampler.
FKC_KERNELS = {"catcomp": FKC, "authors": AUTHORS}
#: Their names.
FKC_VARIANTS = tuple(FKC_KERNELS)


def fkc_kernel(variant) -> Kernel:
    """The kernel named ``variant`` (:data:`FKC_KERNELS`), or ``variant`` itself when it is a :class:`Kernel`."""
    if isinstance(variant, Kernel):
        return variant
    if not isinstance(variant, str) or variant not in FKC_KERNELS:
        raise CatcompError(f"unknown variant {variant!r}; valid variants are {', '.join(FKC_VARIANTS)} (or a Kernel).")
    return FKC_KERNELS[variant]


# ------------------------------------------------------------------------------------------------ the kernel API
def fkc_model(scores, weights, schedule, *, resampling=None, weight_clip=None, corrector=None, noise: str = "hash",
              variant="catcomp", g_clip="default", dim: int | None = None, sharding=None,
              dtype="float64") -> FKCModel:
    r"""Validate the parts of a Feynman–Kac model and bundle them for :func:`fkc_init` / :func:`fkc_step`.

    Parameters
    ----------
    scores, weights, schedule, corrector, noise, variant, weight_clip, g_clip, dtype
        As in :func:`fkc_sample` (``variant`` may also be a kernel, :data:`FKC` or :data:`AUTHORS`).
    resampling : strategy, optional
        :func:`verify.samplers.resampling.always` (default, with systematic resampling),
        :func:`~verify.samplers.resampling.below_ess` or :func:`~verify.samplers.resampling.never`.
    dim : int, optional
        The dimension, needed when no score declares one (``.dim``).
    sharding : jax.sharding.Sharding, optional
        Sharding of the swarm axis; ``None`` leaves placement to JAX.

    Raises
    ------
    CatcompError
        An unknown strategy, variant, noise method or dtype; a non-positive clip; ``g_clip`` with catcomp's kernel;
        the authors' kernel with ``weight_clip`` or a corrector; no dimension.
    ShapeMismatchError, NonFiniteInputError
        Score/weight count mismatch or disagreeing dimensions; NaN weights or clips.
    """
    return build_model(scores, weights, schedule, fkc_kernel(variant), resampling=resampling,
                       weight_clip=weight_clip, g_clip=g_clip, corrector=corrector, noise=noise, dim=dim,
                       sharding=sharding, dtype=dtype)


def _init_any(particles, model: FKCModel, t=None):
    return model.kernel.init(particles, model, t)


def _fkc_step_any(key, state, t, h, model: FKCModel):
    return model.kernel.step(key, state, t, h, model)


def _fkc_pick(key, state):
    pick = jax.random.categorical(key, state.log_weights, axis=-1)
    return jnp.take_along_axis(state.particles, pick[:, None, None], axis=1)[:, 0, :]


# Called on their own (step by step, in tests and notebooks) they are jitted, once per model structure and shape.
_fkc_init_jit = jit_sampler(_init_any, ())
_fkc_step_jit = jit_sampler(_fkc_step_any, ())
_fkc_pick_jit = jit_sampler(_fkc_pick, ())


def fkc_init(particles, model: FKCModel, t=None):
    """The model's kernel's initial state for ``particles`` of shape ``(S, K, d)``: log weights ``−log K``,
    ``log Ẑ = 0``, no resampling; for the authors' kernel also the composed score at ``(particles, t)``, ``t`` the
    first grid time (required then, ignored otherwise). Jitted."""
    if t is None:
        return model.kernel.init(particles, model, None)  # the authors' kernel raises, saying what to pass
    return _fkc_init_jit(particles, model, t)


def fkc_pick(key, state):
    """One particle per swarm, drawn with probability proportional to its weight ``exp(log_weights)``; ``(S, d)``.
    Jitted."""
    return _fkc_pick_jit(key, state)


def fkc_step(key, state, t, h, model: FKCModel):
    r"""One step of the model's kernel from ``t`` to ``t − h``: potential, reweighting, resampling, mutation.

    :data:`FKC` (catcomp's): with ``S`` and ``ΔL = fkc_potential(x, t, h)`` at the current particles (the left
    point),

    .. math:: L_j ← L_j + ΔL_j − \log Z_k,\quad \log Z_k = \log \textstyle\sum_j e^{L_j + ΔL_j},\quad
              \log Ẑ ← \log Ẑ + \log Z_k,

    then the strategy resamples ``(x, S)`` within each swarm, and every particle moves by
    :func:`verify.samplers.discretization.mutate` with its (resampled) ``S``. :data:`AUTHORS` first moves with the
    carried ``S(x_k, t_k)``, then evaluates ``ΔL`` and ``S`` at ``(x_{k+1}, t − h)``, reweights and resamples
    ``(x_{k+1}, S)``, and carries ``S`` to the next step.

    Parameters
    ----------
    key : jax.random key or :class:`verify.samplers.discretization.StepKeys`
        A single key is split into the step's noise, resampling and corrector keys; :func:`fkc_sample` passes
        :func:`verify.samplers.discretization.step_keys` of its streams.
    state : FKCState or AuthorsState
    t, h : scalar
        The step's start time and length (``t − h`` is where it ends).
    model : FKCModel

    Returns
    -------
    (state, FKCInfo)

    Jitted (once per model structure and shape).
    """
    return _fkc_step_jit(key, state, t, h, model)


# ------------------------------------------------------------------------------------------------ the sampler
def fkc_sample(key, scores, weights, schedule, n_swarms: int, n_particles: int, n_steps: int = 500,
               resampling: str = "systematic", ess_threshold=None, weight_clip=None, start="standard", *,
               eps: float = 1e-5, corrector=None, stop_after: int | None = None, noise: str = "hash",
               variant="catcomp", g_clip="default", dtype="float64") -> FKCResult:
    r"""Feynman–Kac corrected sampling of ``π_t`` with ``n_swarms`` independent swarms of ``n_particles`` each.

    :func:`fkc_init`, a jitted ``lax.scan`` of :func:`fkc_step` and :func:`fkc_pick` over the model
    :func:`fkc_model` builds: the same numbers as that loop run by hand with the same key streams.

    Parameters
    ----------
    key : jax.random key, or an int seed (``jax.random.key(seed)``)
    scores : sequence of score functions ``s_i(x, t)`` (:mod:`verify.samplers.scores`), one per source; for a
        :class:`closed_form.Composition` pass ``source_scores(composition, schedule)`` and ``composition.weights``
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
    noise : ``"hash"`` (default), ``"threefry"`` or ``"box-muller"``
        How the Gaussian increments are drawn (:mod:`verify.samplers.noise`).
    variant : ``"catcomp"`` (default), ``"authors"``, or a kernel (:data:`FKC`, :data:`AUTHORS`)
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
    dtype : ``"float64"`` (default) or ``"float32"``
        The dtype of the particles, weights, noise and score arrays (the time grid is computed in float64 and
        rounded). float32 is the authors' choice and faster; float64 and float32 runs agree within Monte Carlo error
        (``tests/test_samplers.py``).

    Returns
    -------
    FKCResult

    Raises
    ------
    CatcompError
        Non-positive counts, an unknown resampling scheme, start or dtype, a key that is neither a key nor an int,
        an ESS threshold outside ``[0, 1]``, a non-positive clip, ``stop_after`` outside ``[1, n_steps]``, an
        unknown variant, ``g_clip`` without ``variant="authors"``, ``variant="authors"`` with ``weight_clip`` or a
        corrector, or a :class:`closed_form.Composition` passed as ``scores``.
    ShapeMismatchError, NonFiniteInputError
        Score/weight count mismatch; NaN weights, threshold or clip.
    """
    n_swarms = check_positive_int(n_swarms, "n_swarms")
    n_particles = check_positive_int(n_particles, "n_particles")
    strategy = resampling_strategy(resampling, ess_threshold, n_particles)
    model = fkc_model(scores, weights, schedule, resampling=strategy, weight_clip=weight_clip, corrector=corrector,
                      noise=noise, variant=variant, g_clip=g_clip, sharding=swarm_sharding(n_swarms), dtype=dtype)
    n_steps, stop_after, eps, start = check_run(schedule, n_steps, stop_after, eps, start, model.dim)
    return run_kernel(as_key(key), model, start, n_swarms, n_particles, n_steps, stop_after, eps)


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
