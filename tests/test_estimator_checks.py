"""The authors' estimators and conjecture (claims R1–R3, F7): the counterexample to A ≤ rESS^(−1/2), the estimator
experiments on a composition that is not the paper's, and their checks on hand-made frames (holds / fails /
inconclusive / not applicable)."""

import math

import jax
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from closed_form import Gaussian, Setting, compose
from closed_form.errors import InvalidWeightsError, NotGaussianSettingError
from closed_form.quadrature import total_variation
from theory.sensitivity import sensitivity_bound
from verify.experiments import REGISTRY
from verify.experiments.fkc_clip_cost import _clip_costs_nothing, clip_firing_fraction, fkc_clip_cost
from verify.experiments.ress_families import (
    _ress_blind_at_infinity,
    _ress_bound,
    _ress_dropping_improper,
    _ress_ranking,
)
from verify.experiments.sensitivity import _sensitivity_conjecture, _sensitivity_first_order_bound
from verify.experiments.vlb_estimator import _vlb_full_window, composition_log_weights, vlb_estimator_error
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE


# ------------------------------------------------------------------------------------------- the counterexample
def _equal_cov_tv(shift_mahalanobis: float) -> float:
    """TV between two Gaussians of equal covariance: 2Φ(‖Σ^(−1/2)Δ‖/2) − 1 (exact, one dimension suffices)."""
    return 2.0 * norm.cdf(0.5 * shift_mahalanobis) - 1.0


def _counterexample(delta: float):
    a1 = Gaussian(np.zeros(2), np.diag([1.69, 1.0]))
    base = Gaussian(np.zeros(2), np.eye(2))
    a2_hat = Gaussian(np.array([delta, 0.0]), np.eye(2))
    return [a1, base, base], [a1, a2_hat, base]


@pytest.mark.parametrize("delta", [0.02, 2e-3, 2e-4])
def test_counterexample_to_the_conjecture_by_exact_formulas(delta):
    # Q = a1 (a2 = base). Shifting a2's mean by δ e₁ multiplies Q by exp(δ x₁ + c): Q̂ = N(Σ_a1 δ e₁, Σ_a1), so
    # TV(Q, Q̂) = 2Φ(1.3 δ/2) − 1 (Mahalanobis shift 1.69 δ / 1.3) and TV(P_2, P̂_2) = 2Φ(δ/2) − 1.
    sources, perturbed = _counterexample(delta)
    q_hat = compose(perturbed, [1.0, 1.0, -1.0]).target
    np.testing.assert_allclose(np.asarray(q_hat.mean), [1.69 * delta, 0.0], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.asarray(q_hat.cov), np.diag([1.69, 1.0]), rtol=1e-10)
    amplification = _equal_cov_tv(1.3 * delta) / _equal_cov_tv(delta)
    # 1 + χ²(N(0, s²)‖N(0, 1)) = 1/(s √(2 − s²)) per coordinate; the factor is the largest over the three sources.
    factor = math.sqrt(1.0 / (1.3 * math.sqrt(2.0 - 1.69)))
    assert factor == pytest.approx(1.1754, abs=1e-4)
    assert amplification == pytest.approx(1.3, abs=1e-3)  # stable as δ → 0 (its first-order limit is σ_1 = 1.3)
    assert amplification > factor * 1.1


def test_counterexample_code_route_matches_quadrature():
    # The code's route (theory.sensitivity with its exact Gaussian TV) against adaptive cubature, at δ = 0.02.
    sources, perturbed = _counterexample(0.02)
    res = sensitivity_bound(sources, perturbed, [1.0, 1.0, -1.0])
    q, q_hat = (compose(s, [1.0, 1.0, -1.0]).target for s in (sources, perturbed))
    tv_q = total_variation(q, q_hat, rtol=1e-9)
    tv_2 = total_variation(sources[1], perturbed[1], rtol=1e-9)
    assert res.tv_target == pytest.approx(tv_q, rel=1e-5)
    assert res.amplification == pytest.approx(tv_q / tv_2, rel=1e-5)
    assert res.amplification == pytest.approx(1.300, abs=1e-3)
    assert res.factor == pytest.approx(1.1754, abs=1e-4)
    assert res.amplification > res.factor  # the conjecture fails ...
    assert res.holds and res.amplification_l2 <= res.factor  # ... while the first-order L² bound holds


