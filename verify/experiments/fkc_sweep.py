r"""Naive vs FKC × K per paper setting, with exact scores and with training-side error ``ε``: sliced W2 and MMD² of
the samplers' outputs against exact target draws, and for Gaussian settings the exact Euler–Maruyama law and FKC's
exact ``K → ∞`` limit on the same grid. Monte Carlo rows state their runs; exact rows carry no Monte Carlo error.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, fkc_limit_law, paper_setting
from closed_form.divergences import kl, w2
from closed_form.fields import add_fields
from closed_form.perturbations import weighted_field
from verify.experiments.error_models import misspecification_errors


def sweep_errors(composition, schedule, eps: float, key):
    r"""The error models of the FKC sweep at training-side size ``eps`` (``None`` per source when ``eps = 0``):
    source misspecification, so that every perturbed score is a true diffusion score. Gaussian sources:
    :func:`misspecification_errors` (worst case). Mixture sources:
    :func:`~verify.experiments.montecarlo.calibrated_mixture_misspecification` of each source (weights tilted,
    components spread and widened) with its own DSM excess ``eps²`` by Monte Carlo (standard error in
    ``calibration_se``), hence mean ``eps²`` over the sources."""
    from verify.experiments.montecarlo import calibrated_mixture_misspecification
    from verify.samplers.scores import exact_score

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
    heuristic) against ``n_swarms`` exact target draws (as the paper: equal sizes); ``K = 0`` rows hold the metric's
    floor, one per run: the same metric between an independent exact target sample of the same size and the same
    reference. For Gaussian settings, also exact rows: ``K = 1`` with ``exact = True`` is the Euler–Maruyama law
    (KL and W2 to ``Q``), and ``K = inf`` is FKC's exact limit on the same grid from the same start,
    :func:`closed_form.fkc_limit_law` with ``n_steps`` (KL and W2 to ``Q``), no Monte Carlo.
    """
    from closed_form.laws import euler_maruyama_law
    from verify.experiments.metrics import mmd2_unbiased, sliced_w2
    from verify.samplers.perturbed import perturbed_scores
    from verify.samplers.smc import fkc_sample

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

    for r in range(n_runs):
        for kk in ks:
            k = jax.random.fold_in(jax.random.fold_in(k_runs, r), kk)
            out = fkc_sample(k, scores, s.weights, schedule, n_swarms, int(kk), n_steps=n_steps)
            rows.append({"K": int(kk), "run": r, "exact": False, **metrics(out.samples, jax.random.fold_in(k_proj, r))})
        # The metric's own floor, once per run and after the samplers' rows (tables keep the data's order): an
        # independent exact target sample of the output's size against the same reference, measured with the run's
        # projections — what a perfect sampler would score.
        floor = comp.sample_target(jax.random.fold_in(k_floor, r), n_swarms).samples
        rows.append({"K": 0, "run": r, "exact": False, **metrics(floor, jax.random.fold_in(k_proj, r))})
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
