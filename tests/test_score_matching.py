"""The DSM excess ε² = (1/T)∫σ_t² E‖ŝ − s‖² dt: exact for affine errors under Gaussians, checked against the
ε-prediction loss it stands for (Monte Carlo, paired draws), against adaptive quadrature in t, and its inner
expectation against Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from closed_form import CatcompError, Gaussian, VPSchedule, paper_setting
from closed_form.errors import QuadratureNotConvergedError
from closed_form.perturbations import misspecification_error
from closed_form.score_matching import affine_dsm_excess, affine_dsm_excess_sq, affine_sq_norm, gauss_legendre

SCHEDULE = VPSchedule()
K_SE = 4.0  # Monte Carlo tolerance: 4 standard errors (two-sided p ≈ 6e-5 per comparison)


def _error(shift=0.3, scale=1.3):
    src = paper_setting("NFC_OOD").sources[2]
    fit = Gaussian(np.asarray(src.mean) + np.array([shift, -0.5 * shift]),
                   np.asarray(src.cov) * scale + np.array([[0.0, 0.1], [0.1, 0.0]]))
    return src, fit, misspecification_error(src, fit, SCHEDULE)


def test_inner_expectation_matches_monte_carlo(key):
    a = jnp.array([[1.0, 0.4], [-0.2, 2.0]])
    b = jnp.array([0.5, -1.0])
    g = Gaussian(np.array([1.0, -2.0]), np.array([[2.0, 0.5], [0.5, 1.0]]))
    x = g.sample(key, 400_000)
    v = np.sum(np.asarray(-x @ a.T + b) ** 2, axis=-1)
    exact = float(affine_sq_norm(a, b, g.mean, g.cov))
    assert abs(v.mean() - exact) < K_SE * v.std(ddof=1) / np.sqrt(v.size)


def test_dsm_excess_is_the_epsilon_prediction_loss_excess(key):
    """ε² equals E_{t∼U[0,T]} E[‖ε̂ − ε‖² − ‖ε* − ε‖²] with ε̂ = −σ_t ŝ and ε* = −σ_t s: the derivation of
    paper_notes.md, checked by paired Monte Carlo of the actual loss (t, x₀, ε drawn; x_t = α_t x₀ + σ_t ε)."""
    src, fit, err = _error()
    n = 400_000
    kt, kx, ke = jax.random.split(key, 3)
    t = jax.random.uniform(kt, (n,), minval=0.0, maxval=SCHEDULE.T, dtype=jnp.float64)
    x0 = src.sample(kx, n)
    noise = jax.random.normal(ke, (n, 2), dtype=jnp.float64)
    a, s = SCHEDULE.alpha(t)[:, None], SCHEDULE.sigma(t)[:, None]
    xt = a * x0 + s * noise

    def score(g, x, tt):
        return jax.vmap(lambda xi, ti: g.noised(SCHEDULE, ti).score(xi[None])[0])(x, tt)

    eps_hat, eps_star = -s * score(fit, xt, t), -s * score(src, xt, t)
    diff = np.sum(np.asarray(eps_hat - noise) ** 2, -1) - np.sum(np.asarray(eps_star - noise) ** 2, -1)
    exact = affine_dsm_excess(err.field, lambda tt: src.noised(SCHEDULE, tt), SCHEDULE)
    assert abs(diff.mean() - exact) < K_SE * diff.std(ddof=1) / np.sqrt(n)


def test_gauss_legendre_matches_adaptive_quadrature():
    src, fit, err = _error()
    law = paper_setting("NFC_OOD").composition.noised_target  # a sampling-side law (Q_t) as well

    def integrand(t, dist):
        a, b = err.field(t)
        g = dist(t)
        return float(SCHEDULE.sigma2(t) * affine_sq_norm(a, b, g.mean, g.cov))

    for dist in (lambda t: src.noised(SCHEDULE, t), lambda t: law(SCHEDULE, t)):
        reference = quad(integrand, 0.0, 1.0, args=(dist,), epsabs=0.0, epsrel=1e-13, limit=200)[0]
        np.testing.assert_allclose(affine_dsm_excess(err.field, dist, SCHEDULE), reference, rtol=1e-10)


def test_exact_scores_have_zero_excess():
    src = paper_setting("FC_ID").sources[0]
    err = misspecification_error(src, src, SCHEDULE)
    assert affine_dsm_excess(err.field, lambda t: src.noised(SCHEDULE, t), SCHEDULE) == 0.0


def test_convergence_check_and_invalid_input():
    src, fit, err = _error(shift=3.0, scale=5.0)
    law = lambda t: src.noised(SCHEDULE, t)  # noqa: E731
    with pytest.raises(QuadratureNotConvergedError, match="pass a larger n_nodes"):
        affine_dsm_excess(err.field, law, SCHEDULE, n_nodes=1)
    for bad in (0, 2.5, -3):
        with pytest.raises(CatcompError, match="positive integer"):
            gauss_legendre(0.0, 1.0, bad)
    with pytest.raises(CatcompError, match="b > a"):
        gauss_legendre(1.0, 0.0, 4)
    # the traceable form integrates polynomials of degree 2n − 1 exactly (σ_t² is not one; this checks the rule)
    x, w = gauss_legendre(0.0, 2.0, 3)
    np.testing.assert_allclose(np.sum(w * x**5), 2.0**6 / 6, rtol=1e-14)
    assert np.isfinite(float(affine_dsm_excess_sq(err.field, law, SCHEDULE, 8)))
