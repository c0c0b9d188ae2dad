r"""Geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}`` against the diffused target ``Q_t``, per eigen-direction.

Both are Gaussian per direction. ``π_t``'s precision is the product precision of
:func:`~theory.derivations.products.gaussian_power_products` evaluated at the diffused variances
``α_t² v_i + σ_t²``; ``Q_t``'s is ``1/(α_t² v_Q + σ_t²)`` with ``1/v_Q`` the same product precision at ``t = 0``.
With ``s = α_t² ∈ (0, 1]`` and ``σ_t² = 1 − s`` (every VP schedule), the gap is a rational function of ``s``; SymPy
expands it in powers of ``s`` (coefficient ``k`` is ``(−1)^k[Σ_i w_i (v_i − 1)^k − (v_Q − 1)^k]``, a moment of the
signed measure ``Σ_i w_i δ_{v_i} − δ_{v_Q}``) and shows it vanishes identically when one source's variance equals
the negative-weight source's, which is the factorized settings' structure.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from theory.derivations.base import Derivation, is_zero
from theory.derivations.products import gaussian_power_products

#: Per coordinate, the variances (a1, a2, base) of the paper's Gaussian settings, weights (1, 1, −1).
PAPER_VARIANCES = {
    "FC_ID": ((10, 1, 10), (1, 10, 10)),
    "NFC_ID": ((10, 1, 20), (1, 10, 20)),
    "FC_OOD": ((10, 1, 1), (1, 10, 1)),
    "NFC_OOD": ((10, 1, sp.Rational(11, 10)), (1, 10, sp.Rational(11, 10))),
}
SERIES_ORDER = 4


@lru_cache(maxsize=None)
def path_vs_target() -> Derivation:
    """Derive the precision gap between ``π_t`` and ``Q_t`` per direction, its series in ``α_t²``, and its
    vanishing in the factorized settings."""
    prod = gaussian_power_products(3)
    w, v, mu = prod.symbols["w"], prod.symbols["v"], prod.symbols["mu"]
    s = sp.Symbol("s", positive=True)  # α_t²
    alpha = sp.sqrt(s)
    diffused = {vi: s * vi + 1 - s for vi in v}
    lam_q = prod.results["precision"]
    v_q = 1 / lam_q
    path_precision = sp.together(lam_q.subs(diffused, simultaneous=True))
    target_precision = 1 / (s * v_q + 1 - s)
    vq = sp.Symbol("v_Q", positive=True)
    gap = sp.together(path_precision - target_precision)
    # Natural means: π_t's is Σ w_i α μ_i/(α²v_i + σ²); Q_t's is α μ_Q/(α²v_Q + σ²) with μ_Q = η_Q/Λ_Q.
    eta_q = prod.results["natural_mean"]
    path_eta = sp.together(eta_q.subs({m: alpha * m for m in mu}).subs(diffused, simultaneous=True))
    target_eta = alpha * (eta_q / lam_q) * target_precision
    results = {
        "path_precision": path_precision,
        "target_precision": target_precision,
        "precision_gap": gap,
        "path_natural_mean": path_eta,
        "target_natural_mean": target_eta,
        "natural_mean_gap": path_eta - target_eta,
    }
    results["target_precision_vq"] = target_precision.subs(v_q, vq)
    assert results["target_precision_vq"] != target_precision
    # Series in s: every coefficient is a moment of Σ w_i δ_{v_i} − δ_{v_Q} about 1.
    gap_vq = sum(wi / (s * vi + 1 - s) for wi, vi in zip(w, v)) - 1 / (s * vq + 1 - s)
    series = sp.series(gap_vq, s, 0, SERIES_ORDER).removeO()
    k = sp.Symbol("k", integer=True, nonnegative=True)
    coefficient = (-1) ** k * (sum(wi * (vi - 1) ** k for wi, vi in zip(w, v)) - (vq - 1) ** k)
    for j in range(SERIES_ORDER):
        assert is_zero(series.coeff(s, j) - coefficient.subs(k, j))
    results["gap_series_coefficient"] = coefficient
    results["gap_at_t0"] = sp.simplify(gap.subs(s, 1))
    assert results["gap_at_t0"] == 0  # at t = 0 both are Q
    # Factorized: the base's variance equals a source's (per coordinate), weights (1, 1, −1).
    a, b = sp.symbols("a b", positive=True)
    paper_w = {w[0]: 1, w[1]: 1, w[2]: -1}
    for name, var in (("factorized_gap_13", (a, b, a)), ("factorized_gap_23", (a, b, b))):
        g = sp.simplify(gap.subs(paper_w).subs(dict(zip(v, var))))
        assert g == 0
        results[name] = g
    # Otherwise (base variance c different from both): the gap's leading term, of order α_t² (as t grows).
    c = sp.Symbol("c", positive=True)
    generic = sp.factor(gap.subs(paper_w).subs(dict(zip(v, (a, b, c)))))
    results["unfactorized_gap"] = generic
    results["unfactorized_leading"] = sp.factor(sp.series(generic, s, 0, 2).removeO())
    for name, coords in PAPER_VARIANCES.items():
        results[f"gap_{name}"] = tuple(sp.factor(generic.subs({a: va, b: vb, c: vc})) for va, vb, vc in coords)
    return Derivation(
        name="path_vs_target",
        title="Geometric path versus diffused target",
        method=(
            "the product precision of the diffused sources against the diffused product; series in s = alpha_t^2 "
            "(coefficients checked against the moment formula to order 3); substitution of the factorized variances"
        ),
        assumptions=(
            "VP schedule (sigma_t^2 = 1 - alpha_t^2), s = alpha_t^2 in (0, 1]",
            "one eigen-direction shared by the sources (commuting covariances); the target proper (Lambda_Q > 0)",
            "paper weights (1, 1, -1) for the factorized and unfactorized cases",
        ),
        results=results,
        symbols={"s": s, "w": w, "v": v, "mu": mu, "v_Q": vq, "k": k, "a": a, "b": b, "c": c},
        shown=(
            (r"\Lambda_{\pi_t}", "path_precision"),
            (r"\Lambda_{Q_t}", "target_precision_vq"),
            (r"[s^k]\,(\Lambda_{\pi_t} - \Lambda_{Q_t})", "gap_series_coefficient"),
            (r"\Lambda_{\pi_t} - \Lambda_{Q_t}\big|_{v = (a, b, b)}", "factorized_gap_23"),
            (r"\Lambda_{\pi_t} - \Lambda_{Q_t}\big|_{v = (a, b, c)}", "unfactorized_gap"),
            (r"\Lambda_{\pi_t} - \Lambda_{Q_t}\big|_{\mathrm{NFC\_OOD}}", "gap_NFC_OOD"),
        ),
    )
