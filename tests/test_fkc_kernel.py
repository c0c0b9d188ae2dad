"""The FKC kernel piece by piece: one :func:`fkc_step`'s potential against the closed-form scores, its mutation
against the Euler–Maruyama formula, the resampling strategies on hand-built weights, and :func:`fkc_sample` as
``fkc_init`` + a loop of ``fkc_step`` + ``fkc_pick``.

Closed forms at rtol 1e-10; the Monte Carlo moment check at ``k = 5`` standard errors (fixed seed), with the SE of a
Gaussian covariance entry ``√((C_ii C_jj + C_ij²)/n)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.scipy.special import logsumexp

from closed_form import CatcompError, Gaussian, NonFiniteInputError, ShapeMismatchError, VPSchedule, compose
from verify import (
    MALA,
    ULA,
    FKCState,
    always,
    below_ess,
    fkc_init,
    fkc_model,
    fkc_pick,
    fkc_sample,
    fkc_step,
    naive_sde_sample,
    never,
    source_scores,
    systematic,
)
from verify.samplers.discretization import StepKeys, draw_start, mutate, split_keys, step_keys, time_steps
from verify.samplers import AuthorsState
from verify.samplers.noise import standard_normal
from verify.samplers.smc import resampling_strategy

SCHEDULE = VPSchedule()
T, H = 0.4, 0.01

# Weights summing to 1.3, so the potential's divergence term (1 − Σ w_i)·d is exercised; rotated covariances.
SOURCES = [Gaussian(np.array([1.0, -0.5]), np.array([[2.0, 0.6], [0.6, 1.0]])),
           Gaussian(np.array([-0.3, 0.8]), np.array([[0.7, -0.2], [-0.2, 3.0]]))]
WEIGHTS = (0.7, 0.6)
SCORES = source_scores(compose(SOURCES, list(WEIGHTS)), SCHEDULE)


def _closed_form_scores(x, t):
    """``s_i(x, t) = −Σ_{i,t}⁻¹(x − α_t μ_i)`` from :meth:`closed_form.Gaussian.noised` (Cholesky solves), and
    ``S = Σ_i w_i s_i``; NumPy arrays of ``x``'s shape."""
    s = [np.asarray(g.noised(SCHEDULE, t).score(jnp.asarray(x))) for g in SOURCES]
    return s, sum(w * si for w, si in zip(WEIGHTS, s))


def _closed_form_rate(x, t):
    """``g = ½β[(1 − Σ w_i) d + ‖S‖² − Σ w_i ‖s_i‖²]`` from the closed-form scores."""
    s, comp = _closed_form_scores(x, t)
    quad = np.sum(comp**2, -1) - sum(w * np.sum(si**2, -1) for w, si in zip(WEIGHTS, s))
    return 0.5 * float(SCHEDULE.beta(t)) * ((1.0 - sum(WEIGHTS)) * x.shape[-1] + quad)


def _points(key, shape):
    return np.asarray(jax.random.normal(key, shape + (2,), dtype=jnp.float64)) * 1.5


# ------------------------------------------------------------------------------------------------ potential
@pytest.mark.parametrize("weight_clip", [None, 0.004])
def test_one_step_log_weight_increment_is_h_times_g(weight_clip, key):
    """Without resampling, ``L' = L + ΔL − log Z_k`` and ``log Z_k = log Σ_j e^{L_j + ΔL_j}`` with
    ``ΔL = clip(h·g(x, t))``; with one particle, ``log Ẑ`` grows by ``ΔL`` itself. (The clip fires on some of these
    particles: |h·g| reaches a few 1e-3 here.)"""
    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=never(), weight_clip=weight_clip)
    x = _points(key, (3, 5))
    inc = H * _closed_form_rate(x, T)
    if weight_clip is not None:
        assert np.any(np.abs(inc) > weight_clip)  # the clip is exercised
        inc = np.clip(inc, -weight_clip, weight_clip)
    state, info = fkc_step(jax.random.key(1), fkc_init(jnp.asarray(x), model), T, H, model)
    log_z = np.log(np.mean(np.exp(inc), axis=-1))
    np.testing.assert_allclose(np.asarray(info.log_normalizer_increment), log_z, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(state.log_normalizer), log_z, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(state.log_weights), -np.log(5) + inc - log_z[:, None], rtol=1e-10)
    w = np.exp(-np.log(5) + inc - log_z[:, None])
    np.testing.assert_allclose(np.asarray(info.ess), 1.0 / np.sum(w**2, -1), rtol=1e-10)
    assert not np.any(np.asarray(info.resampled))

    one, info1 = fkc_step(jax.random.key(1), fkc_init(jnp.asarray(x[:, :1]), model), T, H, model)
    np.testing.assert_allclose(np.asarray(info1.log_normalizer_increment), inc[:, 0], rtol=1e-10)
    np.testing.assert_array_equal(np.asarray(one.log_weights), 0.0)


