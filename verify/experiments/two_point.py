r"""The two-point lower bound (:func:`theory.two_point.two_point_bound`) for every Gaussian paper setting: two
targets that training-side error of the same size cannot tell apart."""

from __future__ import annotations

import pandas as pd

from closed_form import paper_setting
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.two_point import two_point_bound


def two_point_table(eps: float = 0.1) -> pd.DataFrame:
    """The two-point lower bound for every Gaussian paper setting at training-side size ``eps``."""
    rows = []
    for name in GAUSSIAN_SETTINGS:
        r = two_point_bound(paper_setting(name).composition, eps)
        rows.append({
            "setting": name, "eps": eps, "radius": r.radius, "train_norm_max": float(r.train_norms.max()),
            "source_mass_in_ball_max": float(r.source_mass_in_ball.max()), "target_mass_in_ball": r.target_mass_in_ball,
            "tv": r.tv, "kl": r.kl, "mean_gap": r.mean_gap, "tv_lower_bound": r.tv_lower_bound,
            "w2_lower_bound": r.w2_lower_bound,
        })
    return pd.DataFrame(rows)
