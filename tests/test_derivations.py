"""The numerics checked against SymPy derivations (:mod:`theory.derivations`), not against themselves.

Each derived expression is lambdified and compared with the code at random points and times (Hypothesis) at
``rtol = 1e-12``; where the code integrates an ODE, its right-hand side is captured (``solve_ivp`` / ``quad_vec``
replaced by a recorder) and compared with the derived one. Reference values of the schedules are evaluated in
40-digit ``mpmath`` so that the comparison measures the code's float64 error, not the reference's.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from closed_form import (
    GAUSSIAN_SETTING_NAMES,
    CosineSchedule,
    Gaussian,
    ImproperCompositionError,
    VPSchedule,
    chi2,
    compose,
    gaussian_power_product,
    kl,
    ode_law,
    paper_setting,
    sde_law,
    w2,
)
from theory.derivations import (
    appendix_latex,
    fk_moment_rhs,
    fkc_affine_potential,
    fkc_weight,
    forward_vp,
    gaussian_divergences,
    gaussian_moment_odes,
    gaussian_power_products,
    notes_markdown,
    path_vs_target,
)
from report_helpers import require_latex
from theory.derivations.render import APPENDIX_PACKAGES, notes_block
from verify.samplers.smc import fkc_log_weight_rate

RTOL = 1e-12
ROOT = Path(__file__).resolve().parents[1]
#: Fractions of the horizon: 0, or at least 1e-300 (XLA on CPU flushes subnormal intermediates to zero, so times near
#: 1e-308 give σ_t² = 0 in the code; the samplers never go below 1e-5).
unit = st.one_of(st.just(0.0), st.floats(1e-300, 1.0))


def close(actual, expected, rtol=RTOL):
    """Relative agreement, with an absolute floor of ``rtol`` times the largest magnitude (entries near zero)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def basis(seed, d):
    """A random orthonormal basis (columns)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# ------------------------------------------------------------------------------------------ 1. forward VP process
#: Digits of the mpmath references: ``σ_t² = 1 − α_t²`` cancels down to ``t`` itself, and Hypothesis tries
#: ``t`` as small as the smallest normal float64 (1e-308).
REFERENCE_DIGITS = 400


@lru_cache(maxsize=None)
def _mp(key, names):
    """The forward derivation's ``results[key]`` as an mpmath function of the symbols ``names`` (cached)."""
    der = forward_vp()
    return sp.lambdify([der.symbols[n] for n in names], der.results[key], modules="mpmath")


@given(frac=unit, bmin=st.floats(0.01, 1.0), spread=st.floats(0.0, 30.0), horizon=st.floats(0.5, 2.0))
def test_linear_schedule_matches_its_derivation(frac, bmin, spread, horizon):
    sched = VPSchedule(bmin, bmin + spread, horizon)
    t = frac * horizon
    with mpmath.workdps(REFERENCE_DIGITS):
        for key, code in (("alpha_linear", sched.alpha), ("sigma2_linear", sched.sigma2),
                          ("log_alpha_linear", sched.log_alpha), ("beta_linear", sched.beta)):
            fn = _mp(key, ("t", "beta_min", "beta_max", "T"))
            ref = float(fn(*map(mpmath.mpf, (t, bmin, bmin + spread, horizon))))
            close(float(code(t)), ref)


@given(frac=st.one_of(st.just(0.0), st.floats(1e-300, 0.99)), s=st.floats(0.001, 0.1), horizon=st.floats(0.5, 2.0))
def test_cosine_schedule_matches_its_derivation(frac, s, horizon):
    sched = CosineSchedule(s, horizon)
    t = frac * horizon
    with mpmath.workdps(REFERENCE_DIGITS):
        for key, code in (("alpha_cosine", sched.alpha), ("sigma2_cosine", sched.sigma2),
                          ("log_alpha_cosine", sched.log_alpha), ("beta_cosine", sched.beta)):
            ref = float(_mp(key, ("t", "s", "T"))(*map(mpmath.mpf, (t, s, horizon))))
            close(float(code(t)), ref)


