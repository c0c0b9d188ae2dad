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


def test_reference_level_is_drawn_per_panel_at_the_replicates_mean():
    """The floor line of each panel sits at the mean of that panel's reference replicates (computed here by hand),
    and its band spans ± 1.96 standard errors."""
    ref = pd.DataFrame({"setting": ["A"] * 3 + ["B"] * 3, "w2": [0.1, 0.2, 0.3, 0.05, 0.05, 0.08]})
    fig = lines(sweep(), x="K", y="w2", hue="method", col="setting", logx=True, logy=True, reference=ref,
                reference_label="floor")
    for ax, values in zip(fig.axes, ([0.1, 0.2, 0.3], [0.05, 0.05, 0.08])):
        (level,) = [ln for ln in ax.lines if ln.get_label() == "floor"]
        assert level.get_ydata()[0] == pytest.approx(sum(values) / 3, rel=1e-12)
        half = 1.96 * np.std(values, ddof=1) / np.sqrt(3)
        band = ax.patches[-1]  # axhspan: a rectangle in data coordinates along y
        assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((sum(values) / 3 - half, sum(values) / 3 + half), rel=1e-6)
    with pytest.raises(FigureError, match="no 'w2' value"):
        lines(sweep(), x="K", y="w2", col="setting", reference=ref[ref.setting == "A"])
    with pytest.raises(FigureError, match="needs columns"):
        lines(sweep(), x="K", y="w2", col="setting", reference=ref.drop(columns="setting"))


def test_error_vs_k_draws_exact_reference_lines_and_a_single_method_frame():
    """One method needs no ``method`` column; exact levels (FKC's K → ∞ limit, the exact naive law) are dashed lines
    at the given values, per panel when the references name the panel."""
    one = sweep()[lambda f: f["method"] == "FKC"].drop(columns="method")
    fig = error_vs_k(one, k="K", error="w2", references={"K → ∞ limit": 0.01, "naive (exact)": 0.5})
    assert len(fig.axes) == 2
    for ax in fig.axes:
        levels = {ln.get_label(): ln.get_ydata()[0] for ln in ax.lines if ln.get_label() in ("K → ∞ limit",
                                                                                           "naive (exact)")}
        assert levels == {"K → ∞ limit": 0.01, "naive (exact)": 0.5}
    per_panel = pd.DataFrame({"setting": ["A", "B"], "label": ["limit", "limit"], "value": [0.02, 0.03]})
    fig = error_vs_k(one[["setting", "K", "run", "w2"]], k="K", error="w2", method=None, references=per_panel)
    for ax, level in zip(fig.axes, (0.02, 0.03)):
        (line,) = [ln for ln in ax.lines if ln.get_label() == "limit"]
        assert line.get_ydata()[0] == level
    single = error_vs_k(one[one["setting"] == "A"].drop(columns="setting"), k="K", error="w2", references={"a": 1.0})
    assert len(single.axes) == 1
    with pytest.raises(FigureError, match="positive"):
        error_vs_k(one, k="K", error="w2", references={"zero": 0.0})
    with pytest.raises(FigureError, match="needs columns"):
        error_vs_k(one, k="K", error="w2", method="scheme")  # a named method column that is absent is an error
