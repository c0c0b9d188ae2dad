r"""Score-estimation error where the composed target lives: experiments as tidy DataFrames.

Each function returns one row per configuration with named columns; :mod:`verify.catalog` turns them into tables
and figures. Exact quantities (Gaussian settings, affine errors) carry no Monte Carlo error; the others state their
standard errors in ``*_se`` columns.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, compose, fkc_limit_law, paper_setting, reverse_time_grid
from closed_form.divergences import kl, ress_inverse, w2
from closed_form.errors import ImproperCompositionError, WeightsNotIntegrableError
from closed_form.fields import add_fields
from closed_form.laws import sde_law
from closed_form.ood import fraction_outside_hdr
from closed_form.perturbations import (
    DensityPowerError,
    misspecification_error,
    precision_error,
    weighted_field,
)
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.sensitivity import sensitivity_bound
from theory.two_point import two_point_bound
from verify.montecarlo import fit_gaussian_mle


def _errors_row(composition, schedule, errors, t_min):
    """KL(Q_{t_min}‖·) and W2 of: naive exact, exact-target score + δ, naive + δ (all continuous-time SDE from Q_T),
    and FKC's K → ∞ limits: π_{t_min} with exact scores, and with the perturbed scores the continuous Feynman–Kac
    law :func:`closed_form.fkc_limit_law` started from π at the samplers' first grid time (``inf`` where the weights
    are not integrable). It does not assume that the perturbed scores are scores of diffused laws, so it stays the
    limit for time-inconsistent errors too."""
    q_min = composition.noised_target(schedule, t_min)
    start = composition.noised_target(schedule, schedule.T)
    delta = add_fields(*[weighted_field(w, e) for w, e in zip(composition.weights, errors)])
    laws = {
        "inference": sde_law(composition.naive_field(schedule), schedule, start, t_min),
        "estimation": sde_law(add_fields(composition.target_field(schedule), delta), schedule, start, t_min),
        "total": sde_law(add_fields(composition.naive_field(schedule), delta), schedule, start, t_min),
        "fkc_exact": composition.path_composition(schedule, t_min).target,
    }
    fields = [add_fields(f, e.field) for f, e in zip(composition.source_fields(schedule), errors)]
    fkc_start = composition.path_composition(schedule, float(reverse_time_grid(schedule, 1)[0])).target
    try:
        laws["fkc_perturbed"] = fkc_limit_law(fields, composition.weights, schedule, fkc_start, t_min=t_min).law
    except WeightsNotIntegrableError:
        laws["fkc_perturbed"] = None
    row = {}
    for name, law in laws.items():
        row[f"kl_{name}"] = float(kl(q_min, law)) if law is not None else np.inf
        row[f"w2_{name}"] = float(w2(q_min, law)) if law is not None else np.inf
    return row


def ood_family(base_variances=None, eps: float = 0.005, t_min: float = 1e-4, schedule=None) -> pd.DataFrame:
    r"""The ID→OOD family ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base ``v·I`` for ``v`` from 20 (NFC_ID) down to
    1.1 (NFC_OOD), at fixed training-side ``ε`` (DSM excess; worst-case source misspecification,
    :func:`misspecification_errors`). Exact: inference-time, estimation
    and total error of the continuous-time naive SDE, the FKC limits with exact and perturbed scores, and the OOD
    measures ``max_i log rESS_i⁻¹`` (``inf`` once ``2Σ_i − Σ_Q`` fails to be PD) and ``max_i Q(∉ HDR_95(P_i))``."""
    schedule = schedule or VPSchedule()
    if base_variances is None:
        base_variances = np.geomspace(20.0, 1.1, 16)
    a1 = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
    a2 = Gaussian(np.zeros(2), np.diag([1.0, 10.0]))
    rows = []
    for v in base_variances:
        comp = compose([a1, a2, Gaussian.isotropic(np.zeros(2), float(v))], [1.0, 1.0, -1.0])
        q = comp.target
        ress = [ress_inverse(q, p) for p in comp.sources]
        row = {
            "base_variance": float(v),
            "target_variance": float(q.cov[0, 0]),
            "log_ress_max": float(np.log(max(ress))),
            "outside_hdr_max": max(fraction_outside_hdr(q, p) for p in comp.sources),
            "eps": eps,
        }
        row.update(_errors_row(comp, schedule, misspecification_errors(comp, schedule, eps), t_min))
        rows.append(row)
    return pd.DataFrame(rows)


def score_error_along_t(name: str = "NFC_OOD", eps: float = 0.1, gamma: float = 0.1, times=None,
                        schedule=None, dsm_eps: float = 0.005) -> pd.DataFrame:
    r"""Training-side ``‖δ_i‖_{L²(q^i_t)}`` beside sampling-side ``‖δ_i‖_{L²(Q_t)}`` and ``‖δ_i‖_{L²(π_t)}`` along
    ``t`` for three error models of a Gaussian setting (all exact; ``inf`` where the error is not square-integrable
    under the sampling law): worst-case source misspecification at DSM size ``dsm_eps`` (its per-``t`` norm varies
    with ``t``), and the precision and density-power errors calibrated to ``‖δ_i(·, t)‖_{L²(q^i_t)} = eps`` at
    every ``t``."""
    schedule = schedule or VPSchedule()
    times = np.geomspace(1e-4, 1.0, 25) if times is None else times
    s = paper_setting(name)
    comp = s.composition
    models = {
        "misspecification": misspecification_errors(comp, schedule, dsm_eps),
        "precision": [precision_error(src, schedule, eps, float(np.sign(w))) for src, w in zip(s.sources, s.weights)],
        "density_power": [DensityPowerError(src, schedule, eps, gamma) for src in s.sources],
    }
    rows = []
    for model, errors in models.items():
        for src_name, err in zip(("a1", "a2", "base"), errors):
            for t in times:
                q_t = comp.noised_target(schedule, float(t))
                pi_t = comp.path_composition(schedule, float(t)).target
                rows.append({
                    "setting": name, "model": model, "source": src_name, "t": float(t),
                    "train": float(err.training_norm(float(t))),
                    "under_target": float(err.norm_under(q_t, float(t))),
                    "under_path": float(err.norm_under(pi_t, float(t))),
                })
    return pd.DataFrame(rows)


def sensitivity_experiment(key, n_configs: int = 40, n: int = 20_000) -> pd.DataFrame:
    r"""The revision's sensitivity experiment [paper]: random 2-D Gaussian ``(a1, a2, base)`` with weights
    ``(1, 1, −1)``, sources refit by maximum likelihood on ``n`` draws, ``Q̂`` the exact composition of the refits;
    amplification ``A = TV(Q, Q̂)/Σ_i TV(P_i, P̂_i)`` against ``rESS^{−1/2} = max_i √(1 + χ²(Q‖P_i))``, and the
    first-order bound of :func:`theory.sensitivity.sensitivity_bound`. TV by adaptive cubature."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel()[-1])
    rows, tries = [], 0
    while len(rows) < n_configs and tries < 50 * n_configs:
        tries += 1
        sources = []
        for _ in range(3):
            q, _ = np.linalg.qr(rng.standard_normal((2, 2)))
            sources.append(Gaussian(rng.normal(size=2), (q * rng.uniform(0.3, 6.0, 2)) @ q.T))
        try:
            comp = compose(sources, [1.0, 1.0, -1.0])
        except ImproperCompositionError:
            continue
        k = jax.random.fold_in(key, tries)
        fits = [fit_gaussian_mle(jax.random.fold_in(k, j), src, n) for j, src in enumerate(sources)]
        try:
            res = sensitivity_bound(sources, fits, comp.weights)
        except ImproperCompositionError:
            continue
        rows.append({
            "config": len(rows), "n": n, "tv_target": res.tv_target, "bound": res.bound,
            "tv_sources_sum": float(res.tv_sources.sum()), "amplification": res.amplification,
            "amplification_l2": res.amplification_l2, "ress_factor": res.factor, "holds": res.holds,
        })
    return pd.DataFrame(rows)


