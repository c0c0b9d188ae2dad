"""GaussianMixture: logpdf vs a direct sum, score vs autodiff, diffusion, denoising identity, robustness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from strategies import spd_matrix
from test_gaussian import denoising_score_estimate

from closed_form import (
    GaussianMixture,
    InvalidWeightsError,
    NonFiniteInputError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    VPSchedule,
)


@st.composite
def mixture_params(draw, max_dim=5, max_k=4):
    d = draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    log10_cond = draw(st.floats(0.0, 6.0))
    w = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d)) * 3.0
    covs = np.stack([spd_matrix(rng, d, log10_cond, rng.uniform(0.2, 5.0)) for _ in range(k)])
    return w, means, covs, rng


@given(mixture_params())
def test_logpdf_matches_direct_sum(params):
    w, means, covs, rng = params
    m = GaussianMixture(w, means, covs)
    x = means[0] + rng.normal(size=(6, means.shape[1]))
    # The direct sum Σ_k w_k N_k(x), in log space (SciPy's component log-densities) so that it cannot underflow.
    direct = logsumexp([np.log(wk) + multivariate_normal(mk, ck).logpdf(x) for wk, mk, ck in zip(w, means, covs)], axis=0)
    np.testing.assert_allclose(np.asarray(m.logpdf(x)), np.atleast_1d(direct), rtol=1e-10, atol=1e-10)


@jax.jit
def _score_and_autodiff(m, x):
    """``(m.score(x), ∇log m.pdf at each row of x by autodiff)``, compiled once per (components, dimension) with the
    mixture as a pytree argument: op by op, every example paid hundreds of dispatches."""
    return m.score(x), jax.vmap(jax.grad(lambda y: m.logpdf(y)))(x)


@given(mixture_params())
def test_score_is_gradient_of_logpdf(params):
    w, means, covs, rng = params
    m = GaussianMixture(w, means, covs)
    x = means[-1] + rng.normal(size=(5, means.shape[1]))
    score, auto = _score_and_autodiff(m, jnp.asarray(x))
    err = np.linalg.norm(np.asarray(score - auto), axis=-1) / (1e-300 + np.linalg.norm(np.asarray(auto), axis=-1))
    assert np.max(err) < 1e-9


def test_one_component_mixture_equals_gaussian():
    from closed_form import Gaussian

    g = Gaussian(np.array([1.0, 2.0]), np.array([[2.0, 0.3], [0.3, 1.0]]))
    m = GaussianMixture.from_gaussian(g)
    x = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_allclose(np.asarray(m.logpdf(x)), np.asarray(g.logpdf(x)), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(m.score(x)), np.asarray(g.score(x)), rtol=1e-12)


def test_moments_and_sampling(key):
    m = GaussianMixture.isotropic([0.2, 0.5, 0.3], [[-3.0, 0.0], [0.0, 2.0], [4.0, -1.0]], 0.7)
    n = 200_000
    x = np.asarray(m.sample(key, n))
    cov = np.asarray(m.cov)
    assert np.all(np.abs(x.mean(0) - np.asarray(m.mean)) < 5 * np.sqrt(np.diag(cov) / n))
    # SE of sample covariance entries estimated from the sample's fourth moments.
    xc = x - x.mean(0)
    prod = np.einsum("ni,nj->nij", xc, xc)
    se = prod.std(0) / np.sqrt(n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se)


@pytest.mark.parametrize("t", [0.1, 0.6])
def test_noised_matches_monte_carlo_of_forward_process(key, t):
    schedule = VPSchedule()
    m = GaussianMixture.isotropic([0.3, 0.7], [[-2.0, 1.0], [2.0, -1.0]], 0.5)
    k0, k1 = jax.random.split(key)
    n = 200_000
    x0 = m.sample(k0, n)
    xt = np.asarray(schedule.alpha(t) * x0 + schedule.sigma(t) * jax.random.normal(k1, x0.shape, dtype=jnp.float64))
    mt = m.noised(schedule, t)
    xc = xt - xt.mean(0)
    se_cov = np.einsum("ni,nj->nij", xc, xc).std(0) / np.sqrt(n)
    assert np.all(np.abs(xt.mean(0) - np.asarray(mt.mean)) < 5 * np.sqrt(np.diag(np.asarray(mt.cov)) / n))
    assert np.all(np.abs(np.cov(xt.T) - np.asarray(mt.cov)) < 5 * se_cov)


@pytest.mark.parametrize("x", [np.array([0.0, 0.0]), np.array([1.0, -0.5])])
def test_score_satisfies_denoising_identity(key, x):
    schedule, t = VPSchedule(), 0.3
    m = GaussianMixture.isotropic([0.4, 0.6], [[-1.5, 0.5], [1.5, -0.5]], 0.6)
    est, se = denoising_score_estimate(m, schedule, t, x, key)
    exact = np.asarray(m.noised(schedule, t).score(x))
    assert np.all(np.abs(est - exact) < 5 * se), (est, exact, se)


def test_far_apart_components_and_small_t_stay_finite():
    m = GaussianMixture.isotropic([0.5, 0.5], [[0.0, 0.0], [1e3, 0.0]], 0.6)
    schedule = VPSchedule()
    x = np.array([[500.0, 0.0], [-2e3, 3.0], [1e3, 1.0], [0.0, 0.0]])
    for t in [0.0, 1e-5, 1e-3, 0.5, 1.0]:
        mt = m.noised(schedule, t)
        for out in (mt.logpdf(x), mt.score(x), mt.responsibilities(x)):
            assert np.all(np.isfinite(np.asarray(out))), t
    # Halfway between, the score points back to both components equally: its first coordinate is 0.
    np.testing.assert_allclose(float(m.score(np.array([500.0, 0.0]))[0]), 0.0, atol=1e-9)


def test_zero_weight_components_drop_out():
    m0 = GaussianMixture.isotropic([0.5, 0.5, 0.0], [[0.0], [2.0], [50.0]], 1.0)
    m1 = GaussianMixture.isotropic([0.5, 0.5], [[0.0], [2.0]], 1.0)
    x = np.linspace(-5, 60, 14)[:, None]
    np.testing.assert_allclose(np.asarray(m0.logpdf(x)), np.asarray(m1.logpdf(x)), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(m0.score(x)), np.asarray(m1.score(x)), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(
    "w, means, covs, exc, match",
    [
        ([0.5, 0.6], np.zeros((2, 1)), np.ones((2, 1, 1)), InvalidWeightsError, "sum to"),
        ([1.5, -0.5], np.zeros((2, 1)), np.ones((2, 1, 1)), InvalidWeightsError, "negative"),
        ([0.5, 0.5], np.zeros((3, 1)), np.ones((2, 1, 1)), ShapeMismatchError, "means has shape"),
        ([0.5, 0.5], np.zeros((2, 2)), np.ones((2, 1, 1)), ShapeMismatchError, "covs has shape"),
        ([0.5, 0.5], np.zeros((2, 1)), np.array([[[1.0]], [[-1.0]]]), NotPositiveDefiniteError, r"covs\[1\]"),
        ([np.nan, 0.5], np.zeros((2, 1)), np.ones((2, 1, 1)), NonFiniteInputError, "weights"),
        ([0.5, 0.5], np.array([[0.0], [np.inf]]), np.ones((2, 1, 1)), NonFiniteInputError, "means"),
    ],
)
def test_invalid_mixture_raises(w, means, covs, exc, match):
    with pytest.raises(exc, match=match):
        GaussianMixture(w, means, covs)
