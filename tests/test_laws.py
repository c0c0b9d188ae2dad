"""Exact output laws of affine-field samplers (closed_form.laws) against closed forms, each other, Monte Carlo and the
paper's reference values."""

import jax
import numpy as np
import pytest
from strategies import spd_matrix

from closed_form import (
    GAUSSIAN_SETTING_NAMES,
    CatcompError,
    CosineSchedule,
    Gaussian,
    InvalidTimeError,
    NotCodiagonalizableError,
    ShapeMismatchError,
    VPSchedule,
    add_fields,
    codiagonal_field,
    compose,
    euler_maruyama_law,
    ode_law,
    paper_setting,
    reverse_time_grid,
    sde_law,
)
from closed_form.fields import as_numpy_field
from closed_form.laws import DEFAULT_RTOL

SCHEDULE = VPSchedule()
#: The accuracy the module promises for the continuous laws (its integration runs at rtol 1e-11).
LAW_RTOL = 1e-9


def _close(g, ref, rtol):
    """Relative agreement of two Gaussians, in the scale of ``ref``'s covariance."""
    scale = float(np.max(np.abs(np.asarray(ref.cov))))
    np.testing.assert_allclose(np.asarray(g.cov), np.asarray(ref.cov), rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(np.asarray(g.mean), np.asarray(ref.mean), rtol=0, atol=rtol * max(scale, 1.0))


def _non_commuting(seed=0, d=3):
    """A proper composition with weights (1, 0.8, −0.3) whose covariances do not commute."""
    rng = np.random.default_rng(seed)
    srcs = [Gaussian(rng.normal(size=d), spd_matrix(rng, d, 1.0, s)) for s in (1.0, 2.0, 4.0)]
    return compose(srcs, [1.0, 0.8, -0.3])


def _rotated_commuting(seed=1, d=3):
    """Covariances sharing one non-trivial eigenbasis (commuting, not diagonal), weights (1, 1, −1)."""
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    variances = ([10.0, 1.0, 2.0], [1.0, 10.0, 2.0], [20.0, 20.0, 20.0])
    srcs = [Gaussian(rng.normal(size=d), (rot * np.asarray(v)) @ rot.T) for v in variances]
    return compose(srcs, [1.0, 1.0, -1.0])


COMPOSITIONS = {
    **{name: paper_setting(name).composition for name in GAUSSIAN_SETTING_NAMES},
    "rotated": _rotated_commuting(),
    "non_commuting": _non_commuting(),
}


# ------------------------------------------------------------------------- the exact field reproduces Q_t
@pytest.mark.parametrize("law", [sde_law, ode_law])
@pytest.mark.parametrize("name", list(COMPOSITIONS))
@pytest.mark.parametrize("t_min", [1e-4, 0.0])
def test_exact_field_from_exact_start_reproduces_target(law, name, t_min):
    """Started at Q_T and driven by ∇log Q_t, both the reverse SDE and the probability-flow ODE have law Q_{t_min};
    at t_min = 0 that is the target Q₀ itself."""
    comp = COMPOSITIONS[name]
    got = law(comp.target_field(SCHEDULE), SCHEDULE, comp.noised_target(SCHEDULE, SCHEDULE.T), t_min=t_min)
    _close(got, comp.noised_target(SCHEDULE, t_min), LAW_RTOL)


def test_exact_field_reproduces_target_under_cosine_schedule():
    schedule = CosineSchedule()
    comp = COMPOSITIONS["non_commuting"]
    t_max = 0.99
    for law in (sde_law, ode_law):
        got = law(comp.target_field(schedule), schedule, comp.noised_target(schedule, t_max), t_min=1e-3, t_max=t_max)
        _close(got, comp.noised_target(schedule, 1e-3), LAW_RTOL)


# ------------------------------------------------------------------------- the three routes agree
@pytest.mark.parametrize("name", ["NFC_OOD", "rotated"])
def test_per_direction_routes_match_matrix_route(name):
    """CodiagonalField (declared basis), the detected basis of a plain field, and the matrix ODE/recursion agree."""
    comp = COMPOSITIONS[name]
    start = Gaussian(np.full(comp.dim, 0.3), np.eye(comp.dim))
    plain, declared = comp.naive_field(SCHEDULE), codiagonal_field(comp, SCHEDULE)
    for law, rtol in ((sde_law, LAW_RTOL), (ode_law, LAW_RTOL), (euler_maruyama_law, 1e-12)):
        ref = law(plain, SCHEDULE, start, method="general")
        _close(law(plain, SCHEDULE, start, method="diagonal"), ref, rtol)
        _close(law(declared, SCHEDULE, start, method="diagonal"), ref, rtol)


@pytest.mark.parametrize("which", ["naive", "target"])
def test_codiagonal_field_equals_matrix_field(which):
    comp = COMPOSITIONS["rotated"]
    declared = codiagonal_field(comp, SCHEDULE, which)
    plain = comp.naive_field(SCHEDULE) if which == "naive" else comp.target_field(SCHEDULE)
    for t in (1e-5, 0.01, 0.3, 1.0):
        for got, ref in zip(declared(t), plain(t)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-12, atol=1e-12)


def test_detected_basis_falls_back_when_field_is_not_diagonal_there():
    """A start covariance that is diagonal while A_t is not: 'auto' must use the matrix route (same answer)."""
    comp = COMPOSITIONS["non_commuting"]
    start = Gaussian.standard(comp.dim)
    got = sde_law(comp.naive_field(SCHEDULE), SCHEDULE, start)
    _close(got, sde_law(comp.naive_field(SCHEDULE), SCHEDULE, start, method="general"), 1e-13)
    with pytest.raises(NotCodiagonalizableError):
        sde_law(comp.naive_field(SCHEDULE), SCHEDULE, start, method="diagonal")
    with pytest.raises(NotCodiagonalizableError, match="do not commute"):
        codiagonal_field(comp, SCHEDULE)


def test_numpy_field_is_accepted():
    """A field written in NumPy (not traceable by JAX) gives the same law as its JAX twin."""
    comp = COMPOSITIONS["non_commuting"]
    naive = comp.naive_field(SCHEDULE)

    def jax_field(t):  # the same field as a plain traceable function: the plain matrix route, as for `untraceable`
        return naive(t)

    def untraceable(t):
        a, b = jax_field(float(t))  # float() of a tracer raises inside jit, so the law must call this plainly
        return np.asarray(a), np.asarray(b)

    start = Gaussian.standard(comp.dim)
    _close(sde_law(untraceable, SCHEDULE, start), sde_law(jax_field, SCHEDULE, start), 1e-13)
    _close(euler_maruyama_law(untraceable, SCHEDULE, start), euler_maruyama_law(jax_field, SCHEDULE, start), 1e-13)


def test_add_fields_adds_scores():
    comp = COMPOSITIONS["rotated"]
    naive, exact = codiagonal_field(comp, SCHEDULE), codiagonal_field(comp, SCHEDULE, "target")
    both = add_fields(naive, exact)
    mixed = add_fields(comp.naive_field(SCHEDULE), exact)
    for t in (0.01, 0.5):
        expect = [np.asarray(x) + np.asarray(y) for x, y in zip(naive(t), exact(t))]
        for f in (both, mixed):
            for got, ref in zip(f(t), expect):
                np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-13)
    assert type(both).__name__ == "CodiagonalField" and type(mixed).__name__ == "FieldSum"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_fields_equal_dense_inverses_traced_or_not(seed):
    """naive_field / target_field (sources eigendecomposed once) against ``Σ_i w_i (α²Σ_i + σ²I)⁻¹`` formed by
    dense inverses; called plainly, under ``jax.jit`` and through the laws' NumPy evaluator (which fuses the
    per-source parts into one product)."""
    comp = _non_commuting(seed, d=5)
    for which in ("naive", "target"):
        field = comp.naive_field(SCHEDULE) if which == "naive" else comp.target_field(SCHEDULE)
        jitted, fused = jax.jit(field), as_numpy_field(field)
        for t in (1e-5, 0.3, 1.0):
            alpha, s2 = float(SCHEDULE.alpha(t)), float(SCHEDULE.sigma2(t))
            pairs = (zip(comp.sources, comp.weights) if which == "naive" else [(comp.target, 1.0)])
            precs = [(w, np.linalg.inv(alpha**2 * np.asarray(g.cov) + s2 * np.eye(5)), np.asarray(g.mean))
                     for g, w in pairs]
            a_ref = sum(w * p for w, p, _ in precs)
            b_ref = sum(w * p @ (alpha * m) for w, p, m in precs)
            for a, b in (field(t), jitted(t), fused(t)):
                np.testing.assert_allclose(np.asarray(a), a_ref, rtol=0, atol=1e-12 * np.max(np.abs(a_ref)))
                np.testing.assert_allclose(np.asarray(b), b_ref, rtol=0, atol=1e-12 * np.max(np.abs(b_ref)))


