r"""Monte Carlo FKC against its exact ``K → ∞`` limit on the same grid: consistency, and the rate ``1/K``.

For affine source scores the law that :func:`verify.samplers.smc.fkc_sample` converges to as ``K → ∞``, and the log mass its
``log Ẑ`` estimates, are known exactly on the sampler's own grid (:func:`closed_form.fkc_limit_law` with
``n_steps``). Per Gaussian paper setting, with exact scores, with the worst-case time-inconsistent precision
error (:func:`closed_form.perturbations.precision_error` at training-side ``ε``, sign ``sign(w_i)``) and with the
report's default error model, worst-case source misspecification at DSM size ``dsm_eps``
(:func:`misspecified_scores`: the exact scores of the misspecified sources), this runs
``n_swarms`` independent swarms of ``K`` particles for several ``K`` and compares, per statistic, the mean over
swarms of each swarm's weighted-cloud estimate with the exact value:

* statistics: the means ``E x_j``, the second moments ``E x_jx_k``, ``E‖x‖²`` and ``log Ẑ``;
* standard errors from the spread over the independent swarms (``std/√n_swarms``).

What is guaranteed and what is found. A swarm's weighted-cloud average ``Σ_j W_j φ(x_j)`` has expectation
``μ(φ) + c/K + O(K⁻²)`` (the particle approximation's bias expansion), so the values over ``K`` extrapolate to the
exact limit: :func:`extrapolate` fits ``a + c/K`` by weighted least squares and the asserted check asks ``a`` to
equal the exact value within ``t_(1−α/(2m))`` standard errors over the ``m`` comparisons (two-sided Bonferroni,
family-wise false-alarm rate ``α = FKC_LIMIT_ALPHA``) — a consistency guarantee, since a wrong limit law would fail
it. The rate itself (:func:`rate`: slope of ``log|gap|`` against ``log K``) is asymptotic and undefined where there
is no bias (with factorized conditionals and exact scores the weights are constant and FKC *is* the naive sampler),
so it is a finding with three outcomes, judged only where every gap is resolved (``|gap| ≥ 3 SE``): the slope
resolved within ``±FKC_RATE_TOLERANCE`` of −1 (holds), resolved outside (fails), or neither (inconclusive). The
misspecified-source rows are measured and shown, not judged: F4 states convergence for exact scores and a
time-inconsistent error, and the ``c/K`` expansion needs weights of finite variance, which OOD misspecification
need not have.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, Gaussian, VPSchedule, as_setting, fkc_limit_law
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from verify.report.claims import Check, Outcome, combine
from verify.report.figures import FigureSpec, lines
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec
from verify.samplers.perturbed import AffineErrorScore
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_sample

#: Floor of a standard error, relative to ``max(1, |exact|)``: float64 round-off accumulated over the steps (the
#: deterministic ``log Ẑ`` of constant weights misses its exact value by ~1e-15 after 50 steps).
ROUNDOFF = 1e-12


def statistic_names(dim: int) -> tuple[str, ...]:
    """The statistics compared per ``K`` in dimension ``dim``: the means ``mean_j``, the second moments
    ``second_jk`` (``j ≤ k``), ``second_trace`` = E‖x‖² and ``log_z``: ``d + d(d+1)/2 + 2`` of them."""
    pairs = [(j, k) for j in range(dim) for k in range(j, dim)]
    return (*(f"mean_{j}" for j in range(dim)), *(f"second_{j}{k}" if dim <= 10 else f"second_{j}_{k}"
                                                  for j, k in pairs), "second_trace", "log_z")


#: The statistics of the paper's (2-D) settings.
STATISTICS = statistic_names(2)


def error_scores(composition, schedule, eps: float) -> tuple:
    """The sources' exact scores with the worst-case precision error of training-side size ``eps`` (sign
    ``sign(w_i)``; ``eps = 0``: exact), as :class:`verify.samplers.perturbed.AffineErrorScore` s, so that every setting and
    ``ε`` shares one compiled sampler per ``K``."""
    return tuple(AffineErrorScore.build(s, float(np.sign(w)) * eps)
                 for s, w in zip(source_scores(composition, schedule), composition.weights))


def _statistics(mean, second, log_z, dim: int) -> dict:
    """Named statistics (:func:`statistic_names`) from means ``(..., d)``, second moments ``(..., d, d)`` and
    ``log_z``."""
    names = statistic_names(dim)
    pairs = [(j, k) for j in range(dim) for k in range(j, dim)]
    values = [mean[..., j] for j in range(dim)] + [second[..., j, k] for j, k in pairs]
    values += [np.trace(second, axis1=-2, axis2=-1), log_z]
    return dict(zip(names, values))


def _exact_values(limit) -> dict:
    m = np.asarray(limit.law.mean)
    second = np.asarray(limit.law.cov) + np.outer(m, m)
    return _statistics(m, second, limit.log_mass, m.shape[-1])


def _swarm_values(out) -> dict:
    """Per swarm: the weighted-cloud estimates of each statistic, shape ``(n_swarms,)`` each."""
    x = np.asarray(out.particles)
    w = np.exp(np.asarray(out.log_weights))
    mean = np.einsum("sk,ski->si", w, x)
    second = np.einsum("sk,ski,skj->sij", w, x, x)
    return _statistics(mean, second, np.asarray(out.log_normalizer), x.shape[-1])


def misspecified_scores(composition, schedule, dsm_eps: float) -> tuple:
    """The exact scores of the sources misspecified along the worst direction at DSM size ``dsm_eps``
    (:func:`theory.amplification.worst_case_misspecification`), as :class:`verify.samplers.perturbed.AffineErrorScore` s with
    no further error, so that they share the compiled sampler with :func:`error_scores`."""
    from closed_form import compose
    from theory.amplification import worst_case_misspecification

    fitted, _ = worst_case_misspecification(composition, schedule, dsm_eps)
    return tuple(AffineErrorScore.build(s) for s in source_scores(compose(fitted, composition.weights), schedule))


def fkc_convergence(setting, eps: float = 0.1, ks=(4, 8, 16, 32), n_swarms: int = 2000, n_steps: int = 50, *,
                    seed: int, dsm_eps: float = 0.005) -> pd.DataFrame:
    r"""Rows ``(setting, scores, eps, K, statistic)`` with the Monte Carlo value ``mc`` (mean over swarms of the
    weighted-cloud estimate), its standard error ``se``, the exact discrete limit ``exact``, ``gap = mc − exact``
    and ``z = gap/se``; ``scores`` is ``"exact"``, ``"precision"`` (time-inconsistent error of size ``eps``) or
    ``"misspecification"`` (worst-case misspecified sources at DSM size ``dsm_eps``).
    Start ``N(0, I)``, resampling every step, no clipping: the sampler whose limit ``fkc_limit_law`` gives.

    ``setting``: a :class:`closed_form.Setting` (or a paper name or spec) with Gaussian sources, any dimension ``d``
    (``d + d(d+1)/2 + 2`` statistics, :func:`statistic_names`).

    Raises
    ------
    NotGaussianSettingError
        For a setting with a Gaussian-mixture source: the exact limit is known for affine scores only.
    """
    schedule = VPSchedule()
    setting = as_setting(setting)
    setting.require_gaussian("fkc_convergence (FKC's exact K → ∞ limit, closed_form.fkc_limit_law)")
    comp = setting.composition
    key = jax.random.key(seed)
    start = Gaussian.standard(comp.dim)
    rows = []
    models = (("exact", 0.0, error_scores(comp, schedule, 0.0)),
              ("precision", float(eps), error_scores(comp, schedule, float(eps))),
              ("misspecification", float(dsm_eps), misspecified_scores(comp, schedule, float(dsm_eps))))
    for j, (model, size, scores) in enumerate(models):
        limit = fkc_limit_law([s.field for s in scores], comp.weights, schedule, start, n_steps=n_steps)
        exact = _exact_values(limit)
        for k in ks:
            out = fkc_sample(jax.random.fold_in(jax.random.fold_in(key, j), int(k)), scores, comp.weights, schedule,
                             n_swarms, int(k), n_steps=n_steps)
            for name, values in _swarm_values(out).items():
                mc = float(np.mean(values))
                # Where a statistic is deterministic (log Ẑ when the weights are constant, as with factorized
                # conditionals and exact scores) its spread is zero; float64 round-off over the steps then sets the
                # scale of the gap, so the standard error is floored there.
                se = max(float(np.std(values, ddof=1) / np.sqrt(n_swarms)),
                         ROUNDOFF * max(1.0, abs(float(exact[name]))))
                gap = mc - float(exact[name])
                rows.append({"setting": setting.name, "scores": model, "eps": size, "K": int(k), "statistic": name,
                             "mc": mc, "se": se, "exact": float(exact[name]), "gap": gap, "abs_gap": abs(gap),
                             "z": gap / se if se > 0 else 0.0, "n_swarms": n_swarms, "n_steps": n_steps})
    return pd.DataFrame(rows)


def _wls(x, y, se):
    """Weighted least squares ``y ≈ X β`` with weights ``1/se²``: ``(β, cov β)``."""
    w = 1.0 / np.asarray(se) ** 2
    xtwx = x.T @ (w[:, None] * x)
    cov = np.linalg.inv(xtwx)
    return cov @ (x.T @ (w * y)), cov


def extrapolate(frame: pd.DataFrame) -> pd.DataFrame:
    r"""Per ``(setting, scores, statistic)``: the fit ``mc_K ≈ a + c/K`` (weighted by ``1/se_K²``), its intercept
    ``a`` with standard error, and ``z = (a − exact)/se(a)``."""
    rows = []
    for (setting, scores, stat), part in frame.groupby(["setting", "scores", "statistic"], sort=False):
        k = part["K"].to_numpy(dtype=np.float64)
        x = np.stack([np.ones_like(k), 1.0 / k], axis=1)
        beta, cov = _wls(x, part["mc"].to_numpy(), part["se"].to_numpy())
        se_a = float(np.sqrt(cov[0, 0]))
        exact = float(part["exact"].iloc[0])
        rows.append({"setting": setting, "scores": scores, "statistic": stat, "intercept": float(beta[0]),
                     "intercept_se": se_a, "exact": exact, "z": (float(beta[0]) - exact) / se_a,
                     "slope_c": float(beta[1])})
    return pd.DataFrame(rows)


def rate(frame: pd.DataFrame, statistics=("second_trace", "log_z"), resolved: float = 3.0) -> pd.DataFrame:
    r"""Per ``(setting, scores, statistic)``: the slope of ``log|gap|`` against ``log K`` (weighted least squares,
    ``se(log|gap|) = se/|gap|``) and its standard error; ``resolved`` is whether every ``|gap| ≥ resolved·se``
    (otherwise the slope is not fitted: the gap is within the noise)."""
    rows = []
    part_of = frame[frame["statistic"].isin(statistics)]
    for (setting, scores, stat), part in part_of.groupby(["setting", "scores", "statistic"], sort=False):
        gap, se = part["abs_gap"].to_numpy(), part["se"].to_numpy()
        ok = bool(np.all(gap >= resolved * se))
        slope, slope_se = np.nan, np.nan
        if ok:
            logk = np.log(part["K"].to_numpy(dtype=np.float64))
            beta, cov = _wls(np.stack([np.ones_like(logk), logk], axis=1), np.log(gap), se / gap)
            slope, slope_se = float(beta[1]), float(np.sqrt(cov[1, 1]))
        rows.append({"setting": setting, "scores": scores, "statistic": stat, "resolved": ok, "slope": slope,
                     "slope_se": slope_se})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- registration
#: Family-wise false-alarm rate of the asserted check: the fit's intercept must meet the exact limit within
#: t_(1 − α/(2m), n_swarms − 1) standard errors, m the number of (setting, error model, statistic) comparisons
#: (two-sided Bonferroni), so a correct sampler fails the check somewhere with probability ≤ α. At the default size
#: (4 settings × 2 models × 7 statistics, m = 56) the margin is 4.29 SE; the O(K⁻²) remainder of the fit is
#: neglected, which K ≥ 4 and the measured z (≤ 2.9 over 56 comparisons) support.
FKC_LIMIT_ALPHA = 1e-3
#: Only gaps of at least this many standard errors at every K are fitted for the rate: log|gap| of a gap within the
#: noise is biased, so such rows are shown but not judged (a selection rule, not a decision).
FKC_RATE_RESOLVED_K_SE = 3.0
#: Stated tolerance on the rate's exponent: the rate counts as 1/K when the fitted slope of log|gap| against log K
#: is resolved within ±0.25 of −1 — halfway to −1/2, the rate of a Monte Carlo error without the bias expansion —
#: and as not 1/K when resolved outside that band.
FKC_RATE_TOLERANCE = 0.25
#: The paper's settings whose statements the F4 checks name (its Gaussian settings).
FKC_NAMED_SETTINGS = GAUSSIAN_SETTINGS


def limit_margin(n_comparisons: int, n_swarms: int, alpha: float = FKC_LIMIT_ALPHA) -> float:
    """``t_(1 − α/(2m), n_swarms − 1)``: the asserted check's margin in standard errors of the intercept."""
    from verify.analysis.stats import t_quantile

    return t_quantile(max(1, int(n_swarms) - 1), alpha / (2 * max(1, int(n_comparisons))))