def two_point_table(eps: float = 0.1) -> pd.DataFrame:
    """The two-point lower bound for every Gaussian paper setting at training-side size ``eps``."""
    rows = []
    for name in GAUSSIAN_SETTINGS:
        r = two_point_bound(paper_setting(name).composition, eps)
        rows.append({
            "setting": name, "eps": eps, "radius": r.radius, "train_norm_max": float(r.train_norms.max()),
            "source_mass_in_ball_max": float(r.source_mass_in_ball.max()), "target_mass_in_ball": r.target_mass_in_ball,
            "tv": r.tv, "kl": r.kl, "mean_gap": r.mean_gap, "tv_lower_bound": r.tv_lower_bound,
            "w2_lower_bound": r.w2_lower_bound,
        })
    return pd.DataFrame(rows)


def misspecification_errors(composition, schedule, eps: float):
    r"""The default training-side error model for Gaussian sources: every source misspecified at ``t = 0`` along
    the worst direction of :func:`theory.amplification.amplification`, calibrated so that the DSM excess (mean over
    sources) is ``eps²``, with the sign that maximizes ``KL(Q‖Q̂)``; returned as each source's exact
    :func:`~closed_form.perturbations.misspecification_error` (affine, so every law and limit stays exact)."""
    from theory.amplification import worst_case_misspecification

    fitted, _ = worst_case_misspecification(composition, schedule, eps)
    return [misspecification_error(s, f, schedule) for s, f in zip(composition.sources, fitted)]