def test_fields_of_gaussians_share_their_compilation_across_compositions():
    """The per-direction coefficients of naive / target / codiagonal fields are pytrees whose arrays are arguments of
    one compiled evaluator: a second composition of the same shapes evaluates through it without compiling again,
    and each evaluator agrees with the field called plainly (the same formula) to rounding."""
    from closed_form.fields import _apply

    comps = [_non_commuting(seed, d=6) for seed in (10, 11)]  # a dimension no other test uses: first compile here
    fields = [[c.naive_field(SCHEDULE), c.target_field(SCHEDULE)] for c in comps]
    before = _apply._cache_size()
    for f in fields[0]:
        as_numpy_field(f)(0.4)
    size = _apply._cache_size()
    assert size > before  # the first composition did go through the shared evaluator
    for f in fields[1]:
        ev = as_numpy_field(f)
        for t in (1e-4, 0.4):
            for got, ref in zip(ev(t), f(t)):
                ref = np.asarray(ref)
                np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * np.max(np.abs(ref)))
    assert _apply._cache_size() == size


@pytest.mark.parametrize("seed", [0, 3])
def test_framed_matrix_route_matches_plain_matrix_route(seed):
    """A sum of per-source CodiagonalFields is integrated in the eigenbasis of its first source (one product fewer
    per evaluation); the same field as a plain function takes the standard basis. They agree to rounding (EM, an
    exact recursion) and to the integration tolerance (SDE, ODE)."""
    comp = _non_commuting(seed, d=4)
    framed = comp.naive_field(SCHEDULE)
    assert type(framed).__name__ == "FieldSum"

    def plain(t):
        return framed(t)

    start = Gaussian(np.arange(4.0) / 4, spd_matrix(np.random.default_rng(seed), 4, 0.5, 2.0))
    _close(euler_maruyama_law(framed, SCHEDULE, start), euler_maruyama_law(plain, SCHEDULE, start), 1e-12)
    for law in (sde_law, ode_law):
        _close(law(framed, SCHEDULE, start), law(plain, SCHEDULE, start), 10 * DEFAULT_RTOL)


