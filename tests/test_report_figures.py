"""The report's figure functions draw from tidy frames, write PDF and PNG atomically, and refuse bad data loudly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from verify.report.figures import FigureError, error_vs_k, lines, measured_vs_bound, save_figure, scatter_2d, stacked_split


def sweep():
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"setting": s, "method": m, "K": k, "run": r, "w2": (1 + rng.random()) / k}
                         for s in ("A", "B") for m in ("naive", "FKC") for k in (1, 4, 16) for r in range(3)])


def test_each_figure_kind_draws_and_saves(tmp_path):
    rng = np.random.default_rng(1)
    bound = pd.DataFrame({"bound": np.geomspace(1e-3, 1, 20), "family": "x"})
    bound["measured"] = bound["bound"] * rng.uniform(0.1, 1.0, 20)
    points = pd.DataFrame({"setting": "A", "distribution": np.repeat(["target", "naive"], 50),
                           "x0": rng.standard_normal(100), "x1": rng.standard_normal(100)})
    family = pd.DataFrame({"ood": np.linspace(0, 3, 8), "inference": np.full(8, 1e-3),
                           "estimation": np.geomspace(1e-4, 1, 8)})
    family["total"] = family.inference + family.estimation
    figures = {
        "k": error_vs_k(sweep(), k="K", error="w2"),
        "bound": measured_vs_bound(bound, measured="measured", bound="bound", hue="family"),
        "scatter": scatter_2d(points),
        "split": stacked_split(family, x="ood", parts=("inference", "estimation"), total="total"),
    }
    assert len(figures["k"].axes) == 2  # one panel per setting
    line = figures["bound"].axes[0].lines[-1]
    assert line.get_label() == "y = x"
    for name, fig in figures.items():
        for path in save_figure(fig, tmp_path, name):
            assert path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.{e}" for n in figures for e in ("pdf", "png"))


def test_bad_data_is_refused():
    frame = pd.DataFrame({"t": [0.1, 0.2], "gap": [0.0, 1e-3]})
    with pytest.raises(FigureError, match="needs columns"):
        lines(frame, x="t", y="missing")
    with pytest.raises(FigureError, match="≤ 0"):
        lines(frame, x="t", y="gap", logy=True)
    lines(frame, x="t", y="gap", logy=True, floor=1e-17)  # zeros drawn visibly at a stated floor
    with pytest.raises(FigureError, match="finite positive"):
        measured_vs_bound(pd.DataFrame({"m": [1.0], "b": [np.inf]}), measured="m", bound="b")
