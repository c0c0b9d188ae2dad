r"""How far a target lies outside its sources: ``rESS⁻¹ = 1 + χ²(Q‖P_i)`` and mass outside highest-density regions.

* Relative effective sample size [paper, revision]: with ``w = dQ/dP``,
  ``rESS⁻¹ = E_P[w²]/(E_P w)² = E_P[w²] = 1 + χ²(Q‖P)``. Exact for Gaussians (infinite unless ``2Σ_P − Σ_Q ≻ 0``);
  Monte Carlo with a standard error otherwise, as ``E_Q[dQ/dP]`` under draws of ``Q``.
* The fraction of ``Q``'s mass outside the ``level`` highest-density region (HDR) of ``P`` [paper: the authors'
  OOD quantifier]. For ``P = N(μ, Σ)`` the HDR is ``{(x−μ)ᵀΣ⁻¹(x−μ) ≤ χ²_d(level)}`` and, under ``Q = N(m, S)``, the
  quadratic form is a generalized chi-square ``Σ_j λ_j (z_j + c_j)²`` whose tail is computed by Imhof's (1961)
  inversion formula to ~1e-10.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from scipy import integrate, stats

from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.gaussian import Gaussian


class MonteCarloEstimate(NamedTuple):
    """A Monte Carlo estimate with its standard error and sample size."""

    value: float
    stderr: float
    n: int


def ress_inverse(q: Gaussian, p: Gaussian) -> float:
    r"""``rESS⁻¹ = 1 + χ²(q‖p)`` between Gaussians, exactly; ``inf`` when ``2Σ_p − Σ_q`` is not positive definite."""
    from closed_form.divergences import chi2

    return 1.0 + float(chi2(q, p))


def ress_inverse_monte_carlo(log_q, p, samples_q) -> MonteCarloEstimate:
    r"""``1 + χ²(Q‖P) = E_Q[Q/P]`` from draws ``samples_q`` of ``Q``; ``log_q`` is ``Q``'s *normalized* log density.

    The standard error is ``std(Q/P)/√n``; it is itself unreliable when ``E_Q[(Q/P)²]`` is infinite, which the
    caller should rule out (e.g. by the tail precisions).
    """
    x = jnp.asarray(samples_q)
    r = np.exp(np.asarray(log_q(x)) - np.asarray(p.logpdf(x)))
    return MonteCarloEstimate(float(r.mean()), float(r.std(ddof=1) / np.sqrt(r.size)), int(r.size))


def generalized_chi2_sf(y: float, lambdas, offsets, normal_sd: float = 0.0) -> float:
    r"""``P(Σ_j λ_j (z_j + c_j)² + σ z₀ > y)`` for independent standard normals ``z`` and non-zero real ``λ_j`` of
    either sign (Imhof 1961; the normal term's characteristic function at Imhof's ``u/2`` is ``e^{−σ²u²/8}``):

    .. math:: P(Y > y) = \tfrac12 + \frac1π \int_0^∞ \frac{\sin θ(u)}{u\,ρ(u)}\,du,\quad
              θ(u) = \tfrac12\sum_j\Big[\arctan(λ_j u) + \frac{c_j^2 λ_j u}{1 + λ_j^2u^2}\Big] − \tfrac12 y u,

    .. math:: ρ(u) = \prod_j (1 + λ_j^2u^2)^{1/4} \exp\Big(\tfrac12\sum_j \frac{c_j^2 λ_j^2 u^2}{1 + λ_j^2 u^2}
              + \tfrac18 σ^2u^2\Big).
    """
    lam = np.asarray(lambdas, dtype=np.float64).ravel()
    c2 = np.asarray(offsets, dtype=np.float64).ravel() ** 2
    if lam.shape != c2.shape:
        raise ShapeMismatchError(f"lambdas {lam.shape} and offsets {c2.shape} must have the same length.")
    if np.any(lam == 0) or not np.all(np.isfinite(lam)):
        raise CatcompError(f"generalized_chi2_sf needs finite non-zero weights λ, got {lam.tolist()}.")
    if lam.size == 0 and normal_sd == 0:
        return float(0.0 > y)
    if np.all(lam > 0) and normal_sd == 0 and y <= 0:
        return 1.0

    def parts(u):
        """``φ(u) = θ(u) + ½yu`` and ``1/(u ρ(u))``: both smooth, the oscillation is left in ``½yu``."""
        lu = lam * u
        phi = 0.5 * np.sum(np.arctan(lu) + c2 * lu / (1 + lu**2))
        log_rho = 0.25 * np.sum(np.log1p(lu**2)) + 0.5 * np.sum(c2 * lu**2 / (1 + lu**2)) + 0.125 * (normal_sd * u) ** 2
        return phi, np.exp(-log_rho) / u

    def integrand(u):
        phi, amp = parts(u)
        return np.sin(phi - 0.5 * y * u) * amp

    # Near 0 an adaptive rule; beyond, sin(φ − ωu) = sin φ cos ωu − cos φ sin ωu with ω = y/2 and QUADPACK's
    # Fourier-integral rule (QAWF) for the slowly decaying oscillatory tail (plain quadrature when y = 0).
    scale = np.abs(lam).min() if lam.size else 1.0 / normal_sd
    split = 20.0 / scale if y == 0 else max(20.0 / scale, 40.0 * np.pi / abs(y))
    head = integrate.quad(integrand, 0.0, split, limit=5000, epsabs=1e-13, epsrel=1e-12)[0]
    if y == 0:
        tail = integrate.quad(integrand, split, np.inf, limit=5000, epsabs=1e-13, epsrel=1e-12)[0]
    else:
        omega = 0.5 * y
        tail_cos = integrate.quad(lambda u: np.sin(parts(u)[0]) * parts(u)[1], split, np.inf, weight="cos",
                                  wvar=omega, limlst=200, epsabs=1e-14)[0]
        tail_sin = integrate.quad(lambda u: np.cos(parts(u)[0]) * parts(u)[1], split, np.inf, weight="sin",
                                  wvar=omega, limlst=200, epsabs=1e-14)[0]
        tail = tail_cos - tail_sin
    return float(np.clip(0.5 + (head + tail) / np.pi, 0.0, 1.0))


def _prob_log_ratio_positive(x_law: Gaussian, p: Gaussian, q: Gaussian) -> float:
    r"""``P_{x ~ x_law}(log p(x) − log q(x) > 0)``, exactly: with ``x = m + Lz``, the log ratio is the quadratic
    ``½zᵀKz + hᵀz + D(m)`` (``K = −Lᵀ(Λ_p − Λ_q)L``); diagonalizing ``K = U diag(κ)Uᵀ`` turns it into
    ``Σ_{κ_j≠0} ½κ_j(w_j + g_j/κ_j)² + σ z₀ + const`` with ``g = Uᵀh`` and ``σ`` the norm of ``g`` over ``κ_j = 0``,
    a generalized chi-square (:func:`generalized_chi2_sf`)."""
    lam_p, lam_q = np.asarray(p.precision), np.asarray(q.precision)
    m, chol = np.asarray(x_law.mean), np.asarray(x_law.chol)
    d_lam = lam_p - lam_q
    eta = lam_p @ np.asarray(p.mean) - lam_q @ np.asarray(q.mean)
    d_m = float(np.asarray(p.logpdf(m)) - np.asarray(q.logpdf(m)))
    k = -chol.T @ d_lam @ chol
    kappa, u = np.linalg.eigh(0.5 * (k + k.T))
    g = u.T @ (chol.T @ (eta - d_lam @ m))
    nonzero = np.abs(kappa) > 1e-12 * max(1.0, np.abs(kappa).max())
    lam = 0.5 * kappa[nonzero]
    offsets = g[nonzero] / kappa[nonzero]
    const = d_m - np.sum(g[nonzero] ** 2 / (2 * kappa[nonzero]))
    sigma = float(np.linalg.norm(g[~nonzero]))
    if lam.size == 0 and sigma == 0:
        return float(const > 0)
    return generalized_chi2_sf(-const, lam, offsets, sigma)


def total_variation_gaussians(p: Gaussian, q: Gaussian) -> float:
    r"""Exact ``TV(p, q) = P_p(A) − P_q(A)``, ``A = {log p − log q > 0}``, each probability a generalized chi-square
    tail (:func:`_prob_log_ratio_positive`); accurate to ~1e-10 (an independent route to the cubature of
    :func:`closed_form.quadrature.total_variation`)."""
    if p.dim != q.dim:
        raise ShapeMismatchError(f"p has dimension {p.dim} and q has {q.dim}; they must match.")
    return max(_prob_log_ratio_positive(p, p, q) - _prob_log_ratio_positive(q, p, q), 0.0)


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


def hdr_log_density_threshold(p, key, level: float = 0.95, n: int = 200_000) -> float:
    r"""The log-density level ``ℓ`` with ``P(log p(X) ≥ ℓ) = level``: the ``1 − level`` quantile of ``log p(X)``,
    ``X ~ P``. Exact for a Gaussian (chi-square quantile); Monte Carlo (``n`` draws) for a mixture."""
    if isinstance(p, Gaussian):
        const = -0.5 * p.dim * np.log(2 * np.pi) - 0.5 * float(p.logdet_cov)
        return const - 0.5 * gaussian_hdr_threshold(p.dim, level)
    logp = np.asarray(p.logpdf(p.sample(key, n)))
    return float(np.quantile(logp, 1.0 - level))


def fraction_outside_hdr_monte_carlo(samples_q, sources, thresholds) -> dict:
    r"""Monte Carlo fractions of draws of ``Q`` outside each source's HDR (``log p_i(x) < ℓ_i``) and outside all
    of them at once, each as a :class:`MonteCarloEstimate` (binomial standard error)."""
    x = jnp.asarray(samples_q)
    outside = np.stack([np.asarray(p.logpdf(x)) < thr for p, thr in zip(sources, thresholds)])
    n = x.shape[0]

    def est(flags):
        f = float(flags.mean())
        return MonteCarloEstimate(f, float(np.sqrt(max(f * (1 - f), 1.0 / n) / n)), n)

    return {"each": [est(o) for o in outside], "all": est(np.all(outside, axis=0))}


def ress_inverse_along_t(composition, schedule, times) -> np.ndarray:
    r"""``1 + χ²(Q_t‖q^i_t)`` for every source ``i`` (rows: times, columns: sources); Gaussian target and sources.

    By the data-processing inequality it never increases with ``t`` (the forward diffusion is one Markov kernel
    applied to both)."""
    rows = []
    for t in times:
        q_t = composition.noised_target(schedule, float(t))
        rows.append([ress_inverse(q_t, s.noised(schedule, float(t))) for s in composition.sources])
    return np.asarray(rows)


__all__ = [
    "MonteCarloEstimate",
    "fraction_outside_hdr",
    "fraction_outside_hdr_monte_carlo",
    "gaussian_hdr_threshold",
    "generalized_chi2_sf",
    "hdr_log_density_threshold",
    "ress_inverse",
    "ress_inverse_along_t",
    "ress_inverse_monte_carlo",
    "total_variation_gaussians",
]
