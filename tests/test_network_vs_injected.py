"""Injected error models calibrated to a network's training-side excess (``verify.experiments.network_vs_injected``).

Monte Carlo comparisons use a fixed seed and allow :data:`K_SE` standard errors (two-sided normal false-alarm
probability 6e-5 per comparison) plus the map's own quadrature error, measured without Monte Carlo by applying its
√t rule to the exact integrand.
"""

import math

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from closed_form import CatcompError, ShapeMismatchError, VPSchedule, paper_setting
from closed_form.settings import MIXTURE_SETTING_NAMES
from verify.experiments.network_vs_injected import (
    AGREEMENT_ALPHA,
    agreement_k,
    compare_to_injected,
    injected_errors,
    mean_noise_variance,
    ratio_agreement,
    ratio_within_span,
)
from verify.analysis.score_errors import score_error_map, sqrt_time_nodes
from verify.samplers.networks import T_MIN
from verify.samplers.perturbed import perturbed_scores
from verify.samplers.scores import source_scores

SCHEDULE = VPSchedule()
SETTING = paper_setting("NFC_OOD")
COMP = SETTING.composition
#: Standard errors a Monte Carlo estimate may differ by (fixed seed; ~6e-5 two-sided false alarms per comparison).
K_SE = 4.0
#: Requested training-side excesses per source (a1, a2, base), of the size the default network reaches.
REQUESTED = (0.02, 0.03, 0.01)


def test_mean_noise_variance_matches_adaptive_quadrature():
    """σ̄² = (T − t_min)⁻¹∫σ_t² dt by the module's Gauss–Legendre rule against scipy's adaptive quad (another route)."""
    from scipy.integrate import quad

    truth = quad(lambda t: float(SCHEDULE.sigma2(t)), T_MIN, SCHEDULE.T, epsabs=0, epsrel=1e-13)[0]
    np.testing.assert_allclose(mean_noise_variance(SCHEDULE, T_MIN), truth / (SCHEDULE.T - T_MIN), rtol=1e-10)


def test_exact_scores_give_zero_excesses_and_undefined_ratios():
    """ŝ = s: the network's excesses are exactly 0, every model is calibrated to 0, and every ratio is 0/0 — NaN with
    status "undefined (0/0)", never a number."""
    rows = compare_to_injected(source_scores(COMP, SCHEDULE), COMP, SCHEDULE, jax.random.key(1), n_mc=20, n_nodes=3,
                               gammas=(0.05,), exact_nodes=4)
    assert set(rows["model"]) == {"network", "misspecification", "precision", "density_power(γ=0.05)", "shift"}
    assert len(rows) == 5 * 3 * 2
    assert (rows[["train_excess", "sampling_excess"]].to_numpy() == 0.0).all()
    assert rows["ratio"].isna().all() and rows["ratio_se"].isna().all()
    assert (rows["ratio_status"] == "undefined (0/0)").all()
    # and the findings say there is nothing to judge rather than deciding on NaNs
    frame = rows.assign(setting="NFC_OOD", n=1)
    assert ratio_agreement(frame)["direction"] is None and ratio_within_span(frame)["direction"] is None