def test_cosine_derivation_recovers_the_nichol_dhariwal_definition():
    """``α_t² = f(t)/f(0)`` with ``f(t) = cos²((t/T + s)/(1 + s)·π/2)``: the schedule's definition, reached from β."""
    der = forward_vp()
    t, s, T = der.symbols["t"], der.symbols["s"], der.symbols["T"]
    f = lambda u: sp.cos((u / T + s) / (1 + s) * sp.pi / 2) ** 2  # noqa: E731
    assert sp.simplify(der.results["alpha_cosine"] ** 2 - f(t) / f(0)) == 0


@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(1e-4, 1.0))
def test_diffused_gaussian_log_density_and_score_match_the_code(seed, frac):
    der = forward_vp()
    sy = der.symbols
    args = (sy["x"], sy["mu"], sy["lam"], sy["alpha_t"], sy["sigma2_t"])
    logpdf = sp.lambdify(args, der.results["log_density"])
    score = sp.lambdify(args, der.results["score"])
    rng = np.random.default_rng(seed)
    d = 3
    u = basis(seed, d)
    lam = 10 ** rng.uniform(-1, 1, d)
    mu = rng.normal(size=d)
    x = rng.normal(size=(4, d)) * 2
    sched = VPSchedule()
    a, s2 = float(sched.alpha(frac)), float(sched.sigma2(frac))
    q = Gaussian(mu, (u * lam) @ u.T).noised(sched, frac)
    y, m = x @ u, u.T @ mu  # coordinates in the eigenbasis
    close(np.asarray(q.logpdf(x)), logpdf(y, m, lam, a, s2).sum(axis=1))
    close(np.asarray(q.score(x)), score(y, m, lam, a, s2) @ u.T)


# ------------------------------------------------------------------------------------------ 2. products
weights3 = st.tuples(st.floats(-2.0, 3.0), st.floats(-2.0, 3.0), st.floats(-2.0, 3.0))


@given(seed=st.integers(0, 2**32 - 1), w=weights3)
def test_power_product_per_direction_matches_the_code(seed, w):
    der = gaussian_power_products(3)
    sy = der.symbols
    args = (*sy["w"], *sy["mu"], *sy["v"])
    precision = sp.lambdify(args, der.results["precision"])
    eta = sp.lambdify(args, der.results["natural_mean"])
    log_const = sp.lambdify((*args, sy["lam"], sy["eta"]), der.results["log_const"])
    proper = sp.lambdify(sy["lam"], der.results["proper"])
    rng = np.random.default_rng(seed)
    d = 3
    u = basis(seed, d)
    var = 10 ** rng.uniform(-1, 1, (3, d))
    mus = rng.normal(size=(3, d))
    res = gaussian_power_product(w, mus, [(u * v) @ u.T for v in var])
    mu_t = mus @ u  # per-direction means
    per = [(*w, *mu_t[:, k], *var[:, k]) for k in range(d)]
    lam = np.array([precision(*p) for p in per])
    et = np.array([eta(*p) for p in per])
    assert (res.mean is not None) == all(bool(proper(val)) for val in lam)
    if any(w):  # all-zero weights are rejected earlier, as invalid weights
        try:
            compose([Gaussian(m, (u * v) @ u.T) for m, v in zip(mus, var)], w)
            accepted = True
        except ImproperCompositionError:
            accepted = False
        assert accepted == all(bool(proper(val)) for val in lam)
    close(np.linalg.eigvalsh(res.precision), np.sort(lam))
    if res.mean is not None:
        close(res.mean, u @ (et / lam))
        close(res.log_const, sum(log_const(*p, lam_k, e_k) for p, lam_k, e_k in zip(per, lam, et)))


