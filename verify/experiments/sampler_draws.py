"""Draws of the samplers beside exact draws of their target, for the report's scatter figure.

:func:`sampler_draws` runs, with exact source scores, the naive composed reverse SDE and the Feynman–Kac corrector
(:func:`verify.fkc_sample`, the paper's systematic resampling at every step, from ``N(0, I)``) on a setting (the
paper's or a user's: Gaussian or mixture sources, any dimension ``d ≥ 2``), and returns the first two coordinates of
their draws with exact draws of ``Q``, in long format.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, VPSchedule, as_setting
from verify.analysis.cases import require_scatter, scatter_reason
from verify.report.figures import FigureSpec, scatter_2d
from verify.report.registry import Experiment, grid
from verify.samplers.naive import naive_sde_sample
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_sample


def sampler_draws(setting, n_samples: int, n_particles: int, n_steps: int, seed: int) -> pd.DataFrame:
    """``n_samples`` draws each of the target ``Q``, the naive SDE and FKC with ``n_particles`` per swarm (one output
    per swarm), ``n_steps`` Euler–Maruyama steps on the paper's VP schedule. Columns ``setting``, ``distribution``,
    ``x0``, ``x1`` (the first two coordinates of each draw); the target rows come last so that plots draw them on
    top.

    Raises
    ------
    ShapeMismatchError
        For a one-dimensional setting (a scatter needs two coordinates).
    """
    s = setting = as_setting(setting)
    require_scatter(s, "sampler_draws")
    comp = s.composition
    schedule = VPSchedule()
    scores = source_scores(comp, schedule)
    k_naive, k_fkc, k_target = jax.random.split(jax.random.key(seed), 3)
    naive = naive_sde_sample(k_naive, scores, comp.weights, schedule, int(n_samples), n_steps=int(n_steps))
    fkc = fkc_sample(k_fkc, scores, comp.weights, schedule, n_swarms=int(n_samples), n_particles=int(n_particles),
                     n_steps=int(n_steps)).samples
    target = comp.sample_target(k_target, int(n_samples)).samples
    parts = [("naive SDE", naive), (f"FKC K={int(n_particles)}", fkc), ("target Q", target)]
    return pd.concat([pd.DataFrame({"setting": setting.name, "distribution": name, "x0": np.asarray(x)[:, 0],
                                    "x1": np.asarray(x)[:, 1]}) for name, x in parts], ignore_index=True)


# ---------------------------------------------------------------------------------------------- registration
EXPERIMENT = Experiment(
    name="sampler_draws",
    title="Naive SDE and FKC draws (exact scores) beside exact target draws, per setting",
    compute=sampler_draws,
    applies_to=scatter_reason,
    default=grid(setting=SETTING_NAMES, n_samples=(1_500,), n_particles=(32,), n_steps=(500,)),
    quick=grid(setting=("GMM_OOD",), n_samples=(200,), n_particles=(4,), n_steps=(50,)),
    figures=(FigureSpec(
        "sampler_draws",
        "Exact draws of the target against the naive composed SDE and FKC (exact scores, N(0, I) start): the first "
        "two coordinates (x0, x1) of each draw (all of it in the paper's two-dimensional settings).",
        lambda frame: scatter_2d(frame, hue="distribution", col="setting"),
    ),),
)
