"""The Girsanov KL bound and the synchronous-coupling W2 bound of the reverse SDE: they hold on random Gaussian
compositions with random affine score errors, their parts match closed forms, and they are tight where they must be."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import spd_matrix

from closed_form import (
    CatcompError,
    Gaussian,
    ImproperCompositionError,
    InvalidTimeError,
    VPSchedule,
    add_fields,
    compose,
    kl,
    ode_law,
    paper_setting,
    sde_law,
    w2,
)
from closed_form.pytree import FrozenPytree
from theory import girsanov_kl_bound, synchronous_coupling_w2_bound

SCHEDULE = VPSchedule()
T_MIN = 1e-4
#: Absolute slack for comparing a measured divergence of an integrated law (relative accuracy 1e-9, tests/test_laws.py)
#: with a bound integrated at epsrel 1e-10: two orders above both tolerances, far below any bound's size here.
SLACK = 1e-7


def _start(comp, kind, t):
    if kind == "exact":
        return comp.noised_target(SCHEDULE, t)
    if kind == "path":
        return comp.path_composition(SCHEDULE, t).target
    return Gaussian.standard(comp.dim)


class _AffineError(FrozenPytree):
    """A smooth, time-dependent, non-symmetric affine error δ(x, t) = −(E₀ + tE₁)x + c₀cos(2t), as a field. A pytree
    (its arrays are leaves), so the laws' and bounds' evaluators compile it once per dimension, not once per
    example."""

    _leaves = ("e0", "e1", "c0")

    def __init__(self, e0, e1, c0):
        self._set(e0, e1, c0)

    def __call__(self, t):
        return self.e0 + t * self.e1, self.c0 * jnp.cos(2.0 * t)


def _affine_error(rng, d, size):
    """An :class:`_AffineError` with entries of scale ``size``."""
    e0, e1 = (jnp.asarray(size * rng.normal(size=(d, d))) for _ in range(2))
    return _AffineError(e0, e1, jnp.asarray(size * rng.normal(size=d)))


@st.composite
def problems(draw):
    """A proper Gaussian composition (d ≤ 4, three sources, random weights), an affine error and a start."""
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    weights = [draw(st.floats(0.3, 1.5)), draw(st.floats(0.0, 1.5)), draw(st.floats(-0.6, 0.6))]
    sources = [
        Gaussian(rng.normal(size=d), spd_matrix(rng, d, draw(st.floats(0.0, 1.5)), draw(st.floats(0.3, 5.0))))
        for _ in range(3)
    ]
    try:
        comp = compose(sources, weights)
    except ImproperCompositionError:
        assume(False)
    error = _affine_error(rng, d, draw(st.sampled_from([0.0, 0.05, 0.3])))
    return comp, error, draw(st.sampled_from(["standard", "exact", "path"]))


@given(problems())
def test_girsanov_and_coupling_bounds_hold(problem):
    """KL(Q_{t_min}‖SDE law) ≤ girsanov.total and W₂(Q_{t_min}, SDE law) ≤ coupling.total, for the naive score plus a
    random affine error, from N(0, I), π_T or Q_T."""
    comp, error, start_kind = problem
    start = _start(comp, start_kind, SCHEDULE.T)
    naive = comp.naive_field(SCHEDULE)
    law = sde_law(add_fields(naive, error), SCHEDULE, start, t_min=T_MIN)
    stopped = comp.noised_target(SCHEDULE, T_MIN)
    bound = girsanov_kl_bound(naive, comp.target, SCHEDULE, start, T_MIN, estimation_error=error)
    assert float(kl(stopped, law)) <= bound.total + SLACK
    coupling = synchronous_coupling_w2_bound(naive, comp.target, SCHEDULE, start, T_MIN, estimation_error=error)
    assert float(w2(stopped, law)) <= coupling.total + SLACK


def test_constant_shift_error_has_closed_form_bound():
    """Exact score plus a constant error c: E‖e‖² = ‖c‖², so the drift part is ½‖c‖²∫β exactly, all of it
    estimation, no inference and no cross term; the start term is KL(Q_T‖start)."""
    comp = paper_setting("NFC_OOD").composition
    c = jnp.array([0.3, -0.7])
    shift = lambda t: (jnp.zeros((2, 2)), c)  # noqa: E731
    start = Gaussian.standard(2)
    bound = girsanov_kl_bound(comp.target_field(SCHEDULE), comp.target, SCHEDULE, start, T_MIN, estimation_error=shift)
    expected = 0.5 * float(c @ c) * float(SCHEDULE.integrated_beta(1.0) - SCHEDULE.integrated_beta(T_MIN))
    np.testing.assert_allclose(bound.estimation_term, expected, rtol=1e-10)
    np.testing.assert_allclose(bound.total - bound.start_term, expected, rtol=1e-10)
    assert abs(bound.inference_term) < 1e-20 and abs(bound.cross_term) < 1e-10 * expected
    np.testing.assert_allclose(bound.start_term, float(kl(comp.noised_target(SCHEDULE, 1.0), start)), rtol=1e-12)


@pytest.mark.parametrize("kappa", [-1.0, -0.5, 0.5, 2.0])
def test_split_with_error_proportional_to_inference_error(kappa):
    """δ = κ·(naive − exact) gives estimation = κ²I, cross = 2κI and drift total = (1 + κ)²I with I the inference
    term; κ = −1 cancels the inference error, so the total drift part vanishes — the total is not the sum of parts."""
    comp = paper_setting("NFC_ID").composition
    naive, exact = comp.naive_field(SCHEDULE), comp.target_field(SCHEDULE)

    def delta(t):
        (a, b), (aq, bq) = naive(t), exact(t)
        return kappa * (a - aq), kappa * (b - bq)

    start = comp.noised_target(SCHEDULE, 1.0)
    bound = girsanov_kl_bound(naive, comp.target, SCHEDULE, start, T_MIN, estimation_error=delta)
    inf = bound.inference_term
    assert inf > 0.05
    np.testing.assert_allclose(bound.estimation_term, kappa**2 * inf, rtol=1e-9)
    np.testing.assert_allclose(bound.cross_term, 2 * kappa * inf, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(bound.total - bound.start_term, (1 + kappa) ** 2 * inf, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ["FC_ID", "FC_OOD"])
def test_factorized_naive_bound_vanishes(name):
    """Factorized conditionals: the naive score is ∇log Q_t, so from Q_T the bound is zero (rounding only)."""
    comp = paper_setting(name).composition
    start = comp.noised_target(SCHEDULE, 1.0)
    bound = girsanov_kl_bound(comp.naive_field(SCHEDULE), comp.target, SCHEDULE, start, T_MIN)
    assert bound.total < 1e-20 and bound.estimation_term == 0.0


def test_no_estimation_error_means_zero_estimation_term():
    comp = paper_setting("NFC_OOD").composition
    bound = girsanov_kl_bound(comp.naive_field(SCHEDULE), comp.target, SCHEDULE, Gaussian.standard(2), T_MIN)
    assert bound.estimation_term == 0.0 and bound.cross_term == 0.0
    np.testing.assert_allclose(bound.total, bound.start_term + bound.inference_term, rtol=1e-15)


def test_bound_does_not_cover_the_probability_flow_ode():
    """The bound is for the SDE only: on NFC_ID the ODE's KL (0.26) exceeds the SDE's bound (0.082)."""
    comp = paper_setting("NFC_ID").composition
    start = comp.noised_target(SCHEDULE, 1.0)
    naive = comp.naive_field(SCHEDULE)
    bound = girsanov_kl_bound(naive, comp.target, SCHEDULE, start, T_MIN)
    stopped = comp.noised_target(SCHEDULE, T_MIN)
    assert float(kl(stopped, sde_law(naive, SCHEDULE, start))) <= bound.total
    assert float(kl(stopped, ode_law(naive, SCHEDULE, start))) > 3 * bound.total


def test_coupling_bound_is_attained_in_one_dimension():
    """1-D, exact score, start = Q_T shifted by v: Y − X = Φv deterministically with Φ = exp(∫β(½ − A)), and the
    output law is Q_{t_min} shifted by Φv, so W₂ = |Φ|·|v| — exactly the bound e^{∫L}·W₂(Q_T, start)."""
    comp = compose([Gaussian(np.array([0.5]), np.array([[3.0]])), Gaussian(np.array([-1.0]), np.array([[0.7]]))],
                   [1.0, 1.0])
    q_t = comp.noised_target(SCHEDULE, 1.0)
    start = Gaussian(q_t.mean + 0.8, q_t.cov)
    exact = comp.target_field(SCHEDULE)
    law = sde_law(exact, SCHEDULE, start, t_min=T_MIN)
    bound = synchronous_coupling_w2_bound(exact, comp.target, SCHEDULE, start, T_MIN)
    np.testing.assert_allclose(bound.start_term, 0.8, rtol=1e-12)
    np.testing.assert_allclose(float(w2(comp.noised_target(SCHEDULE, T_MIN), law)), bound.total, rtol=1e-8)
    np.testing.assert_allclose(bound.total, bound.growth * 0.8, rtol=1e-8)


def test_invalid_inputs():
    comp = paper_setting("NFC_ID").composition
    naive = comp.naive_field(SCHEDULE)
    with pytest.raises(InvalidTimeError):
        girsanov_kl_bound(naive, comp.target, SCHEDULE, Gaussian.standard(2), t_min=2.0)
    with pytest.raises(CatcompError, match="dimension 2"):
        girsanov_kl_bound(naive, comp.target, SCHEDULE, Gaussian.standard(3))
    with pytest.raises(CatcompError, match="target must be a Gaussian"):
        synchronous_coupling_w2_bound(naive, comp, SCHEDULE, Gaussian.standard(2))