@given(seed=st.integers(0, 2**32 - 1), w=weights3)
def test_power_product_natural_parameters_match_the_code_without_a_shared_basis(seed, w):
    der = gaussian_power_products(3)
    sy = der.symbols
    entries = [s for lf in sy["lams"] for s in (lf[0, 0], lf[0, 1], lf[1, 1])]
    means = [s for mf in sy["mus"] for s in mf]
    args = (*sy["w"], *entries, *means)
    precision = sp.lambdify(args, der.results["precision_2d"])
    eta = sp.lambdify(args, der.results["natural_mean_2d"])
    const = sp.lambdify(args, der.results["const_2d"])
    log_integral = sp.lambdify((sy["lam"], sy["eta"]), der.results["log_integral"])
    rng = np.random.default_rng(seed)
    covs = [(basis(seed + i, 2) * 10 ** rng.uniform(-1, 1, 2)) @ basis(seed + i, 2).T for i in range(3)]
    mus = rng.normal(size=(3, 2))
    precs = [np.linalg.inv(c) for c in covs]
    vals = (*w, *[p[i, j] for p in precs for i, j in ((0, 0), (0, 1), (1, 1))], *mus.ravel())
    res = gaussian_power_product(w, mus, covs)
    lam = np.asarray(precision(*vals), dtype=np.float64)
    close(res.precision, lam)
    if res.mean is not None:
        e = np.asarray(eta(*vals), dtype=np.float64).ravel()
        close(res.mean, np.linalg.solve(lam, e))
        # The d-dimensional integral factorizes over the eigen-directions of Λ.
        ev, vec = np.linalg.eigh(lam)
        close(res.log_const, const(*vals) + sum(log_integral(lk, ek) for lk, ek in zip(ev, vec.T @ e)))


# ------------------------------------------------------------------------------------------ 3. path vs target
def test_path_and_target_precisions_coincide_exactly_in_the_factorized_settings_only():
    der = path_vs_target()
    assert der.results["gap_FC_ID"] == (0, 0) and der.results["gap_FC_OOD"] == (0, 0)
    s = der.symbols["s"]
    for name in ("NFC_ID", "NFC_OOD"):
        for gap in der.results[f"gap_{name}"]:
            assert sp.simplify(gap) != 0 and all(gap.subs(s, v) != 0 for v in (sp.Rational(1, 4), sp.Rational(1, 2)))
    # The unfactorized gap carries the factor (a − c)(b − c): zero exactly when the base variance equals a source's.
    a, b, c = (der.symbols[k] for k in "abc")
    gap = der.results["unfactorized_gap"]
    assert sp.simplify(gap.subs(c, a)) == 0 and sp.simplify(gap.subs(c, b)) == 0


@given(frac=st.floats(1e-3, 1.0))
def test_path_and_target_precisions_match_the_code_in_the_paper_settings(frac):
    der = path_vs_target()
    sy = der.symbols
    args = (sy["s"], *sy["w"], *sy["v"])
    path = sp.lambdify(args, der.results["path_precision"])
    target = sp.lambdify(args, der.results["target_precision"])
    sched = VPSchedule()
    s = float(sched.alpha(frac)) ** 2
    for name in GAUSSIAN_SETTING_NAMES:
        comp = paper_setting(name).composition
        var = np.stack([np.diag(np.asarray(src.cov)) for src in comp.sources])
        code_path = np.diag(np.asarray(comp.path_composition(sched, frac).target.precision))
        code_target = np.diag(np.asarray(comp.noised_target(sched, frac).precision))
        close(code_path, [path(s, *comp.weights, *var[:, k]) for k in range(2)])
        close(code_target, [target(s, *comp.weights, *var[:, k]) for k in range(2)])


@lru_cache(maxsize=None)
def _path_functions():
    der = path_vs_target()
    sy = der.symbols
    args = (sy["s"], *sy["w"], *sy["v"], *sy["mu"])
    return {k: sp.lambdify(args, der.results[k]) for k in
            ("path_precision", "target_precision", "path_natural_mean", "target_natural_mean")}


