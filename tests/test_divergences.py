"""Gaussian KL, W2 and χ² against independent routes: quadrature (1-D, 2-D), POT's Bures distance, Monte Carlo;
and the identities they must satisfy (non-negativity, zero on the diagonal, symmetry, triangle inequality, the
boundary where χ² becomes infinite)."""

import jax
import numpy as np
import ot
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from strategies import spd_matrix

from closed_form import Gaussian, ShapeMismatchError, chi2, kl, w2


def _random_gaussian(seed, d, log10_cond=2.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return Gaussian(rng.normal(size=d), spd_matrix(rng, d, log10_cond, scale))


pairs = st.tuples(st.integers(1, 5), st.integers(0, 2**31), st.floats(0.0, 3.0), st.floats(0.2, 5.0)).map(
    lambda a: (_random_gaussian(a[1], a[0], a[2]), _random_gaussian(a[1] + 1, a[0], a[2], a[3]))
)


def _pdf1(g):
    return stats.norm(float(g.mean[0]), float(np.sqrt(g.cov[0, 0]))).pdf


def _scipy_logpdf(g):
    return stats.multivariate_normal(np.asarray(g.mean), np.asarray(g.cov)).logpdf


def _logpdf1(g):
    return stats.norm(float(g.mean[0]), float(np.sqrt(g.cov[0, 0]))).logpdf


# ------------------------------------------------------------------------------------------------ KL
def test_kl_1d_against_quadrature():
    p = Gaussian(np.array([0.3]), np.array([[0.7]]))
    q = Gaussian(np.array([-1.1]), np.array([[2.5]]))
    fp, fq = _pdf1(p), _pdf1(q)
    ref, _ = integrate.quad(lambda x: fp(x) * (np.log(fp(x)) - np.log(fq(x))), -30, 30, epsabs=1e-14, epsrel=1e-13)
    np.testing.assert_allclose(float(kl(p, q)), ref, rtol=1e-10)


def test_kl_2d_against_quadrature():
    p = Gaussian(np.array([0.3, -0.2]), np.array([[0.7, 0.2], [0.2, 0.5]]))
    q = Gaussian(np.array([-0.4, 0.5]), np.array([[1.5, -0.3], [-0.3, 0.9]]))

    lp_fn, lq_fn = _scipy_logpdf(p), _scipy_logpdf(q)

    def integrand(y, x):
        lp, lq = lp_fn([x, y]), lq_fn([x, y])
        return np.exp(lp) * (lp - lq)

    ref, _ = integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-12, epsrel=1e-11)
    np.testing.assert_allclose(float(kl(p, q)), ref, rtol=1e-8)


def test_kl_monte_carlo_in_5d(key):
    """KL(p‖q) = E_p[log p − log q]; the estimate of n = 200,000 draws lies within 5 standard errors."""
    p, q = _random_gaussian(3, 5), _random_gaussian(4, 5, scale=2.0)
    x = p.sample(key, 200_000)
    terms = np.asarray(p.logpdf(x) - q.logpdf(x))
    se = terms.std(ddof=1) / np.sqrt(terms.size)
    assert abs(terms.mean() - float(kl(p, q))) < 5 * se


@given(pairs)
def test_kl_nonnegative_zero_on_diagonal_and_below_log_one_plus_chi2(pq):
    """KL ≥ 0, KL(p‖p) = 0, and Jensen's KL(p‖q) = E_p log(p/q) ≤ log E_p(p/q) = log(1 + χ²(p‖q))."""
    p, q = pq
    k = float(kl(p, q))
    assert k >= 0.0
    assert abs(float(kl(p, p))) < 1e-12 * p.dim
    c = float(chi2(p, q))
    assert k <= np.log1p(c) * (1 + 1e-12) + 1e-14


# ------------------------------------------------------------------------------------------------ W2
@given(pairs)
def test_w2_matches_pot_bures(pq):
    p, q = pq
    ref = ot.gaussian.bures_wasserstein_distance(
        np.asarray(p.mean), np.asarray(q.mean), np.asarray(p.cov), np.asarray(q.cov)
    )
    np.testing.assert_allclose(float(w2(p, q)), float(ref), rtol=1e-8, atol=1e-10)


