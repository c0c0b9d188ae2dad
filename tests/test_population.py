"""The population generator (closed_form.population) and each predictor and outcome of
verify.analysis.population.member_row, against independent computations."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import multivariate_normal

from closed_form import (
    FAMILY_NAMES,
    GAUSSIAN_SETTING_NAMES,
    CatcompError,
    Gaussian,
    PopulationRejectionError,
    PopulationSpec,
    VPSchedule,
    compose,
    euler_maruyama_law,
    family_configs,
    kl,
    named_members,
    paper_setting,
    population_member,
    random_population,
)
from closed_form.errors import InvalidWeightsError, NotGaussianSettingError
from closed_form.population import FAMILY_INDICES, draw_sources, member_kind, member_rng, wishart_bartlett
from theory.amplification import (
    amplification,
    calibrate,
    eigenspace_range,
    perturbed_sources_checked,
    target_kl,
    training_error_sq,
)
from verify.analysis.population import (
    OUTCOMES,
    PREDICTORS,
    direction_rng,
    member_row,
    naive_inference_kl,
    random_directions,
)
from verify.analysis.stats import t_quantile
from verify.experiments.ress_families import RESS_DELTA_SD_MAX, delta_method_sd, fourth_moment_finite

SCHEDULE = VPSchedule()
#: A population with many improper draws (an equally sharp base, anisotropic sources, d = 4): the accounting has
#: something to count.
HARSH = PopulationSpec(dims=(2, 4), n_per_dim=6, covariance_dof=2.0, base_scale=1.0, seed=3)
#: Two-sided normal quantile for the Monte Carlo checks (each fails with probability 1e-4 when the code is right).
Z = float(stats.norm.isf(0.5e-4))


def _arrays(member):
    return [(np.asarray(s.mean), np.asarray(s.cov)) for s in member.setting.sources]


def _proper_by_cholesky(draw, weights) -> bool:
    """Independent test of properness: Cholesky of Σ_i w_i Σ_i⁻¹ (solve, not inv) succeeds."""
    d = draw[0][0].shape[0]
    lam = sum(w * np.linalg.solve(c, np.eye(d)) for w, (_, c) in zip(weights, draw))
    try:
        np.linalg.cholesky(0.5 * (lam + lam.T))
        return True
    except np.linalg.LinAlgError:
        return False


# ------------------------------------------------------------------------------------------------ the generator
def test_same_seed_same_members_and_each_member_alone():
    a, b = random_population(HARSH), random_population(HARSH)
    other = random_population(PopulationSpec(**{**HARSH.__dict__, "seed": 4}))
    assert [m.setting.name for m in a.members] == [f"pop_d{d}_{i:03d}" for d in (2, 4) for i in range(6)]
    for ma, mb, mo in zip(a.members, b.members, other.members):
        for (m1, c1), (m2, c2) in zip(_arrays(ma), _arrays(mb)):
            np.testing.assert_array_equal(m1, m2)
            np.testing.assert_array_equal(c1, c2)
        assert ma.rejected == mb.rejected
        assert not np.array_equal(_arrays(ma)[0][0], _arrays(mo)[0][0])
    alone = population_member(HARSH, 4, 5)
    for (m1, c1), (m2, c2) in zip(_arrays(alone), _arrays(a.members[-1])):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(c1, c2)


def test_rejections_replayed_from_the_stream():
    pop = random_population(HARSH)
    assert pop.rejected > 0  # the harsh spec rejects draws, so the count is exercised
    for m in pop.members:
        rng = member_rng(HARSH, m.dim, m.index)
        improper = 0
        while True:
            draw = draw_sources(rng, HARSH, m.dim)
            if _proper_by_cholesky(draw, m.weights):
                break
            improper += 1
        assert improper == m.rejected
        for (mean, cov), (m_mem, c_mem) in zip(draw, _arrays(m)):
            np.testing.assert_allclose(m_mem, mean, rtol=0, atol=0)
            np.testing.assert_allclose(c_mem, cov, rtol=1e-15, atol=0)
    frame = pop.to_frame()
    assert frame["rejected"].sum() == pop.rejected == sum(m.rejected for m in pop.members)
    assert frame["draws"].sum() == pop.draws == len(pop.members) + pop.rejected
    for row in frame.itertuples():
        part = [m for m in pop.members if m.dim == row.dim and row.weights == "(" + ", ".join(
            f"{w:g}" for w in m.weights) + ")"]
        assert row.members == len(part) and row.rejected == sum(m.rejected for m in part)
        assert row.rejection_rate == pytest.approx(row.rejected / row.draws, rel=1e-15)


def test_accepted_members_are_proper_and_weights_cycle():
    pop = random_population(PopulationSpec(dims=(2, 3, 8), n_per_dim=9, seed=11))
    for m in pop.members:
        assert m.weights == pop.spec.weights[m.index % len(pop.spec.weights)]
        assert m.setting.weights == m.weights
        assert m.setting.labels == ("P_1", "P_2", "P_0")
        assert _proper_by_cholesky(_arrays(m), m.weights)
        assert np.linalg.eigvalsh(np.asarray(m.setting.composition.target.cov))[0] > 0


def test_too_many_improper_draws_raise_with_advice():
    # A base 1000 times sharper than the conditionals: Σ w_i Σ_i⁻¹ with w_0 = −1 is never positive definite.
    spec = PopulationSpec(dims=(3,), n_per_dim=1, base_scale=1e-3, max_tries=5)
    with pytest.raises(PopulationRejectionError, match="max_tries") as err:
        population_member(spec, 3, 0)
    assert err.value.tries == 5 and err.value.dim == 3
    with pytest.raises(PopulationRejectionError):
        random_population(spec)


def test_wishart_draws_have_the_stated_moments():
    # E W = ν I and Var W_jj = 2ν for W ~ Wishart(ν, I); Monte Carlo with its standard error.
    rng = np.random.default_rng(5)
    nu, d, n = 6.5, 3, 20_000
    w = np.stack([wishart_bartlett(rng, nu, d) for _ in range(n)])
    mean, se = w.mean(0), w.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(mean - nu * np.eye(d)) <= Z * se)
    var = w[:, 0, 0].var(ddof=1)
    # the sample variance's SE from the fourth central moment (W_00 ~ χ²_ν: μ₄ = 12ν(ν + 4))
    var_se = math.sqrt((12 * nu * (nu + 4) - (2 * nu) ** 2) / n)
    assert abs(var - 2 * nu) <= Z * var_se


bad_int = st.one_of(st.integers(max_value=-1), st.just(True), st.floats(allow_nan=True), st.text(max_size=2))


@given(st.one_of(st.just(()), st.lists(st.integers(max_value=0), min_size=1, max_size=3), st.just((2, 2)),
                 st.just((True,)), st.just("24")))
def test_invalid_dims_raise(dims):
    with pytest.raises(CatcompError, match="dims"):
        PopulationSpec(dims=dims)


@given(bad_int)
def test_invalid_counts_raise(value):
    for name in ("n_per_dim", "seed"):
        with pytest.raises(CatcompError, match=name):
            PopulationSpec(**{name: value})
    with pytest.raises(CatcompError, match="max_tries"):
        PopulationSpec(max_tries=0 if isinstance(value, int) and not isinstance(value, bool) else value)


@given(st.one_of(
    st.lists(st.floats(-3, 3), min_size=0, max_size=5).filter(lambda w: len(w) != 3).map(lambda w: (tuple(w),)),
    st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.sampled_from([math.nan, math.inf, -math.inf])).map(
        lambda w: (w,)),
    st.tuples(st.floats(-3, 0), st.floats(-3, 0), st.floats(-3, 0)).map(lambda w: (w,)),
    st.just(())))
def test_invalid_weights_raise(weights):
    with pytest.raises(InvalidWeightsError):
        PopulationSpec(weights=weights)


@given(st.sampled_from(["covariance_dof", "scale_sd", "mean_sd", "base_scale"]),
       st.one_of(st.floats(max_value=-1e-9), st.sampled_from([math.nan, math.inf]), st.just("1")))
def test_invalid_spreads_raise(name, value):
    with pytest.raises(CatcompError, match=name):
        PopulationSpec(**{name: value})


def test_member_arguments_are_checked():
    spec = PopulationSpec(n_per_dim=2)
    for dim, index in ((3, 0), (2, 2), (2, -1), (2, 1.0)):
        with pytest.raises(CatcompError, match="dim|index"):
            population_member(spec, dim, index)
    with pytest.raises(CatcompError, match="size"):
        named_members("huge")


def test_named_members_hold_the_paper_settings_and_families():
    for size in ("quick", "default", "paper"):
        members = named_members(size)
        assert len(members) == 4 + len(FAMILY_NAMES) * len(FAMILY_INDICES[size])
        for name, s in zip(GAUSSIAN_SETTING_NAMES, members[:4]):
            assert s is paper_setting(name) and member_kind(s) == "paper"
        fam = members[4:]
        assert len({s.name for s in fam}) == len(fam)
        k = 0
        for family in FAMILY_NAMES:
            configs = family_configs(family)
            for i in FAMILY_INDICES[size]:
                s = fam[k]
                assert s.name == f"family-{family}-{i:02d}" and s.weights == (1.0, 1.0, -1.0)
                assert member_kind(s) == "family"
                for a, b in zip(s.sources, configs[i].sources):
                    np.testing.assert_array_equal(np.asarray(a.mean), np.asarray(b.mean))
                    np.testing.assert_array_equal(np.asarray(a.cov), np.asarray(b.cov))
                k += 1


# ------------------------------------------------------------------------------------------- predictors, outcomes
N_MC, N_DRAWS, N_DIR = 4000, 12, 16


@pytest.fixture(scope="module")
def rows():
    """member_row of a few d = 2 members: two random ones (weights (1, 1, −1) and (1, 1, −0.5)) and NFC_OOD (a
    double top eigenspace)."""
    spec = PopulationSpec(dims=(2,), n_per_dim=2, seed=1)
    settings = [population_member(spec, 2, 0).setting, population_member(spec, 2, 1).setting,
                paper_setting("NFC_OOD")]
    return {s.name: (s, member_row(s, n_directions=N_DIR, n_mc=N_MC, n_mc_draws=N_DRAWS, seed=7))
            for s in settings}


def test_row_has_every_column(rows):
    for setting, row in rows.values():
        for col in (*PREDICTORS, *OUTCOMES, "kl_mean_se", "authors_metric_se", "n_directions_valid",
                    "n_directions_improper", "n_directions_outside_pd", "kl_worst_flag", "kl_mean_flag"):
            assert col in row
        assert row["kind"] == ("paper" if setting.name == "NFC_OOD" else "random")
        assert row["dim"] == 2 and row["weights"].startswith("(")
        for col in (*PREDICTORS, *OUTCOMES):
            assert not math.isnan(row[col]) or row.get(f"{col}_flag")
    assert {p.direction for p in PREDICTORS.values()} == {1, -1}
    assert PREDICTORS["crossover_eps"].direction == -1


def _gauss_hermite_expectation(q: Gaussian, f, n=80):
    """E_Q f by a tensor Gauss–Hermite rule in d = 2 (x = m + L·√2·u)."""
    u, w = np.polynomial.hermite.hermgauss(n)
    uu = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    ww = np.outer(w, w).ravel() / math.pi
    x = np.asarray(q.mean) + math.sqrt(2.0) * uu @ np.linalg.cholesky(np.asarray(q.cov)).T
    return float(np.sum(ww * f(x)))


def test_log1p_chi2_by_quadrature(rows):
    for setting, row in rows.values():
        q = setting.composition.target
        qd = multivariate_normal(np.asarray(q.mean), np.asarray(q.cov))
        values = []
        for w, p in zip(setting.weights, setting.sources):
            if w == 0:
                continue
            m = 2 * np.linalg.inv(np.asarray(q.cov)) - np.linalg.inv(np.asarray(p.cov))
            if np.linalg.eigvalsh(m)[0] <= 0:
                values.append(math.inf)  # E_P (dQ/dP)² diverges
                continue
            pd_ = multivariate_normal(np.asarray(p.mean), np.asarray(p.cov))
            values.append(math.log(_gauss_hermite_expectation(q, lambda x: np.exp(qd.logpdf(x) - pd_.logpdf(x)))))
        assert row["log1p_chi2_max"] == pytest.approx(max(values), rel=1e-8)
        assert row["log1p_chi2_mean"] == pytest.approx(np.mean(values), rel=1e-8)
        assert row["n_sources_infinite_chi2"] == int(np.sum(np.isinf(values)))


def test_outside_hdr_by_monte_carlo(rows):
    rng = np.random.default_rng(2)
    n = 200_000
    for setting, row in rows.values():
        q = setting.composition.target
        x = rng.multivariate_normal(np.asarray(q.mean), np.asarray(q.cov), size=n)
        fractions = []
        for w, p in zip(setting.weights, setting.sources):
            if w == 0:
                continue
            z = x - np.asarray(p.mean)
            maha = np.einsum("ni,ij,nj->n", z, np.linalg.inv(np.asarray(p.cov)), z)
            fractions.append(np.mean(maha > stats.chi2.ppf(0.95, 2)))
        j = int(np.argmax(fractions))
        se = math.sqrt(fractions[j] * (1 - fractions[j]) / n)
        assert abs(row["outside_hdr_max"] - fractions[j]) <= Z * se + 1e-12


def _kl_exact(setting, delta):
    """KL(Q‖Q̂) by closed_form.kl of the composed misspecified sources (not the amplification's trace form)."""
    fitted = perturbed_sources_checked(setting.sources, delta)
    return float(kl(setting.composition.target, compose(fitted, setting.weights).target))


def _extrapolated_ratio(setting, direction, eps):
    """KL/ε² along ``direction`` at ε and ε/2, Richardson-extrapolated to ε → 0 (error O(ε²))."""
    r = [_kl_exact(setting, calibrate(setting.composition, SCHEDULE, e, direction)) / e**2 for e in (eps, eps / 2)]
    return 2 * r[1] - r[0]


def test_lambda_max_bounds_the_ratio_and_is_attained(rows):
    setting, row = rows["pop_d2_000"]
    amp = amplification(setting.composition, SCHEDULE)
    assert row["lambda_max"] == amp.value
    eps = 2e-4
    top = _extrapolated_ratio(setting, amp.direction, eps)
    assert top == pytest.approx(amp.value, rel=1e-4)
    for direction in random_directions(amp, 6, np.random.default_rng(0)):
        assert _extrapolated_ratio(setting, direction, eps) <= amp.value * (1 + 1e-4)


def test_worst_case_dominates_random_directions_and_tends_to_lambda_eps2(rows):
    setting, row = rows["pop_d2_001"]
    comp = setting.composition
    amp = amplification(comp, SCHEDULE)
    eps = 2e-4
    worst = eigenspace_range(comp, SCHEDULE, eps, amp).kl_max
    half = eigenspace_range(comp, SCHEDULE, eps / 2, amp).kl_max
    assert 2 * half / (eps / 2) ** 2 - worst / eps**2 == pytest.approx(amp.value, rel=1e-4)
    for direction in random_directions(amp, 6, np.random.default_rng(1)):
        assert _kl_exact(setting, calibrate(comp, SCHEDULE, eps, direction)) <= worst
    # at the row's ε: the row's worst case (both signs of a simple top eigendirection, calibrated in the random
    # directions' batch) is eigenspace_range's, and dominates the row's own random directions
    assert row["multiplicity"] == 1
    assert row["kl_worst"] == pytest.approx(eigenspace_range(comp, SCHEDULE, row["eps"], amp).kl_max, rel=1e-9)
    for direction in random_directions(amp, N_DIR, direction_rng(7, setting.name)):
        assert _kl_exact(setting, calibrate(comp, SCHEDULE, row["eps"], direction)) <= row["kl_worst"]


def test_kl_mean_against_a_loop_over_directions(rows):
    for setting, row in rows.values():
        comp = setting.composition
        amp = amplification(comp, SCHEDULE)
        values = []
        for direction in random_directions(amp, N_DIR, direction_rng(7, setting.name)):
            delta = calibrate(comp, SCHEDULE, row["eps"], direction)
            assert float(training_error_sq(comp, SCHEDULE, delta)) == pytest.approx(row["eps"] ** 2, rel=1e-10)
            values.append(float(target_kl(comp, SCHEDULE, delta)))
        assert row["n_directions_valid"] == N_DIR and row["n_directions_improper"] == 0
        assert row["kl_mean"] == pytest.approx(np.mean(values), rel=1e-9)
        assert row["kl_mean_se"] == pytest.approx(np.std(values, ddof=1) / math.sqrt(N_DIR), rel=1e-6)


def test_naive_kl_is_the_limit_of_euler_maruyama(rows):
    setting, row = rows["NFC_OOD"]
    comp = setting.composition
    t_min = row["t_min"]
    q_min = comp.noised_target(SCHEDULE, t_min)
    start = comp.noised_target(SCHEDULE, SCHEDULE.T - t_min)
    kls = [float(kl(q_min, euler_maruyama_law(comp.naive_field(SCHEDULE), SCHEDULE, start, n, t_min)))
           for n in (1000, 2000, 4000)]
    gaps = np.abs(np.array(kls) - row["naive_kl"])
    assert gaps[2] < gaps[1] < gaps[0]  # converging, first order
    assert gaps[1] / gaps[2] == pytest.approx(2.0, rel=0.1)
    extrapolated = 2 * kls[2] - kls[1]
    assert extrapolated == pytest.approx(row["naive_kl"], rel=1e-3)
    assert row["naive_kl"] == naive_inference_kl(comp, SCHEDULE, t_min)


def test_authors_metric_against_the_exact_value(rows):
    judged = 0
    for setting, row in rows.values():
        assert 0 <= row["authors_metric"] <= row["authors_log_n"] + 1e-9  # Σw² ≤ (Σw)²
        comp = setting.composition
        active = [i for i, w in enumerate(comp.weights) if w != 0]
        # Judged where the estimator is in its N^(-1/2) regime: E w⁴ < ∞ for every source and the delta-method sd
        # small (ress_families' rule); elsewhere it is biased low (heavy-tailed weights), e.g. pop_d2_000's P_0.
        sd = [delta_method_sd(comp.target, comp.sources[i], N_MC) for i in active]
        if not (math.isfinite(row["log1p_chi2_max"]) and all(fourth_moment_finite(comp, i) for i in active)
                and max(sd) < RESS_DELTA_SD_MAX):
            continue
        judged += 1
        margin = t_quantile(N_DRAWS - 1, 0.5e-4) * row["authors_metric_se"] + max(sd) ** 2
        assert abs(row["authors_metric"] - row["log1p_chi2_max"]) <= margin
    assert judged >= 1


def test_directions_that_make_q_hat_improper_are_counted():
    # At ε = 0.05 some random directions make Q̂ improper on NFC_OOD: KL = ∞, so the mean is ∞, flagged.
    row = member_row(paper_setting("NFC_OOD"), eps=0.05, n_directions=64, n_mc=200, n_mc_draws=2, seed=1)
    assert row["n_directions_valid"] + row["n_directions_outside_pd"] == 64
    assert row["n_directions_improper"] > 0
    assert row["kl_mean"] == math.inf and "improper" in row["kl_mean_flag"] and math.isnan(row["kl_mean_se"])
    assert row["kl_worst"] == math.inf and "improper" in row["kl_worst_flag"]


def test_factorized_setting_crosses_at_zero():
    # FC_ID factorizes: naive composition is exact, its KL round-off, so any error costs more.
    row = member_row(paper_setting("FC_ID"), n_directions=2, n_mc=200, n_mc_draws=2)
    assert row["naive_kl"] < 1e-20 and row["crossover_eps"] == 0.0 and "exact" in row["crossover_note"]


def test_member_row_rejects_what_it_cannot_compute():
    with pytest.raises(NotGaussianSettingError):
        member_row(paper_setting("GMM_ID"))
    for kwargs in ({"eps": 0.0}, {"eps": math.nan}, {"n_directions": 1}, {"n_mc": 1.5}, {"seed": -1}):
        with pytest.raises(CatcompError):
            member_row(paper_setting("FC_ID"), **kwargs)


def test_seeds_are_reproducible():
    assert np.array_equal(direction_rng(3, "x").standard_normal(4), direction_rng(3, "x").standard_normal(4))
    assert not np.array_equal(direction_rng(3, "x").standard_normal(4), direction_rng(3, "y").standard_normal(4))