@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(1e-3, 1.0), w=weights3.filter(any))
def test_path_and_target_natural_parameters_match_the_code_with_a_shared_basis(seed, frac, w):
    fns = _path_functions()
    rng = np.random.default_rng(seed)
    d = 2
    u = basis(seed, d)
    var = 10 ** rng.uniform(-1, 1, (3, d))
    mus = rng.normal(size=(3, d))
    sched = VPSchedule()
    s = float(sched.alpha(frac)) ** 2
    per = [(s, *w, *var[:, k], *(mus @ u)[:, k]) for k in range(d)]
    vals = {k: np.array([f(*p) for p in per]) for k, f in fns.items()}
    proper = gaussian_power_product(w, mus, [(u * v) @ u.T for v in var]).mean is not None
    if not (proper and np.all(vals["path_precision"] > 0)):
        with pytest.raises(ImproperCompositionError):  # the derived condition, at t = 0 or at t
            comp = compose([Gaussian(m, (u * v) @ u.T) for m, v in zip(mus, var)], w)
            comp.path_composition(sched, frac)
        return
    comp = compose([Gaussian(m, (u * v) @ u.T) for m, v in zip(mus, var)], w)
    path = comp.path_composition(sched, frac).target
    target = comp.noised_target(sched, frac)
    close(np.asarray(path.precision), (u * vals["path_precision"]) @ u.T)
    close(np.asarray(target.precision), (u * vals["target_precision"]) @ u.T)
    close(np.asarray(path.mean), u @ (vals["path_natural_mean"] / vals["path_precision"]))
    close(np.asarray(target.mean), u @ (vals["target_natural_mean"] / vals["target_precision"]))


# ------------------------------------------------------------------------------------------ 4. FKC weight
@pytest.mark.parametrize("dim", [1, 2])
@given(seed=st.integers(0, 2**32 - 1))
def test_fkc_weight_rate_in_the_code_is_the_derived_rate(dim, seed):
    der = fkc_weight(dim)
    sy = der.symbols
    flat = [s for row in sy["s"] for s in row]
    rate = sp.lambdify((sy["beta"], *sy["w"], *flat), der.results["g"])
    rng = np.random.default_rng(seed)
    w = tuple(float(v) for v in rng.uniform(-2, 2, 3))
    beta = float(rng.uniform(0.1, 20))
    scores = rng.normal(size=(3, 5, dim)) * 3
    composed = np.einsum("i,ind->nd", np.asarray(w), scores)
    code = fkc_log_weight_rate([jnp.asarray(s) for s in scores], jnp.asarray(composed), w, beta, dim)
    derived = [rate(beta, *w, *scores[:, n, :].ravel()) for n in range(5)]
    close(np.asarray(code), derived)


@lru_cache(maxsize=None)
def _potential_functions():
    der = fkc_affine_potential()
    sy = der.symbols
    entries = [a[j, k] for a in sy["A"] for j, k in ((0, 0), (0, 1), (1, 1))]
    args = (sy["beta"], *sy["w"], *entries, *[b for v in sy["b"] for b in v])
    return tuple(sp.lambdify(args, der.results[k]) for k in ("G_2d", "h_2d", "c_2d"))


@given(seed=st.integers(0, 2**32 - 1))
def test_fkc_rate_for_affine_scores_is_the_derived_quadratic_potential(seed):
    """``V(x) = −½xᵀGx + hᵀx + c`` with the derived ``(G, h, c)`` equals the code's rate on ``s_i = −A_i x + b_i``."""
    g_fn, h_fn, c_fn = _potential_functions()
    rng = np.random.default_rng(seed)
    w = tuple(float(v) for v in rng.uniform(-2, 2, 3))
    beta = float(rng.uniform(0.1, 20))
    a = [m + m.T for m in rng.normal(size=(3, 2, 2))]
    b = rng.normal(size=(3, 2))
    args = (beta, *w, *[ai[j, k] for ai in a for j, k in ((0, 0), (0, 1), (1, 1))], *b.ravel())
    g_mat, h_vec, c = np.asarray(g_fn(*args), float), np.asarray(h_fn(*args), float).ravel(), float(c_fn(*args))
    x = rng.normal(size=(6, 2)) * 2
    scores = [-(x @ ai) + bi for ai, bi in zip(a, b)]
    composed = sum(wi * si for wi, si in zip(w, scores))
    code = np.asarray(fkc_log_weight_rate([jnp.asarray(si) for si in scores], jnp.asarray(composed), w, beta, 2))
    derived = -0.5 * np.einsum("ni,ij,nj->n", x, g_mat, x) + x @ h_vec + c
    scale = beta * max(float(np.max(si**2)) for si in scores)  # the size of the terms that cancel in the rate
    np.testing.assert_allclose(code, derived, rtol=RTOL, atol=RTOL * scale)