def _mc_against_exact(model, gamma, key, n_mc, n_nodes=16):
    """Every (source, law) excess of the calibrated model: Monte Carlo map of the perturbed scores vs exact rows."""
    errors = injected_errors(model, COMP, SCHEDULE, REQUESTED, gamma=gamma)
    frame = score_error_map(perturbed_scores(COMP, SCHEDULE, errors), COMP, SCHEDULE, key, n_mc=n_mc,
                            n_nodes=n_nodes, t_min=T_MIN)
    mc = frame[frame.quantity == "dsm_excess"].set_index(["source", "law"])
    # The exact route: models calibrated to the requested sizes (a hand-built map whose training side is REQUESTED).
    rows = compare_to_injected(None, COMP, SCHEDULE, None, models=(model,), gammas=(gamma,),
                               map_frame=_fake_map(REQUESTED))
    exact = rows[rows.model != "network"].set_index(["source", "law"])
    nodes, weights = sqrt_time_nodes(T_MIN, SCHEDULE.T, n_nodes)
    at = [{"train": COMP.noised_sources(SCHEDULE, float(t)), "target": COMP.noised_target(SCHEDULE, float(t)),
           "path": COMP.path_composition(SCHEDULE, float(t)).target} for t in nodes]
    for i, err in enumerate(errors):
        name = str(i)
        # The requested size is met, by the model's own calibration (exact route) and by Monte Carlo.
        train_exact = exact.loc[(name, "target"), "train_excess"]
        # rtol: misspecification is calibrated on [0, T], the excess here is on [t_min, T] (module doc)
        np.testing.assert_allclose(train_exact, REQUESTED[i], rtol=1e-4 if model == "misspecification" else 1e-10)
        for law in ("train", "target", "path"):
            truth = train_exact if law == "train" else exact.loc[(name, law), "sampling_excess"]
            integrand = [float(SCHEDULE.sigma2(t)) * float(err.norm_under(a["train"][i] if law == "train"
                                                                           else a[law], float(t))) ** 2
                         for t, a in zip(nodes, at)]
            quad_error = abs(weights @ np.asarray(integrand) / (SCHEDULE.T - T_MIN) - truth)
            assert quad_error < 0.2 * mc.loc[(name, law), "se"] + 1e-10 * truth, (model, i, law, quad_error)
            row = mc.loc[(name, law)]
            assert abs(row["mean"] - truth) <= K_SE * row["se"] + quad_error, (model, i, law, row["mean"], truth,
                                                                               row["se"])


@pytest.mark.parametrize("model, gamma", [("precision", 0.05), ("shift", 0.05), ("density_power", 0.03)])
def test_linear_models_meet_the_requested_size_and_their_exact_sampling_side(model, gamma):
    """precision, shift and density-power (γ = 0.03: E‖δ‖⁴ is finite under Q_t and π_t, so the Monte Carlo
    standard error is valid): training-side excess = the requested ε_i² (exact route to 1e-4 relative, Monte Carlo
    within K_SE·SE), and the exact sampling-side excesses agree with Monte Carlo."""
    _mc_against_exact(model, gamma, jax.random.key(11), n_mc=2000)


def test_misspecification_meets_the_requested_size_per_source():
    """The worst-case misspecification calibrated per source (theory.amplification.calibrate, one source at a time)
    reaches each requested ε_i², by its own calibration and by an independent Monte Carlo map."""
    _mc_against_exact("misspecification", 0.05, jax.random.key(12), n_mc=2000)


def test_linear_models_ratio_does_not_depend_on_the_size():
    """δ is linear in the calibrated size for precision, density-power and shift, so their ratio is the same at every
    ε (exact route: identical to round-off)."""
    models = ("precision", "density_power", "shift")
    a, b = (compare_to_injected(None, COMP, SCHEDULE, None, models=models, gammas=(0.05,),
                                map_frame=_fake_map(tuple(c * e for e in REQUESTED))) for c in (1, 4))
    models = a.model != "network"
    np.testing.assert_allclose(a.loc[models, "ratio"], b.loc[models, "ratio"], rtol=1e-12)
    np.testing.assert_allclose(a.loc[a.model == "shift", "ratio"], 1.0, rtol=1e-12)


def _fake_map(train, sampling=None, se=1e-3):
    """A hand-built error-map frame (dsm_excess rows only), as score_error_map returns it."""
    sampling = sampling or tuple(2 * e for e in train)
    rows = []
    for i, (b, a) in enumerate(zip(train, sampling)):
        rows.append({"quantity": "dsm_excess", "source": str(i), "t": np.nan, "law": "train", "mean": b, "se": se})
        for law in ("target", "path"):
            rows.append({"quantity": "dsm_excess", "source": str(i), "t": np.nan, "law": law, "mean": a, "se": se})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ invalid inputs
