r"""LaTeX tables built from the report's saved CSVs, with pandas' Styler.

A :class:`TableSpec` says which columns of an experiment's CSV to show and how; :func:`render_table` reads the CSV
(the report passes the saved file, never the in-memory results, so a table can always be rebuilt from what was
saved) or takes a DataFrame, and returns booktabs LaTeX with a caption and a label. Conventions:

* numbers: four significant digits; scientific notation ``m\times10^{e}`` below ``1e-3`` and from ``1e5`` on;
  ``\infty`` for infinities; a NaN is an error unless the column declares what to show instead;
* Monte Carlo cells: ``mean ± standard error``, with the standard error over the replicate runs
  (``std(ddof=1)/√n``, ``n ≥ 2``) or taken from a column that holds it; the mean is rounded to the standard error's
  second significant digit;
* headers, row labels and captions are escaped (:func:`latex_text`), including the Unicode symbols of this project's
  column names, so every table compiles with ``pdflatex`` and ``\usepackage{booktabs}`` alone; a caption written in
  LaTeX passes through unescaped with ``TableSpec(caption_latex=True)``;
* each row-label column has its header over it (``TableSpec.index_header``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from verify.report.cache import atomic_write
from verify.report.latex import PREAMBLE, LatexError, fit_to_width, latex_text  # noqa: F401 (re-exported)

LATEX_PREAMBLE = PREAMBLE  # article, booktabs, graphicx (the width rule), amsmath


class TableError(ValueError):
    """A table cannot be built as specified (missing column, NaN without a declared stand-in, too few replicates)."""


def _decimals_for(x: float, significant: int) -> int:
    return max(significant - 1 - math.floor(math.log10(abs(x))), 0)


def _scientific(x: float, significant: int) -> tuple[str, int]:
    exponent = math.floor(math.log10(abs(x)))
    mantissa = x / 10.0**exponent
    if round(abs(mantissa), significant - 1) >= 10.0:  # 9.9996 rounds up to 10.000: carry into the exponent
        exponent += 1
        mantissa = x / 10.0**exponent
    return f"{mantissa:.{significant - 1}f}", exponent


def _uses_scientific(x: float) -> bool:
    return x != 0 and not (1e-3 <= abs(x) < 1e5)


def format_number(x, significant: int = 4) -> str:
    r"""A float as LaTeX: ``significant`` digits, ``m\times10^{e}`` for ``|x| < 1e-3`` or ``|x| ≥ 1e5``,
    ``\infty`` for infinities. NaN raises :class:`TableError`."""
    x = float(x)
    if math.isnan(x):
        raise TableError("a NaN reached a table cell that declares no stand-in for missing values.")
    if math.isinf(x):
        return r"$\infty$" if x > 0 else r"$-\infty$"
    if x == 0:
        return "0"
    if _uses_scientific(x):
        mantissa, exponent = _scientific(x, significant)
        return rf"${mantissa}\times10^{{{exponent}}}$"
    # Decimals from the value rounded to ``significant`` digits: 0.99999 rounds up to 1.000, not 1.0000.
    rounded = float(f"{x:.{significant - 1}e}")
    if _uses_scientific(rounded):  # 99999.9 rounds up to 1.000e5
        mantissa, exponent = _scientific(rounded, significant)
        return rf"${mantissa}\times10^{{{exponent}}}$"
    text = f"{x:.{_decimals_for(rounded, significant)}f}"
    return f"${text}$" if x < 0 else text


def particle_label(k: float) -> str:
    """A particle count ``K`` as a table label: ``"floor"`` for 0 (the metrics' noise floor), ``"∞ (limit)"`` for ∞."""
    if k == 0:
        return "floor"
    return "∞ (limit)" if np.isinf(k) else str(int(k))


def format_mean_se(mean, se, se_digits: int = 2) -> str:
    r"""``mean ± se`` as LaTeX, the mean rounded to the standard error's ``se_digits``-th significant digit, in
    scientific notation ``(m ± s)\times10^{e}`` (one shared exponent) when the mean is small or large."""
    mean, se = float(mean), float(se)
    if math.isnan(mean) or math.isnan(se):
        raise TableError(f"mean ± standard error cell got mean={mean}, se={se}; both must be numbers.")
    if se < 0 or math.isinf(se):
        raise TableError(f"standard error must be finite and non-negative, got {se}.")
    if se == 0:  # an exact value among Monte Carlo ones: shown as the number alone
        return format_number(mean)
    scale_of = abs(mean) if mean != 0 else se
    if _uses_scientific(scale_of) or _uses_scientific(se) and abs(mean) < se:
        exponent = math.floor(math.log10(max(abs(mean), se)))
        m, s = mean / 10.0**exponent, se / 10.0**exponent
        decimals = max(se_digits - 1 - math.floor(math.log10(s)), 0)
        return rf"$({m:.{decimals}f} \pm {s:.{decimals}f})\times10^{{{exponent}}}$"
    decimals = max(se_digits - 1 - math.floor(math.log10(se)), 0)
    return rf"${mean:.{decimals}f} \pm {se:.{decimals}f}$"


@dataclass(frozen=True)
class Column:
    r"""One shown column of a table.

    Parameters
    ----------
    source : str
        The CSV column. For ``kind="mean_se"`` without ``se``, the column whose replicate rows are averaged.
    header : str, optional
        Header text (escaped); ``source`` when omitted.
    kind : {"number", "integer", "text", "flag", "mean_se", "mean_sd"}
        ``mean_sd`` shows ``mean ± standard deviation`` over the replicate runs (``std(ddof=1)``, ``n ≥ 2``), the
        spread of one run rather than the uncertainty of the mean (as papers that print ``mean ± std`` do).
    se : str, optional
        For ``kind="mean_se"``: a CSV column holding the standard error already (no replicate averaging then).
    missing : str, optional
        LaTeX to show for a NaN. Without it a NaN is an error: nothing in a table is silently missing.
    significant : int
        Significant digits of ``number`` cells.
    """

    source: str
    header: str | None = None
    kind: str = "number"
    se: str | None = None
    missing: str | None = None
    significant: int = 4

    def __post_init__(self):
        if self.kind not in {"number", "integer", "text", "flag", "mean_se", "mean_sd"}:
            raise TableError(f"Column kind {self.kind!r} is not one of number, integer, text, flag, mean_se, mean_sd.")
        if self.kind == "mean_sd" and self.se is not None:
            raise TableError(f"Column {self.source!r}: kind mean_sd computes the standard deviation over the "
                             "replicates; it takes no se column.")

    @property
    def title(self) -> str:
        return self.source if self.header is None else self.header


@dataclass(frozen=True)
class TableSpec:
    """How to turn one experiment's CSV into LaTeX table(s).

    Parameters
    ----------
    name : str
        File stem: ``tables/<name>.tex`` (``tables/<name>_<value>.tex`` per value of ``split_by``).
    caption : str
    columns : tuple of Column
        The value columns.
    index : tuple of str
        CSV columns that label the rows (shown first, as text).
    pivot : str, optional
        A CSV column whose values become column groups: the paper's layout (rows ``K``, columns exact / training
        size). ``pivot_header`` titles the group.
    replicate : str, optional
        The CSV column numbering independent runs; ``mean_se`` columns average over it, other columns must be
        constant over it.
    split_by : str, optional
        One table per value of this column (e.g. one per setting).
    where : dict, optional
        Keep only rows whose column equals the value (or is one of the values, for a tuple).
    transpose : bool
        Quantities as rows, items as columns (for wide tables of few items).
    font_size : str, optional
        A LaTeX size command name (``"small"``, ``"footnotesize"``) applied inside the table float.
    index_header : str or tuple of str, optional
        Header of the row labels (escaped): one per ``index`` column (a tuple, or a string of that many parts joined
        by ``' / '``), each over its own column; a single string over several index columns spans them all
        (``\\multicolumn``). The ``index`` column names by default.
    caption_latex : bool
        Pass the caption through as LaTeX, unescaped (``5\\%`` stays ``5\\%``); by default it is escaped as text.
    """

    name: str
    caption: str
    columns: tuple[Column, ...]
    index: tuple[str, ...] = ()
    pivot: str | None = None
    pivot_header: str | None = None
    replicate: str | None = None
    split_by: str | None = None
    where: dict = field(default_factory=dict)
    transpose: bool = False
    font_size: str | None = "small"
    index_header: str | tuple[str, ...] | None = None
    caption_latex: bool = False

    @property
    def row_header(self) -> str:
        """Header of the row-label column(s) as one text: ``index_header``, or the index column names joined by ' / '."""
        if self.index_header is None:
            return " / ".join(self.index)
        return self.index_header if isinstance(self.index_header, str) else " / ".join(self.index_header)

    def row_headers(self) -> tuple[str, ...] | str:
        """One header per index column, or a single string that spans them all (see ``index_header``)."""
        if self.index_header is None:
            return tuple(self.index)
        if not isinstance(self.index_header, str):
            if len(self.index_header) != len(self.index):
                raise TableError(f"table {self.name!r}: index_header has {len(self.index_header)} entries for "
                                 f"{len(self.index)} index columns {list(self.index)}; give one per column or one "
                                 "string.")
            return tuple(self.index_header)
        parts = tuple(p.strip() for p in self.index_header.split(" / "))
        if len(self.index) == 1:
            return (self.index_header,)
        return parts if len(parts) == len(self.index) else self.index_header

    def label(self, suffix: str = "") -> str:
        return "tab:" + (self.name + suffix).replace("_", "-")


def _require_columns(frame: pd.DataFrame, names, spec: TableSpec):
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise TableError(f"table {spec.name!r} needs CSV columns {missing}; the CSV has {list(frame.columns)}.")


def _aggregate(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """One row per (index, pivot) group; ``mean_se`` columns become ``(mean, se)`` pairs."""
    keys = list(spec.index) + ([spec.pivot] if spec.pivot else [])
    rows = []
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        if spec.replicate is None and len(group) > 1:
            raise TableError(f"table {spec.name!r}: {len(group)} rows share the labels {row}; declare the replicate "
                             "column or add the distinguishing column to index.")
        for col in spec.columns:
            values = group[col.source].to_numpy()
            if col.kind == "mean_se" and col.se is not None:
                row[col.title] = (float(values[0]), float(group[col.se].to_numpy()[0]))
            elif col.kind in ("mean_se", "mean_sd"):
                values = values.astype(np.float64)
                if len(values) < 2:
                    raise TableError(f"table {spec.name!r}, column {col.source!r}: a standard error needs at least "
                                     f"two replicates, {row} has {len(values)}.")
                if np.isnan(values).any():
                    raise TableError(f"table {spec.name!r}, column {col.source!r}: NaN among the replicates of {row}.")
                sd = float(values.std(ddof=1))
                row[col.title] = (float(values.mean()), sd if col.kind == "mean_sd" else sd / math.sqrt(len(values)))
            else:
                distinct = pd.unique(values)
                if len(distinct) > 1:
                    raise TableError(f"table {spec.name!r}, column {col.source!r} differs across the replicates of "
                                     f"{row} ({distinct[:3].tolist()}…); show it as mean_se instead.")
                row[col.title] = values[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _cell_formatter(col: Column):
    def fmt(value):
        if col.kind in ("mean_se", "mean_sd"):
            if math.isnan(value[0]) and col.missing is not None:
                return col.missing
            return format_mean_se(*value)
        if col.kind == "text":
            if isinstance(value, float) and math.isnan(value):
                if col.missing is None:
                    raise TableError(f"column {col.source!r} has a missing entry and declares no stand-in.")
                return col.missing
            return latex_text(value)
        if col.kind == "flag":
            if isinstance(value, str):
                value = {"True": True, "False": False}.get(value, value)
            if not isinstance(value, (bool, np.bool_)):
                raise TableError(f"column {col.source!r} is a flag but holds {value!r}.")
            return "yes" if value else "no"
        x = float(value)
        if math.isnan(x):
            if col.missing is None:
                raise TableError(f"column {col.source!r} has a NaN and declares no stand-in (Column.missing).")
            return col.missing
        if col.kind == "integer":
            if not x.is_integer():
                raise TableError(f"column {col.source!r} is declared integer but holds {x}.")
            return f"{int(x):d}"
        return format_number(x, col.significant)

    return fmt


#: Placeholder put where pandas writes the column axis' name (over the last row-label column), replaced by the
#: row-label headers, one over each row-label column (:func:`_place_row_headers`).
_ROW_HEADER_SLOT = "ROWHEADERSLOT"


def _place_row_headers(latex: str, headers, n_levels: int) -> str:
    """Replace the header line's first ``n_levels`` cells (the one holding :data:`_ROW_HEADER_SLOT`) by
    ``headers``: one escaped header per row-label column, or one string spanning them all."""
    lines = latex.split("\n")
    for i, line in enumerate(lines):
        if _ROW_HEADER_SLOT in line:
            cells = line.split(" & ")
            if isinstance(headers, str):
                first = [headers if n_levels == 1 else rf"\multicolumn{{{n_levels}}}{{l}}{{{headers}}}"]
            else:
                first = list(headers)
            lines[i] = " & ".join(first + cells[n_levels:])
            return "\n".join(lines)
    return latex


def _escaped_headers(spec: TableSpec):
    headers = spec.row_headers()
    return latex_text(headers) if isinstance(headers, str) else tuple(latex_text(h) for h in headers)


def _style_latex(display: pd.DataFrame, caption: str, label: str, font_size: str | None,
                 caption_latex: bool = False) -> str:
    styler = display.style
    styler = styler.format_index(latex_text, axis=0).format_index(latex_text, axis=1)
    styler = styler.hide(names=True, axis="index")
    latex = styler.to_latex(
        hrules=True,
        caption=caption if caption_latex else latex_text(caption),
        label=label,
        position_float="centering",
        column_format="l" * display.index.nlevels + "r" * display.shape[1],
        multicol_align="c",
        sparse_index=False,  # repeat row labels: \multirow would need a package beyond booktabs
        siunitx=False,
    )
    if font_size:
        latex = latex.replace("\\centering\n", f"\\centering\n\\{font_size}\n", 1)
    return fit_to_width(latex)


def _one_table(frame: pd.DataFrame, spec: TableSpec, caption: str, label: str) -> str:
    agg = _aggregate(frame, spec)
    formatters = {col.title: _cell_formatter(col) for col in spec.columns}
    shown = pd.DataFrame({title: agg[title].map(fmt) for title, fmt in formatters.items()})
    for key in (list(spec.index) + ([spec.pivot] if spec.pivot else [])):
        shown[key] = agg[key].astype(str).to_numpy()
    if spec.pivot:
        pivot_order = list(pd.unique(agg[spec.pivot].astype(str)))
        row_order = list(dict.fromkeys(map(tuple, agg[list(spec.index)].astype(str).to_numpy())))
        wide = shown.pivot(index=list(spec.index), columns=spec.pivot, values=[c.title for c in spec.columns])
        wide = wide.reindex(index=pd.MultiIndex.from_tuples(row_order) if len(spec.index) > 1 else
                            [r[0] for r in row_order])
        if len(spec.columns) == 1:
            top = spec.pivot_header or spec.pivot
            wide = wide[spec.columns[0].title][pivot_order]
            wide.columns = pd.MultiIndex.from_tuples([(top, v) for v in pivot_order])
        else:
            wide = wide.reindex(columns=[(c.title, v) for v in pivot_order for c in spec.columns])
            wide.columns = pd.MultiIndex.from_tuples([(f"{spec.pivot_header or spec.pivot} = {v}", c)
                                                      for c, v in wide.columns])
        if wide.isna().any().any():
            # A combination with no row (settings whose sources carry different labels, say) shows the column's
            # declared stand-in; without one it is an error, as a NaN is.
            if any(c.missing is None for c in spec.columns):
                raise TableError(f"table {spec.name!r}: some ({', '.join(spec.index)}, {spec.pivot}) combinations "
                                 "have no row in the CSV; declare Column.missing to show them as a stand-in (as for "
                                 "settings whose sources have different labels) or split the table (split_by).")
            stand_in = {c.title: c.missing for c in spec.columns}
            for column in wide.columns:
                title = spec.columns[0].title if len(spec.columns) == 1 else column[1]
                wide[column] = wide[column].fillna(stand_in[title])
        wide.columns = pd.MultiIndex.from_tuples(list(wide.columns), names=[None, _ROW_HEADER_SLOT])
        display = wide
    else:
        display = shown.set_index(list(spec.index)) if spec.index else shown
        display = display[[c.title for c in spec.columns]]
        if spec.index and not spec.transpose:
            display.columns = pd.Index(display.columns, name=_ROW_HEADER_SLOT)
        if spec.transpose:
            display = display.T
    latex = _style_latex(display, caption, label, spec.font_size, spec.caption_latex)
    if spec.index and not spec.transpose:
        latex = _place_row_headers(latex, _escaped_headers(spec), len(spec.index))
    return latex


def render_table(spec: TableSpec, data) -> dict[str, str]:
    """The LaTeX of ``spec`` built from ``data``: a CSV path (the report's saved data) or a
    :class:`pandas.DataFrame`; ``{file stem: latex}`` (one per split value)."""
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, (str, Path)):
        frame = pd.read_csv(data, keep_default_na=True)
    else:
        raise TableError(f"table {spec.name!r}: expected a CSV path or a pandas DataFrame, got {type(data).__name__}.")
    needed = list(spec.index) + [c.source for c in spec.columns] + [c.se for c in spec.columns if c.se]
    needed += [k for k in (spec.pivot, spec.replicate, spec.split_by) if k] + list(spec.where)
    _require_columns(frame, needed, spec)
    for column, value in spec.where.items():
        allowed = list(value) if isinstance(value, (tuple, list)) else [value]
        frame = frame[frame[column].isin(allowed)]
    if frame.empty:
        raise TableError(f"table {spec.name!r}: no CSV rows left after selecting {spec.where}.")
    if spec.split_by is None:
        return {spec.name: _one_table(frame, spec, spec.caption, spec.label())}
    out = {}
    for value, part in frame.groupby(spec.split_by, sort=False):
        stem = f"{spec.name}_{value}"
        caption = f"{spec.caption} ({spec.split_by} = {value})"
        out[stem] = _one_table(part, spec, caption, spec.label(f"-{value}"))
    return out


def write_tables(spec: TableSpec, data, folder) -> list[Path]:
    """Render ``spec`` from ``data`` (a CSV path or a DataFrame) and write each table atomically to
    ``folder/<stem>.tex``."""
    return [atomic_write(Path(folder) / f"{stem}.tex", latex) for stem, latex in render_table(spec, data).items()]


def standalone_document(table_files, appendix=None) -> str:
    r"""A minimal LaTeX document (:data:`LATEX_PREAMBLE`) that ``\input``s each of ``table_files``, then the
    ``appendix`` file if given (the derived formulas of :func:`theory.derivations.appendix_latex`, which also need
    ``amsmath``, ``amssymb`` and ``graphicx``)."""
    body = "\n".join(rf"\input{{{Path(f).as_posix()}}}" + "\n\\clearpage" for f in table_files)
    preamble = LATEX_PREAMBLE
    if appendix is not None:
        from theory.derivations.render import APPENDIX_PACKAGES

        preamble += APPENDIX_PACKAGES
        body += f"\n\\input{{{Path(appendix).as_posix()}}}"
    return preamble + "\\begin{document}\n" + body + "\n\\end{document}\n"
