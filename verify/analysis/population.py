r"""Predictors and exact outcomes of one Gaussian composition, for the population study.

:func:`member_row` computes, for a Gaussian setting ``Q ∝ Π_i P_i^{w_i}``, every *predictor* (a measure one could
compute before sampling, expected to flag a catastrophic composition) and every exact *outcome* (what a source
misspecification of a fixed training-side size costs). "Over sources" means over the sources with a non-zero weight
(a source with weight 0 is no part of ``Q``).

Predictors (:data:`PREDICTORS`; ``direction`` +1 when larger is expected to mean more harm):

* ``log1p_chi2_max``, ``log1p_chi2_mean`` — ``max_i`` and ``mean_i`` of ``log(1 + χ²(Q‖P_i))``
  (:func:`closed_form.log1p_chi2`), ``+inf`` where ``2Σ_i − Σ_Q`` is not positive definite (counted in
  ``n_sources_infinite_chi2``);
* ``outside_hdr_max`` — ``max_i Q(x ∉ HDR_95(P_i))`` (:func:`closed_form.ood.fraction_outside_hdr`);
* ``lambda_max`` — the worst-case amplification ``sup_δ lim KL(Q‖Q̂_δ)/ε(δ)²``
  (:func:`theory.amplification.amplification`);
* ``crossover_eps`` (direction −1) — the smallest training-side ``ε`` at which a misspecification along one of the
  searched rays costs ``KL(Q_{t_min}‖Q̂_{δ,t_min})`` as much as naive composition's bias ``naive_kl``
  (:func:`theory.amplification.crossover`). The rays are the top :data:`CROSSOVER_TOP` generalized eigendirections
  (both signs, and circles through degenerate pairs among them), not all ``p``: ``H_K`` has rank at most
  ``d + d(d+1)/2`` of ``p = 3(d + d(d+1)/2)``, so at least two thirds of the eigenvalues are 0 and form one
  degenerate eigenspace, whose circle search would add ``~13`` rays per pair (over a thousand in ``d = 8``) that
  do not cross at second order. The result is an upper bound of the infimum over all directions, equal to it to
  second order (the top eigendirection is the worst); ``inf`` when no ray crosses before leaving the
  positive-definite cone, ``0`` when ``naive_kl`` is round-off (≤ :data:`NAIVE_KL_FLOOR`: naive composition is
  exact, as for factorized conditionals) (``crossover_note`` says which);
* ``naive_kl`` — the naive sampler's exact inference KL, ``KL(Q_{t_min}‖law)`` of the continuous-time reverse SDE
  driven by ``Σ_i w_i ∇log q^i_t`` from ``Q_T`` (:func:`verify.analysis.error_models.naive_with_errors_law` with
  the exact sources, as the ``ood_family`` experiment's ``kl_inference``);
* ``authors_metric`` — the authors' Monte Carlo estimate of ``max_i log(1 + χ²)``
  (:func:`verify.analysis.ress.ress_estimates`: ``n_mc`` draws per source, ``n_mc_draws`` independent draws; per
  draw the maximum over sources; the median over draws as the authors report, with ``authors_metric_se`` the
  median's standard error ``1.2533·sd/√n``). Its exact value is ``log1p_chi2_max``; it never exceeds ``log n_mc``.

Exact outcomes (:data:`OUTCOMES`), at training-side ``ε`` (the DSM excess averaged over the sources,
:mod:`theory.amplification`), ``Q̂ ∝ Π_i P̂_i^{w_i}`` being FKC's continuous-time ``K → ∞`` limit with the
misspecified sources ``P̂_i``:

* ``kl_worst`` — ``KL(Q‖Q̂)`` for the worst-case misspecification: of the unit-``ε²`` directions of the top
  eigenspace (both signs; its unit circle where ``λ_max`` is double), each calibrated exactly to ``ε``, the largest
  (:func:`theory.amplification.eigenspace_range`'s ``kl_max``; for a simple ``λ_max`` the two signs are calibrated
  in the batch of the random directions, the same computation). Worst to second order in ``ε``; at finite ``ε`` another
  direction may exceed it;
* ``kl_mean`` — the mean of ``KL(Q‖Q̂)`` over ``n_directions`` random directions ``δ = H_ε^{−1/2} z``,
  ``z ~ N(0, I)`` (every direction of the unit-training-error ellipsoid ``½δᵀH_εδ = 1`` equally likely), each
  calibrated exactly to ``ε`` (:func:`theory.amplification.calibrate_many`), with ``kl_mean_se = sd/√n``.
  Directions whose perturbed covariances leave the positive-definite cone before reaching ``ε`` are excluded
  (``n_directions_outside_pd``); directions that make ``Q̂`` improper have ``KL = ∞`` and are included
  (``n_directions_improper``): the mean is then ``∞`` and ``kl_mean_se`` NaN (``kl_mean_flag`` says so).

No NaN is silent: a NaN outcome comes with a non-empty ``*_flag`` column naming the reason.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import NamedTuple

import jax
import numpy as np

from closed_form import VPSchedule, as_setting, kl, log1p_chi2
from closed_form.errors import CatcompError
from closed_form.ood import fraction_outside_hdr
from closed_form.population import member_kind, weights_label
from theory.amplification import (
    Amplification,
    amplification,
    calibrate_many,
    crossover,
    eigenspace_range,
    target_kl_many,
)
from verify.analysis.error_models import naive_with_errors_law
from verify.analysis.ress import MEDIAN_SE_FACTOR, ress_estimates


class Predictor(NamedTuple):
    """A predictor column: ``name``, a plot/table ``label`` and ``direction`` (+1: larger means more harm is
    expected; −1: smaller does)."""

    name: str
    label: str
    direction: int


#: The predictors, in report order.
PREDICTORS = {p.name: p for p in (
    Predictor("log1p_chi2_max", "max_i log(1 + χ²(Q‖P_i))", +1),
    Predictor("log1p_chi2_mean", "mean_i log(1 + χ²(Q‖P_i))", +1),
    Predictor("outside_hdr_max", "max_i Q(∉ HDR₉₅(P_i))", +1),
    Predictor("lambda_max", "λ_max", +1),
    Predictor("crossover_eps", "crossover ε", -1),
    Predictor("naive_kl", "naive KL(Q_t_min‖law)", +1),
    Predictor("authors_metric", "authors' Monte Carlo max_i log rESS_i⁻¹", +1),
)}

#: The exact outcomes: column → label.
OUTCOMES = {
    "kl_worst": "KL(Q‖Q̂), worst-case misspecification at ε",
    "kl_mean": "KL(Q‖Q̂), mean over random misspecifications at ε",
}

#: Generalized eigendirections (from the top) whose rays :func:`member_row` searches for the crossover (module doc).
CROSSOVER_TOP = 4
#: A naive inference KL at or below this is round-off: the laws' moments are exact to about 1e-9 relative, and a KL
#: between Gaussians whose moments differ by ``r`` relative is of order ``d·r²`` ≤ 1e-16; the factorized settings,
#: where naive composition is exact, give 1e-32 to 1e-24. The crossover is then 0 (``crossover_note`` says so).
NAIVE_KL_FLOOR = 1e-16
#: Default number of random misspecification directions for ``kl_mean``: with the worst case's two rays, one batch
#: of 64 rows (:data:`theory.amplification.BATCH_ROWS`).
N_DIRECTIONS = 62
#: Default draws per source (the authors' N) and independent draws of the authors' metric.
N_MC = 20_000
N_MC_DRAWS = 12


def top_amplification(amp: Amplification, k: int) -> Amplification:
    """``amp`` restricted to its ``k`` largest generalized eigenpairs (what :func:`theory.amplification.crossover`
    searches along); ``λ_max``, its multiplicity and the Hessians are unchanged."""
    k = max(int(k), amp.multiplicity)
    return replace(amp, eigenvalues=amp.eigenvalues[-k:], directions=amp.directions[:, -k:])


def naive_inference_kl(composition, schedule, t_min: float) -> float:
    """``KL(Q_{t_min}‖law)`` of the continuous-time naive SDE from ``Q_T`` (exact sources)."""
    law = naive_with_errors_law(composition, composition.sources, schedule, t_min)
    return float(kl(composition.noised_target(schedule, t_min), law))


def random_directions(amp: Amplification, n: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` rows ``δ = H_ε^{−1/2} z``, ``z ~ N(0, I_p)``: directions uniform on the ellipsoid ``½δᵀH_εδ = const``
    (their length is set later by calibration)."""
    lam, vec = np.linalg.eigh(amp.hess_eps)
    inv_sqrt = (vec / np.sqrt(lam)) @ vec.T
    return rng.standard_normal((int(n), len(lam))) @ inv_sqrt.T


