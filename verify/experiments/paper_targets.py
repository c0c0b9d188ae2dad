r"""The composed targets (the paper's settings, or a user's), each computed two independent ways.

:func:`exact_target_summary` gives one row per setting: the target's log normalizer in closed form (where one exists)
and by adaptive cubature (dimensions 1 and 2), its exact mean and covariance, and how well draws of the exact target
sampler match those moments (standardized deviations over all ``d + d(d+1)/2`` means and second moments). Draws for
the report's scatter figure are :mod:`verify.experiments.target_samples`.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, Gaussian, as_setting
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from closed_form.errors import NoClosedFormError
from verify.analysis.cases import case_columns
from verify.report.claims import Check, Outcome
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec


def _standardized_moment_deviations(x: np.ndarray, mean: np.ndarray, cov: np.ndarray):
    r"""Largest ``|z|`` of the sample mean and of the sample second central moments against exact values.

    Mean ``i``: ``z = (x̄_i − μ_i) / √(Σ_ii / n)``. Covariance ``(i, j)`` with the exact mean: ``u = (x_i − μ_i)
    (x_j − μ_j)`` has expectation ``Σ_ij`` and ``z = (ū − Σ_ij) / (sd(u)/√n)`` (its variance estimated from the
    draws).
    """
    n, d = x.shape
    z_mean = (x.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    centered = x - mean
    z_cov = []
    for i in range(d):
        for j in range(i, d):
            u = centered[:, i] * centered[:, j]
            z_cov.append((u.mean() - cov[i, j]) / (u.std(ddof=1) / np.sqrt(n)))
    return float(np.max(np.abs(z_mean))), float(np.max(np.abs(z_cov)))


#: Dimensions in which :meth:`closed_form.Composition.quadrature_moments` offers adaptive cubature.
CUBATURE_MAX_DIM = 2


def summary_reason(setting) -> str | None:
    """``applies_to``: a target without a closed form needs cubature for its moments, offered in ``d ≤ 2``."""
    if setting.composition.has_closed_form_target or setting.dim <= CUBATURE_MAX_DIM:
        return None
    return (f"{setting.name} has no closed-form target and d = {setting.dim}; its moments need cubature, offered "
            f"in dimensions ≤ {CUBATURE_MAX_DIM}")


def exact_target_summary(setting, n_samples: int, seed: int, rtol: float = 1e-10) -> pd.DataFrame:
    """One row describing the exact target ``Q ∝ Π_i P_i^{w_i}`` of ``setting`` (a :class:`closed_form.Setting`, a
    paper setting's name or a spec; any dimension).

    Columns: ``dim``, the labels (``conditionals`` FC / NFC / mixture / unknown, ``regime`` ID / OOD / unknown),
    ``log_z_closed_form`` (NaN when the target has no closed form), ``log_z_cubature`` (NaN for ``d > 2``, where
    cubature is not offered), their absolute difference and the largest moment difference (NaN unless both exist),
    the exact mean and covariance's entries of the first two coordinates (``mean_0``, ``mean_1``, ``cov_00``,
    ``cov_01``, ``cov_11``; NaN where ``d = 1``; closed form, else cubature), the exact sampler's method and
    acceptance rate (NaN for direct sampling), the largest standardized deviations of ``n_samples`` draws from the
    exact moments over all coordinates, and ``moments_compared = d + d(d+1)/2``. ``rtol`` is the cubature's relative
    tolerance (recorded in the ``rtol`` column, so checks can scale their tolerance with it).

    Raises
    ------
    NoClosedFormError
        For a target without a closed form in dimension above 2 (its moments would need cubature).
    """
    s = setting = as_setting(setting)
    comp = s.composition
    d = s.dim
    reason = summary_reason(s)
    if reason:
        raise NoClosedFormError(f"exact_target_summary: {reason}; use a Gaussian (or closed-form) setting there.")
    if d <= CUBATURE_MAX_DIM:
        log_z_cub, mean_cub, cov_cub = comp.quadrature_moments(rtol=rtol)
        log_z_cub, mean_cub, cov_cub = float(log_z_cub), np.asarray(mean_cub), np.asarray(cov_cub)
    else:
        log_z_cub, mean_cub, cov_cub = float("nan"), None, None
    if comp.has_closed_form_target:
        log_z_cf = float(comp.log_normalizer())
        target = comp.target
        mean, cov = np.asarray(target.mean), np.asarray(target.cov)
        kind = "Gaussian" if isinstance(target, Gaussian) else "mixture"
    else:
        log_z_cf = float("nan")
        mean, cov = mean_cub, cov_cub
        kind = "no closed form"
    both = comp.has_closed_form_target and mean_cub is not None
    draw = comp.sample_target(jax.random.key(seed), int(n_samples))
    z_mean, z_cov = _standardized_moment_deviations(np.asarray(draw.samples), mean, cov)
    nan = float("nan")
    return pd.DataFrame([{
        "setting": setting.name,
        "dim": int(d),
        **case_columns(s),
        "target": kind,
        "log_z_closed_form": log_z_cf,
        "log_z_cubature": log_z_cub,
        "log_z_abs_diff": abs(log_z_cf - log_z_cub) if both else nan,
        "moments_abs_diff": float(max(np.max(np.abs(mean - mean_cub)), np.max(np.abs(cov - cov_cub))))
        if both else nan,
        "mean_0": float(mean[0]), "mean_1": float(mean[1]) if d > 1 else nan,
        "cov_00": float(cov[0, 0]), "cov_01": float(cov[0, 1]) if d > 1 else nan,
        "cov_11": float(cov[1, 1]) if d > 1 else nan,
        "sampler": draw.method,
        "acceptance_rate": float("nan") if draw.acceptance_rate is None else float(draw.acceptance_rate),
        "n_samples": int(n_samples),
        "max_z_mean": z_mean,
        "max_z_cov": z_cov,
        "moments_compared": int(d + d * (d + 1) // 2),
        "rtol": float(rtol),
    }])


# ---------------------------------------------------------------------------------------------- registration
#: The cubature's relative tolerance rtol bounds its error on Z, hence its absolute error on log Z, to about rtol
#: (its error estimate is itself an estimate, so the check allows this factor above it).
CUBATURE_LOG_Z_FACTOR = 100.0
#: Moments are integrated in box coordinates u = (x − c)/h, each integral to relative rtol, so a second moment in x
#: carries an absolute error of about rtol·h²; the boxes reach 15 standard deviations of Q's Gaussian tail envelopes
#: (h² ≤ 2.25e3 over the paper's settings, FC_OOD's the largest, measured), hence a further factor 100 over the
#: log Z tolerance: 1e4·rtol ≥ 4·h²·rtol.
CUBATURE_MOMENT_FACTOR = 100.0


def _closed_form_matches_cubature(frame: pd.DataFrame) -> Outcome:
    both = frame[np.isfinite(frame["log_z_abs_diff"].to_numpy(float))]
    if both.empty:
        return Outcome.not_applicable("no setting of the run has both a closed-form target and cubature "
                                      f"(cubature is offered in dimensions ≤ {CUBATURE_MAX_DIM})")
    worst_z = float(both["log_z_abs_diff"].max())
    worst_moment = float(both["moments_abs_diff"].max())
    tol = CUBATURE_LOG_Z_FACTOR * float(both["rtol"].max())
    others = [s for s in frame["setting"] if s not in set(both["setting"])]
    note = f"not judged (no closed form, or d > {CUBATURE_MAX_DIM}): {', '.join(others)}" if others else ""
    return Outcome.decide(worst_z < tol and worst_moment < CUBATURE_MOMENT_FACTOR * tol,
                          {"max |log Z closed form − cubature|": worst_z,
                           "max |moment closed form − cubature|": worst_moment,
                           "cubature rtol": float(both["rtol"].max()),
                           "settings with a closed form and cubature": len(both)}, note,
                          judged=list(both["setting"]))


#: Family-wise false-alarm probability of the exact samplers' moment check: the largest of m standardized moment
#: deviations (d means and d(d+1)/2 second moments per setting) exceeds Φ⁻¹(1 − α/(2m)) with probability ≤ α under
#: a correct sampler (Bonferroni over two-sided normal tails).
MOMENT_CHECK_ALPHA = 1e-3


def _bonferroni_z(n_tests: int, alpha: float = MOMENT_CHECK_ALPHA) -> float:
    from scipy.stats import norm

    return float(norm.isf(alpha / (2 * n_tests)))


def moments_compared(frame: pd.DataFrame) -> int:
    """``m``: the means and second moments compared over the frame's settings, ``d + d(d+1)/2`` each (from the
    ``moments_compared`` column; frames saved without it are the paper's 2-D settings, 5 each)."""
    if "moments_compared" in frame.columns:
        return int(frame["moments_compared"].sum())
    return 5 * len(frame)


