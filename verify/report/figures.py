"""The report's figures: seaborn plots of the saved CSVs, written as PDF and PNG.

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no pyplot state, no backend switching), so
they render the same in a headless run, a worker process and a notebook. Each plotting function takes a tidy
DataFrame (read back from an experiment's CSV) and returns the Figure; :func:`save_figure` writes it atomically.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure as _MatplotlibFigure
from matplotlib.ticker import NullFormatter

from verify.report.cache import atomic_write

FORMATS = ("pdf", "png")


class Figure(_MatplotlibFigure):
    """matplotlib's Figure, which also shows itself as a picture in Jupyter/IPython (``_repr_png_``).

    IPython registers its PNG formatter for Figures only when pyplot is imported, which nothing here does, so a plain
    Figure returned by a cell would print as ``<Figure size … with N Axes>``. Every figure of this module is built
    from this class; where pyplot's formatter is registered it takes precedence and the picture shows once.
    """

    def _repr_png_(self) -> bytes | None:
        if not self.axes:
            return None
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


class FigureError(ValueError):
    """A figure cannot be drawn from the given data (missing column, nothing positive on a log axis, …)."""


@dataclass(frozen=True)
class FigureSpec:
    """A figure of one experiment: ``figures/<name>.pdf`` and ``.png`` drawn by ``draw(frame) -> Figure``."""

    name: str
    caption: str
    draw: Callable[[pd.DataFrame], Figure]


def _require(frame: pd.DataFrame, *columns):
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        raise FigureError(f"the figure needs columns {missing}; the data has {list(frame.columns)}.")


def _grid(n_panels: int, width: float = 3.6, height: float = 3.0, max_cols: int = 3):
    cols = min(n_panels, max_cols)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _panels(frame: pd.DataFrame, col: str | None):
    if col is None:
        return [(None, frame)]
    return [(value, part) for value, part in frame.groupby(col, sort=False)]


def save_figure(fig: Figure, folder, name: str) -> list[Path]:
    """Write ``fig`` to ``folder/name.pdf`` and ``folder/name.png`` (150 dpi), each atomically."""
    paths = []
    for fmt in FORMATS:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150)
        paths.append(atomic_write(Path(folder) / f"{name}.{fmt}", buffer.getvalue()))
    return paths


def lines(frame: pd.DataFrame, *, x: str, y: str, hue: str | None = None, col: str | None = None,
          logx: bool = False, logy: bool = False, xlabel: str | None = None, ylabel: str | None = None,
          errorbar=None, floor: float | None = None, reference: pd.DataFrame | None = None,
          reference_label: str = "floor") -> Figure:
    """``y`` against ``x``, one line per ``hue``, one panel per ``col``. ``floor`` clips ``y`` from below before a
    log axis (values under it, e.g. exact zeros, are drawn at the floor and the panel says so).

    ``reference`` (columns ``y`` and ``col``) holds replicates of a level to compare with, such as a two-sample
    metric's own Monte Carlo floor: each panel draws their mean as a dashed horizontal line labelled
    ``reference_label`` and a band of ± 1.96 standard errors (the 95 % normal interval of the mean; the band's lower
    edge is left out on a log axis where it is not positive).
    """
    _require(frame, x, y, hue, col)
    if reference is not None:
        _require(reference, y, None, None, col)
    data = frame.copy()
    clipped = False
    if logy:
        if floor is None and (data[y] <= 0).any():
            raise FigureError(f"log axis for {y!r} but it has values ≤ 0; pass floor= to clip them visibly.")
        clipped = floor is not None and bool((data[y] < floor).any())
        if floor is not None:
            data[y] = data[y].clip(lower=floor)
    panels = _panels(data, col)
    fig, axes = _grid(len(panels))
    for ax, (value, part) in zip(axes, panels):
        dense = part[x].nunique() > 30  # markers only where they mark measured points, not a curve
        sns.lineplot(data=part, x=x, y=y, hue=hue, marker=None if dense else "o", errorbar=errorbar, ax=ax)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # short log ranges label minor ticks over each other
        if logy:
            ax.set_yscale("log")
        if value is not None:
            ax.set_title(f"{col} = {value}")
        if clipped:  # mark the floor only where values were raised to it
            ax.axhline(floor, color="0.6", lw=0.8, ls=":")
        if reference is not None:
            _reference_level(ax, reference if col is None else reference[reference[col] == value], y, logy,
                             reference_label)
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(ylabel or y)
    return fig


def _reference_level(ax, reference: pd.DataFrame, y: str, logy: bool, label: str) -> None:
    """A dashed line at the mean of ``reference[y]`` with a ± 1.96 SE band (see :func:`lines`)."""
    values = reference[y].to_numpy(dtype=float)
    if not len(values):
        raise FigureError(f"the reference level has no {y!r} value for one of the panels.")
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    lo, hi = mean - half, mean + half
    if logy and lo <= 0:
        lo = ax.get_ylim()[0]
    ax.axhline(mean, color="0.25", lw=1.0, ls="--", label=label)
    if half > 0:
        ax.axhspan(lo, hi, color="0.5", alpha=0.15, lw=0)
    legend = ax.get_legend()  # redraw the legend with the new entry, keeping seaborn's title (the hue's name)
    ax.legend(fontsize="small", title=legend.get_title().get_text() if legend is not None else None)


def error_vs_k(frame: pd.DataFrame, *, k: str, error: str, method: str | None = "method",
               col: str | None = "setting", ylabel: str | None = None, references=None,
               errorbar=("ci", 95)) -> Figure:
    """Error against the number of particles ``K`` per swarm (log-log), one line per method, one panel per
    setting; the band is a 95 % interval over the replicate runs.

    Parameters
    ----------
    method, col : str or None
        Columns naming the method (one line each) and the panel. ``None``, or the default name where the frame has
        no such column, draws one method (no legend entry per method) or one panel: a single-method frame needs no
        ``method`` column.
    references : mapping or DataFrame, optional
        Exact levels to draw as dashed horizontal lines with their labels, such as FKC's ``K → ∞`` limit or the exact
        naive law: a mapping ``{label: value}`` (the same on every panel) or a frame with columns ``label`` and
        ``value`` (and ``col`` for per-panel levels). A level that is not positive cannot be drawn on the log axis
        and raises :class:`FigureError`.
    """
    if method is not None and method not in frame.columns and method == "method":
        method = None
    if col is not None and col not in frame.columns and col == "setting":
        col = None
    refs = _reference_frame(references, col)
    fig = lines(frame, x=k, y=error, hue=method, col=col, logx=True, logy=True, errorbar=errorbar, ylabel=ylabel)
    if refs is not None:
        panels = [value for value, _ in _panels(frame, col)]
        styles = ("--", "-.", ":", (0, (5, 1)))
        for ax, value in zip(fig.axes, panels):
            part = refs if col is None or col not in refs.columns else refs[refs[col] == value]
            for j, (label, level) in enumerate(zip(part["label"], part["value"])):
                ax.axhline(float(level), color="0.25", lw=1.0, ls=styles[j % len(styles)], label=str(label))
            legend = ax.get_legend()
            ax.legend(fontsize="small", title=legend.get_title().get_text() if legend is not None else None)
    return fig


def _reference_frame(references, col):
    """``references`` of :func:`error_vs_k` as a frame with ``label``, ``value`` (and ``col``), checked."""
    if references is None:
        return None
    if isinstance(references, pd.DataFrame):
        refs = references
        _require(refs, "label", "value")
    else:
        try:
            refs = pd.DataFrame({"label": list(references), "value": [references[key] for key in references]})
        except TypeError:
            raise FigureError("references must be a mapping {label: value} or a DataFrame with columns 'label' and "
                              f"'value', got {type(references).__name__}.") from None
    values = refs["value"].to_numpy(dtype=float)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise FigureError(f"reference levels must be finite and positive on the log axis, got {values.tolist()}.")
    return refs


def measured_vs_bound(frame: pd.DataFrame, *, measured: str, bound: str, hue: str | None = None,
                      style: str | None = None) -> Figure:
    """Measured value against its bound on log-log axes with the line ``y = x``: every point must lie on or below it."""
    _require(frame, measured, bound, hue, style)
    data = frame[np.isfinite(frame[bound]) & (frame[measured] > 0) & (frame[bound] > 0)]
    if data.empty:
        raise FigureError(f"no row has a finite positive {bound!r} and a positive {measured!r} to plot.")
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    sns.scatterplot(data=data, x=bound, y=measured, hue=hue, style=style, ax=ax)
    lo = float(min(data[measured].min(), data[bound].min()))
    hi = float(max(data[measured].max(), data[bound].max()))
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return fig


def scatter_2d(frame: pd.DataFrame, *, x: str = "x0", y: str = "x1", hue: str = "distribution",
               col: str = "setting", size: float = 4.0) -> Figure:
    """2-D samples, one colour per ``hue`` (target, sources, samplers), one panel per ``col``."""
    _require(frame, x, y, hue, col)
    panels = _panels(frame, col)
    fig, axes = _grid(len(panels), width=3.6, height=3.4)
    for ax, (value, part) in zip(axes, panels):
        sns.scatterplot(data=part, x=x, y=y, hue=hue, s=size, alpha=0.5, linewidth=0, ax=ax)
        ax.set_title(f"{col} = {value}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize="x-small", markerscale=2, loc="upper right")
    return fig


def stacked_split(frame: pd.DataFrame, *, x: str, parts: tuple[str, ...], total: str | None = None,
                  col: str | None = None, logx: bool = False, logy: bool = True, xlabel: str | None = None,
                  ylabel: str = "error") -> Figure:
    """Error components ``parts`` (e.g. inference-time and estimation error) and their ``total`` against ``x``
    (e.g. the OOD measure), one panel per ``col``."""
    value_columns = list(parts) + ([total] if total else [])
    _require(frame, x, col, *value_columns)
    id_vars = [x] + ([col] if col else [])
    long = frame.melt(id_vars=id_vars, value_vars=value_columns, var_name="component", value_name=ylabel)
    return lines(long, x=x, y=ylabel, hue="component", col=col, logx=logx, logy=logy, xlabel=xlabel,
                 floor=1e-16 if logy else None)


_RESS_BOUNDS = (("bound_exact", r"exact $\mathrm{rESS}^{-1/2}$"),
                ("bound_estimate", r"estimated $\mathrm{rESS}^{-1/2}$"))


def amplification_vs_metric(frame: pd.DataFrame, *, measured: str = "A",
                            bounds: tuple[tuple[str, str], ...] = _RESS_BOUNDS, hue: str = "family") -> Figure:
    r"""``measured`` (the amplification ``A``) against each bound column side by side, log-log, with the diagonal
    ``y = x`` (points on or below it satisfy ``A ≤ rESS^{−1/2}``). Infinite bounds are drawn as triangles at the
    right edge of their panel (1.5× the largest finite value of either panel), labelled ``∞``."""
    _require(frame, measured, hue, *(b for b, _ in bounds))
    finite = np.concatenate([frame[b].to_numpy()[np.isfinite(frame[b].to_numpy())] for b, _ in bounds])
    if finite.size == 0:
        raise FigureError("no finite bound to plot.")
    edge = 1.5 * float(finite.max())
    lo = float(min(finite.min(), frame[measured].min()))
    fig = Figure(figsize=(4.4 * len(bounds), 4.0), layout="constrained")
    axes = fig.subplots(1, len(bounds), squeeze=False, sharey=True).ravel()
    palette = dict(zip(pd.unique(frame[hue]), sns.color_palette("tab10", frame[hue].nunique())))
    for ax, (bound, label) in zip(axes, bounds):
        inf = ~np.isfinite(frame[bound].to_numpy())
        sns.scatterplot(data=frame[~inf], x=bound, y=measured, hue=hue, palette=palette, ax=ax, s=22,
                        legend=ax is axes[-1])
        if inf.any():
            ax.scatter(np.full(int(inf.sum()), edge), frame.loc[inf, measured],
                       c=[palette[f] for f in frame.loc[inf, hue]], marker=">", s=22)
            ax.axvline(edge, color="0.7", lw=0.8, ls=":")
            ax.annotate("∞", (edge, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom")
        ax.plot([lo, edge], [lo, edge], color="0.3", lw=1, ls="--", label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(measured)
    axes[-1].legend(fontsize="x-small", loc="upper left")
    return fig


def heatmap(frame: pd.DataFrame, *, x: str, y: str, value: str, col: str | None = None, x_order=None, y_order=None,
            log: bool = False, fmt: str = ".2g", xlabel: str | None = None, ylabel: str | None = None,
            value_label: str | None = None) -> Figure:
    """The mean of ``value`` over the rows of each (``y``, ``x``) pair as an annotated heat map, one panel per ``col``.

    ``x_order`` / ``y_order`` fix the order of the columns / rows (the values' order of appearance by default); a pair
    without rows is an error, not a blank cell. ``log`` colours on a logarithmic scale, shared by the panels (every
    mean must then be positive); otherwise the colour scale is shared too, so panels compare at a glance.
    """
    from matplotlib.colors import LogNorm, Normalize

    _require(frame, x, y, value, col)
    panels = _panels(frame, col)
    tables = []
    for key, part in panels:
        table = part.groupby([y, x], sort=False)[value].mean().unstack(x)
        table = table.reindex(index=list(y_order) if y_order is not None else list(pd.unique(part[y])),
                              columns=list(x_order) if x_order is not None else list(pd.unique(part[x])))
        if table.isna().any().any():
            raise FigureError(f"heat map of {value!r}: some ({y}, {x}) pairs have no rows"
                              + (f" in {col} = {key}" if col else "") + ".")
        tables.append(table)
    lo = min(float(t.min().min()) for t in tables)
    hi = max(float(t.max().max()) for t in tables)
    if log and lo <= 0:
        raise FigureError(f"log colour scale for {value!r} but a mean is ≤ 0 ({lo:g}).")
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    fig, axes = _grid(len(panels), width=4.2, height=3.4)
    for ax, (key, _), table in zip(axes, panels, tables):
        sns.heatmap(table, annot=True, fmt=fmt, norm=norm, cmap="viridis", ax=ax, annot_kws={"fontsize": 7},
                    cbar_kws={"label": value_label or value})
        if key is not None:
            ax.set_title(f"{col} = {key}")
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(ylabel or y)
    return fig
