r"""The paper's 2×2 Gaussian design with exact output laws: naive composition's output covariance, KL and W₂ for the
continuous reverse SDE, the probability-flow ODE and Euler–Maruyama, beside the Girsanov and coupling bounds and the
exact ``1 + χ²(Q‖P_i)``. No Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import (
    VPSchedule,
    as_setting,
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
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec


def gaussian_table(setting, schedule=None, *, start="exact", n_steps: int = 500, t_min: float = 1e-4,
                   eps: float = 1e-5) -> pd.DataFrame:
    r"""Naive composition with exact scores on one Gaussian setting, everything exact: output laws of three samplers,
    their KL and W₂ to the target, the Girsanov and coupling bounds, and ``1 + χ²(Q‖P_i)`` per source.

    Samplers: the continuous reverse SDE and the probability-flow ODE from ``T`` to ``t_min``, and Euler–Maruyama
    with ``n_steps`` on the paper's grid (clamped to ``[eps, T − eps]``); all started from ``start`` at their first
    time (default ``"exact"``: ``Q_T`` — the setup of the reference values for the paper's settings; ``"standard"``:
    the paper's ``N(0, I)``). Any dimension and number of sources.

    Returns
    -------
    pandas.DataFrame
        One row per source of the setting (``source``: its label, ``source_index``: its position), the per-setting
        columns repeated on each (select ``source_index == 0`` for one row per setting):

        setting, paper_setting, factorized, in_distribution
            The setting's name, whether it is the paper's own setting of that name (reference values apply), and its
            labels (``None`` where unknown).
        target_cov, sde_cov, ode_cov, em_cov : ndarray (d, d)
            Covariances of ``Q₀`` and of the three output laws.
        target_var, sde_var, ode_var, em_var : float
            ``tr(cov)/d`` (the variance of an isotropic law, as in the paper's table).
        sde_kl, ode_kl, em_kl, sde_w2, ode_w2, em_w2 : float
            ``KL(Q₀‖out)`` and ``W₂(Q₀, out)``.
        girsanov_total, girsanov_start, girsanov_inference, girsanov_estimation : float
            :func:`theory.girsanov_kl_bound` for the SDE sampler (estimation term zero: exact source scores), which
            bounds ``sde_kl_at_t_min = KL(Q_{t_min}‖SDE law)``.
        coupling_w2_bound, sde_w2_at_t_min : float
            :func:`theory.synchronous_coupling_w2_bound` and the ``W₂(Q_{t_min}, SDE law)`` it bounds.
        one_plus_chi2 : float
            ``1 + χ²(Q₀‖P_i) = rESS_i⁻¹`` of this row's source (``inf`` when ``2Σ_i − Σ_Q`` is not positive
            definite).
        start, t_min, n_steps, eps
            The configuration.

    Raises
    ------
    NotGaussianSettingError
        For a setting with a Gaussian-mixture source (no closed-form output laws).
    """
    setting = as_setting(setting)
    setting.require_gaussian("gaussian_table")
    schedule = VPSchedule() if schedule is None else schedule
    grid = reverse_time_grid(schedule, n_steps, eps)
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
    is_paper = setting.name in GAUSSIAN_SETTINGS and setting is paper_setting(setting.name)
    row = {"setting": setting.name, "paper_setting": is_paper, "factorized": setting.factorized,
           "in_distribution": setting.in_distribution, "target_cov": np.asarray(target.cov),
           "target_var": float(np.trace(target.cov)) / comp.dim}
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
        start=start if isinstance(start, str) else "given", t_min=float(t_min), n_steps=int(n_steps),
        eps=float(eps),
    )
    rows = [{**row, "source": label, "source_index": i, "one_plus_chi2": ress_inverse(target, source)}
            for i, (label, source) in enumerate(zip(setting.labels, setting.sources))]
    df = pd.DataFrame(rows)
    df.attrs.update(kl_direction="KL(target || sampler law)")
    return df


def paper_gaussian_table(schedule=None, *, start="exact", n_steps: int = 500, t_min: float = 1e-4,
                         eps: float = 1e-5, settings=GAUSSIAN_SETTINGS) -> pd.DataFrame:
    r"""The paper's 2×2 Gaussian design (FC/NFC × ID/OOD) as one wide frame: :func:`gaussian_table` of each setting
    of ``settings`` (default ``FC_ID``, ``NFC_ID``, ``FC_OOD``, ``NFC_OOD``; any Gaussian settings or names),
    indexed by ``setting``, one row per setting, with ``one_plus_chi2_<label>`` per source label (the paper's:
    ``one_plus_chi2_P_a1``, ``one_plus_chi2_P_a2``, ``one_plus_chi2_P_0``) in place of the per-source rows."""
    rows = []
    for s in settings:
        long = gaussian_table(s, schedule, start=start, n_steps=n_steps, t_min=t_min, eps=eps)
        row = long.iloc[0].drop(["source", "source_index", "one_plus_chi2"]).to_dict()
        row.update({f"one_plus_chi2_{lab}": float(v) for lab, v in zip(long["source"], long["one_plus_chi2"])})
        rows.append(row)
    df = pd.DataFrame(rows).set_index("setting")
    df.attrs.update(start=start if isinstance(start, str) else "given", n_steps=n_steps, t_min=t_min, eps=eps,
                    kl_direction="KL(target || sampler law)")
    return df


# ---------------------------------------------------------------------------------------------- registration
def _per_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, start): the per-setting columns (the frame repeats them on each source's row)."""
    return frame[frame["source_index"] == 0]


def _case(row) -> str:
    return f"{row['setting']} (start {row['start']})"


def _tightness(measured: pd.Series, bound: pd.Series) -> pd.Series:
    """``measured / bound`` (1 = tight); NaN (shown '--') where the bound is below 1e-12, i.e. round-off, where a
    ratio of two round-off values would mean nothing."""
    return (measured / bound.where(bound > 1e-12)).astype(float)


def _gaussian_table_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["girsanov_tightness"] = _tightness(frame["sde_kl_at_t_min"], frame["girsanov_total"])
    frame["coupling_tightness"] = _tightness(frame["sde_w2_at_t_min"], frame["coupling_w2_bound"])
    for flag in ("factorized", "in_distribution"):
        frame[f"{flag}_label"] = [_flag_label(v) for v in frame[flag]]
    return frame


def _flag_label(value) -> str:
    """``yes`` / ``no`` / ``unknown`` (a setting's label left ``None``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    return "yes" if value in (True, "True") else "no"


def _bounds_figure(frame: pd.DataFrame):
    rows = _per_setting(frame)
    return measured_vs_bound(pd.concat([
        rows.assign(bound_kind="Girsanov KL", measured=rows["sde_kl_at_t_min"], bound=rows["girsanov_total"]),
        rows.assign(bound_kind="coupling W₂", measured=rows["sde_w2_at_t_min"], bound=rows["coupling_w2_bound"]),
    ]), measured="measured", bound="bound", hue="setting", style="bound_kind")


# Reference values for the paper's settings: naive SDE from the exact Q_T, stopped at t = 1e-4 (value, tolerance).
# The values are exact laws, published rounded; each tolerance is the rounding's half unit in the last published
# digit (5e-4 for 0.845 and 0.103, 5e-3 for 8.56), widened to a whole unit for 0.0075 (the exact 0.00745 sits on the
# rounding tie) and for 0.50 (a two-digit value; the exact 0.500215 is well inside either).
REFERENCE_VALUES = {("NFC_ID", "sde_var"): (0.845, 5e-4), ("NFC_ID", "sde_kl"): (0.0075, 1e-4),
                    ("NFC_OOD", "sde_var"): (8.56, 5e-3), ("NFC_OOD", "sde_kl"): (0.103, 5e-4),
                    ("NFC_ID", "ode_var"): (0.50, 1e-2)}
#: The stop of the reference setup.
REFERENCE_T_MIN = 1e-4


def _reference_values_reproduced(frame: pd.DataFrame) -> Outcome:
    """Judged on the paper's own NFC_ID / NFC_OOD (``paper_setting`` column: a user's setting of that name is not the
    paper's) with the reference setup (start ``exact``, ``t_min = 1e-4``); not applicable when neither is present."""
    rows = _per_setting(frame)
    ref = rows[rows["paper_setting"].astype(bool) & (rows["start"] == "exact")
               & np.isclose(rows["t_min"].astype(float), REFERENCE_T_MIN, rtol=1e-12, atol=0)].set_index("setting")
    wanted = sorted({name for name, _ in REFERENCE_VALUES})
    present = [name for name in wanted if name in ref.index]
    if not present:
        return Outcome.not_applicable(f"the reference values are the paper's {' and '.join(wanted)} with the exact "
                                      f"start and t_min = {REFERENCE_T_MIN:g}; none of them is in this run")
    numbers, ok = {}, True
    for (setting, column), (value, tol) in REFERENCE_VALUES.items():
        if setting not in ref.index:
            continue
        got = float(ref.loc[setting, column])
        numbers[f"{setting} {column} (reference {value})"] = got
        ok &= abs(got - value) < tol
    missing = [name for name in wanted if name not in present]
    note = f"not in this run: {', '.join(missing)}" if missing else ""
    return Outcome.decide(ok, numbers, note, judged=present)


#: Relative slack of "measured ≤ bound": both sides are exact laws or bounds integrated at rtol 1e-11, whose
#: achieved error tests/test_laws.py asserts below 1e-9 relative; 1e-8 covers that with a factor 10 to spare.
BOUND_REL_SLACK = 1e-8
#: Absolute slack for rows where both sides vanish (FC settings): round-off of KL/W2 between equal Gaussians.
BOUND_ABS_SLACK = 1e-10


def _bound_holds(measured: str, bound: str, rel_slack: float = BOUND_REL_SLACK, abs_slack: float = BOUND_ABS_SLACK):
    """``measured ≤ bound·(1 + rel_slack) + abs_slack`` for every (setting, start): the slack covers the integration
    tolerance of the exact laws and bounds (rtol 1e-11) and round-off where both sides vanish."""

    def evaluate(frame: pd.DataFrame) -> Outcome:
        rows = _per_setting(frame)
        if not len(rows):
            return Outcome.not_applicable("no setting in this run")
        excess = rows[measured] - rows[bound] * (1 + rel_slack) - abs_slack
        worst = rows.loc[excess.idxmax()]
        return Outcome.decide(bool((excess <= 0).all()),
                              {"rows": len(rows), f"largest {measured} − {bound}": float(worst[measured] -
                                                                                       worst[bound]),
                               "at": _case(worst)},
                              judged=[_case(r) for _, r in rows.iterrows()])
    return evaluate


#: Under FC naive composition is exact (theorem), so the naive SDE from Q_T ends at exactly Q_{t_min}: KL(Q_{t_min}‖
#: naive SDE law) is zero up to the laws' integration error (moments to 1e-9 relative, so O(1e-18) in KL) and the
#: round-off of KL between equal Gaussians (~1e-16). 1e-10 leaves a wide margin above both and sits seven orders
#: below NFC_ID's bias (7.45e-3). (Comparing at t_min removes the stop's own KL(Q₀‖Q_{t_min}), which depends on the
#: setting: 4.13e-11 for FC_OOD.)
FC_NAIVE_KL_TOL = 1e-10


def _fc_naive_exact(frame: pd.DataFrame) -> Outcome:
    rows = _per_setting(frame)
    rows = rows[rows["start"] == "exact"]
    known = rows["factorized"].map(lambda v: v is True or v == "True" or v is np.True_)
    fc = rows[known]
    unknown = sorted(set(rows.loc[rows["factorized"].isna(), "setting"]))
    note = f"factorization unknown, not judged: {', '.join(unknown)}" if unknown else ""
    if not len(fc):
        return Outcome.not_applicable("no setting known to have factorized conditionals, started from the exact Q_T"
                                      + (f" ({note})" if note else ""))
    worst = float(fc["sde_kl_at_t_min"].max())
    return Outcome.decide(worst < FC_NAIVE_KL_TOL, {"max KL(Q_t_min‖naive SDE) over FC settings": worst}, note,
                          judged=list(fc["setting"]))


EXPERIMENT = Experiment(
    name="gaussian_table",
    title="The Gaussian table, exact: naive SDE/ODE/EM output laws, KL and W2, Girsanov and coupling bounds",
    compute=gaussian_table,
    seed_argument=None,
    applies_to=gaussian_only,
    default=grid(setting=GAUSSIAN_SETTINGS, start=("exact", "standard")),
    quick=grid(setting=GAUSSIAN_SETTINGS, start=("exact",)),  # the start of the reference values
    requires=("verify.analysis.decomposition", "theory.girsanov"),
    derive=_gaussian_table_derived,
    allow_nan=("girsanov_tightness", "coupling_tightness", "factorized", "in_distribution"),
    tables=(
        TableSpec(
            name="gaussian_table",
            caption="Gaussian settings with exact scores, naive composition, everything exact: output variance "
                    "(tr Σ/d) and KL(Q‖out) of the reverse SDE (continuous time), the probability-flow ODE and "
                    "Euler–Maruyama with 500 steps",
            index=("setting",), split_by="start", transpose=True, where={"source_index": 0},
            columns=(
                Column("factorized_label", "factorized (FC)", kind="text"),
                Column("in_distribution_label", "in distribution (ID)", kind="text"),
                Column("target_var", "target variance"),
                Column("sde_var", "SDE output variance"),
                Column("ode_var", "ODE output variance"),
                Column("em_var", "EM(500) output variance"),
                Column("sde_kl", "KL(Q‖SDE)"),
                Column("ode_kl", "KL(Q‖ODE)"),
                Column("em_kl", "KL(Q‖EM)"),
                Column("sde_w2", "W₂(Q, SDE)"),
                Column("em_w2", "W₂(Q, EM)"),
            ),
        ),
        TableSpec(
            name="gaussian_chi2",
            caption="1 + χ²(Q‖P_i) = rESS_i⁻¹ per source, exact (∞ where 2Σ_i − Σ_Q is not positive definite)",
            index=("setting",), pivot="source", pivot_header="source P_i", where={"start": "exact"},
            columns=(Column("one_plus_chi2", "1 + χ²(Q‖P_i)"),),
        ),
        TableSpec(
            name="gaussian_bounds",
            caption="Measured against bound for the naive reverse SDE on the Gaussian settings: KL(Q_t_min‖out) "
                    "against the Girsanov bound and its split, W₂ against the synchronous-coupling bound; tightness "
                    "= measured / bound (-- where the bound is below 1e-12, round-off)",
            index=("start", "setting"), where={"source_index": 0},
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
        _bounds_figure,
    ),),
    checks=(
        Check("F3", "exact output laws reproduce the reference values for the paper's settings (naive SDE variance "
              "and KL on NFC_ID and NFC_OOD, ODE variance on NFC_ID; exact start, t_min = 1e-4); not applicable "
              "without them", _reference_values_reproduced),
        Check("F3", "Girsanov bound holds: KL(Q_t_min‖SDE law) ≤ bound (slack 1e-8 relative + 1e-10 absolute) in "
              "every setting and start", _bound_holds("sde_kl_at_t_min", "girsanov_total")),
        Check("F3", "synchronous-coupling W₂ bound holds (slack 1e-8 relative + 1e-10 absolute) in every setting and "
              "start", _bound_holds("sde_w2_at_t_min", "coupling_w2_bound")),
        Check("F2", "settings with factorized conditionals: the naive SDE from the exact Q_T reproduces Q_t_min "
              "(KL(Q_t_min‖SDE law) < 1e-10)", _fc_naive_exact),
    ),
)