def _samplers_match_moments(frame: pd.DataFrame) -> Outcome:
    z = float(np.max(frame[["max_z_mean", "max_z_cov"]].to_numpy()))
    n_tests = moments_compared(frame)
    z_max = _bonferroni_z(n_tests)
    return Outcome.decide(z < z_max, {"max |z| over settings, means and covariances": z,
                                      "threshold z_(α/(2m)) (normal quantile)": z_max, "moments compared m": n_tests,
                                      "draws per setting": int(frame["n_samples"].min())},
                          f"z = standardized deviation of the draws' moments from the exact ones (d means and "
                          f"d(d+1)/2 second moments per setting); family-wise false-alarm probability α = "
                          f"{MOMENT_CHECK_ALPHA:g} (Bonferroni)", judged=list(frame["setting"]))


def _compositions_proper(frame: pd.DataFrame) -> Outcome:
    log_z = frame["log_z_cubature"].where(np.isfinite(frame["log_z_cubature"].to_numpy(float)),
                                          frame["log_z_closed_form"]).to_numpy(float)
    finite = np.isfinite(log_z)
    return Outcome.decide(bool(finite.all()) and len(frame) > 0,
                          {"settings": ", ".join(frame["setting"]), "with finite log Z": int(finite.sum())},
                          "each Q ∝ Π_i P_i^{w_i} is a normalizable density with an exact sampler (log Z by cubature; "
                          f"in closed form where cubature is not offered, d > {CUBATURE_MAX_DIM})",
                          judged=list(frame["setting"]))


