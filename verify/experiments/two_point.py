r"""The two-point lower bound (:func:`theory.two_point.two_point_bound`) for a Gaussian setting in 2-D: two targets
that training-side error of the same size cannot tell apart."""

from __future__ import annotations

import pandas as pd

from closed_form import as_setting
from closed_form.errors import InvalidWeightsError, ShapeMismatchError
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.two_point import two_point_bound
from verify.report.claims import Check, Outcome
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec


def _reason_not_applicable(setting) -> str | None:
    """Why the two-point construction does not apply to ``setting`` (``None`` if it does)."""
    reason = gaussian_only(setting)
    if reason is not None:
        return reason
    if setting.dim != 2:
        return f"the two-point construction is implemented in 2-D (theory.two_point); {setting.name} has d = {setting.dim}"
    if sum(setting.weights) == 0:
        return f"with Σ w_i = 0 the two worlds compose to the same target; {setting.name} has Σ w_i = 0"
    return None


def two_point_table(setting, eps: float = 0.1) -> pd.DataFrame:
    """The two-point lower bound for a Gaussian 2-D ``setting`` at training-side size ``eps`` (one row); ``id_ood``
    is the setting's label (``"ID"``, ``"OOD"`` or ``"unlabelled"``).

    Raises
    ------
    NotGaussianSettingError
        For a mixture source.
    ShapeMismatchError
        For a setting that is not 2-D (the ball search and the cubature are 2-D).
    InvalidWeightsError
        For weights summing to 0 (both worlds would compose to the same target).
    """
    s = as_setting(setting)
    s.require_gaussian("the two-point construction (Gaussian target and HDRs)")
    if s.dim != 2:
        raise ShapeMismatchError(f"the two-point construction is implemented in 2-D; setting {s.name!r} has "
                                 f"d = {s.dim}. Use a 2-D Gaussian setting.")
    if sum(s.weights) == 0:
        raise InvalidWeightsError(f"setting {s.name!r} has Σ w_i = 0, so both worlds compose to the same target; the "
                                  "construction needs weights with a non-zero sum.")
    r = two_point_bound(s.composition, eps)
    return pd.DataFrame([{
        "setting": s.name, "id_ood": {True: "ID", False: "OOD"}.get(s.in_distribution, "unlabelled"),
        "eps": eps, "radius": r.radius, "train_norm_max": float(r.train_norms.max()),
        "source_mass_in_ball_max": float(r.source_mass_in_ball.max()), "target_mass_in_ball": r.target_mass_in_ball,
        "tv": r.tv, "kl": r.kl, "mean_gap": r.mean_gap, "tv_lower_bound": r.tv_lower_bound,
        "w2_lower_bound": r.w2_lower_bound,
    }])


# ---------------------------------------------------------------------------------------------- registration
#: Absolute accuracy of the two-point TV: it combines integrals over the ball each computed to relative 1e-9 of
#: quantities of order one (theory.two_point), so TVs below 1e-8 cannot be told from 0 (the ID settings give ~1e-16,
#: i.e. rounding of 1/Z₊ − 1/Z₋).
TWO_POINT_TV_RESOLUTION = 1e-8
#: The worlds' training-side norms are closed-form cubatures at rtol 1e-9: equal to ε up to that.
TWO_POINT_NORM_RTOL = 1e-9


def _two_point_lower_bound(frame: pd.DataFrame) -> Outcome:
    f = frame.drop_duplicates("setting").set_index("setting")
    ood = [s for s in f.index if f.loc[s, "id_ood"] == "OOD"]
    iid = [s for s in f.index if f.loc[s, "id_ood"] == "ID"]
    if not ood or not iid:
        return Outcome.not_applicable("needs an ID and an OOD setting (setting.in_distribution); this run has "
                                      f"ID: {', '.join(iid) or 'none'}, OOD: {', '.join(ood) or 'none'}")
    judged = f.loc[ood + iid]
    same_training = bool((judged["train_norm_max"] <= judged["eps"] * (1 + TWO_POINT_NORM_RTOL)).all())
    ood_min = float(f.loc[ood, "tv_lower_bound"].min())
    id_max = float(f.loc[iid, "tv_lower_bound"].max())
    return Outcome.decide(same_training and ood_min > TWO_POINT_TV_RESOLUTION >= id_max,
                          {"ε": float(judged["eps"].iloc[0]), "min TV lower bound, OOD": ood_min,
                           "max TV lower bound, ID": id_max, "resolution of the TV": TWO_POINT_TV_RESOLUTION,
                           "training-side norms ≤ ε": same_training},
                          "two score fields with the same training-side error; any procedure that queries them only "
                          "where the sources live errs by at least this TV in one of the two worlds; OOD: resolved "
                          "from 0, ID: not resolvable from 0 at the cubature's accuracy",
                          judged=tuple(f"{s} ({f.loc[s, 'id_ood']})" for s in ood + iid))


EXPERIMENT = Experiment(
    name="two_point",
    title="Two-point lower bound: identical training-side error, different composed targets",
    compute=two_point_table,
    seed_argument=None,
    applies_to=_reason_not_applicable,
    default=grid(setting=GAUSSIAN_SETTINGS, eps=(0.1,)),
    quick=(),  # about a minute of cubature: default size only
    tables=(TableSpec(
        name="two_point",
        caption="Two-point construction per Gaussian setting: two score perturbations with the same training-side "
                "size ε on every source, differing only in a ball where the sources have almost no mass; the TV and "
                "W2 lower bounds hold for any inference-time procedure in one of the two worlds",
        index=("setting",),
        columns=(
            Column("radius", "ball radius"),
            Column("train_norm_max", "max training-side ‖δ‖"),
            Column("source_mass_in_ball_max", "max source mass in ball"),
            Column("target_mass_in_ball", "target mass in ball"),
            Column("tv", "TV(Q̂₊, Q̂₋)"),
            Column("tv_lower_bound", "TV lower bound"),
            Column("w2_lower_bound", "W₂ lower bound"),
        ),
    ),),
    checks=(Check("P2", "two-point construction: at equal training-side error the worse of two worlds errs by a TV "
                  "resolved from 0 in every OOD setting, not resolvable from 0 in any ID one (settings labelled by "
                  "setting.in_distribution; those judged are listed)", _two_point_lower_bound, asserted=False),),
)
