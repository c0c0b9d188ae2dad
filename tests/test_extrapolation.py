"""Experiments on score-estimation error where the composed target lives: exact ID→OOD family, FKC with
misspecified scores converging to Q̂, and the sweep."""

import jax
import numpy as np
import pytest

from closed_form import VPSchedule, compose, paper_setting
from closed_form.divergences import kl
from closed_form.laws import euler_maruyama_law
from closed_form.perturbations import misspecification_error
from verify.analysis.error_models import misspecification_errors
from verify.analysis.montecarlo import fit_gaussian_mle
from verify.experiments.fkc_sweep import fkc_sweep, sweep_errors
from verify.experiments.ood_family import ood_family
from verify.experiments.score_error_along_t import score_error_along_t
from verify.experiments.sensitivity import sensitivity_experiment
from verify.samplers.perturbed import perturbed_scores
from verify.samplers.smc import fkc_sample

SCHEDULE = VPSchedule()


@pytest.fixture(scope="module")
def family():
    from closed_form.settings import id_ood_family
    import pandas as pd

    return pd.concat([ood_family(id_ood_family(v), eps=0.005) for v in np.geomspace(20.0, 1.1, 4)])


def test_family_is_ordered_and_its_naive_law_with_errors_is_the_naive_law_of_the_fits(family):
    """Guarantees only (how the errors compare along the family is a finding, reported by the amplification
    experiment): the OOD measure rises along the family; FKC's limit with exact scores is π_{t_min}; and the
    "total" law (naive field + each source's misspecification error) is the naive law of the misspecified
    sources, computed the other way round (their geometric field)."""
    from theory.amplification import worst_case_misspecification
    from closed_form.settings import id_ood_family
    from verify.analysis.error_models import naive_with_errors_law

    f = family.sort_values("outside_hdr_max")
    assert np.all(np.diff(f["outside_hdr_max"]) > 0)
    assert f["kl_fkc_exact"].max() < 1e-9
    for _, row in f.iterrows():
        comp = id_ood_family(row["family_base_variance"]).composition
        fitted, _ = worst_case_misspecification(comp, SCHEDULE, row["eps"])
        law = naive_with_errors_law(comp, fitted, SCHEDULE, 1e-4)
        np.testing.assert_allclose(float(kl(comp.noised_target(SCHEDULE, 1e-4), law)), row["kl_total"], rtol=1e-8)


def test_fc_point_of_the_family_has_no_inference_error():
    from closed_form.settings import id_ood_family

    f = ood_family(id_ood_family(10.0), eps=0.005)
    assert f["kl_inference"].iloc[0] < 1e-10 and f["kl_estimation"].iloc[0] > 0


def test_fkc_with_misspecified_scores_converges_to_the_composition_of_the_fits(key):
    s = paper_setting("NFC_ID")
    comp = s.composition
    fits = [fit_gaussian_mle(jax.random.fold_in(key, i), src, 50) for i, src in enumerate(s.sources)]
    errors = [misspecification_error(src, fit, SCHEDULE) for src, fit in zip(s.sources, fits)]
    q_hat = compose(fits, s.weights).target
    q = comp.target
    # Power at n = 10 000 swarms: the check below can see a deviation from Q̂ of 5 SE + EM bias = (0.084, 0.043,
    # 0.046) in the covariance entries (11, 12, 22), and the effect it must catch, sampling Q instead of Q̂, is
    # |Σ_Q̂ − Σ_Q| = (0.19, 0.12, 0.33): 2.3-7 times larger. The converse check sees Q's covariance 0.33 away in entry
    # 22 against a threshold of 0.070 with SE 0.014. (At 20 000 swarms: thresholds 0.060, 0.030, 0.033, twice the CPU.)
    n = 10_000
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


