r"""What a derivation returns, and the two Gaussian integrals every other derivation reduces to.

A :class:`Derivation` carries SymPy expressions (``results``), the assumptions under which they hold, and the
equations to typeset (``shown``: pairs of a LaTeX left-hand side and a key of ``results``). Nothing here is typed in
as an answer: the two helpers below compute

.. math:: \int_{\mathbb R} e^{-a y^2 + b y + c}\,dy = \sqrt{π/a}\;e^{b^2/(4a) + c}\quad (a > 0),
          \qquad \mathbb E\,[f(μ + \sqrt v\,z)],\ z \sim N(0, 1),\ f \text{ polynomial},

the first by completing the square (checked by expansion) and SymPy's ``∫ e^{−ay²} dy``, the second by SymPy's
integrals of ``z^k e^{−z²/2}/\sqrt{2π}``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import sympy as sp


class Derivation(NamedTuple):
    """A derived closed form.

    Attributes
    ----------
    name : str
        Identifier (also the key in :data:`theory.derivations.DERIVATIONS`).
    title : str
        What was derived, in words.
    method : str
        From which definition, by which SymPy steps.
    assumptions : tuple of str
        What the result needs (positivity, limits, which basis).
    results : dict of str to sympy.Basic
        The derived expressions.
    symbols : dict of str to sympy.Symbol
        The free symbols the results are written in.
    shown : tuple of (str, str)
        Equations to typeset: ``(LaTeX left-hand side, key of results)``.
    """

    name: str
    title: str
    method: str
    assumptions: tuple
    results: dict
    symbols: dict
    shown: tuple

    def equations_latex(self) -> list[str]:
        """``lhs = rhs`` for each shown equation (``lhs rhs`` for a relation, whose ``lhs`` ends in ``\\iff``), the
        right side from ``sympy.latex``."""
        out = []
        for lhs, key in self.shown:
            expr = self.results[key]
            sep = r" \; " if isinstance(expr, sp.core.relational.Relational) else " = "
            out.append(f"{lhs}{sep}{sp.latex(expr)}")
        return out


def is_zero(expr) -> bool:
    """Whether ``expr`` vanishes identically: ``cancel`` of its expansion, then ``simplify`` if that is not enough
    (cheap first, since most residuals here are rational)."""
    expr = sp.cancel(sp.expand(sp.expand_log(expr, force=True)))
    return expr == 0 or sp.simplify(expr) == 0


def gaussian_integral(a, b, c=0):
    r"""``(value, condition)`` of ``∫ exp(−a y² + b y + c) dy`` over the real line.

    The square is completed (``−a y² + b y = −a(y − b/2a)² + b²/4a``, verified by SymPy's expansion) and the shifted
    integral is SymPy's ``∫ e^{−a u²} du = √(π/a)`` for ``a > 0``. For ``a ≤ 0`` the integrand is at least
    ``e^{by + c}`` on a half-line where it does not decay, so the integral diverges; ``condition`` is ``a > 0``.
    """
    y = sp.Symbol("y", real=True)
    u = sp.Symbol("u", real=True)
    a_pos = sp.Symbol("a_pos", positive=True)
    completed = -a * (y - b / (2 * a)) ** 2 + b**2 / (4 * a)
    assert is_zero(completed - (-a * y**2 + b * y))
    base = sp.integrate(sp.exp(-a_pos * u**2), (u, -sp.oo, sp.oo)).subs(a_pos, a)
    return base * sp.exp(b**2 / (4 * a) + c), sp.StrictGreaterThan(a, 0)


@lru_cache(maxsize=None)
def standard_normal_moment(k: int):
    r"""``E z^k`` for ``z ∼ N(0, 1)``, by SymPy's integral of ``z^k e^{−z²/2}/√(2π)``."""
    z = sp.Symbol("z", real=True)
    return sp.integrate(z**k * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))


def normal_expectation(poly, x, mean, var):
    r"""``E f(x)`` for ``x ∼ N(mean, var)`` and ``f`` (``poly``) polynomial in ``x``: substitute ``x = μ + √v z``,
    expand in ``z`` and replace each ``z^k`` by :func:`standard_normal_moment`."""
    z = sp.Symbol("z", real=True)
    expanded = sp.Poly(sp.expand(poly.subs(x, mean + sp.sqrt(var) * z)), z)
    return sp.expand(sum(coef * standard_normal_moment(int(k)) for (k,), coef in expanded.terms()))


def multivariate_normal_expectation(poly, xs, mean, chol):
    r"""``E f(x)`` for ``x = m + L z``, ``z ∼ N(0, I)`` (so ``x ∼ N(m, LLᵀ)``), ``f`` polynomial in the
    coordinates ``xs``: independent coordinates of ``z``, each moment from :func:`standard_normal_moment`."""
    zs = sp.symbols(f"z0:{len(xs)}", real=True)
    shifted = sp.Matrix(mean) + sp.Matrix(chol) * sp.Matrix(zs)
    expanded = sp.Poly(sp.expand(poly.subs(dict(zip(xs, shifted)), simultaneous=True)), *zs)
    total = 0
    for powers, coef in expanded.terms():
        term = coef
        for k in powers:
            term *= standard_normal_moment(int(k))
        total += term
    return sp.expand(total)
