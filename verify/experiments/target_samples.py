"""Exact draws of each setting's target and sources, for the report's scatter figure (first two coordinates)."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import SETTING_NAMES, as_setting
from verify.analysis.cases import require_scatter, scatter_reason
from verify.report.figures import FigureSpec, scatter_2d
from verify.report.registry import Experiment, grid


def setting_samples(setting, n_samples: int, seed: int) -> pd.DataFrame:
    """``n_samples`` exact draws of the target and of each source of ``setting`` (a :class:`closed_form.Setting`,
    a paper setting's name or a spec; any dimension ``d ≥ 2``), for scatter plots: columns ``setting``,
    ``distribution`` (the source's label, or ``"target Q"``), ``x0``, ``x1`` — the first two coordinates.

    Raises
    ------
    ShapeMismatchError
        For a one-dimensional setting (a scatter needs two coordinates).
    """
    s = setting = as_setting(setting)
    require_scatter(s, "setting_samples")
    keys = jax.random.split(jax.random.key(seed), 1 + len(s.sources))
    # Sources first, target last: scatter plots draw in row order, so the target stays visible on top.
    parts = [(label, np.asarray(source.sample(k, int(n_samples))))
             for label, source, k in zip(s.labels, s.sources, keys[1:])]
    parts.append(("target Q", np.asarray(s.composition.sample_target(keys[0], int(n_samples)).samples)))
    return pd.concat([pd.DataFrame({"setting": setting.name, "distribution": name, "x0": x[:, 0], "x1": x[:, 1]})
                      for name, x in parts], ignore_index=True)


# ---------------------------------------------------------------------------------------------- registration
EXPERIMENT = Experiment(
    name="target_samples",
    title="Draws of each setting's target and sources (for the scatter figure)",
    compute=setting_samples,
    applies_to=scatter_reason,
    default=grid(setting=SETTING_NAMES, n_samples=(1_500,)),
    quick=grid(setting=("FC_OOD", "GMM_OOD"), n_samples=(300,)),
    figures=(FigureSpec(
        "target_samples",
        "Exact draws of the composed target and of its sources in each setting: the first two coordinates "
        "(x0, x1) of each draw (all of it in the paper's two-dimensional settings).",
        lambda frame: scatter_2d(frame, hue="distribution", col="setting"),
    ),),
)