def test_fkc_weight_constant_and_no_hessian_in_three_dimensions():
    der = fkc_weight(3)
    w, beta = der.symbols["w"], der.symbols["beta"]
    assert sp.simplify(der.results["constant"] - beta / 2 * 3 * (1 - sum(w))) == 0
    assert sp.simplify(der.results["forward_constant"] - 3 * beta / 2) == 0


# ------------------------------------------------------------------------------------------ 5. exact laws
class _Recorder:
    """Stands in for ``solve_ivp`` / ``quad_vec``: keeps the function and returns its initial value untouched."""

    def __init__(self):
        self.calls = []

    def solve_ivp(self, fun, span, y0, **kw):
        self.calls.append(fun)

        class Sol:
            status, message = 0, ""
            y = np.asarray(y0)[:, None]

        return Sol()


def _affine_field(seed, d):
    rng = np.random.default_rng(seed)
    a0 = rng.normal(size=(d, d))
    a1 = rng.normal(size=(d, d))
    b0, b1 = rng.normal(size=d), rng.normal(size=d)

    def field(t):
        return a0 @ a0.T / d + t * a1, b0 + t * b1

    return field


@pytest.mark.parametrize("kind", ["sde", "ode"])
@settings(max_examples=10)  # each example traces and compiles JAX functions anew
@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(0.0, 1.0))
def test_law_moment_odes_have_the_derived_right_hand_side(kind, seed, frac):
    import closed_form.laws as laws

    rec = _Recorder()
    d = 3
    sched = VPSchedule()
    field = _affine_field(seed, d)
    rng = np.random.default_rng(seed + 1)
    start = Gaussian(np.zeros(d), np.eye(d))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(laws, "solve_ivp", rec.solve_ivp)
        (sde_law if kind == "sde" else ode_law)(field, sched, start, method="general")
    rhs = rec.calls[-1]
    t = 1e-4 + frac * (1 - 1e-4)
    m = rng.normal(size=d)
    p = rng.normal(size=(d, d))
    p = p @ p.T + np.eye(d)
    a, b = field(t)
    beta = float(sched.beta(t))
    if kind == "sde":
        f_mat, u, diff = beta * (0.5 * np.eye(d) - a), beta * b, beta
    else:
        f_mat, u, diff = 0.5 * beta * (np.eye(d) - a), 0.5 * beta * b, 0.0
    p_dot, m_dot, _ = fk_moment_rhs(f_mat, u, diff, np.zeros((d, d)), np.zeros(d), 0.0, m, p)
    # The code integrates in forward time t, the derivation is in reverse time τ = t_max − t.
    out = rhs(t, np.concatenate([m, p.ravel()]))
    close(out[:d], -m_dot)
    close(out[d:].reshape(d, d), -p_dot)


