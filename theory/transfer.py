r"""Where the training error is paid: the change-of-measure (transfer) bound [ours].

Score matching controls ``‖δ‖_{L²(p)}`` (``p`` = the diffused source, where the model was trained); sampling a
composed target pays ``‖δ‖`` under ``q`` (the diffused target ``Q_t`` or the path ``π_t``). With ``r = dq/dp`` and
``E_p r² = 1 + χ²(q‖p) = rESS⁻¹``, Cauchy–Schwarz gives

.. math:: E_q\|δ\|^2 = E_p[r\,\|δ\|^2] \le \sqrt{1 + χ^2(q\|p)}\,\sqrt{E_p\|δ\|^4},
.. math:: E_q\|δ\| = E_p[r\,\|δ\|] \le \sqrt{1 + χ^2(q\|p)}\,\|δ\|_{L^2(p)},

the second with equality iff ``‖δ‖ ∝ r`` (:class:`closed_form.perturbations.DensityRatioError`), so no smaller factor
holds for every error of a given training size. The factor is infinite in the paper's OOD settings at ``t = 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from closed_form.divergences import ress_inverse
from closed_form.gaussian import Gaussian
from closed_form.fields import _pytree_form, _pytree_jit
from closed_form.perturbations import AffineScoreError, DensityPowerError, DensityRatioError
from closed_form.quadrature import cubature_logpdf, gaussian_box, integrate_function


class TransferBound(NamedTuple):
    """Measured sampling-side moments of an error beside their change-of-measure bounds.

    ``sq_measured = E_q‖δ‖²`` vs ``sq_bound = √rESS⁻¹ · √(E_p‖δ‖⁴)``; ``abs_measured = E_q‖δ‖`` vs
    ``abs_bound = √rESS⁻¹ · ‖δ‖_{L²(p)}``. ``method`` says how ``abs_measured`` was computed.
    """

    ress_inverse: float
    train_norm: float
    sq_measured: float
    sq_bound: float
    abs_measured: float
    abs_bound: float
    method: str

    @property
    def holds(self) -> bool:
        """Both inequalities hold (to a relative ``1e-9`` for quadrature error)."""
        return bool(
            self.sq_measured <= self.sq_bound * (1 + 1e-9) and self.abs_measured <= self.abs_bound * (1 + 1e-9)
        )


def _second_and_fourth(error, dist, t):
    if isinstance(error, AffineScoreError):
        return float(error.norm_under(dist, t) ** 2), float(error.fourth_moment_under(dist, t))
    if isinstance(error, DensityPowerError):
        return float(error.sq_norm_under(dist, t)), float(error.fourth_moment_under(dist, t))
    raise TypeError(f"no closed-form moments for {type(error).__name__}; use an affine or density-power error.")


def _abs_moment(error, dist: Gaussian, t, rtol=1e-10):
    """``E_dist‖δ‖`` by adaptive cubature over ±15σ of ``dist`` (1-D and 2-D)."""
    if dist.dim > 2:
        raise ValueError("the first absolute moment is computed by cubature in dimensions 1 and 2 only.")
    lower, upper = gaussian_box([(np.asarray(dist.mean), np.asarray(dist.cov))])
    logq = cubature_logpdf(dist)
    delta = _cubature_delta(error, t)

    def f(x):
        return np.exp(np.asarray(logq(x))) * np.linalg.norm(np.asarray(delta(x)), axis=-1)

    return integrate_function(f, lower, upper, rtol=rtol, atol=1e-14)


def _cubature_delta(error, t):
    """``x ↦ δ(x, t)`` for cubature, which calls it on point sets ``(n, d)`` of many sizes ``n``: the same formulas in
    NumPy for an affine error (``−x Aᵀ + b``, ``A``, ``b`` evaluated once) and the ratio-shaped error (its two Gaussian
    log-densities in NumPy, as :func:`~closed_form.quadrature.cubature_logpdf`); otherwise ``error.delta`` on the
    points padded to a power-of-two count of rows, so that a compiled ``delta`` meets a few shapes, not one per call."""
    if isinstance(error, AffineScoreError):
        compiled = _pytree_jit(_pytree_form(error.field))
        a, b = (np.asarray(v, dtype=np.float64) for v in (compiled or error.field)(t))
        return lambda x: -np.asarray(x, dtype=np.float64) @ a.T + b
    if isinstance(error, DensityRatioError):
        logq, logp = cubature_logpdf(error.q), cubature_logpdf(error.p)
        scale, u = error.eps / np.sqrt(error.ress_inverse), np.asarray(error.u, dtype=np.float64)
        return lambda x: (scale * np.exp(logq(x) - logp(x)))[..., None] * u

    def padded(x):
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        if n == 0:
            return np.asarray(error.delta(x, t))
        size = max(64, 1 << max(n - 1, 0).bit_length())
        rows = np.concatenate([x, np.repeat(x[:1], size - n, axis=0)]) if size > n else x
        return np.asarray(error.delta(rows, t))[:n]

    return padded


def transfer_bound(error, p: Gaussian, q: Gaussian, t=0.0) -> TransferBound:
    r"""The change-of-measure bounds for ``error`` at time ``t``, trained under ``p`` and paid under ``q``.

    Second and fourth moments are exact (trace/Isserlis formulas for affine errors, Gaussian quadratic-form MGFs for
    the density-power error); ``E_q‖δ‖`` is computed by adaptive cubature (1-D/2-D), an independent route.
    ``rESS⁻¹ = 1 + χ²(q‖p)`` is exact and may be ``inf`` (then both bounds are ``inf``).
    """
    ress_inv = ress_inverse(q, p)
    train_sq, train_fourth = _second_and_fourth(error, p, t)
    sq_q, _ = _second_and_fourth(error, q, t)
    abs_q = _abs_moment(error, q, t)
    with np.errstate(invalid="ignore"):
        sq_bound = float(np.sqrt(ress_inv) * np.sqrt(train_fourth))
        abs_bound = float(np.sqrt(ress_inv) * np.sqrt(train_sq))
    return TransferBound(ress_inv, float(np.sqrt(train_sq)), sq_q, sq_bound, abs_q, abs_bound, "exact/cubature")


def ratio_error_abs_moment(error, q: Gaussian) -> float:
    r"""``E_q‖δ‖`` of a :class:`~closed_form.perturbations.DensityRatioError` by cubature (its ``delta`` ignores ``t``)."""
    return _abs_moment(error, q, None)
