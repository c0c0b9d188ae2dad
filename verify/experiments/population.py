r"""Which measure predicts catastrophe? Exact predictors and outcomes on a population of random Gaussian compositions.

The population is :func:`closed_form.population.random_population`'s: random proper compositions
``Q ∝ P_1^{w_1} P_2^{w_2} P_0^{w_0}`` in each dimension, drawn from the stated distributions of
:class:`closed_form.population.PopulationSpec` (improper draws rejected and counted). Beside them run the *named*
members — the paper's four Gaussian settings and, at ``--size paper``, configurations of the revision's families
(:func:`closed_form.population.named_members`), or instead the user's Gaussian settings (``--settings FILE``, kind
``"user"``; such a run has no random members, so its checks are not applicable). Each member is one row of :func:`verify.analysis.population.member_row`: every predictor (``max_i`` and
``mean_i log(1 + χ²(Q‖P_i))``, ``Q``'s mass outside the sources' 95 % HDRs, ``λ_max``, the crossover ``ε``, the naive
sampler's inference KL, the authors' Monte Carlo metric) and the exact outcomes, ``KL(Q‖FKC's limit)`` under source
misspecification at a fixed training-side DSM ``ε``: the worst case (``kl_worst``) and the mean over random
directions (``kl_mean``).

**Analysis** (:mod:`verify.analysis.ranking`). Over the *random* members only — the bootstrap treats members as iid
draws from the generator, which hand-picked members are not — each predictor's Spearman correlation with each
outcome, signed by its direction so that larger means a better ranking, with a 95 % percentile bootstrap interval
(``B = 2000`` resamples of the members, seeded by the report's seed through the frame's ``bootstrap_seed``). The claim
"``p`` ranks ``o`` best" is decided with the paired intervals of ``ρ_p − ρ_q`` for every other predictor ``q``, each
at the two-sided level ``1 − 2α/m`` (Bonferroni over the ``m`` comparisons, ``α`` =
:data:`verify.analysis.stats.ALPHA`): holds if all lie above 0, fails if one lies below 0, inconclusive otherwise.
The named members appear in the figure (distinct markers) and a table, never in a correlation.

**Within dimension** (reported, not judged). Outcomes and several measures grow with ``d``, so part of a pooled ρ
rewards merely knowing ``d``. Beside each pooled figure the report gives the *within-dimension* one
(``strata="dim"`` in :mod:`verify.analysis.ranking`): Spearman ρ within each ``d``, combined as the mean weighted by
each dimension's members (dimensions with fewer than three usable members left out and counted), with a stratified
bootstrap (members resampled within their dimension). Each check's numbers carry the within-d ρ of the measure and
of the best other one and the paired within-d interval of their difference; the table
``population_ranking_within`` sets the within-d ρ and its interval beside the pooled ρ. The decisions stay on the
pooled population, as drawn: that is what the claims speak of. With one dimension (the quick run) both coincide.

Cells: one per (dimension, chunk of member indices) and one per named member, so the population runs in parallel
and resumes chunk by chunk; a member's draws and Monte Carlo streams depend on ``(population seed, dim, index)``
only, so any chunking gives the same rows.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from verify.analysis.ranking import BOOTSTRAP, correlation, decide_best, disagreements, stratified_context
from verify.analysis.stats import ALPHA
from verify.report.claims import Check, Outcome
from verify.report.figures import Figure, FigureSpec
from verify.report.registry import Experiment, gaussian_only
from verify.report.tables import Column, TableSpec

#: The training-side DSM excess ε at which the outcomes are measured.
EPS = 0.005
#: Random misspecification directions behind ``kl_mean``.
N_DIRECTIONS = 16
#: Kinds of members: random draws, and the named ones.
NAMED_KINDS = ("paper", "family", "user")
#: The record types of the saved frame: members, and what :func:`derive_population` adds for the tables.
RECORDS = ("member", "correlation", "accounting", "disagreement")


def _population_spec(population: dict):
    from closed_form.population import PopulationSpec

    spec = dict(population)
    for key in ("dims", "weights"):
        if key in spec:
            spec[key] = tuple(tuple(w) if isinstance(w, list) else w for w in spec[key])
    return PopulationSpec(**spec)


def member_seed(population_seed: int, dim: int, index: int) -> int:
    """The Monte Carlo seed of random member ``(dim, index)``: a stream of ``(population seed, dim, index)`` apart
    from the one its composition is drawn from, so that any chunking of the population gives the same rows."""
    return int(np.random.SeedSequence([int(population_seed), int(dim), int(index), 1]).generate_state(1)[0] >> 1)


def _named_kind(setting) -> str:
    """``"paper"`` for a paper setting, ``"family"`` for one of :func:`closed_form.population.named_members`' family
    configurations (same name and composition), ``"user"`` for any other setting."""
    from closed_form.population import member_kind, named_members
    from verify.report.cache import canonical_json

    if setting.to_spec().get("paper") is not None:
        return "paper"
    if member_kind(setting) == "family":
        known = {s.name: s for s in named_members("paper")}
        if setting.name in known and canonical_json(known[setting.name].to_spec()) == canonical_json(
                setting.to_spec()):
            return "family"
    return "user"


def population(*, eps: float = EPS, n_directions: int = N_DIRECTIONS, seed: int, dim: int | None = None,
               start: int = 0, stop: int = 0, population: dict | None = None, setting=None,
               member: dict | None = None) -> pd.DataFrame:
    """Rows of :func:`verify.analysis.population.member_row` for random members ``start ≤ index < stop`` of
    dimension ``dim`` of the population ``population`` (the fields of a
    :class:`closed_form.population.PopulationSpec`), or for one named ``setting``. Each row also carries ``record``
    (``"member"``), ``index`` and ``rejected`` (the member's improper draws discarded; ``-1`` and ``0`` for a named
    member), ``kind`` (``"random"``, ``"paper"``, ``"family"`` or ``"user"``) and ``cell_seed`` (this cell's seed,
    from the report's). ``member`` passes further keywords to ``member_row`` (``n_mc``, say).

    Raises
    ------
    CatcompError
        For a chunk outside ``[0, n_per_dim)`` or a ``dim`` not in the spec (:func:`population_member`), and
        :class:`~closed_form.errors.NotGaussianSettingError` for a named setting with a mixture source.
    """
    from closed_form.errors import CatcompError
    from closed_form.population import population_member
    from verify.analysis.population import member_row

    options = dict(member or {})
    rows = []
    if setting is not None:
        if dim is not None or population is not None:
            raise CatcompError("population(): give either a named setting or a chunk (dim, start, stop, population), "
                               "not both.")
        setting.require_gaussian("the population experiment (exact outcomes of Gaussian compositions)")
        row = member_row(setting, eps=eps, n_directions=n_directions, seed=int(seed), **options)
        row.update(kind=_named_kind(setting), index=-1, rejected=0)
        rows.append(row)
    else:
        if dim is None or population is None:
            raise CatcompError("population(): a chunk needs dim, start, stop and population (the PopulationSpec's "
                               "fields); or give a named setting.")
        spec = _population_spec(population)
        if not (0 <= int(start) <= int(stop) <= spec.n_per_dim) or int(start) == int(stop):
            raise CatcompError(f"population(): the chunk [{start}, {stop}) must be a non-empty part of "
                               f"[0, {spec.n_per_dim}) (n_per_dim).")
        for index in range(int(start), int(stop)):
            m = population_member(spec, int(dim), index)
            row = member_row(m.setting, eps=eps, n_directions=n_directions,
                             seed=member_seed(spec.seed, m.dim, m.index), **options)
            row.update(kind="random", index=m.index, rejected=m.rejected)
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(0, "record", "member")
    frame["cell_seed"] = int(seed)
    return frame


# ---------------------------------------------------------------------------------------------- analysis
def _predictors():
    from verify.analysis.population import PREDICTORS

    return PREDICTORS


def _outcomes():
    from verify.analysis.population import OUTCOMES

    return OUTCOMES


#: The measures' names in tables (LaTeX-safe text; the predictors' own labels serve the figure).
TABLE_LABELS = {"log1p_chi2_max": "max_i log(1 + χ²(Q‖P_i))", "log1p_chi2_mean": "mean_i log(1 + χ²(Q‖P_i))",
                "outside_hdr_max": "max_i Q(outside HDR_95(P_i))", "lambda_max": "λ_max",
                "crossover_eps": "crossover ε (direction −1)", "naive_kl": "naive KL(Q_t_min‖law)",
                "authors_metric": "authors' Monte Carlo max_i log rESS_i⁻¹"}


def _directions() -> dict[str, int]:
    return {name: int(p.direction) for name, p in _predictors().items()}


def members(frame: pd.DataFrame, kind: str | None = "random") -> pd.DataFrame:
    """The member rows of a saved frame (``kind`` ``None``: all of them)."""
    part = frame[frame["record"] == "member"] if "record" in frame.columns else frame
    if kind is not None:
        part = part[part["kind"] == kind]
    return part.reset_index(drop=True)


def bootstrap_seed(frame: pd.DataFrame) -> int:
    """The seed of the checks' bootstrap: the frame's ``bootstrap_seed`` (set by :func:`derive_population` from the
    cells' seeds, so from the report's ``--seed``); from the member rows' ``cell_seed`` where the frame lacks it."""
    if "bootstrap_seed" in frame.columns and frame["bootstrap_seed"].notna().any():
        return int(frame["bootstrap_seed"].dropna().iloc[0])
    seeds = sorted({int(s) for s in members(frame, None)["cell_seed"]})
    return int(np.random.SeedSequence(seeds).generate_state(1)[0] >> 1)


def _dropped_reasons(part: pd.DataFrame, predictor: str, outcome: str) -> str:
    """Why rows of ``part`` have a NaN predictor or outcome: the flag columns' values where there are any."""
    reasons = []
    for column in (predictor, outcome):
        missing = part[part[column].isna()]
        if missing.empty:
            continue
        flags = [c for c in part.columns if c.endswith("_reason") or c.endswith("_flag") or c == "infeasible"]
        why = []
        for c in flags:
            vals = missing[c].dropna().astype(str)
            vals = vals[(vals != "") & (vals != "False") & (vals != "ok")]
            why += [f"{c} = {v}" for v in pd.unique(vals)]
        reasons.append(f"{len(missing)} with {column} NaN" + (f" ({'; '.join(why)})" if why else ""))
    return "; ".join(reasons)


def _judged(part: pd.DataFrame) -> tuple[str, ...]:
    out = []
    for dim, group in part.groupby("dim", sort=True):
        names = list(group["setting"])
        out.append(f"d = {int(dim)}: {len(names)} random members ({names[0]} … {names[-1]})")
    return tuple(out)


def _ranks_best(predictor: str, outcome: str):
    def evaluate(frame: pd.DataFrame) -> Outcome:
        part = members(frame)
        if part.empty:
            return Outcome.not_applicable("this run has no random members (the correlations are over random draws "
                                          "from the stated generator; named and user settings are not judged)")
        if outcome not in part.columns or predictor not in part.columns:
            return Outcome.not_applicable(f"the frame lacks {predictor!r} or {outcome!r}")
        decision = decide_best(part, outcome, predictor, _directions(), seed=bootstrap_seed(frame))
        known = part[part[predictor].notna() & part[outcome].notna()]
        dropped = _dropped_reasons(part, predictor, outcome)
        numbers = {"random members": len(part), f"members with {predictor} and {outcome} known": len(known),
                   f"members with {predictor} = ∞": int(np.isinf(part[predictor].astype(float)).sum()),
                   "bootstrap": f"{BOOTSTRAP} resamples of the members, seed {bootstrap_seed(frame)}"}
        numbers.update(decision.numbers())
        if "dim" in part.columns:
            numbers.update(stratified_context(part, outcome, predictor, _directions(), "dim", label="dimension",
                                              seed=bootstrap_seed(frame)))
        note = (f"Spearman ρ of each measure with {outcome} over the random members, signed by the measure's "
                f"direction (larger = better ranking; ∞ tied at the top); '{predictor} ranks best' holds if every "
                f"paired bootstrap interval of ρ({predictor}) − ρ(q) lies above 0, fails if one lies below 0, each at "
                f"the two-sided level 1 − 2α/m (Bonferroni over the m other measures, α = {ALPHA})")
        if outcome == "kl_worst":
            note += ("; kl_worst is KL(Q‖Q̂) along the top eigenspace of the amplification, ≈ λ_max·ε² to second "
                     "order, so λ_max ranks it by construction up to finite-ε effects: kl_mean, over random "
                     "directions, is the outcome that favours no measure by construction")
        note += ("; the decision is on the pooled population (the claims speak of the population as drawn); the "
                 "within-dimension figures (Spearman ρ within each d, weighted by the members per d, bootstrap "
                 "resampling within each d) are context, not judged: a pooled ρ also rewards knowing d")
        if dropped:
            note += f"; dropped: {dropped}"
        if not decision.applicable:
            return Outcome.not_applicable(f"{decision.reason}; {note}", numbers)
        return Outcome.resolve(decision.direction, numbers, note, judged=_judged(known), needs=decision.needs)

    return evaluate


def _accounting(part: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dim, weights), group in part.groupby(["dim", "weights"], sort=True):
        outcome_cols = [o for o in _outcomes() if o in group.columns]
        infeasible = group[outcome_cols].isna().any(axis=1) if outcome_cols else pd.Series(False, index=group.index)
        rej = int(group["rejected"].sum())
        rows.append({"record": "accounting", "dim": int(dim), "dim_label": f"d = {int(dim)}", "weights": weights,
                     "members": len(group),
                     "draws": len(group) + rej, "rejected": rej,
                     "inf_log1p_chi2": int(np.isinf(group["log1p_chi2_max"].astype(float)).sum())
                     if "log1p_chi2_max" in group else 0,
                     "infeasible": int(infeasible.sum()),
                     "outcome_infinite": int(np.isinf(group[outcome_cols].astype(float)).any(axis=1).sum())
                     if outcome_cols else 0})
    return pd.DataFrame(rows)


#: What the population's tables show in a run without random members.
NO_RANDOM = "no random members in this run"
#: The pairs of predictors whose largest disagreements the report shows.
DISAGREEMENT_PAIRS = (("log1p_chi2_max", "lambda_max"), ("lambda_max", "naive_kl"))
#: The outcome whose rank the disagreements table shows beside the two measures' (the mean over random directions:
#: the worst case is λ_max's by construction to second order).
DISAGREEMENT_OUTCOME = "kl_mean"
#: Members shown per pair.
N_DISAGREEMENTS = 8


def derive_population(frame: pd.DataFrame) -> pd.DataFrame:
    """The saved frame: the member rows, then what the tables read — per predictor and outcome the signed ρ over
    the random members and its 95 % bootstrap interval (``record = "correlation"``; beside it the within-dimension
    ρ, its stratified interval, the dimensions used and those excluded), the population's accounting
    per dimension and weights (``"accounting"``), and the members where two predictors disagree most
    (``"disagreement"``). Every row carries ``bootstrap_seed`` (from the cells' seeds, so from the report's)."""
    member_rows = members(frame, None)
    seed = bootstrap_seed(member_rows.drop(columns=["bootstrap_seed"], errors="ignore"))
    part = members(member_rows)
    extra = []
    dirs = _directions()
    rows = []
    for outcome in _outcomes():
        for name, p in _predictors().items():
            if len(part) == 0 or outcome not in part.columns or name not in part.columns:
                rows.append({"record": "correlation", "predictor": TABLE_LABELS.get(name, name), "predictor_name": name,
                             "outcome": outcome, "rho": np.nan, "rho_lower": np.nan, "rho_upper": np.nan,
                             "n_judged": 0, "n_dropped": len(part), "undefined_resamples": 0,
                             "rho_within": np.nan, "rho_within_lower": np.nan, "rho_within_upper": np.nan,
                             "n_within": 0, "dims_used": 0, "dims_excluded": 0, "undefined_within": 0})
                continue
            c = correlation(part, name, outcome, dirs[name], seed=seed)
            w = correlation(part, name, outcome, dirs[name], seed=seed, strata="dim")
            rows.append({"record": "correlation", "predictor": TABLE_LABELS.get(name, name),
                         "predictor_name": name, "outcome": outcome, "rho": c.rho if c.defined else np.nan,
                         "rho_lower": c.lower if c.defined else np.nan,
                         "rho_upper": c.upper if c.defined else np.nan, "n_judged": c.n, "n_dropped": c.dropped,
                         "undefined_resamples": c.undefined,
                         "rho_within": w.rho if w.defined else np.nan,
                         "rho_within_lower": w.lower if w.defined else np.nan,
                         "rho_within_upper": w.upper if w.defined else np.nan, "n_within": w.n,
                         "dims_used": len(w.per_stratum), "dims_excluded": len(w.excluded),
                         "undefined_within": w.undefined})
    extra.append(pd.DataFrame(rows))
    # A run without random members (on the user's settings) still writes one row per table, saying so.
    extra.append(_accounting(part) if len(part) else pd.DataFrame([{
        "record": "accounting", "dim": 0, "dim_label": "--", "weights": NO_RANDOM, "members": 0, "draws": 0, "rejected": 0,
        "inf_log1p_chi2": 0, "infeasible": 0, "outcome_infinite": 0}]))
    outcome = DISAGREEMENT_OUTCOME
    shown = 0
    for p, q in DISAGREEMENT_PAIRS:
        if p not in part.columns or q not in part.columns or part[[p, q]].notna().all(axis=1).sum() < 2:
            continue
        d = disagreements(part, p, q, N_DISAGREEMENTS, directions=dirs, outcome=outcome)
        extra.append(pd.DataFrame({"record": "disagreement", "pair": f"{TABLE_LABELS.get(p, p)} vs {TABLE_LABELS.get(q, q)}", "setting": d["setting"],
                                   "value_p": d[p], "value_q": d[q], "rank_p": d[f"rank_{p}"],
                                   "rank_q": d[f"rank_{q}"], "rank_difference": d["rank_difference"],
                                   "rank_outcome": d[f"rank_{outcome}"], "outcome_value": d[outcome]}))
        shown += 1
    if not shown:
        extra.append(pd.DataFrame([{"record": "disagreement", "pair": NO_RANDOM, "setting": "--", "value_p": np.nan,
                                    "value_q": np.nan, "rank_p": np.nan, "rank_q": np.nan, "rank_difference": np.nan,
                                    "rank_outcome": np.nan, "outcome_value": np.nan}]))
    out = pd.concat([member_rows.drop(columns=["population"], errors="ignore"), *extra], ignore_index=True)
    out["bootstrap_seed"] = seed
    return out


# ---------------------------------------------------------------------------------------------- figure
#: Below this fraction of a panel's largest finite value a measure counts as 0 in the figure (drawn at the left edge).
TINY = 1e-12
_MARKERS = {"random": dict(marker="o", s=12, color="0.45", alpha=0.7, zorder=2),
            "paper": dict(marker="*", s=90, color="tab:red", edgecolor="k", linewidths=0.4, zorder=4),
            "family": dict(marker="^", s=28, color="tab:blue", edgecolor="k", linewidths=0.3, zorder=3),
            "user": dict(marker="D", s=36, color="tab:green", edgecolor="k", linewidths=0.4, zorder=4)}


def predictor_grid(frame: pd.DataFrame) -> Figure:
    """One panel per predictor (columns) and outcome (rows), log axes: random members as grey dots, the named ones
    highlighted (paper settings as red stars, family members as blue triangles, user settings as green diamonds).
    An infinite predictor value is drawn at the panel's right edge as a right-pointing triangle, one that is 0 (at
    most :data:`TINY` of the panel's largest) at its left edge as a left-pointing one; the title counts them
    (``x = ∞``: random and named members; ``x ≈ 0``) and gives ρ over the random members. Members with an infinite or
    NaN outcome are left out and counted in the title (``y = ∞/NaN``)."""
    part = members(frame, None)
    predictors, outcomes = list(_predictors().items()), list(_outcomes().items())
    correlations = frame[frame["record"] == "correlation"] if "record" in frame.columns else frame.iloc[:0]
    fig = Figure(figsize=(3.0 * len(predictors), 2.7 * len(outcomes)), layout="constrained")
    axes = fig.subplots(len(outcomes), len(predictors), squeeze=False)
    for r, (outcome, outcome_label) in enumerate(outcomes):
        for c, (name, p) in enumerate(predictors):
            ax = axes[r, c]
            x = part[name].to_numpy(float) if name in part else np.full(len(part), np.nan)
            y = part[outcome].to_numpy(float) if outcome in part else np.full(len(part), np.nan)
            ok_y = np.isfinite(y) & (y > 0)
            # Values below 1e-12 of the panel's largest finite one (an FC setting's naive KL, exactly 0 up to
            # rounding) are drawn at the left edge with the non-positive ones, not stretching the axis.
            big = np.max(x[np.isfinite(x)], initial=0.0)
            finite = np.isfinite(x) & (x > TINY * big)
            if not (finite & ok_y).any():
                ax.text(0.5, 0.5, "no finite positive pair", transform=ax.transAxes, ha="center", fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
                continue
            lo, hi = np.min(x[finite & ok_y]), np.max(x[finite & ok_y])
            span = max(hi / lo, 10.0) if lo > 0 else 10.0
            right, left = hi * span ** 0.12, lo / span ** 0.12
            infinite = np.isposinf(x) & ok_y
            low = np.isfinite(x) & ~finite & ok_y
            kinds = part["kind"].to_numpy()
            for kind, style in _MARKERS.items():
                sel = kinds == kind
                ax.scatter(x[sel & finite & ok_y], y[sel & finite & ok_y], label=kind, **style)
                style_edge = {**style, "marker": ">"}
                ax.scatter(np.full(int((sel & infinite).sum()), right), y[sel & infinite], **style_edge)
                ax.scatter(np.full(int((sel & low).sum()), left), y[sel & low], **{**style, "marker": "<"})
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(left / span ** 0.05, right * span ** 0.05)
            if infinite.any():
                ax.axvline(right, color="0.7", lw=0.6, ls=":", zorder=1)
            row = correlations.iloc[:0]
            if {"predictor_name", "outcome"} <= set(correlations.columns):
                row = correlations[(correlations["predictor_name"] == name) & (correlations["outcome"] == outcome)]
            title = p.label
            if len(row) and np.isfinite(row["rho"].iloc[0]):
                rho, lo, hi = (float(row[k].iloc[0]) for k in ("rho", "rho_lower", "rho_upper"))
                title += f"\nρ = {rho:.2f} [{lo:.2f}, {hi:.2f}]"
            marks = []
            if infinite.any():
                n_random = int((infinite & (kinds == "random")).sum())
                marks.append(f"x = ∞: {n_random} random + {int(infinite.sum()) - n_random} named")
            if low.any():
                marks.append(f"x ≈ 0: {int(low.sum())}")
            if (~np.isfinite(y)).any():
                marks.append(f"y = ∞/NaN: {int((~np.isfinite(y)).sum())} (not shown)")
            if marks:
                title += "\n" + "; ".join(marks)
            ax.set_title(title, fontsize=7)
            ax.tick_params(labelsize=6)
            if r == len(outcomes) - 1:
                ax.set_xlabel(p.label, fontsize=7)
            if c == 0:
                ax.set_ylabel(outcome_label, fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    present = [k for k in _MARKERS if k in set(part["kind"])]
    if present:
        fig.legend([seen[k] for k in present if k in seen], [k for k in present if k in seen], loc="outside lower "
                   "center", ncol=len(present), fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------- registration
#: The population's generator at every size (the fields of closed_form.population.PopulationSpec beside dims and
#: n_per_dim, which the sizes set): its defaults, seed 2026.
POPULATION_SEED = 2026
#: Members per cell: chunks of the population run in parallel and resume one by one.
CHUNK = 8


def _spec(dims, n_per_dim, weights=None) -> dict:
    spec = {"dims": list(dims), "n_per_dim": int(n_per_dim), "seed": POPULATION_SEED}
    if weights is not None:
        spec["weights"] = [list(w) for w in weights]
    return spec


def _chunk_cells(dims, n_per_dim, weights=None, chunk=CHUNK) -> tuple[dict, ...]:
    spec = _spec(dims, n_per_dim, weights)
    return tuple({"dim": d, "start": s, "stop": min(s + chunk, n_per_dim), "population": spec, "eps": EPS,
                  "n_directions": N_DIRECTIONS}
                 for d in dims for s in range(0, n_per_dim, chunk))


def _named_cells(size: str, kinds=("paper", "family")) -> tuple[dict, ...]:
    from closed_form.population import member_kind, named_members

    return tuple({"setting": s.to_spec(), "eps": EPS, "n_directions": N_DIRECTIONS}
                 for s in named_members(size) if member_kind(s) in kinds)


#: Dimensions, random members per dimension and weight triples (``None``: the generator's four) at each size. The
#: quick run keeps to d = 2 and the paper's weights (1, 1, −1): each weight triple and dimension costs a compilation
#: of the authors' Monte Carlo metric (its weights are static), which dominates a small run.
#: The default run costs about 100 s of CPU (compilation, about 20 s per dimension, dominates; a d = 8 member costs
#: 5–10 s, a d = 2 one 0.6 s): one member per weight triple and dimension, the paper's settings beside them; 8 per
#: dimension cost 180 s. The revision's families join as named members at the paper size.
SIZES = {"quick": ((2,), 8, ((1.0, 1.0, -1.0),)), "default": ((2, 4, 8), 4, None), "paper": ((2, 4, 8), 67, None)}

_STATEMENT = ("{p} ranks {o} best among the measures tested, over the random members (paper and family settings "
              "shown, not judged): every paired bootstrap interval of ρ({p}) − ρ(q), Spearman ρ signed by each "
              "measure's direction, " + str(BOOTSTRAP) + " resamples of the members seeded by the report's seed, "
              "lies above 0 (holds), one lies below 0 (fails), else inconclusive; each interval at the two-sided "
              "level 1 − 2α/m, Bonferroni over the m other measures, α = " + str(ALPHA))

EXPERIMENT = Experiment(
    name="population",
    title="Which measure predicts catastrophe: exact predictors and outcomes on random Gaussian compositions",
    compute=population,
    applies_to=gaussian_only,
    quick=(*_chunk_cells(*SIZES["quick"]), *_named_cells("quick", ("paper",))),
    default=(*_chunk_cells(*SIZES["default"]), *_named_cells("default", ("paper",))),
    paper=(*_chunk_cells(*SIZES["paper"]), *_named_cells("paper")),
    requires=("closed_form.population", "verify.analysis.population"),
    derive=derive_population,
    # An outcome is NaN where ε is not reachable (its *_flag column says why); kl_mean_se where kl_mean is ∞.
    allow_nan=("kl_worst", "kl_mean", "kl_mean_se"),
    tables=(
        TableSpec(
            name="population_ranking",
            caption="Spearman rank correlation ρ of each measure with each exact outcome over the random members "
                    "(signed by the measure's direction: larger = better ranking; ∞ tied at the top), with its 95 % "
                    f"percentile bootstrap interval ({BOOTSTRAP} resamples of the members), the members it is over "
                    "and those dropped (a NaN measure or outcome)",
            where={"record": "correlation"}, index=("predictor",), index_header="measure", pivot="outcome",
            pivot_header="outcome",
            columns=(Column("rho", "ρ", missing="undef."), Column("rho_lower", "lower", missing="--"),
                     Column("rho_upper", "upper", missing="--"), Column("n_judged", "n", kind="integer"),
                     Column("n_dropped", "dropped", kind="integer")),
        ),
        TableSpec(
            name="population_ranking_within",
            caption="The same correlations within dimension (context, not judged: the checks decide on the pooled "
                    "population): Spearman ρ of each measure with each outcome computed within each dimension d and "
                    "averaged with weights the members per d, beside the pooled ρ; the 95 % interval of the within-d "
                    f"ρ from a stratified bootstrap ({BOOTSTRAP} resamples of the members within each d; ±∞ where "
                    "too many resamples of a small dimension are constant), and the dimensions used and excluded "
                    "(fewer than three usable members or a constant measure). A pooled ρ also rewards knowing d",
            where={"record": "correlation"}, index=("predictor",), index_header="measure", pivot="outcome",
            pivot_header="outcome",
            columns=(Column("rho", "pooled ρ", missing="undef."),
                     Column("rho_within", "ρ within d", missing="undef."),
                     Column("rho_within_lower", "lower", missing="--"),
                     Column("rho_within_upper", "upper", missing="--"),
                     Column("dims_used", "d used", kind="integer"),
                     Column("dims_excluded", "d excl.", kind="integer")),
        ),
        TableSpec(
            name="population_accounting",
            caption="The random population per dimension and weights (w_1, w_2, w_0): members, draws, improper "
                    "draws rejected, members with max_i log(1 + χ²(Q‖P_i)) = ∞, members with an outcome NaN "
                    "(the training-side ε not reachable: dropped from the correlations) and members with an outcome "
                    "∞ (Q̂ improper along some direction: kept, tied at the top)",
            where={"record": "accounting"}, index=("dim_label", "weights"), index_header=("dimension", "weights"),
            columns=(Column("members", kind="integer"), Column("draws", kind="integer"),
                     Column("rejected", kind="integer"), Column("inf_log1p_chi2", "log(1+χ²) = ∞", kind="integer"),
                     Column("infeasible", kind="integer"),
                     Column("outcome_infinite", "outcome = ∞", kind="integer")),
        ),
        TableSpec(
            name="population_disagreements",
            caption="Where two measures rank the random members most differently: their ranks scaled to [0, 1] "
                    "(signed by direction, so 1 = predicted most harmful), the difference, and the rank of the "
                    "harm KL(Q‖FKC's limit) averaged over random misspecifications (kl_mean) among the same members",
            where={"record": "disagreement"}, index=("pair", "setting"), index_header=("measures", "member"),
            columns=(Column("value_p", "first", missing="--"), Column("value_q", "second", missing="--"),
                     Column("rank_p", "rank first", missing="--"), Column("rank_q", "rank second", missing="--"),
                     Column("rank_difference", "difference", missing="--"),
                     Column("rank_outcome", "rank of harm", missing="--")),
        ),
        TableSpec(
            name="population_named",
            caption="The named members (the paper's Gaussian settings and the revision's families, or the user's "
                    "settings): every measure and the exact outcomes at the training-side ε (not part of the "
                    "correlations); KL mean is ∞ where some random direction makes Q̂ improper (its SE then --)",
            where={"record": "member", "kind": NAMED_KINDS}, index=("setting",), index_header="member",
            font_size="footnotesize",
            columns=(Column("kind", kind="text"), Column("dim", "d", kind="integer"),
                     Column("log1p_chi2_max", "max log(1+χ²)", missing="--"),
                     Column("outside_hdr_max", "outside HDR", missing="--"),
                     Column("lambda_max", "λ_max", missing="--"), Column("crossover_eps", "crossover ε", missing="--"),
                     Column("naive_kl", "naive KL", missing="--"),
                     Column("authors_metric", "authors' MC", se="authors_metric_se", kind="mean_se", missing="--"),
                     Column("kl_worst", "KL worst", missing="--"),
                     Column("kl_mean", "KL mean", missing="--"),
                     Column("kl_mean_se", "SE of KL mean", missing="--")),
        ),
    ),
    figures=(FigureSpec(
        "population_predictors",
        "Each measure against each exact outcome (log axes): random members (grey), the paper's Gaussian settings "
        "(red stars), the revision's family members (blue triangles); infinite measures at the panel's right edge "
        "(right-pointing triangles), measures ≈ 0 at its left edge, counted in the title with ρ and its 95 % "
        "bootstrap interval over the random members.",
        predictor_grid,
    ),),
    checks=tuple(Check(claim, _STATEMENT.format(p=p, o=o), _ranks_best(p, o), asserted=False)
                 for o in ("kl_worst", "kl_mean")
                 for claim, p in (("R4", "log1p_chi2_max"), ("F9", "lambda_max"))),
)
