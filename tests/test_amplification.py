"""Amplification of source misspecification as a generalized eigenvalue: the autodiff Hessians against finite
differences, λ_max against the direct small-δ ratio KL/ε² along its direction and along random ones, the crossover
and the ε calibration against the exact quantities they solve for, and the naive field of misspecified sources two
ways."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from closed_form import CatcompError, Gaussian, VPSchedule, compose, kl, paper_setting, sde_law
from closed_form.composition import geometric_field
from closed_form.fields import add_fields
from closed_form.perturbations import misspecification_error, weighted_field
from theory.amplification import (
    amplification,
    calibrate,
    calibrate_many,
    crossover,
    eigenspace_range,
    n_parameters,
    perturbed_sources_checked,
    target_kl,
    training_error_sq,
    worst_case_misspecification,
)

SCHEDULE = VPSchedule()


@pytest.fixture(scope="module")
def nfc_ood():
    comp = paper_setting("NFC_OOD").composition
    return comp, amplification(comp, SCHEDULE)


def _second_difference(f, v, h):
    """``vᵀ∇²f(0)v`` by central second differences with one Richardson step: truncation O(h⁴)."""
    def d2(step):
        return (f(step * v) + f(-step * v) - 2.0 * f(0.0 * v)) / step**2
    return (4.0 * d2(h / 2) - d2(h)) / 3.0


def test_hessians_match_finite_differences(nfc_ood):
    comp, amp = nfc_ood
    rng = np.random.default_rng(0)
    # compiled once: the second differences evaluate each function 30 times
    kl_jit = jax.jit(lambda d: target_kl(comp, SCHEDULE, d))
    eps_jit = jax.jit(lambda d: training_error_sq(comp, SCHEDULE, d))
    kl_f = lambda d: float(kl_jit(jnp.asarray(d)))  # noqa: E731
    eps_f = lambda d: float(eps_jit(jnp.asarray(d)))  # noqa: E731
    for _ in range(3):
        v = rng.normal(size=amp.hess_kl.shape[0])
        v /= np.linalg.norm(v)
        # truncation O(h⁴) ≈ 1e-12·f and round-off ≈ 1e-16·|f|/h² stay below 1e-7 relative at h = 2e-3
        np.testing.assert_allclose(_second_difference(kl_f, v, 2e-3), v @ amp.hess_kl @ v, rtol=1e-7)
        np.testing.assert_allclose(_second_difference(eps_f, v, 2e-3), v @ amp.hess_eps @ v, rtol=1e-7)


def test_generalized_eigenpairs(nfc_ood):
    _, amp = nfc_ood
    for lam, v in zip(amp.eigenvalues, amp.directions.T):
        np.testing.assert_allclose(amp.hess_kl @ v, lam * amp.hess_eps @ v, atol=1e-8 * np.abs(amp.hess_kl).max())
        np.testing.assert_allclose(0.5 * v @ amp.hess_eps @ v, 1.0, rtol=1e-10)
    np.testing.assert_allclose(amp.source_share.sum(), 1.0, rtol=1e-12)


def _ratio(comp, d):
    d = jnp.asarray(d)
    return float(target_kl(comp, SCHEDULE, d)) / float(training_error_sq(comp, SCHEDULE, d))


def _extrapolated_ratio(comp, v, s):
    """``KL/ε²`` along ``v`` at ``s → 0``: ``r(s) = R + c·s + O(s²)``, so ``2r(s/2) − r(s) = R + O(s²)``."""
    return 2.0 * _ratio(comp, 0.5 * s * v) - _ratio(comp, s * v)


def test_small_delta_ratio_tends_to_the_top_eigenvalue(nfc_ood):
    """KL/ε² along the worst direction tends to λ_max with an error linear in the step (a third-order term over a
    second-order one): fitted log-log slope 1, and the extrapolated ratio equals λ_max to O(s²)."""
    comp, amp = nfc_ood
    steps = np.array([1e-2, 1e-3, 1e-4])
    gaps = [abs(_ratio(comp, s * amp.direction) / amp.value - 1.0) for s in steps]
    slope = np.polyfit(np.log10(steps), np.log10(gaps), 1)[0]
    assert 0.9 < slope < 1.1, gaps
    # the O(s) gap is 3e-3 at s = 1e-4, so the O(s²) remainder after one extrapolation step is about 1e-5
    np.testing.assert_allclose(_extrapolated_ratio(comp, amp.direction, 1e-4), amp.value, rtol=1e-4)


def test_random_directions_are_amplified_less(nfc_ood):
    """The generalized Rayleigh quotient of any direction is at most λ_max; the small-δ ratio extrapolated to
    δ → 0 carries the O(s²) error (1e-4 relative, as established above)."""
    comp, amp = nfc_ood
    rng = np.random.default_rng(1)
    for _ in range(20):
        v = rng.normal(size=amp.hess_kl.shape[0])
        assert _extrapolated_ratio(comp, v / np.linalg.norm(v), 1e-4) <= amp.value * (1 + 1e-4)


def test_calibration_and_crossover_solve_their_equations(nfc_ood):
    comp, amp = nfc_ood
    d = calibrate(comp, SCHEDULE, 0.004, -amp.direction)
    np.testing.assert_allclose(np.sqrt(float(training_error_sq(comp, SCHEDULE, d))), 0.004, rtol=1e-10)
    level = 0.05
    c = crossover(comp, SCHEDULE, level, amp, t_min=1e-4)
    np.testing.assert_allclose(float(target_kl(comp, SCHEDULE, jnp.asarray(c.delta), 1e-4)), level, rtol=1e-7)
    np.testing.assert_allclose(np.sqrt(float(training_error_sq(comp, SCHEDULE, jnp.asarray(c.delta)))), c.eps,
                               rtol=1e-12)
    assert crossover(comp, SCHEDULE, 0.0, amp).eps == 0.0


def test_crossover_is_the_second_order_prediction_where_kl_is_quadratic():
    """In the ID settings the worst direction shifts the means only, along which KL and ε² are exactly quadratic:
    the crossover must equal √(level/λ_max) (up to t_min ≠ 0, which only rescales the KL by a factor near 1)."""
    comp = paper_setting("NFC_ID").composition
    amp = amplification(comp, SCHEDULE)
    c = crossover(comp, SCHEDULE, 0.0074, amp, t_min=0.0)
    np.testing.assert_allclose(c.eps, np.sqrt(0.0074 / amp.value), rtol=1e-7)


def test_worst_case_misspecification_and_the_naive_field_two_ways(nfc_ood):
    comp, amp = nfc_ood
    fitted, delta = worst_case_misspecification(comp, SCHEDULE, 0.003, amp)
    np.testing.assert_allclose(np.sqrt(float(training_error_sq(comp, SCHEDULE, jnp.asarray(delta)))), 0.003,
                               rtol=1e-10)
    np.testing.assert_allclose(kl(comp.target, compose(fitted, comp.weights).target),
                               float(target_kl(comp, SCHEDULE, jnp.asarray(delta))), rtol=1e-9)
    start = comp.noised_target(SCHEDULE, SCHEDULE.T)
    direct = sde_law(geometric_field(fitted, comp.weights, SCHEDULE), SCHEDULE, start, 1e-4)
    errors = [weighted_field(w, misspecification_error(s, f, SCHEDULE))
              for w, s, f in zip(comp.weights, comp.sources, fitted)]
    via_errors = sde_law(add_fields(comp.naive_field(SCHEDULE), *errors), SCHEDULE, start, 1e-4)
    assert float(kl(direct, via_errors)) < 1e-12


def test_invalid_input():
    mix = paper_setting("GMM_ID").composition
    with pytest.raises(CatcompError, match="Gaussian sources"):
        amplification(mix, SCHEDULE)
    comp = paper_setting("FC_ID").composition
    v = np.zeros(n_parameters(2, 3))
    v[2] = -1.0  # shrink a1's variance along x: the covariance leaves the PD cone at s = 10
    with pytest.raises(CatcompError, match="positive-definite"):
        calibrate(comp, SCHEDULE, 10.0, v)
    with pytest.raises(CatcompError, match="finite number"):
        calibrate(comp, SCHEDULE, -1.0, v)
    with pytest.raises(CatcompError, match="finite KL"):
        crossover(comp, SCHEDULE, np.inf)
    with pytest.raises(CatcompError):
        perturbed_sources_checked(comp.sources, 20.0 * v)
    assert isinstance(perturbed_sources_checked(comp.sources, 0 * v)[0], Gaussian)


# ---------------------------------------------------------------------------------------------- eigenspaces
def _three_d():
    from closed_form.settings import Setting

    a = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
    b = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
    return Setting("three_d", (a, b, Gaussian(np.zeros(3), np.eye(3))), (1.0, 1.0, -1.0), ("A", "B", "base"))


def test_paper_top_eigenspace_is_two_dimensional(nfc_ood):
    """The top eigenvalue is double (the setting's dihedral symmetry); the next one is far below."""
    _, amp = nfc_ood
    assert amp.multiplicity == 2 and amp.top_eigenspace.shape[1] == 2
    assert amp.next_eigenvalue < 0.9 * amp.value


def test_calibrate_many_matches_calibrate(nfc_ood):
    comp, amp = nfc_ood
    directions = amp.directions[:, -4:].T
    deltas, valid = calibrate_many(comp, SCHEDULE, 0.004, directions)
    assert valid.all()
    for d, v in zip(deltas, directions):
        np.testing.assert_allclose(d, calibrate(comp, SCHEDULE, 0.004, v), rtol=1e-11, atol=1e-15)


def test_eigenspace_range_against_brute_force(nfc_ood):
    """The range of KL(Q‖Q̂) at ε over the top eigenspace against an independent computation: the eigenspace as the
    null space of H_K − λ_max H_ε (SVD, not eigh's columns), 360 directions one degree apart, each calibrated by
    Brent's method and its KL by the closed-form Gaussian KL of the composed refits (not the trace form used for
    the Hessians). The search's extremes bound the brute force's and lie within its grid error of them."""
    from scipy.linalg import null_space

    comp, amp = nfc_ood
    eps = 0.005
    res = eigenspace_range(comp, SCHEDULE, eps, amp)
    basis = null_space(amp.hess_kl - amp.value * amp.hess_eps, rcond=1e-8)
    assert basis.shape[1] == res.multiplicity == 2
    values = []
    for phi in np.deg2rad(np.arange(360)):
        d = calibrate(comp, SCHEDULE, eps, basis @ np.array([np.cos(phi), np.sin(phi)]))
        fitted = perturbed_sources_checked(comp.sources, d)
        values.append(float(kl(comp.target, compose(fitted, comp.weights).target)))
    values = np.asarray(values)
    width = values.max() - values.min()
    assert width > 0.2 * values.max()  # the range is real: KL(Q‖Q̂) is not constant over the eigenspace
    # a 1° grid misses an extreme by at most f''·(0.5°)²/2, about 1e-4 of the width here
    assert res.kl_max >= values.max() - 1e-9 * values.max() and res.kl_max - values.max() < 1e-3 * width
    assert res.kl_min <= values.min() + 1e-9 * values.min() and values.min() - res.kl_min < 1e-3 * width
    # the extremes' perturbations are calibrated to ε and attain the values reported
    for d, value in ((res.delta_min, res.kl_min), (res.delta_max, res.kl_max)):
        np.testing.assert_allclose(np.sqrt(float(training_error_sq(comp, SCHEDULE, jnp.asarray(d)))), eps, rtol=1e-10)
        np.testing.assert_allclose(float(target_kl(comp, SCHEDULE, jnp.asarray(d))), value, rtol=1e-9)
    # the worst-case misspecification is the eigenspace member with the largest KL, whatever basis eigh returned
    _, worst = worst_case_misspecification(comp, SCHEDULE, eps, amp)
    np.testing.assert_allclose(float(target_kl(comp, SCHEDULE, jnp.asarray(worst))), res.kl_max, rtol=1e-9)


def test_amplification_on_a_three_dimensional_composition():
    """A non-paper composition (3-D, three labelled sources): the Hessians' generalized eigenpairs, the row of the
    experiment, and its source shares by label."""
    from verify.experiments.amplification import amplification_row

    setting = _three_d()
    amp = amplification(setting.composition, SCHEDULE)
    assert amp.hess_kl.shape == (n_parameters(3, 3),) * 2
    for lam, v in zip(amp.eigenvalues, amp.directions.T):
        np.testing.assert_allclose(amp.hess_kl @ v, lam * amp.hess_eps @ v, atol=1e-8 * np.abs(amp.hess_kl).max())
    row = amplification_row(setting).iloc[0]
    assert row["group"] == "other" and np.isnan(row["family_base_variance"])
    assert row["multiplicity"] == amp.multiplicity and row["kl_hat_min"] <= row["kl_hat_max"]
    assert [s.split()[0] for s in row["worst_shares"].split(", ")] == ["A", "B", "base"]