def test_invalid_inputs_raise_catcomp_errors():
    with pytest.raises(CatcompError, match="unknown injected model"):
        injected_errors("gradient", COMP, SCHEDULE, REQUESTED)
    with pytest.raises(ShapeMismatchError, match="one per source"):
        injected_errors("precision", COMP, SCHEDULE, REQUESTED[:2])
    with pytest.raises(CatcompError, match="gamma"):
        injected_errors("density_power", COMP, SCHEDULE, REQUESTED, gamma=0.5)
    with pytest.raises(CatcompError, match="Gaussian sources"):
        injected_errors("precision", paper_setting(MIXTURE_SETTING_NAMES[0]).composition, SCHEDULE, REQUESTED)
    with pytest.raises(CatcompError, match="unknown injected model"):
        compare_to_injected(None, COMP, SCHEDULE, None, models=("network",), map_frame=_fake_map(REQUESTED))
    with pytest.raises(CatcompError, match="gamma"):
        compare_to_injected(None, COMP, SCHEDULE, None, gammas=(0.0,), map_frame=_fake_map(REQUESTED))
    with pytest.raises(CatcompError, match="alpha"):
        agreement_k(1.0)


@given(st.sampled_from(("precision", "density_power", "shift", "misspecification")),
       st.sampled_from((-1e-3, -1.0, math.inf, math.nan)), st.integers(0, 2))
def test_negative_or_non_finite_excess_raises(model, bad, where):
    excess = list(REQUESTED)
    excess[where] = bad
    with pytest.raises(CatcompError, match="finite and ≥ 0"):
        injected_errors(model, COMP, SCHEDULE, excess)


# ------------------------------------------------------------------------------------------------ the findings
def _frame(network, models, se=0.1, law="target"):
    """One row (NFC_OOD, n = 1, source a1) with the network's ratio ± se and the given exact model ratios."""
    rows = [{"setting": "NFC_OOD", "n": 1, "source": "a1", "model": "network", "law": law, "ratio": network,
             "ratio_se": se}]
    rows += [{"setting": "NFC_OOD", "n": 1, "source": "a1", "model": m, "law": law, "ratio": r, "ratio_se": 0.0}
             for m, r in models.items()]
    return pd.DataFrame(rows)


def test_agreement_finding_three_ways():
    k = agreement_k(AGREEMENT_ALPHA)
    assert k == pytest.approx(2.5758293035489, rel=1e-12)  # Φ⁻¹(0.995)
    # precision within k·se, shift rejected: the row tells the models apart and one agrees → holds
    agree = _frame(2.0, {"precision": 2.0 + 0.9 * k * 0.1, "shift": 1.0})
    out = ratio_agreement(agree)
    assert out["direction"] == 1 and out["numbers"]["models agreeing in every row"] == "precision"
    assert out["judged"] == ["NFC_OOD n=1 a1 target"]
    # every model rejected → fails
    disagree = _frame(2.0, {"precision": 2.0 + 1.1 * k * 0.1, "shift": 1.0})
    out = ratio_agreement(disagree)
    assert out["direction"] == -1 and out["numbers"]["rows where precision agrees"] == 0
    # two rows, each matched by a different model: no single model agrees everywhere → fails
    two = pd.concat([_frame(2.0, {"precision": 2.0, "shift": 1.0}),
                     _frame(1.0, {"precision": 2.0, "shift": 1.0}, law="path")], ignore_index=True)
    assert ratio_agreement(two)["direction"] == -1
    # a standard error so wide that no model is rejected: agreement is only noise → inconclusive
    wide = _frame(2.0, {"precision": 2.0, "shift": 1.0}, se=1.0)
    assert ratio_agreement(wide)["direction"] == 0


def test_span_finding_three_ways():
    k = agreement_k(AGREEMENT_ALPHA)
    inside = _frame(2.0, {"shift": 1.0, "misspecification": 3.0, "density_power(γ=0.1)": math.inf})
    out = ratio_within_span(inside)
    assert out["direction"] == 1
    assert out["numbers"]["(row, model) pairs with an infinite ratio, left out of the span"] == 1
    above = _frame(3.0 + 1.1 * k * 0.1, {"shift": 1.0, "misspecification": 3.0, "density_power(γ=0.1)": math.inf})
    out = ratio_within_span(above)
    assert out["direction"] == -1 and out["numbers"]["rows above it"] == 1
    # just above the span but within k standard errors: straddles the end, unresolved
    straddle = ratio_within_span(_frame(3.0 + 0.9 * k * 0.1, {"shift": 1.0, "misspecification": 3.0}))
    assert straddle["direction"] == 0 and straddle["numbers"]["rows straddling an end (unresolved)"] == 1
    below = _frame(0.5, {"shift": 1.0, "misspecification": 3.0})
    assert ratio_within_span(below)["numbers"]["rows below it"] == 1