def test_authors_step_weights_the_moved_particles_by_the_clipped_rate(key):
    """``variant="authors"``: the increment is ``h·clip(g(x', t − h), ±g_clip)`` at the *moved* particles ``x'``."""
    g_clip = 0.3
    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=never(), variant="authors", g_clip=g_clip)
    x = _points(key, (4, 1))
    state, info = fkc_step(jax.random.key(2), fkc_init(jnp.asarray(x), model, T), T, H, model)
    moved = np.asarray(state.particles)
    g = _closed_form_rate(moved, T - H)
    assert np.any(np.abs(g) > g_clip) and np.any(np.abs(g) < g_clip)
    np.testing.assert_allclose(np.asarray(info.log_normalizer_increment), H * np.clip(g, -g_clip, g_clip)[:, 0],
                               rtol=1e-10)
    # The composed score at the moved particles rides along for the next move.
    np.testing.assert_allclose(np.asarray(state.score), _closed_form_scores(moved, T - H)[1], rtol=1e-10)


# ------------------------------------------------------------------------------------------------ mutation
def test_mutation_is_the_euler_maruyama_formula(key):
    """With the step's noise ``z`` redrawn from its key: ``x' = x + h(½βx + βS(x, t)) + √(βh) z`` exactly."""
    x = _points(key, (3, 4))
    keys = StepKeys(*jax.random.split(jax.random.key(5), 3))
    _, comp = _closed_form_scores(x, T)
    moved, acc = mutate(fkc_model(SCORES, WEIGHTS, SCHEDULE), keys, jnp.asarray(x), jnp.asarray(comp), T, H)
    beta = float(SCHEDULE.beta(T))
    z = np.asarray(standard_normal(keys.noise, x.shape, "hash"))
    np.testing.assert_allclose(np.asarray(moved), x + H * (0.5 * beta * x + beta * comp) + np.sqrt(beta * H) * z,
                               rtol=1e-10)
    assert acc is None


def test_step_moves_a_fixed_point_with_the_em_mean_and_covariance():
    """``n`` copies of one point ``x`` through one step (no resampling): sample mean ``x + h(½βx + βS(x, t))`` and
    covariance ``βh I`` within 5 SE."""
    n = 20_000
    x = np.array([0.8, -1.1])
    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=never())
    state, _ = fkc_step(jax.random.key(7), fkc_init(jnp.broadcast_to(jnp.asarray(x), (1, n, 2)), model), T, H,
                        model)
    y = np.asarray(state.particles)[0]
    beta = float(SCHEDULE.beta(T))
    mean = x + H * (0.5 * beta * x + beta * _closed_form_scores(x, T)[1])
    cov = beta * H * np.eye(2)
    se_mean = np.sqrt(np.diag(cov) / n)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(y.mean(0) - mean) <= 5 * se_mean), (y.mean(0), mean)
    assert np.all(np.abs(np.cov(y.T) - cov) <= 5 * se_cov), (np.cov(y.T), cov)


# ------------------------------------------------------------------------------------------------ strategies
# Four swarms of eight: equal weights (ESS = 8 exactly), one dominant particle, two halves, a mild tilt.
LOG_W = np.log(np.array([
    [1.0] * 8,
    [50.0] + [1.0] * 7,
    [1.0] * 4 + [1e-3] * 4,
    [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4],
]))
LOG_W = LOG_W - np.log(np.sum(np.exp(LOG_W), -1, keepdims=True))
W = np.exp(LOG_W)
W[0], LOG_W[0] = 0.125, np.log(0.125)  # exact, so that ESS = 8 exactly
ESS = 1.0 / np.sum(W**2, -1)
X = np.arange(4 * 8 * 2, dtype=np.float64).reshape(4, 8, 2)


