"""The first-order sensitivity bound TV(Q, Q̂) ≲ Σ|w_i| √(1+χ²(Q‖P_i)) ‖u_i‖ on Gaussian configurations."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import spd_matrix

from closed_form import Gaussian, compose, paper_setting
from closed_form.errors import ImproperCompositionError
from theory.sensitivity import sensitivity_bound


@st.composite
def perturbed_configs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = draw(st.floats(1e-3, 0.05))  # relative size of the perturbation: the bound is first order
    sources, perturbed = [], []
    for _ in range(3):
        cov = spd_matrix(rng, 2, rng.uniform(0, 1), rng.uniform(0.5, 5))
        mean = rng.normal(size=2)
        sources.append(Gaussian(mean, cov))
        e = rng.normal(size=(2, 2)) * size
        perturbed.append(Gaussian(mean + size * rng.normal(size=2), (np.eye(2) + e) @ cov @ (np.eye(2) + e).T))
    try:
        compose(sources, [1.0, 1.0, -1.0])
        compose(perturbed, [1.0, 1.0, -1.0])
    except ImproperCompositionError:
        assume(False)
    return sources, perturbed


@given(perturbed_configs())
def test_sensitivity_bound_holds_for_small_perturbations(config):
    sources, perturbed = config
    res = sensitivity_bound(sources, perturbed, [1.0, 1.0, -1.0])
    assert res.holds, res
    assert res.amplification_l2 <= res.factor


def test_single_source_amplification_is_one():
    p = Gaussian(np.zeros(2), np.diag([2.0, 1.0]))
    p_hat = Gaussian(np.array([0.1, 0.0]), np.diag([2.2, 1.0]))
    res = sensitivity_bound([p], [p_hat], [1.0])
    np.testing.assert_allclose(res.amplification, 1.0, rtol=1e-7)
    np.testing.assert_allclose(res.ress_inverse, [1.0], rtol=1e-12)


def test_ood_setting_has_infinite_factor():
    s = paper_setting("FC_OOD")
    perturbed = [Gaussian(np.asarray(p.mean), 1.01 * np.asarray(p.cov)) for p in s.sources]
    res = sensitivity_bound(s.sources, perturbed, s.weights)
    assert np.isinf(res.factor) and np.isinf(res.bound) and res.tv_target > 0
