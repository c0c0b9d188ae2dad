"""The one helper that decides findings from noisy numbers (verify.analysis.stats), against scipy's own tests and
by simulation: the stated false-alarm rate is what a t margin delivers from a few runs, and a normal margin is not."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from verify.analysis.stats import (
    ALPHA,
    Estimate,
    mean_of_runs,
    paired,
    resolve,
    resolve_below,
    runs_to_resolve,
    t_quantile,
    welch,
)
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, Outcome, combine


def test_welch_matches_scipys_welch_test():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1.0, 5), rng.normal(0.0, 2.0, 7)
    d = welch(mean_of_runs(a), mean_of_runs(b))
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert d.mean / d.se == pytest.approx(ref.statistic, rel=1e-12)
    assert 2 * sps.t.sf(abs(d.mean / d.se), d.dof) == pytest.approx(ref.pvalue, rel=1e-10)


def test_paired_matches_scipys_paired_test():
    rng = np.random.default_rng(2)
    a = rng.normal(size=6)
    b = a + rng.normal(0.1, 0.2, 6)
    d = paired(a, b)
    assert d.mean / d.se == pytest.approx(sps.ttest_rel(a, b).statistic, rel=1e-12) and d.dof == 5


def test_the_t_margin_keeps_the_stated_false_alarm_rate_with_three_runs():
    """Under the null, resolve() says +1 with probability α (binomial SE over 20 000 trials); the normal quantile
    would say it about 3× as often with three runs."""
    rng = np.random.default_rng(0)
    runs = rng.normal(size=(20_000, 3))
    hits = np.mean([resolve(mean_of_runs(r)) == 1 for r in runs])
    se = math.sqrt(ALPHA * (1 - ALPHA) / len(runs))
    assert abs(hits - ALPHA) < 4 * se
    z_rate = np.mean(runs.mean(1) / (runs.std(1, ddof=1) / math.sqrt(3)) > t_quantile(math.inf))
    assert z_rate > ALPHA + 10 * se


def test_resolution_directions_and_exact_numbers():
    assert resolve(Estimate(1.0, 0.1, 4)) == 1 and resolve(Estimate(-1.0, 0.1, 4)) == -1
    assert resolve(Estimate(0.1, 0.1, 4)) == 0
    assert resolve(Estimate(1e-12, 0.0, math.inf)) == 1  # an exact difference is resolved by its sign
    assert resolve_below(Estimate(0.5, 0.1, 9), 1.0) == 1 and resolve_below(Estimate(1.5, 0.1, 9), 1.0) == -1
    n = runs_to_resolve(Estimate(0.1, 0.1, 2), 3)
    assert n == math.ceil(3 * (t_quantile(math.inf) * 0.1 / 0.1) ** 2)
    assert runs_to_resolve(Estimate(0.0, 0.1, 2), 3) is None


@pytest.mark.parametrize("bad", [[1.0], [1.0, float("nan")]])
def test_a_standard_error_needs_two_finite_runs(bad):
    with pytest.raises(ValueError, match="at least two finite runs"):
        mean_of_runs(bad)


def test_outcomes_resolve_and_combine():
    assert Outcome.resolve(1, {}).status == HOLDS and Outcome.resolve(-1, {}).status == FAILS
    inc = Outcome.resolve(0, {"d": 0.1}, "x", judged=("A",), needs="about 12 runs")
    assert inc.status == INCONCLUSIVE and "about 12 runs" in inc.note and inc.judged == ("A",)
    ok = Outcome.decide(True, {"a": 1.0}, judged=("B",))
    assert combine([ok, inc]).status == INCONCLUSIVE and combine([ok, inc]).judged == ("B", "A")
    assert combine([ok, Outcome.decide(False, {})]).status == FAILS
    assert combine([ok]).status == HOLDS
    assert combine([Outcome.not_applicable("nothing")]).status == NOT_APPLICABLE
    with pytest.raises(ValueError, match="NaN"):
        Outcome(HOLDS, {"x": float("nan")})
