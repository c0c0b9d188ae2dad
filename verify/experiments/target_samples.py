"""Exact draws of each paper setting's target and sources, for the report's scatter figure."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, as_setting
from verify.report.figures import FigureSpec, scatter_2d
from verify.report.registry import Experiment, grid


def setting_samples(setting: str, n_samples: int, seed: int) -> pd.DataFrame:
    """``n_samples`` exact draws of the target and of each source of ``setting`` (columns ``distribution``, ``x0``,
    ``x1``), for scatter plots."""
    s = setting = as_setting(setting)
    keys = jax.random.split(jax.random.key(seed), 1 + len(s.sources))
    # Sources first, target last: scatter plots draw in row order, so the target stays visible on top.
    parts = [(name, np.asarray(source.sample(k, int(n_samples))))
             for name, source, k in zip(("P_a1", "P_a2", "P_0"), s.sources, keys[1:])]
    parts.append(("target Q", np.asarray(s.composition.sample_target(keys[0], int(n_samples)).samples)))
    return pd.concat([pd.DataFrame({"setting": setting.name, "distribution": name, "x0": x[:, 0], "x1": x[:, 1]})
                      for name, x in parts], ignore_index=True)


# ---------------------------------------------------------------------------------------------- registration
EXPERIMENT = Experiment(
    name="target_samples",
    title="Draws of each paper setting's target and sources (for the scatter figure)",
    compute=setting_samples,
    default=grid(setting=SETTING_NAMES, n_samples=(1_500,)),
    quick=grid(setting=("FC_OOD", "GMM_OOD"), n_samples=(300,)),
    figures=(FigureSpec(
        "target_samples",
        "Exact draws of the composed target and of its sources in each paper setting.",
        lambda frame: scatter_2d(frame, hue="distribution", col="setting"),
    ),),
)
