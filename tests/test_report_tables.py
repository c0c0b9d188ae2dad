"""LaTeX tables from CSVs: number formats, escaping, mean ± standard error, the paper's pivot layout, compilation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_helpers import compile_latex, require_latex

from verify.report.latex import _COMBINING, _MATH_UNICODE, LatexError
from verify.report.tables import (
    Column,
    TableError,
    TableSpec,
    format_mean_se,
    format_number,
    latex_text,
    render_table,
)


@pytest.mark.parametrize("x, text", [
    (0.0, "0"), (1.0, "1.000"), (0.952381, "0.9524"), (-0.5513, "$-0.5513$"), (12345.678, "12346"),
    (123456.7, r"$1.235\times10^{5}$"), (1e-4, r"$1.000\times10^{-4}$"), (-2.5e-12, r"$-2.500\times10^{-12}$"),
    (9.99996e-5, r"$1.000\times10^{-4}$"), (math.inf, r"$\infty$"), (-math.inf, r"$-\infty$"),
])
def test_format_number(x, text):
    assert format_number(x) == text


@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False).filter(lambda v: v != 0))
def test_format_number_round_trips_to_four_significant_digits(x):
    text = format_number(x).strip("$").replace(r"\times10^{", "e").replace("}", "")
    assert math.isclose(float(text), x, rel_tol=5e-4)


def test_nan_never_becomes_a_number():
    with pytest.raises(TableError, match="NaN"):
        format_number(float("nan"))
    with pytest.raises(TableError):
        format_mean_se(float("nan"), 0.1)


@pytest.mark.parametrize("mean, se, text", [
    (0.12345, 0.0023, r"$0.1235 \pm 0.0023$"),
    (1.2e-4, 5e-6, r"$(1.200 \pm 0.050)\times10^{-4}$"),
    (12.3, 4.5, r"$12.3 \pm 4.5$"),
    (845.3, 0.2, r"$845.30 \pm 0.20$"),
    (2.0, 0.0, "2.000"),  # exact
])
def test_format_mean_se(mean, se, text):
    assert format_mean_se(mean, se) == text


def test_latex_text_escapes_specials_and_symbols_and_refuses_unknown_characters():
    assert latex_text("a_1 & 50%") == r"$a_{1}$ \& 50\%"
    assert latex_text("KL(Q‖P)") == r"KL(Q\ensuremath{\|}P)"
    assert latex_text("χ²") == r"\ensuremath{\chi^{2}}"
    with pytest.raises(LatexError, match="U\\+263A"):
        latex_text("☺")


def sweep_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"setting": s, "K": k, "n": n, "run": r, "w2": 1.0 / k + 0.01 * rng.standard_normal()}
            for s in ("FC_ID", "NFC_OOD") for k in (1, 4, 16) for n in ("exact", "100") for r in range(4)]
    path = tmp_path / "sweep.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, pd.DataFrame(rows)


def test_row_headers_are_typeset(tmp_path):
    """Column names reach LaTeX through latex_text: a letter with a subscript word is a symbol in math."""
    path = tmp_path / "u.csv"
    pd.DataFrame({"K_label": ["1", "4", "1", "4"], "e_ps": ["0", "0", "1", "1"], "x": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        path, index=False)
    pivot = render_table(TableSpec("u", "c", columns=(Column("x"),), index=("K_label",), pivot="e_ps"), path)["u"]
    assert r"$K_{\mathrm{label}}$ &" in pivot and r"{$e_{\mathrm{ps}}$}" in pivot
    flat = render_table(TableSpec("v", "c", columns=(Column("x"),), index=("K_label", "e_ps")), path)["v"]
    assert r"$K_{\mathrm{label}}$ & $e_{\mathrm{ps}}$ & x" in flat


def test_pivot_layout_with_mean_and_standard_error_per_setting(tmp_path):
    path, frame = sweep_csv(tmp_path)
    spec = TableSpec("sweep", "W2 of naive and FKC samples", columns=(Column("w2", "W2", kind="mean_se"),),
                     index=("K",), pivot="n", pivot_header="training size", replicate="run", split_by="setting")
    tables = render_table(spec, path)
    assert sorted(tables) == ["sweep_FC_ID", "sweep_NFC_OOD"]
    latex = tables["sweep_NFC_OOD"]
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\label{tab:sweep-NFC-OOD}"):
        assert rule in latex
    assert r"\multicolumn{2}{c}{training size}" in latex
    cell = frame[(frame.setting == "NFC_OOD") & (frame.K == 4) & (frame.n == "100")]["w2"].to_numpy()
    expected = format_mean_se(cell.mean(), cell.std(ddof=1) / np.sqrt(len(cell)))
    row = next(line for line in latex.splitlines() if line.startswith("4 &"))
    assert row.split(" & ")[2].rstrip(" \\") == expected
    assert row.split(" & ")[1] != expected  # the "exact" column holds its own runs


def test_mean_sd_shows_the_replicates_standard_deviation(tmp_path):
    path, frame = sweep_csv(tmp_path)
    spec = TableSpec("sd", "c", columns=(Column("w2", "W2", kind="mean_sd"),), index=("K",), pivot="n",
                     replicate="run", where={"setting": "FC_ID"})
    cell = frame[(frame.setting == "FC_ID") & (frame.K == 16) & (frame.n == "exact")]["w2"].to_numpy()
    row = next(line for line in render_table(spec, path)["sd"].splitlines() if line.startswith("16 &"))
    assert row.split(" & ")[1] == format_mean_se(cell.mean(), cell.std(ddof=1))  # 4 runs: twice the standard error
    with pytest.raises(TableError, match="no se column"):
        Column("w2", kind="mean_sd", se="w2_se")
    with pytest.raises(TableError, match="mean_sd"):
        Column("w2", kind="mean_var")


def test_a_replicate_free_duplicate_row_or_missing_column_is_an_error(tmp_path):
    path, _ = sweep_csv(tmp_path)
    with pytest.raises(TableError, match="share the labels"):
        render_table(TableSpec("t", "c", columns=(Column("w2"),), index=("K",)), path)
    with pytest.raises(TableError, match="needs CSV columns"):
        render_table(TableSpec("t", "c", columns=(Column("nope"),), index=("K",)), path)
    one_run = tmp_path / "one.csv"
    pd.read_csv(path).query("run == 0").to_csv(one_run, index=False)
    with pytest.raises(TableError, match="at least two replicates"):
        render_table(TableSpec("t", "c", columns=(Column("w2", kind="mean_se"),), index=("setting", "K", "n"),
                               replicate="run"), one_run)


def test_missing_values_need_a_declared_stand_in(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"setting": ["A", "B"], "rate": [0.5, float("nan")]}).to_csv(path, index=False)
    with pytest.raises(TableError, match="NaN"):
        render_table(TableSpec("m", "c", columns=(Column("rate"),), index=("setting",)), path)
    latex = render_table(TableSpec("m", "c", columns=(Column("rate", missing="--"),), index=("setting",)), path)["m"]
    assert "B & --" in latex


def test_generated_layouts_compile(tmp_path):
    require_latex()
    path, _ = sweep_csv(tmp_path)
    specs = [
        TableSpec("a", "Pivot ‖ χ² σ_t²", columns=(Column("w2", "W₂ (mean ± SE)", kind="mean_se"),),
                  index=("setting", "K"), pivot="n", replicate="run"),
        TableSpec("b", "Two metrics per pivot", columns=(Column("w2", "W2", kind="mean_se"),
                                                         Column("K", "K", kind="integer")),
                  index=("setting",), pivot="n", replicate="run", where={"K": 4}),
        TableSpec("c", "Transposed", columns=(Column("w2", "W2", kind="mean_se"),), index=("setting", "n"),
                  replicate="run", where={"K": 16}, transpose=True),
        TableSpec("d", "Underscored row header", columns=(Column("w2", "W2", kind="mean_se"),),
                  index=("setting", "K"), replicate="run", where={"n": "exact"}, index_header="set_ting & K"),
    ]
    for spec in specs:
        for stem, latex in render_table(spec, path).items():
            proc = compile_latex(latex, tmp_path / stem)
            assert proc.returncode == 0, f"{stem}:\n{latex}\n{proc.stdout[-2000:]}"


def test_every_mapped_symbol_compiles_with_booktabs_alone(tmp_path):
    require_latex()
    text = " ".join([latex_text(ch) for ch in _MATH_UNICODE] + [latex_text("Q" + accent) for accent in _COMBINING])
    proc = compile_latex(text, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]


# ------------------------------------------------------------------------------------------ friction fixes
@pytest.mark.parametrize("x, text", [
    (0.99999, "1.000"), (9.99999, "10.00"), (99.9996, "100.0"), (999.96, "1000"), (-0.99999, "$-1.000$"),
    (0.0099999, "0.01000"), (99999.9, r"$1.000\times10^{5}$"), (0.00099999999, r"$1.000\times10^{-3}$"),
])
def test_format_number_keeps_four_significant_digits_when_rounding_carries(x, text):
    """Rounding up to the next power of ten used to keep the decimals of the unrounded value (0.99999 → 1.0000)."""
    assert format_number(x) == text


@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False).filter(lambda v: v != 0))
def test_format_number_shows_at_most_four_significant_digits_below_1e5(x):
    text = format_number(x).strip("$").lstrip("-")
    if "times" not in text and "." in text:
        digits = text.replace(".", "").lstrip("0")
        assert len(digits) == 4, (x, text)


def test_tables_are_built_from_a_dataframe_as_from_its_csv(tmp_path):
    path, frame = sweep_csv(tmp_path)
    spec = TableSpec("sweep", "c", columns=(Column("w2", "W2", kind="mean_se"),), index=("K",), pivot="n",
                     replicate="run", split_by="setting")
    assert render_table(spec, frame) == render_table(spec, path)
    assert render_table(spec, frame)["sweep_FC_ID"] == render_table(spec, str(path))["sweep_FC_ID"]
    with pytest.raises(TableError, match="CSV path or a pandas DataFrame"):
        render_table(spec, frame.to_dict())


def test_a_latex_caption_passes_through_unescaped_when_asked():
    frame = pd.DataFrame({"setting": ["A"], "x": [0.5]})
    escaped = render_table(TableSpec("t", r"within 5\% of $\lambda$", (Column("x"),), index=("setting",)), frame)["t"]
    assert r"\caption{within 5\textbackslash{}\% of \$\textbackslash{}lambda\$}" in escaped
    raw = render_table(TableSpec("t", r"within 5\% of $\lambda$", (Column("x"),), index=("setting",),
                                 caption_latex=True), frame)["t"]
    assert r"\caption{within 5\% of $\lambda$}" in raw


def test_each_row_label_column_has_its_header_over_it():
    """With two index columns the header used to sit over the second one, the first left blank."""
    frame = pd.DataFrame({"setting": ["A"] * 4 + ["B"] * 4, "K": [1, 1, 2, 2] * 2, "m": ["x", "y"] * 4,
                          "v": np.arange(8.0)})
    flat = render_table(TableSpec("f", "c", (Column("v", "value"),), index=("setting", "K"), where={"m": "x"}),
                        frame)["f"]
    assert "setting & K & value \\\\" in flat.splitlines()
    pivot = render_table(TableSpec("p", "c", (Column("v", "value"),), index=("setting", "K"), pivot="m"), frame)["p"]
    lines = pivot.splitlines()
    assert " &  & \\multicolumn{2}{c}{m} \\\\" in lines and "setting & K & x & y \\\\" in lines
    named = render_table(TableSpec("n", "c", (Column("v"),), index=("setting", "K"), pivot="m",
                                   index_header="set_ting / K"), frame)["n"]
    assert "set\\_ting & K & x & y \\\\" in named.splitlines()
    spanning = render_table(TableSpec("s", "c", (Column("v"),), index=("setting", "K"), pivot="m",
                                      index_header="composition"), frame)["s"]
    assert "\\multicolumn{2}{l}{composition} & x & y \\\\" in spanning.splitlines()
    # the data rows are unchanged: label, label, values
    assert "A & 1 & 0 & 1.000 \\\\" in spanning.splitlines()
    with pytest.raises(TableError, match="one per column"):
        render_table(TableSpec("e", "c", (Column("v"),), index=("setting", "K"), pivot="m",
                               index_header=("a", "b", "c")), frame)


def test_fixed_headers_and_raw_captions_compile(tmp_path):
    require_latex()
    frame = pd.DataFrame({"setting": ["A"] * 4 + ["B"] * 4, "K": [1, 1, 2, 2] * 2, "m": ["x", "y"] * 4,
                          "v": np.arange(8.0)})
    for spec in (TableSpec("a", r"5\% raw", (Column("v"),), index=("setting", "K"), pivot="m", caption_latex=True),
                 TableSpec("b", "span", (Column("v"),), index=("setting", "K"), pivot="m", index_header="both"),
                 TableSpec("c", "flat", (Column("v"),), index=("setting", "K", "m"))):
        for stem, latex in render_table(spec, frame).items():
            proc = compile_latex(latex, tmp_path / stem)
            assert proc.returncode == 0, f"{stem}:\n{latex}\n{proc.stdout[-2000:]}"


def test_a_pivot_combination_without_a_row_shows_the_declared_stand_in():
    """Settings whose sources carry different labels leave (setting, source) pairs without a row: shown as the
    column's stand-in where one is declared, an error naming the remedy otherwise."""
    frame = pd.DataFrame({"setting": ["A", "A", "B"], "source": ["a1", "a2", "b1"], "v": [1.0, 2.0, 3.0]})
    latex = render_table(TableSpec("t", "c", (Column("v", missing="--"),), index=("setting",), pivot="source"),
                         frame)["t"]
    assert "A & 1.000 & 2.000 & -- \\\\" in latex and "B & -- & -- & 3.000 \\\\" in latex
    with pytest.raises(TableError, match="declare Column.missing"):
        render_table(TableSpec("t", "c", (Column("v"),), index=("setting",), pivot="source"), frame)
