"""The exact experiments (gaussian_table, path_gap, ood_measures) on compositions that are not the paper's — a 3-D
three-source Gaussian setting and a 2-D mixture setting — at tiny sizes, against independent closed forms; and their
checks on hand-made frames (holds / fails / not applicable, and which cases they judged)."""

import numpy as np
import pandas as pd
import pytest

from closed_form import Gaussian, GaussianMixture, NotGaussianSettingError, Setting
from closed_form.quadrature import integrate_function
from verify.experiments import gaussian_table as gt
from verify.experiments import ood_measures as om
from verify.experiments import path_gap as pg
from verify.report.claims import FAILS, HOLDS, NOT_APPLICABLE

A = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
B = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
BASE = Gaussian(np.zeros(3), np.eye(3))
THREE_D = Setting("three_d", (A, B, BASE), (1.0, 1.0, -1.0), ("A", "B", "base"))
MIXTURE = Setting("mix2d", (GaussianMixture.isotropic([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], 0.8),
                            Gaussian(np.zeros(2), 2.0 * np.eye(2))), (1.0, 1.0), ("M", "G"), in_distribution=True)


def _target_by_hand():
    """Q ∝ A·B/base for diagonal Gaussians, coordinate by coordinate: precision 1/a + 1/b − 1 and precision-weighted
    mean (an independent derivation of the composition's closed form)."""
    va, vb, vc = (np.diag(np.asarray(s.cov)) for s in (A, B, BASE))
    prec = 1 / va + 1 / vb - 1 / vc
    mean = (np.asarray(A.mean) / va + np.asarray(B.mean) / vb) / prec
    return Gaussian(mean, np.diag(1 / prec))


# ------------------------------------------------------------------------------------------------ gaussian_table
@pytest.fixture(scope="module")
def three_d_table():
    return gt.gaussian_table(THREE_D, n_steps=20)


def test_gaussian_table_on_a_3d_three_source_setting(three_d_table):
    frame = three_d_table
    assert list(frame["source"]) == ["A", "B", "base"] and list(frame["source_index"]) == [0, 1, 2]
    assert (frame["setting"] == "three_d").all() and not frame["paper_setting"].any()
    target = _target_by_hand()
    np.testing.assert_allclose(frame["target_cov"].iloc[0], np.asarray(target.cov), rtol=1e-12)
    # 1 + χ²(Q‖P) for diagonal Gaussians is a product of 1-D factors b/√(a(2b − a))·exp(δ²/(2b − a)).
    for source, value in zip((A, B, BASE), frame["one_plus_chi2"]):
        a, b = np.diag(np.asarray(target.cov)), np.diag(np.asarray(source.cov))
        delta = np.asarray(target.mean) - np.asarray(source.mean)
        expected = np.prod(b / np.sqrt(a * (2 * b - a)) * np.exp(delta**2 / (2 * b - a))) if np.all(2 * b > a) \
            else np.inf
        np.testing.assert_allclose(value, expected, rtol=1e-10)
    row = frame.iloc[0]
    assert row["sde_kl_at_t_min"] <= row["girsanov_total"] * (1 + gt.BOUND_REL_SLACK) + gt.BOUND_ABS_SLACK
    assert row["sde_w2_at_t_min"] <= row["coupling_w2_bound"] * (1 + gt.BOUND_REL_SLACK) + gt.BOUND_ABS_SLACK


def test_gaussian_table_rejects_a_mixture_setting():
    with pytest.raises(NotGaussianSettingError, match="mixture"):
        gt.gaussian_table(MIXTURE)


def _table_frame(rows):
    base = dict(source_index=0, source="P", start="exact", t_min=1e-4, paper_setting=False, factorized=None,
                sde_kl=0.0, sde_var=1.0, ode_var=1.0, sde_kl_at_t_min=0.0, girsanov_total=0.0,
                sde_w2_at_t_min=0.0, coupling_w2_bound=0.0)
    return pd.DataFrame([{**base, **r} for r in rows])


def test_reference_check_not_applicable_without_the_paper_settings():
    frame = _table_frame([dict(setting="NFC_ID"), dict(setting="three_d")])  # a user's NFC_ID is not the paper's
    out = gt._reference_values_reproduced(frame)
    assert out.status == NOT_APPLICABLE and "NFC_ID" in out.note


def test_reference_check_judges_only_the_paper_settings_present():
    frame = _table_frame([dict(setting="NFC_ID", paper_setting=True, sde_var=0.8451, sde_kl=0.00745, ode_var=0.5002),
                          dict(setting="three_d")])
    out = gt._reference_values_reproduced(frame)
    assert out.status == HOLDS and out.judged == ("NFC_ID",) and "NFC_OOD" in out.note
    wrong = _table_frame([dict(setting="NFC_ID", paper_setting=True, sde_var=0.9, sde_kl=0.00745, ode_var=0.5)])
    assert gt._reference_values_reproduced(wrong).status == FAILS


def test_bound_and_fc_checks_on_hand_made_frames():
    frame = _table_frame([dict(setting="a", sde_kl_at_t_min=0.1, girsanov_total=0.2, factorized=True),
                          dict(setting="b", sde_kl_at_t_min=0.3, girsanov_total=0.2, factorized=None)])
    out = gt._bound_holds("sde_kl_at_t_min", "girsanov_total")(frame)
    assert out.status == FAILS and out.judged == ("a (start exact)", "b (start exact)")
    fc = gt._fc_naive_exact(frame)
    assert fc.status == FAILS and fc.judged == ("a",) and "b" in fc.note  # 0.1 ≥ 1e-10; b's label unknown
    ok = _table_frame([dict(setting="a", factorized=True, sde_kl_at_t_min=1e-14)])
    assert gt._fc_naive_exact(ok).status == HOLDS
    assert gt._fc_naive_exact(_table_frame([dict(setting="b")])).status == NOT_APPLICABLE