def _check_seed(seed) -> int:
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise CatcompError(f"seed must be an integer ≥ 0, got {seed!r}.")
    return int(seed)


def direction_rng(seed: int, name: str) -> np.random.Generator:
    """The stream of :func:`member_row`'s random directions: ``default_rng([seed, crc32(name), 2])``, so members
    with the same ``seed`` draw independent directions and any member's are reproduced alone."""
    return np.random.default_rng([_check_seed(seed), zlib.crc32(name.encode()), 2])


def authors_key(seed: int, name: str):
    """The JAX key of :func:`member_row`'s Monte Carlo metric: ``key(seed)`` folded with ``crc32(name)``, then 1."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(_check_seed(seed)), zlib.crc32(name.encode())), 1)


def member_row(setting, schedule=None, *, eps: float = 0.005, n_directions: int = N_DIRECTIONS, n_mc: int = N_MC,
               n_mc_draws: int = N_MC_DRAWS, seed: int = 0, t_min: float = 1e-4,
               crossover_top: int = CROSSOVER_TOP) -> dict:
    """Predictors and exact outcomes of one Gaussian setting (module doc) as one dict (a frame row).

    Parameters
    ----------
    setting : Setting or anything :func:`closed_form.as_setting` takes
        Gaussian sources.
    schedule : optional
        Default :class:`closed_form.VPSchedule` ``()``.
    eps : float
        The training-side error of the outcomes (``> 0``).
    n_directions : int
        Random misspecification directions for ``kl_mean`` (``≥ 2``).
    n_mc, n_mc_draws : int
        Draws per source and independent draws of the authors' metric (``≥ 2`` each).
    seed : int
        The random directions and the authors' draws derive from ``(seed, the setting's name)``.
    t_min : float
        Where the naive sampler and the crossover's KL stop.
    crossover_top : int
        Generalized eigendirections searched for the crossover (at least the top eigenspace's).

    Returns
    -------
    dict
        ``setting``, ``dim``, ``kind``, ``weights``, ``eps``, ``t_min``; every :data:`PREDICTORS` and
        :data:`OUTCOMES` column; ``n_sources_infinite_chi2``, ``multiplicity``, ``crossover_note``,
        ``authors_metric_se``, ``authors_log_n``, ``kl_worst_flag``, ``kl_mean_se``, ``kl_mean_flag``,
        ``n_directions``, ``n_directions_valid``, ``n_directions_outside_pd``, ``n_directions_improper``.

    Raises
    ------
    NotGaussianSettingError
        For a setting with a mixture source.
    CatcompError
        For invalid options.
    """
    setting = as_setting(setting)
    setting.require_gaussian("member_row (exact predictors and outcomes)")
    schedule = VPSchedule() if schedule is None else schedule
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise CatcompError(f"eps must be a finite number > 0, got {eps!r}.")
    for name, value in (("n_directions", n_directions), ("n_mc", n_mc), ("n_mc_draws", n_mc_draws)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 2):
            raise CatcompError(f"{name} must be an integer ≥ 2, got {value!r}.")
    _check_seed(seed)
    comp = setting.composition
    q = comp.target
    active = [i for i, w in enumerate(comp.weights) if w != 0.0]
    row = {"setting": setting.name, "dim": setting.dim, "kind": member_kind(setting),
           "weights": weights_label(comp.weights), "eps": float(eps), "t_min": float(t_min)}

    # OOD measures
    chi = np.array([float(log1p_chi2(q, comp.sources[i])) for i in active])
    row["log1p_chi2_max"] = float(chi.max())
    row["log1p_chi2_mean"] = float(chi.mean())
    row["n_sources_infinite_chi2"] = int(np.isinf(chi).sum())
    row["outside_hdr_max"] = float(max(fraction_outside_hdr(q, comp.sources[i]) for i in active))

    # amplification, naive KL, crossover
    amp = amplification(comp, schedule)
    row["lambda_max"] = amp.value
    row["multiplicity"] = amp.multiplicity
    naive = naive_inference_kl(comp, schedule, t_min)
    row["naive_kl"] = naive
    if naive <= NAIVE_KL_FLOOR:
        row["crossover_eps"] = 0.0
        row["crossover_note"] = (f"naive composition exact to round-off (KL ≤ {NAIVE_KL_FLOOR:g}): any error "
                                 "costs more (ε = 0)")
    else:
        cross = crossover(comp, schedule, naive, amp=top_amplification(amp, crossover_top), t_min=t_min)
        row["crossover_eps"] = cross.eps
        row["crossover_note"] = ("no ray crosses before its covariances leave the PD cone (ε = ∞)"
                                 if math.isinf(cross.eps) else "")

    # the authors' Monte Carlo metric
    draws = ress_estimates(authors_key(seed, setting.name), comp.sources, tuple(comp.weights), int(n_mc), int(n_mc_draws))[:, active]
    per_draw = draws.max(axis=1)
    row["authors_metric"] = float(np.median(per_draw))
    row["authors_metric_se"] = float(MEDIAN_SE_FACTOR * per_draw.std(ddof=1) / math.sqrt(len(per_draw)))
    row["authors_log_n"] = math.log(int(n_mc))

    # Outcomes (a) and (b). Where λ_max is simple, the worst case is ±v (eigenspace_range's "both signs"): those two
    # rays are calibrated in the same batch as the random directions (N_DIRECTIONS = 62 fills the 64 rows a batch
    # is padded to), which gives eigenspace_range's kl_max for half the cost; a degenerate top eigenspace is
    # searched by eigenspace_range itself.
    directions = random_directions(amp, n_directions, direction_rng(seed, setting.name))
    if amp.multiplicity == 1:
        batch = np.vstack([amp.direction, -amp.direction, directions])
        all_deltas, all_valid = calibrate_many(comp, schedule, eps, batch, hess_eps=amp.hess_eps)
        top_kl = np.full(2, np.nan)
        if all_valid[:2].any():
            top_kl[all_valid[:2]] = target_kl_many(comp, schedule, all_deltas[:2][all_valid[:2]], 0.0)
            row["kl_worst"] = float(np.nanmax(top_kl))
            row["kl_worst_flag"] = ""
        else:
            row["kl_worst"] = math.nan
            row["kl_worst_flag"] = (f"not reachable: both signs of the top eigendirection leave the PD cone before "
                                    f"ε = {eps:g}")
        deltas, valid = all_deltas[2:], all_valid[2:]
    else:
        try:
            row["kl_worst"] = eigenspace_range(comp, schedule, eps, amp, t=0.0).kl_max
            row["kl_worst_flag"] = ""
        except CatcompError as err:
            row["kl_worst"], row["kl_worst_flag"] = math.nan, f"not reachable: {err}"
        deltas, valid = calibrate_many(comp, schedule, eps, directions, hess_eps=amp.hess_eps)
    if math.isinf(row["kl_worst"]):
        row["kl_worst_flag"] = "Q̂ improper along the worst direction (KL = ∞)"
    n_valid = int(valid.sum())
    row["n_directions"] = int(n_directions)
    row["n_directions_valid"] = n_valid
    row["n_directions_outside_pd"] = int(n_directions) - n_valid
    if n_valid == 0:
        row.update(kl_mean=math.nan, kl_mean_se=math.nan, n_directions_improper=0,
                   kl_mean_flag=f"every one of {n_directions} directions leaves the PD cone before ε = {eps:g}")
        return row
    values = target_kl_many(comp, schedule, deltas[valid], 0.0)
    improper = int(np.isinf(values).sum())
    row["n_directions_improper"] = improper
    if improper:
        row.update(kl_mean=math.inf, kl_mean_se=math.nan,
                   kl_mean_flag=f"{improper} of {n_valid} directions make Q̂ improper (KL = ∞): the mean is ∞")
    elif n_valid < 2:
        row.update(kl_mean=float(values.mean()), kl_mean_se=math.nan,
                   kl_mean_flag="one valid direction: no standard error")
    else:
        row.update(kl_mean=float(values.mean()), kl_mean_se=float(values.std(ddof=1) / math.sqrt(n_valid)),
                   kl_mean_flag="")
    return row


__all__ = ["CROSSOVER_TOP", "NAIVE_KL_FLOOR", "N_DIRECTIONS", "N_MC", "N_MC_DRAWS", "OUTCOMES", "PREDICTORS", "Predictor",
           "authors_key", "direction_rng", "member_row", "naive_inference_kl", "random_directions", "top_amplification"]
