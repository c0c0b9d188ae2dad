r"""The exact law of the Feynman–Kac corrector (FKC) as the number of particles ``K → ∞``, for affine source scores.

FKC (:func:`verify.samplers.smc.fkc_sample`) moves particles by the naive composed reverse SDE and weights them by the
potential

.. math:: g(x, t) = \tfrac12 β\Big[(1 − \textstyle\sum_i w_i)\,d + \lVert S\rVert^2 − \sum_i w_i \lVert s_i\rVert^2\Big],
          \qquad S = \sum_i w_i s_i .

As ``K → ∞`` each swarm's output converges in law to the normalized Feynman–Kac measure, and ``log Ẑ`` to the log of
its mass (``Ẑ`` is unbiased for the mass at every ``K``). With affine source scores ``s_i(x, t) = −A_i(t)x + b_i(t)``
(exact Gaussian scores, or any affine error added to them: symmetric or not, consistent with a diffusion or not),
``g`` is a quadratic polynomial in ``x``,

.. math:: g = −\tfrac12 x^\top G x + h^\top x + c,\quad
          G = −β\Big(A^\top A − \sum_i w_i A_i^\top A_i\Big),\quad
          h = β\Big(−A^\top b + \sum_i w_i A_i^\top b_i\Big),\quad
          c = \tfrac12 β\Big[(1 − \textstyle\sum_i w_i)d + \lVert b\rVert^2 − \sum_i w_i\lVert b_i\rVert^2\Big],

with ``A = Σ w_i A_i``, ``b = Σ w_i b_i``; the move is linear-Gaussian, so the weighted measure stays an
unnormalized Gaussian. Its exact evolution is computed here (derivations in ``paper_notes.md``, "The exact
Feynman–Kac limit"):

* **continuous time** (``n_steps=None``): the measure ``μ`` solves ``∂_τ μ = L^*μ + gμ`` in reverse time
  ``τ``, ``L`` the generator of ``dx = (Fx + u)dτ + √β dW`` with ``F = β(½I − A)``, ``u = βb``. Written as
  ``μ(x) = exp(−½xᵀΛx + ηᵀx + ν)``, the equation closes on

  .. math:: \dot Λ = G − ΛF − F^\top Λ − βΛ^2,\quad \dot η = h − F^\top η + Λu − βΛη,\quad
            \dot ν = c − \operatorname{tr}F − u^\top η + \tfrac12β(\lVert η\rVert^2 − \operatorname{tr}Λ),

  whose right-hand sides are polynomials, smooth even where the mass diverges (``Λ`` loses definiteness). In moment
  form (``P = Λ⁻¹``, ``m = Λ⁻¹η``, mass ``e^ℓ``) this is ``Ṗ = FP + PFᵀ + βI − PGP``,
  ``ṁ = Fm + u + P(h − Gm)``, ``ℓ̇ = E_{N(m,P)} g``. Integrated by DOP853 from ``T − eps`` (the samplers' first grid
  time) down to ``t_min``;
* **discrete time** (``n_steps`` given): exactly the order of operations of ``fkc_sample`` on its grid
  :func:`closed_form.reverse_time_grid` ``(schedule, n_steps, eps)``: at step ``k`` the weight ``exp(h_k g(x, t_k))``
  is applied at the particle's position *before* the move (``N(m, P)`` times it is ``N(m', P')`` with
  ``P'⁻¹ = P⁻¹ + h_kG``, ``P'⁻¹m' = P⁻¹m + h_k h``, times its integral), the cloud is resampled (which leaves the
  limit unchanged), and moved by the Euler–Maruyama kernel ``x' = Mx + h_kβ_k b + √(β_kh_k) z``,
  ``M = I + h_kβ_k(½I − A)`` with the scores at ``t_k``.

The start is the law of the particles at the first grid time ``T − eps`` (weights uniform, mass 1).

The result :class:`FKCLimit` holds the normalized output law and ``log_mass = log ∫ μ``, which is what
``fkc_sample``'s per-swarm ``log_normalizer`` estimates (``E log Ẑ ≤ log_mass`` by Jensen). With the exact scores of
Gaussian sources and ``start = π_{T−eps}`` the continuous law is ``π_{t_min}`` and ``log_mass`` is
``log Z(π_{t_min}) − log Z(π_{T−eps})``, ``Z(π_t) = ∫Π_i(q^i_t)^{w_i}`` (``tests/test_fkc_limit.py``).

Where the weight is not integrable — ``P⁻¹ + h_kG`` not positive definite, or ``Λ`` reaching a zero eigenvalue in
continuous time — the weights have unbounded moments, the Feynman–Kac measure has infinite mass and FKC has no
limit law; :class:`~closed_form.errors.WeightsNotIntegrableError` says at which time and along which direction.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_ivp

from closed_form.errors import (
    CatcompError,
    InvalidTimeError,
    WeightsNotIntegrableError,
)
from closed_form.fields import _check_field_output, as_numpy_field
from closed_form.gaussian import Gaussian
from closed_form.laws import DEFAULT_RTOL, _check_start
from closed_form.schedules import reverse_time_grid, scalar_coefficients
from closed_form.validation import check_weights_for


class FKCLimit(NamedTuple):
    """The ``K → ∞`` limit of FKC: ``law`` (the normalized output :class:`Gaussian`) and ``log_mass`` (the log of
    the Feynman–Kac measure's mass, the limit that ``log Ẑ`` estimates; the start has mass 1)."""

    law: Gaussian
    log_mass: float


class _Potential:
    """``t ↦ (A, b, G, h, c, β)`` for the weighted sum of affine source fields (module doc)."""

    def __init__(self, source_fields, weights, schedule, dim):
        self.fields = [as_numpy_field(f) for f in source_fields]
        self.weights = weights
        self.dim = dim
        self.schedule = schedule
        self.const = (1.0 - math.fsum(weights)) * dim

    def __call__(self, t):
        d = self.dim
        beta = scalar_coefficients(self.schedule, t)[2]  # compiled once per schedule, not once per law
        a_sum, b_sum = np.zeros((d, d)), np.zeros(d)
        quad, lin, const = np.zeros((d, d)), np.zeros(d), self.const
        for w, f in zip(self.weights, self.fields):
            a_i, b_i = f(t)
            _check_field_output(a_i, b_i, d)
            a_sum += w * a_i
            b_sum += w * b_i
            quad += w * (a_i.T @ a_i)
            lin += w * (a_i.T @ b_i)
            const -= w * (b_i @ b_i)
        quad = a_sum.T @ a_sum - quad
        g_mat = -beta * 0.5 * (quad + quad.T)
        h_vec = beta * (lin - a_sum.T @ b_sum)
        c = 0.5 * beta * (const + b_sum @ b_sum)
        return a_sum, b_sum, g_mat, h_vec, c, beta


def _not_integrable(t, mat, what):
    lam, vecs = np.linalg.eigh(0.5 * (mat + mat.T))
    direction = vecs[:, 0] / np.linalg.norm(vecs[:, 0])
    text = ", ".join(f"{v:.4g}" for v in direction)
    return WeightsNotIntegrableError(
        f"the Feynman–Kac weights are not integrable at t = {t:.6g}: {what} has eigenvalue {lam[0]:.6g} ≤ 0 along "
        f"({text}), so exp(h·g) grows at least as fast as the particle density decays there and the weighted "
        "measure has infinite mass (FKC has no K → ∞ limit). The source scores' quadratic terms must satisfy "
        "P⁻¹ + h·G ≻ 0 at every step; smaller score errors or a finer grid may restore it.",
        t=float(t), direction=direction, eigenvalue=float(lam[0]))


def _log_mass_of_canonical(lam, eta):
    """``(m, P, ½ηᵀΛ⁻¹η − ½log det Λ)`` for a positive-definite ``Λ``."""
    chol = np.linalg.cholesky(0.5 * (lam + lam.T))
    inv_chol = np.linalg.solve(chol, np.eye(lam.shape[0]))
    p = inv_chol.T @ inv_chol
    m = p @ eta
    return m, 0.5 * (p + p.T), 0.5 * eta @ m - float(np.sum(np.log(np.diag(chol))))


def _discrete(potential, schedule, start, n_steps, eps):
    grid = reverse_time_grid(schedule, n_steps, eps)
    d = potential.dim
    eye = np.eye(d)
    m = np.asarray(start.mean, dtype=np.float64)
    p = np.asarray(start.cov, dtype=np.float64)
    log_mass = 0.0
    for k in range(n_steps):
        t, h = float(grid[k]), float(grid[k] - grid[k + 1])
        a, b, g_mat, h_vec, c, beta = potential(t)
        # Weight at the left point, before the move: N(m, P)·exp(h g) = exp(Δℓ)·N(m', P').
        prec = np.linalg.inv(p)
        prec = 0.5 * (prec + prec.T)
        lam = prec + h * g_mat
        eta = prec @ m + h * h_vec
        try:
            m_w, p_w, half_quad = _log_mass_of_canonical(lam, eta)
        except np.linalg.LinAlgError:
            raise _not_integrable(t, lam, f"P⁻¹ + h·G at step {k} of {n_steps}") from None
        log_det_p = float(np.linalg.slogdet(p)[1])
        log_mass += h * c + half_quad - 0.5 * m @ prec @ m - 0.5 * log_det_p
        # Move: the Euler–Maruyama kernel with the composed score at t_k.
        mk = eye + h * beta * (0.5 * eye - a)
        m = mk @ m_w + h * beta * b
        p = mk @ p_w @ mk.T + h * beta * eye
        p = 0.5 * (p + p.T)
    return FKCLimit(Gaussian(m, p), float(log_mass))


def _continuous(potential, start, t_max, t_min, rtol):
    d = potential.dim
    eye = np.eye(d)
    lam0 = np.asarray(start.precision, dtype=np.float64)
    lam0 = 0.5 * (lam0 + lam0.T)
    eta0 = lam0 @ np.asarray(start.mean, dtype=np.float64)
    y0 = np.concatenate([lam0.ravel(), eta0, [0.0]])

    def rhs(t, y):
        # In τ = t_max − t; forward time t decreases, hence the overall minus sign.
        a, b, g_mat, h_vec, c, beta = potential(t)
        lam = y[: d * d].reshape(d, d)
        lam = 0.5 * (lam + lam.T)
        eta = y[d * d: d * d + d]
        f = beta * (0.5 * eye - a)
        u = beta * b
        lam_f = lam @ f
        d_lam = g_mat - lam_f - lam_f.T - beta * (lam @ lam)
        d_eta = h_vec - f.T @ eta + lam @ u - beta * (lam @ eta)
        d_nu = c - np.trace(f) - u @ eta + 0.5 * beta * (eta @ eta - np.trace(lam))
        return -np.concatenate([d_lam.ravel(), d_eta, [d_nu]])

    def definite(t, y):
        lam = y[: d * d].reshape(d, d)
        return float(np.linalg.eigvalsh(0.5 * (lam + lam.T))[0])

    definite.terminal = True
    definite.direction = -1
    scale = max(1.0, float(np.max(np.abs(y0))))
    sol = solve_ivp(rhs, (t_max, t_min), y0, method="DOP853", rtol=rtol, atol=1e-2 * rtol * scale,
                    max_step=(t_max - t_min) / 16.0, events=definite)
    if sol.status == 1:
        t_hit = float(sol.t_events[0][0])
        lam_hit = sol.y_events[0][0][: d * d].reshape(d, d)
        raise _not_integrable(t_hit, lam_hit, "the weighted measure's precision Λ")
    if sol.status != 0:
        raise RuntimeError(f"Feynman–Kac moment integration failed at rtol={rtol}: {sol.message}")
    y = sol.y[:, -1]
    lam = y[: d * d].reshape(d, d)
    if definite(t_min, y) <= 0:  # a zero crossing between the event's samples
        raise _not_integrable(t_min, lam, "the weighted measure's precision Λ")
    m, p, half_quad = _log_mass_of_canonical(lam, y[d * d: d * d + d])
    _, _, half_quad0 = _log_mass_of_canonical(lam0, eta0)
    return FKCLimit(Gaussian(m, p), float(y[-1] + half_quad - half_quad0))


def fkc_limit_law(source_fields, weights, schedule, start, *, n_steps=None, t_min=None, eps: float = 1e-5,
                  rtol: float = DEFAULT_RTOL) -> FKCLimit:
    r"""The law FKC converges to as ``K → ∞`` with affine source scores, and the log mass its ``log Ẑ`` estimates.

    Parameters
    ----------
    source_fields : sequence of callables ``t ↦ (A_i(t), b_i(t))``
        Source ``i``'s score ``s_i(x, t) = −A_i(t)x + b_i(t)`` (the convention of :mod:`closed_form.laws`):
        :meth:`Composition.source_fields` for exact Gaussian scores, with an error added by
        :func:`~closed_form.add_fields` (e.g. an :class:`~closed_form.perturbations.AffineScoreError`'s ``field``).
        Any ``A_i``: symmetric or not, consistent with a diffusion or not.
    weights : sequence of float
        Composition weights, one per field.
    schedule : VPSchedule or CosineSchedule
    start : Gaussian
        Law of the particles at the first grid time ``T − eps`` (``N(0, I)`` in the paper; ``π_{T−eps}`` makes the
        exact-score limit ``π_{t_min}``).
    n_steps : int or None
        ``None``: continuous time (Riccati equations, module doc). An integer: the exact limit of
        ``fkc_sample(..., n_steps=n_steps, eps=eps)`` with ``weight_clip=None`` and no corrector, on its grid.
    t_min : float, optional
        End time of the continuous limit, ``0 ≤ t_min < T − eps``; default ``eps`` (the grid's last time). The
        discrete limit ends at its grid's last time ``eps`` and accepts no other ``t_min``.
    eps : float
        Clamp of the time grid, ``0 ≤ eps < T/2``.
    rtol : float
        Relative tolerance of the continuous integration (DOP853, step at most 1/16 of the span), in
        ``(0, 1e-3)``.

    Returns
    -------
    FKCLimit
        ``law`` (normalized Gaussian) and ``log_mass``.

    Raises
    ------
    WeightsNotIntegrableError
        Where ``exp(h g)`` is not integrable against the particle law (module doc): FKC has no limit.
    ShapeMismatchError
        No fields, a weight count that differs from the field count, or fields whose output does not match the
        start's dimension.
    NonFiniteInputError
        Non-finite weights or field values.
    InvalidTimeError
        ``t_min`` outside ``[0, T − eps)``, or given with ``n_steps`` and different from ``eps``.
    CatcompError
        A start that is not a :class:`Gaussian`, a non-positive ``n_steps``, an ``eps`` outside ``[0, T/2)``, an
        ``rtol`` outside ``(0, 1e-3)``.
    """
    _check_start(start)
    fields = tuple(source_fields) if isinstance(source_fields, (tuple, list)) else (source_fields,)
    weights = check_weights_for(fields, weights, "source field")
    for f in fields:
        if not callable(f):
            raise CatcompError(f"every source field must be callable as t ↦ (A_t, b_t), got {type(f).__name__}.")
    if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer))
                                or n_steps < 1):
        raise CatcompError(f"n_steps must be None (continuous time) or a positive integer, got {n_steps!r}.")
    t_max = float(reverse_time_grid(schedule, 1, eps)[0])  # validates eps
    potential = _Potential(fields, weights, schedule, start.dim)
    if n_steps is not None:
        if t_min is not None and float(t_min) != float(eps):
            raise InvalidTimeError(
                f"the discrete limit ends at the grid's last time eps = {eps}; got t_min = {t_min}. Pass t_min=None "
                "(or n_steps=None for the continuous limit at t_min)."
            )
        return _discrete(potential, schedule, start, int(n_steps), eps)
    t_min = float(eps) if t_min is None else float(t_min)
    if not (math.isfinite(t_min) and 0.0 <= t_min < t_max):
        raise InvalidTimeError(f"t_min must lie in [0, T − eps) = [0, {t_max}), got {t_min}.")
    if not (0.0 < rtol < 1e-3):
        raise CatcompError(f"rtol must lie in (0, 1e-3), got {rtol!r}.")
    return _continuous(potential, start, t_max, t_min, rtol)


__all__ = ["FKCLimit", "fkc_limit_law"]