# ------------------------------------------------------------------------------------------------------ path_gap
def test_path_gap_on_a_3d_setting_against_a_direct_computation():
    frame = pg.path_target_gap(THREE_D, 3)
    assert (frame["conditionals"] == "unknown").all() and len(frame) == 3
    from closed_form import VPSchedule

    schedule = VPSchedule()
    for _, row in frame.iterrows():
        # Precisions of the diffused sources, coordinate by coordinate: π_t's is Σ_i w_i/(α²v_i + σ²); Q_t's is
        # 1/(α²q + σ²) with q the target's variance.
        t = row["t"]
        alpha2, sigma2 = float(schedule.alpha(t)) ** 2, float(schedule.sigma2(t))
        v = [np.diag(np.asarray(s.cov)) for s in (A, B, BASE)]
        a_pi = sum(w / (alpha2 * vi + sigma2) for w, vi in zip((1, 1, -1), v))
        a_q = 1 / (alpha2 * np.diag(np.asarray(_target_by_hand().cov)) + sigma2)
        np.testing.assert_allclose(row["precision_rel_gap"], np.linalg.norm(a_pi - a_q) / np.linalg.norm(a_q),
                                   rtol=1e-8, atol=1e-15)


def test_path_gap_checks_judge_by_the_factorized_label():
    rows = [dict(setting=s, conditionals=c, t=1.0, precision_rel_gap=g, precision_condition=2.0, score_gap_sq=0.0)
            for s, c, g in (("fc", "FC", 1e-16), ("nfc", "NFC", 0.1), ("mine", "unknown", 0.5))]
    frame = pd.DataFrame(rows)
    fc, nfc = pg._fc_path_is_target(frame), pg._nfc_path_differs(frame)
    assert fc.status == HOLDS and fc.judged == ("fc",) and "mine" in fc.note
    assert nfc.status == HOLDS and nfc.judged == ("nfc",)
    only_unknown = frame[frame["conditionals"] == "unknown"]
    assert pg._fc_path_is_target(only_unknown).status == NOT_APPLICABLE
    assert pg._nfc_path_differs(only_unknown).status == NOT_APPLICABLE
    frame.loc[0, "precision_rel_gap"] = 1e-9
    assert pg._fc_path_is_target(frame).status == FAILS


# ------------------------------------------------------------------------------------------------- ood_measures
def test_ood_summary_on_a_3d_gaussian_setting_is_exact():
    frame = om.ood_summary(THREE_D, 200, seed=1)
    per = frame[frame["kind"] == "source"]
    assert list(per["source"]) == ["A", "B", "base"] and (per["method"] == "exact").all()
    assert (frame["regime"] == "unknown").all()
    np.testing.assert_allclose(per["ress_inverse"].to_numpy(),
                               gt.gaussian_table(THREE_D, n_steps=5)["one_plus_chi2"].to_numpy(), rtol=1e-12)


def test_ood_summary_on_a_2d_mixture_setting_matches_quadrature():
    """Monte Carlo 1 + χ²(Q‖P_i) of a mixture setting within 5 standard errors of the cubature of ∫Q²/P_i."""
    frame = om.ood_summary(MIXTURE, 4000, seed=3)
    per = frame[frame["kind"] == "source"].set_index("source")
    assert list(per.index) == ["M", "G"] and (per["method"] == "Monte Carlo").all()
    comp = MIXTURE.composition
    comp.log_normalizer(rtol=1e-9)
    for label, source in zip(MIXTURE.labels, MIXTURE.sources):
        def integrand(x, source=source):
            lq = np.asarray(comp.target_logpdf(x))
            return np.exp(2 * lq - np.asarray(source.logpdf(x)))
        exact = integrate_function(integrand, np.array([-8.0, -8.0]), np.array([8.0, 8.0]), rtol=1e-7, atol=1e-10)
        assert abs(per.loc[label, "ress_inverse"] - exact) < 5 * per.loc[label, "ress_inverse_se"] + 1e-6


def test_f6_judges_only_labelled_exact_settings():
    def rows(setting, regime, values, method="exact"):
        return [dict(setting=setting, regime=regime, kind="source", source=f"P{i}", ress_inverse=v, method=method)
                for i, v in enumerate(values)]
    frame = pd.DataFrame(rows("id", "ID", [1.5, 2.0]) + rows("ood", "OOD", [np.inf, np.inf])
                         + rows("mine", "unknown", [np.inf, 3.0]) + rows("gmm", "ID", [1.2, 1.1], "Monte Carlo"))
    out = om._ood_labels_match(frame)
    assert out.status == HOLDS and set(out.judged) == {"id", "ood"} and "mine" in out.note and "gmm" in out.note
    frame.loc[frame["setting"] == "ood", "ress_inverse"] = [np.inf, 4.0]
    assert om._ood_labels_match(frame).status == FAILS
    assert om._ood_labels_match(pd.DataFrame(rows("mine", "unknown", [2.0]))).status == NOT_APPLICABLE


def test_cells_regrid_over_user_settings():
    """Run on other settings, the three experiments make one cell per applicable setting; the Gaussian-only ones
    skip the mixture setting."""
    for module, n in ((gt, 1), (pg, 1), (om, 2)):
        cells = module.EXPERIMENT.cells("quick", settings=[THREE_D, MIXTURE])
        assert len(cells) == n and cells[0]["setting"]["name"] == "three_d"
