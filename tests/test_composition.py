"""Compositions: closed-form targets vs quadrature and pointwise products, path vs diffused target, exact samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import spd_matrix

from closed_form import (
    GAUSSIAN_SETTING_NAMES,
    MIXTURE_SETTING_NAMES,
    SETTING_NAMES,
    CatcompError,
    Gaussian,
    GaussianMixture,
    ImproperCompositionError,
    InvalidWeightsError,
    NoClosedFormError,
    NonFiniteInputError,
    ShapeMismatchError,
    VPSchedule,
    compose,
    paper_setting,
)


@st.composite
def gaussian_compositions(draw, max_dim=3, max_sources=3):
    d = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_sources))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = np.array([draw(st.floats(-1.5, 2.5)) for _ in range(n)])
    sources = [Gaussian(rng.normal(size=d), spd_matrix(rng, d, rng.uniform(0, 3), rng.uniform(0.3, 5))) for _ in range(n)]
    lam = sum(w * np.linalg.inv(np.asarray(s.cov)) for w, s in zip(weights, sources))
    assume(np.linalg.eigvalsh(lam)[0] > 1e-3)
    return sources, weights, rng


@given(gaussian_compositions())
def test_gaussian_target_is_precision_weighted(params):
    sources, weights, rng = params
    comp = compose(sources, weights)
    precs = [np.linalg.inv(np.asarray(s.cov)) for s in sources]
    lam = sum(w * p for w, p in zip(weights, precs))
    eta = sum(w * p @ np.asarray(s.mean) for w, p, s in zip(weights, precs, sources))
    tgt = comp.target
    assert isinstance(tgt, Gaussian)
    np.testing.assert_allclose(np.asarray(tgt.cov) @ lam, np.eye(len(eta)), atol=1e-10)
    np.testing.assert_allclose(lam @ np.asarray(tgt.mean), eta, rtol=1e-10, atol=1e-10)
    # Normalization: log Q(x) + log Z = Σ w_i log p_i(x) at arbitrary points.
    x = np.asarray(tgt.mean) + rng.normal(size=(6, len(eta)))
    np.testing.assert_allclose(
        np.asarray(tgt.logpdf(x)) + comp.log_normalizer(),
        np.asarray(comp.target_logpdf_unnormalized(x)),
        rtol=1e-10,
        atol=1e-10,
    )


@pytest.mark.parametrize("d", [1, 2])
def test_gaussian_composition_against_quadrature(d):
    rng = np.random.default_rng(d)
    sources = [Gaussian(rng.normal(size=d), spd_matrix(rng, d, 1.0, s)) for s in (2.0, 3.0, 6.0)]
    comp = compose(sources, [1.0, 0.7, -0.4])
    log_z, mean, cov = comp.quadrature_moments(rtol=1e-11)
    np.testing.assert_allclose(log_z, comp.log_normalizer(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(mean, np.asarray(comp.target.mean), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov, np.asarray(comp.target.cov), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", GAUSSIAN_SETTING_NAMES)
def test_paper_gaussian_settings_against_quadrature(name):
    comp = paper_setting(name).composition
    log_z, mean, cov = comp.quadrature_moments(rtol=1e-11)
    np.testing.assert_allclose(log_z, comp.log_normalizer(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(mean, np.asarray(comp.target.mean), atol=1e-9)
    np.testing.assert_allclose(cov, np.asarray(comp.target.cov), rtol=1e-9, atol=1e-9)


def test_paper_gaussian_targets_match_published_table():
    # The paper's authors list the targets I, (20/21) I, 10 I, (110/21) I.
    expected = {"FC_ID": 1.0, "NFC_ID": 20 / 21, "FC_OOD": 10.0, "NFC_OOD": 110 / 21}
    for name, v in expected.items():
        np.testing.assert_allclose(np.asarray(paper_setting(name).composition.target.cov), v * np.eye(2), rtol=1e-12)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.0, 2.0)])
def test_mixture_product_equals_pointwise_product(weights):
    rng = np.random.default_rng(3)
    mixes = [
        GaussianMixture(rng.dirichlet(np.ones(k)), rng.normal(size=(k, 2)) * 2, np.stack([spd_matrix(rng, 2, 1.0, 1.5) for _ in range(k)]))
        for k in (2, 3, 2)
    ][: len(weights)]
    comp = compose(mixes, weights)
    tgt = comp.target
    assert isinstance(tgt, GaussianMixture)
    x = rng.normal(size=(20, 2)) * 3
    np.testing.assert_allclose(
        np.asarray(tgt.logpdf(x)) + comp.log_normalizer(),
        np.asarray(comp.target_logpdf_unnormalized(x)),
        rtol=1e-10,
        atol=1e-10,
    )
    log_z, mean, cov = comp.quadrature_moments(rtol=1e-11)
    np.testing.assert_allclose(log_z, comp.log_normalizer(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(mean, np.asarray(tgt.mean), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(cov, np.asarray(tgt.cov), rtol=1e-8, atol=1e-9)


def test_mixture_times_gaussian_with_negative_weight_is_closed_form():
    m = GaussianMixture.isotropic([0.3, 0.7], [[-1.0, 0.0], [2.0, 1.0]], 0.8)
    g = Gaussian(np.zeros(2), 4.0 * np.eye(2))
    comp = compose([m, m, g], [1.0, 1.0, -1.0])
    x = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_allclose(
        np.asarray(comp.target.logpdf(x)) + comp.log_normalizer(),
        np.asarray(comp.target_logpdf_unnormalized(x)),
        rtol=1e-10,
    )
    np.testing.assert_allclose(comp.quadrature_moments()[0], comp.log_normalizer(), rtol=1e-9)


@pytest.mark.parametrize("name", GAUSSIAN_SETTING_NAMES)
def test_diffused_target_equals_path_exactly_when_factorized(name):
    setting = paper_setting(name)
    comp, schedule = setting.composition, VPSchedule()
    gaps = []
    for t in np.linspace(0.0, 1.0, 21):
        q_t = np.asarray(comp.noised_target(schedule, t).cov)
        pi_t = np.asarray(comp.path_composition(schedule, t).target.cov)
        gaps.append(np.max(np.abs(q_t - pi_t) / np.abs(q_t).max()))
    if setting.factorized:
        assert max(gaps) < 1e-12
    else:
        assert max(gaps) > 1e-2  # NFC: the geometric path is not the diffused target
        assert gaps[0] < 1e-12  # …except at t = 0, where both are Q


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_naive_score_is_gradient_of_path_logpdf(name):
    comp, schedule = paper_setting(name).composition, VPSchedule()
    x = jnp.asarray(np.random.default_rng(4).normal(size=(8, 2)) * 3)
    for t in [1e-5, 0.2, 0.9]:
        auto = jax.vmap(jax.grad(lambda y: comp.path_logpdf_unnormalized(y, t, schedule)))(x)
        np.testing.assert_allclose(np.asarray(comp.naive_score(x, t, schedule)), np.asarray(auto), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", GAUSSIAN_SETTING_NAMES)
def test_affine_fields_reproduce_scores(name):
    comp, schedule = paper_setting(name).composition, VPSchedule()
    x = np.random.default_rng(5).normal(size=(4, 2))
    for t in [1e-5, 0.4, 1.0]:
        for field, score in [(comp.naive_field(schedule), comp.naive_score), (comp.target_field(schedule), comp.target_score)]:
            a, b = field(t)
            np.testing.assert_allclose(-x @ np.asarray(a).T + np.asarray(b), np.asarray(score(x, t, schedule)), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", MIXTURE_SETTING_NAMES)
def test_gmm_targets_have_no_closed_form_but_a_normalized_density(name):
    comp = paper_setting(name).composition
    assert not comp.has_closed_form_target
    with pytest.raises(NoClosedFormError, match="negative or non-integer weight"):
        comp.target
    # The normalized density integrates to one over the quadrature box.
    log_z, _, _ = comp.quadrature_moments()
    np.testing.assert_allclose(log_z, comp.log_normalizer(), rtol=1e-12)


@pytest.mark.parametrize("name", MIXTURE_SETTING_NAMES)
def test_rejection_envelope_dominates_target(name):
    comp = paper_setting(name).composition
    log_z_env, env = comp._rejection_envelope()
    x = np.random.default_rng(6).uniform(-15, 15, size=(5000, 2))
    log_q = np.asarray(comp.target_logpdf_unnormalized(x))
    log_e = log_z_env + np.asarray(env.logpdf(x))
    assert np.all(log_q <= log_e + 1e-12)


@pytest.mark.parametrize("name", MIXTURE_SETTING_NAMES)
def test_exact_gmm_sampler_matches_quadrature(name, key):
    comp = paper_setting(name).composition
    n = 40_000
    draw = comp.sample_target(key, n)
    assert draw.method == "rejection"
    x = np.asarray(draw.samples)
    log_z, mean, cov = comp.quadrature_moments()
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / n))
    xc = x - mean
    se_cov = np.einsum("ni,nj->nij", xc, xc).std(0) / np.sqrt(n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov)
    # The acceptance rate estimates Z_Q / Z_E: an independent Monte Carlo check of the quadrature normalizer.
    log_z_env, _ = comp._rejection_envelope()
    p = float(np.exp(log_z - log_z_env))
    se = np.sqrt(p * (1 - p) / (n / draw.acceptance_rate))
    assert abs(draw.acceptance_rate - p) < 5 * se + 2 / (n / draw.acceptance_rate)


def test_rejection_sampler_stops_with_an_error_when_nothing_is_accepted(key, monkeypatch):
    """A degenerate target (log-ratio −∞ everywhere) must raise, not loop for ever."""
    import closed_form.composition as composition_module

    monkeypatch.setattr(composition_module, "_MAX_REJECTION_DRAWS", 20_000)
    monkeypatch.setattr(composition_module.Composition, "target_logpdf_unnormalized",
                        lambda self, x: jnp.full(jnp.shape(x)[:-1], -jnp.inf))
    with pytest.raises(CatcompError, match="rejection sampling accepted 0 of"):
        paper_setting("GMM_OOD").composition.sample_target(key, 100)


def test_importance_resampling_fallback_reports_ess(key):
    # A base whose components are not those of the numerator: no AM–GM envelope, so importance resampling.
    means = np.array([[-1.0, 0.0], [1.0, 0.0]])
    a1 = GaussianMixture.isotropic([0.5, 0.5], means, 1.0)
    a2 = GaussianMixture.isotropic([0.5, 0.5], means + np.array([0.0, 0.5]), 1.0)
    base = GaussianMixture.isotropic([0.5, 0.5], np.array([[0.0, 1.0], [0.0, -1.0]]), 1.5)
    comp = compose([a1, a2, base], [1.0, 1.0, -1.0])
    n = 4000
    draw = comp.sample_target(key, n)
    assert draw.method == "importance_resampling" and draw.ess > 1000
    _, mean, cov = comp.quadrature_moments()
    se = np.sqrt(np.diag(cov) * (1 / n + 1 / draw.ess))
    assert np.all(np.abs(np.asarray(draw.samples).mean(0) - mean) < 5 * se)


def test_same_key_same_target_samples(key):
    comp = paper_setting("GMM_OOD").composition
    a = comp.sample_target(key, 500).samples
    b = comp.sample_target(key, 500).samples
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_improper_composition_names_eigenvalue_and_direction():
    a = Gaussian(np.zeros(2), np.diag([1.0, 4.0]))
    b = Gaussian(np.zeros(2), np.diag([2.0, 1.0]))
    # combined precision diag(1 − 2/2, 1/4 − 2/1) = diag(0, −1.75): the worst direction is the second axis.
    with pytest.raises(ImproperCompositionError, match=r"eigenvalue -1\.75 along \(0, -?1\)") as info:
        compose([a, b], [1.0, -2.0])
    assert "positive definite" in str(info.value)


@given(st.floats(-3.0, -1e-3))
def test_improper_whenever_precision_is_not_positive(w):
    a = Gaussian(np.zeros(1), np.eye(1))
    b = Gaussian(np.zeros(1), 0.5 * np.eye(1))
    # precision 1 + 2w: proper iff w > -1/2
    if 1 + 2 * w > 1e-12:
        assert compose([a, b], [1.0, w]).target.cov[0, 0] > 0
    else:
        with pytest.raises(ImproperCompositionError):
            compose([a, b], [1.0, w])


def test_improper_mixture_composition():
    m = GaussianMixture.isotropic([0.5, 0.5], [[0.0], [1.0]], 1.0)
    wide = GaussianMixture.isotropic([0.5, 0.5], [[0.0], [1.0]], 0.5)
    with pytest.raises(ImproperCompositionError, match="not normalizable"):
        compose([m, wide], [1.0, -1.0])


@pytest.mark.parametrize(
    "sources, weights, exc, match",
    [
        ([Gaussian(np.zeros(2), np.eye(2))], [1.0, 2.0], ShapeMismatchError, "one weight per source"),
        ([Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.zeros(3), np.eye(3))], [1.0, 1.0], ShapeMismatchError, "dimension"),
        ([Gaussian(np.zeros(2), np.eye(2))], [np.nan], NonFiniteInputError, "weights"),
        ([Gaussian(np.zeros(2), np.eye(2))], [0.0], InvalidWeightsError, "all composition weights are zero"),
        ([Gaussian(np.zeros(2), np.eye(2))], [-1.0], ImproperCompositionError, "no positive entry"),
        ([], [], ShapeMismatchError, "at least one source"),
    ],
)
def test_invalid_compositions_raise(sources, weights, exc, match):
    with pytest.raises(exc, match=match):
        compose(sources, weights)


def test_in_distribution_labels_are_the_papers_without_building_the_setting():
    from closed_form.settings import in_distribution

    papers_labels = {"FC_ID": True, "NFC_ID": True, "GMM_ID": True, "FC_OOD": False, "NFC_OOD": False,
                     "GMM_OOD": False}
    assert set(papers_labels) == set(SETTING_NAMES)
    for name, label in papers_labels.items():
        assert in_distribution(name) is label
        assert paper_setting(name).in_distribution is label
    with pytest.raises(CatcompError, match="valid names are"):
        in_distribution("FC_MAYBE")


def test_other_documented_errors():
    with pytest.raises(CatcompError, match="valid names are"):
        paper_setting("FC_MAYBE")
    comp = compose([Gaussian(np.zeros(3), np.eye(3))], [1.0])
    with pytest.raises(NoClosedFormError, match="dimensions 1 and 2"):
        comp.quadrature_moments()
    with pytest.raises(NoClosedFormError, match="Gaussian sources"):
        paper_setting("GMM_ID").composition.naive_field(VPSchedule())
    with pytest.raises(ShapeMismatchError):
        paper_setting("FC_ID").composition.naive_score(np.zeros(3), 0.5, VPSchedule())
