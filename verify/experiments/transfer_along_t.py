r"""The change-of-measure (transfer) bound measured along ``t`` on the paper's Gaussian settings.

Score matching controls ``‖δ_i‖_{L²(q^i_t)}``; sampling pays ``E_{Q_t}‖δ_i‖²``. :func:`transfer_rows` evaluates
:func:`theory.transfer.transfer_bound` for each source's error, trained under the diffused source ``q^i_t`` and paid
under the diffused target ``Q_t``, and returns the measured sampling-side moments beside their Cauchy–Schwarz bounds
``√(1 + χ²(Q_t‖q^i_t)) · √(E_{q^i_t}‖δ‖⁴)`` and ``√(1 + χ²(Q_t‖q^i_t)) · ‖δ‖_{L²(q^i_t)}`` (``inf`` where the χ² is
infinite, as at ``t = 0`` in the OOD settings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, paper_setting
from closed_form.perturbations import DensityPowerError, precision_error
from theory.transfer import transfer_bound

SOURCE_NAMES = ("P_a1", "P_a2", "P_0")


def transfer_rows(setting: str, eps: float, times, model: str = "precision", gamma: float = 0.25) -> pd.DataFrame:
    """One row per (source, ``t``): ``1 + χ²(Q_t‖q^i_t)``, the training-side norm (``= eps``), ``E_{Q_t}‖δ‖²`` and
    ``E_{Q_t}‖δ‖`` measured, their bounds, and whether both hold. ``model`` is ``"precision"`` (affine, exact
    moments) or ``"density_power"`` (``δ ∝ q^{−γ}``, OOD-growing)."""
    if model not in ("precision", "density_power"):
        raise ValueError(f"model must be 'precision' or 'density_power', got {model!r}.")
    schedule = VPSchedule()
    s = paper_setting(setting)
    comp = s.composition
    rows = []
    for name, source, weight in zip(SOURCE_NAMES, s.sources, s.weights):
        error = (precision_error(source, schedule, eps, float(np.sign(weight))) if model == "precision"
                 else DensityPowerError(source, schedule, eps, gamma))
        for t in times:
            t = float(t)
            r = transfer_bound(error, source.noised(schedule, t), comp.noised_target(schedule, t), t)
            rows.append({"setting": setting, "model": model, "source": name, "t": t, "eps": float(eps),
                         "ress_inverse": r.ress_inverse, "train_norm": r.train_norm,
                         "sq_measured": r.sq_measured, "sq_bound": r.sq_bound,
                         "abs_measured": r.abs_measured, "abs_bound": r.abs_bound, "holds": r.holds})
    return pd.DataFrame(rows)
