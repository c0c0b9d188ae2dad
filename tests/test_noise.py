"""The samplers' Gaussian noise: the "hash" and "box-muller" generators' laws, independence, determinism and
shape-invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from closed_form import CatcompError
from verify.samplers.noise import box_muller_normal, cos_two_pi, hash_normal, splitmix64, standard_normal

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


def _assert_standard_moments(z):
    n = z.size
    assert z.dtype == np.float64
    # Standard errors of the sample mean, variance, fourth moment and skewness of N(0, 1): 1, √2, √96, √6 over √n.
    # 4 SE each.
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1.0) < 4 * np.sqrt(2.0 / n)
    assert abs(np.mean(z**4) - 3.0) < 4 * np.sqrt(96.0 / n)
    assert abs(stats.skew(z)) < 4 * np.sqrt(6.0 / n)


def test_hash_normals_have_standard_moments(draws):
    _assert_standard_moments(draws.ravel())


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


@pytest.mark.parametrize("method", ["hash", "box-muller"])
@pytest.mark.parametrize("start", [0, 3, 7])
def test_a_block_drawn_with_its_offset_is_that_block_of_the_whole_array(method, start):
    """Rows ``start .. start + 4`` of a ``(12, 3, 2)`` draw, drawn on their own with the flat offset of their first
    element (odd offsets included: box-muller pairs elements across the block's edge)."""
    key = jax.random.key(5)
    whole = np.asarray(standard_normal(key, (12, 3, 2), method))
    block = np.asarray(standard_normal(key, (4, 3, 2), method, jnp.float64, start * 6))
    np.testing.assert_array_equal(block, whole[start:start + 4])
    flat = np.asarray(standard_normal(key, (5,), method, jnp.float64, start))  # an odd flat offset
    np.testing.assert_array_equal(flat, whole.reshape(-1)[start:start + 5])


def test_threefry_cannot_draw_a_block():
    with pytest.raises(CatcompError, match="offset=0"):
        standard_normal(jax.random.key(0), (2, 2), "threefry", jnp.float64, 4)


def test_threefry_method_is_jax_normal_and_unknown_method_raises():
    key = jax.random.key(0)
    np.testing.assert_array_equal(np.asarray(standard_normal(key, (5, 2), "threefry")),
                                  np.asarray(jax.random.normal(key, (5, 2), dtype=jnp.float64)))
    with pytest.raises(CatcompError, match="hash, threefry, box-muller"):
        standard_normal(key, (2,), "ziggurat")


# ------------------------------------------------------------------------------------------------ box-muller
_U64 = 2**64


def _mix64_reference(z):
    """SplitMix64's finalizer on Python integers (mod 2⁶⁴), written out independently of the JAX code."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % _U64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB % _U64
    return z ^ (z >> 31)


def test_box_muller_matches_an_independent_float64_transform():
    """Each element from its pair's hash by the textbook transform in float64 (Python integers for the hash, NumPy
    for R cos θ / R sin θ); the float32 computation agrees to float32 rounding times |z| ≤ 5.8 (≈ 5e-7) plus the
    polynomial cosine's error (2.5e-7, next test) times R."""
    key = jax.random.key(5)
    shape = (7, 3)  # 21 elements: pairs straddle rows, and the last element has no partner
    seed = int(np.asarray(jax.random.bits(key, (), dtype=jnp.uint64)))
    expected = []
    for i in range(21):
        h = _mix64_reference((seed + (i // 2 + 1) * 0x9E3779B97F4A7C15) % _U64)
        u1 = ((h >> 41) + 0.5) * 2.0**-23
        u2 = (((h >> 18) & 0x7FFFFF) + 0.5) * 2.0**-23
        r = np.sqrt(-2.0 * np.log(u1))
        expected.append(r * (np.cos(2 * np.pi * u2) if i % 2 == 0 else np.sin(2 * np.pi * u2)))
    got = np.asarray(box_muller_normal(key, shape)).ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(got, np.asarray(standard_normal(key, shape, "box-muller")).ravel())


def test_cos_two_pi_is_accurate_over_many_turns():
    # Taylor truncation on [0, π/4] below 3e-8, plus a few float32 roundings of numbers ≤ 1 (6e-8 each).
    v = np.linspace(-3.0, 3.0, 2**21, dtype=np.float32)
    err = np.asarray(jax.jit(cos_two_pi)(v), dtype=np.float64) - np.cos(2 * np.pi * v.astype(np.float64))
    assert np.abs(err).max() < 2.5e-7


@pytest.fixture(scope="module")
def bm_draws():
    return np.asarray(box_muller_normal(jax.random.key(11), (N // 2, 2)))


def test_box_muller_normals_have_standard_moments_and_cdf(bm_draws):
    z = bm_draws.ravel()
    _assert_standard_moments(z)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert np.abs(z).max() <= np.sqrt(-2.0 * np.log(2.0**-24)) + 1e-5  # the documented range


def test_box_muller_pairs_are_independent(bm_draws):
    """The two members of a pair share the hash: uncorrelated in value and in magnitude, their squared radius is χ²₂
    (exponential with mean 2) and their angle uniform, as for two independent standard normals."""
    a, b = bm_draws[:, 0], bm_draws[:, 1]
    n = a.size
    bound = 4 / np.sqrt(n)
    assert abs(np.corrcoef(a, b)[0, 1]) < bound
    assert abs(np.corrcoef(a**2, b**2)[0, 1]) < bound
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < bound  # neighbouring pairs
    other_step = np.asarray(box_muller_normal(jax.random.fold_in(jax.random.key(11), 1), (n, 2)))
    assert abs(np.corrcoef(a, other_step[:, 0])[0, 1]) < bound
    assert stats.kstest(a**2 + b**2, stats.expon(scale=2.0).cdf).pvalue > 1e-3
    assert stats.kstest(np.arctan2(b, a), stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3


def test_box_muller_values_depend_on_flat_index_only():
    key = jax.random.key(3)
    a = np.asarray(box_muller_normal(key, (5, 3, 2)))
    np.testing.assert_array_equal(a.reshape(-1), np.asarray(box_muller_normal(key, (30,))))
    np.testing.assert_array_equal(a.astype(np.float32), np.asarray(box_muller_normal(key, (5, 3, 2), jnp.float32)))
    assert not np.array_equal(a, np.asarray(box_muller_normal(jax.random.key(4), (5, 3, 2))))
