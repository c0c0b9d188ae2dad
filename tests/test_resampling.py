"""Resamplers: valid sorted indices, unbiased offspring counts, systematic's floor/ceil property, batching, ESS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from closed_form import CatcompError, InvalidWeightsError, NonFiniteInputError, ShapeMismatchError
from verify.samplers.resampling import (BAND, _banded_indices, _indices_from_counts, _within_band, cumulative_sum,
                                       effective_sample_size, get_resampler, multinomial, systematic,
                                       systematic_uniforms)

# A few sizes only: every new shape costs compilations, the values are what vary.
weight_vectors = st.tuples(st.sampled_from([1, 5, 17, 40]), st.integers(0, 2**32 - 1)).map(
    lambda a: np.random.default_rng(a[1]).dirichlet(np.full(a[0], 0.5))
)
sizes = st.sampled_from([1, 7, 64])


def _counts(idx, n_in):
    return np.bincount(np.asarray(idx), minlength=n_in)


@settings(max_examples=40)
@given(weight_vectors, sizes, st.integers(0, 2**31 - 1))
def test_systematic_counts_are_floor_or_ceil_of_expected(w, n, seed):
    idx = systematic(jax.random.key(seed), jnp.asarray(w, dtype=w.dtype), n)
    assert idx.shape == (n,) and idx.dtype == jnp.int32
    assert np.all(np.diff(np.asarray(idx)) >= 0) and 0 <= int(idx.min()) and int(idx.max()) < len(w)
    counts = _counts(idx, len(w))
    expected = n * w
    # Systematic resampling gives every particle ⌊n w_j⌋ or ⌈n w_j⌉ copies (up to rounding of the cumulative sums).
    assert np.all(counts >= np.floor(expected - 1e-9)) and np.all(counts <= np.ceil(expected + 1e-9))
    assert counts.sum() == n


@given(weight_vectors, sizes, st.integers(0, 2**31 - 1))
def test_multinomial_indices_valid_and_sorted(w, n, seed):
    idx = np.asarray(multinomial(jax.random.key(seed), jnp.asarray(w, dtype=w.dtype), n))
    assert idx.shape == (n,) and np.all(np.diff(idx) >= 0)
    assert idx.min() >= 0 and idx.max() < len(w)
    assert np.all(w[idx] > 0)  # a zero-probability particle is never chosen


@pytest.mark.parametrize("scheme", ["systematic", "multinomial"])
def test_offspring_counts_are_unbiased(scheme, key):
    """E[copies of j] = n w_j; the batch axis gives 20,000 independent draws. Tolerance 4 SE per particle."""
    w = np.array([0.5, 0.2, 0.15, 0.1, 0.04, 0.01])
    n, reps = 7, 20_000
    idx = get_resampler(scheme)(key, jnp.broadcast_to(jnp.asarray(w, dtype=w.dtype), (reps, w.size)), n)
    assert idx.shape == (reps, n)
    counts = np.stack([np.bincount(row, minlength=w.size) for row in np.asarray(idx)])
    mean, se = counts.mean(0), counts.std(0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(mean - n * w) <= 4 * se + 1e-12), (mean, n * w, se)
    if scheme == "multinomial":  # independent draws: Var = n w (1 − w)
        np.testing.assert_allclose(counts.var(0), n * w * (1 - w), rtol=0.1)
    else:  # far less variance than multinomial
        assert np.all(counts.var(0) < n * w * (1 - w))


def test_batched_rows_are_independent_and_match_single_rows(key):
    w = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(10), size=3), dtype=jnp.float64)
    batched = np.asarray(systematic(key, w, 10))
    assert batched.shape == (3, 10)
    u = np.asarray(systematic_uniforms(key, (3, 1), jnp.float64))[:, 0]
    for row, ui, wi in zip(batched, u, np.asarray(w)):
        # Slot m takes the j with C_{j−1} ≤ (m + u)/n < C_j.
        c = np.cumsum(wi) / np.sum(wi)
        np.testing.assert_array_equal(row, np.searchsorted(c, (np.arange(10) + ui) / 10, side="right"))


@pytest.mark.parametrize("n", [1, 7, 64, 65, 100, 256, 300, 1100])
def test_cumulative_sum_matches_a_sequential_sum(n):
    """The matrix-product running sum (one product up to 64 entries, blocks beyond) against NumPy's sequential
    cumulative sum: equal to rounding for floats, exactly equal for integers (every partial sum is exact)."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n))
    y = cumulative_sum(jnp.asarray(x, dtype=x.dtype))
    np.testing.assert_allclose(np.asarray(y), np.cumsum(x, axis=-1), rtol=0,
                               atol=1e-13 * np.abs(x).sum())
    k = rng.integers(0, 5, size=(3, n)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(cumulative_sum(jnp.asarray(k, dtype=k.dtype))), np.cumsum(k, axis=-1))