@pytest.mark.parametrize("kind", ["sde", "ode"])
@settings(max_examples=10)  # each example traces and compiles JAX functions anew
@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(0.0, 1.0))
def test_per_direction_moment_odes_have_the_derived_right_hand_side(kind, seed, frac):
    import closed_form.laws as laws
    from closed_form import CodiagonalField

    der = gaussian_moment_odes()
    a_s, cb, p_s, m_s = der.symbols["scalar"]
    beta_s = der.symbols["beta"]
    p_dot = sp.lambdify((beta_s, a_s, cb, p_s, m_s), der.results[f"{kind}_p_dot_scalar"])
    m_dot = sp.lambdify((beta_s, a_s, cb, p_s, m_s), der.results[f"{kind}_m_dot_scalar"])
    rec = _Recorder()
    d = 3
    rng = np.random.default_rng(seed)
    u = basis(seed, d)
    a0, a1, c0 = rng.uniform(0.1, 3, d), rng.normal(size=d), rng.normal(size=d)
    field = CodiagonalField(u, lambda t: (a0 + t * a1, c0 * (1 + t)))
    sched = VPSchedule()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(laws, "solve_ivp", rec.solve_ivp)
        (sde_law if kind == "sde" else ode_law)(field, sched, Gaussian(np.zeros(d), np.eye(d)), method="diagonal")
    rhs = rec.calls[-1]
    t = 1e-4 + frac * (1 - 1e-4)
    m, p = rng.normal(size=d), rng.uniform(0.1, 5, d)
    beta = float(sched.beta(t))
    out = rhs(t, np.concatenate([m, p]))
    a, c = a0 + t * a1, c0 * (1 + t)
    close(out[:d], -m_dot(beta, a, c, p, m))
    close(out[d:], -p_dot(beta, a, c, p, m))


def _log_rho(x, m, p, ell):
    """``log(e^ℓ N(x; m, P))``."""
    r = x - m
    return ell - 0.5 * r @ jnp.linalg.solve(p, r) - 0.5 * jnp.linalg.slogdet(2 * jnp.pi * p)[1]


@jax.jit
def _fk_sides(x, state, rates):
    """``∂_τ log ρ`` along the rates ``(ṁ, Ṗ, ℓ̇)``, and ``∇ log ρ``, ``Δ log ρ`` at ``x``, by autodiff."""
    _, dtau = jax.jvp(lambda m, p, ell: _log_rho(x, m, p, ell), state, rates)
    grad = jax.grad(_log_rho)(x, *state)
    lap = jnp.trace(jax.hessian(_log_rho)(x, *state))
    return dtau, grad, lap


@given(seed=st.integers(0, 2**32 - 1))
def test_feynman_kac_moment_odes_solve_the_equation_by_automatic_differentiation(seed):
    """``ρ = e^ℓ N(m, P)`` moved by the derived ``(ṁ, Ṗ, ℓ̇)`` satisfies ``∂_τρ = −∇·(fρ) + ½DΔρ + Vρ`` at random
    ``x`` in three dimensions with non-commuting ``F``, ``G``, ``P``: both sides by JAX autodiff of the density."""
    d = 3
    rng = np.random.default_rng(seed)
    f_mat, u = rng.normal(size=(d, d)), rng.normal(size=d)
    g = rng.normal(size=(d, d))
    g = g + g.T
    h, c, diff = rng.normal(size=d), float(rng.normal()), float(rng.uniform(0, 5))
    m = rng.normal(size=d)
    p = rng.normal(size=(d, d))
    p = p @ p.T + np.eye(d)
    ell = float(rng.normal())
    p_dot, m_dot, l_dot = fk_moment_rhs(f_mat, u, diff, g, h, c, m, p)
    state = (jnp.asarray(m), jnp.asarray(p), jnp.asarray(ell))
    rates = (jnp.asarray(m_dot), jnp.asarray(p_dot), jnp.asarray(l_dot))
    for x in rng.normal(size=(4, d)) * 2:
        dtau, grad, lap = _fk_sides(jnp.asarray(x), state, rates)
        grad = np.asarray(grad)
        drift = f_mat @ x + u
        terms = np.array([-np.trace(f_mat), -drift @ grad, 0.5 * diff * float(lap), 0.5 * diff * (grad @ grad),
                          -0.5 * x @ g @ x, h @ x, c])
        # The sides are sums of O(1) terms that can cancel to ~1e-4, so round-off is relative to the largest term.
        np.testing.assert_allclose(float(dtau), terms.sum(), rtol=RTOL, atol=RTOL * np.max(np.abs(terms)))


