"""The authors' Monte Carlo rESS estimator and the refit amplification's ingredients, against exact values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from closed_form import Gaussian, exact_log_ress_inverse, family_config, log1p_chi2
from verify.experiments.ress_families import (
    delta_method_sd,
    fourth_moment_finite,
    log_weight_moment,
    neg_log_ress,
    refit_amplification,
    ress_estimates,
    tv_on_samples,
)

# A few lengths only, so that the jitted estimator compiles a handful of times.
finite_logs = st.sampled_from([1, 2, 7, 64]).flatmap(
    lambda n: st.lists(st.floats(-300.0, 300.0), min_size=n, max_size=n))
_jitted = jax.jit(neg_log_ress)


@settings(max_examples=40)
@given(finite_logs)
def test_estimator_lies_in_zero_log_n(values):
    v = float(_jitted(np.asarray(values, dtype=np.float64)))
    n = len(values)
    assert -1e-12 <= v <= math.log(n) + 1e-12


def test_estimator_extremes():
    assert float(neg_log_ress(np.zeros(50))) == pytest.approx(0.0, abs=1e-14)
    one_hot = np.full(50, -1e4)
    one_hot[7] = 0.0
    assert float(neg_log_ress(one_hot)) == pytest.approx(math.log(50), abs=1e-12)


def test_second_weight_moment_is_log1p_chi2():
    # Two closed-form routes (power product vs the χ² formula) to log E_P w² = log(1 + χ²(Q‖P)).
    for name, index in (("orthogonal_shifts", 5), ("far_from_base", 3), ("opposed_anisotropic", 10)):
        c = family_config(name, index)
        q = c.composition.target
        for p in c.sources:
            assert log_weight_moment(q, p, 2.0) == pytest.approx(float(log1p_chi2(q, p)), rel=1e-10, abs=1e-12)


def test_estimator_converges_at_root_n_where_fourth_moment_is_finite(key):
    # orthogonal_shifts, m = 0.868, source P_0: E w⁴ < ∞, exact log(1 + χ²) = 0.683.
    c = family_config("orthogonal_shifts", 2)
    assert fourth_moment_finite(c.composition, 2)
    exact = exact_log_ress_inverse(c.composition)[2]
    ns = np.array([500, 2000, 8000, 32000])
    draws = 100
    log_rmse, log_rmse_se = [], []
    for j, n in enumerate(ns):
        est = ress_estimates(jax.random.fold_in(key, j), c.sources, (1.0, 1.0, -1.0), int(n), draws)[:, 2]
        assert np.all(est <= math.log(n) + 1e-12)
        sq = (est - exact) ** 2
        mse = sq.mean()
        log_rmse.append(0.5 * math.log(mse))
        log_rmse_se.append(0.5 * sq.std(ddof=1) / math.sqrt(draws) / mse)  # delta method on log √MSE
        # The spread matches the exact delta-method prediction: k = 4 standard errors of a sample sd.
        sd_pred = delta_method_sd(c.composition.target, c.sources[2], int(n))
        assert abs(est.std(ddof=1) / sd_pred - 1.0) < 4.0 * math.sqrt(1.0 / (2 * draws)) + 2.0 * sd_pred
    x = np.log(ns)
    w = 1.0 / np.asarray(log_rmse_se) ** 2
    xm = np.sum(w * x) / np.sum(w)
    slope = np.sum(w * (x - xm) * (np.asarray(log_rmse) - np.sum(w * np.asarray(log_rmse)) / np.sum(w))) / np.sum(
        w * (x - xm) ** 2)
    slope_se = 1.0 / math.sqrt(np.sum(w * (x - xm) ** 2))
    assert abs(slope + 0.5) < 3.0 * slope_se, (slope, slope_se)


def test_estimator_stays_below_log_n_where_the_metric_is_infinite(key):
    c = family_config("anisotropic_r_gt_2", 10)
    assert np.all(np.isinf(exact_log_ress_inverse(c.composition)))
    est = ress_estimates(key, c.sources, (1.0, 1.0, -1.0), 2000, 20)
    assert np.all(np.isfinite(est)) and np.all(est <= math.log(2000) + 1e-12)


def test_tv_on_samples_is_unbiased(key):
    # TV(N(0, I), N((δ, 0), I)) = 2Φ(δ/2) − 1, exactly; E_P max(0, 1 − p̂/p) equals it, so k = 4 standard errors.
    p, p_hat, delta = Gaussian.standard(2), Gaussian(jnp.array([0.7, 0.0]), jnp.eye(2)), 0.7
    x = p.sample(key, 100_000)
    terms = np.clip(1.0 - np.exp(np.asarray(p_hat.logpdf(x) - p.logpdf(x))), 0.0, None)
    tv = float(tv_on_samples(p.logpdf(x), p_hat.logpdf(x)))
    assert tv == pytest.approx(terms.mean(), rel=1e-12)
    assert abs(tv - (2 * norm.cdf(delta / 2) - 1)) < 4 * terms.std(ddof=1) / math.sqrt(x.shape[0])


def test_refit_amplification_counts_and_improper_bound(key):
    c = family_config("shared_precision_p_lt_1", 19)  # near improper: some small-n refits are improper
    out = refit_amplification(key, c.composition, n_fit=30, n_refits=60, n_tv=512, chunk=30)
    assert out["n_proper"] + out["n_dropped"] == 60
    assert out["n_dropped"] > 0
    assert out["A"] > 0 and out["A_improper_as_one"] > 0 and out["A_se"] > 0
    assert out["A_improper_as_one"] != out["A"]  # the dropped refits are accounted for in the second mean
