r"""Where the Feynman–Kac corrector's weight comes from, derived from the sources' Fokker–Planck equations.

Each diffused source ``q_i = e^{ℓ_i}`` (``ℓ_i(x, t)`` an undetermined function of ``d`` coordinates and time) solves
the forward equation ``∂_t q = ½β Σ_j ∂_j(x_j q) + ½β Σ_j ∂_j² q``. Particles move by the naive reverse SDE in
``τ = T − t``, drift ``f = ½βx + βS`` with ``S = Σ_i w_i ∇ℓ_i`` and diffusion ``β``; their log weights grow at the rate
``g``, so the weighted law ``μ`` solves ``∂_τ μ = −∇·(fμ) + ½βΔμ + gμ``. Asking ``μ = γ = Π_i q_i^{w_i}`` and solving
for ``g`` gives, after SymPy substitutes each ``∂_t ℓ_i`` from the Fokker–Planck equation, the rate in terms of
``s_i = ∇ℓ_i`` alone: every second derivative cancels. The constant ``½βd(1 − Σ_i w_i)`` is the sum of
``−Σ_i w_i · ½βd`` (each source's ``∂_t log q_i`` carries ``+½βd`` from ``∇·x = d``, and ``∂_τ = −∂_t``) and
``+½βd`` (the reverse drift's ``+½βx`` contributes ``−∇·f ⊃ −½βd`` to ``L^*γ/γ``, which enters ``g`` with a minus).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from theory.derivations.base import Derivation, is_zero


@lru_cache(maxsize=None)
def fkc_weight(dim: int = 1, n: int = 3) -> Derivation:
    """Derive the FKC log-weight rate ``g`` in ``dim`` coordinates for ``n`` sources."""
    t = sp.Symbol("t", nonnegative=True)
    beta = sp.Symbol(r"\beta", positive=True)  # β(t) at the current time; the equations are local in t
    xs = sp.symbols(f"x_1:{dim + 1}", real=True)
    w = sp.symbols(f"w_1:{n + 1}", real=True)
    ells = [sp.Function(rf"\ell_{i + 1}")(*xs, t) for i in range(n)]

    def forward_fp_over_q(ell):
        q = sp.exp(ell)
        rhs = sum(beta / 2 * sp.diff(x * q, x) + beta / 2 * sp.diff(q, x, 2) for x in xs)
        return sp.expand(sp.powsimp(sp.expand(rhs / q)))

    dt_ell = [forward_fp_over_q(ell) for ell in ells]  # ∂_t ℓ_i from the forward equation
    log_gamma = sum(wi * ell for wi, ell in zip(w, ells))
    gamma = sp.exp(log_gamma)
    score = [sp.diff(log_gamma, x) for x in xs]  # S = ∇ log γ = Σ w_i ∇ℓ_i
    drift = [beta / 2 * x + beta * sj for x, sj in zip(xs, score)]
    adjoint = sum(-sp.diff(fj * gamma, x) + beta / 2 * sp.diff(gamma, x, 2) for fj, x in zip(drift, xs))
    adjoint_over_gamma = sp.expand(sp.powsimp(sp.expand(adjoint / gamma)))
    dtau_log_gamma = -sum(wi * dti for wi, dti in zip(w, dt_ell))
    g = sp.expand(dtau_log_gamma - adjoint_over_gamma)

    # Name the derivatives: s_{i,j} = ∂_j ℓ_i; any second derivative left would be a Hessian term.
    s = [[sp.Symbol(f"s_{i + 1}{j + 1}" if dim > 1 else f"s_{i + 1}", real=True) for j in range(dim)]
         for i in range(n)]
    second = {}
    for i, ell in enumerate(ells):
        for j, xj in enumerate(xs):
            for k, xk in enumerate(xs):
                name = f"h_{i + 1}" if dim == 1 else f"h_{i + 1}{j + 1}{k + 1}"
                second[sp.diff(ell, xj, xk)] = sp.Symbol(name, real=True)
    first = {sp.diff(ell, x): s[i][j] for i, ell in enumerate(ells) for j, x in enumerate(xs)}
    g_named = sp.expand(g.subs(second).subs(first))
    assert not (g_named.free_symbols & set(second.values())), "a second-derivative term survived"
    assert not any(isinstance(a, sp.Derivative) for a in sp.preorder_traversal(g_named))
    S = [sum(w[i] * s[i][j] for i in range(n)) for j in range(dim)]
    claim = beta / 2 * ((1 - sum(w)) * dim + sum(Sj**2 for Sj in S)
                        - sum(w[i] * sum(s[i][j] ** 2 for j in range(dim)) for i in range(n)))
    assert is_zero(g_named - claim)
    zero_scores = {sym: 0 for row in s for sym in row} | {h: 0 for h in second.values()}
    forward_constant = sp.expand(dt_ell[0].subs(second).subs(first)).subs(zero_scores)
    reverse_constant = adjoint_over_gamma.subs(second).subs(first).subs(zero_scores)
    results = {
        "dt_log_q": sp.expand(dt_ell[0].subs(second).subs(first)),
        "g": sp.factor_terms(g_named),
        "g_claim": claim,
        "constant": sp.factor(g_named.subs(zero_scores)),
        "forward_constant": forward_constant,
        "adjoint_constant": sp.expand(reverse_constant),
    }
    assert is_zero(results["constant"] - (-sum(w) * forward_constant - reverse_constant))
    return Derivation(
        name=f"fkc_weight_d{dim}",
        title=f"The FKC log-weight rate (d = {dim}, {n} sources)",
        method=(
            "forward Fokker-Planck equations of q_i = exp(l_i) with undetermined l_i(x, t); the Feynman-Kac equation "
            "of the naive reverse SDE with log-weight rate g solved for g when its weighted law is prod_i q_i^w_i; "
            "each time derivative replaced from the Fokker-Planck equation"
        ),
        assumptions=(
            "q_i > 0 smooth, solving the forward VP Fokker-Planck equation; beta = beta(t) > 0",
            "the weighted particle law is the unnormalized path gamma_t = prod_i q_i^w_i (not normalized)",
            "notation: s_i (s_ij in d > 1) the score d log q_i / dx_j, h_i (h_ijk) its second derivatives",
        ),
        results=results,
        symbols={"t": t, "beta": beta, "xs": xs, "w": w, "s": s},
        shown=(
            (r"\partial_t \log q_1", "dt_log_q"),
            (r"g", "g_claim"),
            (r"g\big|_{s = 0}", "constant"),
        ),
    )


@lru_cache(maxsize=None)
def fkc_affine_potential(n: int = 3) -> Derivation:
    r"""The FKC rate for affine source scores ``s_i = −A_i x + b_i`` (symmetric ``A_i``) as the quadratic potential
    ``V(x) = −½xᵀGx + hᵀx + c`` of :func:`~theory.derivations.gaussian_moment_odes`.

    The scores are substituted into the rate derived by :func:`fkc_weight` (``d = 2``, symbolic entries) and the
    coefficients of the polynomial in ``x`` are read off; SymPy checks them against

    .. math:: G = β\big(\textstyle\sum_i w_i A_i^2 − A_S^2\big),\quad h = β\big(\sum_i w_i A_i b_i − A_S b_S\big),\quad
              c = \tfrac12 β\big[(1 − \sum_i w_i) d + \lVert b_S\rVert^2 − \sum_i w_i \lVert b_i\rVert^2\big],

    ``A_S = Σ_i w_i A_i``, ``b_S = Σ_i w_i b_i``. With ``F = β(½I − A_S)``, ``u = βb_S``, ``D = β`` these are the
    Feynman–Kac moment ODEs of FKC with Gaussian sources in continuous time.
    """
    d = 2
    rate = fkc_weight(d, n)
    w, beta, s = rate.symbols["w"], rate.symbols["beta"], rate.symbols["s"]
    xs = sp.Matrix(sp.symbols(f"x_1:{d + 1}", real=True))
    a_mats = [sp.Matrix(d, d, lambda j, k, i=i: sp.Symbol(f"A{i + 1}_{min(j, k) + 1}{max(j, k) + 1}", real=True))
              for i in range(n)]
    b_vecs = [sp.Matrix([sp.Symbol(f"b{i + 1}_{j + 1}", real=True) for j in range(d)]) for i in range(n)]
    scores = {s[i][j]: (-a_mats[i] * xs + b_vecs[i])[j] for i in range(n) for j in range(d)}
    poly = sp.Poly(sp.expand(rate.results["g"].subs(scores)), *xs)
    g_mat = sp.Matrix(d, d, lambda j, k: -poly.coeff_monomial(xs[j] * xs[k]) * (2 if j == k else 1))
    h_vec = sp.Matrix([poly.coeff_monomial(x) for x in xs])
    c_val = poly.coeff_monomial(1)
    a_s = sum((wi * ai for wi, ai in zip(w, a_mats)), sp.zeros(d))
    b_s = sum((wi * bi for wi, bi in zip(w, b_vecs)), sp.zeros(d, 1))
    g_form = beta * (sum((wi * ai * ai for wi, ai in zip(w, a_mats)), sp.zeros(d)) - a_s * a_s)
    h_form = beta * (sum((wi * ai * bi for wi, ai, bi in zip(w, a_mats, b_vecs)), sp.zeros(d, 1)) - a_s * b_s)
    c_form = beta / 2 * ((1 - sum(w)) * d + (b_s.T * b_s)[0] - sum(wi * (bi.T * bi)[0] for wi, bi in zip(w, b_vecs)))
    assert all(is_zero(e) for e in g_mat - g_form) and all(is_zero(e) for e in h_vec - h_form)
    assert is_zero(c_val - c_form)
    A = [sp.MatrixSymbol(f"A_{i + 1}", d, d) for i in range(n)]
    B = [sp.MatrixSymbol(f"b_{i + 1}", d, 1) for i in range(n)]
    A_S, B_S = sp.MatAdd(*[wi * ai for wi, ai in zip(w, A)]), sp.MatAdd(*[wi * bi for wi, bi in zip(w, B)])
    results = {
        "G": beta * (sp.MatAdd(*[wi * ai * ai for wi, ai in zip(w, A)]) - A_S * A_S),
        "h": beta * (sp.MatAdd(*[wi * ai * bi for wi, ai, bi in zip(w, A, B)]) - A_S * B_S),
        "c": beta / 2 * ((1 - sum(w)) * sp.Symbol("d") + sp.Trace(B_S.T * B_S)
                         - sp.Add(*[wi * sp.Trace(bi.T * bi) for wi, bi in zip(w, B)])),
        "G_2d": g_mat,
        "h_2d": h_vec,
        "c_2d": c_val,
    }
    return Derivation(
        name="fkc_affine_potential",
        title="The FKC rate as a quadratic potential for affine scores",
        method=(
            "the affine scores -A_i x + b_i substituted into the derived FKC rate (d = 2, symbolic entries), the "
            "coefficients of the polynomial in x read off and compared with the matrix forms"
        ),
        assumptions=("symmetric A_i (Gaussian sources: A_i = C_i(t)^-1)", "V(x) = -x^T G x / 2 + h^T x + c"),
        results=results,
        symbols={"w": w, "beta": beta, "A": a_mats, "b": b_vecs, "xs": tuple(xs)},
        shown=((r"G", "G"), (r"h", "h"), (r"c", "c")),
    )
