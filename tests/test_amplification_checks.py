"""The checks of the amplification-related experiments on hand-made frames: each comes out holds, fails,
inconclusive or not applicable as its statement says, and says which cases it judged."""

import numpy as np
import pandas as pd

from verify.experiments.amplification import _amplification_grows_along_family, _ood_amplification_exceeds_id
from verify.experiments.naive_error_sweep import _verdict
from verify.experiments.ood_family import _harm_grows_along_family
from verify.experiments.score_error_along_t import _sampling_side_contrast
from verify.experiments.transfer_bound import _transfer_holds
from verify.experiments.two_point import _two_point_lower_bound

NAN = float("nan")


def _amp_frame(values, base=(20.0, 5.0, 1.1), ress=(2.4, 0.8, np.inf)):
    return pd.DataFrame({"group": "ID→OOD family", "setting": [f"family_v{v:g}" for v in base],
                         "family_base_variance": base, "amplification": values, "log_ress_max": ress})


def test_amplification_family_check_outcomes():
    held = _amplification_grows_along_family(_amp_frame([19.8, 24.7, 1027.0]))
    assert held.status == "holds" and len(held.judged) == 3
    assert held.numbers["steps where finite max log(1 + χ²) falls"] == 1  # reported, not judged
    assert held.numbers["members with max log(1 + χ²) = ∞"] == 1
    # ordered by base variance, not by row order: the same rows shuffled give the same outcome
    assert _amplification_grows_along_family(_amp_frame([1027.0, 24.7, 19.8], base=(1.1, 5.0, 20.0),
                                                        ress=(np.inf, 0.8, 2.4))).status == "holds"
    assert _amplification_grows_along_family(_amp_frame([19.8, 18.0, 1027.0])).status == "fails"
    flat = _amplification_grows_along_family(_amp_frame([19.8, 19.8 * (1 + 1e-12), 1027.0]))
    assert flat.status == "inconclusive"
    one = _amp_frame([19.8, 24.7, 1027.0]).assign(family_base_variance=[20.0, NAN, NAN])
    assert _amplification_grows_along_family(one).status == "not applicable"
    # a paper setting that is a family member counts once per base variance
    dup = pd.concat([_amp_frame([19.8, 24.7, 1027.0]),
                     pd.DataFrame({"group": ["paper"], "setting": ["NFC_ID"], "family_base_variance": [20.0],
                                   "amplification": [19.8], "log_ress_max": [2.4]})])
    assert len(_amplification_grows_along_family(dup).judged) == 3


def test_p3_amplification_check_lists_the_pairs_it_judged():
    frame = pd.DataFrame({"group": "paper", "setting": ["NFC_ID", "NFC_OOD"], "amplification": [19.84, 1027.0]})
    out = _ood_amplification_exceeds_id(frame)
    assert out.status == "holds" and out.judged == ("NFC_ID/NFC_OOD",) and "FC_ID/FC_OOD" in out.note
    both = pd.concat([frame, pd.DataFrame({"group": "paper", "setting": ["FC_ID", "FC_OOD"],
                                           "amplification": [21.7, 100.0]})])
    out = _ood_amplification_exceeds_id(both)
    assert out.status == "fails" and set(out.judged) == {"NFC_ID/NFC_OOD", "FC_ID/FC_OOD"}
    assert _ood_amplification_exceeds_id(frame.iloc[:1]).status == "not applicable"


def _family_frame(harm, base=(20.0, 5.0, 1.1), eps=0.005):
    return pd.DataFrame({"setting": [f"family_v{v:g}" for v in base], "family_base_variance": base, "eps": eps,
                         "kl_fkc_perturbed": harm, "kl_estimation": [1e-3, 9e-4, 2e-3],
                         "kl_inference": [7e-3, 1e-2, 0.1], "kl_hat_min": [4e-4, 5e-4, 0.02]})


