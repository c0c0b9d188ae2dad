r"""The Girsanov bound on the KL divergence of the reverse-SDE sampler, exact for Gaussian targets and affine scores.

**Statement** (Song, Durkan, Murray & Ermon 2021; Chen, Chewi et al. 2023; derivation in ``paper_notes.md``,
"The Girsanov bound"). Let ``Q_t`` be the target diffused to time ``t``. Run the reverse SDE in continuous time

.. math:: dx = \big[\tfrac12 β x + β\,ŝ(x, t)\big]\,dτ + \sqrt{β}\,dW

from ``x_{t_max} ∼ \text{start}`` down to ``t_min`` (``t = t_max − τ``), and call its law at ``t_min`` ``\hat Q``. Then

.. math:: \mathrm{KL}\big(Q_{t_{min}}\,\|\,\hat Q\big) \le \mathrm{KL}\big(Q_{t_{max}}\,\|\,\text{start}\big)
          + \tfrac12\int_{t_{min}}^{t_{max}} β(t)\,\mathbb E_{Q_t}\lVert ŝ(x, t) − ∇\log Q_t(x)\rVert^2\,dt .

The right side is the KL between the two *path* laws on ``[t_min, t_max]`` (Girsanov: same diffusion ``√β I``,
drifts differing by ``β(ŝ − ∇log Q_t)``, the true process' marginals being ``Q_t``); the marginal KL at ``t_min`` is
at most that by data processing. The comparison is with ``Q_{t_min}``, not ``Q_0``: a sampler stopped at ``t_min``
cannot be compared with ``Q_0`` by this bound.

**It bounds the continuous-time reverse SDE only.** Not the probability-flow ODE (deterministic paths: no Girsanov
change of measure exists), and not the Euler–Maruyama sampler (discretization error is not in it).

**Exact evaluation.** With ``Q_t = N(m_t, P_t)`` and an affine error ``e(x) = −Dx + f``,
``E_{N(m,P)}‖e‖² = tr(DPDᵀ) + ‖f − Dm‖²``, and the ``t``-integral is done by adaptive Gauss–Kronrod quadrature
(``scipy.integrate.quad_vec``, ``epsrel = 1e-10``).

**Split.** The sampler's score is ``ŝ = s_inf + δ``: ``field`` (``s_inf``, e.g. the naive composed score of exact
source scores) plus an optional affine ``estimation_error`` ``δ`` (a field ``t ↦ (E_t, c_t)``,
``δ = −E_t x + c_t``). With ``e_inf = s_inf − ∇log Q_t``:

* ``inference_term = ½∫β E_{Q_t}‖e_inf‖²`` — the term with only the inference-time error present;
* ``estimation_term = ½∫β E_{Q_t}‖δ‖²`` — the term with only the estimation error present (zero without ``δ``);
* ``total = start_term + ½∫β E_{Q_t}‖e_inf + δ‖²`` — the bound for the actual sampler;
* ``cross_term = ∫β E_{Q_t}⟨e_inf, δ⟩ = total − start_term − inference_term − estimation_term``.

The cross term can have either sign, so ``total`` is **not** the sum of the parts; by Minkowski the drift part of
``total`` is at most ``(√inference_term + √estimation_term)²``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.integrate import quad_vec

from closed_form import CatcompError, Gaussian, InvalidTimeError, kl
from closed_form.fields import as_numpy_field
from closed_form.schedules import scalar_coefficients


class GirsanovKLBound(NamedTuple):
    """The bound ``KL(Q_{t_min} ‖ law of the reverse SDE at t_min) ≤ total`` and its parts (module doc)."""

    total: float
    start_term: float
    inference_term: float
    estimation_term: float
    cross_term: float
    t_min: float
    t_max: float


def affine_error_moment(d_mat, f_vec, mean, cov) -> float:
    r"""``E_{N(m,P)}‖−Dx + f‖² = tr(DPDᵀ) + ‖f − Dm‖²``."""
    r = f_vec - d_mat @ mean
    return float(np.sum((d_mat @ cov) * d_mat) + r @ r)


def _affine_cross_moment(d1, f1, d2, f2, mean, cov) -> float:
    r"""``E_{N(m,P)}⟨−D₁x + f₁, −D₂x + f₂⟩ = tr(D₁PD₂ᵀ) + (f₁ − D₁m)·(f₂ − D₂m)``."""
    return float(np.sum((d1 @ cov) * d2) + (f1 - d1 @ mean) @ (f2 - d2 @ mean))


def check_interval(schedule, t_min, t_max):
    """``(t_min, t_max)`` as floats with ``0 ≤ t_min < t_max ≤ T`` (``t_max`` defaults to ``T``)."""
    t_max = schedule.T if t_max is None else float(t_max)
    t_min = float(t_min)
    if not (math.isfinite(t_min) and math.isfinite(t_max) and 0.0 <= t_min < t_max <= schedule.T):
        raise InvalidTimeError(f"need 0 ≤ t_min < t_max ≤ T = {schedule.T}; got t_min={t_min}, t_max={t_max}.")
    return t_min, t_max


def target_score_field(target: Gaussian, schedule):
    r"""``t ↦ (C_t⁻¹, C_t⁻¹ α_t μ)`` as NumPy arrays, ``C_t = α_t²Σ + σ_t²I``: the exact score of ``Q_t`` as a field,
    together with ``Q_t``'s mean and covariance, from the target law alone (not from any composition's field)."""
    if not isinstance(target, Gaussian):
        raise CatcompError(f"target must be a Gaussian (the law Q₀), got {type(target).__name__}.")
    mu, sigma = np.asarray(target.mean), np.asarray(target.cov)
    eye = np.eye(sigma.shape[-1])

    def at(t):
        # α_t²Σ + σ_t²I (closed_form.schedules.diffused_covariance) in NumPy from the compiled scalars: quadratures
        # call this thousands of times, and op by op the jax.numpy version cost ~5 ms per call here.
        alpha, sigma2, _ = scalar_coefficients(schedule, t)
        cov = alpha**2 * sigma + sigma2 * eye
        prec = np.linalg.inv(cov)
        prec = 0.5 * (prec + prec.T)
        return prec, prec @ (alpha * mu), alpha * mu, cov

    return at


def girsanov_kl_bound(field, target: Gaussian, schedule, start: Gaussian, t_min: float = 1e-4, *,
                      estimation_error=None, t_max=None, epsrel: float = 1e-10) -> GirsanovKLBound:
    r"""The Girsanov bound on ``KL(Q_{t_min} ‖ reverse-SDE law at t_min)`` with its split (module doc).

    Parameters
    ----------
    field : callable ``t ↦ (A_t, b_t)``
        The inference-time score ``s_inf(x, t) = −A_t x + b_t`` (e.g. ``composition.naive_field(schedule)``).
    target : Gaussian
        The target ``Q₀``; ``Q_t`` is its diffusion.
    schedule : VPSchedule or CosineSchedule
    start : Gaussian
        The sampler's law at ``t_max``.
    t_min : float
        Where the sampler stops; the bound compares with ``Q_{t_min}``.
    estimation_error : callable ``t ↦ (E_t, c_t)``, optional
        Affine score error ``δ(x, t) = −E_t x + c_t`` added to ``field``; the sampler's score is ``field + δ``.
    t_max : float, optional
        Where the sampler starts (default ``schedule.T``).
    epsrel : float
        Relative tolerance of the adaptive ``t``-quadrature.

    Returns
    -------
    GirsanovKLBound
    """
    t_min, t_max = check_interval(schedule, t_min, t_max)
    if not isinstance(start, Gaussian) or start.dim != target.dim:
        raise CatcompError(f"start must be a Gaussian of dimension {target.dim} like the target.")
    exact = target_score_field(target, schedule)
    f_inf = as_numpy_field(field)
    f_est = as_numpy_field(estimation_error) if estimation_error is not None else None

    def integrand(t):
        half_beta = 0.5 * scalar_coefficients(schedule, t)[2]
        a_q, b_q, m, p = exact(t)
        a, b = f_inf(t)
        d1, g1 = a - a_q, b - b_q  # e_inf = −(A − A_Q)x + (b − b_Q)
        inf = affine_error_moment(d1, g1, m, p)
        if f_est is None:
            return half_beta * np.array([inf, 0.0, inf])
        d2, g2 = f_est(t)
        est = affine_error_moment(d2, g2, m, p)
        cross = _affine_cross_moment(d1, g1, d2, g2, m, p)
        return half_beta * np.array([inf, est, inf + est + 2.0 * cross])

    integrals, _ = quad_vec(integrand, t_min, t_max, epsrel=epsrel, epsabs=1e-14, norm="max", limit=500)
    start_term = float(kl(target.noised(schedule, t_max), start))
    inf, est, drift = (float(v) for v in integrals)
    total = start_term + drift
    return GirsanovKLBound(total, start_term, inf, est, drift - inf - est, t_min, t_max)