def test_add_fields_flattens_sums():
    comp = COMPOSITIONS["non_commuting"]
    naive, exact = comp.naive_field(SCHEDULE), comp.target_field(SCHEDULE)
    total = add_fields(naive, exact)
    assert type(naive).__name__ == "FieldSum" and len(naive.parts) == 3
    assert type(total).__name__ == "FieldSum" and len(total.parts) == 4
    assert add_fields(exact) is exact


# ------------------------------------------------------------------------- Euler–Maruyama: order and Monte Carlo
@pytest.mark.parametrize("name", ["NFC_OOD", "non_commuting"])
def test_euler_maruyama_converges_to_continuous_law_with_order_one(name):
    """On the same interval [eps, T − eps], the EM law's error to the continuous SDE law falls like h¹: the log-log
    slope fitted over 5 step counts lies in [0.9, 1.1]."""
    comp = COMPOSITIONS[name]
    field, start, eps = comp.naive_field(SCHEDULE), Gaussian.standard(comp.dim), 1e-5
    exact = sde_law(field, SCHEDULE, start, t_min=eps, t_max=SCHEDULE.T - eps)
    steps = np.array([100, 200, 400, 800, 1600])
    errors = []
    for n in steps:
        em = euler_maruyama_law(field, SCHEDULE, start, n_steps=int(n), eps=eps)
        errors.append(np.linalg.norm(np.asarray(em.cov - exact.cov)) + np.linalg.norm(np.asarray(em.mean - exact.mean)))
    slope = np.polyfit(np.log(SCHEDULE.T / steps), np.log(errors), 1)[0]
    assert 0.9 <= slope <= 1.1, (slope, errors)


