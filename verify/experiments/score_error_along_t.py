r"""Where a score error is paid: training-side ``‖δ_i‖_{L²(q^i_t)}`` against its size under the diffused target and
under the geometric path, along ``t``, for three error models of a Gaussian setting (exact)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, paper_setting
from closed_form.perturbations import DensityPowerError, precision_error
from verify.experiments.error_models import misspecification_errors


def score_error_along_t(name: str = "NFC_OOD", eps: float = 0.1, gamma: float = 0.1, times=None,
                        schedule=None, dsm_eps: float = 0.005) -> pd.DataFrame:
    r"""Training-side ``‖δ_i‖_{L²(q^i_t)}`` beside sampling-side ``‖δ_i‖_{L²(Q_t)}`` and ``‖δ_i‖_{L²(π_t)}`` along
    ``t`` for three error models of a Gaussian setting (all exact; ``inf`` where the error is not square-integrable
    under the sampling law): worst-case source misspecification at DSM size ``dsm_eps`` (its per-``t`` norm varies
    with ``t``), and the precision and density-power errors calibrated to ``‖δ_i(·, t)‖_{L²(q^i_t)} = eps`` at
    every ``t``."""
    schedule = schedule or VPSchedule()
    times = np.geomspace(1e-4, 1.0, 25) if times is None else times
    s = paper_setting(name)
    comp = s.composition
    models = {
        "misspecification": misspecification_errors(comp, schedule, dsm_eps),
        "precision": [precision_error(src, schedule, eps, float(np.sign(w))) for src, w in zip(s.sources, s.weights)],
        "density_power": [DensityPowerError(src, schedule, eps, gamma) for src in s.sources],
    }
    rows = []
    for model, errors in models.items():
        for src_name, err in zip(("a1", "a2", "base"), errors):
            for t in times:
                q_t = comp.noised_target(schedule, float(t))
                pi_t = comp.path_composition(schedule, float(t)).target
                rows.append({
                    "setting": name, "model": model, "source": src_name, "t": float(t),
                    "train": float(err.training_norm(float(t))),
                    "under_target": float(err.norm_under(q_t, float(t))),
                    "under_path": float(err.norm_under(pi_t, float(t))),
                })
    return pd.DataFrame(rows)