@pytest.mark.parametrize("n", [64, 256, 300])
def test_systematic_indices_equal_a_search_on_the_same_uniforms(n, key):
    """The counts-then-indices resampler (products for both running sums) gives, swarm by swarm, the indices of the
    textbook search — slot m takes the j with C_{j−1} ≤ (m + u)/n < C_j — with the same uniforms u (NumPy's
    sequential cumulative sum; a rounding difference could move an index only when a position falls within an
    ulp of some C_j, probability ~1e-13 per swarm here)."""
    rng = np.random.default_rng(n)
    w = rng.dirichlet(np.full(n, 0.3), size=500)
    idx = np.asarray(systematic(key, jnp.asarray(w, dtype=w.dtype), n))
    u = np.asarray(systematic_uniforms(key, (500, 1), jnp.float64))[:, 0]
    c = np.cumsum(w, axis=-1)
    c /= c[:, -1:]
    expected = np.stack([np.searchsorted(ci, (np.arange(n) + ui) / n, side="right") for ci, ui in zip(c, u)])
    np.testing.assert_array_equal(idx, expected)


@pytest.mark.parametrize("n", [64, 256])
def test_systematic_indices_of_nearly_equal_weights_equal_the_search(n, key):
    """Nearly equal weights (every ancestor within the band of its slot: the elementwise path of the indices) give
    the textbook search's indices too; the test checks that the batch did take that path."""
    rng = np.random.default_rng(n)
    w = rng.dirichlet(np.full(n, 1e5), size=500)
    idx = np.asarray(systematic(key, jnp.asarray(w, dtype=w.dtype), n))
    assert np.abs(idx - np.arange(n)).max() <= BAND
    u = np.asarray(systematic_uniforms(key, (500, 1), jnp.float64))[:, 0]
    c = np.cumsum(w, axis=-1)
    c /= c[:, -1:]
    expected = np.stack([np.searchsorted(ci, (np.arange(n) + ui) / n, side="right") for ci, ui in zip(c, u)])
    np.testing.assert_array_equal(idx, expected)


# Jitted once per shape: run eagerly, every operation of these helpers would compile a program of its own.
_within_band_jit = jax.jit(_within_band, static_argnums=1)
_banded_indices_jit = jax.jit(_banded_indices, static_argnums=1)
_indices_from_counts_jit = jax.jit(_indices_from_counts, static_argnums=1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([6, 9, 64]), st.floats(0.0, 3.0), st.integers(0, 2**32 - 1))
def test_banded_indices_agree_with_counting(k, spread, seed):
    """For monotone counts ``N`` (``N_{K−1} = K``), ``a_m = #{j : N_j ≤ m}`` counted directly in NumPy: the band test
    says exactly whether every ``|a_m − m| ≤ BAND``, the elementwise formula gives ``a`` when it does, and
    ``_indices_from_counts`` gives ``a`` on either path. ``spread`` scales how far the weights are from equal."""
    rng = np.random.default_rng(seed)
    w = np.exp(spread * rng.standard_normal((3, k)))
    c = np.cumsum(w, axis=-1) / w.sum(axis=-1, keepdims=True)
    counts = np.clip(np.ceil(k * c - rng.uniform(size=(3, 1))), 0, k).astype(np.int32)
    counts[:, -1] = k
    expected = (counts[:, None, :] <= np.arange(k)[None, :, None]).sum(axis=-1)
    near = bool(np.all(np.abs(expected - np.arange(k)) <= BAND))
    assert bool(_within_band_jit(jnp.asarray(counts), BAND)) == near
    if near:
        np.testing.assert_array_equal(np.asarray(_banded_indices_jit(jnp.asarray(counts), BAND)), expected)
    np.testing.assert_array_equal(np.asarray(_indices_from_counts_jit(jnp.asarray(counts), k)), expected)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_systematic_uniforms_are_uniform_and_independent_of_the_row(dtype, key):
    u = np.asarray(systematic_uniforms(key, (200_000, 1), dtype))[:, 0]
    assert u.dtype == dtype and u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 4 / np.sqrt(u.size)  # neighbouring rows (SE 1/√n)
    other = np.asarray(systematic_uniforms(jax.random.fold_in(key, 1), (200_000, 1), dtype))[:, 0]
    assert abs(np.corrcoef(u, other)[0, 1]) < 4 / np.sqrt(u.size)  # the next step's key
    bits = 24 if dtype == jnp.float32 else 53
    np.testing.assert_array_equal(u * 2.0**bits, np.floor(u * 2.0**bits))  # on the documented grid


