r"""How much of the image-scale sensitivity metric is estimator: the paired DDPM-bound ratio estimator with exact
Gaussian ε-predictors, on the eight families and the paper's Gaussian settings (all closed form, no Monte Carlo).

Per configuration and window (``trimmed`` and ``full``, :data:`closed_form.vlb.VLB_WINDOWS`), for the source ``P_i``
that attains the exact metric: the error of the estimated log weight ``log ŵ_i − log w_i`` as its standard deviation
under ``P_i`` (what the self-normalized rESS sees; a constant error cancels) and its mean; and the metric
``log(E ŵ²/(E ŵ)²)`` that the estimated weights give with infinitely many draws, beside the exact ``log(1 + χ²)``.
Mixture sources are not covered (their ε-predictors have no quadratic closed form).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import exact_log_ress_inverse, family_configs, paper_setting
from closed_form.families import FAMILY_NAMES
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from closed_form.vlb import (
    VLB_WINDOWS,
    DiscreteDDPMSchedule,
    composition_log_weight_estimates,
    composition_log_weights_exact,
    population_log_ress_inverse,
)


def _cases(group: str):
    if group == "families":
        for name in FAMILY_NAMES:
            for c in family_configs(name):
                yield name, f"{c.symbol} = {c.value:.4g}", c.sources, c.composition
    elif group == "paper":
        for name in GAUSSIAN_SETTINGS:
            s = paper_setting(name)
            yield "paper", name, s.sources, s.composition
    else:
        raise ValueError(f"group must be 'families' or 'paper', got {group!r}.")


def vlb_estimator_error(group: str = "families") -> pd.DataFrame:
    """One row per configuration of ``group`` (``"families"`` or ``"paper"``): exact metric, and per window the
    error of the estimated log weights and the population metric they give (module doc)."""
    schedule = DiscreteDDPMSchedule.authors()
    rows = []
    for family, label, sources, comp in _cases(group):
        exact = exact_log_ress_inverse(comp)
        i = int(np.argmax(np.where(np.isfinite(exact), exact, np.inf)))  # the source attaining the metric
        exact_w = composition_log_weights_exact(sources)
        row = {"family": family, "config": label, "exact": float(exact.max()), "source": ("A", "B", "0")[i]}
        for window in VLB_WINDOWS:
            est_w = composition_log_weight_estimates(sources, window, schedule)
            err_mean, err_sd = (est_w[i] - exact_w[i]).mean_sd_under(sources[i])
            metric = max(population_log_ress_inverse(f, p) for f, p in zip(est_w, sources))
            row[f"err_sd_{window}"] = err_sd
            row[f"err_mean_{window}"] = err_mean
            row[f"metric_{window}"] = metric
            row[f"metric_gap_{window}"] = (metric - row["exact"]) if np.isfinite(row["exact"]) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["vlb_estimator_error"]