def test_score_error_along_t_reports_training_at_eps_and_the_dsm_size_of_misspecification():
    from closed_form.score_matching import affine_dsm_excess

    times = [0.01, 0.1, 0.5]
    f = score_error_along_t("NFC_OOD", eps=0.1, times=times, dsm_eps=0.005)
    calibrated = f[f["model"] != "misspecification"]
    np.testing.assert_allclose(calibrated["train"], 0.1, rtol=1e-12)
    # the misspecification rows are the per-t norms of errors whose DSM excess averages to 0.005²
    comp = paper_setting("NFC_OOD").composition
    errors = misspecification_errors(comp, SCHEDULE, 0.005)
    dsm = np.mean([affine_dsm_excess(e.field, lambda t, s=s: s.noised(SCHEDULE, t), SCHEDULE)
                   for e, s in zip(errors, comp.sources)])
    np.testing.assert_allclose(np.sqrt(dsm), 0.005, rtol=1e-10)
    mis = f[f["model"] == "misspecification"]
    for (src, t), part in mis.groupby(["source", "t"]):
        err = errors[paper_setting("NFC_OOD").labels.index(src)]
        np.testing.assert_allclose(part["train"].iloc[0], float(err.training_norm(t)), rtol=1e-12)


def test_sensitivity_experiment_rows_are_consistent(key):
    # Whether the first-order bound holds is a finding (F7's check is not asserted), so the test does not require it;
    # it requires that each row says truthfully whether it holds, and the one inequality that is guaranteed:
    # Σ_i |w_i| √(1 + χ²_i) u_i ≤ max_i √(1 + χ²_i) · Σ_i |w_i| u_i, with Σ_i |w_i| u_i = TV(Q, Q̂) / amplification_l2.
    f = sensitivity_experiment(key, n_configs=3, n=20_000)
    assert len(f) == 3
    assert (f["holds"] == (f["tv_target"] <= f["bound"])).all()
    weighted_u = f["tv_target"] / f["amplification_l2"]
    assert (f["bound"] <= f["ress_factor"] * weighted_u * (1 + 1e-12)).all()


def test_fkc_sweep_small(key):
    f = fkc_sweep("NFC_OOD", 0.0, ks=(1, 16), n_runs=1, n_swarms=400, n_steps=100, n_proj=200, seed=0)
    assert set(f["K"]) == {0, 1, 16, np.inf}
    assert (f["K"] == 0).sum() == 1  # the metric's floor: one row per run
    exact = f[f["exact"]]
    assert exact.loc[exact["K"] == np.inf, "kl"].iloc[0] < exact.loc[exact["K"] == 1, "kl"].iloc[0]


def test_fkc_sweep_floor_has_one_independent_row_per_run():
    f = fkc_sweep("FC_ID", 0.0, ks=(1,), n_runs=3, n_swarms=100, n_steps=10, n_proj=50, seed=0)
    floor = f[f["K"] == 0]
    assert list(floor["run"]) == [0, 1, 2] and not floor["exact"].any()
    assert floor["sw2"].nunique() == 3 and floor["mmd2"].nunique() == 3  # fresh exact samples, not one repeated


def test_sweep_errors_are_misspecifications_and_mixture_scores_are_the_fitted_ones(key):
    """The sweep's default error model for mixture sources (the Gaussian one, misspecification_errors, is checked
    at its DSM size above): a calibrated mixture misspecification, whose perturbed score the samplers take as the
    fitted mixture's exact score — equal to base score + δ."""
    from closed_form.perturbations import MixtureMisspecificationError

    mix = paper_setting("GMM_OOD").composition
    errors = sweep_errors(mix, SCHEDULE, 0.005, key)
    assert all(isinstance(e, MixtureMisspecificationError) for e in errors)
    scores = perturbed_scores(mix, SCHEDULE, errors)
    x = np.random.default_rng(0).normal(size=(5, 2)) * 4
    for src, err, score in zip(mix.sources, errors, scores):
        np.testing.assert_allclose(np.asarray(score(x, 0.3)),
                                   np.asarray(src.noised(SCHEDULE, 0.3).score(x) + err.delta(x, 0.3)), atol=1e-12)