EXPERIMENT = Experiment(
    name="paper_targets",
    title="The composed targets: log normalizers and moments two ways, exact samplers",
    compute=exact_target_summary,
    applies_to=summary_reason,
    default=grid(setting=SETTING_NAMES, n_samples=(20_000,), rtol=(1e-10,)),
    # Quick: GMM_ID's rejection sampler and cubature are the slowest cells; GMM_OOD keeps a mixture in the run.
    quick=grid(setting=GAUSSIAN_SETTINGS + ("GMM_OOD",), n_samples=(2_000,), rtol=(1e-6,)),
    allow_nan=("log_z_closed_form", "log_z_cubature", "log_z_abs_diff", "moments_abs_diff", "acceptance_rate",
               "mean_1", "cov_01", "cov_11"),
    tables=(TableSpec(
        name="paper_targets",
        caption="The composed targets Q ∝ Π_i P_i^(w_i) (the paper's: P_a1·P_a2/P_0): log normalizer in closed "
                "form and by adaptive cubature (dimensions 1 and 2; -- where not offered or no closed form), the "
                "exact covariance of the first two coordinates, and the exact sampler's agreement with the exact "
                "moments (largest |z| of the draws' means and second moments over all coordinates).",
        index=("setting",),
        transpose=True,
        columns=(
            Column("dim", "dimension", kind="integer"),
            Column("conditionals", kind="text"),
            Column("regime", kind="text"),
            Column("target", "closed form", kind="text"),
            Column("log_z_closed_form", "log Z (closed form)", missing="--"),
            Column("log_z_cubature", "log Z (cubature)", missing="--"),
            Column("log_z_abs_diff", "|Δ log Z|", missing="--"),
            Column("cov_00", "Σ_Q[0,0]"),
            Column("cov_11", "Σ_Q[1,1]", missing="--"),
            Column("cov_01", "Σ_Q[0,1]", missing="--"),
            Column("sampler", "exact sampler", kind="text"),
            Column("acceptance_rate", "acceptance rate", missing="--"),
            Column("n_samples", "draws", kind="integer"),
            Column("max_z_mean", "max |z| means"),
            Column("max_z_cov", "max |z| second moments"),
        ),
    ),),
    checks=(
        Check("P1", "the run's compositions are normalizable (finite log Z by cubature; in closed form where cubature "
              "is not offered, d > 2)", _compositions_proper),
        Check("F1", "closed-form log Z and moments equal adaptive cubature (|Δ log Z| < 100·rtol, moments < "
              "1e4·rtol), in every setting of the run with both",
              _closed_form_matches_cubature),
        Check("F1", "exact target samplers match the exact moments (max |z| below its Bonferroni threshold at "
              f"family-wise level {MOMENT_CHECK_ALPHA:g})", _samplers_match_moments),
    ),
)