def test_w2_1d_closed_form():
    """In 1-D the optimal map is monotone: W₂² = (μ_p − μ_q)² + (σ_p − σ_q)²."""
    p = Gaussian(np.array([1.0]), np.array([[4.0]]))
    q = Gaussian(np.array([-2.0]), np.array([[0.25]]))
    np.testing.assert_allclose(float(w2(p, q)), np.hypot(3.0, 1.5), rtol=1e-13)


@given(pairs, st.integers(0, 2**31))
def test_w2_symmetric_triangle_and_zero_on_diagonal(pq, seed):
    p, q = pq
    r = _random_gaussian(seed, p.dim, 1.0, 3.0)
    d_pq, d_qp = float(w2(p, q)), float(w2(q, p))
    np.testing.assert_allclose(d_pq, d_qp, rtol=1e-10, atol=1e-13)
    assert float(w2(p, p)) < 1e-12 * np.sqrt(float(np.trace(p.cov)) + 1.0)
    assert d_pq <= float(w2(p, r)) + float(w2(r, q)) + 1e-12


def test_w2_is_jittable():
    p, q = _random_gaussian(0, 3), _random_gaussian(1, 3)
    np.testing.assert_allclose(float(jax.jit(w2)(p, q)), float(w2(p, q)), rtol=1e-13)


# ------------------------------------------------------------------------------------------------ χ²
def test_chi2_1d_against_quadrature():
    p = Gaussian(np.array([0.4]), np.array([[1.3]]))
    q = Gaussian(np.array([-0.2]), np.array([[1.0]]))
    lp, lq = _logpdf1(p), _logpdf1(q)
    ref, _ = integrate.quad(lambda x: np.exp(2 * lp(x) - lq(x)), -40, 40, epsabs=1e-14, epsrel=1e-13)
    np.testing.assert_allclose(float(chi2(p, q)), ref - 1.0, rtol=1e-10)


def test_chi2_2d_against_quadrature():
    p = Gaussian(np.array([0.3, -0.2]), np.array([[0.9, 0.2], [0.2, 0.6]]))
    q = Gaussian(np.array([-0.1, 0.4]), np.array([[1.2, -0.1], [-0.1, 0.8]]))

    lp_fn, lq_fn = _scipy_logpdf(p), _scipy_logpdf(q)

    def integrand(y, x):
        return np.exp(2 * lp_fn([x, y]) - lq_fn([x, y]))

    ref, _ = integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-12, epsrel=1e-11)
    np.testing.assert_allclose(float(chi2(p, q)), ref - 1.0, rtol=1e-8)


def test_chi2_monte_carlo_importance_weights(key):
    """1 + χ²(p‖q) = E_q[(p/q)²]. With 4Σ_p⁻¹ − 3Σ_q⁻¹ ≻ 0 the squared weights have finite variance, so the estimate
    from n = 400,000 draws of q must lie within 5 standard errors."""
    p = Gaussian(np.array([0.2, -0.1, 0.3]), np.diag(np.array([0.8, 1.0, 0.7])))
    q = Gaussian(np.zeros(3), np.eye(3))
    assert np.all(np.linalg.eigvalsh(4 * np.linalg.inv(p.cov) - 3 * np.linalg.inv(q.cov)) > 0)
    x = q.sample(key, 400_000)
    w2_terms = np.exp(2 * np.asarray(p.logpdf(x) - q.logpdf(x)))
    se = w2_terms.std(ddof=1) / np.sqrt(w2_terms.size)
    assert abs(w2_terms.mean() - (1.0 + float(chi2(p, q)))) < 5 * se


