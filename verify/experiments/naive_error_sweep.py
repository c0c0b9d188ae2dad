r"""FKC's limit against the naive sampler, both with misspecified scores (exact, Gaussian settings).

:func:`naive_error_sweep` — along the worst direction of :func:`theory.amplification.amplification`, both signs, a
sweep of training-side ``ε``: the exact target of the misspecified scores (FKC's continuous-time limit for such
errors) against the naive sampler with them, so that the report says plainly where FKC with errors is worse than
naive with errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, compose, paper_setting
from closed_form.divergences import kl
from closed_form.errors import CatcompError, ImproperCompositionError
from closed_form.laws import sde_law
from theory.amplification import amplification, calibrate, perturbed_sources_checked, training_error_sq
from verify.experiments.amplification import naive_with_errors_law


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
    comp = paper_setting(setting).composition
    amp = amplification(comp, schedule)
    q_min = comp.noised_target(schedule, t_min)
    naive = sde_law(comp.naive_field(schedule), schedule, comp.noised_target(schedule, schedule.T), t_min)
    kl_inference = float(kl(q_min, naive))
    rows = []
    for e in eps:
        for sign in (1.0, -1.0):
            row = {"setting": setting, "eps": float(e), "sign": sign, "kl_inference": kl_inference}
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
