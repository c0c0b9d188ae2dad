r"""FKC's limit against the naive sampler, both with misspecified scores (exact, Gaussian settings).

:func:`naive_error_sweep` — along the worst direction of :func:`theory.amplification.amplification`, both signs, a
sweep of training-side ``ε``: the exact target of the misspecified scores (FKC's continuous-time limit for such
errors) against the naive sampler with them, so that the report says plainly where FKC with errors is worse than
naive with errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, as_setting, compose
from closed_form.divergences import kl
from closed_form.errors import CatcompError, ImproperCompositionError
from closed_form.laws import sde_law
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.amplification import amplification, calibrate, perturbed_sources_checked, training_error_sq
from verify.analysis.error_models import naive_with_errors_law
from verify.report.figures import FigureSpec, lines
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec


def _estimation_kl(composition, fitted, schedule, t_min):
    try:
        q_hat = compose(fitted, composition.weights)
    except ImproperCompositionError:
        return np.inf  # Q̂ is not a distribution: no sampler exact for these scores has a limit
    return float(kl(composition.noised_target(schedule, t_min), q_hat.noised_target(schedule, t_min)))


def naive_error_sweep(setting: str, eps=(0.001, 0.002, 0.005, 0.01), t_min: float = 1e-4) -> pd.DataFrame:
    r"""Along the worst direction ``±v`` of :func:`theory.amplification.amplification`, calibrated to each
    training-side ``ε`` exactly: ``KL(Q_{t_min}‖·)`` of the exact target of the misspecified scores (``Q̂_{t_min}``,
    FKC's continuous limit; ``inf`` when ``Q̂`` is improper) and of the naive SDE with them, beside the naive SDE with
    exact scores (inference-time error). ``valid = False`` (KLs NaN) where the perturbed covariances stop being
    positive definite before ``ε`` is reached."""
    schedule = VPSchedule()
    setting = as_setting(setting)
    comp = setting.composition
    amp = amplification(comp, schedule)
    q_min = comp.noised_target(schedule, t_min)
    naive = sde_law(comp.naive_field(schedule), schedule, comp.noised_target(schedule, schedule.T), t_min)
    kl_inference = float(kl(q_min, naive))
    rows = []
    for e in eps:
        for sign in (1.0, -1.0):
            row = {"setting": setting.name, "eps": float(e), "sign": sign, "kl_inference": kl_inference}
            try:
                delta = calibrate(comp, schedule, float(e), sign * amp.direction)
            except CatcompError:
                rows.append({**row, "valid": False, "eps_check": float("nan"), "kl_fkc_errors": float("nan"),
                             "kl_naive_errors": float("nan")})
                continue
            fitted = perturbed_sources_checked(comp.sources, delta)
            rows.append({**row, "valid": True,
                         "eps_check": float(np.sqrt(training_error_sq(comp, schedule, delta))),
                         "kl_fkc_errors": _estimation_kl(comp, fitted, schedule, t_min),
                         "kl_naive_errors": float(kl(q_min, naive_with_errors_law(comp, fitted, schedule, t_min)))})
    frame = pd.DataFrame(rows)
    frame["fkc_worse_than_naive"] = frame["kl_fkc_errors"] > frame["kl_naive_errors"]
    return frame


# ---------------------------------------------------------------------------------------------- registration
def _sweep_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Long form for the figure: FKC's limit and naive with errors per sign, naive with exact scores once."""
    names = {"kl_fkc_errors": "FKC limit, errors", "kl_naive_errors": "naive, errors",
             "kl_inference": "naive, exact scores"}
    long = frame[frame["valid"].astype(bool)].melt(id_vars=["setting", "eps", "sign_label"], value_vars=list(names),
                                                   var_name="law", value_name="KL")
    long = long[(long["law"] != "kl_inference") | (long["sign_label"] == "+")]
    return long.assign(curve=[names[law] + ("" if law == "kl_inference" else f" ({sign})")
                              for law, sign in zip(long["law"], long["sign_label"])])


EXPERIMENT = Experiment(
    name="naive_error_sweep",
    title="FKC's limit vs the naive sampler, both with misspecified scores, along the worst direction (exact)",
    compute=naive_error_sweep,
    seed_argument=None,
    default=grid(setting=GAUSSIAN_SETTINGS, eps=([0.002, 0.005, 0.01],)),
    quick=grid(setting=("NFC_OOD",), eps=([0.005],)),
    allow_nan=("eps_check", "kl_fkc_errors", "kl_naive_errors"),
    derive=lambda frame: frame.assign(sign_label=lambda f: np.where(f["sign"] > 0, "+", "−")),
    tables=(TableSpec(
        name="naive_error_sweep",
        caption="Misspecified sources along the worst direction ±v at training-side ε (DSM excess): KL(Q‖·) at "
                "t_min of FKC's continuous-time limit (the exact composition of the misspecified sources; ∞ when "
                "improper) and of the naive SDE with the same scores, beside the naive SDE with exact scores; "
                "'FKC worse' marks where FKC with errors is worse than naive with errors",
        index=("setting", "eps", "sign_label"), index_header="setting / ε / sign",
        columns=(
            Column("kl_inference", "naive, exact scores"),
            Column("kl_fkc_errors", "FKC limit, errors", missing="invalid"),
            Column("kl_naive_errors", "naive, errors", missing="invalid"),
            Column("fkc_worse_than_naive", "FKC worse", kind="flag"),
        ),
    ),),
    figures=(FigureSpec(
        "naive_error_sweep",
        "KL(Q‖·) against training-side ε along the worst direction (both signs): FKC's limit with the misspecified "
        "scores and naive composition with them, beside naive with exact scores (drawn at the floor 1e-6 where "
        "naive composition is exact).",
        lambda frame: lines(_sweep_curves(frame), x="eps", y="KL", hue="curve", col="setting", logx=True, logy=True,
                            floor=1e-6, ylabel="KL(Q‖·)"),
    ),),
)
