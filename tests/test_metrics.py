"""Sample metrics against closed forms: sliced W₂ of shifted Gaussians, the Gaussian-kernel MMD² of Gaussians."""

import jax
import numpy as np
import pytest

from closed_form import ShapeMismatchError
from verify.analysis.metrics import median_heuristic, mmd2_unbiased, sliced_w2


def test_sliced_w2_of_a_shift_matches_closed_form(key):
    """For ``y = x + μ`` (the same draws shifted) every projection's optimal coupling is the shift itself, so
    ``SW₂² = E_θ⟨θ, μ⟩² = ‖μ‖²/d`` up to the Monte Carlo over directions (2000 of them: relative SE ≈ 2%)."""
    x = np.random.default_rng(0).normal(size=(3000, 2))
    mu = np.array([3.0, -1.0])
    sw = sliced_w2(x, x + mu, key, n_proj=2000)
    # E_θ⟨θ,μ⟩⁴ = 3‖μ‖⁴/8 in 2-D ⇒ SD of ⟨θ,μ⟩² is ‖μ‖²/√8; 4 SE on the squared value.
    assert abs(sw**2 - mu @ mu / 2) < 4 * (mu @ mu) / np.sqrt(8 * 2000)


def test_sliced_w2_is_symmetric_and_zero_on_identical_samples(key):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 3)), rng.normal(size=(500, 3)) + 0.5
    assert sliced_w2(x, x, key, 50) == 0.0
    np.testing.assert_allclose(sliced_w2(x, y, key, 200), sliced_w2(y, x, key, 200), rtol=1e-12)


def _gaussian_mmd2(delta, s2, ell, d):
    """MMD² between N(μ₁, s²I) and N(μ₂, s²I) with the kernel exp(−‖a−b‖²/(2ℓ²)): the Gaussian integrals give
    E k(x, x') = (ℓ²/(ℓ²+2s²))^{d/2} and E k(x, y) = that times exp(−‖Δ‖²/(2(ℓ²+2s²)))."""
    c = (ell**2 / (ell**2 + 2 * s2)) ** (d / 2)
    return 2 * c * (1 - np.exp(-(delta @ delta) / (2 * (ell**2 + 2 * s2))))


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_unbiased_mmd2_matches_gaussian_closed_form(shift):
    """Mean of 40 independent estimates (n = m = 300) vs the closed form; tolerance 4 SE of that mean."""
    rng = np.random.default_rng(2)
    delta = np.array([shift, 0.0])
    ests = [mmd2_unbiased(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + delta, bandwidth=1.5)
            for _ in range(40)]
    expected = _gaussian_mmd2(delta, 1.0, 1.5, 2)
    assert abs(np.mean(ests) - expected) < 4 * np.std(ests, ddof=1) / np.sqrt(len(ests))
    if shift > 0:
        assert np.mean(ests) > 10 * np.std(ests, ddof=1) / np.sqrt(len(ests))  # the test has power


def test_median_heuristic_and_input_checks():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    y = np.array([[6.0, 8.0]])
    # Distances: 5, 10, 5 → median 5.
    assert median_heuristic(x, y) == 5.0
    with pytest.raises(ShapeMismatchError):
        mmd2_unbiased(x, np.ones((3, 3)))
    with pytest.raises(ShapeMismatchError):
        sliced_w2(x, np.ones((3, 2)), jax.random.key(0), 5)