@pytest.mark.parametrize("b", [0.5, 1.0, 3.0])
def test_chi2_boundary_is_2_sigma_q_minus_sigma_p(b):
    """1-D: χ²(N(0,a)‖N(0,b)) = b/√(a(2b − a)) − 1 for a < 2b and +∞ from a = 2b on."""
    q = Gaussian(np.zeros(1), np.array([[b]]))

    def at(a):
        return float(chi2(Gaussian(np.zeros(1), np.array([[a]])), q))

    for a in (0.3 * b, b, 1.9 * b, 2 * b * (1 - 1e-9)):
        # rtol 1e-6: next to the boundary 2b − a carries the rounding of a = 2b(1 − 1e-9), relative 1e-7.
        np.testing.assert_allclose(at(a), b / np.sqrt(a * (2 * b - a)) - 1.0, rtol=1e-6, atol=1e-14)
    assert np.isinf(at(2 * b)) and np.isinf(at(2 * b * (1 + 1e-9))) and np.isinf(at(5 * b))


def test_chi2_infinite_when_one_direction_violates():
    """Finite needs 2Σ_q − Σ_p ≻ 0 in every direction: one bad eigen-direction (rotated) makes it infinite."""
    rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
    q = Gaussian(np.zeros(2), np.eye(2))
    p_ok = Gaussian(np.zeros(2), rot @ np.diag([1.99, 0.5]) @ rot.T)
    p_bad = Gaussian(np.zeros(2), rot @ np.diag([2.01, 0.5]) @ rot.T)
    assert np.isfinite(float(chi2(p_ok, q))) and np.isinf(float(chi2(p_bad, q)))


@given(pairs)
def test_chi2_nonnegative_and_zero_on_diagonal(pq):
    p, q = pq
    assert float(chi2(p, q)) >= 0.0
    assert float(chi2(p, p)) < 1e-12 * p.dim


def test_dimension_mismatch_is_reported():
    with pytest.raises(ShapeMismatchError, match="dimensions 2 and 3"):
        kl(Gaussian.standard(2), Gaussian.standard(3))


# ------------------------------------------------------------------ total variation with (nearly) equal covariances
def _tv_1d_mpmath(m1, v1, m2, v2, dps=60):
    """Exact ``TV(N(m1, v1), N(m2, v2))`` in 1-D at ``dps`` digits: ``{log p − log q > 0}`` is where the quadratic
    ``a x² + b x + c`` is positive (roots by the quadratic formula, which at 60 digits cancels harmlessly), and
    ``TV = P_p − P_q`` of that set by the normal CDF. An independent route to the generalized chi-square one."""
    import mpmath as mp

    mp.mp.dps = dps
    m1, v1, m2, v2 = (mp.mpf(float(x)) for x in (m1, v1, m2, v2))
    a = (1 / v2 - 1 / v1) / 2
    b = m1 / v1 - m2 / v2
    c = m2**2 / (2 * v2) - m1**2 / (2 * v1) - mp.log(v1 / v2) / 2

    def prob(m, v):
        cdf = lambda x: mp.ncdf((x - m) / mp.sqrt(v))  # noqa: E731
        if a == 0:
            if b == 0:
                return mp.mpf(1) if c > 0 else mp.mpf(0)
            root = -c / b
            return 1 - cdf(root) if b > 0 else cdf(root)
        disc = b**2 - 4 * a * c
        if disc <= 0:
            return mp.mpf(1) if a > 0 else mp.mpf(0)
        r1, r2 = sorted(((-b - mp.sqrt(disc)) / (2 * a), (-b + mp.sqrt(disc)) / (2 * a)))
        inside = cdf(r2) - cdf(r1)
        return 1 - inside if a > 0 else inside

    return float(prob(m1, v1) - prob(m2, v2))