def _apply(strategy, key):
    log_w, (x,), resampled = strategy(key, jnp.asarray(W), jnp.asarray(ESS), jnp.asarray(LOG_W), (jnp.asarray(X),))
    return np.asarray(log_w), np.asarray(x), np.asarray(resampled)


def test_never_leaves_every_swarm_alone(key):
    log_w, x, resampled = _apply(never(), key)
    assert not resampled.any()
    np.testing.assert_array_equal(log_w, LOG_W)
    np.testing.assert_array_equal(x, X)


def test_always_resamples_every_swarm_with_its_scheme(key):
    log_w, x, resampled = _apply(always(systematic), key)
    assert resampled.all()
    np.testing.assert_array_equal(log_w, -np.log(8))
    idx = np.asarray(systematic(key, jnp.asarray(W), 8))
    np.testing.assert_array_equal(x, np.take_along_axis(X, idx[..., None], axis=1))


@pytest.mark.parametrize("c", [0.0, 0.3, 0.6, 1.0])
def test_below_ess_resamples_exactly_the_swarms_below_the_threshold(c, key):
    log_w, x, resampled = _apply(below_ess(c, systematic), key)
    expected = ESS < c * 8
    np.testing.assert_array_equal(resampled, expected)
    assert ESS[0] == 8.0 and not resampled[0]  # strict inequality: equal weights never resample, even at c = 1
    idx = np.asarray(systematic(key, jnp.asarray(W), 8))
    np.testing.assert_array_equal(log_w[expected], -np.log(8))
    np.testing.assert_array_equal(log_w[~expected], LOG_W[~expected])
    np.testing.assert_array_equal(x[expected], np.take_along_axis(X, idx[..., None], axis=1)[expected])
    np.testing.assert_array_equal(x[~expected], X[~expected])


#: One compiled program for every Hypothesis example (eager logsumexp compiles each of its operations).
_logsumexp = jax.jit(logsumexp)


@given(st.lists(st.floats(-8.0, 8.0), min_size=8, max_size=8), st.floats(0.0, 1.0))
def test_below_ess_decision_is_ess_below_c_k(log_w, c):
    log_w = np.asarray(log_w)[None, :] - _logsumexp(np.asarray(log_w, dtype=np.float64))
    log_w = np.asarray(log_w)
    w = np.exp(log_w)
    ess = 1.0 / np.sum(w**2, -1)
    x = np.zeros(log_w.shape + (1,))
    _, _, resampled = below_ess(c)(jax.random.key(0), jnp.asarray(w), jnp.asarray(ess), jnp.asarray(log_w),
                                   (jnp.asarray(x),))
    assert bool(np.asarray(resampled)[0]) == bool(ess[0] < c * log_w.shape[-1])


def test_fkc_step_reports_the_strategy_decision(key):
    """Inside a step: ``resampled`` is ``ESS < c·K`` and ``n_resampling`` counts it. Half the swarms hold six
    copies of one point (equal increments, so ESS = 6 up to rounding: kept), half six spread points (resampled)."""
    x = _points(key, (16, 6)) * 2.0
    x[:8] = x[:8, :1]
    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=below_ess(0.995))
    state, info = fkc_step(jax.random.key(3), fkc_init(jnp.asarray(x), model), T, 0.05, model)
    expected = np.asarray(info.ess) < 0.995 * 6
    assert not expected[:8].any() and expected[8:].all()  # both outcomes occur
    np.testing.assert_array_equal(np.asarray(info.resampled), expected)
    np.testing.assert_array_equal(np.asarray(state.n_resampling), expected.astype(np.int32))