# --------------------------------------------------------------------------------- a composition not the paper's
def _three_d_setting() -> Setting:
    a = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
    b = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
    base = Gaussian(np.zeros(3), np.eye(3))
    return Setting.from_composition(compose([a, b, base], [1.0, 1.0, -1.0]), "three_d", ("A", "B", "base"))


def test_vlb_estimator_runs_on_a_three_dimensional_setting():
    s = _three_d_setting()
    f = vlb_estimator_error(setting=s)
    assert len(f) == 1 and f["setting"].iloc[0] == "three_d" and f["source"].iloc[0] in s.labels
    # Exact log weights from the pairing equal the direct Σ_j w_j log P_j − log P_i up to a constant.
    from closed_form.vlb import exact_log_ratio

    logw = composition_log_weights(s.sources, s.weights, exact_log_ratio)
    x = np.asarray(s.sources[0].sample(jax.random.key(3), 5))
    for i, lw in enumerate(logw):
        direct = sum(w * np.asarray(p.logpdf(x)) for w, p in zip(s.weights, s.sources)) - np.asarray(
            s.sources[i].logpdf(x))
        diff = lw(x) - direct
        np.testing.assert_allclose(diff, diff[0], atol=1e-10)
    assert np.isfinite(f["exact"].iloc[0]) and np.isfinite(f["metric_full"].iloc[0])


def test_vlb_estimator_refuses_weights_not_summing_to_one_and_mixtures():
    s = _three_d_setting()
    with pytest.raises(InvalidWeightsError, match="summing to 1"):
        composition_log_weights(s.sources, [1.0, 1.0, -0.5], lambda p, q: None)
    with pytest.raises(NotGaussianSettingError):
        vlb_estimator_error(setting="GMM_OOD")
    with pytest.raises(ValueError, match="exactly one"):
        vlb_estimator_error()


def test_vlb_cells_regrid_only_the_setting_cells():
    s = _three_d_setting()
    cells = REGISTRY["vlb_estimator"].cells("default", settings=[s])
    assert cells == ({"setting": s.to_spec()},)


def test_fkc_clip_cost_runs_on_a_three_dimensional_setting():
    s = _three_d_setting()
    f = fkc_clip_cost(s, n_particles=2, n_runs=2, n_swarms=16, seed=5, n_steps=10, n_proj=8)
    assert set(f["kind"]) == {"firing", "paired"} and (f["setting"] == "three_d").all()
    paired = f[f["kind"] == "paired"]
    assert len(paired) == 2 and np.all(np.isfinite(paired[["mmd2_diff", "sw2_diff"]].to_numpy()))
    # the seed reaches every random number: another seed, another result; the same seed, the same one
    again = fkc_clip_cost(s, n_particles=2, n_runs=2, n_swarms=16, seed=5, n_steps=10, n_proj=8)
    pd.testing.assert_frame_equal(f, again)
    other = fkc_clip_cost(s, n_particles=2, n_runs=2, n_swarms=16, seed=6, n_steps=10, n_proj=8)
    assert not np.allclose(f["mmd2_clip"].dropna(), other["mmd2_clip"].dropna())


def test_clip_firing_fraction_needs_a_key():
    import inspect

    assert inspect.signature(clip_firing_fraction).parameters["key"].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        fkc_clip_cost("FC_ID", n_runs=0)  # no seed: refused rather than fixed inside


