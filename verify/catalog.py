"""The report's experiments: every registration of ``python -m verify`` lives here, one ``REGISTRY.register`` each.

To add an experiment: write a function returning a tidy DataFrame in the module that owns the computation, then
register it below with its default and ``--quick`` cells, the tables and figures to draw from its CSV, and the checks
that decide claims of :mod:`verify.claims`. Compute functions are named by import path, so nothing here imports
them; a registration whose code has not landed yet can name it in ``requires`` and is reported as awaiting it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES
from verify.claims import Check, Outcome
from verify.figures import FigureSpec, lines, measured_vs_bound, scatter_2d
from verify.registry import Experiment, Registry, grid
from verify.tables import Column, TableSpec

REGISTRY = Registry()

GAUSSIAN_SETTINGS = ("FC_ID", "NFC_ID", "FC_OOD", "NFC_OOD")
SOURCE_LABELS = ("P_a1", "P_a2", "P_0")  # as verify.ood_measures names them


# ---------------------------------------------------------------------------------------------- paper_targets
def _closed_form_matches_cubature(frame: pd.DataFrame) -> Outcome:
    # The cubature's relative tolerance rtol bounds its error on Z, hence on log Z, to about rtol; allow 100×.
    closed = frame[frame["target"] != "no closed form"]
    worst_z = float(closed["log_z_abs_diff"].max())
    worst_moment = float(frame["moments_abs_diff"].max())
    tol = 100 * float(frame["rtol"].max())
    return Outcome.decide(worst_z < tol and worst_moment < 100 * tol,
                          {"max |log Z closed form − cubature|": worst_z,
                           "max |moment closed form − cubature|": worst_moment,
                           "cubature rtol": float(frame["rtol"].max()),
                           "settings with a closed form": len(closed)})


def _samplers_match_moments(frame: pd.DataFrame) -> Outcome:
    z = float(np.max(frame[["max_z_mean", "max_z_cov"]].to_numpy()))
    return Outcome.decide(z < 5.0, {"max |z| over settings, means and covariances": z,
                                    "draws per setting": int(frame["n_samples"].min())},
                          "z = standardized deviation of the draws' moments from the exact ones")


def _compositions_proper(frame: pd.DataFrame) -> Outcome:
    finite = np.isfinite(frame["log_z_cubature"].to_numpy())
    return Outcome.decide(bool(finite.all()) and len(frame) == len(SETTING_NAMES),
                          {"settings": len(frame), "with finite log Z": int(finite.sum())},
                          "each Q ∝ P_a1·P_a2/P_0 is a normalizable density with an exact sampler")


REGISTRY.register(Experiment(
    name="paper_targets",
    title="The paper's six composed targets: log normalizers and moments two ways, exact samplers",
    compute="verify.targets:exact_target_summary",
    default=grid(setting=SETTING_NAMES, n_samples=(20_000,), rtol=(1e-10,)),
    quick=grid(setting=SETTING_NAMES, n_samples=(2_000,), rtol=(1e-6,)),
    allow_nan=("log_z_closed_form", "log_z_abs_diff", "acceptance_rate"),
    tables=(TableSpec(
        name="paper_targets",
        caption="The paper's composed targets Q ∝ P_a1·P_a2/P_0: log normalizer in closed form and by adaptive "
                "cubature, exact moments, and the exact sampler's agreement with them (largest |z| of the draws' "
                "means and second moments).",
        index=("setting",),
        transpose=True,
        columns=(
            Column("conditionals", kind="text"),
            Column("regime", kind="text"),
            Column("target", "closed form", kind="text"),
            Column("log_z_closed_form", "log Z (closed form)", missing="--"),
            Column("log_z_cubature", "log Z (cubature)"),
            Column("log_z_abs_diff", "|Δ log Z|", missing="--"),
            Column("cov_00", "Σ_Q[0,0]"),
            Column("cov_11", "Σ_Q[1,1]"),
            Column("cov_01", "Σ_Q[0,1]"),
            Column("sampler", "exact sampler", kind="text"),
            Column("acceptance_rate", "acceptance rate", missing="--"),
            Column("n_samples", "draws", kind="integer"),
            Column("max_z_mean", "max |z| means"),
            Column("max_z_cov", "max |z| second moments"),
        ),
    ),),
    checks=(
        Check("P1", "the paper's six compositions are normalizable (finite log Z by cubature)", _compositions_proper),
        Check("F1", "closed-form log Z and moments equal adaptive cubature (|Δ log Z| < 100·rtol, moments < "
              "1e4·rtol)",
              _closed_form_matches_cubature),
        Check("F1", "exact target samplers match the exact moments (all |z| < 5)", _samplers_match_moments),
    ),
))


# ---------------------------------------------------------------------------------------------- target_samples
REGISTRY.register(Experiment(
    name="target_samples",
    title="Draws of each paper setting's target and sources (for the scatter figure)",
    compute="verify.targets:setting_samples",
    default=grid(setting=SETTING_NAMES, n_samples=(1_500,)),
    quick=grid(setting=("FC_OOD", "GMM_OOD"), n_samples=(300,)),
    figures=(FigureSpec(
        "target_samples",
        "Exact draws of the composed target and of its sources in each paper setting.",
        lambda frame: scatter_2d(frame, hue="distribution", col="setting"),
    ),),
))


# ---------------------------------------------------------------------------------------------- sampler_draws
REGISTRY.register(Experiment(
    name="sampler_draws",
    title="Naive SDE and FKC draws (exact scores) beside exact target draws, per paper setting",
    compute="verify.draws:sampler_draws",
    default=grid(setting=SETTING_NAMES, n_samples=(1_500,), n_particles=(32,), n_steps=(500,)),
    quick=grid(setting=("GMM_OOD",), n_samples=(200,), n_particles=(4,), n_steps=(50,)),
    figures=(FigureSpec(
        "sampler_draws",
        "Exact draws of the target against the naive composed SDE and FKC (exact scores, N(0, I) start).",
        lambda frame: scatter_2d(frame, hue="distribution", col="setting"),
    ),),
))

# ---------------------------------------------------------------------------------------------- path_gap
def _fc_path_is_target(frame: pd.DataFrame) -> Outcome:
    fc = frame[frame["conditionals"] == "FC"]
    gap = float(fc["precision_rel_gap"].max())
    return Outcome.decide(len(fc) > 0 and gap < 1e-12,
                          {"max_t relative precision gap (FC)": gap, "max_t E_Q‖Δscore‖² (FC)":
                           float(fc["score_gap_sq"].max()), "times": int(fc["t"].nunique())})


def _nfc_path_differs(frame: pd.DataFrame) -> Outcome:
    nfc = frame[frame["conditionals"] == "NFC"]
    per_setting = nfc.groupby("setting")["precision_rel_gap"].max()
    smallest = float(per_setting.min())
    return Outcome.decide(len(per_setting) > 0 and smallest > 1e-3,
                          {f"max_t relative precision gap ({k})": float(v) for k, v in per_setting.items()})


REGISTRY.register(Experiment(
    name="path_gap",
    title="Geometric path π_t vs diffused target Q_t along t, exactly (Gaussian settings)",
    compute="verify.paths:path_target_gap",
    seed_argument=None,
    default=grid(setting=GAUSSIAN_SETTINGS, n_times=(200,)),
    quick=grid(setting=GAUSSIAN_SETTINGS, n_times=(25,)),
    figures=(
        FigureSpec("path_gap_precision", "Relative gap between the precisions of π_t and Q_t (FC settings sit at "
                   "round-off, drawn at the floor 1e-17).",
                   lambda frame: lines(frame, x="t", y="precision_rel_gap", hue="setting", logx=True, logy=True,
                                       floor=1e-17, ylabel="‖A_π − A_Q‖ / ‖A_Q‖")),
        FigureSpec("path_gap_girsanov", "Inference-time error density ½β(t)·E_{Q_t}‖∇log π_t − ∇log Q_t‖² along t.",
                   lambda frame: lines(frame, x="t", y="girsanov_density", hue="setting", logx=True, logy=True,
                                       floor=1e-17, ylabel="½β E_Q‖Δscore‖²")),
    ),
    checks=(
        Check("F2", "FC settings: π_t = Q_t at every t (relative precision gap < 1e-12)", _fc_path_is_target),
        Check("F2", "NFC settings: π_t ≠ Q_t (relative precision gap > 1e-3 at some t)", _nfc_path_differs),
    ),
))


# ---------------------------------------------------------------------------------------------- ood_measures
def _ood_labels_match(frame: pd.DataFrame) -> Outcome:
    gaussian = frame[frame["setting"].isin(GAUSSIAN_SETTINGS) & (frame["source"] != "all")]
    ood = gaussian[gaussian["regime"] == "OOD"]["ress_inverse"].to_numpy()
    iid = gaussian[gaussian["regime"] == "ID"]["ress_inverse"].to_numpy()
    return Outcome.decide(len(ood) > 0 and len(iid) > 0 and bool(np.all(np.isinf(ood)) and np.all(np.isfinite(iid))),
                          {"OOD sources with 1 + χ² = ∞": f"{int(np.isinf(ood).sum())} of {len(ood)}",
                           "largest finite 1 + χ² (ID)": float(np.max(iid)) if len(iid) else float("inf")})


REGISTRY.register(Experiment(
    name="ood_measures",
    title="How far each target lies outside its sources: 1 + χ²(Q‖P_i) and mass outside the 95 % HDRs",
    compute="verify.ood_measures:ood_summary",
    default=grid(setting=SETTING_NAMES, n_samples=(20_000,)),
    # GMM_ID's Monte Carlo is the slowest cell; the quick run keeps one mixture setting.
    quick=grid(setting=GAUSSIAN_SETTINGS + ("GMM_OOD",), n_samples=(1_000,)),
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
))


# ---------------------------------------------------------------------------------------------- gaussian_table
def _tightness(measured: pd.Series, bound: pd.Series) -> pd.Series:
    """``measured / bound`` (1 = tight); NaN (shown '--') where the bound is below 1e-12, i.e. round-off, where a
    ratio of two round-off values would mean nothing."""
    return (measured / bound.where(bound > 1e-12)).astype(float)


def _gaussian_table_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["girsanov_tightness"] = _tightness(frame["sde_kl_at_t_min"], frame["girsanov_total"])
    frame["coupling_tightness"] = _tightness(frame["sde_w2_at_t_min"], frame["coupling_w2_bound"])
    return frame


# Reference values of paper_facts.md: naive SDE from the exact Q_T, stopped at t = 1e-4 (value, tolerance).
REFERENCE_VALUES = {("NFC_ID", "sde_var"): (0.845, 5e-4), ("NFC_ID", "sde_kl"): (0.0075, 1e-4),
                    ("NFC_OOD", "sde_var"): (8.56, 5e-3), ("NFC_OOD", "sde_kl"): (0.103, 5e-4),
                    ("NFC_ID", "ode_var"): (0.50, 1e-2)}


def _reference_values_reproduced(frame: pd.DataFrame) -> Outcome:
    exact = frame[frame["start"] == "exact"].set_index("setting")
    numbers, ok = {}, True
    for (setting, column), (value, tol) in REFERENCE_VALUES.items():
        got = float(exact.loc[setting, column])
        numbers[f"{setting} {column} (reference {value})"] = got
        ok &= abs(got - value) < tol
    return Outcome.decide(ok, numbers)


def _bound_holds(measured: str, bound: str, rel_slack: float = 1e-8, abs_slack: float = 1e-10):
    """``measured ≤ bound·(1 + rel_slack) + abs_slack`` in every row: the slack covers the integration tolerance of
    the exact laws and bounds (rtol 1e-11) and round-off where both sides vanish."""

    def evaluate(frame: pd.DataFrame) -> Outcome:
        excess = frame[measured] - frame[bound] * (1 + rel_slack) - abs_slack
        worst = frame.loc[excess.idxmax()]
        return Outcome.decide(bool((excess <= 0).all()),
                              {"rows": len(frame), f"largest {measured} − {bound}": float(worst[measured] -
                                                                                        worst[bound]),
                               "at": f"{worst['setting']} (start {worst['start']})"})
    return evaluate


def _fc_naive_exact(frame: pd.DataFrame) -> Outcome:
    fc = frame[(frame["start"] == "exact") & frame["factorized"].astype(bool)]
    worst = float(fc["sde_kl"].max())
    return Outcome.decide(len(fc) > 0 and worst < 1e-10, {"max KL(Q‖naive SDE) over FC settings": worst})


REGISTRY.register(Experiment(
    name="gaussian_table",
    title="The paper's Gaussian table, exact: naive SDE/ODE/EM output laws, KL and W2, Girsanov and coupling bounds",
    compute="verify.decomposition:paper_gaussian_table",
    seed_argument=None,
    default=grid(start=("exact", "standard")),
    quick=grid(start=("exact",)),  # the start of the reference values; N(0, I) adds only a start term
    requires=("verify.decomposition", "theory.girsanov"),
    derive=_gaussian_table_derived,
    allow_nan=("girsanov_tightness", "coupling_tightness"),
    tables=(
        TableSpec(
            name="gaussian_table",
            caption="The paper's Gaussian settings with exact scores, naive composition, everything exact: output "
                    "variance and KL(Q‖out) of the reverse SDE (continuous time), the probability-flow ODE and "
                    "Euler–Maruyama with 500 steps, and 1 + χ²(Q‖P_i) per source",
            index=("setting",), split_by="start", transpose=True,
            columns=(
                Column("factorized", "factorized (FC)", kind="flag"),
                Column("in_distribution", "in distribution (ID)", kind="flag"),
                Column("target_var", "target variance"),
                Column("sde_var", "SDE output variance"),
                Column("ode_var", "ODE output variance"),
                Column("em_var", "EM(500) output variance"),
                Column("sde_kl", "KL(Q‖SDE)"),
                Column("ode_kl", "KL(Q‖ODE)"),
                Column("em_kl", "KL(Q‖EM)"),
                Column("sde_w2", "W₂(Q, SDE)"),
                Column("em_w2", "W₂(Q, EM)"),
                Column("one_plus_chi2_a1", "1 + χ²(Q‖P_a1)"),
                Column("one_plus_chi2_a2", "1 + χ²(Q‖P_a2)"),
                Column("one_plus_chi2_base", "1 + χ²(Q‖P_0)"),
            ),
        ),
        TableSpec(
            name="gaussian_bounds",
            caption="Measured against bound for the naive reverse SDE on the Gaussian settings: KL(Q_t_min‖out) "
                    "against the Girsanov bound and its split, W₂ against the synchronous-coupling bound; tightness "
                    "= measured / bound (-- where the bound is below 1e-12, round-off)",
            index=("start", "setting"),
            columns=(
                Column("sde_kl_at_t_min", "KL measured"),
                Column("girsanov_total", "Girsanov bound"),
                Column("girsanov_start", "start term"),
                Column("girsanov_inference", "inference term"),
                Column("girsanov_tightness", "KL tightness", missing="--"),
                Column("sde_w2_at_t_min", "W₂ measured"),
                Column("coupling_w2_bound", "coupling bound"),
                Column("coupling_tightness", "W₂ tightness", missing="--"),
            ),
        ),
    ),
    figures=(FigureSpec(
        "gaussian_bounds",
        "Measured KL and W₂ of the naive SDE against their bounds (Girsanov, synchronous coupling); y = x dashed.",
        lambda frame: measured_vs_bound(pd.concat([
            frame.assign(bound_kind="Girsanov KL", measured=frame["sde_kl_at_t_min"], bound=frame["girsanov_total"]),
            frame.assign(bound_kind="coupling W₂", measured=frame["sde_w2_at_t_min"],
                         bound=frame["coupling_w2_bound"]),
        ]), measured="measured", bound="bound", hue="setting", style="bound_kind"),
    ),),
    checks=(
        Check("F3", "exact output laws reproduce the reference values of paper_facts.md (naive SDE variance and KL "
              "on NFC_ID and NFC_OOD, ODE variance on NFC_ID)", _reference_values_reproduced),
        Check("F3", "Girsanov bound holds: KL(Q_t_min‖SDE law) ≤ bound (slack 1e-8 relative + 1e-10 absolute)",
              _bound_holds("sde_kl_at_t_min", "girsanov_total")),
        Check("F3", "synchronous-coupling W₂ bound holds (slack 1e-8 relative + 1e-10 absolute)",
              _bound_holds("sde_w2_at_t_min", "coupling_w2_bound")),
        Check("F2", "FC settings: the naive SDE from the exact Q_T reproduces Q (KL < 1e-10)", _fc_naive_exact),
    ),
))
