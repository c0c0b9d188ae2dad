r"""The change-of-measure (transfer) bound measured along ``t`` on Gaussian settings (the paper's, by default).

Score matching controls ``‖δ_i‖_{L²(q^i_t)}``; sampling pays ``E_{Q_t}‖δ_i‖²``. :func:`transfer_rows` evaluates
:func:`theory.transfer.transfer_bound` for each source's error, trained under the diffused source ``q^i_t`` and paid
under the diffused target ``Q_t``, and returns the measured sampling-side moments beside their Cauchy–Schwarz bounds
``√(1 + χ²(Q_t‖q^i_t)) · √(E_{q^i_t}‖δ‖⁴)`` and ``√(1 + χ²(Q_t‖q^i_t)) · ‖δ‖_{L²(q^i_t)}`` (``inf`` where the χ² is
infinite, as at ``t = 0`` in the OOD settings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, as_setting
from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.perturbations import DensityPowerError, precision_error
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.transfer import transfer_bound
from verify.report.claims import Check, Outcome
from verify.report.figures import FigureSpec, measured_vs_bound
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec

def transfer_rows(setting, eps: float, times, model: str = "precision", gamma: float = 0.25) -> pd.DataFrame:
    """One row per (source, ``t``) of a Gaussian setting (sources named by ``setting.labels``):
    ``1 + χ²(Q_t‖q^i_t)``, the training-side norm (``= eps``), ``E_{Q_t}‖δ‖²`` and ``E_{Q_t}‖δ‖`` measured, their
    bounds, and whether both hold. ``model`` is ``"precision"`` (affine, exact moments) or ``"density_power"``
    (``δ ∝ q^{−γ}``, OOD-growing).

    Raises
    ------
    CatcompError
        For an unknown ``model``; :class:`~closed_form.errors.NotGaussianSettingError` for a mixture source;
        :class:`~closed_form.errors.ShapeMismatchError` in more than 2 dimensions (``E_{Q_t}‖δ‖`` is a cubature in
        1-D and 2-D, :mod:`theory.transfer`).
    """
    if model not in ("precision", "density_power"):
        raise CatcompError(f"model must be 'precision' or 'density_power', got {model!r}.")
    schedule = VPSchedule()
    s = setting = as_setting(setting)
    s.require_gaussian("transfer_rows (exact moments of Gaussian score errors)")
    if s.dim > 2:
        raise ShapeMismatchError(f"transfer_rows measures E_Q‖δ‖ by cubature in 1-D and 2-D; setting {s.name!r} has "
                                 f"d = {s.dim}. Use a setting of dimension 1 or 2.")
    comp = s.composition
    rows = []
    for name, source, weight in zip(s.labels, s.sources, s.weights):
        error = (precision_error(source, schedule, eps, float(np.sign(weight))) if model == "precision"
                 else DensityPowerError(source, schedule, eps, gamma))
        for t in times:
            t = float(t)
            r = transfer_bound(error, source.noised(schedule, t), comp.noised_target(schedule, t), t)
            rows.append({"setting": setting.name, "model": model, "source": name, "t": t, "eps": float(eps),
                         "ress_inverse": r.ress_inverse, "train_norm": r.train_norm,
                         "sq_measured": r.sq_measured, "sq_bound": r.sq_bound,
                         "abs_measured": r.abs_measured, "abs_bound": r.abs_bound, "holds": r.holds})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- registration
def _reason_not_applicable(setting) -> str | None:
    reason = gaussian_only(setting)
    if reason is None and setting.dim > 2:
        reason = f"E_Q‖δ‖ is a cubature in 1-D and 2-D (theory.transfer); {setting.name} has d = {setting.dim}"
    return reason


def _transfer_holds(frame: pd.DataFrame) -> Outcome:
    finite = frame[np.isfinite(frame["sq_bound"]) & np.isfinite(frame["abs_bound"])]
    numbers = {"rows": len(frame), "rows with a finite bound (judged)": len(finite)}
    if not len(finite):
        return Outcome.not_applicable("every bound is infinite (1 + χ² = ∞): nothing to judge", numbers)
    numbers["max tightness E_Q‖δ‖ / bound"] = float((finite["abs_measured"] / finite["abs_bound"]).max())
    return Outcome.decide(bool(finite["holds"].astype(bool).all()), numbers,
                          "Cauchy–Schwarz: E_Q‖δ‖ ≤ √(1 + χ²(Q_t‖q_t))·‖δ‖_L²(q_t); rows with an infinite χ² hold "
                          "vacuously and are not judged", judged=tuple(dict.fromkeys(finite["setting"])))

def _transfer_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["abs_tightness"] = (frame["abs_measured"] / frame["abs_bound"]).astype(float)
    frame["t_label"] = [f"{t:.3g}" for t in frame["t"]]
    return frame


EXPERIMENT = Experiment(
    name="transfer_bound",
    title="Change-of-measure bound: sampling-side score error against √(1 + χ²)·training-side error, along t",
    compute=transfer_rows,
    seed_argument=None,
    applies_to=_reason_not_applicable,
    default=grid(setting=GAUSSIAN_SETTINGS, eps=(0.1,), times=([1e-4, 0.5, 0.9],)),
    quick=grid(setting=("NFC_ID",), eps=(0.1,), times=([0.5],)),
    derive=_transfer_derived,
    tables=(TableSpec(
        name="transfer_bound",
        caption="The change-of-measure bound per source and time: E_{Q_t}‖δ‖ measured against √(1 + χ²(Q_t‖q_t))·ε "
                "(training-side ε = ‖δ‖ under q_t), and E_{Q_t}‖δ‖² against its bound; ∞ where the χ² is",
        index=("setting", "source", "t_label"), index_header="setting / source / t",
        columns=(
            Column("ress_inverse", "1 + χ²(Q_t‖q_t)"),
            Column("abs_measured", "E_Q‖δ‖"),
            Column("abs_bound", "bound"),
            Column("abs_tightness", "tightness"),
            Column("sq_measured", "E_Q‖δ‖²"),
            Column("sq_bound", "bound "),
        ),
    ),),
    figures=(FigureSpec(
        "transfer_bound",
        "Sampling-side error E_{Q_t}‖δ‖ against its change-of-measure bound (finite bounds only); y = x dashed.",
        lambda frame: measured_vs_bound(frame, measured="abs_measured", bound="abs_bound", hue="setting",
                                        style="source"),
    ),),
    checks=(Check("F7", "the change-of-measure (transfer) bound holds for every source and time where it is finite",
                  _transfer_holds),),
)
