r"""Divergences between Gaussians per eigen-direction, and the Girsanov integrand for affine score errors.

From the definitions: ``KL(p‖q) = E_p[log p − log q]`` (a polynomial in ``x`` under ``p``:
:func:`~theory.derivations.base.normal_expectation`); ``1 + χ²(p‖q) = ∫ p²/q`` (a Gaussian integral, finite iff
its leading coefficient is negative: SymPy reduces that to ``2v_q − v_p > 0``); ``W₂²`` in one dimension is the
quantile coupling's cost ``E_z[(μ_p + √v_p z − μ_q − √v_q z)²]`` (the monotone map is optimal on the line). When
``Σ_p`` and ``Σ_q`` share an eigenbasis each divergence is a sum (``KL``, ``W₂²``) or product (``1 + χ²``) over the
directions. The Girsanov integrand ``½β E_{N(m,P)}‖−Dx + f‖²`` is computed with ``x = m + Lz`` in two dimensions
(symbolic ``D``, ``L``) and per direction.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from theory.derivations.base import (
    Derivation,
    gaussian_integral,
    is_zero,
    multivariate_normal_expectation,
    normal_expectation,
)
from theory.derivations.products import log_normal


@lru_cache(maxsize=None)
def gaussian_divergences() -> Derivation:
    """Derive KL, ``1 + χ²`` (with its finiteness condition), ``W₂²`` per direction and the Girsanov integrand."""
    x = sp.Symbol("x", real=True)
    mp, mq = sp.symbols(r"\mu_p \mu_q", real=True)
    vp, vq = sp.symbols("v_p v_q", positive=True)
    log_ratio = log_normal(x, mp, vp) - log_normal(x, mq, vq)
    kl = sp.simplify(normal_expectation(sp.expand(sp.expand_log(log_ratio, force=True)), x, mp, vp))
    exponent = sp.Poly(sp.expand(sp.expand_log(2 * log_normal(x, mp, vp) - log_normal(x, mq, vq), force=True)), x)
    a2, a1, a0 = (exponent.coeff_monomial(x**k) for k in (2, 1, 0))
    value, _ = gaussian_integral(-a2, a1, a0)
    # Finite iff −a2 > 0; −a2's denominator is positive, so iff its numerator is.
    numerator, denominator = sp.fraction(sp.factor(-a2))
    assert denominator.is_positive
    chi2_plus_one = sp.simplify(value)
    # Quantile coupling: x_p = μ_p + √v_p z, x_q = μ_q + √v_q z with z ∼ N(0, 1) (here x plays z).
    w2_squared = sp.factor(normal_expectation(sp.expand((mp + sp.sqrt(vp) * x - mq - sp.sqrt(vq) * x) ** 2), x, 0, 1))
    results = {
        "kl": kl,
        "chi2_plus_one": chi2_plus_one,
        "chi2_finite": sp.StrictGreaterThan(sp.expand(numerator), 0),
        "w2_squared": w2_squared,
    }
    # Girsanov integrand: per direction and in d = 2.
    beta = sp.Symbol(r"\beta", positive=True)
    dd, f, m, p = sp.symbols("D f m p", real=True)
    results["girsanov_integrand"] = sp.factor_terms(
        beta / 2 * normal_expectation(sp.expand((-dd * x + f) ** 2), x, m, p))
    xs = sp.symbols("x_1:3", real=True)
    d_mat = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"D_{i + 1}{j + 1}", real=True))
    f_vec = sp.Matrix(sp.symbols("f_1:3", real=True))
    m_vec = sp.Matrix(sp.symbols("m_1:3", real=True))
    chol = sp.Matrix([[sp.Symbol("L_11", positive=True), 0],
                      [sp.Symbol("L_21", real=True), sp.Symbol("L_22", positive=True)]])
    err = -d_mat * sp.Matrix(xs) + f_vec
    moment = multivariate_normal_expectation(sp.expand((err.T * err)[0]), xs, m_vec, chol)
    cov = chol * chol.T
    r = f_vec - d_mat * m_vec
    assert is_zero(moment - ((d_mat * cov * d_mat.T).trace() + (r.T * r)[0]))
    results["girsanov_integrand_2d"] = beta / 2 * moment
    D_, P_ = sp.MatrixSymbol("D", 2, 2), sp.MatrixSymbol("P", 2, 2)
    f_, m_ = sp.MatrixSymbol("f", 2, 1), sp.MatrixSymbol("m", 2, 1)
    results["girsanov_integrand_matrix"] = beta / 2 * (sp.Trace(D_ * P_ * D_.T)
                                                       + sp.Trace((f_ - D_ * m_).T * (f_ - D_ * m_)))
    return Derivation(
        name="gaussian_divergences",
        title="Divergences between Gaussians and the Girsanov integrand",
        method=(
            "KL and W2 as expectations of polynomials under a Gaussian (moments of N(0, 1) by SymPy's integrals); "
            "1 + chi^2 as a Gaussian integral with its convergence condition; the Girsanov moment with x = m + L z "
            "in d = 2 compared with tr(D P D^T) + |f - D m|^2"
        ),
        assumptions=(
            "p = N(mu_p, v_p), q = N(mu_q, v_q) along one eigen-direction shared by both covariances (sum or "
            "product over directions in d)",
            "W2: the monotone (quantile) coupling is optimal in one dimension",
            "Girsanov: affine score error -D x + f, expectation under Q_t = N(m, P)",
        ),
        results=results,
        symbols={"x": x, "mu_p": mp, "mu_q": mq, "v_p": vp, "v_q": vq, "beta": beta, "D": dd, "f": f, "m": m,
                 "p": p, "D_mat": d_mat, "f_vec": f_vec, "m_vec": m_vec, "chol": chol},
        shown=(
            (r"\mathrm{KL}(p\,\|\,q)", "kl"),
            (r"1 + \chi^2(p\,\|\,q)", "chi2_plus_one"),
            (r"\chi^2(p\,\|\,q) < \infty \iff", "chi2_finite"),
            (r"W_2^2(p, q)", "w2_squared"),
            (r"\tfrac12\beta\,\mathbb{E}_{N(m,p)}(-Dx + f)^2", "girsanov_integrand"),
            (r"\tfrac12\beta\,\mathbb{E}_{N(m,P)}\lVert -Dx + f\rVert^2", "girsanov_integrand_matrix"),
        ),
    )
