"""The samplers' Gaussian noise: the "hash" generator's law, independence, determinism and shape-invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from closed_form import CatcompError
from verify.samplers.noise import hash_normal, splitmix64, standard_normal

N = 2_000_000


def test_splitmix64_known_answers():
    # SplitMix64 seeded with 0 yields these first outputs (Vigna's reference splitmix64.c; also the sequence
    # java.util.SplittableRandom(0).nextLong() produces).
    out = np.asarray(splitmix64(jnp.uint64(0), jnp.arange(3, dtype=jnp.uint64)))
    expected = np.array([0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F], dtype=np.uint64)
    np.testing.assert_array_equal(out, expected)


@pytest.fixture(scope="module")
def draws():
    return np.asarray(hash_normal(jax.random.key(11), (N // 2, 2)))


def test_hash_normals_have_standard_moments(draws):
    z = draws.ravel()
    n = z.size
    assert z.dtype == np.float64
    # Standard errors of the sample mean, variance and fourth moment of N(0, 1): 1, √2, √96 over √n. 4 SE each.
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1.0) < 4 * np.sqrt(2.0 / n)
    assert abs(np.mean(z**4) - 3.0) < 4 * np.sqrt(96.0 / n)
    assert abs(stats.skew(z)) < 4 * np.sqrt(6.0 / n)


def test_hash_normals_follow_the_normal_cdf(draws):
    # Kolmogorov–Smirnov on 2e6 draws: detects a CDF error of ~1e-3. The 23-bit grid (spacing ~1e-7 in u) is far
    # below that.
    assert stats.kstest(draws.ravel(), "norm").pvalue > 1e-3
    assert np.abs(draws).max() < 5.4  # the documented range |z| ≤ 5.3


def test_hash_normals_are_uncorrelated_across_elements_and_steps(draws):
    n = draws.shape[0]
    bound = 4 / np.sqrt(n)  # SE of a correlation under independence is 1/√n
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < bound  # the two coordinates of a particle
    assert abs(np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]) < bound  # neighbouring particles
    other_step = np.asarray(hash_normal(jax.random.fold_in(jax.random.key(11), 1), (n, 2)))
    assert abs(np.corrcoef(draws[:, 0], other_step[:, 0])[0, 1]) < bound  # the next step's key
    # Squares too: dependence in magnitude would not show in plain correlations.
    assert abs(np.corrcoef(draws[:, 0] ** 2, draws[:, 1] ** 2)[0, 1]) < bound


def test_values_depend_on_flat_index_only():
    key = jax.random.key(3)
    a = np.asarray(hash_normal(key, (6, 4, 2)))
    np.testing.assert_array_equal(a.reshape(-1), np.asarray(hash_normal(key, (48,))))
    np.testing.assert_array_equal(a, np.asarray(jax.jit(hash_normal, static_argnums=1)(key, (6, 4, 2))))
    assert not np.array_equal(a, np.asarray(hash_normal(jax.random.key(4), (6, 4, 2))))


def test_threefry_method_is_jax_normal_and_unknown_method_raises():
    key = jax.random.key(0)
    np.testing.assert_array_equal(np.asarray(standard_normal(key, (5, 2), "threefry")),
                                  np.asarray(jax.random.normal(key, (5, 2), dtype=jnp.float64)))
    with pytest.raises(CatcompError, match="hash, threefry"):
        standard_normal(key, (2,), "box-muller")
