r"""Products of powers of Gaussian densities: precision-weighted target, log normalizer, properness.

From the definition ``Σ_f w_f log N(x; μ_f, v_f)`` (one eigen-direction, ``n`` factors): the exponent is a quadratic
polynomial in ``x`` whose coefficients SymPy reads off; the normalizer is :func:`~theory.derivations.base.gaussian_integral`
of it, which exists iff the leading coefficient is negative — the properness condition. In ``d`` dimensions the same
expansion with symbolic ``2 × 2`` precisions ``Λ_f`` gives the natural parameters ``Λ = Σ_f w_f Λ_f`` and
``η = Σ_f w_f Λ_f μ_f`` (checked entrywise); the ``d``-dimensional normalizer factorizes over the eigen-directions
of ``Λ``, each a one-dimensional Gaussian integral, so the product is proper iff ``Λ = Σ_f w_f Σ_f^{-1} ≻ 0``.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from theory.derivations.base import Derivation, gaussian_integral, is_zero


def log_normal(x, mean, var):
    r"""``log N(x; mean, var) = −(x − mean)²/(2 var) − ½ log(2π var)`` (the definition)."""
    return -((x - mean) ** 2) / (2 * var) - sp.log(2 * sp.pi * var) / 2


@lru_cache(maxsize=None)
def gaussian_power_products(n: int = 3) -> Derivation:
    """Derive the product ``Π_f N(x; μ_f, v_f)^{w_f}`` of ``n`` factors per direction and in natural parameters."""
    x = sp.Symbol("x", real=True)
    w = sp.symbols(f"w_1:{n + 1}", real=True)
    mu = sp.symbols(rf"\mu_1:{n + 1}", real=True)
    v = sp.symbols(f"v_1:{n + 1}", positive=True)
    exponent = sp.Poly(sp.expand(sum(wi * log_normal(x, mi, vi) for wi, mi, vi in zip(w, mu, v))), x)
    a2, a1, a0 = (exponent.coeff_monomial(x**k) for k in (2, 1, 0))
    precision = sp.together(-2 * a2)
    eta = sp.together(a1)
    # The precision and natural mean written as symbols Λ, η in the integral (substituted back for evaluation).
    lam = sp.Symbol(r"\Lambda", real=True, nonzero=True)
    eta_s = sp.Symbol(r"\eta", real=True)
    z, proper = gaussian_integral(lam / 2, eta_s, sp.collect(a0, w))
    log_const = sp.expand_log(sp.log(z), force=True)
    # The normalized product is N(x; η/Λ, 1/Λ): its log density differs from the exponent by log Z exactly.
    residual = exponent.as_expr() - log_const - log_normal(x, eta_s / lam, 1 / lam)
    assert is_zero(residual.subs({eta_s: eta, lam: precision}))
    results = {
        "precision": precision,
        "natural_mean": eta,
        "mean": eta_s / lam,
        "log_const": sp.collect(log_const, w),
        "log_integral": sp.expand_log(sp.log(gaussian_integral(lam / 2, eta_s)[0]), force=True),
        "proper": sp.StrictGreaterThan(lam, 0) if proper == sp.StrictGreaterThan(lam / 2, 0) else proper,
    }

    # d = 2, symbolic symmetric precisions: the exponent's quadratic and linear coefficients are Σ w Λ_f, Σ w Λ_f μ_f.
    xs = sp.symbols("x_1:3", real=True)
    xv = sp.Matrix(xs)
    lams, mus = [], []
    total = 0
    for f in range(n):
        a, b, c = sp.symbols(f"a_{f} b_{f} c_{f}", real=True)
        lf = sp.Matrix([[a, b], [b, c]])
        mf = sp.Matrix(sp.symbols(f"m_{f}_1:3", real=True))
        lams.append(lf)
        mus.append(mf)
        # log N(x; m, Λ⁻¹) = −½(x − m)ᵀΛ(x − m) + ½ log|Λ| − log 2π in two dimensions
        total += w[f] * ((-(xv - mf).T * lf * (xv - mf) / 2)[0] + sp.log(lf.det()) / 2 - sp.log(2 * sp.pi))
    poly = sp.Poly(sp.expand(total), *xs)
    quad = sp.Matrix(2, 2, lambda i, j: -poly.coeff_monomial(xs[i] * xs[j]) * (2 if i == j else 1))
    lin = sp.Matrix([poly.coeff_monomial(xi) for xi in xs])
    lam_sum = sum((w[f] * lams[f] for f in range(n)), sp.zeros(2))
    eta_sum = sum((w[f] * lams[f] * mus[f] for f in range(n)), sp.zeros(2, 1))
    assert all(is_zero(e) for e in quad - lam_sum) and all(is_zero(e) for e in lin - eta_sum)
    results["precision_2d"] = quad
    results["natural_mean_2d"] = lin
    results["const_2d"] = poly.coeff_monomial(1)
    sym_lam = [sp.MatrixSymbol(rf"\Lambda_{f + 1}", 2, 2) for f in range(n)]
    sym_mu = [sp.MatrixSymbol(rf"\mu_{f + 1}", 2, 1) for f in range(n)]
    results["precision_matrix"] = sp.MatAdd(*[w[f] * sym_lam[f] for f in range(n)])
    results["natural_mean_matrix"] = sp.MatAdd(*[w[f] * sym_lam[f] * sym_mu[f] for f in range(n)])
    symbols = {"x": x, "w": w, "mu": mu, "v": v, "lam": lam, "eta": eta_s, "xs": xs, "lams": lams, "mus": mus}
    return Derivation(
        name="gaussian_power_products",
        title="Products of powers of Gaussians",
        method=(
            "the exponent sum_f w_f log N_f expanded as a polynomial in x, its coefficients read off, the Gaussian "
            "integral of its exponential by completing the square; the same expansion with symbolic 2x2 precisions "
            "for the natural parameters"
        ),
        assumptions=(
            "one eigen-direction shared by the factors (variances v_f > 0), or natural parameters in d = 2 with "
            "symmetric precisions Lambda_f",
            "normalizable iff the precision Lambda > 0 (per direction; in d: sum_f w_f Sigma_f^{-1} positive "
            "definite, the integral factorizing over the eigen-directions of Lambda)",
        ),
        results=results,
        symbols=symbols,
        shown=(
            (r"\Lambda", "precision"),
            (r"\eta", "natural_mean"),
            (r"\log Z", "log_const"),
            (r"\textstyle\int \prod_f N_f^{w_f} < \infty \iff", "proper"),
            (r"\Lambda^{(d)}", "precision_matrix"),
            (r"\eta^{(d)}", "natural_mean_matrix"),
        ),
    )
