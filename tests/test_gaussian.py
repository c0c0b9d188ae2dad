"""Gaussian: logpdf vs SciPy, score vs autodiff, diffused moments and the denoising identity by Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from strategies import gaussians_params, spd_matrix

from closed_form import (
    Gaussian,
    InvalidTimeError,
    NonFiniteInputError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    VPSchedule,
)


@given(gaussians_params())
def test_logpdf_matches_scipy(params):
    mean, cov, rng = params
    g = Gaussian(mean, cov)
    x = mean + rng.normal(size=(7, mean.size)) @ np.linalg.cholesky(cov).T
    expected = multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(np.asarray(g.logpdf(x)), np.atleast_1d(expected), rtol=1e-10, atol=1e-10)


@given(gaussians_params())
def test_score_is_gradient_of_logpdf(params):
    mean, cov, rng = params
    g = Gaussian(mean, cov)
    x = mean + rng.normal(size=(5, mean.size)) @ np.linalg.cholesky(cov).T
    auto = jax.vmap(jax.grad(lambda y: g.logpdf(y)))(jnp.asarray(x))
    ours = g.score(x)
    # Norm-wise relative error per point: both routes are backward stable, so this stays near machine precision
    # times the condition number's square root (≤ 1e3 here).
    err = np.linalg.norm(np.asarray(ours - auto), axis=-1) / np.linalg.norm(np.asarray(auto), axis=-1)
    assert np.max(err) < 1e-10


def test_batch_axes_are_kept():
    g = Gaussian(np.zeros(3), np.eye(3))
    x = np.ones((4, 5, 3))
    assert g.logpdf(x).shape == (4, 5)
    assert g.score(x).shape == (4, 5, 3)
    assert g.sample(jax.random.key(0), (2, 6)).shape == (2, 6, 3)


def test_sample_moments_within_standard_errors(key):
    rng = np.random.default_rng(1)
    cov = spd_matrix(rng, 3, 2.0, 2.0)
    mean = np.array([1.0, -2.0, 0.5])
    n = 200_000
    x = np.asarray(Gaussian(mean, cov).sample(key, n))
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)
    # SE of a sample covariance entry: sqrt((Σ_ii Σ_jj + Σ_ij²)/n) for Gaussians.
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.9])
def test_noised_matches_monte_carlo_of_forward_process(key, t):
    schedule = VPSchedule()
    rng = np.random.default_rng(2)
    g = Gaussian(np.array([2.0, -1.0]), spd_matrix(rng, 2, 1.0, 3.0))
    k0, k1 = jax.random.split(key)
    n = 200_000
    x0 = g.sample(k0, n)
    eps = jax.random.normal(k1, x0.shape, dtype=jnp.float64)
    xt = np.asarray(schedule.alpha(t) * x0 + schedule.sigma(t) * eps)
    gt = g.noised(schedule, t)
    cov_t = np.asarray(gt.cov)
    assert np.all(np.abs(xt.mean(0) - np.asarray(gt.mean)) < 5 * np.sqrt(np.diag(cov_t) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov_t), np.diag(cov_t)) + cov_t**2) / n)
    assert np.all(np.abs(np.cov(xt.T) - cov_t) < 5 * se_cov)


def denoising_score_estimate(prior, schedule, t, x, key, n=100_000, n_batches=20):
    r"""Monte Carlo of ``E[−ε/σ_t | x_t = x]`` by self-normalized importance sampling over ``x₀ ~ prior``, with
    ``ε = (x − α_t x₀)/σ_t`` and weights ``∝ N(x; α_t x₀, σ_t² I)``; returns (estimate, batch-means SE)."""
    a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
    ests = []
    for k in jax.random.split(key, n_batches):
        x0 = np.asarray(prior.sample(k, n))
        logw = -0.5 * np.sum((x - a * x0) ** 2, axis=-1) / s**2
        w = np.exp(logw - logw.max())
        w /= w.sum()
        ests.append(-(w @ ((x - a * x0) / s)) / s)
    ests = np.asarray(ests)
    return ests.mean(0), ests.std(0, ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize("x", [np.array([0.3, -0.4]), np.array([1.5, 1.0])])
def test_score_satisfies_denoising_identity(key, x):
    schedule, t = VPSchedule(), 0.4
    g = Gaussian(np.array([1.0, 0.0]), np.array([[2.0, 0.6], [0.6, 1.0]]))
    est, se = denoising_score_estimate(g, schedule, t, x, key)
    exact = np.asarray(g.noised(schedule, t).score(x))
    assert np.all(np.abs(est - exact) < 5 * se + 1e-12), (est, exact, se)


def test_noised_accepts_traced_time():
    g = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
    schedule = VPSchedule()
    f = jax.jit(lambda t: g.noised(schedule, t).cov)
    np.testing.assert_allclose(np.asarray(f(0.5)), np.asarray(g.noised(schedule, 0.5).cov), rtol=1e-14)


def test_small_time_is_finite():
    g = Gaussian(np.zeros(2), np.diag([1e-4, 1.0]))
    gt = g.noised(VPSchedule(), 1e-5)
    x = np.array([[0.3, 0.2]])
    assert np.all(np.isfinite(np.asarray(gt.score(x)))) and np.all(np.isfinite(np.asarray(gt.logpdf(x))))


def test_is_pytree_roundtrip():
    g = Gaussian(np.array([1.0, 2.0]), np.eye(2))
    leaves, tree = jax.tree_util.tree_flatten(g)
    g2 = jax.tree_util.tree_unflatten(tree, leaves)
    np.testing.assert_array_equal(np.asarray(g2.mean), np.asarray(g.mean))
    with pytest.raises(AttributeError):
        g.mean = jnp.zeros(2)


def test_gaussian_and_mixture_share_the_frozen_pytree_base():
    """Both flatten to exactly their named arrays, rebuild from them unchanged, go through ``jit`` and refuse writes."""
    from closed_form import GaussianMixture
    from closed_form.pytree import FrozenPytree

    g = Gaussian(np.array([1.0, 2.0]), np.array([[2.0, 0.3], [0.3, 1.0]]))
    m = GaussianMixture([0.25, 0.75], np.array([[0.0, 1.0], [2.0, -1.0]]), np.stack([np.eye(2), 2.0 * np.eye(2)]))
    for obj, names in ((g, ("mean", "cov", "chol")), (m, ("weights", "means", "covs", "chols"))):
        assert isinstance(obj, FrozenPytree)
        leaves, tree = jax.tree_util.tree_flatten(obj)
        assert len(leaves) == len(names)
        for leaf, name in zip(leaves, names):
            assert leaf is getattr(obj, name)
        rebuilt = jax.jit(lambda o: o)(obj)
        assert type(rebuilt) is type(obj)
        for name in names:
            np.testing.assert_array_equal(np.asarray(getattr(rebuilt, name)), np.asarray(getattr(obj, name)))
        with pytest.raises(AttributeError, match=f"{type(obj).__name__} is immutable"):
            setattr(obj, names[0], None)


@pytest.mark.parametrize(
    "mean, cov, exc, match",
    [
        (np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), NotPositiveDefiniteError, "smallest eigenvalue"),
        (np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), NotPositiveDefiniteError, "not symmetric"),
        (np.zeros(2), np.eye(3), ShapeMismatchError, r"expected \(2, 2\)"),
        (np.zeros((2, 1)), np.eye(2), ShapeMismatchError, "vector"),
        (np.array([np.nan, 0.0]), np.eye(2), NonFiniteInputError, "non-finite"),
        (np.zeros(2), np.array([[np.inf, 0.0], [0.0, 1.0]]), NonFiniteInputError, "non-finite"),
    ],
)
def test_invalid_gaussian_raises(mean, cov, exc, match):
    with pytest.raises(exc, match=match):
        Gaussian(mean, cov)


def test_invalid_points_and_times_raise():
    g = Gaussian(np.zeros(2), np.eye(2))
    with pytest.raises(ShapeMismatchError, match=r"\(\.\.\., 2\)"):
        g.logpdf(np.zeros(3))
    with pytest.raises(NonFiniteInputError):
        g.score(np.array([np.nan, 1.0]))
    with pytest.raises(InvalidTimeError, match=r"\[0, 1.0\]"):
        g.noised(VPSchedule(), 1.5)
    with pytest.raises(NonFiniteInputError):
        g.noised(VPSchedule(), float("nan"))


@given(st.integers(1, 5), st.integers(0, 2**32 - 1), st.floats(-1e3, 0.0))
def test_covariance_with_a_non_positive_eigenvalue_raises(d, seed, bad_eigenvalue):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.abs(rng.normal(size=d)) + 0.1
    eig[rng.integers(d)] = bad_eigenvalue
    cov = (q * eig) @ q.T
    with pytest.raises(NotPositiveDefiniteError, match="positive definite") as info:
        Gaussian(np.zeros(d), 0.5 * (cov + cov.T))
    assert isinstance(info.value, ValueError)