def test_strategy_inputs_are_checked():
    with pytest.raises(CatcompError, match=r"\[0, 1\]"):
        below_ess(1.5)
    with pytest.raises(NonFiniteInputError):
        below_ess(float("nan"))
    with pytest.raises(CatcompError, match="multinomial, systematic"):
        always("stratified")
    with pytest.raises(CatcompError, match="below_ess"):
        fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling="systematic")
    with pytest.raises(ShapeMismatchError, match="dimension 2"):
        fkc_model(SCORES, WEIGHTS, SCHEDULE, dim=3)
    with pytest.raises(CatcompError, match="t=grid"):
        fkc_init(jnp.zeros((1, 2, 2)), fkc_model(SCORES, WEIGHTS, SCHEDULE, variant="authors"))


def test_sampler_options_map_onto_strategies():
    assert resampling_strategy("systematic", None, 8) == always(systematic)
    assert resampling_strategy("multinomial", 0.5, 8) == below_ess(0.5, "multinomial")
    assert resampling_strategy("systematic", 0.0, 8) == never()
    assert resampling_strategy("systematic", None, 1) == never()


# ------------------------------------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("options", [
    dict(),
    dict(resampling="multinomial", ess_threshold=0.9, corrector=MALA(0.02, 2)),
    dict(variant="authors", g_clip=2.0, ess_threshold=0.999),
])
def test_fkc_sample_is_init_then_steps_then_pick(options, key):
    """The jitted scan of :func:`fkc_sample` equals an explicit Python loop of the kernel with the same key
    streams (one step's keys are the step index folded into the noise, resampling and corrector streams)."""
    n_s, n_p, n_steps = 6, 8, 8
    res = fkc_sample(key, SCORES, WEIGHTS, SCHEDULE, n_s, n_p, n_steps=n_steps, **options)

    strategy = resampling_strategy(options.get("resampling", "systematic"), options.get("ess_threshold"), n_p)
    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=strategy, corrector=options.get("corrector"),
                      variant=options.get("variant", "catcomp"), g_clip=options.get("g_clip", "default"))
    keys = split_keys(key)
    t, h = time_steps(SCHEDULE, n_steps, 1e-5)
    state = fkc_init(draw_start(keys.start, "standard", (n_s, n_p), 2), model, t[0])
    assert isinstance(state, AuthorsState if options.get("variant") == "authors" else FKCState)
    ess = []
    for k in range(n_steps):
        state, info = fkc_step(step_keys(keys, k), state, t[k], h[k], model)
        ess.append(float(jnp.mean(info.ess)))
    samples = fkc_pick(keys.pick, state)

    np.testing.assert_array_equal(np.asarray(res.n_resampling), np.asarray(state.n_resampling))
    assert 0 < int(np.sum(res.n_resampling)) or "ess_threshold" not in options
    for got, want in [(res.samples, samples), (res.particles, state.particles), (res.log_weights, state.log_weights),
                      (res.log_normalizer, state.log_normalizer), (res.ess, np.asarray(ess))]:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-14)


def test_one_particle_with_a_corrector_is_the_naive_sampler(key):
    """K = 1 never resamples, so FKC's draws are the naive sampler's — the same mutation, corrector included."""
    naive = naive_sde_sample(key, SCORES, WEIGHTS, SCHEDULE, 16, n_steps=20, corrector=ULA(0.02, 1))
    res = fkc_sample(key, SCORES, WEIGHTS, SCHEDULE, 16, 1, n_steps=20, corrector=ULA(0.02, 1))
    np.testing.assert_array_equal(np.asarray(res.samples), np.asarray(naive))
    np.testing.assert_array_equal(np.asarray(res.n_resampling), 0)