def sweep_errors(composition, schedule, eps: float, key):
    r"""The error models of the FKC sweep at training-side size ``eps`` (``None`` per source when ``eps = 0``):
    source misspecification, so that every perturbed score is a true diffusion score. Gaussian sources:
    :func:`misspecification_errors` (worst case). Mixture sources:
    :func:`~verify.montecarlo.calibrated_mixture_misspecification` of each source (weights tilted,
    components spread and widened) with its own DSM excess ``eps²`` by Monte Carlo (standard error in
    ``calibration_se``), hence mean ``eps²`` over the sources."""
    from verify.montecarlo import calibrated_mixture_misspecification
    from verify.scores import exact_score

    if eps == 0:
        return [None] * len(composition.sources)
    if all(isinstance(s, Gaussian) for s in composition.sources):
        return misspecification_errors(composition, schedule, eps)
    return [calibrated_mixture_misspecification(s, schedule, eps, jax.random.fold_in(key, i),
                                                score=exact_score(s, schedule),
                                                fitted_score_of=lambda f: exact_score(f, schedule))
            for i, s in enumerate(composition.sources)]


def fkc_sweep(setting: str, eps: float, ks=(1, 4, 16, 64, 256), n_runs: int = 3, n_swarms: int = 1000,
              seed: int = 0, n_steps: int = 500, n_proj: int = 2000) -> pd.DataFrame:
    r"""Naive (``K = 1``) and FKC (``K > 1``) output error on one paper setting at training-side size ``eps``
    (``0`` = exact scores), ``n_runs`` independent runs of ``n_swarms`` outputs each [paper: 30 runs of 5000; the
    defaults here are smaller, so the standard errors are larger by about ``√(30·5000/(n_runs·n_swarms))``].

    Rows ``(setting, eps, K, run)`` with sliced W2 (``n_proj`` projections) and unbiased RBF MMD² (median
    heuristic) against ``n_swarms`` exact target draws (as the paper: equal sizes); ``K = 0`` rows hold the noise
    floor (two independent exact samples). For Gaussian settings, also exact rows: ``K = 1`` with ``exact = True`` is the Euler–Maruyama law
    (KL and W2 to ``Q``), and ``K = inf`` is FKC's exact limit on the same grid from the same start,
    :func:`closed_form.fkc_limit_law` with ``n_steps`` (KL and W2 to ``Q``), no Monte Carlo.
    """
    from closed_form.laws import euler_maruyama_law
    from verify.metrics import mmd2_unbiased, sliced_w2
    from verify.perturbed import perturbed_scores
    from verify.smc import fkc_sample

    schedule = VPSchedule()
    s = paper_setting(setting)
    comp = s.composition
    key = jax.random.key(seed)
    k_err, k_ref, k_floor, k_runs, k_proj = jax.random.split(key, 5)
    errors = sweep_errors(comp, schedule, eps, k_err)
    scores = perturbed_scores(comp, schedule, errors)
    ref = comp.sample_target(k_ref, n_swarms).samples
    rows = []

    def metrics(x, k):
        return {"sw2": sliced_w2(x, ref, k, n_proj), "mmd2": mmd2_unbiased(x, ref)}

    floor = comp.sample_target(k_floor, n_swarms).samples
    rows.append({"K": 0, "run": 0, "exact": False, **metrics(floor, k_proj)})
    for r in range(n_runs):
        for kk in ks:
            k = jax.random.fold_in(jax.random.fold_in(k_runs, r), kk)
            out = fkc_sample(k, scores, s.weights, schedule, n_swarms, int(kk), n_steps=n_steps)
            rows.append({"K": int(kk), "run": r, "exact": False, **metrics(out.samples, jax.random.fold_in(k_proj, r))})
    if all(isinstance(src, Gaussian) for src in comp.sources):
        q = comp.target
        delta = [weighted_field(w, e) for w, e in zip(comp.weights, errors) if e is not None]
        field = add_fields(comp.naive_field(schedule), *delta)
        em = euler_maruyama_law(field, schedule, Gaussian.standard(comp.dim), n_steps=n_steps)
        source_fields = [f if e is None else add_fields(f, e.field)
                         for f, e in zip(comp.source_fields(schedule), errors)]
        limit = fkc_limit_law(source_fields, comp.weights, schedule, Gaussian.standard(comp.dim),
                              n_steps=n_steps).law
        rows.append({"K": 1, "run": -1, "exact": True, "kl": float(kl(q, em)), "w2": float(w2(q, em))})
        rows.append({"K": np.inf, "run": -1, "exact": True, "kl": float(kl(q, limit)), "w2": float(w2(q, limit))})
    frame = pd.DataFrame(rows)
    frame.insert(0, "eps", float(eps))
    frame.insert(0, "setting", setting)
    return frame

