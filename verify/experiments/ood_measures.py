r"""How far each paper target lies outside its sources: ``rESS_i⁻¹ = 1 + χ²(Q‖P_i)`` and mass outside 95 % HDRs.

:func:`ood_summary` gives one row per (setting, source) and one per setting for "all sources at once", with the
quantifiers of :mod:`closed_form.ood`: exact for the Gaussian settings (``inf`` where ``2Σ_i − Σ_Q`` is not positive
definite), Monte Carlo with standard errors for the mixtures.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, Gaussian, as_setting
from closed_form.divergences import ress_inverse
from closed_form.ood import fraction_outside_hdr
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from closed_form.settings import PAPER_SOURCE_LABELS as SOURCE_LABELS
from verify.analysis.montecarlo import (
    fraction_outside_hdr_monte_carlo,
    hdr_log_density_threshold,
    ress_inverse_monte_carlo,
)
from verify.report.claims import Check, Outcome
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec

SOURCE_NAMES = ("P_a1", "P_a2", "P_0")


def ood_summary(setting: str, n_samples: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """OOD quantifiers of the paper's setting ``setting``.

    Columns: ``source`` (``P_a1``, ``P_a2``, ``P_0`` or ``all``), ``ress_inverse`` and its standard error (0 when
    exact; NaN for ``all``, where it is not defined), ``frac_outside_hdr`` and its standard error, and ``method``
    (``exact`` or ``Monte Carlo``). The fraction outside all HDRs at once is Monte Carlo in every setting (from
    ``n_samples`` exact target draws), with thresholds exact for Gaussian sources.
    """
    s = setting = as_setting(setting)
    comp = s.composition
    key_draw, key_thr = jax.random.split(jax.random.key(seed))
    draws = comp.sample_target(key_draw, int(n_samples)).samples
    # Mixture HDR levels are Monte Carlo quantiles: ten times as many source draws as target draws keeps their
    # error well below the target draws' own.
    thresholds = [hdr_log_density_threshold(p, k, level, n=10 * int(n_samples))
                  for p, k in zip(s.sources, jax.random.split(key_thr, 3))]
    mc = fraction_outside_hdr_monte_carlo(draws, s.sources, thresholds)
    exact = comp.has_closed_form_target and isinstance(comp.target, Gaussian)
    rows = []
    for name, source, frac_mc in zip(SOURCE_NAMES, s.sources, mc["each"]):
        if exact:
            row = {"ress_inverse": ress_inverse(comp.target, source), "ress_inverse_se": 0.0,
                   "frac_outside_hdr": fraction_outside_hdr(comp.target, source, level), "frac_outside_hdr_se": 0.0,
                   "method": "exact"}
        else:
            # Q's normalizer by cubature to 1e-7 (cached by the composition): far below the Monte Carlo error.
            comp.log_normalizer(rtol=1e-7)
            est = ress_inverse_monte_carlo(comp.target_logpdf, source, draws)
            row = {"ress_inverse": est.value, "ress_inverse_se": est.stderr, "frac_outside_hdr": frac_mc.value,
                   "frac_outside_hdr_se": frac_mc.stderr, "method": "Monte Carlo"}
        rows.append({"setting": setting.name, "regime": "ID" if s.in_distribution else "OOD", "source": name, **row})
    rows.append({"setting": setting.name, "regime": "ID" if s.in_distribution else "OOD", "source": "all",
                 "ress_inverse": float("nan"), "ress_inverse_se": float("nan"),
                 "frac_outside_hdr": mc["all"].value, "frac_outside_hdr_se": mc["all"].stderr,
                 "method": "Monte Carlo"})
    frame = pd.DataFrame(rows)
    frame["log10_ress_inverse"] = np.log10(frame["ress_inverse"])
    return frame


# ---------------------------------------------------------------------------------------------- registration
def _ood_labels_match(frame: pd.DataFrame) -> Outcome:
    gaussian = frame[frame["setting"].isin(GAUSSIAN_SETTINGS) & (frame["source"] != "all")]
    ood = gaussian[gaussian["regime"] == "OOD"]["ress_inverse"].to_numpy()
    iid = gaussian[gaussian["regime"] == "ID"]["ress_inverse"].to_numpy()
    return Outcome.decide(len(ood) > 0 and len(iid) > 0 and bool(np.all(np.isinf(ood)) and np.all(np.isfinite(iid))),
                          {"OOD sources with 1 + χ² = ∞": f"{int(np.isinf(ood).sum())} of {len(ood)}",
                           "largest finite 1 + χ² (ID)": float(np.max(iid)) if len(iid) else float("inf")})


EXPERIMENT = Experiment(
    name="ood_measures",
    title="How far each target lies outside its sources: 1 + χ²(Q‖P_i) and mass outside the 95 % HDRs",
    compute=ood_summary,
    default=grid(setting=SETTING_NAMES, n_samples=(20_000,)),
    quick=grid(setting=GAUSSIAN_SETTINGS, n_samples=(1_000,)),  # the mixtures' Monte Carlo: default size only
    allow_nan=("ress_inverse", "ress_inverse_se", "log10_ress_inverse"),
    requires=("closed_form.divergences",),
    tables=(
        TableSpec(
            name="ood_ress",
            caption="Sensitivity of each paper target to its sources: rESS_i⁻¹ = 1 + χ²(Q‖P_i), exact for the "
                    "Gaussian settings (∞ where 2Σ_i − Σ_Q is not positive definite), Monte Carlo ± standard "
                    "error for the mixtures.",
            index=("setting",), pivot="source", pivot_header="source P_i", where={"source": SOURCE_LABELS},
            columns=(Column("ress_inverse", "1 + χ²(Q‖P_i)", kind="mean_se", se="ress_inverse_se"),),
        ),
        TableSpec(
            name="ood_hdr",
            caption="Fraction of the target's mass outside each source's 95 % highest-density region and outside "
                    "all of them at once (exact for single Gaussian sources, else Monte Carlo ± standard error).",
            index=("setting",), pivot="source", pivot_header="outside the 95 % HDR of",
            columns=(Column("frac_outside_hdr", "fraction", kind="mean_se", se="frac_outside_hdr_se"),),
        ),
    ),
    checks=(
        Check("F6", "Gaussian OOD settings have 1 + χ²(Q‖P_i) = ∞ for every source, ID settings finite",
              _ood_labels_match, asserted=False),
    ),
)
