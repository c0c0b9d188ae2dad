"""Issue 5's experiments: exact ID→OOD family, FKC with misspecified scores converging to Q̂, and the sweep."""

import jax
import numpy as np
import pytest

from closed_form import Gaussian, VPSchedule, compose, paper_setting
from closed_form.divergences import kl
from closed_form.laws import euler_maruyama_law
from closed_form.perturbations import fit_gaussian_mle, misspecification_error
from verify.extrapolation import (
    crossovers,
    fkc_sweep,
    ood_family,
    score_error_along_t,
    sensitivity_experiment,
)
from verify.perturbed import perturbed_scores
from verify.smc import fkc_sample

SCHEDULE = VPSchedule()


@pytest.fixture(scope="module")
def family():
    return ood_family(np.geomspace(20.0, 1.1, 10), eps=0.1)


def test_estimation_error_grows_with_ood_measure_while_fkc_inference_error_stays_negligible(family):
    f = family.sort_values("outside_hdr_max")
    # The OOD measure rises monotonically along the family (base variance 20 → 1.1).
    assert np.all(np.diff(f["outside_hdr_max"]) > 0)
    # At the same training-side ε, the estimation error (exact Q_t score + δ) grows with it.
    assert np.all(np.diff(f["kl_estimation"]) > 0)
    # FKC's limit with exact scores has no inference-time error left (π_{t_min} vs Q_{t_min}, t_min = 1e-4) ...
    assert f["kl_fkc_exact"].max() < 1e-9
    # ... but with the perturbed scores its error grows along the family by more than an order of magnitude.
    assert np.all(np.diff(f["kl_fkc_perturbed"]) > 0)
    assert f["kl_fkc_perturbed"].iloc[-1] > 10 * f["kl_fkc_perturbed"].iloc[0]
    # Inference-time error (naive, exact scores) is not monotone: it vanishes at the FC point v = 10. The estimation
    # error falls below it in the middle of the family and overtakes it again at the OOD end.
    points = crossovers(f)
    assert len(points) == 2 and f["kl_estimation"].iloc[-1] > f["kl_inference"].iloc[-1]


def test_fc_point_of_the_family_has_no_inference_error():
    f = ood_family([10.0], eps=0.1)
    assert f["kl_inference"].iloc[0] < 1e-10 and f["kl_estimation"].iloc[0] > 1e-6


def test_fkc_with_misspecified_scores_converges_to_the_composition_of_the_fits(key):
    s = paper_setting("NFC_ID")
    comp = s.composition
    fits = [fit_gaussian_mle(jax.random.fold_in(key, i), src, 50) for i, src in enumerate(s.sources)]
    errors = [misspecification_error(src, fit, SCHEDULE) for src, fit in zip(s.sources, fits)]
    q_hat = compose(fits, s.weights).target
    q = comp.target
    n = 20_000
    out = fkc_sample(jax.random.fold_in(key, 99), perturbed_scores(comp, SCHEDULE, errors), s.weights, SCHEDULE, n, 64)
    x = np.asarray(out.samples)
    cov = np.cov(x.T)
    # SE of the sample covariance entries (Gaussian fourth moments) plus the Euler–Maruyama bias, computed exactly
    # as the gap between Q̂ and the EM law of Q̂'s own exact diffused score started at Q̂_T.
    hat_comp = compose(fits, s.weights)
    em = euler_maruyama_law(hat_comp.target_field(SCHEDULE), SCHEDULE, hat_comp.noised_target(SCHEDULE, SCHEDULE.T))
    bias = np.abs(np.asarray(em.cov) - np.asarray(q_hat.cov))
    c = np.asarray(q_hat.cov)
    se = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
    assert np.all(np.abs(cov - c) < 5 * se + bias)
    # ... and is not consistent with Q by the same criterion (Q's own Euler–Maruyama bias and SEs).
    em_q = euler_maruyama_law(comp.target_field(SCHEDULE), SCHEDULE, comp.noised_target(SCHEDULE, SCHEDULE.T))
    cq = np.asarray(q.cov)
    se_q = np.sqrt((np.outer(np.diag(cq), np.diag(cq)) + cq**2) / n)
    assert np.any(np.abs(cov - cq) > 5 * se_q + np.abs(np.asarray(em_q.cov) - cq))


def test_score_error_along_t_reports_training_at_eps_and_sampling_larger_ood():
    f = score_error_along_t("NFC_OOD", eps=0.1, times=[0.01, 0.1, 0.5])
    np.testing.assert_allclose(f["train"], 0.1, rtol=1e-12)
    assert (f["under_target"] > f["train"]).any()


def test_sensitivity_experiment_rows_hold_the_bound(key):
    f = sensitivity_experiment(key, n_configs=3, n=20_000)
    assert len(f) == 3 and f["holds"].all()
    assert (f["amplification_l2"] <= f["ress_factor"]).all()


def test_fkc_sweep_small(key):
    f = fkc_sweep("NFC_OOD", 0.0, ks=(1, 16), n_runs=1, n_swarms=400, n_steps=100, n_proj=200)
    assert set(f["K"]) == {0, 1, 16, np.inf}
    exact = f[f["exact"]]
    assert exact.loc[exact["K"] == np.inf, "kl"].iloc[0] < exact.loc[exact["K"] == 1, "kl"].iloc[0]
