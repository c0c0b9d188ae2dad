"""The exact K → ∞ law of FKC (``closed_form.fkc_limit_law``) against independent routes and against Monte Carlo.

* Continuous limit, exact Gaussian scores, start ``π_{T−eps}``: equals ``π_{t_min}`` and ``log_mass`` equals
  ``log Z(π_{t_min}) − log Z(π_{T−eps})``, both from the closed-form Gaussian products (moment ODE at rtol 1e-11;
  asserted at 1e-9). Diffusion-consistent errors (refit sources' exact scores): the composition of the refits.
* Continuous limit of a time-inconsistent 1-D field: the scalar Riccati equation solved by hand, including the time
  at which the weights stop being integrable.
* Discrete limit: against the whole path ``(x_0, …, x_N)`` as one Gaussian (batch form, one big precision matrix
  built from the sampler's own potential by automatic differentiation), at rtol 1e-10; and → the continuous limit
  at rate ``1/N`` (fitted slope).
* Monte Carlo: ``fkc_sample`` with a time-inconsistent precision error and with a non-symmetric affine error,
  weighted-cloud moments per swarm; the fit ``a + c/K`` over ``K`` meets the exact discrete limit within 4 SE (SE
  from the spread over swarms), the gap falls like ``1/K`` (fitted log-log slope within 3 SE of −1) and
  ``E log Ẑ`` rises toward ``log_mass`` from below.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from closed_form import (
    GAUSSIAN_SETTING_NAMES,
    CatcompError,
    Gaussian,
    InvalidTimeError,
    NonFiniteInputError,
    ShapeMismatchError,
    VPSchedule,
    WeightsNotIntegrableError,
    add_fields,
    compose,
    fkc_limit_law,
    paper_setting,
)
from closed_form.perturbations import misspecification_error, precision_error
from verify.samplers.perturbed import AffineErrorScore, PerturbedScore
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_log_weight_rate, fkc_sample

SCHEDULE = VPSchedule()
EPS = 1e-5
T0 = SCHEDULE.T - EPS  # the samplers' first grid time


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _rotated(mean, eigs, theta):
    r = _rot(theta)
    return Gaussian(np.asarray(mean, dtype=np.float64), (r * np.asarray(eigs)) @ r.T)


NON_COMMUTING = compose([_rotated([1.0, -0.5], [3.0, 0.5], 0.3), _rotated([-0.5, 1.0], [0.8, 4.0], 1.1),
                         _rotated([0.2, 0.3], [6.0, 2.0], -0.4)], [1.0, 1.0, -1.0])
ONE_D = compose([Gaussian(np.array([1.0]), np.array([[2.0]])), Gaussian(np.array([-0.5]), np.array([[0.5]]))],
                [0.7, 0.6])
CASES = {name: paper_setting(name).composition for name in GAUSSIAN_SETTING_NAMES}
CASES.update({"non_commuting_2d": NON_COMMUTING, "one_d": ONE_D})


def _assert_gaussian_close(law, ref, rtol):
    scale = max(1.0, float(np.max(np.abs(np.asarray(ref.cov)))))
    np.testing.assert_allclose(np.asarray(law.cov), np.asarray(ref.cov), rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(np.asarray(law.mean), np.asarray(ref.mean), rtol=0,
                               atol=rtol * max(scale, float(np.max(np.abs(np.asarray(ref.mean))))))


# ------------------------------------------------------------------------------------------- continuous, exact
@pytest.mark.parametrize("name", list(CASES))
def test_continuous_limit_of_exact_scores_is_the_geometric_path(name):
    comp = CASES[name]
    t_min = 1e-3 if name == "one_d" else EPS
    start = comp.path_composition(SCHEDULE, T0).target
    res = fkc_limit_law(comp.source_fields(SCHEDULE), comp.weights, SCHEDULE, start, t_min=t_min)
    path = comp.path_composition(SCHEDULE, t_min)
    _assert_gaussian_close(res.law, path.target, 1e-9)
    expected = path.log_normalizer() - comp.path_composition(SCHEDULE, T0).log_normalizer()
    assert abs(res.log_mass - expected) < 1e-9 * max(1.0, abs(expected))


def test_continuous_limit_of_diffusion_consistent_errors_is_the_composition_of_the_refits():
    comp = NON_COMMUTING
    refits = [Gaussian(np.asarray(s.mean) + np.array([0.3, -0.2]) * (i + 1), 1.2 * np.asarray(s.cov))
              for i, s in enumerate(comp.sources)]
    fields = [add_fields(f, misspecification_error(s, r, SCHEDULE).field)
              for f, s, r in zip(comp.source_fields(SCHEDULE), comp.sources, refits)]
    refit_comp = compose(refits, comp.weights)
    start = refit_comp.path_composition(SCHEDULE, T0).target
    res = fkc_limit_law(fields, comp.weights, SCHEDULE, start, t_min=0.05)
    _assert_gaussian_close(res.law, refit_comp.path_composition(SCHEDULE, 0.05).target, 1e-9)
    # ... which is not the composition of the true sources (the error moved it).
    assert float(np.max(np.abs(np.asarray(res.law.cov) - np.asarray(comp.path_composition(SCHEDULE, 0.05)
                                                                      .target.cov)))) > 1e-2


# ---------------------------------------------------------------------------------- continuous, hand-solved 1-D
def _constant_field(t):
    return jnp.ones((1, 1)), jnp.zeros(1)


def _riccati_1d(s):
    r"""Weight 3 on the constant score ``−x``: ``G = −6β``, ``F = −2.5β``, ``c = −β``, so in ``s = ∫β dτ``
    ``dΛ/ds = −(Λ − 2)(Λ − 3)`` from ``Λ = 1``, i.e. ``(Λ − 3)/(Λ − 2) = 2e^{−s}``, zero at ``s* = log(4/3)``."""
    e = math.exp(-s)
    return (3.0 - 4.0 * e) / (1.0 - 2.0 * e)


def _s_of(t_min):
    b = SCHEDULE.integrated_beta
    return float(b(T0) - b(t_min))


def test_time_inconsistent_1d_field_matches_the_hand_solved_riccati_equation():
    t_min = 0.99
    s = _s_of(t_min)
    res = fkc_limit_law([_constant_field], [3.0], SCHEDULE, Gaussian.standard(1), t_min=t_min)
    lam = _riccati_1d(s)
    # ν' = c − tr F − ½β tr Λ per unit s: 1.5 − Λ/2 (η = 0), and log mass = ∫ν' − ½ log(Λ/Λ₀).
    log_mass = quad(lambda u: 1.5 - 0.5 * _riccati_1d(u), 0.0, s, epsabs=1e-14, epsrel=1e-13)[0] - 0.5 * math.log(lam)
    np.testing.assert_allclose(float(res.law.cov[0, 0]), 1.0 / lam, rtol=1e-9)
    assert abs(float(res.law.mean[0])) < 1e-12
    np.testing.assert_allclose(res.log_mass, log_mass, rtol=1e-9)


def test_non_integrable_weights_raise_with_time_and_direction():
    b = SCHEDULE.integrated_beta
    # Blow-up where s = B(T0) − B(t*) = log(4/3): B(t) = 0.1t + 9.95t² solved for t*.
    target = float(b(T0)) - math.log(4.0 / 3.0)
    t_star = (-0.1 + math.sqrt(0.01 + 4 * 9.95 * target)) / (2 * 9.95)
    with pytest.raises(WeightsNotIntegrableError, match="not integrable at t =") as info:
        fkc_limit_law([_constant_field], [3.0], SCHEDULE, Gaussian.standard(1), t_min=0.5)
    np.testing.assert_allclose(info.value.t, t_star, rtol=1e-8)
    np.testing.assert_allclose(np.abs(info.value.direction), [1.0])
    # Discrete: the first step already has P⁻¹ + hG = 1 − 0.25·6·β(T0) < 0.
    with pytest.raises(WeightsNotIntegrableError) as info:
        fkc_limit_law([_constant_field], [3.0], SCHEDULE, Gaussian.standard(1), n_steps=4)
    assert info.value.t == T0 and info.value.eigenvalue < 0
    # In 2-D the direction is the one that blows up: weight 3 on the first coordinate only.
    with pytest.raises(WeightsNotIntegrableError) as info:
        fkc_limit_law([lambda t: (jnp.diag(jnp.array([1.0, 0.0])), jnp.zeros(2))], [3.0], SCHEDULE,
                      Gaussian.standard(2), t_min=0.5)
    np.testing.assert_allclose(np.abs(info.value.direction), [1.0, 0.0], atol=1e-12)


# ------------------------------------------------------------------------------------------------- discrete
def _potential_by_autodiff(scores, weights, dim):
    """``t ↦ (G, h, c, A, b, β)`` with ``g(x) = −½xᵀGx + hᵀx + c`` from the sampler's own ``fkc_log_weight_rate``
    (exactly quadratic, so its Hessian, gradient and value at 0 are the coefficients) and ``S = −Ax + b``; jitted."""

    def coefficients(t):
        beta = SCHEDULE.beta(t)

        def g(x):
            s = [sc(x, t) for sc in scores]
            return fkc_log_weight_rate(s, sum(w * si for w, si in zip(weights, s)), weights, beta, dim)

        def composed(x):
            return sum(w * sc(x, t) for w, sc in zip(weights, scores))

        x0 = jnp.zeros(dim)
        return -jax.hessian(g)(x0), jax.grad(g)(x0), g(x0), -jax.jacfwd(composed)(x0), composed(x0), beta

    jitted = jax.jit(coefficients)
    return lambda t: [np.asarray(v, dtype=np.float64) for v in jitted(jnp.float64(t))]


def _path_as_one_gaussian(scores, weights, start, n_steps):
    r"""The discrete Feynman–Kac measure of the whole path ``(x_0, …, x_N)``, ``start(x_0) Π_k e^{h_k g_k(x_k)}
    N(x_{k+1}; M_k x_k + c_k, β_k h_k I)``, as one quadratic form ``−½XᵀJX + vᵀX + const``: its mass and the
    marginal of ``x_N``."""
    d = start.dim
    grid = np.clip(np.linspace(SCHEDULE.T, 0.0, n_steps + 1), EPS, SCHEDULE.T - EPS)
    n = (n_steps + 1) * d
    big_j, v = np.zeros((n, n)), np.zeros(n)
    blk = [slice(k * d, (k + 1) * d) for k in range(n_steps + 1)]
    p0_inv = np.linalg.inv(np.asarray(start.cov))
    m0 = np.asarray(start.mean)
    big_j[blk[0], blk[0]] += p0_inv
    v[blk[0]] += p0_inv @ m0
    const = -0.5 * m0 @ p0_inv @ m0 - 0.5 * np.linalg.slogdet(2 * np.pi * np.asarray(start.cov))[1]
    potential = _potential_by_autodiff(scores, weights, d)
    for k in range(n_steps):
        t, h = grid[k], grid[k] - grid[k + 1]
        g_mat, h_vec, c, a, b, beta = potential(t)
        c, beta = float(c), float(beta)
        big_j[blk[k], blk[k]] += h * g_mat
        v[blk[k]] += h * h_vec
        const += h * c
        m = np.eye(d) + h * (0.5 * beta * np.eye(d) - beta * a)
        shift = h * beta * b
        q_inv = np.eye(d) / (beta * h)
        big_j[blk[k + 1], blk[k + 1]] += q_inv
        big_j[blk[k], blk[k]] += m.T @ q_inv @ m
        big_j[blk[k], blk[k + 1]] -= m.T @ q_inv
        big_j[blk[k + 1], blk[k]] -= q_inv @ m
        v[blk[k + 1]] += q_inv @ shift
        v[blk[k]] -= m.T @ q_inv @ shift
        const += -0.5 * shift @ q_inv @ shift - 0.5 * d * math.log(2 * np.pi * beta * h)
    cov = np.linalg.inv(big_j)
    mean = cov @ v
    log_mass = const + 0.5 * v @ mean + 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    return mean[blk[-1]], cov[blk[-1], blk[-1]], log_mass


def _nonsymmetric_scores(comp, size):
    mats = [size * np.array([[0.3, 1.0], [-0.6, 0.2]]), size * np.array([[-0.2, -0.5], [0.9, 0.4]]),
            size * np.array([[0.1, 0.7], [0.2, -0.3]])]
    shifts = [size * np.array([0.5, -1.0]), size * np.array([-0.3, 0.2]), size * np.array([0.4, 0.4])]
    return tuple(AffineErrorScore.build(s, 0.0, e, c) for s, e, c in zip(source_scores(comp, SCHEDULE), mats, shifts))


@pytest.mark.parametrize("case", ["precision_nfc_ood", "nonsymmetric_non_commuting", "exact_one_d"])
def test_discrete_limit_equals_the_whole_path_as_one_gaussian(case):
    if case == "precision_nfc_ood":
        comp = paper_setting("NFC_OOD").composition
        errors = [precision_error(s, SCHEDULE, 0.1, float(np.sign(w))) for s, w in zip(comp.sources, comp.weights)]
        scores = tuple(PerturbedScore(s, e) for s, e in zip(source_scores(comp, SCHEDULE), errors))
        fields = [add_fields(f, e.field) for f, e in zip(comp.source_fields(SCHEDULE), errors)]
        start = Gaussian.standard(2)
    elif case == "nonsymmetric_non_commuting":
        comp = NON_COMMUTING
        scores = _nonsymmetric_scores(comp, 0.1)
        fields = [s.field for s in scores]
        start = Gaussian(np.array([0.3, -0.2]), np.array([[1.5, 0.4], [0.4, 0.8]]))
    else:
        comp = ONE_D
        scores = source_scores(comp, SCHEDULE)
        fields = comp.source_fields(SCHEDULE)
        start = Gaussian(np.array([0.5]), np.array([[2.0]]))
    n_steps = 20
    res = fkc_limit_law(fields, comp.weights, SCHEDULE, start, n_steps=n_steps)
    mean, cov, log_mass = _path_as_one_gaussian(scores, tuple(float(w) for w in comp.weights), start, n_steps)
    np.testing.assert_allclose(np.asarray(res.law.cov), cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.law.mean), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.log_mass, log_mass, rtol=1e-10, atol=1e-12)


def test_discrete_limit_tends_to_the_continuous_one_at_rate_one_over_n():
    comp = paper_setting("NFC_OOD").composition
    errors = [precision_error(s, SCHEDULE, 0.1, float(np.sign(w))) for s, w in zip(comp.sources, comp.weights)]
    fields = [add_fields(f, e.field) for f, e in zip(comp.source_fields(SCHEDULE), errors)]
    start = Gaussian.standard(2)
    cont = fkc_limit_law(fields, comp.weights, SCHEDULE, start)
    ns = np.array([100, 200, 400, 800])
    gaps = []
    for n in ns:
        res = fkc_limit_law(fields, comp.weights, SCHEDULE, start, n_steps=int(n))
        gaps.append((abs(float(res.law.cov[0, 0] - cont.law.cov[0, 0])), abs(res.log_mass - cont.log_mass)))
    for j in range(2):
        slope = np.polyfit(np.log(ns), np.log([g[j] for g in gaps]), 1)[0]
        assert abs(slope + 1.0) < 0.1, slope  # first order (Euler–Maruyama and left-point weights)


# ---------------------------------------------------------------------------------------------- Monte Carlo
KS = (4, 8, 16, 32)
N_SWARMS, N_STEPS = 4000, 50


def _cloud_statistics(out):
    """Per swarm, the weighted-cloud estimates of ``E x_0``, ``E x_1``, ``E x_0²``, ``E x_0x_1``, ``E x_1²``,
    ``E‖x‖²`` and ``log Ẑ``; shape ``(n_swarms, 7)``."""
    x = np.asarray(out.particles)
    w = np.exp(np.asarray(out.log_weights))
    mean = np.einsum("sk,ski->si", w, x)
    sec = np.einsum("sk,ski,skj->sij", w, x, x)
    return np.stack([mean[:, 0], mean[:, 1], sec[:, 0, 0], sec[:, 0, 1], sec[:, 1, 1], sec[:, 0, 0] + sec[:, 1, 1],
                     np.asarray(out.log_normalizer)], axis=1)


@pytest.fixture(scope="module")
def mc_runs():
    """Per error model: exact values of the 7 statistics from the discrete limit, and per K their Monte Carlo means
    and standard errors over swarms."""
    key = jax.random.key(31)
    runs = {}
    models = {"precision": ("NFC_OOD", lambda comp: tuple(
        AffineErrorScore.build(s, float(np.sign(w)) * 0.1) for s, w in zip(source_scores(comp, SCHEDULE),
                                                                           comp.weights))),
              "nonsymmetric": ("NFC_ID", lambda comp: _nonsymmetric_scores(comp, 0.2))}
    for j, (model, (setting, build)) in enumerate(models.items()):
        comp = paper_setting(setting).composition
        scores = build(comp)
        limit = fkc_limit_law([s.field for s in scores], comp.weights, SCHEDULE, Gaussian.standard(2),
                              n_steps=N_STEPS)
        m, c = np.asarray(limit.law.mean), np.asarray(limit.law.cov)
        sec = c + np.outer(m, m)
        exact = np.array([m[0], m[1], sec[0, 0], sec[0, 1], sec[1, 1], np.trace(sec), limit.log_mass])
        means, ses = [], []
        for k in KS:
            out = fkc_sample(jax.random.fold_in(jax.random.fold_in(key, j), k), scores, comp.weights, SCHEDULE,
                             N_SWARMS, k, n_steps=N_STEPS)
            stats = _cloud_statistics(out)
            means.append(stats.mean(axis=0))
            ses.append(stats.std(axis=0, ddof=1) / math.sqrt(N_SWARMS))
        runs[model] = (exact, np.array(means), np.array(ses))
    return runs


@pytest.mark.parametrize("model", ["precision", "nonsymmetric"])
def test_monte_carlo_fkc_extrapolates_to_the_exact_discrete_limit(model, mc_runs):
    exact, means, ses = mc_runs[model]
    x = np.stack([np.ones(len(KS)), 1.0 / np.asarray(KS)], axis=1)
    for j in range(exact.size):
        w = 1.0 / ses[:, j] ** 2
        cov = np.linalg.inv(x.T @ (w[:, None] * x))
        a = (cov @ (x.T @ (w * means[:, j])))[0]
        # k = 4 standard errors of the intercept (7 statistics × 2 models: family-wise false alarm ≈ 1e-3).
        assert abs(a - exact[j]) < 4 * math.sqrt(cov[0, 0]), (j, a, exact[j], math.sqrt(cov[0, 0]))


@pytest.mark.parametrize("model", ["precision", "nonsymmetric"])
def test_monte_carlo_gap_falls_like_one_over_k(model, mc_runs):
    exact, means, ses = mc_runs[model]
    j = 5  # E‖x‖²
    gap, se = np.abs(means[:, j] - exact[j]), ses[:, j]
    assert np.all(gap > 3 * se)  # resolved at every K, so the log-log fit is meaningful
    logk = np.log(np.asarray(KS, dtype=np.float64))
    w = (gap / se) ** 2  # se(log|gap|) = se/|gap|
    x = np.stack([np.ones_like(logk), logk], axis=1)
    cov = np.linalg.inv(x.T @ (w[:, None] * x))
    slope = (cov @ (x.T @ (w * np.log(gap))))[1]
    assert abs(slope + 1.0) < 3 * math.sqrt(cov[1, 1]), (slope, math.sqrt(cov[1, 1]))


@pytest.mark.parametrize("model", ["precision", "nonsymmetric"])
def test_expected_log_normalizer_rises_toward_the_log_mass_from_below(model, mc_runs):
    exact, means, ses = mc_runs[model]
    gap, se = means[:, 6] - exact[6], ses[:, 6]
    # Ẑ is unbiased for the mass, so E log Ẑ ≤ log_mass (Jensen) at every K: never above by more than 4 SE ...
    assert np.all(gap < 4 * se)
    # ... and the Jensen gap closes with K: the largest K is closer by more than 4 combined SE.
    assert gap[-1] - gap[0] > 4 * math.hypot(se[0], se[-1])


def test_affine_error_score_is_its_field_and_the_precision_error():
    comp = paper_setting("NFC_OOD").composition
    x = np.random.default_rng(0).normal(size=(5, 2))
    for s, w, src in zip(source_scores(comp, SCHEDULE), comp.weights, comp.sources):
        sign = float(np.sign(w))
        fast = AffineErrorScore.build(s, sign * 0.1)
        ref = PerturbedScore(s, precision_error(src, SCHEDULE, 0.1, sign))
        general = AffineErrorScore.build(s, 0.3, np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([0.5, -0.1]))
        for t in (1e-3, 0.4, 0.9):
            np.testing.assert_allclose(np.asarray(fast(x, t)), np.asarray(ref(x, t)), rtol=1e-12, atol=1e-14)
            a, b = general.field(t)
            np.testing.assert_allclose(np.asarray(general(x, t)), -x @ np.asarray(a).T + np.asarray(b), rtol=1e-12)


# ----------------------------------------------------------------------------------------------- invalid input
SOURCE_FIELDS = CASES["NFC_ID"].source_fields(SCHEDULE)


@given(st.sampled_from([
    (dict(weights=[1.0, 1.0]), ShapeMismatchError),
    (dict(weights=[1.0, float("nan"), -1.0]), NonFiniteInputError),
    (dict(weights=[[1.0, 1.0, -1.0]]), ShapeMismatchError),
    (dict(fields=()), ShapeMismatchError),
    (dict(fields=(SOURCE_FIELDS[0], SOURCE_FIELDS[1], "not a field")), CatcompError),
    (dict(start="standard"), CatcompError),
    (dict(start=Gaussian.standard(3)), ShapeMismatchError),
    (dict(fields=(lambda t: (jnp.full((2, 2), jnp.nan), jnp.zeros(2)),) * 3), NonFiniteInputError),
    (dict(n_steps=0), CatcompError),
    (dict(n_steps=2.5), CatcompError),
    (dict(n_steps=True), CatcompError),
    (dict(t_min=-0.1), InvalidTimeError),
    (dict(t_min=1.0), InvalidTimeError),
    (dict(t_min=float("nan")), InvalidTimeError),
    (dict(n_steps=10, t_min=0.1), InvalidTimeError),
    (dict(eps=0.6), CatcompError),
    (dict(rtol=0.0), CatcompError),
]))
def test_invalid_input_raises_specific_errors(case):
    kwargs, error = case
    args = dict(fields=SOURCE_FIELDS, weights=[1.0, 1.0, -1.0], start=Gaussian.standard(2))
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("n_steps", "t_min", "eps", "rtol") if k in args}
    with pytest.raises(error):
        fkc_limit_law(args["fields"], args["weights"], SCHEDULE, args["start"], **extra)


@settings(max_examples=10)
@given(st.floats(0.0, 0.999, exclude_max=True))
def test_valid_end_times_give_a_positive_definite_law(t_min):
    comp = CASES["NFC_ID"]
    res = fkc_limit_law(SOURCE_FIELDS, comp.weights, SCHEDULE, Gaussian.standard(2), t_min=t_min, rtol=1e-8)
    assert np.all(np.linalg.eigvalsh(np.asarray(res.law.cov)) > 0) and math.isfinite(res.log_mass)


def test_misspecified_scores_of_the_convergence_experiment_are_the_fitted_sources_exact_scores():
    """``verify.experiments.fkc_convergence.misspecified_scores``: the exact scores of the worst-case misspecified sources (here
    against each fitted source's own diffused ``Gaussian.score``)."""
    from theory.amplification import worst_case_misspecification
    from verify.experiments.fkc_convergence import misspecified_scores

    sched = SCHEDULE
    comp = paper_setting("NFC_OOD").composition
    scores = misspecified_scores(comp, sched, 0.005)
    fitted, _ = worst_case_misspecification(comp, sched, 0.005)
    x = np.random.default_rng(1).normal(size=(6, 2)) * 2
    for s, f in zip(scores, fitted):
        for t in (1e-3, 0.3, 0.9):
            np.testing.assert_allclose(np.asarray(s(jnp.asarray(x), t)), np.asarray(f.noised(sched, t).score(x)),
                                       rtol=1e-10, atol=1e-12)
