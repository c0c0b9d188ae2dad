r"""How far a target lies outside its sources, exactly: ``rESS⁻¹ = 1 + χ²(Q‖P_i)`` and mass outside highest-density
regions.

* Relative effective sample size [paper, revision]: with ``w = dQ/dP``,
  ``rESS⁻¹ = E_P[w²]/(E_P w)² = E_P[w²] = 1 + χ²(Q‖P)`` (:func:`closed_form.divergences.ress_inverse`; infinite
  unless ``2Σ_P − Σ_Q ≻ 0``), here along the diffusion (:func:`ress_inverse_along_t`).
* The fraction of ``Q``'s mass outside the ``level`` highest-density region (HDR) of ``P`` [paper: the authors'
  OOD quantifier]. For ``P = N(μ, Σ)`` the HDR is ``{(x−μ)ᵀΣ⁻¹(x−μ) ≤ χ²_d(level)}`` and, under ``Q = N(m, S)``, the
  quadratic form is a generalized chi-square ``Σ_j λ_j (z_j + c_j)²`` whose tail is computed by Imhof's (1961)
  inversion formula to ~1e-10 (:mod:`closed_form.generalized_chi2`).

Their Monte Carlo counterparts for mixtures (estimates with standard errors) are in :mod:`verify.analysis.montecarlo`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from closed_form.divergences import ress_inverse
from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.gaussian import Gaussian
from closed_form.generalized_chi2 import generalized_chi2_sf


def gaussian_hdr_threshold(dim: int, level: float = 0.95) -> float:
    """The squared Mahalanobis radius ``χ²_d(level)`` of a Gaussian's ``level`` highest-density region."""
    if not 0.0 < level < 1.0:
        raise CatcompError(f"level must lie in (0, 1), got {level}.")
    return float(stats.chi2.ppf(level, dim))


def fraction_outside_hdr(q: Gaussian, p: Gaussian, level: float = 0.95) -> float:
    r"""Exact ``Q(x ∉ HDR_level(P))`` for Gaussians: the tail of ``(x−μ_p)ᵀΣ_p⁻¹(x−μ_p)`` under ``x ~ Q``.

    With ``S = L Lᵀ`` (``Q``'s covariance) and ``B = Lᵀ Σ_p⁻¹ L = U diag(λ) Uᵀ``, the form equals
    ``Σ_j λ_j (z_j + c_j)²`` with ``c = Uᵀ L⁻¹ (m − μ_p)``.
    """
    if q.dim != p.dim:
        raise ShapeMismatchError(f"q has dimension {q.dim} and p has {p.dim}; they must match.")
    chol = np.asarray(q.chol)
    prec_p = np.asarray(p.precision)
    lam, u = np.linalg.eigh(chol.T @ prec_p @ chol)
    c = u.T @ np.linalg.solve(chol, np.asarray(q.mean) - np.asarray(p.mean))
    return generalized_chi2_sf(gaussian_hdr_threshold(p.dim, level), lam, c)


def ress_inverse_along_t(composition, schedule, times) -> np.ndarray:
    r"""``1 + χ²(Q_t‖q^i_t)`` for every source ``i`` (rows: times, columns: sources); Gaussian target and sources.

    By the data-processing inequality it never increases with ``t`` (the forward diffusion is one Markov kernel
    applied to both)."""
    rows = []
    for t in times:
        q_t = composition.noised_target(schedule, float(t))
        rows.append([ress_inverse(q_t, s.noised(schedule, float(t))) for s in composition.sources])
    return np.asarray(rows)


__all__ = ["fraction_outside_hdr", "gaussian_hdr_threshold", "ress_inverse_along_t"]
