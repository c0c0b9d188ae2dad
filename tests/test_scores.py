"""Exact score adapters: equal to the closed forms' diffused scores and log densities, composable, jittable."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import spd_matrix

from closed_form import (
    Gaussian,
    GaussianMixture,
    NonFiniteInputError,
    ShapeMismatchError,
    VPSchedule,
    compose,
    paper_setting,
)
from verify.samplers.scores import (
    GaussianScore,
    MixtureScore,
    composed_score,
    path_log_density,
    source_scores,
)

SCHEDULE = VPSchedule()


@st.composite
def gaussian_sources(draw, diagonal):
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cov = spd_matrix(rng, d, draw(st.floats(0.0, 3.0)), draw(st.floats(0.2, 10.0)))
    if diagonal:
        cov = np.diag(np.diag(cov))
    return Gaussian(rng.normal(size=d) * 2.0, cov), rng


@st.composite
def mixture_sources(draw, diagonal):
    # Few distinct shapes: each new one costs eager compilations of every primitive (~1 s).
    d = draw(st.sampled_from([1, 2]))
    k = draw(st.sampled_from([1, 3, 6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    covs = np.stack([spd_matrix(rng, d, 2.0, rng.uniform(0.2, 5.0)) for _ in range(k)])
    if diagonal:
        covs = np.stack([np.diag(np.diag(c)) for c in covs])
    w = rng.dirichlet(np.ones(k))
    if k > 1 and draw(st.booleans()):
        w[0] = 0.0  # zero-weight components must drop out
        w = w / w.sum()
    return GaussianMixture(w, rng.normal(size=(k, d)) * 3.0, covs), rng


TIMES = st.sampled_from([1e-5, 1e-3, 0.05, 0.3, 0.7, 1.0 - 1e-5])


# Each side is one compiled program per shape (the score objects and the closed forms are pytrees, passed as
# arguments) instead of dozens of eager single operations per new Hypothesis shape; the values compared are the same.
@jax.jit
def _adapter(score, x, t):
    return score(x, t), score.log_density(x, t)


@jax.jit
def _closed_form(src, x, t):
    q = src.noised(SCHEDULE, t)
    return q.score(x), q.logpdf(x)


_affine = jax.jit(lambda score, t: score.affine(t))


def _assert_matches_diffused(score, src, t, x):
    """``score(x, t)`` and ``score.log_density(x, t)`` against ``src.noised(schedule, t)``; returns the reference."""
    s, log_q = _adapter(score, x, t)
    s_ref, log_q_ref = _closed_form(src, x, t)
    np.testing.assert_allclose(np.asarray(s), np.asarray(s_ref), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(log_q), np.asarray(log_q_ref), rtol=1e-10)
    return np.asarray(s_ref)


@given(st.one_of(gaussian_sources(True), gaussian_sources(False)), TIMES)
def test_gaussian_score_and_log_density_match_closed_form(src_rng, t):
    src, rng = src_rng
    score = GaussianScore.from_gaussian(src, SCHEDULE)
    x = rng.normal(size=(6, 2, src.dim)) * 3.0
    expected = _assert_matches_diffused(score, src, t, x)
    a, b = _affine(score, t)
    np.testing.assert_allclose(np.asarray(-x @ np.asarray(a).T + np.asarray(b)), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=15)
@given(st.one_of(mixture_sources(True), mixture_sources(False)), TIMES)
def test_mixture_score_and_log_density_match_closed_form(src_rng, t):
    src, rng = src_rng
    score = MixtureScore.from_mixture(src, SCHEDULE)
    x = rng.normal(size=(5, 3, src.dim)) * 4.0
    expected = _assert_matches_diffused(score, src, t, x)
    # The rotation route (used for non-diagonal covariances) agrees on diagonal ones too.
    general = dataclasses.replace(score, diagonal=False)
    np.testing.assert_allclose(np.asarray(_adapter(general, x, t)[0]), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["NFC_OOD", "GMM_ID", "GMM_OOD"])
def test_composed_score_and_path_density_match_composition(name):
    comp = paper_setting(name).composition
    scores = source_scores(comp, SCHEDULE)
    x = np.random.default_rng(0).normal(size=(40, 2)) * 4.0
    # One compiled program per side and setting (t traced) instead of eager single operations.
    adapter = jax.jit(lambda x, t: (composed_score(scores, comp.weights)(x, t),
                                    path_log_density(scores, comp.weights)(x, t)))
    closed = jax.jit(lambda x, t: (comp.naive_score(x, t, SCHEDULE), comp.path_logpdf_unnormalized(x, t, SCHEDULE)))
    for t in (1e-5, 0.2, 0.9):
        (s, log_g), (s_ref, log_g_ref) = adapter(x, t), closed(x, t)
        np.testing.assert_allclose(np.asarray(s), np.asarray(s_ref), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(log_g), np.asarray(log_g_ref), rtol=1e-10)


def test_gaussian_affine_fields_sum_to_naive_field():
    comp = paper_setting("NFC_ID").composition
    scores = source_scores(comp, SCHEDULE)
    for t in (1e-5, 0.4, 1.0 - 1e-5):
        a = sum(w * np.asarray(s.affine(t)[0]) for w, s in zip(comp.weights, scores))
        b = sum(w * np.asarray(s.affine(t)[1]) for w, s in zip(comp.weights, scores))
        a_ref, b_ref = comp.naive_field(SCHEDULE)(t)
        np.testing.assert_allclose(a, np.asarray(a_ref), rtol=1e-10)
        np.testing.assert_allclose(b, np.asarray(b_ref), atol=1e-12)


def test_scores_trace_under_jit_with_traced_time():
    comp = paper_setting("GMM_OOD").composition
    scores = source_scores(comp, SCHEDULE)
    x = jnp.ones((3, 2))
    jitted = jax.jit(lambda sc, t: [s(x, t) for s in sc])(scores, 0.4)  # scores are pytrees: passed as arguments
    for s, j in zip(scores, jitted):
        np.testing.assert_allclose(np.asarray(j), np.asarray(s(x, 0.4)), rtol=1e-12)


def test_mismatched_counts_and_nan_weights_raise():
    scores = source_scores(paper_setting("NFC_ID").composition, SCHEDULE)
    with pytest.raises(ShapeMismatchError, match="one weight per score"):
        composed_score(scores, [1.0, 1.0])
    with pytest.raises(NonFiniteInputError):
        composed_score(scores, [1.0, np.nan, -1.0])


def test_source_scores_rejects_unknown_sources():
    comp = compose([Gaussian.standard(2)], [1.0])
    assert isinstance(source_scores(comp, SCHEDULE)[0], GaussianScore)
    from verify.samplers.scores import exact_score

    with pytest.raises(TypeError, match="Gaussian and GaussianMixture"):
        exact_score("not a distribution", SCHEDULE)
