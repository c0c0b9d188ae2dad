r"""Gaussian ansatz in the reverse SDE, the probability-flow ODE and the Feynman–Kac equation: the moment ODEs.

The general equation, in reverse time ``τ``, for an unnormalized density ``ρ``:

.. math:: ∂_τ ρ = −∇·\big((Fx + u)ρ\big) + \tfrac12 D\,Δρ + V(x)\,ρ,\qquad V(x) = −\tfrac12 x^\top G x + h^\top x + c,

covers the reverse SDE (``F = β(½I − A)``, ``u = βb``, ``D = β``, ``V = 0``), the probability-flow ODE
(``F = ½β(I − A)``, ``u = ½βb``, ``D = 0``) and Feynman–Kac weighting with a quadratic log-weight rate ``V``
(``D = β``). The ansatz ``ρ = e^ℓ N(x; m, Λ^{-1})`` is substituted with ``Λ`` a symbolic symmetric ``d × d``
matrix (``d = 1, 2``); divided by ``ρ`` the equation is a polynomial identity in ``x``, and matching its
coefficients gives a linear system for ``(Λ̇, ṁ, ℓ̇)`` that SymPy solves. ``Ṗ = −PΛ̇P`` with ``P = Λ^{-1}`` is then
written in the entries of ``P`` and checked against the matrix forms

.. math:: Ṗ = FP + PF^\top + D I − PGP,\qquad ṁ = Fm + u + P(h − Gm),\qquad
          ℓ̇ = c + h^\top m − \tfrac12 m^\top G m − \tfrac12\operatorname{tr}(GP),

which :func:`fk_moment_rhs` evaluates for any ``d`` (lambdified from ``MatrixSymbol`` expressions).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from theory.derivations.base import Derivation, is_zero


def _sym_matrix(name, d, symmetric=False):
    if symmetric:
        return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{min(i, j) + 1}{max(i, j) + 1}", real=True))
    return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def _vec(name, d):
    return sp.Matrix([sp.Symbol(f"{name}_{i + 1}", real=True) for i in range(d)])


def fk_moment_forms(d: int):
    """``((F, u, D, G, h, c, m, P), Ṗ, ṁ, ℓ̇)``: the moment ODEs as MatrixSymbol expressions in dimension ``d``
    (checked against the ansatz solution in :func:`gaussian_moment_odes` for ``d = 1, 2``), ready for
    ``sympy.lambdify`` (:func:`fk_moment_rhs` does so, printing traces as ``numpy.trace``)."""
    F, P, G = (sp.MatrixSymbol(n, d, d) for n in ("F", "P", "G"))
    u, m, h = (sp.MatrixSymbol(n, d, 1) for n in ("u", "m", "h"))
    c, D = sp.Symbol("c", real=True), sp.Symbol("D", nonnegative=True)
    p_dot = F * P + P * F.T + D * sp.Identity(d) - P * G * P
    m_dot = F * m + u + P * (h - G * m)
    # Traces of 1 × 1 products keep the forms as matrix expressions (printed hᵀm, not entry by entry).
    l_dot = c + sp.Trace(h.T * m) - sp.Trace(m.T * G * m) / 2 - sp.Trace(G * P) / 2
    return (F, u, D, G, h, c, m, P), p_dot, m_dot, l_dot


@lru_cache(maxsize=None)
def _ansatz_solution(d: int):
    """Solve the coefficient-matching system in dimension ``d``; return explicit ``(Ṗ, ṁ, ℓ̇)`` in the entries of
    ``P`` and the explicit symbols."""
    xs = sp.Matrix(sp.symbols(f"x_1:{d + 1}", real=True))
    lam = _sym_matrix("L", d, symmetric=True)
    m, u, h = _vec("m", d), _vec("u", d), _vec("h", d)
    F, G = _sym_matrix("F", d), _sym_matrix("G", d, symmetric=True)
    c, D = sp.Symbol("c", real=True), sp.Symbol("D", nonnegative=True)
    lam_dot = _sym_matrix("dL", d, symmetric=True)
    m_dot, l_dot = _vec("dm", d), sp.Symbol("dl", real=True)
    r = xs - m
    # log ρ = ℓ + ½ log|Λ| − (d/2) log 2π − ½ rᵀΛr, so ∂_τ log ρ = ℓ̇ + ½ tr(Λ⁻¹Λ̇) − ½ rᵀΛ̇r + ṁᵀΛr.
    lam_inv = lam.inv()
    dt_log_rho = l_dot + (lam_inv * lam_dot).trace() / 2 - (r.T * lam_dot * r)[0] / 2 + (m_dot.T * lam * r)[0]
    grad = -lam * r  # ∇ log ρ
    drift = F * xs + u
    potential = -(xs.T * G * xs)[0] / 2 + (h.T * xs)[0] + c
    # (1/ρ)[−∇·(fρ) + ½DΔρ] = −∇·f − f·∇log ρ + ½D(Δ log ρ + ‖∇ log ρ‖²)
    rhs = -F.trace() - (drift.T * grad)[0] + D / 2 * (-lam.trace() + (grad.T * grad)[0]) + potential
    residual = sp.Poly(sp.expand((dt_log_rho - rhs) * lam.det()), *xs)
    unknowns = list(dict.fromkeys(list(lam_dot) + list(m_dot) + [l_dot]))
    sol = sp.solve(residual.coeffs(), unknowns, dict=True)
    assert len(sol) == 1 and set(sol[0]) == set(unknowns)
    sol = sol[0]
    # In P = Λ⁻¹: Ṗ = −P Λ̇ P, and Λ's entries replaced by those of P⁻¹.
    p = _sym_matrix("P", d, symmetric=True)
    back = dict(zip(list(lam), list(p.inv())))
    p_dot = (-lam_inv * lam_dot.subs(sol) * lam_inv).subs(back, simultaneous=True).applyfunc(sp.cancel)
    m_dot_sol = m_dot.subs(sol).subs(back, simultaneous=True).applyfunc(sp.cancel)
    l_dot_sol = sp.cancel(sol[l_dot].subs(back, simultaneous=True))
    explicit = {"F": F, "u": u, "D": D, "G": G, "h": h, "c": c, "m": m, "P": p}
    return explicit, p_dot, m_dot_sol, l_dot_sol


@lru_cache(maxsize=None)
def gaussian_moment_odes() -> Derivation:
    """Derive the Gaussian moment ODEs of the Feynman–Kac equation (and its SDE/ODE special cases)."""
    results = {}
    for d in (1, 2):
        explicit, p_dot, m_dot, l_dot = _ansatz_solution(d)
        (F, u, D, G, h, c, m, P), p_form, m_form, l_form = fk_moment_forms(d)
        subs = {F: explicit["F"], u: explicit["u"], G: explicit["G"], h: explicit["h"], m: explicit["m"],
                P: explicit["P"]}
        as_explicit = lambda e: sp.Matrix(e.subs(subs).doit())  # noqa: E731
        assert all(is_zero(a) for a in p_dot - as_explicit(p_form))
        assert all(is_zero(a) for a in m_dot - as_explicit(m_form))
        assert is_zero(l_dot - sp.sympify(l_form.subs(subs).doit()))
        results[f"P_dot_{d}d"], results[f"m_dot_{d}d"], results[f"l_dot_{d}d"] = p_dot, m_dot, l_dot
    symbols, p_form, m_form, l_form = fk_moment_forms(2)
    results.update(P_dot=p_form, m_dot=m_form, l_dot=l_form)
    # The samplers: reverse SDE and probability-flow ODE of an affine score −A x + b, no potential.
    F, u, D, G, h, c, m, P = symbols
    a_mat, b_vec = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("b", 2, 1)
    beta = sp.Symbol(r"\beta", positive=True)
    eye = sp.Identity(2)
    no_potential = {G: sp.ZeroMatrix(2, 2), h: sp.ZeroMatrix(2, 1), c: 0}
    for kind, (f_mat, u_vec, diff) in {
        "sde": (beta * (eye / 2 - a_mat), beta * b_vec, beta),
        "ode": (beta / 2 * (eye - a_mat), beta / 2 * b_vec, 0),
    }.items():
        on = {**no_potential, F: f_mat, u: u_vec, D: diff}
        results[f"{kind}_P_dot"] = p_form.subs(on).doit()
        results[f"{kind}_m_dot"] = m_form.subs(on).doit()
    # Scalar (one direction): a, c_b per direction.
    a_s, cb, p_s, m_s = sp.symbols("a c_b p m", real=True)
    for kind, (f_s, u_s, diff) in {"sde": (beta * (sp.S.Half - a_s), beta * cb, beta),
                                   "ode": (beta / 2 * (1 - a_s), beta / 2 * cb, 0)}.items():
        explicit, p_dot, m_dot, _ = _ansatz_solution(1)
        on = {explicit["F"][0]: f_s, explicit["u"][0]: u_s, explicit["D"]: diff, explicit["G"][0]: 0,
              explicit["h"][0]: 0, explicit["P"][0]: p_s, explicit["m"][0]: m_s}
        results[f"{kind}_p_dot_scalar"] = sp.factor(p_dot[0].subs(on))
        results[f"{kind}_m_dot_scalar"] = sp.factor(m_dot[0].subs(on))
    return Derivation(
        name="gaussian_moment_odes",
        title="Moment ODEs of Gaussian laws (reverse SDE, probability-flow ODE, Feynman-Kac)",
        method=(
            "the ansatz rho = exp(l) N(x; m, Lambda^-1) substituted into the Feynman-Kac equation with affine drift "
            "and quadratic potential (d = 1, 2, symbolic entries); coefficients of the polynomial in x matched and "
            "solved; P = Lambda^-1; compared entrywise with the matrix forms"
        ),
        assumptions=(
            "affine drift F x + u, constant diffusion D >= 0 (beta for the SDE and Feynman-Kac, 0 for the ODE), "
            "quadratic potential V with symmetric G; reverse time tau",
            "P symmetric positive definite along the solution (the ansatz stays Gaussian)",
            "per direction (p, m the variance and mean): the sampler's score is -a x + c_b",
        ),
        results=results,
        symbols={"matrix": symbols, "A": a_mat, "b": b_vec, "beta": beta, "scalar": (a_s, cb, p_s, m_s)},
        shown=(
            (r"\dot P", "P_dot"),
            (r"\dot m", "m_dot"),
            (r"\dot \ell", "l_dot"),
            (r"\dot p^{\mathrm{SDE}}", "sde_p_dot_scalar"),
            (r"\dot m^{\mathrm{SDE}}", "sde_m_dot_scalar"),
            (r"\dot p^{\mathrm{ODE}}", "ode_p_dot_scalar"),
            (r"\dot m^{\mathrm{ODE}}", "ode_m_dot_scalar"),
        ),
    )


class _TracePrinter(NumPyPrinter):
    """NumPy printer that also prints ``Trace`` (as ``numpy.trace``)."""

    def _print_Trace(self, expr):
        return f"numpy.trace({self._print(expr.arg)})"


@lru_cache(maxsize=None)
def _rhs_function(d: int):
    (F, u, D, G, h, c, m, P), p_form, m_form, l_form = fk_moment_forms(d)
    return sp.lambdify((F, u, D, G, h, c, m, P), (p_form, m_form, l_form), modules="numpy",
                       printer=_TracePrinter)


def fk_moment_rhs(F, u, D, G, h, c, m, P):
    r"""``(Ṗ, ṁ, ℓ̇)`` in reverse time for drift ``Fx + u``, diffusion ``D``, potential ``−½xᵀGx + hᵀx + c`` and
    state ``e^ℓ N(m, P)``: the derived matrix forms (module doc) lambdified to NumPy.

    ``F``, ``G``, ``P`` are ``(d, d)`` arrays, ``u``, ``h``, ``m`` of shape ``(d,)``; ``D``, ``c`` floats. Returns
    ``P_dot (d, d)``, ``m_dot (d,)``, ``l_dot`` (float).
    """
    import numpy as np

    m = np.asarray(m, dtype=np.float64)
    d = m.shape[0]
    col = lambda v: np.asarray(v, dtype=np.float64).reshape(d, 1)  # noqa: E731
    p_dot, m_dot, l_dot = _rhs_function(d)(np.asarray(F, float), col(u), float(D), np.asarray(G, float), col(h),
                                           float(c), col(m), np.asarray(P, float))
    return np.asarray(p_dot, float), np.asarray(m_dot, float).reshape(d), float(np.asarray(l_dot).reshape(()))
