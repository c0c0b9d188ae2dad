"""Schedules: α_t from the exact integral of β, σ_t² = 1 − α_t², accuracy as t → 0, the shared time grid, the base
class and the diffused covariance α_t²Σ + σ_t²I."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad
from strategies import spd_matrix

from closed_form import (
    CatcompError,
    CosineSchedule,
    Schedule,
    VPSchedule,
    diffused_covariance,
    diffused_variance,
    reverse_time_grid,
)


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


# ---------------------------------------------------------------------------------------- the base class and helpers

@dataclass(frozen=True)
class _ConstantBeta(Schedule):
    """``β(t) = b``: ``log α_t = −bt/2``; a schedule written against the base class alone."""

    b: float = 2.0
    T: float = 1.0

    def beta(self, t):
        return self.b + 0.0 * jnp.asarray(t)

    def log_alpha(self, t):
        return -0.5 * self.b * jnp.asarray(t)


def test_alpha_sigma2_sigma_are_defined_once_in_the_base_class():
    for cls in (VPSchedule, CosineSchedule):
        assert issubclass(cls, Schedule)
        for name in ("alpha", "sigma2", "sigma"):
            assert getattr(cls, name) is getattr(Schedule, name), (cls, name)


@given(b=st.floats(0.01, 50.0), t=st.floats(1e-8, 1.0))
def test_base_class_scales_match_the_hand_formulas_of_a_constant_schedule(b, t):
    s = _ConstantBeta(b)
    np.testing.assert_allclose(float(s.alpha(t)), np.exp(-0.5 * b * t), rtol=1e-14)
    # σ² = 1 − e^{−bt}, written with expm1 here too: the point is the base class's relative accuracy at small bt.
    np.testing.assert_allclose(float(s.sigma2(t)), -np.expm1(-b * t), rtol=1e-14)
    np.testing.assert_allclose(float(s.sigma(t)), np.sqrt(-np.expm1(-b * t)), rtol=1e-14)
    assert hash(s) == hash(_ConstantBeta(b))  # frozen: usable as a static argument of jax.jit


def _kernel_covariance(schedule, cov, t):
    """``Cov(α x₀ + σ ε)`` as ``[αI, σI] diag(Σ, I) [αI, σI]ᵀ`` with ``α = exp(−½∫₀ᵗβ)`` by quadrature and
    ``σ² = 1 − α²``: the forward kernel's covariance from its definition, not from the schedule's closed forms."""
    d = cov.shape[0]
    integral, _ = quad(lambda s: float(schedule.beta(s)), 0.0, t, epsabs=0, epsrel=1e-13)
    alpha = np.exp(-0.5 * integral)
    sigma = np.sqrt(1.0 - alpha**2)
    lin = np.hstack([alpha * np.eye(d), sigma * np.eye(d)])
    joint = np.block([[cov, np.zeros((d, d))], [np.zeros((d, d)), np.eye(d)]])
    return lin @ joint @ lin.T


@given(d=st.integers(1, 5), seed=st.integers(0, 2**32 - 1), log10_cond=st.floats(0.0, 6.0),
       scale=st.floats(0.1, 10.0), t=st.floats(0.01, 0.99), cosine=st.booleans())
def test_diffused_covariance_is_the_forward_kernels_covariance(d, seed, log10_cond, scale, t, cosine):
    schedule = CosineSchedule() if cosine else VPSchedule()
    cov = spd_matrix(np.random.default_rng(seed), d, log10_cond, scale)
    want = _kernel_covariance(schedule, cov, t)
    got = np.asarray(diffused_covariance(schedule, cov, t))
    # Entry-wise relative error is meaningless for off-diagonal entries near 0; compare relative to the matrix scale.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.max(np.abs(want)))
    # A stack of covariances is diffused one by one, and the diagonal case is the per-direction variance.
    stacked = np.asarray(diffused_covariance(schedule, np.stack([cov, 2.0 * cov]), t))
    np.testing.assert_allclose(stacked[1], _kernel_covariance(schedule, 2.0 * cov, t), rtol=0,
                               atol=1e-11 * np.max(np.abs(stacked[1])))
    eig = np.linalg.eigvalsh(cov)
    np.testing.assert_allclose(np.asarray(diffused_variance(schedule, eig, t)),
                               np.linalg.eigvalsh(want), rtol=1e-10, atol=1e-11 * np.max(np.abs(want)))


def test_scalar_coefficients_are_the_schedules_values_from_one_compiled_call():
    """(α_t, σ_t², β(t)) as floats equal the schedule's own op-by-op values (same formulas, compiled together), for
    hashable schedules and, op by op, for an unhashable one."""
    from closed_form.schedules import scalar_coefficients

    @dataclass(eq=True)  # eq without frozen: unhashable, so it cannot be a static argument
    class Unhashable(Schedule):
        T: float = 1.0

        def beta(self, t):
            return 2.0 + 0.0 * jnp.asarray(t)

        def log_alpha(self, t):
            return -jnp.asarray(t)

    for schedule in (VPSchedule(), VPSchedule(0.5, 5.0, 2.0), CosineSchedule(), Unhashable()):
        for t in (1e-5, 0.3, 0.9 * schedule.T):
            got = scalar_coefficients(schedule, t)
            assert all(type(v) is float for v in got)
            expected = (schedule.alpha(t), schedule.sigma2(t), schedule.beta(t))
            np.testing.assert_allclose(got, [float(v) for v in expected], rtol=1e-14, atol=0)
