r"""Exact divergences between Gaussians: KL, Wasserstein-2 (Bures), χ² (and ``1 + χ²``) and total variation.

For ``p = N(μ_p, Σ_p)``, ``q = N(μ_q, Σ_q)`` in ``d`` dimensions, ``Δ = μ_p − μ_q``, Cholesky factors
``Σ = L Lᵀ``:

.. math::
    \mathrm{KL}(p\,\|\,q) &= \tfrac12\Big[\operatorname{tr}(Σ_q^{-1}Σ_p) + Δ^\top Σ_q^{-1} Δ − d
                              + \log\frac{|Σ_q|}{|Σ_p|}\Big],\\
    W_2^2(p, q) &= \lVert Δ\rVert^2 + \operatorname{tr}\big(Σ_p + Σ_q − 2(Σ_q^{1/2}Σ_pΣ_q^{1/2})^{1/2}\big),\\
    1 + χ^2(p\,\|\,q) &= \int \frac{p^2}{q}
        = \frac{|Σ_q|}{|Σ_p|^{1/2}\,|2Σ_q − Σ_p|^{1/2}}\exp\big(Δ^\top(2Σ_q − Σ_p)^{-1}Δ\big)
        \quad\text{if } 2Σ_q − Σ_p \succ 0,\ \text{else } +\infty.

KL, ``W₂`` and χ² are written in JAX (float64, traceable: ``jit``/``grad`` work) and return 0-d float64 arrays;
:func:`ress_inverse` (``1 + χ²`` as a Python float) and :func:`total_variation_gaussians` (``TV = P_p(A) − P_q(A)``
with ``A = {p > q}``, each probability a generalized chi-square tail, :mod:`closed_form.generalized_chi2`) are
NumPy/SciPy and return floats. References:
[1] Pardo, *Statistical Inference Based on Divergence Measures* (2006), for KL and χ² between Gaussians;
[2] Peyré & Cuturi, *Computational Optimal Transport* (2019), Remark 2.31, for the Bures form of ``W_2``.
Derivations are in ``paper_notes.md``; each is tested against an independent route in ``tests/test_divergences.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from scipy import integrate

from closed_form.errors import ShapeMismatchError
from closed_form.gaussian import Gaussian
from closed_form.generalized_chi2 import generalized_chi2_sf


def _check_pair(p, q):
    if not (isinstance(p, Gaussian) and isinstance(q, Gaussian)):
        raise TypeError(f"expected two Gaussian objects, got {type(p).__name__} and {type(q).__name__}.")
    if p.dim != q.dim:
        raise ShapeMismatchError(f"the Gaussians have dimensions {p.dim} and {q.dim}; both must have one dimension.")


def kl(p: Gaussian, q: Gaussian):
    r"""``KL(p‖q) = ∫ p log(p/q)`` between Gaussians.

    Computed from the eigenvalues ``λ_j`` of the whitened covariance ``S = L_q^{-1}Σ_pL_q^{-\top}`` as

    .. math:: \mathrm{KL}(p\,\|\,q) = \tfrac12\sum_j\big(λ_j − 1 − \log λ_j\big) + \tfrac12\lVert L_q^{-1}Δ\rVert^2,

    which equals the trace formula of the module doc and keeps each term non-negative (no cancellation between
    ``tr`` and ``log det``), so ``KL(p‖p)`` is zero to rounding.
    """
    _check_pair(p, q)
    return _kl(p, q)


# kl, w2 and log1p_chi2 run as one jitted program per dimension (the Gaussians are pytree arguments) rather than as
# chains of eager single operations compiled for every new shape; the operations, and the values, are the same.
@jax.jit
def _kl(p, q):
    whitened = solve_triangular(q.chol, p.chol, lower=True)  # L_q⁻¹ L_p, so S = whitened whitenedᵀ
    lam = jnp.linalg.eigvalsh(whitened @ whitened.T)
    x = lam - 1.0
    z = solve_triangular(q.chol, p.mean - q.mean, lower=True)
    return 0.5 * jnp.sum(x - jnp.log1p(x)) + 0.5 * jnp.sum(z**2)


def w2(p: Gaussian, q: Gaussian):
    r"""Wasserstein-2 distance ``W₂(p, q)`` between Gaussians with full covariances (Bures–Wasserstein).

    The Bures term is computed as an orthogonal Procrustes residual: with the SVD ``L_q^\top L_p = W S V^\top`` and
    ``U = W V^\top``,

    .. math:: W_2^2 = \lVert Δ\rVert^2 + \min_{U^\top U = I}\lVert L_p − L_q U\rVert_F^2
                   = \lVert Δ\rVert^2 + \lVert L_p\rVert_F^2 + \lVert L_q\rVert_F^2 − 2\lVert L_q^\top L_p\rVert_*,

    the last form being the module's trace formula (the square roots of the eigenvalues of ``Σ_q^{1/2}Σ_pΣ_q^{1/2}``
    are the singular values of ``L_q^\top L_p``). The residual form has no cancellation, so ``W₂(p, p)`` is zero to
    rounding (``~1e-16``) instead of ``~1e-8`` for the difference of traces.
    """
    _check_pair(p, q)
    return _w2(p, q)


@jax.jit
def _w2(p, q):
    w, _, vt = jnp.linalg.svd(q.chol.T @ p.chol)
    residual = p.chol - q.chol @ (w @ vt)
    return jnp.sqrt(jnp.sum((p.mean - q.mean) ** 2) + jnp.sum(residual**2))


def log1p_chi2(p: Gaussian, q: Gaussian):
    r"""``log(1 + χ²(p‖q)) = log ∫ p²/q`` between Gaussians; ``+inf`` unless ``2Σ_q − Σ_p`` is positive definite.

    With ``M = 2Σ_q − Σ_p`` (eigen-decomposed, so that the test ``M ≻ 0`` and the solve share one factorization),

    .. math:: \log\big(1 + χ^2(p\,\|\,q)\big) = \log|Σ_q| − \tfrac12\log|Σ_p| − \tfrac12\log|M| + Δ^\top M^{-1}Δ.

    This is ``−log rESS`` of importance sampling ``p`` with proposal ``q``; in log form it stays finite where
    ``χ²`` itself would overflow.
    """
    _check_pair(p, q)
    return _log1p_chi2(p, q)


@jax.jit
def _log1p_chi2(p, q):
    m = 2.0 * q.cov - p.cov
    eig, vec = jnp.linalg.eigh(0.5 * (m + m.T))
    proper = eig[0] > 0.0
    safe = jnp.where(proper, eig, 1.0)
    proj = vec.T @ (p.mean - q.mean)
    log_ratio = q.logdet_cov - 0.5 * p.logdet_cov - 0.5 * jnp.sum(jnp.log(safe)) + jnp.sum(proj**2 / safe)
    # log(1 + χ²) ≥ 0 exactly; the clip removes rounding of order 1e-16 when p = q.
    return jnp.where(proper, jnp.maximum(log_ratio, 0.0), jnp.inf)


def chi2(p: Gaussian, q: Gaussian):
    r"""``χ²(p‖q) = ∫ p²/q − 1`` between Gaussians; ``+inf`` unless ``2Σ_q − Σ_p`` is positive definite.

    ``p²/q ∝ exp(−xᵀ(Σ_p^{-1} − ½Σ_q^{-1})x + …)`` is integrable iff ``2Σ_p^{-1} − Σ_q^{-1} ≻ 0``, i.e. iff
    ``2Σ_q − Σ_p ≻ 0`` (matrix inversion reverses the Loewner order). Then ``χ² = expm1`` of
    :func:`log1p_chi2` (accurate when ``χ²`` is small). This is ``rESS⁻¹ − 1`` of importance sampling ``p``
    with proposal ``q``. On the boundary (``M`` singular) the integral diverges, and ``inf`` is returned.
    """
    # expm1(inf) = inf, so the improper case passes through.
    return jnp.expm1(log1p_chi2(p, q))


def ress_inverse(q: Gaussian, p: Gaussian) -> float:
    r"""``rESS⁻¹ = 1 + χ²(q‖p)`` between Gaussians, exactly; ``inf`` when ``2Σ_p − Σ_q`` is not positive definite."""
    return 1.0 + float(chi2(q, p))


#: Above this limit of the characteristic function's Gaussian exponent, ``lim_t E(t) = Σ_j g_j²/(8λ_j²)`` (or when a
#: purely linear direction is present, ``E → ∞``), the log ratio is computed by the uncompleted Gil-Pelaez route
#: (:func:`_tail_uncompleted`), whose integrand is below ``e^{-TRUNCATION_EXPONENT}`` beyond a finite ``t``. Below it
#: the completed-square offsets ``c_j = g_j/κ_j`` are moderate (``c_j² ≤ 2·COMPLETED_SQUARE_LIMIT``) and Imhof's
#: formula (:func:`generalized_chi2_sf`) is well conditioned.
COMPLETED_SQUARE_LIMIT = 120.0
#: Exponent at which the Gil-Pelaez integral is truncated: the neglected tail is below ``e^{-60} ≈ 1e-26`` times a
#: factor of order one (the integrand also carries ``Π_j (1 + 4λ_j²t²)^{-1/4}/t``).
TRUNCATION_EXPONENT = 60.0


def _gaussian_exponent(t, lam, g, sigma):
    """``E(t) = Σ_j g_j²t²/(2(1 + 4λ_j²t²)) + σ²t²/2``: minus the log of the Gaussian factor of ``|φ_Y(t)|``."""
    return float(np.sum(g**2 * t**2 / (2.0 * (1.0 + 4.0 * lam**2 * t**2))) + 0.5 * (sigma * t) ** 2)


def _tail_uncompleted(lam, g, sigma: float, const: float) -> float:
    r"""``P(Y > 0)`` for ``Y = Σ_j (λ_j w_j² + g_j w_j) + σ w₀ + D`` (independent standard normals ``w``), by the
    Gil-Pelaez inversion of its characteristic function *without completing the square*:

    .. math:: P(Y > 0) = \tfrac12 + \frac1π\int_0^∞ \frac{\operatorname{Im} φ_Y(t)}{t}\,dt,\qquad
              φ_Y(t) = e^{itD − σ²t²/2}\prod_j (1 − 2iλ_jt)^{-1/2}
                       \exp\Big(−\frac{g_j^2t^2}{2(1 − 2iλ_jt)}\Big),

    so ``Im φ_Y = |φ_Y| sin θ`` with ``θ(t) = tD + Σ_j[½ arctan(2λ_jt) − g_j²λ_jt³/(1 + 4λ_j²t²)]`` and
    ``log|φ_Y| = −Σ_j ¼ log(1 + 4λ_j²t²) − E(t)``. Nothing divides by ``λ_j``, so a nearly linear direction
    (``λ_j → 0`` with ``g_j ≠ 0``, nearly equal covariances) is as well conditioned as a linear one; it is only used
    when ``E(t)`` exceeds :data:`TRUNCATION_EXPONENT` at a finite ``t_max`` (found by bisection, ``E`` increases),
    where the integral is truncated."""
    lam, g = np.asarray(lam, dtype=np.float64), np.asarray(g, dtype=np.float64)
    hi = 1.0
    while _gaussian_exponent(hi, lam, g, sigma) < TRUNCATION_EXPONENT:
        hi *= 2.0
    lo = 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _gaussian_exponent(mid, lam, g, sigma) < TRUNCATION_EXPONENT:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break

    def integrand(t):
        lt = 2.0 * lam * t
        theta = t * const + np.sum(0.5 * np.arctan(lt) - g**2 * lam * t**3 / (1.0 + lt**2))
        log_amp = -0.25 * np.sum(np.log1p(lt**2)) - _gaussian_exponent(t, lam, g, sigma)
        return np.sin(theta) * np.exp(log_amp) / t

    # Enough sub-intervals that each holds a few oscillations of the linear phase tD at most.
    n_pieces = int(min(2000, max(8, np.ceil(abs(const) * hi / np.pi))))
    edges = np.linspace(0.0, hi, n_pieces + 1)
    total = sum(integrate.quad(integrand, a, b, limit=200, epsabs=1e-15, epsrel=1e-13)[0]
                for a, b in zip(edges[:-1], edges[1:]))
    return float(np.clip(0.5 + total / np.pi, 0.0, 1.0))


def _prob_log_ratio_positive(x_law: Gaussian, p: Gaussian, q: Gaussian) -> float:
    r"""``P_{x ~ x_law}(log p(x) − log q(x) > 0)``, exactly: with ``x = m + Lz``, the log ratio is the quadratic
    ``½zᵀKz + hᵀz + D(m)`` (``K = −Lᵀ(Λ_p − Λ_q)L``); diagonalizing ``K = U diag(κ)Uᵀ`` turns it into
    ``Σ_j (½κ_j w_j² + g_j w_j) + D`` with ``g = Uᵀh``.

    Three routes, by conditioning: no quadratic term left (``κ = 0`` to rounding, equal covariances) — the log ratio
    is normal, ``Φ(D/‖g‖)``; moderate completed-square offsets ``c_j = g_j/κ_j`` — completing the square gives a
    generalized chi-square (:func:`generalized_chi2_sf`, Imhof); otherwise (a linear direction, or a nearly linear
    one: nearly equal covariances, where ``c_j → ∞`` and completing the square cancels catastrophically) —
    :func:`_tail_uncompleted`."""
    from scipy.stats import norm

    lam_p, lam_q = np.asarray(p.precision), np.asarray(q.precision)
    m, chol = np.asarray(x_law.mean), np.asarray(x_law.chol)
    d_lam = lam_p - lam_q
    eta = lam_p @ np.asarray(p.mean) - lam_q @ np.asarray(q.mean)
    # log p(m) − log q(m) from the residuals (one of them is exactly 0 for m = μ_p or μ_q), not as a difference of
    # two log-densities of order one, which would lose the small value of nearly equal laws to rounding.
    r_p, r_q = m - np.asarray(p.mean), m - np.asarray(q.mean)
    d_m = float(-0.5 * r_p @ lam_p @ r_p + 0.5 * r_q @ lam_q @ r_q
                + 0.5 * (float(q.logdet_cov) - float(p.logdet_cov)))
    k = -chol.T @ d_lam @ chol
    kappa, u = np.linalg.eigh(0.5 * (k + k.T))
    g = u.T @ (chol.T @ (eta - d_lam @ m))
    nonzero = np.abs(kappa) > 1e-12 * max(1.0, np.abs(kappa).max())
    sigma = float(np.linalg.norm(g[~nonzero]))
    lam, g_q = 0.5 * kappa[nonzero], g[nonzero]
    if lam.size == 0:
        return float(norm.sf(-d_m / sigma)) if sigma > 0 else float(d_m > 0)
    if sigma == 0 and float(np.sum(g_q**2 / (8.0 * lam**2))) <= COMPLETED_SQUARE_LIMIT:
        offsets = g_q / kappa[nonzero]
        const = d_m - np.sum(g_q**2 / (2 * kappa[nonzero]))
        return generalized_chi2_sf(-const, lam, offsets, 0.0)
    return _tail_uncompleted(lam, g_q, sigma, d_m)


def total_variation_gaussians(p: Gaussian, q: Gaussian) -> float:
    r"""Exact ``TV(p, q) = P_p(A) − P_q(A)``, ``A = {log p − log q > 0}``, each probability the tail of the log ratio
    (:func:`_prob_log_ratio_positive`: a generalized chi-square, or, for nearly equal covariances, the uncompleted
    Gil-Pelaez integral); equal covariances give ``erf(δ/(2√2)) = 2Φ(δ/2) − 1`` with ``δ`` the Mahalanobis distance
    of the means. Accurate to ~1e-10 absolute (an independent route to the cubature of
    :func:`closed_form.quadrature.total_variation`; the tests compare with it and with a 60-digit 1-D route)."""
    if p.dim != q.dim:
        raise ShapeMismatchError(f"p has dimension {p.dim} and q has {q.dim}; they must match.")
    cov_p, cov_q = np.asarray(p.cov), np.asarray(q.cov)
    if np.array_equal(cov_p, cov_q):
        # Equal covariances: the log ratio is affine, normal under p and q with variance δ² and means ±δ²/2, so
        # TV = Φ(δ/2) − Φ(−δ/2) = erf(δ/(2√2)) (δ the Mahalanobis distance of the means), without the cancellation
        # of the difference of two probabilities near ½.
        from scipy.special import erf

        z = np.linalg.solve(np.asarray(p.chol), np.asarray(p.mean) - np.asarray(q.mean))
        return float(erf(np.linalg.norm(z) / (2.0 * np.sqrt(2.0))))
    return max(_prob_log_ratio_positive(p, p, q) - _prob_log_ratio_positive(q, p, q), 0.0)


__all__ = ["chi2", "kl", "log1p_chi2", "ress_inverse", "total_variation_gaussians", "w2"]