def _named_note(judged, present=None) -> str:
    """Which of the paper's Gaussian settings are absent from a run on the paper's settings (``present``: the run's
    settings, ``judged`` by default)."""
    from verify.analysis.cases import missing_note

    present = list(dict.fromkeys(judged if present is None else present))
    if not all(s in SETTING_NAMES for s in present):
        return ""
    return missing_note(judged, FKC_NAMED_SETTINGS, present)


def _fkc_meets_its_limit(models):
    """The check that the fit ``a + c/K`` meets the exact limit, over the rows of the error ``models`` only."""
    def evaluate(frame: pd.DataFrame) -> Outcome:
        part = frame[frame["scores"].isin(models)]
        if part.empty:
            return Outcome.not_applicable(f"no rows for {', '.join(models)}")
        return _fit_meets_limit(part)
    return evaluate


def _fit_meets_limit(frame: pd.DataFrame) -> Outcome:
    fit = extrapolate(frame)
    n_swarms = int(frame["n_swarms"].min())
    margin = limit_margin(len(fit), n_swarms)
    worst = fit.loc[fit["z"].abs().idxmax()]
    settings = list(dict.fromkeys(fit["setting"]))
    note = "; ".join(x for x in (
        _named_note(settings),
        f"a = intercept of the weighted fit a + c/K of the Monte Carlo values (weighted-cloud estimates, SE from the "
        f"spread over swarms); exact = fkc_limit_law on the sampler's grid; margin t_(1−α/(2m), {n_swarms - 1}) = "
        f"{margin:.3g} SE over the m = {len(fit)} comparisons, family-wise false-alarm rate α = "
        f"{FKC_LIMIT_ALPHA:g}") if x)
    return Outcome.decide(bool((fit["z"].abs() <= margin).all()), {
        "settings": ", ".join(settings), "comparisons": len(fit),
        "K": ", ".join(str(int(k)) for k in sorted(frame["K"].unique())),
        "swarms per K": n_swarms, "steps": int(frame["n_steps"].iloc[0]),
        "margin (SE)": margin, "max |a − exact| / SE(a)": float(abs(worst["z"])),
        "at": f"{worst['setting']} {worst['scores']} {worst['statistic']}"}, note, judged=settings)


