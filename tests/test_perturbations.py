"""Score-error models: each is calibrated to its training-side ε (exactly for Gaussians) and its sampling-side
norms are exact — checked against Monte Carlo of ‖δ‖ and against the exact scores of refit sources."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import gaussians_params

from closed_form import CatcompError, Gaussian, VPSchedule, paper_setting
from closed_form.perturbations import (
    DensityPowerError,
    MixtureMisspecificationError,
    calibrated_affine_error,
    misspecification_error,
    misspecified_mixture,
    precision_error,
)
from verify.analysis.montecarlo import calibrated_mixture_misspecification, fit_gaussian_mle, mixture_dsm_excess_monte_carlo

SCHEDULE = VPSchedule()
TIMES = [1e-4, 0.1, 0.5, 1.0]


# The closed-form norms, jitted once per shape (the errors are pytrees, passed as arguments) instead of evaluated as
# chains of eager single operations for every new Hypothesis shape; the values are the same.
_training_norm = jax.jit(lambda err, t: err.training_norm(t))


def mc_sq_norm(error, dist, t, key, n=200_000):
    """Monte Carlo of E_dist‖δ(·, t)‖² with its standard error."""
    v = np.sum(np.asarray(error.delta(dist.sample(key, n), t)) ** 2, axis=-1)
    return v.mean(), v.std(ddof=1) / np.sqrt(n)


@given(gaussians_params(max_dim=4, max_log10_cond=4.0), st.floats(1e-3, 10.0), st.sampled_from([1.0, -1.0]))
def test_precision_error_is_calibrated_exactly(params, eps, sign):
    mean, cov, _ = params
    err = precision_error(Gaussian(mean, cov), SCHEDULE, eps, sign)
    for t in TIMES:
        np.testing.assert_allclose(float(_training_norm(err, t)), eps, rtol=1e-12)


def test_affine_norms_match_monte_carlo(key):
    src = paper_setting("NFC_OOD").sources[0]
    q = paper_setting("NFC_OOD").composition.target
    err = precision_error(src, SCHEDULE, 0.5)
    for i, t in enumerate([0.05, 0.5]):
        q_t = q.noised(SCHEDULE, t)
        m, se = mc_sq_norm(err, q_t, t, jax.random.fold_in(key, i))
        assert abs(m - float(err.norm_under(q_t, t)) ** 2) < 5 * se
        v4 = np.sum(np.asarray(err.delta(q_t.sample(jax.random.fold_in(key, 10 + i), 200_000), t)) ** 2, -1) ** 2
        assert abs(v4.mean() - float(err.fourth_moment_under(q_t, t))) < 5 * v4.std() / np.sqrt(v4.size)


def test_calibrated_affine_error_rescales_any_direction():
    src = Gaussian(np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]]))
    direction = lambda t: (jnp.array([[1.0, 2.0], [0.0, -1.0]]) * (1 + t), jnp.array([0.3, -0.2]))  # noqa: E731
    err = calibrated_affine_error(src, SCHEDULE, 0.25, direction)
    for t in TIMES:
        np.testing.assert_allclose(float(err.training_norm(t)), 0.25, rtol=1e-12)


def test_misspecification_error_is_the_score_difference_of_the_fit(key):
    src = paper_setting("NFC_ID").sources[0]
    fit = fit_gaussian_mle(key, src, 2000)
    err = misspecification_error(src, fit, SCHEDULE)
    x = np.random.default_rng(0).normal(size=(5, 2))
    for t in TIMES:
        expected = fit.noised(SCHEDULE, t).score(x) - src.noised(SCHEDULE, t).score(x)
        np.testing.assert_allclose(np.asarray(err.delta(x, t)), np.asarray(expected), rtol=1e-10, atol=1e-12)


def test_mle_fit_is_sample_mean_and_biased_covariance(key):
    src = Gaussian(np.array([1.0, 2.0]), np.array([[3.0, 1.0], [1.0, 2.0]]))
    fit = fit_gaussian_mle(key, src, 500)
    x = np.asarray(src.sample(key, 500))
    np.testing.assert_allclose(np.asarray(fit.mean), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fit.cov), np.cov(x.T, bias=True), rtol=1e-10)


# γ ≤ 0.12 keeps E e^{2γD} finite under Q_{0.5}, so the Monte Carlo standard error is itself reliable.
@pytest.mark.parametrize("gamma", [0.05, 0.12])
def test_density_power_error_is_calibrated_and_grows_out_of_distribution(gamma, key):
    setting = paper_setting("FC_OOD")
    src, q = setting.sources[0], setting.composition.target
    err = DensityPowerError(src, SCHEDULE, 0.2, gamma)
    for t in TIMES:
        np.testing.assert_allclose(float(err.training_norm(t)), 0.2, rtol=1e-12)
    t = 0.5
    q_t = q.noised(SCHEDULE, t)
    m, se = mc_sq_norm(err, q_t, t, key)
    assert abs(m - float(err.sq_norm_under(q_t, t))) < 5 * se
    # Where Q lives the error is larger than where it was trained.
    assert float(err.norm_under(q_t, t)) > 0.2
    # At t = 0, Q = N(0, 10 I) has heavier tails than a1 = diag(10, 1) can pay for when γ > 0.05 (1/10 − 2γ < 0).
    assert np.isinf(float(err.sq_norm_under(q, 0.0))) == (gamma > 0.05)
    # At t = 0.5 the threshold in the second axis is 2γ < 1/1.711 · 1.0 (variances 1.711 under Q_t, 1.0 under q_t).
    steep = DensityPowerError(src, SCHEDULE, 0.2, 0.3)
    assert np.isinf(float(steep.sq_norm_under(q_t, t)))


def test_invalid_error_parameters_raise():
    src = Gaussian(np.zeros(2), np.eye(2))
    with pytest.raises(CatcompError, match="gamma"):
        DensityPowerError(src, SCHEDULE, 0.1, gamma=0.5)
    with pytest.raises(CatcompError, match="ε"):
        precision_error(src, SCHEDULE, float("nan"))
    with pytest.raises(CatcompError, match="sign"):
        precision_error(src, SCHEDULE, 0.1, sign=2.0)
    with pytest.raises(CatcompError, match="n > d"):
        fit_gaussian_mle(jax.random.key(0), src, 2)
    with pytest.raises(CatcompError, match="direction"):
        DensityPowerError(src, SCHEDULE, 0.1, direction=[0.0, 0.0])


K_SE = 4.0  # Monte Carlo tolerance: 4 standard errors


def test_misspecified_mixture_is_the_source_at_zero_and_rejects_invalid_strengths():
    src = paper_setting("GMM_ID").sources[0]
    same = misspecified_mixture(src, 0.0)
    for name in ("weights", "means", "covs"):
        np.testing.assert_allclose(getattr(same, name), getattr(src, name), rtol=1e-15, atol=1e-15)
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(CatcompError, match="> −1"):
            misspecified_mixture(src, bad)


def test_mixture_misspecification_is_a_gradient_field_and_density_power_is_not():
    """A score error that is a gradient has a symmetric Jacobian; the misspecification error's is (to round-off),
    the density-power error's is not (a fixed direction times a non-constant scalar)."""
    src = paper_setting("GMM_OOD").sources[2]
    err = MixtureMisspecificationError(src, misspecified_mixture(src, 0.2), SCHEDULE)
    power = DensityPowerError(paper_setting("NFC_ID").sources[0], SCHEDULE, 0.1, 0.2)
    jac = jax.jit(jax.jacfwd(lambda y: err.delta(y[None], 0.3)[0]))  # one program each, not eager JVP operations
    jac_power = jax.jit(jax.jacfwd(lambda y: power.delta(y[None], 0.3)[0]))
    for x in np.random.default_rng(0).normal(size=(4, 2)) * 3:
        j = np.asarray(jac(jnp.asarray(x)))
        np.testing.assert_allclose(j, j.T, atol=1e-12 * np.abs(j).max())
        jp = np.asarray(jac_power(jnp.asarray(x)))
        assert abs(jp[0, 1] - jp[1, 0]) > 1e-3 * np.abs(jp).max()