# ------------------------------------------------------------------------------------------ 6. divergences
@given(seed=st.integers(0, 2**32 - 1))
def test_divergences_per_direction_match_the_code(seed):
    der = gaussian_divergences()
    sy = der.symbols
    args = (sy["mu_p"], sy["mu_q"], sy["v_p"], sy["v_q"])
    kl_1d = sp.lambdify(args, der.results["kl"])
    chi_1d = sp.lambdify(args, der.results["chi2_plus_one"])
    finite = sp.lambdify(args, der.results["chi2_finite"])
    w2_1d = sp.lambdify(args, der.results["w2_squared"])
    rng = np.random.default_rng(seed)
    d = 3
    u = basis(seed, d)
    vp, vq = 10 ** rng.uniform(-1, 1, d), 10 ** rng.uniform(-1, 1, d)
    mp, mq = rng.normal(size=d), rng.normal(size=d)
    p, q = Gaussian(u @ mp, (u * vp) @ u.T), Gaussian(u @ mq, (u * vq) @ u.T)
    close(float(kl(p, q)), sum(kl_1d(*a) for a in zip(mp, mq, vp, vq)))
    close(float(w2(p, q)) ** 2, sum(w2_1d(*a) for a in zip(mp, mq, vp, vq)))
    is_finite = all(bool(finite(*a)) for a in zip(mp, mq, vp, vq))
    code = float(chi2(p, q))
    assert np.isfinite(code) == is_finite
    if is_finite:
        # Compared as log(1 + χ²): the product of the per-direction factors minus one would cancel when χ² is small.
        close(np.log1p(code), sum(np.log(chi_1d(*a)) for a in zip(mp, mq, vp, vq)))


@settings(max_examples=10)  # each example traces and compiles JAX functions anew
@given(seed=st.integers(0, 2**32 - 1))
def test_girsanov_integrand_matches_the_code(seed):
    import theory.girsanov as girsanov
    from theory.girsanov import affine_error_moment

    der = gaussian_divergences()
    sy = der.symbols
    args = (sy["beta"], *sy["D_mat"], *sy["f_vec"], *sy["m_vec"], sy["chol"][0, 0], sy["chol"][1, 0],
            sy["chol"][1, 1])
    integrand = sp.lambdify(args, der.results["girsanov_integrand_2d"])
    rng = np.random.default_rng(seed)
    dm, f, m = rng.normal(size=(2, 2)), rng.normal(size=2), rng.normal(size=2)
    p = rng.normal(size=(2, 2))
    p = p @ p.T + 0.1 * np.eye(2)
    chol = np.linalg.cholesky(p)
    beta = float(rng.uniform(0.1, 20))
    derived = integrand(beta, *dm.ravel(), *f, *m, chol[0, 0], chol[1, 0], chol[1, 1])
    close(0.5 * beta * affine_error_moment(dm, f, m, p), derived)

    # The integrand girsanov_kl_bound hands to its quadrature, at a random time, against the derivation.
    captured = []
    comp = compose([Gaussian(np.zeros(2), p), Gaussian(m, np.eye(2) + 0.5 * p)], [1.0, 0.5])
    sched = VPSchedule()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(girsanov, "quad_vec", lambda fun, *a, **k: (captured.append(fun), (np.zeros(3), 0.0))[1])
        girsanov.girsanov_kl_bound(comp.naive_field(sched), comp.target, sched, Gaussian(np.zeros(2), np.eye(2)))
    t = float(rng.uniform(1e-3, 1.0))
    a_n, b_n = (np.asarray(v) for v in comp.naive_field(sched)(t))
    q_t = comp.target.noised(sched, t)
    prec = np.linalg.inv(np.asarray(q_t.cov))
    alpha = float(sched.alpha(t))
    d_mat, f_vec = a_n - prec, b_n - prec @ (alpha * np.asarray(comp.target.mean))
    chol_t = np.linalg.cholesky(np.asarray(q_t.cov))
    expected = integrand(float(sched.beta(t)), *d_mat.ravel(), *f_vec, *np.asarray(q_t.mean), chol_t[0, 0],
                         chol_t[1, 0], chol_t[1, 1])
    close(captured[-1](t)[0], expected)