def _rate_outcome(row, n_judged: int) -> Outcome:
    """One resolved row of the rate finding: holds when the slope is resolved within ±tolerance of −1 (one-sided
    α on each side), fails when resolved outside it (at α/m, Bonferroni over the m judged rows), else
    inconclusive."""
    from verify.analysis.stats import ALPHA, t_quantile

    off = abs(float(row["slope"]) + 1.0)
    se = float(row["slope_se"])
    label = f"{row['setting']} {row['scores']} {row['statistic']}"
    numbers = {f"{label}: slope": f"{row['slope']:.3f} ± {se:.3f}"}
    if off + t_quantile(np.inf, ALPHA) * se <= FKC_RATE_TOLERANCE:
        direction = 1
    elif off - t_quantile(np.inf, ALPHA / max(1, n_judged)) * se > FKC_RATE_TOLERANCE:
        direction = -1
    else:
        direction = 0
    factor = (t_quantile(np.inf, ALPHA) * se / max(abs(FKC_RATE_TOLERANCE - off), 1e-12)) ** 2
    return Outcome.resolve(direction, numbers, judged=(str(row["setting"]),),
                           needs=f"{label}: about {max(2.0, factor):.3g}× the swarms")


def _fkc_rate_is_one_over_k(frame: pd.DataFrame) -> Outcome:
    from verify.analysis.stats import ALPHA

    part = frame[frame["scores"].isin(("exact", "precision"))]
    if part.empty:
        return Outcome.not_applicable("no rows with exact scores or the precision error")
    rates = rate(part, resolved=FKC_RATE_RESOLVED_K_SE)
    judged = rates[rates["resolved"].astype(bool)]
    numbers = {f"resolved (every |gap| ≥ {FKC_RATE_RESOLVED_K_SE:g} SE)": f"{len(judged)} of {len(rates)}"}
    if len(judged) == 0:
        return Outcome.not_applicable("no gap was resolved from the Monte Carlo noise at every K, so no rate could "
                                      "be fitted", numbers)
    outcomes = [_rate_outcome(r, len(judged)) for _, r in judged.iterrows()]
    unjudged = sorted(set(rates["setting"]) - set(judged["setting"]))
    note = "; ".join(x for x in (
        f"slope of log|MC − exact| against log K (E‖x‖² and the log normalizer estimate log Z; exact scores and "
        f"the precision error); holds "
        f"where resolved within ±{FKC_RATE_TOLERANCE:g} of −1 at one-sided α = {ALPHA:g} on each side, fails where "
        f"resolved outside at α/m (m = {len(judged)} rows, Bonferroni)",
        f"settings without a resolved gap, not judged: {', '.join(unjudged)}" if unjudged else "",
        _named_note(list(dict.fromkeys(judged["setting"])), list(rates["setting"]))) if x)
    out = combine(outcomes, numbers, note)
    return Outcome(out.status, out.numbers, out.note, tuple(dict.fromkeys(out.judged)))


