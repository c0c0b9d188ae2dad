"""OOD quantifiers: the generalized chi-square tail (Imhof) and the mass of Q outside the sources' HDRs."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from closed_form import GAUSSIAN_SETTING_NAMES, GaussianMixture, paper_setting
from closed_form.generalized_chi2 import generalized_chi2_sf
from closed_form.ood import fraction_outside_hdr
from verify.analysis.montecarlo import fraction_outside_hdr_monte_carlo, hdr_log_density_threshold


@given(st.integers(1, 5), st.floats(0.05, 20.0), st.floats(0.1, 30.0), st.floats(0.0, 3.0))
def test_generalized_chi2_reduces_to_scaled_noncentral_chi2(d, lam, y, offset):
    # Equal weights λ: Y = λ·χ²_d(nc = d·c²).
    got = generalized_chi2_sf(y, [lam] * d, [offset] * d)
    expected = stats.ncx2.sf(y / lam, d, d * offset**2) if offset > 0 else stats.chi2.sf(y / lam, d)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_generalized_chi2_against_monte_carlo():
    rng = np.random.default_rng(0)
    lam, c, y = np.array([0.5, 7.0, 2.0]), np.array([0.5, 1.0, -0.3]), 20.0
    z = rng.standard_normal((1_000_000, 3))
    flags = np.sum(lam * (z + c) ** 2, axis=1) > y
    p = generalized_chi2_sf(y, lam, c)
    assert abs(flags.mean() - p) < 5 * np.sqrt(p * (1 - p) / flags.size)


@pytest.mark.parametrize("name", GAUSSIAN_SETTING_NAMES)
def test_gaussian_hdr_fractions_against_monte_carlo(name, key):
    s = paper_setting(name)
    q = s.composition.target
    n = 400_000
    x = q.sample(key, n)
    thresholds = [hdr_log_density_threshold(p, key) for p in s.sources]
    mc = fraction_outside_hdr_monte_carlo(x, s.sources, thresholds)
    for p, est in zip(s.sources, mc["each"]):
        exact = fraction_outside_hdr(q, p)
        assert abs(est.value - exact) < 5 * est.stderr
    # A source's own HDR leaves exactly 5 % outside.
    for p in s.sources:
        np.testing.assert_allclose(fraction_outside_hdr(p, p), 0.05, rtol=1e-9)


def test_ood_settings_put_more_mass_outside_than_id():
    outside = {n: fraction_outside_hdr(paper_setting(n).composition.target, paper_setting(n).sources[2]) for n in
               ["FC_ID", "FC_OOD"]}
    assert outside["FC_ID"] < 0.05 < outside["FC_OOD"]


def test_mixture_hdr_threshold_has_the_stated_level(key):
    m = GaussianMixture.isotropic([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], 0.7)
    thr = hdr_log_density_threshold(m, key)
    x = m.sample(jax.random.fold_in(key, 1), 200_000)
    est = fraction_outside_hdr_monte_carlo(x, [m], [thr])["each"][0]
    assert abs(est.value - 0.05) < 5 * np.sqrt(0.05 * 0.95 * (1 / 200_000 + 1 / 200_000))


@settings(max_examples=10)  # each example is a 2-D cubature of |p − q|, whose kink makes it slow
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_exact_gaussian_tv_matches_cubature(seed, d):
    from closed_form import Gaussian
    from closed_form.divergences import total_variation_gaussians
    from closed_form.quadrature import total_variation
    from strategies import spd_matrix

    rng = np.random.default_rng(seed)
    d = min(d, 2)  # cubature is the independent route in 1-D and 2-D
    p = Gaussian(rng.normal(size=d), spd_matrix(rng, d, rng.uniform(0, 1), rng.uniform(0.3, 3)))
    q = Gaussian(rng.normal(size=d) * 0.5, spd_matrix(rng, d, rng.uniform(0, 1), rng.uniform(0.3, 3)))
    np.testing.assert_allclose(total_variation_gaussians(p, q), total_variation(p, q, rtol=1e-7), atol=1e-6)


def test_tv_limits():
    from closed_form import Gaussian
    from closed_form.divergences import total_variation_gaussians

    p = Gaussian(np.zeros(2), np.eye(2))
    assert total_variation_gaussians(p, p) == 0.0
    # Equal covariances: TV = 2Φ(Δ/2) − 1 with Δ the Mahalanobis distance (pure normal term in the formula).
    q = Gaussian(np.array([1.0, 1.0]), np.eye(2))
    np.testing.assert_allclose(total_variation_gaussians(p, q), 2 * stats.norm.cdf(np.sqrt(2) / 2) - 1, rtol=1e-10)


def test_signed_generalized_chi2_with_normal_term_against_monte_carlo():
    rng = np.random.default_rng(3)
    n = 2_000_000
    z = rng.standard_normal((n, 3))
    y = -(z[:, 0] + 0.3) ** 2 + 0.5 * (z[:, 1] + 1) ** 2 + 0.5 * z[:, 2]
    p = generalized_chi2_sf(-0.7, [-1.0, 0.5], [0.3, 1.0], 0.5)
    assert abs((y > -0.7).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_ress_along_t_never_increases():
    from closed_form import VPSchedule
    from closed_form.ood import ress_inverse_along_t

    # Data processing: the forward kernel applied to both laws cannot increase χ²(Q_t‖q^i_t).
    r = ress_inverse_along_t(paper_setting("NFC_OOD").composition, VPSchedule(), np.linspace(0.0, 1.0, 21))
    assert np.all(np.isinf(r[0]))  # OOD at t = 0: infinite for every source
    assert np.all(np.isfinite(r[-1]))  # at t = T both laws are ≈ N(0, I)
    assert np.all(r[1:] <= r[:-1] * (1 + 1e-12))  # inf ≤ inf holds; finite values must not grow


def test_numpy_gaussian_logpdf_of_the_cubature_matches_scipy():
    """The cubature's plain-NumPy log-density (no JAX dispatch per call) is log N(x; μ, Σ), against SciPy."""
    from scipy.stats import multivariate_normal
    from strategies import spd_matrix

    from closed_form.quadrature import gaussian_logpdf_numpy

    rng = np.random.default_rng(5)
    for d in (1, 2, 3):
        mean, cov = rng.normal(size=d), spd_matrix(rng, d, 2.0, 1.5)
        x = mean + 3.0 * rng.normal(size=(50, d))
        np.testing.assert_allclose(gaussian_logpdf_numpy(mean, cov)(x), multivariate_normal(mean, cov).logpdf(x),
                                   rtol=1e-12)
