"""Langevin correctors: ULA's known stationary bias, MALA's exact invariance, and their effect inside the samplers."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from closed_form import CatcompError, GaussianMixture, NonFiniteInputError, VPSchedule, paper_setting
from verify import MALA, ULA, fkc_sample, naive_sde_sample, source_scores
from verify.samplers.mcmc import mala_step, ula_step

SCHEDULE = VPSchedule()


def _run_chain(kernel, key, x0, n_steps):
    def body(x, k):
        return kernel(jax.random.fold_in(key, k), x), None

    return jax.jit(lambda x: jax.lax.scan(body, x, jnp.arange(n_steps))[0])(x0)


def test_ula_stationary_variance_matches_its_closed_form_and_mala_removes_the_bias(key):
    """On N(0, v): ULA's stationary variance is v/(1 − ε/(2v)) (module doc), MALA's is v. 40,000 chains,
    100 steps (ULA contracts by 1 − ε/v = 0.4 per step). 4 SE of a sample variance: 4·var·√(2/n)."""
    v, eps, n = 2.0, 1.2, 40_000
    score = lambda x, t: -x / v  # noqa: E731
    log_density = lambda x, t: -0.5 * jnp.sum(x**2, axis=-1) / v  # noqa: E731
    x0 = jnp.zeros((n, 1))
    ula = np.asarray(_run_chain(lambda k, x: ula_step(k, x, 0.0, score, eps), key, x0, 100))
    expected_ula = v / (1 - eps / (2 * v))
    assert abs(ula.var() - expected_ula) < 4 * expected_ula * np.sqrt(2 / n)
    x0 = jnp.sqrt(v) * jax.random.normal(jax.random.key(1), (n, 1), dtype=jnp.float64)  # start in π
    mala = np.asarray(_run_chain(lambda k, x: mala_step(k, x, 0.0, score, log_density, eps)[0], key, x0, 100))
    assert abs(mala.var() - v) < 4 * v * np.sqrt(2 / n)
    assert abs(mala.var() - expected_ula) > 8 * v * np.sqrt(2 / n)  # the two are distinguishable at this n


def test_mala_leaves_a_bimodal_mixture_invariant(key):
    """Exact draws from a two-component mixture, 20 MALA moves with a large step: mean and covariance stay within
    4 SE of the closed form; ULA at the same step drifts well outside."""
    mix = GaussianMixture(np.array([0.3, 0.7]), np.array([[-2.0, 0.0], [2.0, 1.0]]),
                          np.array([np.eye(2) * 0.5, np.diag([1.0, 0.3])]))
    score, log_density = mix.score, mix.logpdf
    n, eps = 40_000, 0.4
    x0 = mix.sample(jax.random.key(2), n)
    x_mala = np.asarray(_run_chain(lambda k, x: mala_step(k, x, 0.0, lambda y, t: score(y), lambda y, t: log_density(y),
                                                          eps)[0], key, x0, 20))
    x_ula = np.asarray(_run_chain(lambda k, x: ula_step(k, x, 0.0, lambda y, t: score(y), eps), key, x0, 20))
    mean, cov = np.asarray(mix.mean), np.asarray(mix.cov)
    se_mean = np.sqrt(np.diag(cov) / n)
    se_var = np.sqrt(2 * np.diag(cov) ** 2 / n) * 2  # draws of a bimodal law: kurtosis allowance ×2
    assert np.all(np.abs(x_mala.mean(0) - mean) < 4 * se_mean * 2)  # correlated chains: MALA moves are local
    assert np.all(np.abs(np.diag(np.cov(x_mala.T)) - np.diag(cov)) < 4 * se_var)
    assert np.any(np.abs(np.diag(np.cov(x_ula.T)) - np.diag(cov)) > 10 * se_var)


def test_correctors_inside_the_samplers_pull_toward_the_path(key):
    """NFC_OOD: naive composition overshoots the target variance (5.24) badly (≈ 8.6); MALA moves toward π_t after
    each step bring the output much closer; inside FKC they report per-step acceptance rates, some below 1."""
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, SCHEDULE)
    target_var = float(np.asarray(comp.target.cov)[0, 0])
    plain = np.asarray(naive_sde_sample(key, scores, comp.weights, SCHEDULE, 4000, n_steps=200))
    corrected = np.asarray(naive_sde_sample(key, scores, comp.weights, SCHEDULE, 4000, n_steps=200,
                                            corrector=MALA(step_size=0.2, n_steps=2)))
    err_plain = abs(plain.var(0).mean() - target_var)
    err_corr = abs(corrected.var(0).mean() - target_var)
    assert err_corr < 0.5 * err_plain, (err_plain, err_corr)
    res = fkc_sample(key, scores, comp.weights, SCHEDULE, 200, 4, n_steps=50, corrector=MALA(step_size=0.2))
    acc = np.asarray(res.acceptance)
    assert acc.shape == (50,) and np.all((acc > 0.5) & (acc <= 1)) and acc.min() < 1
    ula = fkc_sample(key, scores, comp.weights, SCHEDULE, 200, 4, n_steps=50, corrector=ULA(step_size=0.2))
    np.testing.assert_array_equal(np.asarray(ula.acceptance), 1.0)


@pytest.mark.parametrize(
    "corrector, error",
    [(MALA(step_size=-0.1), CatcompError), (ULA(step_size=float("nan")), NonFiniteInputError),
     (ULA(n_steps=0), CatcompError), ("mala", CatcompError)],
)
def test_invalid_correctors_raise(corrector, error):
    comp = paper_setting("NFC_ID").composition
    with pytest.raises(error):
        naive_sde_sample(jax.random.key(0), source_scores(comp, SCHEDULE), comp.weights, SCHEDULE, 10,
                         corrector=corrector)


def test_mala_with_closed_form_log_density_equals_default(key):
    """MALA's default log density (from the exact score objects) and the composition's own
    path_logpdf_unnormalized give identical samples."""
    comp = paper_setting("GMM_OOD").composition
    scores = source_scores(comp, SCHEDULE)
    explicit = MALA(step_size=0.1, log_density=partial(_path_logpdf, comp))
    a = naive_sde_sample(key, scores, comp.weights, SCHEDULE, 64, n_steps=30, corrector=MALA(step_size=0.1))
    b = naive_sde_sample(key, scores, comp.weights, SCHEDULE, 64, n_steps=30, corrector=explicit)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9)


def _path_logpdf(comp, x, t):
    return comp.path_logpdf_unnormalized(x, t, SCHEDULE)