def test_a_block_of_swarms_resampled_with_its_row_offset_draws_what_the_whole_batch_draws(key):
    w = np.random.default_rng(8).dirichlet(np.full(16, 0.3), size=9)
    whole = np.asarray(systematic(key, jnp.asarray(w), 16))
    np.testing.assert_array_equal(np.asarray(systematic(key, jnp.asarray(w[3:7]), 16, 3)), whole[3:7])
    u = np.asarray(systematic_uniforms(key, (9, 1), jnp.float64))
    np.testing.assert_array_equal(np.asarray(systematic_uniforms(key, (4, 1), jnp.float64, 3)), u[3:7])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_systematic_indices_stay_in_range_when_the_uniform_is_next_to_one(dtype):
    """``n − u`` rounds to ``n − 1`` for the largest uniform below 1 (in float32 for ~2⁻²³·n of the draws); the last
    slot must still take a valid ancestor (the last count is pinned to n), never the out-of-range index n, which the
    gather fills with NaN."""
    from verify.samplers.resampling import _systematic_indices

    n = 256
    w = np.full((1, n), 1.0 / n)
    c = jnp.asarray(np.cumsum(w, axis=-1) / w.sum(), dtype=dtype)
    u = jnp.asarray([[np.nextafter(dtype(1.0), dtype(0.0))]], dtype=dtype)
    idx = np.asarray(_systematic_indices(c, u, n))
    assert idx.shape == (1, n) and idx.min() >= 0 and idx.max() <= n - 1 and np.all(np.diff(idx[0]) >= 0)


def test_degenerate_weights_select_the_single_particle(key):
    w = jnp.zeros(8).at[5].set(1.0)
    for scheme in (systematic, multinomial):
        np.testing.assert_array_equal(np.asarray(scheme(key, w, 16)), 5)


def test_unknown_scheme_and_bad_shapes_raise():
    with pytest.raises(CatcompError, match="multinomial, systematic"):
        get_resampler("stratified-ish")
    with pytest.raises(ShapeMismatchError):
        systematic(jax.random.key(0), jnp.ones(()), 3)
    with pytest.raises(NonFiniteInputError):
        systematic(jax.random.key(0), jnp.array([0.5, jnp.nan]), 3)
    with pytest.raises(InvalidWeightsError):
        multinomial(jax.random.key(0), jnp.array([1.5, -0.5]), 3)


@given(st.integers(0, 2**32 - 1), st.floats(-50.0, 50.0))
def test_ess_bounds_and_shift_invariance(seed, shift):
    lw = np.random.default_rng(seed).normal(size=20) * 3.0
    ess = float(effective_sample_size(jnp.asarray(lw, dtype=lw.dtype)))
    assert 1.0 - 1e-12 <= ess <= 20.0 + 1e-12
    np.testing.assert_allclose(float(effective_sample_size(jnp.asarray(lw + shift, dtype=lw.dtype))), ess, rtol=1e-12)


def test_ess_extremes():
    np.testing.assert_allclose(float(effective_sample_size(jnp.zeros(16))), 16.0, rtol=1e-14)
    np.testing.assert_allclose(float(effective_sample_size(jnp.array([0.0, -1e3, -1e3]))), 1.0, rtol=1e-12)


def test_strategies_compare_with_their_class():
    """Strategies are static data of the compiled samplers (the jit cache's key): a subclass with another ``apply``
    and the same fields must not equal the class it extends, or it would run that class's compiled program."""
    from verify.samplers.resampling import Always, always, below_ess, never

    class Other(Always):
        def apply(self, key, weights, ess, log_weights, arrays):  # pragma: no cover - never called
            raise AssertionError

    assert always() == always() and hash(always()) == hash(always())
    assert always() != Other(systematic) and not always() == Other(systematic)
    assert below_ess(0.5) == below_ess(0.5) and below_ess(0.5) != below_ess(0.4) and never() == never()
    assert len({always(), Other(systematic), never()}) == 3


def test_gather_copies_the_ancestors_rows():
    from verify.samplers.resampling import _gather

    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 3, 5, 2)))
    idx = jnp.asarray(rng.integers(0, 5, size=(2, 3, 5)), dtype=jnp.int32)
    expected = np.take_along_axis(np.asarray(x), np.asarray(idx)[..., None], axis=2)
    gather = jax.jit(_gather, static_argnums=(2, 3))
    for in_range in (True, False):
        for flat in (True, False):  # one flat index into the rows, or take_along_axis (a sharded swarm axis)
            np.testing.assert_array_equal(np.asarray(gather(x, idx, in_range, flat)), expected)
            np.testing.assert_array_equal(np.asarray(gather(x[..., 0], idx, in_range, flat)), expected[..., 0])


def test_a_custom_schemes_out_of_range_ancestor_gives_nan_not_another_swarms_particle():
    from verify.samplers.resampling import always

    def bad(key, weights, n):  # slot 0 of swarm 0 points one past the end
        return jnp.zeros(weights.shape, dtype=jnp.int32).at[0, 0].set(n)

    x = jnp.arange(2 * 4 * 2, dtype=jnp.float64).reshape(2, 4, 2)
    w = jnp.full((2, 4), 0.25)
    for flat in (True, False):
        _, (out,), _ = always(bad)(jax.random.key(0), w, jnp.full(2, 4.0), jnp.log(w), (x,), flat_gather=flat)
        out = np.asarray(out)
        assert np.all(np.isnan(out[0, 0])) and not np.any(np.isnan(out[0, 1:])) and not np.any(np.isnan(out[1]))
        np.testing.assert_array_equal(out[1], np.broadcast_to(np.asarray(x)[1, 0], (4, 2)))