def test_registered_checks_turn_the_findings_into_outcomes():
    from verify.experiments.network_vs_injected import EXPERIMENT, _injected_model_agrees, _network_within_injected_span

    assert {c.claim for c in EXPERIMENT.checks} == {"F8"}
    assert _injected_model_agrees(_frame(2.0, {"precision": 2.0, "shift": 1.0})).status == "holds"
    assert _injected_model_agrees(_frame(2.0, {"precision": 5.0})).status == "fails"
    assert _injected_model_agrees(_frame(2.0, {"precision": 2.0}, se=5.0)).status == "inconclusive"
    assert _network_within_injected_span(_frame(9.0, {"precision": 1.0, "shift": 2.0})).status == "fails"
    undefined = _frame(math.nan, {"precision": math.nan}, se=math.nan)
    assert _injected_model_agrees(undefined).status == "not applicable"
    assert _network_within_injected_span(undefined).status == "not applicable"


def test_network_rows_repeat_score_error_maps():
    """The experiment trains and measures exactly as score_error_maps (same seed derivation, configuration and map
    draws): its network rows are that function's excesses and ratios, to the last bit."""
    from verify.experiments.network_vs_injected import network_vs_injected
    from verify.experiments.score_error_maps import score_error_maps
    from verify.samplers.networks import NetworkConfig

    tiny = NetworkConfig(width=16, depth=2, iterations=200, lr=3e-3, batch=96)
    kwargs = dict(setting="NFC_OOD", sizes=(100,), seed=3, config=tiny, n_mc=50, n_nodes=3)
    rows = network_vs_injected(models=("precision", "shift"), **kwargs)
    maps = score_error_maps(**kwargs)
    net = rows[rows.model == "network"].set_index(["source", "law"])
    for (source, law), row in net.iterrows():
        ratio = maps[(maps.quantity == "ratio") & (maps.source == source) & (maps.law == law)]
        excess = maps[(maps.quantity == "dsm_excess") & (maps.source == source) & (maps.law == law)]
        assert row["ratio"] == ratio["mean"].item() and row["ratio_se"] == ratio["se"].item()
        assert row["sampling_excess"] == excess["mean"].item()
    assert set(rows.model) == {"network", "precision", "shift"} and len(rows) == 3 * 3 * 2
    np.testing.assert_allclose(rows.loc[rows.model == "shift", "ratio"], 1.0, rtol=1e-12)


def test_network_vs_injected_on_a_3d_three_source_setting():
    """Not a paper setting: 3-D, three sources labelled A, B, base; a tiny network. Rows per label, the shift model's
    ratio exactly 1, and the same seed giving the same network rows (the seed reaches the training)."""
    from closed_form import Gaussian, Setting
    from verify.experiments.network_vs_injected import network_vs_injected
    from verify.samplers.networks import NetworkConfig

    a = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
    b = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
    setting = Setting("three_d", (a, b, Gaussian(np.zeros(3), np.eye(3))), (1, 1, -1), ("A", "B", "base"))
    tiny = NetworkConfig(width=16, depth=2, iterations=100, lr=3e-3, batch=64)
    kwargs = dict(sizes=(50,), config=tiny, n_mc=20, n_nodes=2, models=("precision", "shift"))
    rows = network_vs_injected(setting, seed=5, **kwargs)
    assert set(rows["source"]) == {"A", "B", "base"} and (rows["setting"] == "three_d").all()
    np.testing.assert_allclose(rows.loc[rows.model == "shift", "ratio"], 1.0, rtol=1e-12)
    again = network_vs_injected(setting, seed=5, **kwargs)
    other = network_vs_injected(setting, seed=6, **kwargs)
    net = rows.model == "network"
    assert rows.loc[net, "ratio"].tolist() == again.loc[net, "ratio"].tolist()
    assert rows.loc[net, "ratio"].tolist() != other.loc[net, "ratio"].tolist()
