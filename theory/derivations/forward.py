r"""The forward VP process, solved: ``α_t``, ``σ_t²`` for the linear and cosine schedules, the diffused Gaussian.

From the SDE ``dx = −½β(t) x dt + √β(t) dW`` alone: its generator ``L f = −½βx f' + ½β f''`` applied to ``x`` and
``x²`` gives the moment ODEs (Dynkin: ``d/dt E f(x_t) = E Lf(x_t)``), ``m' = −½βm`` and ``v' = −βv + β`` for the
variance; ``dsolve`` solves them for a general ``β``; the two schedules' ``β`` are substituted and integrated. The
diffused law of ``N(μ, λ)`` (one eigen-direction of ``Σ``: ``α_t²Σ + σ_t²I`` keeps ``Σ``'s eigenbasis) is the
Gaussian with those moments, and SymPy checks that it solves the forward Fokker–Planck equation; its score is the
``x``-derivative of its log density.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from theory.derivations.base import Derivation, is_zero


def _schedule_symbols():
    return dict(
        t=sp.Symbol("t", nonnegative=True),
        T=sp.Symbol("T", positive=True),
        beta_min=sp.Symbol(r"\beta_{\min}", positive=True),
        beta_max=sp.Symbol(r"\beta_{\max}", positive=True),
        s=sp.Symbol("s", positive=True),
        x=sp.Symbol("x", real=True),
        mu=sp.Symbol(r"\mu", real=True),
        lam=sp.Symbol(r"\lambda", positive=True),
    )


@lru_cache(maxsize=None)
def forward_vp() -> Derivation:
    """Derive ``α_t``, ``σ_t²`` (linear and cosine ``β``) and the diffused Gaussian's log density and score."""
    sy = _schedule_symbols()
    t, T, x, mu, lam, s = sy["t"], sy["T"], sy["x"], sy["mu"], sy["lam"], sy["s"]
    u = sp.Symbol("u", nonnegative=True)
    # B(t) = ∫₀ᵗ β, so β = B' and B(0) = 0: the ODEs below are then solved by dsolve in closed form.
    big_b = sp.Function("B")
    beta_t = big_b(t).diff(t)
    m, v = sp.Function("m"), sp.Function("v")

    def generator(f):
        return -beta_t / 2 * x * sp.diff(f, x) + beta_t / 2 * sp.diff(f, x, 2)

    # Dynkin: the first two moments evolve by E[L x] and E[L x²]; both are polynomials in x of the same degree.
    lx = sp.Poly(generator(x), x)
    lx2 = sp.Poly(generator(x**2), x)
    assert lx.degree() == 1 and lx2.degree() == 2 and lx2.coeff_monomial(x) == 0
    mean_rhs = lx.coeff_monomial(x) * m(t)
    # Var = E x² − m², so v' = (E x²)' − 2 m m' with E x² = v + m².
    var_rhs = sp.expand(lx2.coeff_monomial(x**2) * (v(t) + m(t) ** 2) + lx2.coeff_monomial(1) - 2 * m(t) * mean_rhs)
    mean_ode = sp.Eq(m(t).diff(t), mean_rhs)
    var_ode = sp.Eq(v(t).diff(t), var_rhs)

    def solve(ode, f, at_zero):
        general = sp.dsolve(ode, f(t)).rhs
        c1 = sp.Symbol("C1")
        const = sp.solve(sp.Eq(general.subs(big_b(t), 0).subs(t, 0), at_zero), c1)[0]  # B(0) = 0
        return general.subs(c1, const)

    mean_sol = solve(mean_ode, m, mu)
    var_sol = solve(var_ode, v, lam)
    generic_alpha = sp.expand(mean_sol / mu)
    generic_sigma2 = sp.expand(var_sol.subs(lam, 0))
    # Mean α_t μ and variance α_t² λ + σ_t²: what the code's Gaussian.noised uses.
    assert is_zero(var_sol - (lam * generic_alpha**2 + generic_sigma2))

    linear = sy["beta_min"] + (sy["beta_max"] - sy["beta_min"]) * t / T
    angle = (t / T + s) / (1 + s) * sp.pi / 2
    cosine = sp.pi / (T * (1 + s)) * sp.sin(angle) / sp.cos(angle)
    w = sp.Symbol("w", positive=True)
    # For the cosine β, substitute w = angle(u): β(u) du = (π/(T(1+s))) tan(w) · (dw/du)⁻¹ dw.
    dw_du = sp.diff(angle, t)
    integrals = {
        "linear": sp.integrate(linear.subs(t, u), (u, 0, t)),
        "cosine": sp.integrate(sp.cancel(cosine.subs(angle, w) / dw_du), (w, angle.subs(t, 0), angle)),
    }
    shown_beta = sp.Symbol(r"\beta(t)")
    results = {"mean_ode": mean_ode.rhs.subs(beta_t, shown_beta).subs(m(t), sp.Symbol("m")),
               "var_ode": var_ode.rhs.subs(beta_t, shown_beta).subs(v(t), sp.Symbol("v"))}
    for name, b in (("linear", linear), ("cosine", cosine)):
        integral = integrals[name]
        assert is_zero(sp.diff(integral, t) - b) and integral.subs(t, 0) == 0
        alpha = sp.powsimp(generic_alpha.subs(big_b(t), integral))
        results[f"beta_{name}"] = b
        results[f"log_alpha_{name}"] = sp.simplify(sp.expand_log(sp.log(alpha), force=True))
        results[f"alpha_{name}"] = alpha
        results[f"sigma2_{name}"] = sp.powsimp(generic_sigma2.subs(big_b(t), integral))
        # α_t² + σ_t² = 1 for every VP schedule: the variance ODE has the fixed point 1.
        assert is_zero(results[f"alpha_{name}"] ** 2 + results[f"sigma2_{name}"] - 1)

    alpha_g, sigma2_g = sp.Symbol(r"\alpha_t", positive=True), sp.Symbol(r"\sigma_t^2", positive=True)
    var_t = alpha_g**2 * lam + sigma2_g
    log_density = -((x - alpha_g * mu) ** 2) / (2 * var_t) - sp.log(2 * sp.pi * var_t) / 2
    # It solves the forward Fokker–Planck equation ∂_t q = ½β ∂_x(x q) + ½β ∂_xx q with the solved moments; divided
    # by q: ∂_t log q = ½β(1 + x ∂_x log q) + ½β(∂_xx log q + (∂_x log q)²).
    ell = log_density.subs({alpha_g: generic_alpha, sigma2_g: generic_sigma2})
    lx_, lxx = sp.diff(ell, x), sp.diff(ell, x, 2)
    residual = sp.diff(ell, t) - beta_t / 2 * (1 + x * lx_ + lxx + lx_**2)
    e = sp.Symbol("E", positive=True)
    assert is_zero(residual.subs(sp.exp(-big_b(t) / 2), sp.sqrt(e)).subs(sp.exp(-big_b(t)), e))
    results["alpha_generic"] = generic_alpha.subs(big_b(t), sp.Integral(sp.Function(r"\beta")(u), (u, 0, t)))
    results["diffused_variance"] = var_t
    results["log_density"] = log_density
    results["score"] = sp.simplify(sp.diff(log_density, x))
    sy.update(alpha_t=alpha_g, sigma2_t=sigma2_g)
    return Derivation(
        name="forward_vp",
        title="Forward VP process",
        method=(
            "generator of the SDE applied to x and x^2 (moment ODEs), dsolve for a general beta, each schedule's "
            "beta substituted and integrated; the Gaussian with the solved moments checked against the forward "
            "Fokker-Planck equation"
        ),
        assumptions=(
            "beta(t) > 0 integrable on [0, t]; the cosine schedule for t < T (beta(T) is infinite)",
            "one eigen-direction of the initial covariance (variance lambda > 0, mean mu); alpha_t^2 Sigma + "
            "sigma_t^2 I keeps the eigenbasis of Sigma",
        ),
        results=results,
        symbols=sy,
        shown=(
            (r"\dot m", "mean_ode"),
            (r"\dot v", "var_ode"),
            (r"\alpha_t", "alpha_generic"),
            (r"\alpha_t^{\mathrm{lin}}", "alpha_linear"),
            (r"(\sigma_t^{\mathrm{lin}})^2", "sigma2_linear"),
            (r"\alpha_t^{\cos}", "alpha_cosine"),
            (r"\log q_t(x)", "log_density"),
            (r"\partial_x \log q_t(x)", "score"),
        ),
    )
