"""OOD quantifiers: the generalized chi-square tail (Imhof) and the mass of Q outside the sources' HDRs."""

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from closed_form import GaussianMixture, paper_setting
from closed_form.ood import (
    fraction_outside_hdr,
    fraction_outside_hdr_monte_carlo,
    generalized_chi2_sf,
    hdr_log_density_threshold,
)


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


@pytest.mark.parametrize("name", ["FC_ID", "NFC_ID", "FC_OOD", "NFC_OOD"])
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
