"""The learned outcome on the population's subsample (verify/experiments/population_learned.py): seeded runs, the
analytical arm and the floor recomputed from the documented keys, the summary against hand computations, d = 4,
invalid input, the registration, and the R4 / F9 checks on hand-made frames (holds, fails, inconclusive, not
applicable)."""

import jax
import numpy as np
import pandas as pd
import pytest

from closed_form import VPSchedule, paper_setting
from closed_form.errors import CatcompError, NotGaussianSettingError
from closed_form.population import PopulationSpec, population_member
from verify.analysis.learned_runs import run_keys
from verify.analysis.metrics import mmd2_unbiased, sliced_w2
from verify.experiments import population_learned as pl
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_sample

TINY = dict(n=100, k=4, n_runs=2, n_swarms=32, n_steps=10, n_proj=20, config="small", iterations=30)
SEED = 11


def member(dim, index=0):
    return population_member(PopulationSpec(n_per_dim=index + 1, seed=pl.POPULATION_SEED), dim, index).setting


@pytest.fixture(scope="module")
def d2():
    return member(2)


@pytest.fixture(scope="module")
def runs(d2):
    return pl.learned_runs(d2, **TINY, seed=SEED)


def test_runs_are_seeded_and_the_analytical_arm_and_floor_are_what_they_claim(d2, runs):
    """Same seed → identical runs; each run's analytical arm is FKC with the exact scores run directly from the run's
    sampler key, and its floor is two exact target samples, both measured against the run's reference sample."""
    pd.testing.assert_frame_equal(runs, pl.learned_runs(d2, **TINY, seed=SEED))
    schedule, comp = VPSchedule(), d2.composition
    exact = source_scores(comp, schedule)
    for r in range(TINY["n_runs"]):
        keys = run_keys(SEED, r)
        ref = comp.sample_target(keys.reference, TINY["n_swarms"]).samples
        out = fkc_sample(jax.random.fold_in(keys.sampling, TINY["k"]), exact, d2.weights, schedule,
                         TINY["n_swarms"], TINY["k"], n_steps=TINY["n_steps"]).samples
        floor = comp.sample_target(keys.floor, TINY["n_swarms"]).samples
        row = runs.iloc[r]
        np.testing.assert_allclose(row["sw2_analytical"], sliced_w2(out, ref, keys.projections, TINY["n_proj"]),
                                   rtol=1e-12)
        np.testing.assert_allclose(row["mmd2_analytical"], mmd2_unbiased(out, ref), rtol=1e-12)
        np.testing.assert_allclose(row["sw2_floor"], sliced_w2(floor, ref, keys.projections, TINY["n_proj"]),
                                   rtol=1e-12)
    # Each run retrains: the learned arm and the training loss differ between runs.
    assert runs["train_loss"].nunique() == 2 and runs["sw2_learned"].nunique() == 2


def test_summary_matches_a_hand_computation(runs):
    scale = 0.7
    out = pl.summarize_runs(runs, scale)
    n = len(runs)
    for metric in ("sw2", "mmd2"):
        for arm in pl.ARMS:
            x = runs[f"{metric}_{arm}"].to_numpy()
            np.testing.assert_allclose(out[f"{metric}_{arm}"], x.mean(), rtol=1e-12)
            np.testing.assert_allclose(out[f"{metric}_{arm}_se"], x.std(ddof=1) / np.sqrt(n), rtol=1e-12)
        e = runs[f"{metric}_learned"].to_numpy() - runs[f"{metric}_analytical"].to_numpy()
        np.testing.assert_allclose(out[f"{metric}_excess"], e.mean(), rtol=1e-12)
        np.testing.assert_allclose(out[f"{metric}_excess_se"], e.std(ddof=1) / np.sqrt(n), rtol=1e-12)
    np.testing.assert_allclose(out["learned_excess"], out["sw2_excess"] / scale, rtol=1e-12)
    np.testing.assert_allclose(out["learned_excess_se"], out["sw2_excess_se"] / scale, rtol=1e-12)


def test_target_scale_from_the_precisions(d2):
    """σ_Q = √(tr Σ_Q / d) with Σ_Q = (Σ_i w_i Σ_i⁻¹)⁻¹, computed here from the sources directly."""
    precision = sum(w * np.linalg.inv(np.asarray(s.cov)) for w, s in zip(d2.weights, d2.sources))
    cov = np.linalg.inv(precision)
    np.testing.assert_allclose(pl.target_scale(d2), np.sqrt(np.trace(cov) / 2), rtol=1e-10)


