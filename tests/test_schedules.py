"""Schedules: α_t from the exact integral of β, σ_t² = 1 − α_t², accuracy as t → 0, and the shared time grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from closed_form import CatcompError, CosineSchedule, VPSchedule, reverse_time_grid


@pytest.mark.parametrize("schedule", [VPSchedule(), VPSchedule(0.5, 5.0, 2.0), CosineSchedule()])
@pytest.mark.parametrize("t", [1e-5, 0.01, 0.3, 0.77])
def test_alpha_is_exp_of_minus_half_integrated_beta(schedule, t):
    t = t * schedule.T
    integral, _ = quad(lambda s: float(schedule.beta(s)), 0.0, t, epsabs=0, epsrel=1e-13)
    np.testing.assert_allclose(float(schedule.alpha(t)), np.exp(-0.5 * integral), rtol=1e-12)
    np.testing.assert_allclose(float(schedule.alpha(t) ** 2 + schedule.sigma2(t)), 1.0, rtol=1e-14)


def test_paper_vp_schedule_closed_form():
    s = VPSchedule()
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(np.asarray(s.log_alpha(t)), -0.5 * (0.1 * t + 0.5 * 19.9 * t**2), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(s.beta(t)), 0.1 + 19.9 * t, rtol=1e-14)


def test_sigma2_keeps_relative_accuracy_at_small_t():
    s = VPSchedule()
    t = 1e-9
    # σ² = 1 − exp(−∫β) ≈ ∫β for tiny t; naive 1 − α² would lose ~7 digits here.
    expected = -np.expm1(-(0.1 * t + 0.5 * 19.9 * t**2))
    np.testing.assert_allclose(float(s.sigma2(t)), expected, rtol=1e-14)


def test_cosine_beta_is_minus_derivative_of_log_alpha_squared():
    s = CosineSchedule()
    for t in [0.1, 0.5, 0.9]:
        d = jax.grad(lambda u: -2.0 * s.log_alpha(u))(t)
        np.testing.assert_allclose(float(d), float(s.beta(t)), rtol=1e-12)


def test_schedule_methods_trace_under_jit():
    s = VPSchedule()
    f = jax.jit(lambda t: s.sigma(t) * s.alpha(t))
    np.testing.assert_allclose(float(f(0.4)), float(s.sigma(0.4) * s.alpha(0.4)), rtol=1e-15)
    assert f(jnp.float64(0.4)).dtype == jnp.float64


def test_reverse_time_grid_matches_paper_convention():
    grid = reverse_time_grid(VPSchedule(), 500)
    assert grid.shape == (501,)
    assert grid[0] == 1 - 1e-5 and grid[-1] == 1e-5
    np.testing.assert_allclose(np.diff(grid)[1:-1], -1 / 500, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs", [dict(beta_min=-1.0), dict(beta_min=2.0, beta_max=1.0), dict(T=0.0), dict(beta_max=float("nan"))]
)
def test_invalid_vp_schedule_raises(kwargs):
    with pytest.raises(CatcompError, match="VPSchedule"):
        VPSchedule(**kwargs)


def test_invalid_grid_raises():
    with pytest.raises(CatcompError, match="positive integer"):
        reverse_time_grid(VPSchedule(), 0)