def test_mixture_dsm_monte_carlo_matches_the_exact_gaussian_value(key):
    """A one-component mixture is a Gaussian: the Monte Carlo DSM excess must meet the exact quadrature of
    misspecification_error within K_SE standard errors."""
    from closed_form import GaussianMixture
    from closed_form.score_matching import affine_dsm_excess

    g = paper_setting("NFC_OOD").sources[0]
    fit = Gaussian(np.asarray(g.mean) + 0.2, np.asarray(g.cov) * 1.3)
    error = MixtureMisspecificationError(GaussianMixture.from_gaussian(g), GaussianMixture.from_gaussian(fit), SCHEDULE)
    mc, se = mixture_dsm_excess_monte_carlo(error, key, n_per_node=20_000)
    exact = affine_dsm_excess(misspecification_error(g, fit, SCHEDULE).field, lambda t: g.noised(SCHEDULE, t),
                              SCHEDULE)
    assert abs(mc - exact) < K_SE * se


def test_calibrated_mixture_misspecification_meets_eps_within_its_standard_error(key):
    src = paper_setting("GMM_OOD").sources[0]
    err = calibrated_mixture_misspecification(src, SCHEDULE, 0.01, key)
    on_key, se_cal = mixture_dsm_excess_monte_carlo(err, key)
    np.testing.assert_allclose(on_key, 0.01**2, rtol=1e-8)  # the equation Brent's method solved
    fresh, se = mixture_dsm_excess_monte_carlo(err, jax.random.fold_in(key, 7))
    assert abs(fresh - 0.01**2) < K_SE * np.hypot(se, se_cal)
    assert err.calibration_se == pytest.approx(se_cal)


def test_misspecification_field_is_the_same_concrete_and_traced():
    """Concrete inputs take the per-eigendirection route (fast exact laws), traced ones explicit inverses (defined
    derivatives); both are the same field, and weighting keeps the per-direction structure."""
    from closed_form.fields import CodiagonalField, FieldSum
    from closed_form.perturbations import weighted_field

    src = paper_setting("FC_ID").sources[2]  # isotropic: repeated eigenvalues
    fit = Gaussian(np.array([0.1, -0.2]), np.array([[9.0, 0.7], [0.7, 11.0]]))
    concrete = misspecification_error(src, fit, SCHEDULE)

    def traced(t, mean, cov):
        return misspecification_error(src, Gaussian._unchecked(mean, cov), SCHEDULE).field(t)

    for t in TIMES:
        a1, b1 = concrete.field(t)
        a2, b2 = jax.jit(traced)(t, fit.mean, fit.cov)
        np.testing.assert_allclose(a1, a2, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b1, b2, rtol=1e-12, atol=1e-15)
        aw, bw = weighted_field(-2.0, concrete)(t)
        np.testing.assert_allclose(aw, -2.0 * a1, rtol=1e-15)
        np.testing.assert_allclose(bw, -2.0 * b1, rtol=1e-15)
    assert isinstance(weighted_field(-2.0, concrete), (CodiagonalField, FieldSum))
    hess = jax.jit(jax.hessian(lambda m: jnp.sum(traced(0.3, m, fit.cov)[1] ** 2)))(fit.mean)  # one program
    assert np.all(np.isfinite(np.asarray(hess)))