# ------------------------------------------------------------------------------------ checks on hand-made frames
def _ress_frame(a, a_se, bound, *, n_proper=8, est=None, est_se=None, n_draws=12, dropped=0, shift=0.0, exact=None,
                family="fam"):
    n = len(a)
    est = np.log(np.asarray(bound, float) ** 2) if est is None else np.asarray(est, float)
    est_se = np.full(n, 0.01) if est_se is None else np.asarray(est_se, float)
    bound_est = np.exp(0.5 * est)
    return pd.DataFrame({
        "family": family, "knob": [f"k = {i}" for i in range(n)], "A": a, "A_se": a_se, "n_proper": n_proper,
        "n_refits": n_proper + dropped, "n_draws": n_draws, "bound_exact": bound, "estimate": est,
        "estimate_se": est_se, "bound_estimate": bound_est, "bound_estimate_se": 0.5 * bound_est * est_se,
        "n_dropped": dropped, "improper_shift": shift, "exact": est if exact is None else exact,
        "log_n": math.log(20_000), "A_improper_as_one": np.asarray(a, float) + shift,
        "A_improper_se": np.asarray(a_se, float),
    })


@pytest.mark.parametrize("column", ["bound_exact", "bound_estimate"])
def test_ress_bound_check_three_outcomes(column):
    check = _ress_bound(column, "x")
    # A well below the bound everywhere: holds
    assert check(_ress_frame([1.0, 2.0], [0.1, 0.1], [3.0, 4.0])).status == HOLDS
    # one row far above: fails
    assert check(_ress_frame([1.0, 9.0], [0.1, 0.1], [3.0, 4.0])).status == FAILS
    # the r = 200 row: A = 31.95 ± 7.72 over 8 refits against a bound of 15.3 — above it by 2.1 SE,
    # within t_(7) at α/m: not resolved
    out = check(_ress_frame([1.0, 31.95], [0.1, 7.72], [3.0, 15.27]))
    assert out.status == INCONCLUSIVE and "refits" in out.note
    # nothing with a finite bound and ≥ 2 proper refits: not applicable
    assert check(_ress_frame([1.0], [0.1], [np.inf], est=[np.inf])).status == NOT_APPLICABLE
    assert check(_ress_frame([1.0], [np.nan], [3.0], n_proper=1)).status == NOT_APPLICABLE


def test_dropping_improper_is_not_applicable_without_drops():
    assert _ress_dropping_improper(_ress_frame([1.0], [0.1], [3.0])).status == NOT_APPLICABLE
    moved = _ress_dropping_improper(_ress_frame([1.0], [0.1], [3.0], dropped=2, shift=5.0))
    assert moved.status == FAILS and moved.judged == ("fam k = 0",)
    assert _ress_dropping_improper(_ress_frame([1.0], [0.1], [3.0], dropped=1, shift=0.05)).status == HOLDS
    assert _ress_dropping_improper(_ress_frame([1.0], [0.1], [3.0], dropped=1, shift=1.9)).status == INCONCLUSIVE


def test_rank_check_is_not_applicable_on_three_points_and_resolves_otherwise():
    three = _ress_frame([1.0, 2.0, 3.0], [0.01] * 3, [2.0, 3.0, 4.0])
    assert _ress_ranking(three).status == NOT_APPLICABLE  # a tie over 3 points is not a finding
    # exact metric orders A perfectly, the estimate reverses it: resolved worse for the estimate → holds
    n = 8
    a = np.arange(1.0, n + 1)
    good = _ress_frame(a, [0.01] * n, np.exp(0.5 * a), est=a[::-1])
    good["exact"] = a
    assert _ress_ranking(good).status == HOLDS
    bad = good.copy()
    bad["exact"], bad["estimate"] = a[::-1], a
    assert _ress_ranking(bad).status == FAILS
    tie = good.copy()
    tie["estimate"] = a  # same ranking: a tie, not resolved
    assert _ress_ranking(tie).status == INCONCLUSIVE


