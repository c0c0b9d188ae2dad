"""The two-point construction: equal training-side errors, scores equal off the ball, and a lower bound that is
negligible in distribution and large out of it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from closed_form import paper_setting
from closed_form.quadrature import cubature_logpdf, integrate_function
from theory.two_point import bump, bump_gradient, two_point_bound


def test_bump_gradient_is_autodiff_gradient_and_vanishes_outside():
    c, r = jnp.array([1.0, -2.0]), 1.5
    x = jnp.asarray(np.random.default_rng(0).uniform(-2, 4, size=(200, 2)))
    auto = jax.vmap(jax.grad(lambda y: bump(y, c, r)))(x)
    np.testing.assert_allclose(np.asarray(bump_gradient(x, c, r)), np.asarray(auto), rtol=1e-10, atol=1e-14)
    outside = np.linalg.norm(np.asarray(x - c), axis=1) >= r
    assert np.all(np.asarray(bump_gradient(x, c, r))[outside] == 0.0)


@pytest.fixture(scope="module")
def bounds():
    return {name: two_point_bound(paper_setting(name).composition, 0.1) for name in ["FC_ID", "FC_OOD"]}


def test_training_side_errors_are_at_most_eps_and_equal_in_both_worlds(bounds):
    for r in bounds.values():
        np.testing.assert_allclose(r.train_norms.max(), 0.1, rtol=1e-12)
        # The ball avoids every source's 95 % HDR, so each source puts little mass there.
        assert np.all(r.source_mass_in_ball < 0.05)


def test_lower_bound_negligible_in_distribution_large_out_of_it(bounds):
    assert bounds["FC_ID"].tv_lower_bound < 1e-8
    assert bounds["FC_OOD"].tv_lower_bound > 0.1
    assert bounds["FC_OOD"].w2_lower_bound > 0.5


def test_tv_against_an_independent_cubature(bounds):
    # Recompute TV(Q̂+, Q̂-) over a Cartesian box around the ball from scratch, with the normalizers as stated.
    r = bounds["FC_OOD"]
    q = paper_setting("FC_OOD").composition.target
    k = r.amplitude  # Σ w_i = 1
    c, rad = r.center, r.radius
    lp = cubature_logpdf(q)  # NumPy log-density: thousands of cubature calls, no compiled-call latency each
    h = jax.jit(lambda x: bump(x, c, rad))
    z = {sg: 1.0 + integrate_function(lambda x, sg=sg: np.exp(np.asarray(lp(x))) * (np.exp(sg * k * np.asarray(h(x))) - 1),
                                      c - rad, c + rad, rtol=1e-8, atol=1e-12) for sg in (1, -1)}
    inside = 0.5 * integrate_function(
        lambda x: np.exp(np.asarray(lp(x))) * np.abs(np.exp(k * np.asarray(h(x))) / z[1] - np.exp(-k * np.asarray(h(x))) / z[-1])
        - np.exp(np.asarray(lp(x))) * np.abs(1 / z[1] - 1 / z[-1]),
        c - rad, c + rad, rtol=1e-8, atol=1e-12)
    tv = inside + 0.5 * abs(1 / z[1] - 1 / z[-1])
    np.testing.assert_allclose(tv, r.tv, rtol=1e-5)


def test_two_point_table_on_a_non_paper_setting_and_its_limits():
    """A 2-D Gaussian composition that is none of the paper's runs (labelled unlabelled); a 3-D one and weights
    summing to 0 are refused with the reason."""
    from closed_form import Gaussian
    from closed_form.errors import InvalidWeightsError, ShapeMismatchError
    from closed_form.settings import Setting
    from verify.experiments.two_point import EXPERIMENT, two_point_table

    a = Gaussian(np.array([1.0, 0.0]), np.diag([3.0, 1.0]))
    b = Gaussian(np.array([0.0, 1.0]), np.diag([1.0, 3.0]))
    mine = Setting("mine", (a, b, Gaussian(np.zeros(2), 1.2 * np.eye(2))), (1.0, 1.0, -1.0))
    row = two_point_table(mine, 0.1).iloc[0]
    assert row["setting"] == "mine" and row["id_ood"] == "unlabelled"
    np.testing.assert_allclose(row["train_norm_max"], 0.1, rtol=1e-9)
    three = Setting("three", (Gaussian(np.zeros(3), np.eye(3)), Gaussian(np.ones(3), np.eye(3))), (1.0, 1.0))
    with pytest.raises(ShapeMismatchError, match="2-D"):
        two_point_table(three)
    assert "2-D" in EXPERIMENT.reason_not_applicable(three)
    flat = Setting("flat", (Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.zeros(2), 2.0 * np.eye(2))), (1.0, -1.0))
    with pytest.raises(InvalidWeightsError, match="non-zero sum"):
        two_point_table(flat)