def test_ood_family_check_outcomes():
    assert _harm_grows_along_family(_family_frame([5e-4, 6e-4, 0.03])).status == "holds"
    assert _harm_grows_along_family(_family_frame([5e-4, 6e-4, np.inf])).status == "holds"
    assert _harm_grows_along_family(_family_frame([5e-4, 4e-4, 0.03])).status == "fails"
    assert _harm_grows_along_family(_family_frame([5e-4, 5e-4 * (1 + 1e-9), 0.03])).status == "inconclusive"
    none = _family_frame([5e-4, 6e-4, 0.03]).assign(family_base_variance=NAN)
    assert _harm_grows_along_family(none).status == "not applicable"
    two = pd.concat([_family_frame([5e-4, 6e-4, 0.03]), _family_frame([5e-4, 4e-4, 0.03], eps=0.01)])
    assert _harm_grows_along_family(two).status == "fails"  # judged per ε


def _along(setting, label, ratios):
    n = len(ratios)
    return pd.DataFrame({"setting": setting, "id_ood": label, "model": "precision", "source": "P_1",
                         "t": np.linspace(0.1, 1, n), "train": 0.1, "under_target": 0.1 * np.asarray(ratios),
                         "under_path": 0.1})


def test_score_error_contrast_outcomes():
    ood, iid = _along("NFC_OOD", "OOD", [0.9, 4.1, np.inf]), _along("NFC_ID", "ID", [0.5, 1.0, 0.99])
    held = _sampling_side_contrast(pd.concat([ood, iid]))
    assert held.status == "holds" and set(held.judged) == {"NFC_OOD (OOD)", "NFC_ID (ID)"}
    assert held.numbers["NFC_OOD (OOD): max finite ‖δ‖_L²(Q_t)/‖δ‖_L²(q_t)"] == 4.1
    # the contrast is absent when the ID setting exceeds too (pooling would have called this "holds")
    assert _sampling_side_contrast(pd.concat([ood, _along("NFC_ID", "ID", [0.5, 1.2])])).status == "fails"
    assert _sampling_side_contrast(pd.concat([_along("X", "OOD", [0.5, 1.0]), iid])).status == "fails"
    # only an infinite sampling-side norm: it exceeds
    assert _sampling_side_contrast(pd.concat([_along("X", "OOD", [0.5, np.inf]), iid])).status == "holds"
    assert _sampling_side_contrast(ood).status == "not applicable"
    mixed = _sampling_side_contrast(pd.concat([ood, iid, _along("mine", "unlabelled", [7.0])]))
    assert mixed.status == "holds" and "mine" in mixed.note and not any("mine" in j for j in mixed.judged)


def _two_point_frame(tv_ood, tv_id, norm=0.1):
    return pd.DataFrame({"setting": ["FC_OOD", "FC_ID"], "id_ood": ["OOD", "ID"], "eps": 0.1,
                         "train_norm_max": [norm, 0.1], "tv_lower_bound": [tv_ood, tv_id]})


def test_two_point_check_outcomes():
    assert _two_point_lower_bound(_two_point_frame(0.03, 1e-16)).status == "holds"
    assert _two_point_lower_bound(_two_point_frame(1e-10, 1e-16)).status == "fails"
    assert _two_point_lower_bound(_two_point_frame(0.03, 1e-3)).status == "fails"
    assert _two_point_lower_bound(_two_point_frame(0.03, 1e-16, norm=0.2)).status == "fails"
    assert _two_point_lower_bound(_two_point_frame(0.03, 1e-16).iloc[:1]).status == "not applicable"


def test_transfer_check_outcomes():
    frame = pd.DataFrame({"setting": ["A", "A", "B"], "sq_bound": [1.0, np.inf, 2.0], "abs_bound": [1.0, np.inf, 2.0],
                          "abs_measured": [0.5, 0.3, 1.0], "holds": [True, True, True]})
    out = _transfer_holds(frame)
    assert out.status == "holds" and out.judged == ("A", "B")
    assert _transfer_holds(frame.assign(holds=[True, True, False])).status == "fails"
    assert _transfer_holds(frame.iloc[1:2]).status == "not applicable"


def test_fkc_worse_over_the_eigenspace_is_three_valued():
    assert _verdict(0.01, 0.2) == "every direction"
    assert _verdict(-0.1, -0.05) == "no direction"
    assert _verdict(-0.02, 0.04) == "some directions"