@pytest.mark.parametrize("name", ["NFC_OOD", "FC_ID"])
def test_fkc_limit_law_solves_the_derived_moment_odes(name):
    """``closed_form.fkc_limit_law`` (natural parameters Λ, η, ν, its own potential) against another route: the
    SymPy-derived moment form ``(Ṗ, ṁ, ℓ̇)`` of :func:`fk_moment_rhs`, with ``(G, h, c)`` from the derived potential,
    integrated here in reverse time from the same start, for the paper's scores plus the worst-case precision error
    (a time-inconsistent error, so the limit is not a composition of diffused laws)."""
    from scipy.integrate import solve_ivp

    from closed_form import add_fields, fkc_limit_law
    from closed_form.fields import as_numpy_field
    from closed_form.perturbations import precision_error

    sched = VPSchedule()
    comp = paper_setting(name).composition
    w = [float(x) for x in comp.weights]
    errors = [precision_error(src, sched, 0.1, float(np.sign(wi))) for src, wi in zip(comp.sources, w)]
    fields = [add_fields(f, e.field) for f, e in zip(comp.source_fields(sched), errors)]
    t_max, t_min = sched.T - 1e-5, 1e-3  # fkc_limit_law starts at the samplers' first grid time T − eps
    start = comp.path_composition(sched, t_max).target
    limit = fkc_limit_law(fields, w, sched, start, t_min=t_min, eps=1e-5, rtol=1e-11)

    g_fn, h_fn, c_fn = _potential_functions()
    numpy_fields = [as_numpy_field(f) for f in fields]

    def rhs(t, y):
        beta = float(sched.beta(t))
        ab = [f(t) for f in numpy_fields]
        entries = [a[j, k] for a, _ in ab for j, k in ((0, 0), (0, 1), (1, 1))]
        args = (beta, *w, *entries, *[bj for _, b in ab for bj in b])
        g = np.asarray(g_fn(*args), float)
        h = np.asarray(h_fn(*args), float).reshape(2)
        c = float(c_fn(*args))
        a_s = sum(wi * a for wi, (a, _) in zip(w, ab))
        b_s = sum(wi * b for wi, (_, b) in zip(w, ab))
        f_mat, u = beta * (0.5 * np.eye(2) - a_s), beta * b_s
        p_dot, m_dot, l_dot = fk_moment_rhs(f_mat, u, beta, g, h, c, y[4:6], y[:4].reshape(2, 2))
        return -np.concatenate([p_dot.ravel(), m_dot, [l_dot]])  # reverse time τ = t_max − t

    y0 = np.concatenate([np.asarray(start.cov).ravel(), np.asarray(start.mean), [0.0]])
    sol = solve_ivp(rhs, (t_max, t_min), y0, method="DOP853", rtol=1e-10, atol=1e-12)
    assert sol.status == 0
    y = sol.y[:, -1]
    np.testing.assert_allclose(np.asarray(limit.law.cov), y[:4].reshape(2, 2), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(limit.law.mean), y[4:6], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(limit.log_mass, y[6], rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------------------ typesetting
def test_paper_notes_show_the_derived_formulas():
    text = (ROOT / "paper_notes.md").read_text()
    assert notes_block(text) == notes_markdown(), "regenerate with `python -m theory.derivations paper_notes.md`"


def test_report_appendix_shows_the_same_formulas_and_compiles(tmp_path):
    from verify.report.tables import standalone_document

    require_latex()

    appendix = appendix_latex()
    for line in notes_markdown().splitlines():
        if line.startswith("$$ "):
            assert line[3:-3] in appendix
    (tmp_path / "appendix_derivations.tex").write_text(appendix)
    (tmp_path / "report.tex").write_text(standalone_document([], appendix="appendix_derivations.tex"))
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "\n!" not in proc.stdout and "Undefined control sequence" not in proc.stdout
