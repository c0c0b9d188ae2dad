"""verify.analysis.ranking: Spearman with +∞ and NaN, bootstrap intervals, and the "ranks best" decision."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from verify.analysis.ranking import (
    RankingError,
    UndefinedCorrelationError,
    _resamples,
    best_predictor,
    bonferroni_level,
    compare,
    correlation,
    decide_best,
    disagreements,
    percentile_interval,
    spearman,
    stratified_context,
    stratified_resamples,
    stratified_spearman,
)
from verify.analysis.stats import ALPHA


# ---------------------------------------------------------------------------------------------- point estimate
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3)), min_size=3, max_size=30))
def test_spearman_matches_scipy_on_finite_data_with_ties(pairs):
    x = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs], float)
    if np.all(x == x[0]) or np.all(y == y[0]):
        with pytest.raises(UndefinedCorrelationError):
            spearman(x, y)
        return
    expected = spearmanr(x, y).statistic
    assert spearman(x, y).rho == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert spearman(x, y, -1).rho == pytest.approx(-expected, rel=1e-12, abs=1e-12)


def test_spearman_with_infinities_by_hand():
    # x ranks: 1→1, 2→2, 3→3, the two +∞ tie at the top → 4.5 each; y ranks are y itself.
    x = np.array([1.0, np.inf, 3.0, np.inf, 2.0])
    y = np.array([1.0, 5.0, 2.0, 4.0, 3.0])
    rx = np.array([1.0, 4.5, 3.0, 4.5, 2.0])
    cx, cy = rx - 3.0, y - 3.0  # centred: sxy = 8.5, sxx = 9.5, syy = 10
    assert (cx @ cy, cx @ cx, cy @ cy) == (8.5, 9.5, 10.0)
    hand = 8.5 / math.sqrt(95.0)
    result = spearman(x, y)
    assert result.rho == pytest.approx(hand, rel=1e-14)
    assert (result.n, result.dropped) == (5, 0)
    # Another route: +∞ replaced by a finite value above every other one ranks the same.
    assert result.rho == pytest.approx(spearmanr(np.where(np.isinf(x), 1e300, x), y).statistic, rel=1e-14)


def test_spearman_drops_and_counts_nan_rows():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 3.0, np.nan, 5.0, 4.0])
    result = spearman(x, y)
    assert (result.n, result.dropped) == (4, 2)
    assert result.rho == pytest.approx(spearmanr([1, 2, 5, 6], [2, 1, 5, 4]).statistic, rel=1e-14)


@pytest.mark.parametrize("x, y, match", [
    ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], "constant"),
    ([np.inf] * 4, [1.0, 2.0, 3.0, 4.0], "all \\+inf"),
    ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0], "at least 3"),
])
def test_spearman_undefined_raises_never_nan(x, y, match):
    with pytest.raises(UndefinedCorrelationError, match=match):
        spearman(x, y)


def test_invalid_inputs_raise():
    with pytest.raises(RankingError, match="-inf"):
        spearman([1.0, -np.inf, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(RankingError, match="direction"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], direction=2)
    with pytest.raises(RankingError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(RankingError, match="positive"):
        correlation(pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [1.0, 3, 2, 4]}), "x", "y", resamples=0)
    with pytest.raises(UndefinedCorrelationError, match="not in the frame"):
        correlation(pd.DataFrame({"x": [1.0, 2, 3]}), "x", "y")


# ---------------------------------------------------------------------------------------------- bootstrap
def test_percentile_interval_order_statistics_and_undefined_resamples():
    values = np.arange(1.0, 40.0)  # B = 39: k = ⌊40·0.025⌋ = 1 → the extremes
    assert percentile_interval(values, 0.025) == (1.0, 39.0)
    assert percentile_interval(np.arange(1.0, 400.0), 0.025) == (10.0, 390.0)  # k = 10
    with_nan = np.append(np.arange(1.0, 399.0), np.nan)  # an undefined resample widens both ends
    assert percentile_interval(with_nan, 0.025) == (9.0, 390.0)
    assert percentile_interval(np.arange(5.0), 0.025) == (-math.inf, math.inf)  # too few resamples


def test_undefined_resamples_are_counted():
    # x is tied except for member 9: a resample without member 9 has a constant x and no correlation.
    x = np.zeros(10)
    x[9] = 1.0
    y = np.arange(10.0)
    frame = pd.DataFrame({"x": x, "y": y})
    result = correlation(frame, "x", "y", seed=3, resamples=500)
    index = _resamples(3, 10, 500)
    expected = int(np.sum(~np.any(index == 9, axis=1)))
    assert expected > 0 and result.undefined == expected
    assert result.lower == -math.inf  # more than α of 500 undefined resamples: the interval cannot close


def test_bootstrap_coverage_bivariate_normal():
    """Percentile intervals cover the population Spearman ρ_s = (6/π) arcsin(ρ/2) of a bivariate normal at about
    their nominal 95 %: coverage over R independent populations within 3 binomial standard errors."""
    rho, n, reps, b = 0.6, 60, 300, 400
    truth = 6.0 / math.pi * math.asin(rho / 2.0)
    rng = np.random.default_rng(20261207)
    cov = [[1.0, rho], [rho, 1.0]]
    hits = 0
    for r in range(reps):
        z = rng.multivariate_normal([0.0, 0.0], cov, size=n)
        c = correlation(pd.DataFrame({"x": z[:, 0], "y": z[:, 1]}), "x", "y", seed=r, resamples=b)
        hits += c.lower <= truth <= c.upper
    nominal = 1.0 - 2.0 * ALPHA
    se = math.sqrt(nominal * (1.0 - nominal) / reps)
    assert abs(hits / reps - nominal) <= 3.0 * se, (hits / reps, nominal, se)


def _frame(seed=0, n=40):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(size=n)
    return pd.DataFrame({"setting": [f"m{i}" for i in range(n)], "y": y, "exact": y ** 2,
                         "noisy": np.log(y) + 1.5 * rng.normal(size=n), "inverse": 1.0 / y + 0.1 * rng.random(n),
                         "noise": rng.normal(size=n)})


def test_same_seed_same_intervals_other_seed_other_intervals():
    frame = _frame()
    dirs = {"exact": 1, "noisy": 1, "inverse": -1, "noise": 1}
    a = best_predictor(frame, "y", dirs, seed=11, resamples=300)
    b = best_predictor(frame, "y", dirs, seed=11, resamples=300)
    c = best_predictor(frame, "y", dirs, seed=12, resamples=300)
    assert a == b
    assert [x.lower for x in a.correlations] != [x.lower for x in c.correlations]
    assert [x.rho for x in a.correlations] == [x.rho for x in c.correlations]


def test_direction_signs_correlation_so_larger_is_better():
    frame = _frame()
    inverse = correlation(frame, "inverse", "y", -1, resamples=200)
    assert inverse.rho > 0.9 and inverse.lower > 0
    assert correlation(frame, "inverse", "y", 1, resamples=200).rho == pytest.approx(-inverse.rho)


def test_paired_difference_uses_the_same_resamples():
    frame = _frame()
    dirs = {"exact": 1, "noisy": 1}
    same = compare(frame, "noisy", "noisy", "y", dirs, resamples=300)
    assert (same.difference, same.lower, same.upper) == (0.0, 0.0, 0.0)
    diff = compare(frame, "exact", "noisy", "y", dirs, resamples=300)
    assert diff.difference == pytest.approx(spearman(frame["exact"], frame["y"]).rho
                                            - spearman(frame["noisy"], frame["y"]).rho, rel=1e-12)
    assert diff.lower <= diff.difference <= diff.upper


def test_best_predictor_orders_and_lists_undefined_last():
    frame = _frame().assign(flat=np.inf)
    dirs = {"noise": 1, "flat": 1, "noisy": 1, "exact": 1, "inverse": -1}
    ranking = best_predictor(frame, "y", dirs, resamples=200)
    names = [c.predictor for c in ranking.correlations]
    assert names[0] in ("exact", "inverse") and names[-1] == "flat"
    assert not ranking.by_name()["flat"].defined and "constant" in ranking.by_name()["flat"].reason
    assert {c.other for c in ranking.comparisons} == set(names[1:-1])
    assert all(c.level == pytest.approx(bonferroni_level(3)) for c in ranking.comparisons)


# ---------------------------------------------------------------------------------------------- the decision
DIRS = {"exact": 1, "noisy": 1, "noise": 1}


def test_decision_holds():
    d = decide_best(_frame(n=60), "y", "exact", DIRS, resamples=400)
    assert d.direction == 1 and all(c.lower > 0 for c in d.comparisons)
    assert d.level == pytest.approx(1 - 2 * ALPHA / 2)


def test_decision_fails():
    d = decide_best(_frame(n=60), "y", "noise", DIRS, resamples=400)
    assert d.direction == -1 and any(c.upper < 0 for c in d.comparisons)


def test_decision_inconclusive_for_a_tie():
    frame = _frame().assign(twin=lambda f: f["exact"])
    d = decide_best(frame, "y", "exact", {"exact": 1, "twin": 1, "noise": 1}, resamples=400)
    assert d.direction == 0
    assert "twin" in d.needs


def test_decision_inconclusive_for_close_noisy_predictors():
    rng = np.random.default_rng(4)
    y = rng.normal(size=15)
    frame = pd.DataFrame({"y": y, "a": y + rng.normal(size=15), "b": y + rng.normal(size=15)})
    d = decide_best(frame, "y", "a", {"a": 1, "b": 1}, resamples=400)
    (c,) = d.comparisons
    assert d.direction == 0 and c.lower < 0 < c.upper


def test_decision_with_infinite_predictor_values():
    # The worst members have an infinite predictor: tied at the top, the ranking is still perfect up to the tie.
    frame = _frame(n=60)
    worst = frame["y"] >= frame["y"].quantile(0.8)
    frame["capped"] = np.where(worst, np.inf, frame["y"])
    d = decide_best(frame, "y", "capped", {"capped": 1, "noisy": 1, "noise": 1}, resamples=400)
    assert d.direction == 1
    assert d.ranking.by_name()["capped"].rho > 0.95


@pytest.mark.parametrize("make, why", [
    (lambda f: f.assign(exact=np.inf), "undefined"),
    (lambda f: f.assign(exact=np.nan), "at least 3"),
    (lambda f: f.assign(noisy=1.0, noise=np.nan), "no other predictor"),
])
def test_decision_not_applicable(make, why):
    d = decide_best(make(_frame()), "y", "exact", DIRS, resamples=200)
    assert d.direction is None and not d.applicable and why in d.reason


def test_decision_numbers_hold_no_nan():
    d = decide_best(_frame().assign(noise=np.nan), "y", "exact", DIRS, resamples=200)
    numbers = d.numbers()
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in numbers.values())
    assert any("undefined" in str(v) for v in numbers.values())


def test_unknown_predictor_raises():
    with pytest.raises(RankingError, match="not among"):
        decide_best(_frame(), "y", "absent", DIRS)


# ---------------------------------------------------------------------------------------------- disagreements
def test_disagreements_find_the_swapped_members():
    n = 10
    base = np.arange(n, dtype=float)
    q = base.copy()
    q[[0, 9]] = q[[9, 0]]  # members 0 and 9 swap ends
    frame = pd.DataFrame({"setting": [f"m{i}" for i in range(n)], "p": base, "q": -q, "y": base})
    out = disagreements(frame, "p", "q", 2, directions={"p": 1, "q": -1}, outcome="y")
    assert set(out["setting"]) == {"m0", "m9"}
    assert np.allclose(np.abs(out["rank_difference"]), 1.0)
    assert list(out.columns[-2:]) == ["y", "rank_y"]


def test_disagreements_rank_infinity_at_the_top():
    frame = pd.DataFrame({"setting": list("abcd"), "p": [1.0, np.inf, 2.0, np.nan], "q": [3.0, 1.0, 2.0, 4.0]})
    out = disagreements(frame, "p", "q", 3)
    ranks = dict(zip(out["setting"], out["rank_p"]))
    assert ranks["b"] == 1.0 and "d" not in ranks  # NaN member dropped


# ---------------------------------------------------------------------------------------------- strata
def test_one_stratum_equals_the_pooled_version_exactly():
    frame = _frame().assign(dim=4)
    dirs = {"exact": 1, "noisy": 1, "inverse": -1, "noise": 1}
    assert np.array_equal(stratified_resamples(5, np.full(40, 4), 300), _resamples(5, 40, 300))
    s = stratified_spearman(frame["noisy"], frame["y"], frame["dim"], -1)
    assert s.rho == spearman(frame["noisy"], frame["y"], -1).rho and (s.n, s.dropped) == (40, 0)
    for name, d in dirs.items():
        pooled = correlation(frame, name, "y", d, seed=5, resamples=300)
        within = correlation(frame, name, "y", d, seed=5, resamples=300, strata="dim")
        assert (within.rho, within.lower, within.upper, within.n, within.undefined) == (
            pooled.rho, pooled.lower, pooled.upper, pooled.n, pooled.undefined)
        assert within.strata == "dim" and [s.label for s in within.per_stratum] == ["4"] and not within.excluded
    a = compare(frame, "exact", "noisy", "y", dirs, seed=5, resamples=300)
    b = compare(frame, "exact", "noisy", "y", dirs, seed=5, resamples=300, strata="dim")
    assert (a.difference, a.lower, a.upper, a.n) == (b.difference, b.lower, b.upper, b.n)
    pooled = decide_best(frame, "y", "exact", DIRS, seed=2, resamples=300)
    within = decide_best(frame, "y", "exact", DIRS, seed=2, resamples=300, strata="dim")
    assert pooled.direction == within.direction
    assert [(c.other, c.difference, c.lower, c.upper) for c in pooled.comparisons] == [
        (c.other, c.difference, c.lower, c.upper) for c in within.comparisons]


def _shifted():
    """Stratum a: x = 1, 2, 3 against y = 3, 2, 1 (ρ = −1); stratum b: x = 11..14 against y = 12, 14, 11, 13
    (ranks 2, 4, 1, 3: Σd² = 10, ρ = 1 − 6·10/(4·15) = 0); b lies above a in both, so the pooled ρ is high."""
    return pd.DataFrame({"s": ["a"] * 3 + ["b"] * 4, "x": [1.0, 2, 3, 11, 12, 13, 14],
                         "y": [3.0, 2, 1, 12, 14, 11, 13]})


def test_stratified_spearman_by_hand_where_the_pooled_one_is_a_shift():
    frame = _shifted()
    # Pooled: x ranks 1..7, y ranks 3, 2, 1, 5, 7, 4, 6: Σd² = 8 + 10 = 18, ρ = 1 − 6·18/(7·48) = 19/28.
    assert spearman(frame["x"], frame["y"]).rho == pytest.approx(19 / 28, rel=1e-14)
    s = stratified_spearman(frame["x"], frame["y"], frame["s"])
    assert s.rho == pytest.approx((3 * -1.0 + 4 * 0.0) / 7, rel=1e-14, abs=1e-15)  # −3/7
    assert [(t.label, t.n) for t in s.strata] == [("a", 3), ("b", 4)]
    assert s.strata[0].rho == pytest.approx(-1.0) and s.strata[1].rho == pytest.approx(0.0, abs=1e-15)
    # A third stratum of two members (and one with a NaN leaving two) is excluded and counted, never a NaN.
    extra = pd.concat([frame, pd.DataFrame({"s": ["c", "c", "d", "d", "d"], "x": [30.0, 31, 40, 41, np.nan],
                                            "y": [30.0, 31, 40, 41, 42]})], ignore_index=True)
    s = stratified_spearman(extra["x"], extra["y"], extra["s"])
    assert s.rho == pytest.approx(-3 / 7, rel=1e-14) and (s.n, s.dropped) == (7, 1)
    assert [(e.label, e.n) for e in s.excluded] == [("c", 2), ("d", 2)] and "fewer than 3" in s.excluded[0].reason
    c = correlation(extra, "x", "y", strata="s", resamples=400)
    assert c.rho == pytest.approx(-3 / 7, rel=1e-14) and c.n == 7 and len(c.excluded) == 2
    assert correlation(extra, "x", "y", resamples=400).rho > 0.9  # the pooled one rewards the shift
    # A constant stratum is excluded with its reason; no defined stratum at all → undefined, never NaN.
    flat = frame.assign(x=np.where(frame["s"] == "a", np.inf, frame["x"]))
    s = stratified_spearman(flat["x"], flat["y"], flat["s"])
    assert s.rho == pytest.approx(0.0, abs=1e-15) and "constant" in s.excluded[0].reason
    with pytest.raises(UndefinedCorrelationError, match="no stratum"):
        stratified_spearman(extra["x"][7:], extra["y"][7:], extra["s"][7:])
    none = correlation(extra.iloc[7:], "x", "y", strata="s")
    assert none.rho is None and "fewer than 3" in none.reason


def test_stratified_difference_and_decision_see_the_within_ranking():
    """q ranks y perfectly within each stratum but knows nothing of the shift; p only knows the shift."""
    rng = np.random.default_rng(0)
    n = 40
    s = np.repeat([2, 8], n // 2)
    y = rng.normal(size=n) + 10 * (s == 8)
    frame = pd.DataFrame({"s": s, "y": y, "p": s + 1e-3 * rng.normal(size=n), "q": y - 10 * (s == 8)})
    dirs = {"p": 1, "q": 1}
    assert decide_best(frame, "y", "p", dirs, resamples=400).direction in (0, 1)  # pooled: the shift alone helps p
    within = decide_best(frame, "y", "p", dirs, resamples=400, strata="s")
    assert within.direction == -1 and within.ranking.by_name()["q"].rho == pytest.approx(1.0)
    (c,) = within.comparisons
    expected = stratified_spearman(frame["p"], frame["y"], frame["s"]).rho - 1.0
    assert c.difference == pytest.approx(expected, rel=1e-12) and c.upper < 0
    assert all("within s" in k for k in within.numbers() if k.startswith("ρ("))


def test_stratified_bootstrap_keeps_each_stratums_count_and_is_seeded():
    labels = np.array([2, 8, 2, 4, 8, 8, 2, 4, 4, 4])
    index = stratified_resamples(7, labels, 500)
    assert index.shape == (500, 10)
    assert np.array_equal(labels[index], np.broadcast_to(labels, index.shape))  # same stratum, column by column
    for b in range(500):
        assert sorted(labels[index[b]]) == sorted(labels)
    assert np.array_equal(index, stratified_resamples(7, labels, 500))
    assert not np.array_equal(index, stratified_resamples(8, labels, 500))
    frame = _frame(n=60).assign(dim=np.tile([2, 4, 8], 20))
    a = correlation(frame, "noisy", "y", seed=1, resamples=300, strata="dim")
    assert a == correlation(frame, "noisy", "y", seed=1, resamples=300, strata="dim")
    b = correlation(frame, "noisy", "y", seed=2, resamples=300, strata="dim")
    assert a.rho == b.rho and (a.lower, a.upper) != (b.lower, b.upper)
    assert math.isfinite(a.lower) and a.lower < a.rho < a.upper


def test_stratified_undefined_resamples_are_counted():
    # Stratum 0: x tied except its member 4; a resample of stratum 0 without that member is undefined as a whole.
    labels = np.repeat([0, 1], 5)
    x = np.array([0.0, 0, 0, 0, 1, 1, 2, 3, 4, 5])
    y = np.arange(10.0)
    frame = pd.DataFrame({"s": labels, "x": x, "y": y})
    result = correlation(frame, "x", "y", seed=3, resamples=500, strata="s")
    index = stratified_resamples(3, labels, 500)
    # ... or a stratum drew one member five times (member 4 alone in stratum 0, any in stratum 1: constant).
    expected = int(np.sum(~np.any(index[:, :5] == 4, axis=1) | np.all(index[:, :5] == index[:, :1], axis=1)
                          | np.all(index[:, 5:] == index[:, 5:6], axis=1)))
    assert expected > 0 and result.undefined == expected


def test_strata_invalid_inputs_raise():
    frame = _shifted()
    with pytest.raises(RankingError, match="strata column"):
        correlation(frame, "x", "y", strata="dim")
    with pytest.raises(RankingError, match="missing"):
        correlation(frame.assign(s=[None, "a", "a", "b", "b", "b", "b"]), "x", "y", strata="s")
    with pytest.raises(RankingError, match="same length"):
        stratified_spearman([1.0, 2, 3], [1.0, 2, 3], ["a", "a"])
    with pytest.raises(RankingError, match="positive"):
        stratified_resamples(0, ["a", "a", "a"], 0)


def test_stratified_context_reports_runner_up_and_paired_interval_without_nan():
    frame = _frame(n=60).assign(dim=np.tile([2, 4, 8], 20))
    out = stratified_context(frame, "y", "noisy", {"exact": 1, "noisy": 1, "noise": 1}, "dim", label="dimension",
                             resamples=300)
    keys = list(out)
    assert keys[0].startswith("ρ(noisy) within dimension") and "not judged" in keys[0]
    assert out[keys[1]].startswith("exact:")  # the best other measure
    assert keys[2].startswith("ρ(noisy) − ρ(exact) within dimension") and f"{100 * bonferroni_level(2):.4g}" in keys[2]
    assert "dim = 2" in out[keys[0]] and "dim = 8" in out[keys[2]]
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in out.values())