@pytest.fixture(scope="module")
def three_d():
    """A composition that is none of the paper's: 3-D, non-commuting with the base, sources labelled A, B, base."""
    from closed_form import Gaussian
    from closed_form.settings import Setting

    a = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
    b = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
    return Setting("three_d", (a, b, Gaussian(np.zeros(3), np.eye(3))), (1.0, 1.0, -1.0), ("A", "B", "base"))


def test_ood_family_row_on_a_three_dimensional_composition(three_d):
    """Any Gaussian setting gives a row: not a family member (NaN parameter), FKC's exact limit is π_{t_min}, and
    the worst-case KL(Q‖Q̂) at ε lies in the eigenspace's range."""
    f = ood_family(three_d, eps=0.005)
    row = f.iloc[0]
    assert row["setting"] == "three_d" and np.isnan(row["family_base_variance"])
    assert row["kl_fkc_exact"] < 1e-9
    assert row["kl_hat_min"] <= row["kl_hat_max"]


def test_score_error_along_t_names_sources_by_label_on_any_setting(three_d):
    f = score_error_along_t(three_d, eps=0.1, times=[0.1, 0.5])
    assert set(f["source"]) == {"A", "B", "base"} and set(f["id_ood"]) == {"unlabelled"}
    np.testing.assert_allclose(f.loc[f["model"] != "misspecification", "train"], 0.1, rtol=1e-12)


def test_gaussian_only_experiments_refuse_a_mixture_setting():
    from closed_form.errors import NotGaussianSettingError
    from verify.experiments.amplification import amplification_row
    from verify.experiments.naive_error_sweep import naive_error_sweep
    from verify.experiments.transfer_bound import transfer_rows
    from verify.experiments.two_point import two_point_table

    for call in (lambda: ood_family("GMM_OOD"), lambda: score_error_along_t("GMM_OOD"),
                 lambda: amplification_row("GMM_ID"), lambda: naive_error_sweep("GMM_ID", eps=(0.005,)),
                 lambda: transfer_rows("GMM_ID", 0.1, [0.5]), lambda: two_point_table("GMM_OOD")):
        with pytest.raises(NotGaussianSettingError, match="Gaussian"):
            call()


def test_batched_naive_laws_match_the_one_at_a_time_laws(three_d):
    """The stacked moment ODEs of naive_error_sweep against closed_form's own per-field integration
    (naive_with_errors_law), on a composition whose sources do not commute with each other's perturbations."""
    from theory.amplification import amplification, calibrate, perturbed_sources_checked
    from verify.analysis.error_models import naive_with_errors_law
    from verify.experiments.naive_error_sweep import naive_laws_many

    comp = three_d.composition
    amp = amplification(comp, SCHEDULE)
    deltas = np.stack([calibrate(comp, SCHEDULE, 0.01, sign * amp.directions[:, -k]) for k in (1, 3) for sign in (1, -1)])
    means, covs = naive_laws_many(comp, SCHEDULE, deltas, 1e-4)
    for d, m, c in zip(deltas, means, covs):
        law = naive_with_errors_law(comp, perturbed_sources_checked(comp.sources, d), SCHEDULE, 1e-4)
        np.testing.assert_allclose(m, np.asarray(law.mean), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(c, np.asarray(law.cov), rtol=1e-8, atol=1e-10)


def test_naive_error_sweep_gives_the_range_over_the_eigenspace(three_d):
    from verify.experiments.naive_error_sweep import naive_error_sweep

    f = naive_error_sweep(three_d, eps=(0.005,))
    row = f.iloc[0]
    assert row["setting"] == "three_d" and row["valid"] and row["n_valid"] > 0
    for key in ("kl_fkc_errors", "kl_naive_errors", "fkc_minus_naive"):
        assert row[f"{key}_min"] <= row[f"{key}_max"]
    assert row["fkc_worse"] in ("every direction", "some directions", "no direction")