@pytest.mark.parametrize("name", ["NFC_OOD", "non_commuting"])
def test_euler_maruyama_law_matches_numpy_monte_carlo(name):
    """A plain NumPy Euler–Maruyama run (n = 20,000 paths, 500 steps, paper grid, fixed seed) agrees with the exact law:
    every mean entry within 5 SE (SE = √(P_ii/n)) and every covariance entry within 5 SE
    (SE = √((P_ii P_jj + P_ij²)/n), the Gaussian sampling variance of a covariance entry)."""
    comp = COMPOSITIONS[name]
    field, d, n = comp.naive_field(SCHEDULE), comp.dim, 20_000
    start = Gaussian(np.full(d, 0.5), np.eye(d))
    law = euler_maruyama_law(field, SCHEDULE, start, n_steps=500)
    rng = np.random.default_rng(1234)
    grid = reverse_time_grid(SCHEDULE, 500)
    x = 0.5 + rng.standard_normal((n, d))
    for k in range(500):
        t, h = grid[k], grid[k] - grid[k + 1]
        beta = 0.1 + 19.9 * t  # the paper's β, written out independently of VPSchedule
        a, b = (np.asarray(v) for v in field(t))
        x = x + h * beta * (0.5 * x - x @ a.T + b) + np.sqrt(beta * h) * rng.standard_normal((n, d))
    m, p = np.asarray(law.mean), np.asarray(law.cov)
    assert np.all(np.abs(x.mean(0) - m) < 5 * np.sqrt(np.diag(p) / n))
    se_cov = np.sqrt((np.outer(np.diag(p), np.diag(p)) + p**2) / n)
    assert np.all(np.abs(np.cov(x.T) - p) < 5 * se_cov)


def test_euler_maruyama_exact_recursion_one_step():
    """One step by hand: m' = Mm + c, P' = MPMᵀ + βhI with M = I + hβ(½I − A), c = hβb at t = grid[0]."""
    comp = COMPOSITIONS["non_commuting"]
    field = comp.naive_field(SCHEDULE)
    start = Gaussian(np.array([0.1, -0.2, 0.3]), np.diag([1.0, 2.0, 0.5]))
    grid = reverse_time_grid(SCHEDULE, 1, eps=0.4)
    t, h = grid[0], grid[0] - grid[1]
    beta = float(SCHEDULE.beta(t))
    a, b = (np.asarray(v) for v in field(t))
    mm = np.eye(3) + h * beta * (0.5 * np.eye(3) - a)
    got = euler_maruyama_law(field, SCHEDULE, start, n_steps=1, eps=0.4)
    np.testing.assert_allclose(np.asarray(got.mean), mm @ np.asarray(start.mean) + h * beta * b, rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(got.cov), mm @ np.asarray(start.cov) @ mm.T + beta * h * np.eye(3), rtol=1e-13
    )