def test_row_schema_seeded_and_standard_errors_positive(d2, monkeypatch):
    """One row with the learned columns; with predictors, member_row's columns are merged (a stub here: its own
    tests live with it) without overwriting the learned ones."""
    frame = pl.population_learned(d2, **TINY, predictors=False, seed=SEED)
    pd.testing.assert_frame_equal(frame, pl.population_learned(d2, **TINY, predictors=False, seed=SEED))
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["setting"] == d2.name and row["dim"] == 2 and row["k"] == 4 and row["iterations"] == 30
    for col in ("sw2_analytical", "sw2_learned", "sw2_floor", "sw2_excess", "mmd2_excess", "learned_excess",
                "train_loss"):
        assert np.isfinite(row[col]) and row[f"{col}_se"] > 0
    import verify.analysis.population as population

    calls = []

    def stub(setting, *, seed, **options):
        calls.append((setting.name, seed, options))
        return {"setting": "overwritten?", "kind": "random", "lambda_max": 3.0, "log1p_chi2_max": np.inf}

    monkeypatch.setattr(population, "member_row", stub)
    with_predictors = pl.population_learned(d2, **TINY, member={"n_directions": 2}, seed=SEED).iloc[0]
    assert calls == [(d2.name, SEED, {"n_directions": 2})]
    assert with_predictors["setting"] == d2.name and with_predictors["lambda_max"] == 3.0
    assert with_predictors["learned_excess"] == row["learned_excess"]


def test_networks_and_samplers_run_in_d4():
    runs = pl.learned_runs(member(4), **TINY, seed=3)
    assert len(runs) == 2 and np.isfinite(runs.to_numpy(float)).all()
    assert (runs[["sw2_analytical", "sw2_learned", "sw2_floor"]] > 0).all().all()


@pytest.mark.parametrize("bad, error", [
    (dict(n_runs=1), CatcompError), (dict(n_swarms=1), CatcompError), (dict(k=0), CatcompError),
    (dict(iterations=0), CatcompError), (dict(config="huge"), CatcompError),
])
def test_invalid_sizes_raise(d2, bad, error):
    with pytest.raises(error):
        pl.learned_runs(d2, **{**TINY, **bad}, seed=0)


def test_mixture_setting_is_refused():
    with pytest.raises(NotGaussianSettingError):
        pl.learned_runs(paper_setting("GMM_ID"), **TINY, seed=0)


# ---------------------------------------------------------------------------------------------- registration
def test_registration_subsamples_the_exact_experiments_population():
    from verify.experiments import REGISTRY
    from verify.experiments.population import N_DIRECTIONS, POPULATION_SEED

    assert pl.POPULATION_SEED == POPULATION_SEED and pl.MEMBER_OPTIONS == {"n_directions": N_DIRECTIONS}
    e = REGISTRY["population_learned"]
    assert {c.claim for c in e.checks} == {"R4", "F9"}
    for size, members in (("quick", pl.QUICK_MEMBERS), ("default", pl.DEFAULT_MEMBERS), ("paper", pl.PAPER_MEMBERS)):
        cells = e.cells(size)
        names = [c["setting"]["name"] for c in cells]
        assert names == [f"pop_d{d}_{i:03d}" for d, idx in members.items() for i in idx]
    for c in e.cells("default"):  # the subsample keeps the paper's weights (module doc)
        assert c["setting"]["weights"] == [1.0, 1.0, -1.0]
    spec = PopulationSpec(n_per_dim=24, seed=POPULATION_SEED)
    first = e.cells("default")[0]["setting"]
    assert first == population_member(spec, 2, 0).setting.to_spec()


# ---------------------------------------------------------------------------------------------- the checks
def hand_frame(n, best=None, seed=0, kind="random"):
    """``n`` members with learned excess 1..n (SE 0.1); predictor ``best`` ranks it perfectly (signed by its
    direction), every other predictor is independent noise."""
    from verify.analysis.population import PREDICTORS

    rng = np.random.default_rng(seed)
    y = np.arange(1.0, n + 1)
    frame = pd.DataFrame({"setting": [f"pop_d2_{i:03d}" for i in range(n)], "kind": kind, "n_runs": 5,
                          "learned_excess": y, "learned_excess_se": 0.1})
    for name, p in PREDICTORS.items():
        frame[name] = p.direction * y if name == best else rng.normal(size=n)
    return frame


def check(claim):
    return next(c for c in pl.EXPERIMENT.checks if c.claim == claim)