EXPERIMENT = Experiment(
    name="fkc_convergence",
    applies_to=gaussian_only,
    title="Monte Carlo FKC against its exact K → ∞ limit on the same grid (exact scores, a time-inconsistent "
          "error and misspecified sources), per Gaussian setting (any dimension)",
    compute=fkc_convergence,
    # 50 steps and 2000 swarms keep a cell at ~5 s of sampling; the compiled sampler (one per K) is shared by the
    # settings and error models a worker runs, since the scores differ only in their arrays.
    default=grid(setting=GAUSSIAN_SETTINGS, eps=(0.1,), ks=([4, 8, 16, 32],), n_swarms=(2_000,), n_steps=(50,)),
    quick=grid(setting=("NFC_OOD",), eps=(0.1,), ks=([4, 16],), n_swarms=(400,), n_steps=(20,)),
    tables=(TableSpec(
        name="fkc_convergence",
        caption="FKC's Monte Carlo error against its exact limit K → ∞ on the same grid (closed_form.fkc_limit_law "
                "with n_steps): mean over swarms of the weighted-cloud estimate minus the exact value, ± standard "
                "error over swarms, for E‖x‖² and the log normalizer estimate log Z; exact scores, the worst-case precision error at ε "
                "and the worst-case source misspecification at DSM size 0.005",
        index=("setting", "scores", "K"), index_header="setting / scores / K", pivot="statistic",
        pivot_header="statistic", where={"statistic": ("second_trace", "log_z")},
        columns=(Column("gap", "MC − exact", kind="mean_se", se="se"),),
    ),),
    figures=(FigureSpec(
        "fkc_convergence",
        "|Monte Carlo − exact limit| of E‖x‖² against K (log-log), per setting, exact scores, time-inconsistent "
        "precision error and misspecified sources; the rate 1/K is a slope of −1.",
        lambda frame: lines(frame[frame["statistic"] == "second_trace"], x="K", y="abs_gap", hue="scores",
                            col="setting", logx=True, logy=True, floor=1e-12, ylabel="|MC − exact| of E‖x‖²"),
    ),),
    checks=(
        Check("F4", "Monte Carlo FKC converges to its exact discrete limit: the fit a + c/K over K meets "
              "fkc_limit_law in every Gaussian setting of the run and every statistic, exact scores and the "
              f"time-inconsistent precision error, within t_(1−α/(2m)) standard errors (family-wise false-alarm rate "
              f"α = {FKC_LIMIT_ALPHA:g} over the m comparisons)", _fkc_meets_its_limit(("exact", "precision"))),
        Check("F4", f"the gap to the exact limit falls like 1/K: where it is resolved at every K "
              f"(≥ {FKC_RATE_RESOLVED_K_SE:g} SE), the slope of log|gap| against log K lies within "
              f"±{FKC_RATE_TOLERANCE:g} of −1 (exact scores and the precision error; resolved both ways at one-sided "
              "α = 0.025)", _fkc_rate_is_one_over_k, asserted=False),
    ),
)
