"""The change-of-measure (transfer) bound: holds for random Gaussian pairs and affine errors, is attained by the
ratio-shaped error, and is infinite exactly when χ² is."""

import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import spd_matrix

from closed_form import Gaussian, VPSchedule, paper_setting
from closed_form.perturbations import AffineScoreError, DensityPowerError, DensityRatioError, precision_error
from theory.transfer import ratio_error_abs_moment, transfer_bound

SCHEDULE = VPSchedule()


@st.composite
def gaussian_pairs(draw):
    d = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = Gaussian(rng.normal(size=d), spd_matrix(rng, d, rng.uniform(0, 1.5), rng.uniform(0.5, 3)))
    q = Gaussian(rng.normal(size=d), spd_matrix(rng, d, rng.uniform(0, 1.5), rng.uniform(0.5, 3)))
    assume(np.linalg.eigvalsh(2 * np.asarray(p.cov) - np.asarray(q.cov))[0] > 0.05)
    return p, q, rng


@given(gaussian_pairs())
def test_transfer_bound_holds_for_affine_errors(pair):
    p, q, rng = pair
    d = p.dim
    a, b = jnp.asarray(rng.normal(size=(d, d))), jnp.asarray(rng.normal(size=d))
    err = AffineScoreError(p, SCHEDULE, lambda t: (a, b))
    res = transfer_bound(err, p, q)
    assert res.holds, res


def test_transfer_bound_is_attained_by_the_ratio_shaped_error():
    p = Gaussian(np.zeros(2), np.diag([2.0, 1.0]))
    q = Gaussian(np.array([0.5, -0.3]), np.diag([1.5, 1.2]))
    err = DensityRatioError(p, q, 0.3)
    measured = ratio_error_abs_moment(err, q)
    bound = 0.3 * np.sqrt(err.ress_inverse)
    np.testing.assert_allclose(measured, bound, rtol=1e-8)


def test_bound_is_infinite_exactly_when_chi2_is():
    s = paper_setting("FC_OOD")
    q = s.composition.target
    err = precision_error(s.sources[0], SCHEDULE, 0.1)
    at_zero = transfer_bound(err, s.sources[0], q, t=0.0)
    assert np.isinf(at_zero.ress_inverse) and np.isinf(at_zero.abs_bound) and np.isfinite(at_zero.abs_measured)
    t = 0.5
    diffused = transfer_bound(err, s.sources[0].noised(SCHEDULE, t), q.noised(SCHEDULE, t), t=t)
    assert np.isfinite(diffused.ress_inverse) and diffused.holds
    # Paid where Q lives: more than the training-side size.
    assert diffused.sq_measured > diffused.train_norm**2


def test_transfer_bound_holds_for_density_power_error():
    s = paper_setting("NFC_ID")
    t = 0.3
    src_t, q_t = s.sources[0].noised(SCHEDULE, t), s.composition.target.noised(SCHEDULE, t)
    res = transfer_bound(DensityPowerError(s.sources[0], SCHEDULE, 0.2, 0.05), src_t, q_t, t=t)
    np.testing.assert_allclose(res.train_norm, 0.2, rtol=1e-12)
    assert res.holds


def test_transfer_rows_on_a_non_paper_setting_and_its_dimension_limit():
    """A 2-D composition that is none of the paper's (sources named by its labels); in 3-D the cubature of E_Q‖δ‖ does
    not apply, which the experiment says (not applicable) and the function raises."""
    import pytest

    from closed_form.errors import ShapeMismatchError
    from closed_form.settings import Setting
    from verify.experiments.transfer_bound import EXPERIMENT, transfer_rows

    a = Gaussian(np.array([2.0, 0.0]), np.array([[0.5, 0.2], [0.2, 2.0]]))
    b = Gaussian(np.array([0.0, 2.0]), np.diag([2.0, 0.5]))
    s = Setting("mine", (a, b, Gaussian(np.zeros(2), np.eye(2))), (1.0, 1.0, -1.0), ("A", "B", "base"))
    f = transfer_rows(s, 0.1, [0.3, 0.9])
    assert list(dict.fromkeys(f["source"])) == ["A", "B", "base"] and set(f["setting"]) == {"mine"}
    np.testing.assert_allclose(f["train_norm"], 0.1, rtol=1e-10)
    finite = f[np.isfinite(f["abs_bound"])]
    assert len(finite) and finite["holds"].all()
    three = Setting("three_d", (Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0])),
                                Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0])),
                                Gaussian(np.zeros(3), np.eye(3))), (1.0, 1.0, -1.0))
    assert "2-D" in EXPERIMENT.reason_not_applicable(three)
    with pytest.raises(ShapeMismatchError, match="dimension 1 or 2"):
        transfer_rows(three, 0.1, [0.5])
