r"""How far each target lies outside its sources: ``rESS_i⁻¹ = 1 + χ²(Q‖P_i)`` and mass outside 95 % HDRs.

:func:`ood_summary` gives one row per (setting, source) and one per setting for "all sources at once", with the
quantifiers of :mod:`closed_form.ood`, for any setting: exact for Gaussian settings (``inf`` where ``2Σ_i − Σ_Q`` is not positive
definite), Monte Carlo with standard errors for settings with mixture sources.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, Gaussian, as_setting
from closed_form.divergences import ress_inverse
from closed_form.ood import fraction_outside_hdr
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from verify.analysis.montecarlo import (
    fraction_outside_hdr_monte_carlo,
    hdr_log_density_threshold,
    ress_inverse_monte_carlo,
)
from verify.report.claims import Check, Outcome
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec

#: The ``source`` value of the row "outside every source's HDR at once".
ALL_SOURCES = "all"


def ood_summary(setting, n_samples: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """OOD quantifiers of ``setting`` (a :class:`closed_form.Setting` or a paper setting's name; any dimension and
    number of sources).

    Columns: ``source`` (a source label of the setting, or ``all``), ``kind`` (``source`` or ``all``),
    ``ress_inverse`` and its standard error (0 when exact; NaN for ``all``, where it is not defined),
    ``frac_outside_hdr`` and its standard error, ``method`` (``exact`` or ``Monte Carlo``) and ``regime`` (``ID``,
    ``OOD`` or ``unknown``: the setting's ``in_distribution`` label). The fraction outside all HDRs at once is Monte
    Carlo in every setting (from ``n_samples`` exact target draws), with thresholds exact for Gaussian sources.
    """
    s = setting = as_setting(setting)
    comp = s.composition
    key_draw, key_thr = jax.random.split(jax.random.key(seed))
    draws = comp.sample_target(key_draw, int(n_samples)).samples
    # Mixture HDR levels are Monte Carlo quantiles: ten times as many source draws as target draws keeps their
    # error well below the target draws' own.
    thresholds = [hdr_log_density_threshold(p, k, level, n=10 * int(n_samples))
                  for p, k in zip(s.sources, jax.random.split(key_thr, len(s.sources)))]
    mc = fraction_outside_hdr_monte_carlo(draws, s.sources, thresholds)
    exact = comp.has_closed_form_target and isinstance(comp.target, Gaussian)
    regime = {True: "ID", False: "OOD", None: "unknown"}[s.in_distribution]
    rows = []
    for name, source, frac_mc in zip(s.labels, s.sources, mc["each"]):
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
        rows.append({"setting": setting.name, "regime": regime, "source": name, "kind": "source", **row})
    rows.append({"setting": setting.name, "regime": regime, "source": ALL_SOURCES, "kind": "all",
                 "ress_inverse": float("nan"), "ress_inverse_se": float("nan"),
                 "frac_outside_hdr": mc["all"].value, "frac_outside_hdr_se": mc["all"].stderr,
                 "method": "Monte Carlo"})
    frame = pd.DataFrame(rows)
    frame["log10_ress_inverse"] = np.log10(frame["ress_inverse"])
    return frame


# ---------------------------------------------------------------------------------------------- registration
def _ood_labels_match(frame: pd.DataFrame) -> Outcome:
    """Per setting with a known ID/OOD label and exact 1 + χ² (Gaussian sources): OOD ⇔ 1 + χ² = ∞ for every source,
    ID ⇔ finite for every source. Settings without a label, or with Monte Carlo estimates (mixtures, whose χ² is
    not decided by an estimate), are listed as not judged."""
    sources = frame[frame["kind"] == "source"]
    labelled = sources[sources["regime"].isin(("ID", "OOD")) & (sources["method"] == "exact")]
    skipped = sorted(set(sources["setting"]) - set(labelled["setting"]))
    note = (f"not judged (no ID/OOD label, or 1 + χ² only estimated): {', '.join(skipped)}" if skipped else "")
    if not len(labelled):
        return Outcome.not_applicable("no setting with an ID/OOD label and exact 1 + χ² (Gaussian sources) in this run"
                                      + (f"; {note}" if note else ""))
    numbers, ok, judged = {}, True, []
    for name, rows in labelled.groupby("setting", sort=False):
        values = rows["ress_inverse"].astype(float).to_numpy()
        regime = rows["regime"].iloc[0]
        match = bool(np.all(np.isinf(values))) if regime == "OOD" else bool(np.all(np.isfinite(values)))
        numbers[f"{name} ({regime}): sources with 1 + χ² = ∞"] = f"{int(np.isinf(values).sum())} of {len(values)}"
        finite = values[np.isfinite(values)]
        if len(finite):
            numbers[f"{name} ({regime}): largest finite 1 + χ²"] = float(finite.max())
        ok &= match
        judged.append(name)
    return Outcome.decide(ok, numbers, note, judged=judged)


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
            caption="Sensitivity of each target to its sources: rESS_i⁻¹ = 1 + χ²(Q‖P_i), exact for the "
                    "Gaussian settings (∞ where 2Σ_i − Σ_Q is not positive definite), Monte Carlo ± standard "
                    "error for the mixtures; -- where a source is not one of the setting's.",
            index=("setting",), pivot="source", pivot_header="source P_i", where={"kind": "source"},
            columns=(Column("ress_inverse", "1 + χ²(Q‖P_i)", kind="mean_se", se="ress_inverse_se", missing="--"),),
        ),
        TableSpec(
            name="ood_hdr",
            caption="Fraction of the target's mass outside each source's 95 % highest-density region and outside "
                    "all of them at once (exact for single Gaussian sources, else Monte Carlo ± standard error; -- "
                    "where a source is not one of the setting's).",
            index=("setting",), pivot="source", pivot_header="outside the 95 % HDR of",
            columns=(Column("frac_outside_hdr", "fraction", kind="mean_se", se="frac_outside_hdr_se", missing="--"),),
        ),
    ),
    checks=(
        Check("F6", "in each Gaussian setting labelled OOD, 1 + χ²(Q‖P_i) = ∞ for every source; in each labelled ID, "
              "finite for every source (exact; settings without a label are not judged)", _ood_labels_match,
              asserted=False),
    ),
)