def test_blind_at_infinity_three_outcomes():
    f = _ress_frame([1.0] * 4, [0.1] * 4, [2.0] * 4, est=[1.0, 2.0, 8.0, 9.0], est_se=[0.05] * 4,
                    exact=[1.0, 2.0, np.inf, np.inf])
    assert _ress_blind_at_infinity(f).status == HOLDS
    f2 = f.assign(estimate=[1.0, 8.5, 8.0, 9.0])  # a finite row above an infinite one, by 10 SE
    assert _ress_blind_at_infinity(f2).status == FAILS
    f3 = f.assign(estimate=[1.0, 7.98, 8.0, 9.0])
    assert _ress_blind_at_infinity(f3).status == INCONCLUSIVE
    assert _ress_blind_at_infinity(f.assign(exact=[1.0, 2.0, 3.0, 4.0])).status == NOT_APPLICABLE


def _clip_frame(clip, free, setting="S"):
    n = len(clip)
    return pd.DataFrame({"setting": setting, "kind": "paired", "run": range(n), "mmd2_clip": clip, "mmd2_free": free,
                         "mmd2_diff": np.subtract(clip, free), "sw2_clip": clip, "sw2_free": free,
                         "sw2_diff": np.subtract(clip, free), "fire_fraction": np.nan, "fire_fraction_se": np.nan})


def test_clip_check_three_outcomes():
    assert _clip_costs_nothing(_clip_frame([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])).status == HOLDS  # identical outputs
    assert _clip_costs_nothing(_clip_frame([1.5, 2.51, 3.49], [1.0, 2.0, 3.0])).status == FAILS
    # the case: a paired difference of 3.95 SE over 3 runs is not resolved by Student t (2 dof)
    out = _clip_costs_nothing(_clip_frame([1.0 + 0.009856, 2.0 + 0.010865, 3.0 + 0.020835], [1.0, 2.0, 3.0]))
    assert out.status == INCONCLUSIVE and "runs" in out.note
    firing_only = pd.DataFrame({"setting": ["S"], "kind": ["firing"], "run": [-1], "fire_fraction": [0.0],
                                "fire_fraction_se": [0.0]})
    assert _clip_costs_nothing(firing_only).status == NOT_APPLICABLE


def test_sensitivity_checks_on_hand_made_frames():
    f = pd.DataFrame({"config": [0, 1], "tv_target": [0.1, 0.2], "bound": [0.3, 0.4], "holds": [True, True],
                      "amplification": [1.0, 1.3], "amplification_l2": [0.5, 0.5], "ress_factor": [1.2, 1.175]})
    assert _sensitivity_first_order_bound(f).status == HOLDS
    assert _sensitivity_conjecture(f).status == FAILS
    assert _sensitivity_conjecture(f.assign(amplification=[1.0, 1.1])).status == HOLDS
    assert _sensitivity_first_order_bound(f.assign(holds=[True, False])).status == FAILS
    vacuous = f.assign(ress_factor=np.inf, bound=np.inf)
    assert _sensitivity_first_order_bound(vacuous).status == NOT_APPLICABLE
    assert _sensitivity_conjecture(vacuous).status == NOT_APPLICABLE


def test_vlb_check_on_hand_made_frames():
    row = dict(family="setting", config="S", exact=1.0, metric_full=1.05, metric_trimmed=1.5, metric_gap_full=0.05,
               metric_gap_trimmed=0.5, err_sd_full=0.01, err_sd_trimmed=0.5)
    assert _vlb_full_window(pd.DataFrame([row])).status == HOLDS
    assert _vlb_full_window(pd.DataFrame([dict(row, metric_full=1.3, metric_gap_full=0.3)])).status == FAILS
    assert _vlb_full_window(pd.DataFrame([dict(row, metric_full=np.inf, metric_gap_full=np.nan)])).status == FAILS
    assert _vlb_full_window(pd.DataFrame([dict(row, exact=np.inf, metric_gap_full=np.nan)])).status == FAILS
    assert _vlb_full_window(pd.DataFrame(columns=list(row))).status == NOT_APPLICABLE
