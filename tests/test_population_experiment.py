"""The population experiment: the quick run through the report's runner, the frame's schema, chunking and seeds, and
every check on hand-made frames (holds / fails / inconclusive / not applicable, infinite predictors included)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from closed_form import Gaussian, Setting, paper_setting
from closed_form.errors import CatcompError
from verify.analysis.population import OUTCOMES, PREDICTORS
from verify.experiments import REGISTRY
from verify.experiments import population as pe
from verify.report.build import EXIT_OK, build_report
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, STATUSES
from verify.report.tables import render_table

EXPERIMENT = pe.EXPERIMENT
SPEC = EXPERIMENT.quick[0]["population"]


def _check(claim: str, outcome: str):
    (check,) = [c for c in EXPERIMENT.checks if c.claim == claim and f"ranks {outcome} best" in c.statement]
    return check


# ---------------------------------------------------------------------------------------------- through the runner
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("population")
    result = build_report(REGISTRY, out, names=["population"], size="quick", jobs=1, cache_version="test",
                          progress=False, echo=lambda line: None)
    return out, result


def test_quick_run_succeeds_and_writes_its_outputs(quick_run):
    out, result = quick_run
    assert result.exit_code == EXIT_OK
    (record,) = [r for r in result.records if r.name == "population"]
    assert record.status not in ("error", "awaiting"), record.error
    for table in EXPERIMENT.tables:
        assert (out / "tables" / f"{table.name}.tex").stat().st_size > 200
    assert (out / "figures" / "population_predictors.png").stat().st_size > 1000
    outcomes = [r.outcome for r in result.checks if r.experiment == "population"]
    assert len(outcomes) == 4 and all(o.status in STATUSES for o in outcomes)
    assert {r.check.claim for r in result.checks if r.experiment == "population"} == {"R4", "F9"}


def test_quick_frame_schema(quick_run):
    out, _ = quick_run
    frame = pd.read_csv(out / "data" / "population.csv")
    assert set(frame["record"]) == set(pe.RECORDS)
    members = pe.members(frame, None)
    for column in ["setting", "dim", "kind", "weights", "index", "rejected", "cell_seed", *PREDICTORS, *OUTCOMES]:
        assert column in members.columns, column
    random = members[members["kind"] == "random"]
    n_random = SPEC["n_per_dim"] * len(SPEC["dims"])
    assert len(random) == n_random and sorted(random["index"]) == list(range(n_random))
    assert set(members.loc[members["kind"] != "random", "setting"]) == {"FC_ID", "NFC_ID", "FC_OOD", "NFC_OOD"}
    assert set(members.loc[members["kind"] != "random", "kind"]) == {"paper"}
    assert frame["bootstrap_seed"].nunique() == 1
    correlations = frame[frame["record"] == "correlation"]
    assert len(correlations) == len(PREDICTORS) * len(OUTCOMES)
    assert (correlations["n_judged"] + correlations["n_dropped"] == n_random).all()
    accounting = frame[frame["record"] == "accounting"]
    assert accounting["members"].sum() == n_random
    assert accounting["rejected"].sum() == random["rejected"].sum()
    assert (accounting["draws"] == accounting["members"] + accounting["rejected"]).all()


def test_chunks_recombine_to_the_same_population():
    kwargs = dict(dim=2, population=SPEC, eps=pe.EPS, n_directions=pe.N_DIRECTIONS)
    whole = pe.population(start=0, stop=2, seed=1, **kwargs)
    parts = pd.concat([pe.population(start=0, stop=1, seed=7, **kwargs),
                       pe.population(start=1, stop=2, seed=8, **kwargs)], ignore_index=True)
    same = [c for c in whole.columns if c != "cell_seed"]
    pd.testing.assert_frame_equal(whole[same], parts[same])
    assert list(whole["setting"]) == ["pop_d2_000", "pop_d2_001"]


def test_same_seed_same_frame(quick_run):
    out, _ = quick_run
    frame = pd.read_csv(out / "data" / "population.csv")
    again = pe.derive_population(frame)
    for record in ("correlation", "disagreement", "accounting"):
        a = frame[frame["record"] == record].reset_index(drop=True)
        b = again[again["record"] == record].reset_index(drop=True)[a.columns]
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    one = pe.population(setting=paper_setting("FC_ID"), eps=pe.EPS, n_directions=pe.N_DIRECTIONS, seed=3)
    pd.testing.assert_frame_equal(one, pe.population(setting=paper_setting("FC_ID"), eps=pe.EPS,
                                                     n_directions=pe.N_DIRECTIONS, seed=3))
    other = frame.assign(cell_seed=frame["cell_seed"] + 1).drop(columns="bootstrap_seed")
    assert pe.bootstrap_seed(other) != pe.bootstrap_seed(frame)


def test_invalid_cells_raise():
    with pytest.raises(CatcompError, match="non-empty part"):
        pe.population(dim=2, start=3, stop=3, population=SPEC, seed=0)
    with pytest.raises(CatcompError, match="either a named setting or a chunk"):
        pe.population(dim=2, start=0, stop=1, population=SPEC, setting=paper_setting("FC_ID"), seed=0)
    with pytest.raises(CatcompError, match="needs dim"):
        pe.population(seed=0)


def test_user_settings_run_as_user_members_only():
    user = Setting("mine", [Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.ones(2), 2 * np.eye(2)),
                            Gaussian(np.zeros(2), 3 * np.eye(2))], (1.0, 1.0, -1.0), ("a", "b", "c"))
    cells = EXPERIMENT.cells("default", settings=[user, paper_setting("GMM_ID")])
    assert len(cells) == 1 and cells[0]["setting"]["name"] == "mine" and "dim" not in cells[0]
    assert pe._named_kind(user) == "user"
    assert pe._named_kind(paper_setting("NFC_OOD")) == "paper"
    from closed_form.population import named_members

    family = [s for s in named_members("quick") if s.name.startswith("family-")][0]
    assert pe._named_kind(family) == "family"
    assert pe._named_kind(Setting(family.name, family.sources, (1.0, 1.0, -0.5), family.labels)) == "user"


def test_sizes_and_cells():
    quick_dims = {c["dim"] for c in EXPERIMENT.quick if "dim" in c}
    assert quick_dims == {2}
    assert {c["dim"] for c in EXPERIMENT.default if "dim" in c} == {2, 4, 8}
    for cells in (EXPERIMENT.quick, EXPERIMENT.default, EXPERIMENT.paper):
        chunks = [c for c in cells if "dim" in c]
        n = chunks[0]["population"]["n_per_dim"]
        for d in chunks[0]["population"]["dims"]:  # the chunks of a dimension cover [0, n_per_dim) once
            covered = sorted(i for c in chunks if c["dim"] == d for i in range(c["start"], c["stop"]))
            assert covered == list(range(n))


# ---------------------------------------------------------------------------------------------- hand-made frames
def synthetic(n=60, seed=0, kind="random") -> pd.DataFrame:
    """Members whose harm ``kl_worst`` = ``kl_mean`` rises with a latent level; ``log1p_chi2_max`` and
    ``lambda_max`` track it exactly (monotone), the other measures with noise (crossover ε falling with it)."""
    rng = np.random.default_rng(seed)
    z = np.sort(rng.normal(size=n))
    noise = lambda scale: z + scale * rng.normal(size=n)  # noqa: E731
    frame = pd.DataFrame({
        "record": "member", "kind": kind, "dim": np.repeat([2, 4], [n // 2, n - n // 2]),
        "setting": [f"pop_d2_{i:03d}" for i in range(n)], "weights": "(1, 1, -1)", "index": np.arange(n),
        "rejected": rng.integers(0, 3, n), "cell_seed": 11,
        "kl_worst": np.exp(z), "kl_mean": np.exp(z) / 10,
        "log1p_chi2_max": np.exp(z) + 1, "log1p_chi2_mean": np.exp(noise(1.0)),
        "outside_hdr_max": 1 / (1 + np.exp(-noise(1.5))), "lambda_max": np.exp(2 * z) * 100,
        "crossover_eps": np.exp(-noise(1.0)), "naive_kl": np.exp(noise(2.0)), "authors_metric": noise(1.0) + 5,
        "authors_metric_se": 0.1, "kl_mean_se": 0.01, "kl_worst_flag": "", "kl_mean_flag": ""})
    return frame


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_checks_tie_when_two_measures_rank_exactly_alike(outcome):
    # log1p_chi2_max and lambda_max both rank the harm perfectly: neither beats the other → inconclusive.
    frame = synthetic()
    for claim in ("R4", "F9"):
        result = _check(claim, outcome).evaluate(frame)
        assert result.status == INCONCLUSIVE, (claim, result)
        assert result.judged and "Bonferroni" in result.note


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_checks_hold_and_fail(outcome):
    frame = synthetic()
    rng = np.random.default_rng(5)
    frame["lambda_max"] = np.exp(np.log(frame["kl_worst"]) + 2.0 * rng.normal(size=len(frame)))
    assert _check("R4", outcome).evaluate(frame).status == HOLDS
    assert _check("F9", outcome).evaluate(frame).status == FAILS


def test_checks_with_infinite_predictor_values():
    frame = synthetic()
    worst = frame["kl_worst"] >= frame["kl_worst"].quantile(0.75)
    frame["log1p_chi2_max"] = np.where(worst, np.inf, frame["log1p_chi2_max"])
    frame["lambda_max"] = np.exp(np.log(frame["kl_worst"]) + 2.0 * np.random.default_rng(2).normal(size=len(frame)))
    result = _check("R4", "kl_worst").evaluate(frame)
    assert result.status == HOLDS
    assert result.numbers["members with log1p_chi2_max = ∞"] == int(worst.sum())
    assert _check("F9", "kl_worst").evaluate(frame).status == FAILS


def test_checks_inconclusive_on_few_noisy_members():
    frame = synthetic(n=10)
    rng = np.random.default_rng(1)
    z = np.log(frame["kl_worst"].to_numpy())
    frame["log1p_chi2_max"] = np.exp(z + rng.normal(size=10))
    frame["lambda_max"] = np.exp(z + rng.normal(size=10))
    status = _check("R4", "kl_worst").evaluate(frame).status
    assert status == INCONCLUSIVE


def test_checks_not_applicable():
    named_only = synthetic(kind="paper")
    result = _check("R4", "kl_worst").evaluate(named_only)
    assert result.status == NOT_APPLICABLE and "no random members" in result.note
    all_infinite = synthetic().assign(lambda_max=np.inf)
    result = _check("F9", "kl_mean").evaluate(all_infinite)
    assert result.status == NOT_APPLICABLE and "undefined" in result.note


def test_dropped_members_are_counted_with_their_reason():
    frame = synthetic()
    frame.loc[:4, "kl_worst"] = np.nan
    frame.loc[:4, "kl_worst_flag"] = "not reachable: leaves the PD cone"
    result = _check("R4", "kl_worst").evaluate(frame)
    assert result.numbers["members with log1p_chi2_max and kl_worst known"] == len(frame) - 5
    assert "5 with kl_worst NaN" in result.note and "not reachable" in result.note
    assert result.judged == ("d = 2: 25 random members (pop_d2_005 … pop_d2_029)",
                             "d = 4: 30 random members (pop_d2_030 … pop_d2_059)")


def test_bootstrap_is_seeded_by_the_frame():
    frame = synthetic(n=30)
    a = _check("R4", "kl_worst").evaluate(frame)
    assert a == _check("R4", "kl_worst").evaluate(frame)
    b = _check("R4", "kl_worst").evaluate(frame.assign(cell_seed=12))
    assert a.numbers != b.numbers  # other resamples, other interval ends


def test_derive_tables_and_figure_on_hand_made_frames(tmp_path):
    named = synthetic(n=4, kind="paper").assign(setting=["FC_ID", "NFC_ID", "FC_OOD", "NFC_OOD"], index=-1)
    named.loc[2:, "log1p_chi2_max"] = np.inf
    frame = synthetic()
    frame.loc[:2, "log1p_chi2_max"] = np.inf
    frame.loc[3, "kl_mean"] = np.nan
    frame.loc[3, "kl_mean_flag"] = "every direction leaves the PD cone"
    derived = pe.derive_population(pd.concat([frame, named], ignore_index=True))
    accounting = derived[derived["record"] == "accounting"]
    assert accounting["inf_log1p_chi2"].sum() == 3 and accounting["infeasible"].sum() == 1
    assert accounting["rejected"].sum() == frame["rejected"].sum()
    for spec in EXPERIMENT.tables:
        assert render_table(spec, derived)
    fig = pe.predictor_grid(derived)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(PREDICTORS) * len(OUTCOMES)
    assert "x = ∞: 3 random + 2 named" in fig.axes[0].get_title()
    # A run on the user's settings alone: every table still renders, saying there are no random members.
    user_only = pe.derive_population(synthetic(n=3, kind="user"))
    for spec in EXPERIMENT.tables:
        assert render_table(spec, user_only)
    pe.predictor_grid(user_only)


# ---------------------------------------------------------------------------------------------- within dimension
def shifted(n_per_dim=20, seed=0) -> pd.DataFrame:
    """Two dimensions whose harm differs by a level shift: log1p_chi2_max only knows the dimension (the shift),
    λ_max ranks the harm perfectly within each dimension but ignores the shift, the other measures are noise."""
    rng = np.random.default_rng(seed)
    frame = synthetic(n=2 * n_per_dim, seed=seed)
    dim = frame["dim"].to_numpy()
    within = rng.normal(size=len(frame))
    frame["kl_worst"] = np.exp(within + 6.0 * (dim == 4))
    frame["kl_mean"] = frame["kl_worst"] / 10
    frame["log1p_chi2_max"] = dim + 1e-3 * rng.normal(size=len(frame))
    frame["lambda_max"] = np.exp(within)
    for name in ("log1p_chi2_mean", "outside_hdr_max", "naive_kl", "authors_metric"):
        frame[name] = np.abs(rng.normal(size=len(frame))) + 0.1
    frame["crossover_eps"] = np.abs(rng.normal(size=len(frame))) + 0.1
    return frame


def test_within_dimension_figures_are_reported_not_judged():
    from verify.analysis.ranking import bonferroni_level, compare, correlation, stratified_spearman

    frame = shifted()
    result = _check("R4", "kl_mean").evaluate(frame)
    assert "decision is on the pooled population" in result.note and "context, not judged" in result.note
    key = next(k for k in result.numbers if k.startswith("ρ(log1p_chi2_max) within dimension"))
    assert "not judged" in key
    # Within d the shift is worth nothing: the stratified ρ of log1p_chi2_max is near 0, the pooled one is not.
    part = pe.members(frame)
    within = stratified_spearman(part["log1p_chi2_max"], part["kl_mean"], part["dim"]).rho
    assert abs(within) < 0.5 and correlation(part, "log1p_chi2_max", "kl_mean").rho > 0.5
    assert result.numbers[key].startswith(f"{within:.3f} [") and "dim = 2" in result.numbers[key]
    runner = next(k for k in result.numbers if k.startswith("runner-up within dimension"))
    assert result.numbers[runner].startswith("lambda_max: 1.000")
    diff_key = next(k for k in result.numbers if k.startswith("ρ(log1p_chi2_max) − ρ(lambda_max) within dimension"))
    expected = compare(part, "log1p_chi2_max", "lambda_max", "kl_mean", pe._directions(), strata="dim",
                       seed=pe.bootstrap_seed(frame), level=bonferroni_level(len(PREDICTORS) - 1))
    assert f"[{100 * expected.level:.4g} % CI]" in diff_key
    assert result.numbers[diff_key].startswith(f"{expected.difference:+.3f} [")
    # The decision itself reads the pooled intervals only: same status with the within-d numbers present or not.
    pooled_keys = [k for k in result.numbers if k.startswith("ρ(") and "within" not in k]
    assert pooled_keys and all("within" not in k for k in pooled_keys)
    # Within d, log1p_chi2_max is clearly worse than λ_max (interval below 0); the pooled decision does not see it.
    upper = float(result.numbers[diff_key].split(", ")[1].split("]")[0])
    assert round(expected.upper, 3) == upper < 0 and result.status != FAILS
    f9 = _check("F9", "kl_mean").evaluate(frame)
    assert not next(v for k, v in f9.numbers.items() if k.startswith("runner-up within")).startswith("lambda_max")


def test_within_dimension_with_one_dimension_equals_pooled_and_small_dimensions_are_counted():
    frame = synthetic().assign(dim=2)
    result = _check("F9", "kl_worst").evaluate(frame)
    pooled = next(v for k, v in result.numbers.items() if k.startswith("ρ(lambda_max) [")).split(" (")[0]
    within = next(v for k, v in result.numbers.items() if k.startswith("ρ(lambda_max) within")).split(" (")[0]
    assert pooled == within
    derived = pe.derive_population(frame)
    corr = derived[derived["record"] == "correlation"]
    for a, b in (("rho", "rho_within"), ("rho_lower", "rho_within_lower"), ("rho_upper", "rho_within_upper")):
        np.testing.assert_array_equal(corr[a].to_numpy(float), corr[b].to_numpy(float))
    assert (corr["dims_used"] == 1).all() and (corr["dims_excluded"] == 0).all()
    # A dimension with two members is left out of the within-d figures and counted, never a NaN.
    small = synthetic(n=32)
    small.loc[:1, "dim"] = 8
    derived = pe.derive_population(small)
    corr = derived[derived["record"] == "correlation"]
    assert (corr["dims_excluded"] == 1).all() and (corr["dims_used"] == 2).all()
    assert corr["rho_within"].notna().all() and (corr["n_within"] == 30).all()
    result = _check("R4", "kl_worst").evaluate(small)
    text = next(v for k, v in result.numbers.items() if k.startswith("ρ(log1p_chi2_max) within"))
    assert "excluded dim = 8 (2 members, fewer than 3)" in text
