"""The paired DDPM variational-bound ratio estimator with exact Gaussian ε-predictors, against exact log ratios."""

import math

import jax
import numpy as np
import pytest
from scipy.integrate import quad

from closed_form import Gaussian, exact_log_ress_inverse, family_config, paper_setting
from closed_form.vlb import (
    VLB_WINDOWS,
    DiscreteDDPMSchedule,
    composition_log_weights_exact,
    discretization_bound,
    exact_log_ratio,
    mmse_gap,
    population_log_ress_inverse,
    vlb_log_ratio,
)

SCHEDULE = DiscreteDDPMSchedule.authors()
PAIRS = [family_config("orthogonal_shifts", 5).sources[::2], family_config("opposed_anisotropic", 3).sources[::2],
         (paper_setting("NFC_ID").sources[0], paper_setting("NFC_ID").sources[2])]
POINTS = [np.array([0.4, -0.3]), np.array([1.5, 2.0]), np.array([-2.0, 0.7])]


def test_windows_map_to_the_authors_steps():
    # The authors state: trimmed [−9.2, 2.15] → steps 100..900, unconstrained [−20, 20] → steps 1..997.
    assert SCHEDULE.window(*VLB_WINDOWS["trimmed"]) == (100, 900)
    assert SCHEDULE.window(*VLB_WINDOWS["full"]) == (1, 997)
    assert SCHEDULE.abar[-1] == pytest.approx(0.0, abs=1e-15)  # zero terminal SNR


def test_vlb_weight_is_half_expm1_of_log_snr_gap():
    lam, w = SCHEDULE.log_snr, SCHEDULE.vlb_weight
    j = np.arange(1, 999)
    np.testing.assert_allclose(2.0 * w[j], np.expm1(lam[j - 1] - lam[j]), rtol=1e-10)


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_continuous_identity_gives_the_exact_log_ratio(pair):
    # ½∫ (mmse_den − mmse_num) dλ over the whole line = log P^num − log P^den, pointwise (tails beyond ±60 are
    # below 1e-20 here).
    num, den = PAIRS[pair]
    exact = exact_log_ratio(num, den)
    for x in POINTS:
        value = quad(lambda lam: 0.5 * mmse_gap(num, den, lam, x)[0], -60, 60, limit=400, epsabs=1e-13,
                     epsrel=1e-12)[0]
        assert value == pytest.approx(float(exact(x)), rel=1e-9, abs=1e-11)


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_full_window_estimator_within_its_discretization_error(pair):
    num, den = PAIRS[pair]
    estimate, exact = vlb_log_ratio(num, den, SCHEDULE, "full"), exact_log_ratio(num, den)
    lam = SCHEDULE.log_snr
    j_lo, j_hi = SCHEDULE.window(*VLB_WINDOWS["full"])
    lo_edge, hi_edge = lam[j_hi], lam[j_lo - 1]
    for x in POINTS:
        g = lambda t: 0.5 * mmse_gap(num, den, t, x)[0]  # noqa: E731
        inside = quad(g, lo_edge, hi_edge, limit=600, epsabs=1e-13, epsrel=1e-12)[0]
        tails = (quad(g, -60, lo_edge, limit=200, epsabs=1e-14)[0] + quad(g, hi_edge, 60, limit=200, epsabs=1e-14)[0])
        bound = discretization_bound(num, den, x, SCHEDULE, "full")
        err = float(estimate(x) - exact(x))
        assert abs(float(estimate(x)) - inside) <= bound + 1e-10
        assert abs(err + tails) <= bound + 1e-10  # error = discretization − tails
        assert abs(err) > 0  # the estimator is not exact at 1000 steps: the comparison has content


def test_population_ress_with_exact_log_weights_is_the_exact_metric():
    # Independent routes: Gaussian integrals of exp(quadratic) vs the χ² closed form (∞ where 2Σ_i − Σ_Q ⋡ 0).
    for name, index in (("orthogonal_shifts", 4), ("anisotropic", 19), ("far_from_base", 2), ("shared_precision_p_gt_1", 6)):
        c = family_config(name, index)
        exact = exact_log_ress_inverse(c.composition)
        got = [population_log_ress_inverse(f, p) for f, p in zip(composition_log_weights_exact(c.sources), c.sources)]
        for g, e in zip(got, exact):
            if np.isinf(e):
                assert np.isinf(g)
            else:
                assert g == pytest.approx(e, rel=1e-9, abs=1e-11)


def test_quadratic_moments_against_monte_carlo(key):
    num, den = PAIRS[1]
    err = vlb_log_ratio(num, den, SCHEDULE, "trimmed") - exact_log_ratio(num, den)
    law = Gaussian(np.array([0.5, -1.0]), np.array([[2.0, 0.3], [0.3, 0.7]]))
    values = err(np.asarray(law.sample(key, 200_000)))
    mean, sd = err.mean_sd_under(law)
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - mean) < 4 * se  # k = 4 standard errors
    centred = values - values.mean()
    se_var = math.sqrt((np.mean(centred**4) - np.mean(centred**2) ** 2) / values.size)  # SE of the sample variance
    assert abs(values.var(ddof=1) - sd**2) < 4 * se_var
