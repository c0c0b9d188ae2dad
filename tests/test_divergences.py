"""Gaussian KL, W2 and χ² against independent routes: quadrature (1-D, 2-D), POT's Bures distance, Monte Carlo;
and the identities they must satisfy (non-negativity, zero on the diagonal, symmetry, triangle inequality, the
boundary where χ² becomes infinite)."""

import jax
import numpy as np
import ot
import pytest
from hypothesis import given
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
