"""The FKC experiments (fkc_sweep, fkc_convergence, learned_sweep, sampler_draws, target_samples, paper_targets) on
compositions that are not the paper's — a 3-D Gaussian one, a 2-D mixture one, a 1-D one — at tiny sizes; their
checks on hand-made frames, driven to holds / fails / inconclusive / not applicable; and the false-alarm rate of the
t-margin rule against the old 2-SE rule by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t

from closed_form import Gaussian, GaussianMixture, Setting
from closed_form.errors import NoClosedFormError, NotGaussianSettingError, ShapeMismatchError
from verify.analysis.stats import ALPHA, Estimate, mean_of_runs, resolve, welch
from verify.experiments import REGISTRY
from verify.experiments import fkc_convergence as conv
from verify.experiments import fkc_sweep as sweep
from verify.experiments.learned_sweep import learned_sweep
from verify.experiments.paper_targets import exact_target_summary
from verify.experiments.sampler_draws import sampler_draws
from verify.experiments.target_samples import setting_samples
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE
from verify.report.latex import latex_text
from verify.samplers.networks import NetworkConfig


def three_d() -> Setting:
    """A = N((2,0,0), diag(0.5,2,1)), B = N((0,2,0), diag(2,0.5,1)), base N(0, I), weights (1, 1, −1): the target is
    N((8/3, 8/3, 0), diag(2/3, 2/3, 1)) (precision diag(1.5, 1.5, 1), η = (4, 4, 0)); nothing is labelled."""
    a = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
    b = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
    return Setting("three_d", (a, b, Gaussian(np.zeros(3), np.eye(3))), (1, 1, -1), ("A", "B", "base"))


def mixture_2d() -> Setting:
    """Three mixtures of three isotropic components (sd 0.7) at (−2, 0), (2, 0), (0, 2), weights (1, 1, −1),
    labelled in-distribution by its user."""
    means = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    left = GaussianMixture.isotropic(np.array([0.5, 0.5, 0.0]), means, 0.7)
    right = GaussianMixture.isotropic(np.array([0.0, 0.5, 0.5]), means, 0.7)
    every = GaussianMixture.isotropic(np.full(3, 1.0 / 3.0), means, 0.7)
    return Setting("mix2", (left, right, every), (1, 1, -1), ("left", "right", "all"), in_distribution=True)


def one_d() -> Setting:
    """N(0, 1)·N(1, 2)/N(0, 1.5): precision 1 + 1/2 − 2/3 = 5/6."""
    return Setting("one_d", (Gaussian(np.zeros(1), np.eye(1)), Gaussian(np.ones(1), 2 * np.eye(1)),
                             Gaussian(np.zeros(1), 1.5 * np.eye(1))), (1, 1, -1))


TINY = NetworkConfig(width=8, depth=1, iterations=20, lr=1e-2, batch=30)


# ------------------------------------------------------------------------------------------- compute functions
def test_fkc_sweep_runs_on_a_3d_gaussian_and_a_mixture_composition():
    f = sweep.fkc_sweep(three_d(), 0.005, ks=(1, 2), n_runs=2, n_swarms=16, n_steps=4, n_proj=8, seed=1)
    assert set(f["setting"]) == {"three_d"}
    assert (f["conditionals"] == "unknown").all() and (f["regime"] == "unknown").all()
    mc = f[~f["exact"]]
    assert sorted(mc["K"].unique()) == [0, 1, 2] and set(mc["run"]) == {0, 1}
    assert np.isfinite(mc[["sw2", "mmd2"]].to_numpy()).all()
    exact = f[f["exact"]]
    assert sorted(exact["K"]) == [1, np.inf] and (exact["kl"] > 0).all()
    # Each run has its own reference sample: the floor rows differ between runs.
    assert mc.loc[mc["K"] == 0, "mmd2"].nunique() == 2
    g = sweep.fkc_sweep(mixture_2d(), 0.0, ks=(1, 2), n_runs=2, n_swarms=16, n_steps=4, n_proj=8, seed=1)
    assert not g["exact"].any() and (g["conditionals"] == "mixture").all() and (g["regime"] == "ID").all()
    assert sweep.EXPERIMENT.checks[0].evaluate(g).judged in ((), ("mix2",))


def test_fkc_convergence_runs_in_3d_and_refuses_a_mixture():
    f = conv.fkc_convergence(three_d(), eps=0.1, ks=(2, 4), n_swarms=40, n_steps=8, seed=2)
    names = conv.statistic_names(3)
    assert len(names) == 3 + 6 + 2 and names[:3] == ("mean_0", "mean_1", "mean_2")
    assert len(f) == 3 * 2 * len(names)  # error models × K × statistics
    exact = f[(f["scores"] == "exact") & (f["K"] == 2)].set_index("statistic")["exact"]
    # second_trace is the sum of the diagonal second moments.
    assert exact["second_trace"] == pytest.approx(exact["second_00"] + exact["second_11"] + exact["second_22"],
                                                  rel=1e-12)
    with pytest.raises(NotGaussianSettingError, match="mix2"):
        conv.fkc_convergence(mixture_2d(), ks=(2,), n_swarms=4, n_steps=2, seed=0)
    experiment = REGISTRY["fkc_convergence"]
    assert experiment.cells("quick", [mixture_2d()]) == ()
    assert "Gaussian" in experiment.not_applicable("quick", [mixture_2d()])
    assert [c["setting"]["name"] for c in experiment.cells("quick", [three_d()])] == ["three_d"]


def test_learned_sweep_runs_on_a_3d_composition_with_exact_and_learned_scores():
    sizes = dict(ks=[1, 2], n_runs=2, n_swarms=8, n_steps=3, n_proj=4, config=TINY, seed=3)
    exact = learned_sweep(three_d(), "analytical", **sizes)
    learned = learned_sweep(three_d(), 30, **sizes)
    for frame in (exact, learned):
        assert len(frame) == 2 * 3 and np.isfinite(frame[["sw2", "mmd2"]].to_numpy()).all()
        assert (frame["regime"] == "unknown").all()
    assert np.isfinite(learned.loc[learned["K"] > 0, "train_loss"]).all()
    # The stall findings cannot judge a setting whose ID/OOD label is unknown, and say so.
    for check in REGISTRY["learned_sweep"].checks:
        out = check.evaluate(pd.concat([exact, learned], ignore_index=True))
        assert out.status == NOT_APPLICABLE and "three_d" in out.note


def test_scatter_experiments_use_labels_and_the_first_two_coordinates():
    draws = setting_samples(three_d(), 10, seed=4)
    assert list(dict.fromkeys(draws["distribution"])) == ["A", "B", "base", "target Q"]
    assert list(draws.columns) == ["setting", "distribution", "x0", "x1"]
    mixed = sampler_draws(mixture_2d(), 10, 2, 3, seed=5)
    assert list(dict.fromkeys(mixed["distribution"])) == ["naive SDE", "FKC K=2", "target Q"]
    assert sampler_draws(three_d(), 10, 2, 3, seed=5).shape == (30, 4)
    for function, args in ((setting_samples, (10,)), (sampler_draws, (10, 2, 3))):
        with pytest.raises(ShapeMismatchError, match="dimension"):
            function(one_d(), *args, seed=0)
    for name in ("target_samples", "sampler_draws"):
        assert REGISTRY[name].cells("quick", [one_d()]) == ()
        assert "d = 1" in REGISTRY[name].not_applicable("quick", [one_d()])


def test_exact_target_summary_in_3d_1d_and_a_mixture():
    row = exact_target_summary(three_d(), 4000, seed=6).iloc[0]
    # Hand-derived: precision diag(1.5, 1.5, 1), η = (4, 4, 0).
    assert (row["mean_0"], row["mean_1"]) == pytest.approx((8 / 3, 8 / 3), rel=1e-10)
    assert (row["cov_00"], row["cov_11"], row["cov_01"]) == pytest.approx((2 / 3, 2 / 3, 0.0), rel=1e-10,
                                                                          abs=1e-14)
    assert row["dim"] == 3 and row["moments_compared"] == 9 and math.isnan(row["log_z_cubature"])
    assert row["regime"] == "unknown" and row["conditionals"] == "unknown"
    one = exact_target_summary(one_d(), 4000, seed=6, rtol=1e-8).iloc[0]
    assert one["moments_compared"] == 2 and math.isnan(one["mean_1"]) and math.isnan(one["cov_11"])
    assert one["cov_00"] == pytest.approx(1.2, rel=1e-10) and one["log_z_abs_diff"] < 1e-6
    mix = exact_target_summary(mixture_2d(), 2000, seed=6, rtol=1e-6).iloc[0]
    assert mix["conditionals"] == "mixture" and mix["regime"] == "ID" and mix["moments_compared"] == 5
    frame = pd.concat([exact_target_summary(s, 2000, seed=7, rtol=1e-6) for s in (three_d(), one_d())])
    checks = REGISTRY["paper_targets"].checks
    assert all(c.asserted for c in checks)  # guarantees (closed forms against cubature), not findings
    outcomes = [_renders(c.evaluate(frame)) for c in checks]
    assert all(o.status == HOLDS for o in outcomes), outcomes
    assert outcomes[2].numbers["moments compared m"] == 9 + 2
    assert outcomes[1].judged == ("one_d",)  # only the 1-D one has cubature
    # A 3-D target without a closed form (mixture sources, a negative weight): no cubature in 3-D either.
    means = np.array([[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    a, b, c = (GaussianMixture.isotropic(np.asarray(w), means, 0.7)
               for w in ([0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]))
    far = Setting("far", (a, b, c), (1, 1, -1))
    assert not far.composition.has_closed_form_target
    with pytest.raises(NoClosedFormError, match="cubature"):
        exact_target_summary(far, 10, seed=0)
    assert REGISTRY["paper_targets"].cells("quick", [far]) == ()


def _renders(outcome):
    """The report typesets every note, number name and value: each must have a LaTeX form."""
    for text in (outcome.note, *outcome.numbers, *map(str, outcome.numbers.values())):
        latex_text(text)
    return outcome


# ------------------------------------------------------------------------------------------- fkc_sweep's check
def _sweep_frame(setting: str, gain: float, spread: float, conditionals: str = "NFC", runs: int = 3) -> pd.DataFrame:
    """MMD² of naive composition 0.1 + spread·u_r and of FKC at K = 16 0.1 − gain (u_r = −1, 0, 1): the Welch
    gain is ``gain`` with standard error ``spread/√3``; plus K = 4 rows, floor rows and exact rows to ignore."""
    u = np.linspace(-1.0, 1.0, runs)
    rows = []
    for r in range(runs):
        rows += [{"K": 1, "run": r, "exact": False, "mmd2": 0.1 + spread * u[r]},
                 {"K": 4, "run": r, "exact": False, "mmd2": 9.0},
                 {"K": 16, "run": r, "exact": False, "mmd2": 0.1 - gain},
                 {"K": 0, "run": r, "exact": False, "mmd2": 5.0}]
    rows.append({"K": np.inf, "run": -1, "exact": True, "mmd2": np.nan})
    return pd.DataFrame(rows).assign(setting=setting, eps=0.0, conditionals=conditionals, regime="unknown")


def test_fkc_sweep_check_holds_fails_inconclusive_and_not_applicable():
    check = sweep.EXPERIMENT.checks[0]
    assert not check.asserted
    holds = check.evaluate(_sweep_frame("mine", 0.05, 0.003))
    assert holds.status == HOLDS and holds.judged == ("mine",)
    assert check.evaluate(_sweep_frame("mine", -0.05, 0.003)).status == FAILS
    noisy = _renders(check.evaluate(_sweep_frame("mine", 0.01, 0.05)))
    assert noisy.status == INCONCLUSIVE and "runs" in noisy.note
    # FC settings and settings of unknown conditionals are not judged; no exact-score rows: nothing to judge.
    assert check.evaluate(_sweep_frame("mine", 0.05, 0.003, "FC")).status == NOT_APPLICABLE
    unknown = check.evaluate(_sweep_frame("mine", 0.05, 0.003, "unknown"))
    assert unknown.status == NOT_APPLICABLE and "mine" in unknown.note
    assert check.evaluate(_sweep_frame("mine", 0.05, 0.003).assign(eps=0.005)).status == NOT_APPLICABLE


def test_fkc_sweep_check_names_the_paper_settings_it_did_not_judge():
    check = sweep.EXPERIMENT.checks[0]
    quick = _renders(check.evaluate(_sweep_frame("NFC_OOD", 0.05, 0.003)))
    assert quick.status == HOLDS and quick.judged == ("NFC_OOD",)
    assert "NFC_ID, GMM_ID, GMM_OOD are not in this run" in quick.note
    full = pd.concat([_sweep_frame(s, 0.05, 0.003, c) for s, c in (
        ("FC_ID", "FC"), ("NFC_ID", "NFC"), ("NFC_OOD", "NFC"), ("GMM_ID", "mixture"), ("GMM_OOD", "mixture"))])
    out = check.evaluate(full)
    assert out.status == HOLDS and out.judged == ("NFC_ID", "NFC_OOD", "GMM_ID", "GMM_OOD")
    assert "not in this run" not in out.note


def test_fkc_sweep_check_fails_one_setting_only_at_the_bonferroni_level():
    """A loss resolved at α (t_(0.975, 2)·SE = 4.30·0.02) but not at α/2 (6.21·0.02): alone the setting fails; beside
    a second, resolved setting the claim is inconclusive."""
    check = sweep.EXPERIMENT.checks[0]
    loss = _sweep_frame("a", -0.1, 0.02 * math.sqrt(3))
    assert student_t.isf(ALPHA, 2) * 0.02 < 0.1 < student_t.isf(ALPHA / 2, 2) * 0.02
    assert check.evaluate(loss).status == FAILS
    both = pd.concat([loss, _sweep_frame("b", 0.05, 0.003)])
    assert check.evaluate(both).status == INCONCLUSIVE


# ----------------------------------------------------------------------------------- fkc_convergence's checks
def _convergence_frame(intercept_shift=0.0, slope=-1.0, c=1.0, se=1e-3, ks=(4, 8, 16, 32), settings=("mine",),
                       statistics=("second_trace", "log_z")) -> pd.DataFrame:
    rows = []
    for setting in settings:
        for scores in ("exact", "precision"):
            for stat in statistics:
                exact = 2.0
                for k in ks:
                    gap = intercept_shift + c * float(k) ** slope
                    rows.append({"setting": setting, "scores": scores, "statistic": stat, "K": k,
                                 "mc": exact + gap, "se": se, "exact": exact, "gap": gap, "abs_gap": abs(gap),
                                 "z": gap / se, "n_swarms": 2000, "n_steps": 50})
    return pd.DataFrame(rows)


def test_limit_check_margin_is_the_bonferroni_t_quantile():
    m = 56
    assert conv.limit_margin(m, 2000) == pytest.approx(student_t.isf(conv.FKC_LIMIT_ALPHA / (2 * m), 1999))
    assert 4.2 < conv.limit_margin(m, 2000) < 4.4  # the default run's 56 comparisons


def test_limit_check_holds_on_an_exact_c_over_k_and_fails_on_a_shifted_intercept():
    check = next(c for c in REGISTRY["fkc_convergence"].checks if c.asserted)
    out = check.evaluate(_convergence_frame())
    assert out.status == HOLDS and out.numbers["max |a − exact| / SE(a)"] < 1e-6 and out.judged == ("mine",)
    shifted = check.evaluate(_convergence_frame(intercept_shift=0.01))  # 0.01 ≫ 4.3 · SE(a)
    assert shifted.status == FAILS
    paper = _renders(check.evaluate(_convergence_frame(settings=("NFC_OOD",))))
    assert "FC_ID, NFC_ID, FC_OOD are not in this run" in paper.note
    assert check.evaluate(_convergence_frame().assign(scores="misspecification")).status == NOT_APPLICABLE


def test_rate_finding_holds_fails_inconclusive_and_not_applicable():
    check = next(c for c in REGISTRY["fkc_convergence"].checks if not c.asserted)
    assert check.evaluate(_convergence_frame(slope=-1.0)).status == HOLDS
    assert check.evaluate(_convergence_frame(slope=-0.5)).status == FAILS  # a 1/√K rate, resolved
    # Gaps of 3.2–16 SE: resolved at every K, so fitted, but the slope −0.8 ± 0.096 is neither resolved within
    # ±0.25 of −1 nor outside.
    noisy = _renders(check.evaluate(_convergence_frame(slope=-0.8, c=3.2e-3 * 32**0.8, se=1e-3)))
    assert noisy.status == INCONCLUSIVE and "swarms" in noisy.note
    unresolved = check.evaluate(_convergence_frame(c=1e-4, se=1e-3))  # no gap resolved from the noise
    assert unresolved.status == NOT_APPLICABLE


# -------------------------------------------------------------------------------------- the t-margin rule
def test_t_margin_false_alarm_rate_with_three_runs_is_at_its_level_where_two_se_was_not():
    """Under the null (no difference), the one-sided rule "difference > t_(1−α, ν)·SE" with SE from 3 runs (ν = 2
    for one mean; Welch's ν for two) alarms at about α = 2.5 %; the old rule "> 2 SE", stated as 1 − Φ(2) ≈ 2.3 %,
    alarms at 6–15 %."""
    rng = np.random.default_rng(20240607)
    n_sim, runs = 100_000, 3
    mc_se = math.sqrt(ALPHA * (1 - ALPHA) / n_sim)
    # One mean of 3 runs (a paired difference): exact Student t, so the rate is α up to Monte Carlo error.
    x = rng.standard_normal((n_sim, runs))
    mean, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(runs)
    t_rate = float(np.mean(mean > student_t.isf(ALPHA, runs - 1) * se))
    old_rate = float(np.mean(mean > 2.0 * se))
    assert abs(t_rate - ALPHA) < 4 * mc_se
    assert old_rate > 0.08 and 1 - norm.cdf(2.0) < 0.023
    # Two independent means of 3 runs each (Welch), equal and unequal spreads.
    for ratio in (1.0, 10.0):
        a = rng.standard_normal((n_sim, runs))
        b = ratio * rng.standard_normal((n_sim, runs))
        va, vb = a.var(1, ddof=1) / runs, b.var(1, ddof=1) / runs
        se = np.sqrt(va + vb)
        nu = (va + vb) ** 2 / (va**2 / (runs - 1) + vb**2 / (runs - 1))
        d = b.mean(1) - a.mean(1)
        t_rate = float(np.mean(d > student_t.isf(ALPHA, nu) * se))
        old_rate = float(np.mean(d > 2.0 * se))
        assert 0.01 < t_rate < 0.032, (ratio, t_rate)  # Welch's approximation: 1.9 % and 2.8 % here
        assert old_rate > 0.055, (ratio, old_rate)
        # The vectorised rule above is what verify.analysis.stats decides, simulation by simulation.
        for i in range(200):
            diff = welch(mean_of_runs(b[i]), mean_of_runs(a[i]))
            assert (resolve(diff) == 1) == bool(d[i] > student_t.isf(ALPHA, nu[i]) * se[i])
    assert resolve(Estimate(1.0, 0.0, math.inf)) == 1
