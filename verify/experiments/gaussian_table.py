r"""The paper's 2×2 Gaussian design with exact output laws: naive composition's output covariance, KL and W₂ for the
continuous reverse SDE, the probability-flow ODE and Euler–Maruyama, beside the Girsanov and coupling bounds and the
exact ``1 + χ²(Q‖P_i)``. No Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import (
    VPSchedule,
    euler_maruyama_law,
    kl,
    ode_law,
    paper_setting,
    ress_inverse,
    reverse_time_grid,
    sde_law,
    w2,
)
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory import girsanov_kl_bound, synchronous_coupling_w2_bound
from verify.analysis.decomposition import start_gaussian
from verify.report.claims import Check, Outcome
from verify.report.figures import FigureSpec, measured_vs_bound
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec


def paper_gaussian_table(schedule=None, *, start="exact", n_steps: int = 500, t_min: float = 1e-4,
                         eps: float = 1e-5) -> pd.DataFrame:
    r"""The paper's 2×2 Gaussian design (FC/NFC × ID/OOD), naive composition with exact scores, all exact.

    One row per setting (``FC_ID``, ``NFC_ID``, ``FC_OOD``, ``NFC_OOD``). Samplers: the continuous reverse SDE and the
    probability-flow ODE from ``T`` to ``t_min``, and Euler–Maruyama with ``n_steps`` on the paper's grid (clamped to
    ``[eps, T − eps]``); all started from ``start`` at their first time (default ``"exact"``: ``Q_T`` — the setup
    of the reference values for the paper's settings; ``"standard"``: the paper's ``N(0, I)``).

    Columns
    -------
    factorized, in_distribution : bool
    target_cov, sde_cov, ode_cov, em_cov : ndarray (d, d)
        Covariances of ``Q₀`` and of the three output laws (all means are zero here).
    target_var, sde_var, ode_var, em_var : float
        ``tr(cov)/d`` — the variance of each isotropic law (every one in this design is isotropic).
    sde_kl, ode_kl, em_kl, sde_w2, ode_w2, em_w2 : float
        ``KL(Q₀‖out)`` and ``W₂(Q₀, out)``.
    girsanov_total, girsanov_start, girsanov_inference, girsanov_estimation : float
        :func:`theory.girsanov_kl_bound` for the SDE sampler (estimation term zero: exact source scores), which
        bounds ``sde_kl_at_t_min = KL(Q_{t_min}‖SDE law)``.
    coupling_w2_bound, sde_w2_at_t_min : float
        :func:`theory.synchronous_coupling_w2_bound` and the ``W₂(Q_{t_min}, SDE law)`` it bounds.
    one_plus_chi2_a1, one_plus_chi2_a2, one_plus_chi2_base : float
        ``1 + χ²(Q₀‖P_i) = rESS_i⁻¹`` (``inf`` when ``2Σ_i − Σ_Q`` is not positive definite).
    """
    schedule = VPSchedule() if schedule is None else schedule
    grid = reverse_time_grid(schedule, n_steps, eps)
    rows = []
    for name in GAUSSIAN_SETTINGS:
        setting = paper_setting(name)
        comp = setting.composition
        target = comp.target
        naive = comp.naive_field(schedule)
        s_T = start_gaussian(comp, schedule, start, schedule.T)
        outs = {
            "sde": sde_law(naive, schedule, s_T, t_min=t_min),
            "ode": ode_law(naive, schedule, s_T, t_min=t_min),
            "em": euler_maruyama_law(naive, schedule, start_gaussian(comp, schedule, start, float(grid[0])),
                                     n_steps=n_steps, eps=eps),
        }
        row = {"setting": name, "factorized": setting.factorized, "in_distribution": setting.in_distribution,
               "target_cov": np.asarray(target.cov), "target_var": float(np.trace(target.cov)) / comp.dim}
        for key, law in outs.items():
            row[f"{key}_cov"] = np.asarray(law.cov)
            row[f"{key}_var"] = float(np.trace(law.cov)) / comp.dim
            row[f"{key}_kl"] = float(kl(target, law))
            row[f"{key}_w2"] = float(w2(target, law))
        bound = girsanov_kl_bound(naive, target, schedule, s_T, t_min=t_min)
        stopped = target.noised(schedule, t_min)
        row.update(
            girsanov_total=bound.total,
            girsanov_start=bound.start_term,
            girsanov_inference=bound.inference_term,
            girsanov_estimation=bound.estimation_term,
            sde_kl_at_t_min=float(kl(stopped, outs["sde"])),
            coupling_w2_bound=synchronous_coupling_w2_bound(naive, target, schedule, s_T, t_min=t_min).total,
            sde_w2_at_t_min=float(w2(stopped, outs["sde"])),
        )
        for label, source in zip(("a1", "a2", "base"), setting.sources):
            row[f"one_plus_chi2_{label}"] = ress_inverse(target, source)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("setting")
    df.attrs.update(start=start if isinstance(start, str) else "given", n_steps=n_steps, t_min=t_min, eps=eps,
                    kl_direction="KL(target || sampler law)")
    return df


# ---------------------------------------------------------------------------------------------- registration
def _tightness(measured: pd.Series, bound: pd.Series) -> pd.Series:
    """``measured / bound`` (1 = tight); NaN (shown '--') where the bound is below 1e-12, i.e. round-off, where a
    ratio of two round-off values would mean nothing."""
    return (measured / bound.where(bound > 1e-12)).astype(float)


def _gaussian_table_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["girsanov_tightness"] = _tightness(frame["sde_kl_at_t_min"], frame["girsanov_total"])
    frame["coupling_tightness"] = _tightness(frame["sde_w2_at_t_min"], frame["coupling_w2_bound"])
    return frame


# Reference values for the paper's settings: naive SDE from the exact Q_T, stopped at t = 1e-4 (value, tolerance).
# The values are exact laws, published rounded; each tolerance is the rounding's half unit in the last published
# digit (5e-4 for 0.845 and 0.103, 5e-3 for 8.56), widened to a whole unit for 0.0075 (the exact 0.00745 sits on the
# rounding tie) and for 0.50 (a two-digit value; the exact 0.500215 is well inside either).
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


#: Relative slack of "measured ≤ bound": both sides are exact laws or bounds integrated at rtol 1e-11, whose
#: achieved error tests/test_laws.py asserts below 1e-9 relative; 1e-8 covers that with a factor 10 to spare.
BOUND_REL_SLACK = 1e-8
#: Absolute slack for rows where both sides vanish (FC settings): round-off of KL/W2 between equal Gaussians.
BOUND_ABS_SLACK = 1e-10


def _bound_holds(measured: str, bound: str, rel_slack: float = BOUND_REL_SLACK, abs_slack: float = BOUND_ABS_SLACK):
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


#: Under FC naive composition is exact (theorem), so the naive SDE from Q_T ends at exactly Q_{t_min}: what remains
#: of KL(Q‖naive SDE law) is KL(Q₀‖Q_{t_min}) of the stop at t_min = 1e-4 (4.13e-11 for FC_OOD, 0 for FC_ID, closed
#: forms) plus the laws' error (moments to 1e-9 relative, so O(1e-18) in KL). 1e-10 sits above the stop's KL and
#: eight orders below NFC_ID's bias (7.45e-3). Not derived from a constant: the sharper check would compare with
#: KL(Q₀‖Q_{t_min}) itself.
FC_NAIVE_KL_TOL = 1e-10


def _fc_naive_exact(frame: pd.DataFrame) -> Outcome:
    fc = frame[(frame["start"] == "exact") & frame["factorized"].astype(bool)]
    worst = float(fc["sde_kl"].max())
    return Outcome.decide(len(fc) > 0 and worst < FC_NAIVE_KL_TOL, {"max KL(Q‖naive SDE) over FC settings": worst})


EXPERIMENT = Experiment(
    name="gaussian_table",
    title="The paper's Gaussian table, exact: naive SDE/ODE/EM output laws, KL and W2, Girsanov and coupling bounds",
    compute=paper_gaussian_table,
    seed_argument=None,
    default=grid(start=("exact", "standard")),
    quick=grid(start=("exact",)),  # the start of the reference values; N(0, I) adds only a start term
    requires=("verify.analysis.decomposition", "theory.girsanov"),
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
        Check("F3", "exact output laws reproduce the reference values for the paper's settings (naive SDE variance "
              "and KL on NFC_ID and NFC_OOD, ODE variance on NFC_ID)", _reference_values_reproduced),
        Check("F3", "Girsanov bound holds: KL(Q_t_min‖SDE law) ≤ bound (slack 1e-8 relative + 1e-10 absolute)",
              _bound_holds("sde_kl_at_t_min", "girsanov_total")),
        Check("F3", "synchronous-coupling W₂ bound holds (slack 1e-8 relative + 1e-10 absolute)",
              _bound_holds("sde_w2_at_t_min", "coupling_w2_bound")),
        Check("F2", "FC settings: the naive SDE from the exact Q_T reproduces Q (KL < 1e-10)", _fc_naive_exact),
    ),
)