# ------------------------------------------------------------------------- independent closed form in 1-D
def test_sde_variance_against_variation_of_constants_quadrature():
    """Per direction, in u = α_t² (du/dτ = βu), the SDE variance solves dP/du = ((1 − 2a(u))P + 1)/u with
    a(u) = Σ w_i/(1 + u(v_i − 1)). The integrating factor μ(u) = u^{2W−1} Π(1 + u(v_i − 1))^{−2w_i} (W = Σ w_i) gives
    μ(u₁)P₁ = μ(u₀)P₀ + ∫ μ(u)/u du — one scalar quadrature, no ODE solver, to compare with sde_law."""
    from scipy.integrate import quad

    comp = COMPOSITIONS["NFC_OOD"]
    w = comp.weights
    for k in range(2):
        v = np.array([float(s.cov[k, k]) for s in comp.sources])

        def log_mu(u):
            return (2 * w.sum() - 1) * np.log(u) - 2 * np.sum(w * np.log1p(u * (v - 1)))

        u0, u1 = float(SCHEDULE.alpha(1.0)) ** 2, float(SCHEDULE.alpha(1e-4)) ** 2
        p0 = 1.7
        integral, _ = quad(lambda u: np.exp(log_mu(u) - log_mu(u1)) / u, u0, u1, epsabs=0, epsrel=1e-13, limit=200)
        p1 = np.exp(log_mu(u0) - log_mu(u1)) * p0 + integral
        got = sde_law(comp.naive_field(SCHEDULE), SCHEDULE, Gaussian(np.zeros(2), p0 * np.eye(2)))
        np.testing.assert_allclose(float(got.cov[k, k]), p1, rtol=LAW_RTOL)


# ------------------------------------------------------------------------- paper reference values
@pytest.mark.parametrize(
    "name, law, reference, half_unit",
    [
        ("NFC_ID", sde_law, 0.845, 5e-4),
        ("NFC_OOD", sde_law, 8.56, 5e-3),
        ("NFC_ID", ode_law, 0.50, 5e-3),
    ],
)
def test_paper_reference_output_variances(name, law, reference, half_unit):
    """Reference setup: naive composition, exact scores, continuous time from the exact Q_T, stopped at t = 1e-4. Our
    value must round to the stated reference (within half a unit of its last digit)."""
    comp = COMPOSITIONS[name]
    got = law(comp.naive_field(SCHEDULE), SCHEDULE, comp.noised_target(SCHEDULE, SCHEDULE.T), t_min=1e-4)
    variances = np.diag(np.asarray(got.cov))
    assert np.all(np.abs(variances - reference) <= half_unit), variances


@pytest.mark.parametrize("name", ["FC_ID", "FC_OOD"])
def test_factorized_settings_naive_is_exact(name):
    """Under factorized conditionals the naive field is ∇log Q_t, so its SDE and ODE laws are Q_{t_min}."""
    comp = COMPOSITIONS[name]
    start = comp.noised_target(SCHEDULE, SCHEDULE.T)
    for law in (sde_law, ode_law):
        _close(law(comp.naive_field(SCHEDULE), SCHEDULE, start), comp.noised_target(SCHEDULE, 1e-4), LAW_RTOL)


# ------------------------------------------------------------------------- input errors
def test_invalid_inputs_raise_specific_errors():
    comp = COMPOSITIONS["NFC_ID"]
    field, start = comp.naive_field(SCHEDULE), Gaussian.standard(2)
    with pytest.raises(InvalidTimeError, match="t_min"):
        sde_law(field, SCHEDULE, start, t_min=1.5)
    with pytest.raises(InvalidTimeError):
        ode_law(field, SCHEDULE, start, t_min=0.5, t_max=0.2)
    with pytest.raises(ShapeMismatchError, match="pass a start Gaussian of dimension 2"):
        sde_law(field, SCHEDULE, Gaussian.standard(3), method="general")
    with pytest.raises(ShapeMismatchError):
        euler_maruyama_law(field, SCHEDULE, Gaussian.standard(3))
    with pytest.raises(CatcompError, match="start must be a Gaussian"):
        sde_law(field, SCHEDULE, "N(0, I)")
    with pytest.raises(CatcompError, match="method must be one of"):
        ode_law(field, SCHEDULE, start, method="fast")
