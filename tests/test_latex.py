"""Text as LaTeX: symbols in math mode, identifiers and code as text, specials escaped; wide tables shrink to the
text width and narrow ones keep their size. The expected strings are written out by hand (what a paper would type);
the compile tests run pdflatex on every sample (skipped, with the reason, where TeX is missing)."""

import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.report_helpers import require_latex
from verify.report.latex import PREAMBLE, LatexError, fit_to_width, latex_text

CASES = [
    ("λ_max", r"$\lambda_{\max}$"),
    ("Q_t and π_t", r"$Q_{t}$ and $\pi_{t}$"),
    ("P_a1 / P_0", r"$P_{a_{1}}$ / $P_{0}$"),
    ("max_i", r"$\max_{i}$"),
    ("q^i_t", r"$q_{t}^{i}$"),
    ("t_min", r"$t_{\min}$"),
    ("Q_t_min", r"$Q_{t_{\min}}$"),
    ("n_steps", r"$n_{\mathrm{steps}}$"),
    ("Q̂_δ", r"$\hat{Q}_{\delta}$"),
    ("ŝ_i", r"$\hat{s}_{i}$"),
    ("rESS^(−1/2)", r"$\mathrm{rESS}^{-1/2}$"),
    ("rESS_i⁻¹", r"$\mathrm{rESS}_{i}^{-1}$"),
    ("χ²", r"\ensuremath{\chi^{2}}"),
    ("HDR₉₅", r"HDR\ensuremath{{}_{95}}"),
    ("fkc_limit_law", r"fkc\_limit\_law"),
    ("log_z_closed_form", r"log\_z\_closed\_form"),
    ("--size paper", r"-{}-size paper"),
    ("`--size paper`", r"\texttt{-{}-{}size paper}"),
    ("5 % & #", r"5 \% \& \#"),
    ("a ≠ b", r"a \ensuremath{\neq} b"),
]


@pytest.mark.parametrize("text, latex", CASES)
def test_symbols_print_as_a_paper_types_them(text, latex):
    assert latex_text(text) == latex


def test_no_subscript_is_left_in_text_mode_for_the_reports_symbols():
    for text in ("λ_max", "Q_t", "π_t", "P_a1", "max_i", "KL(Q_t_min‖SDE law)"):
        assert r"\_" not in latex_text(text), text


def test_an_unmapped_character_is_an_error_that_names_it():
    with pytest.raises(LatexError, match="U\\+263A"):
        latex_text("smile ☺")


def test_fit_to_width_wraps_each_tabular_and_nothing_else():
    latex = "\\begin{table}\n\\begin{tabular}{r}\n1\\\\\n\\end{tabular}\n\\caption{x}\n\\end{table}"
    out = fit_to_width(latex)
    assert out.count("\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}") == 1
    assert out.replace(re.search(r"\\resizebox.*?%\n", out).group(0), "").replace("%\n}", "") == latex


def _compile(body: str, tmp_path):
    (tmp_path / "doc.tex").write_text(PREAMBLE + "\\begin{document}\n" + body + "\n\\end{document}\n")
    return subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_every_sample_compiles(tmp_path):
    require_latex()
    run = _compile("\\\\\n".join(latex_text(text) for text, _ in CASES), tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]


def test_a_wide_table_shrinks_to_the_text_width_and_a_narrow_one_keeps_its_size(tmp_path):
    """\\showthe prints the box widths into the log: the wide tabular is shrunk to \\linewidth (345 pt in
    article's default), the narrow one stays at its natural width."""
    require_latex()
    wide = "\\begin{tabular}{" + "r" * 30 + "}\n" + " & ".join(["123456"] * 30) + "\\\\\n\\end{tabular}"
    narrow = "\\begin{tabular}{rr}\n1 & 2\\\\\n\\end{tabular}"
    body = ("\\noindent\\setbox0\\hbox{" + fit_to_width(wide) + "}\\typeout{WIDE=\\the\\wd0}"
            "\\setbox0\\hbox{" + narrow + "}\\typeout{NATURAL=\\the\\wd0}"
            "\\setbox0\\hbox{" + fit_to_width(narrow) + "}\\typeout{NARROW=\\the\\wd0}"
            "\\typeout{LINE=\\the\\linewidth}")
    run = _compile(body, tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]
    width = {k: float(v) for k, v in re.findall(r"(WIDE|NATURAL|NARROW|LINE)=([0-9.]+)pt", run.stdout)}
    assert width["WIDE"] == pytest.approx(width["LINE"], abs=0.01)
    assert width["NARROW"] == pytest.approx(width["NATURAL"], abs=0.01) and width["NATURAL"] < width["LINE"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abQtPxyz_^ 01λπχ²₉‖·%&{}#$-`()/<>|")), max_size=40))
def test_any_text_of_these_characters_gives_balanced_math_and_braces(text):
    """Whatever the mix, math shifts pair up and braces balance (the two ways text can break a LaTeX run)."""
    try:
        out = latex_text(text)
    except LatexError:
        return
    unescaped = out.replace("\\$", "").replace("\\{", "").replace("\\}", "")
    assert unescaped.count("$") % 2 == 0, (text, out)
    assert unescaped.count("{") == unescaped.count("}"), (text, out)