def test_tv_equal_covariances_is_the_mahalanobis_closed_form():
    """Equal covariances: ``TV = 2Φ(δ/2) − 1`` with ``δ`` the Mahalanobis distance of the means (0 was returned for a
    small shift, from an oscillatory integral over a range 1000 times too long)."""
    from closed_form.divergences import total_variation_gaussians

    p, q = Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.array([0.01, 0.0]), np.eye(2))
    np.testing.assert_allclose(total_variation_gaussians(p, q), 2 * stats.norm.cdf(0.005) - 1, rtol=1e-9)
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    for shift in (1e-6, 1e-3, 0.3, 4.0):
        delta = np.array([shift, -0.5 * shift])
        maha = float(np.sqrt(delta @ np.linalg.solve(cov, delta)))
        got = total_variation_gaussians(Gaussian(np.ones(2), cov), Gaussian(np.ones(2) + delta, cov))
        np.testing.assert_allclose(got, 2 * stats.norm.cdf(maha / 2) - 1, rtol=1e-9, atol=1e-15)


def test_tv_nearly_equal_covariances_against_the_exact_1d_route():
    """``TV(N(0, I), N((0.1, 0), diag(1 + 1e-4, 1)))`` is ``0.0399`` (it was 0): the second coordinate has one
    marginal in both and is independent of the first, so the TV is the 1-D one of the first coordinate."""
    from closed_form.divergences import total_variation_gaussians

    p, q = Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.array([0.1, 0.0]), np.diag([1 + 1e-4, 1.0]))
    exact = _tv_1d_mpmath(0.0, 1.0, 0.1, 1 + 1e-4)
    assert abs(exact - 0.0399) < 1e-4
    np.testing.assert_allclose(total_variation_gaussians(p, q), exact, rtol=1e-9)


@given(st.floats(-3.0, 3.0), st.floats(0.2, 5.0), st.floats(-9.0, -1.0), st.floats(-1.0, 1.0),
       st.floats(-3.0, 0.5), st.integers(1, 3))
def test_tv_near_equal_variances_hypothesis_1d_and_product_embeddings(m1, v1, log10_rel, sign, log10_shift, d):
    """Across nearly equal variances (relative difference 1e-9 … 1e-1) and small to moderate mean shifts: the exact
    TV, embedded in ``d`` dimensions as a product with a shared ``N(0, I)`` factor (which leaves it unchanged), equals
    the 60-digit 1-D route (relative 1e-8, absolute 1e-12)."""
    from closed_form.divergences import total_variation_gaussians

    v2 = v1 * (1 + np.copysign(10.0**log10_rel, sign))
    m2 = m1 + 10.0**log10_shift
    exact = _tv_1d_mpmath(m1, v1, m2, v2)
    pad = np.zeros(d - 1)
    p = Gaussian(np.concatenate([[m1], pad]), np.diag(np.concatenate([[v1], np.ones(d - 1)])))
    q = Gaussian(np.concatenate([[m2], pad]), np.diag(np.concatenate([[v2], np.ones(d - 1)])))
    np.testing.assert_allclose(total_variation_gaussians(p, q), exact, rtol=1e-8, atol=1e-12)


@settings(max_examples=8, deadline=None)  # each example is a 2-D cubature of |p − q|
@given(st.integers(0, 2**32 - 1), st.floats(-8.0, -2.0), st.floats(-2.5, 0.0))
def test_tv_near_equal_covariances_2d_against_cubature(seed, log10_rel, log10_shift):
    """A rotated 2-D pair with covariances within a relative 1e-8 … 1e-2 of each other and a mean shift 0.003 … 1:
    the exact TV equals the adaptive cubature of ``½∫|p − q|`` (absolute 1e-7, the cubature's accuracy at its kink)."""
    from closed_form.divergences import total_variation_gaussians
    from closed_form.quadrature import total_variation

    rng = np.random.default_rng(seed)
    cov = spd_matrix(rng, 2, rng.uniform(0, 1), rng.uniform(0.5, 2))
    bump = rng.standard_normal((2, 2))
    cov_q = cov + 10.0**log10_rel * (bump @ bump.T + 0.1 * np.eye(2))
    mean = rng.normal(size=2)
    p = Gaussian(mean, cov)
    q = Gaussian(mean + 10.0**log10_shift * rng.normal(size=2), cov_q)
    np.testing.assert_allclose(total_variation_gaussians(p, q), total_variation(p, q, rtol=1e-9), atol=1e-7)
