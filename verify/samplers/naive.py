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

  global error ``O(h²)`` (:data:`HEUN` ``.order``); it converges to :func:`closed_form.laws.ode_law`.

Each sampler is a kernel (:class:`verify.samplers.model.Kernel`: :data:`EULER_MARUYAMA`, :data:`HEUN`) over the same
model as FKC's (:class:`verify.samplers.model.FKCModel`, one validation), run by the same jitted ``lax.scan``
(:func:`verify.samplers.model.run_kernel`) with the sample axis sharded over all JAX devices
(:mod:`verify.samplers.sharding`); the Euler–Maruyama step is FKC's move (:func:`verify.samplers.discretization.mutate`)
without weights. Each kernel declares its order (``.order``, ``.order_kind``), which the convergence tests read;
``naive_sde_sample.kernel`` and ``naive_ode_sample.kernel`` name them. float64 by default, ``dtype="float32"`` on
request.
"""

from __future__ import annotations

from closed_form.errors import CatcompError
from verify.samplers.discretization import as_key, check_positive_int, mutate
from verify.samplers.model import Kernel, build_model, check_run, run_kernel
from verify.samplers.resampling import never
from verify.samplers.sharding import constrain, swarm_sharding


def _no_weight_options(weight_clip, g_clip, corrector):
    if weight_clip is not None or not (isinstance(g_clip, str) and g_clip == "default"):
        raise CatcompError("the naive samplers carry no weights; weight_clip and g_clip apply to fkc_sample only.")
    return None, None


def _no_corrector_options(weight_clip, g_clip, corrector):
    if corrector is not None:
        raise CatcompError("naive_ode_sample is deterministic and takes no corrector; use naive_sde_sample.")
    return _no_weight_options(weight_clip, g_clip, corrector)


def _init(particles, model, t=None):
    return constrain(particles, model.sharding)


def _record(info):
    return None


def _finish(key, x, records):
    return x[:, 0, :]


def _em_step(keys, x, t, h, model):
    x, _ = mutate(model, keys, x, model.composed_score(x, t), t, h)
    return constrain(x, model.sharding), None


def _heun_step(keys, x, t, h, model):
    def velocity(y, s):
        return 0.5 * model.schedule.beta(s) * (y + model.composed_score(y, s))

    k1 = velocity(x, t)
    k2 = velocity(x + h * k1, t - h)
    return constrain(x + 0.5 * h * (k1 + k2), model.sharding), None


#: The naive reverse SDE by Euler–Maruyama: FKC's move without weights. Weak order 1.
EULER_MARUYAMA = Kernel("euler_maruyama", _init, _em_step, _record, _finish, 1, "weak", _no_weight_options)
#: The probability-flow ODE by Heun's method. Global (strong) order 2.
HEUN = Kernel("heun", _init, _heun_step, _record, _finish, 2, "strong", _no_corrector_options)

#: Global order of accuracy of :func:`naive_ode_sample` (Heun) and weak order of :func:`naive_sde_sample` (EM).
ODE_ORDER = HEUN.order
SDE_WEAK_ORDER = EULER_MARUYAMA.order


def _naive(kernel, key, scores, weights, schedule, n, n_steps, start, eps, corrector, noise, dtype):
    n = check_positive_int(n, "n")
    model = build_model(scores, weights, schedule, kernel, resampling=never(), corrector=corrector, noise=noise,
                        sharding=swarm_sharding(n), dtype=dtype)
    n_steps, stop_after, eps, start = check_run(schedule, n_steps, None, eps, start, model.dim)
    # Shape (n, 1, d): the same draws as FKC with one particle per swarm.
    return run_kernel(as_key(key), model, start, n, 1, n_steps, stop_after, eps)


def naive_sde_sample(key, scores, weights, schedule, n: int, n_steps: int = 500, start="standard", *,
                     eps: float = 1e-5, corrector=None, noise: str = "hash", dtype="float64"):
    r"""``n`` samples of the naive composed reverse SDE by Euler–Maruyama (module doc), shape ``(n, d)``.

    Parameters
    ----------
    key : jax.random key, or an int seed
    scores : sequence of score functions ``s_i(x, t)`` (:mod:`verify.samplers.scores`), one per source; for a
        :class:`closed_form.Composition` pass ``source_scores(composition, schedule)`` and ``composition.weights``
    weights : sequence of float, one per score
    schedule : VPSchedule or CosineSchedule
    n, n_steps : int
    start : ``"standard"`` (``N(0, I)``, the paper's) or a distribution (e.g. :func:`closed_form.start_law`)
    eps : float
        Clamp of the time grid (the paper's ``1e-5``).
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
        Langevin moves toward ``π_{t_{k+1}}`` after each step.
    noise : ``"hash"`` (default), ``"threefry"`` or ``"box-muller"``
        How the Gaussian increments are drawn (:mod:`verify.samplers.noise`).
    dtype : ``"float64"`` (default) or ``"float32"``

    Raises
    ------
    ShapeMismatchError, NonFiniteInputError, CatcompError
        For mismatched score/weight counts, NaN weights, non-positive ``n``/``n_steps``, an unknown start or dtype.
    """
    return _naive(EULER_MARUYAMA, key, scores, weights, schedule, n, n_steps, start, eps, corrector, noise, dtype)


def naive_ode_sample(key, scores, weights, schedule, n: int, n_steps: int = 500, start="standard", *,
                     eps: float = 1e-5, dtype="float64"):
    r"""``n`` samples of the naive composed probability-flow ODE by Heun's method (module doc), shape ``(n, d)``.

    The only randomness is the start draw (same stream as :func:`naive_sde_sample`). Parameters as there.
    """
    return _naive(HEUN, key, scores, weights, schedule, n, n_steps, start, eps, None, "hash", dtype)


naive_sde_sample.kernel = EULER_MARUYAMA
naive_ode_sample.kernel = HEUN