def test_checks_hold_and_fail_on_hand_made_frames():
    frame = hand_frame(40, best="log1p_chi2_max")
    r4, f9 = check("R4").evaluate(frame), check("F9").evaluate(frame)
    assert r4.status == HOLDS and len(r4.judged) == 40
    assert f9.status == FAILS
    assert "not propagated" in r4.note
    assert r4.numbers["member pairs whose learned excesses are resolved apart (|Δ| > 1.96 combined SE)"] \
        == "780 of 780"
    lam = hand_frame(40, best="lambda_max")
    assert check("F9").evaluate(lam).status == HOLDS and check("R4").evaluate(lam).status == FAILS


def test_checks_inconclusive_on_few_members_and_named_members_not_judged():
    frame = hand_frame(5, best="log1p_chi2_max", seed=1)
    frame["lambda_max"] = frame["learned_excess"] + np.array([0.0, 2.5, -2.5, 0.4, 0.0])  # ρ = 0.6
    named = hand_frame(3, best="log1p_chi2_max", kind="paper").assign(setting=["FC_ID", "FC_OOD", "NFC_ID"])
    out = check("R4").evaluate(pd.concat([frame, named], ignore_index=True))
    assert out.status == INCONCLUSIVE
    assert set(out.judged) == set(frame["setting"]) and "FC_ID" in out.note


def test_checks_not_applicable():
    assert check("R4").evaluate(hand_frame(2, best="log1p_chi2_max")).status == NOT_APPLICABLE
    assert check("R4").evaluate(hand_frame(8, kind="paper")).status == NOT_APPLICABLE
    assert check("F9").evaluate(hand_frame(8).drop(columns=["learned_excess_se"])).status == NOT_APPLICABLE
    all_inf = hand_frame(8).assign(log1p_chi2_max=np.inf)  # constant: its correlation is undefined
    assert check("R4").evaluate(all_inf).status == NOT_APPLICABLE


def test_resolved_pairs_and_population_size():
    assert pl.resolved_pairs([0.0, 1.0, 10.0], [0.1, 0.1, 0.1]) == (3, 3)
    assert pl.resolved_pairs([0.0, 0.2, 10.0], [0.1, 0.1, 0.1]) == (2, 3)  # 0.2 < 1.96·√0.02 ≈ 0.277

    class C:
        def __init__(self, d, lo, hi, n=10):
            self.difference, self.lower, self.upper, self.n = d, lo, hi, n
            self.direction = 1 if lo > 0 else -1 if hi < 0 else 0

    class D:
        comparisons = (C(0.2, -0.2, 0.6), C(0.5, 0.1, 0.9))

    assert pl.population_size_to_resolve(D()) == (40, [])  # 10·(0.4/0.2)²; a resolved comparison does not count
    D.comparisons = (C(0.5, 0.1, 0.9),)
    assert pl.population_size_to_resolve(D()) == (None, [])
    D.comparisons = (C(0.0, -0.2, 0.2), C(0.1, -0.1, 0.3))
    D.comparisons[0].other, D.comparisons[1].other = "tied", "close"
    assert pl.population_size_to_resolve(D()) == (40, ["tied"])


def test_checks_report_within_dimension_figures_without_judging_them():
    """Two dimensions: the pooled decision is as before; the within-d ρ of each measure, its runner-up and the paired
    within-d interval are reported. With one dimension they equal the pooled figures; without dim they are absent."""
    frame = hand_frame(40, best="log1p_chi2_max").assign(dim=np.repeat([2, 4], 20))
    r4 = check("R4").evaluate(frame)
    assert r4.status == HOLDS
    assert "decision is on the pooled subsample" in r4.note and "context, not judged" in r4.note
    key = next(k for k in r4.numbers if k.startswith("ρ(log1p_chi2_max) within dimension"))
    assert r4.numbers[key].startswith("1.000 [") and "dim = 2: 1.000 (n 20)" in r4.numbers[key]
    assert any(k.startswith("runner-up within dimension") for k in r4.numbers)
    assert any(k.startswith("ρ(log1p_chi2_max) − ρ(") and "within dimension" in k for k in r4.numbers)
    one = check("F9").evaluate(hand_frame(40, best="log1p_chi2_max").assign(dim=2))
    pooled = next(v for k, v in one.numbers.items() if k.startswith("ρ(lambda_max) [")).split(" (")[0]
    within = next(v for k, v in one.numbers.items() if k.startswith("ρ(lambda_max) within")).split(" (")[0]
    assert pooled == within
    bare = check("R4").evaluate(hand_frame(40, best="log1p_chi2_max"))
    assert not any("within dimension" in k for k in bare.numbers) and "no dim column" in bare.note