# ------------------------------------------------------------------------------------------------ reweighting
@pytest.mark.parametrize("k", [5, 16, 72])
def test_reweight_is_the_normalized_log_sum_exp(k):
    """Against NumPy in float64 (log-sum-exp by ``np.logaddexp.reduce``), for K that the slice-wise sums take
    (16, 72: multiples of 8) and one they do not (5); spreads of 40 nats, so the shift by the maximum matters."""
    from verify.samplers.smc import reweight

    rng = np.random.default_rng(k)
    log_w = rng.normal(size=(7, k)) * 3.0
    log_w -= np.logaddexp.reduce(log_w, axis=-1, keepdims=True)
    inc = rng.normal(size=(7, k)) * 20.0
    new, w, log_z, ess = (np.asarray(a) for a in jax.jit(reweight)(jnp.asarray(log_w), jnp.asarray(inc)))
    a = log_w + inc
    want_log_z = np.logaddexp.reduce(a, axis=-1)
    want_w = np.exp(a - want_log_z[:, None])
    np.testing.assert_allclose(log_z, want_log_z, rtol=1e-12)
    np.testing.assert_allclose(new, a - want_log_z[:, None], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w, want_w, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ess, 1.0 / np.sum(want_w**2, axis=-1), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ blocks of swarms
@pytest.mark.parametrize("options", [
    dict(),
    dict(variant="authors", resampling=below_ess(0.95), noise="box-muller"),
])
def test_a_run_in_blocks_of_swarms_draws_what_the_whole_batch_draws(options, key):
    """Three blocks of four swarms, one after another, against the twelve at once: the same resampling counts, and
    the same particles, weights, ``log Ẑ``, picks and swarm-mean ESS up to rounding (the noise and the systematic
    uniforms are indexed by the swarm's place in the whole run; code compiled for another batch shape may round
    an operation's last bit differently)."""
    from verify.samplers.model import check_run, run_kernel

    model = fkc_model(SCORES, WEIGHTS, SCHEDULE, **options)
    n_steps, stop_after, eps, start = check_run(SCHEDULE, 12, None, 1e-5, "standard", 2)
    whole = run_kernel(key, model, start, 12, 8, n_steps, stop_after, eps, n_blocks=1)
    blocks = run_kernel(key, model, start, 12, 8, n_steps, stop_after, eps, n_blocks=3)
    assert int(np.sum(whole.n_resampling)) > 0
    np.testing.assert_array_equal(np.asarray(blocks.n_resampling), np.asarray(whole.n_resampling))
    for name in ("samples", "particles", "log_weights", "log_normalizer", "ess"):
        np.testing.assert_allclose(np.asarray(getattr(blocks, name)), np.asarray(getattr(whole, name)), rtol=1e-12,
                                   atol=1e-14)


def test_block_count_splits_only_large_runs_that_blocks_can_reproduce():
    from verify.samplers.model import BLOCK_COORDINATES, block_count, check_run, run_kernel

    model = fkc_model(SCORES, WEIGHTS, SCHEDULE)
    assert block_count(model, 5000, 256) == 4  # 2.6e6 coordinates: 3 blocks needed, 4 the first divisor of 5000
    assert block_count(model, 5000, 64) == 1  # 6.4e5 ≤ BLOCK_COORDINATES
    assert 5000 * 64 * 2 <= BLOCK_COORDINATES < 5000 * 256 * 2
    assert block_count(model, 4999, 256) == 1  # a prime: blocks of one swarm would be too small
    assert block_count(model, 5000 * 256, 1) == 1  # the naive samplers stay whole
    with pytest.MonkeyPatch.context() as mp:  # an accelerator runs the whole batch at once
        mp.setattr(jax, "default_backend", lambda: "gpu")
        assert block_count(model, 5000, 256) == 1
    for other in (fkc_model(SCORES, WEIGHTS, SCHEDULE, noise="threefry"),
                  fkc_model(SCORES, WEIGHTS, SCHEDULE, resampling=always("multinomial")),
                  fkc_model(SCORES, WEIGHTS, SCHEDULE, corrector=ULA(0.02, 1))):
        assert block_count(other, 5000, 256) == 1
        n_steps, stop_after, eps, start = check_run(SCHEDULE, 2, None, 1e-5, "standard", 2)
        with pytest.raises(CatcompError, match="divisor"):
            run_kernel(jax.random.key(0), other, start, 4, 2, n_steps, stop_after, eps, n_blocks=2)
    n_steps, stop_after, eps, start = check_run(SCHEDULE, 2, None, 1e-5, "standard", 2)
    for bad in (3, 0, 2.0):
        with pytest.raises(CatcompError, match="divisor of n_swarms = 4"):
            run_kernel(jax.random.key(0), model, start, 4, 2, n_steps, stop_after, eps, n_blocks=bad)
