r"""What the authors' clip of the FKC weight rate costs with exact scores.

:func:`fkc_clip_cost` runs ``fkc_sample(variant="authors")`` twice on the same keys, with the authors' clip
``g_clip = 15`` and without it, so that the paired difference of the output error isolates the clip; and, for
Gaussian settings, measures how often the clip fires: the fraction of draws of the path ``π_{t_{k+1}}`` (the law
FKC's weighted particles follow) where ``|g| > g_clip``, averaged over the grid.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, paper_setting, reverse_time_grid
from verify.samplers.discretization import composed
from verify.experiments.metrics import mmd2_unbiased, sliced_w2
from verify.samplers.scores import source_scores
from verify.samplers.smc import AUTHORS_G_CLIP, fkc_log_weight_rate, fkc_sample


def clip_firing_fraction(composition, schedule, n_steps: int = 500, g_clip: float = AUTHORS_G_CLIP,
                         n_draws: int = 2000, key=None, every: int = 5) -> tuple[float, float]:
    r"""Mean over the grid times ``t_{k+1}`` (every ``every``-th of them, a systematic subsample) of
    ``P_{π_t}(|g(x, t)| > g_clip)`` with exact scores, by Monte Carlo on ``n_draws`` exact draws of ``π_t`` per time
    (Gaussian sources); returns ``(fraction, standard error)``."""
    key = jax.random.key(0) if key is None else key
    scores = source_scores(composition, schedule)
    weights = tuple(float(w) for w in composition.weights)
    fractions = []
    for j, t in enumerate(reverse_time_grid(schedule, n_steps)[1::every]):
        law = composition.path_composition(schedule, float(t)).target
        x = law.sample(jax.random.fold_in(key, j), n_draws)
        s, s_comp = composed(scores, weights, x, t)
        g = fkc_log_weight_rate(s, s_comp, weights, schedule.beta(t), composition.dim)
        fractions.append(float(jnp.mean((jnp.abs(g) > g_clip).astype(jnp.float64))))
    p = np.asarray(fractions)
    return float(p.mean()), float(math.sqrt(np.sum(p * (1 - p) / n_draws)) / len(p))


def fkc_clip_cost(setting: str, n_particles: int = 16, n_runs: int = 3, n_swarms: int = 1000, seed: int = 0,
                  n_steps: int = 500, n_proj: int = 2000) -> pd.DataFrame:
    r"""What the clip costs on one paper setting, with exact scores.

    Gaussian settings give one row ``kind = "firing"``: :func:`clip_firing_fraction` (exact path law, Monte Carlo
    over its draws). With ``n_runs > 0``, rows ``kind = "paired"`` per run: MMD² (unbiased, RBF, median heuristic)
    and sliced W2 to ``n_swarms`` exact target draws of the authors' FKC variant with ``g_clip = 15`` and without a
    clip, on the same keys, ``K = n_particles``, and their paired difference."""
    schedule = VPSchedule()
    s = paper_setting(setting)
    comp = s.composition
    scores = source_scores(comp, schedule)
    key = jax.random.key(seed)
    k_ref, k_runs, k_proj, k_fire = jax.random.split(key, 4)
    rows = []
    if all(isinstance(src, Gaussian) for src in comp.sources):
        fire, fire_se = clip_firing_fraction(comp, schedule, n_steps, key=k_fire)
        rows.append({"setting": setting, "kind": "firing", "run": -1, "fire_fraction": fire,
                     "fire_fraction_se": fire_se})
    ref = comp.sample_target(k_ref, n_swarms).samples if n_runs else None
    for r in range(n_runs):
        k = jax.random.fold_in(k_runs, r)
        kp = jax.random.fold_in(k_proj, r)
        row = {"setting": setting, "kind": "paired", "run": r, "K": n_particles}
        for label, clip in (("clip", AUTHORS_G_CLIP), ("free", None)):
            out = fkc_sample(k, scores, s.weights, schedule, n_swarms, n_particles, n_steps=n_steps,
                             variant="authors", g_clip=clip)
            row[f"mmd2_{label}"] = mmd2_unbiased(out.samples, ref)
            row[f"sw2_{label}"] = sliced_w2(out.samples, ref, kp, n_proj)
        row["mmd2_diff"] = row["mmd2_clip"] - row["mmd2_free"]
        row["sw2_diff"] = row["sw2_clip"] - row["sw2_free"]
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["clip_firing_fraction", "fkc_clip_cost"]
