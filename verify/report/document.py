r"""``report.tex``: the report as a document a reader follows claim by claim.

One section per claim, in the order of :data:`verify.report.claims.CLAIMS`: its statement, its verdict, each check
that decided it (asserted or finding, its outcome, the numbers behind it and the cases it judged), then the tables
and figures of the experiments whose checks are filed under it — each table and figure once, under the first claim
that uses its experiment. Experiments that decide no claim follow in a section of their own; the SymPy appendix
closes the document. Everything is typeset with :func:`verify.report.latex.latex_text`, so symbols print in math.
``pdflatex report.tex`` in the report folder builds it (``booktabs``, ``graphicx``, ``amsmath``, ``amssymb``,
``float`` and ``geometry``, all in TeX Live's base and recommended sets); tables and figures stay in their claim's
section (``float``'s ``H`` placement).
"""

from __future__ import annotations

from pathlib import Path

from verify.report.claims import CLAIMS, CheckResult, verdict
from verify.report.latex import latex_text
from verify.report.summary import ExperimentRecord, format_value, reason_not_applicable

PACKAGES = ("booktabs", "graphicx", "amsmath", "amssymb", "float")


def _prose(text) -> str:
    """:func:`latex_text` for running text: a line may break after an identifier's underscore (``FC_OOD``,
    ``anisotropic_r_gt_2``), which TeX cannot hyphenate."""
    return latex_text(text).replace(r"\_", r"\_\allowbreak{}")


def _numbers(numbers: dict) -> str:
    return "; ".join(f"{_prose(k)} $=$ {_prose(format_value(v))}" for k, v in numbers.items())


def _check_item(result: CheckResult) -> str:
    kind = "asserted" if result.check.asserted else "finding"
    outcome = result.outcome
    parts = [rf"\item \textbf{{{outcome.status}}} ({kind}, \texttt{{{_prose(result.experiment)}}}): "
             f"{_prose(result.check.statement)}."]
    if outcome.numbers:
        parts.append(f" Numbers: {_numbers(outcome.numbers)}.")
    if outcome.judged:
        parts.append(f" Judged: {_prose(', '.join(outcome.judged))}.")
    if outcome.note:
        parts.append(f" {_prose(outcome.note.rstrip('.'))}.")
    return "".join(parts)


def _figure(path: str, caption: str) -> str:
    return ("\\begin{figure}[H]\n\\centering\n"
            f"\\includegraphics[width=\\linewidth,height=0.42\\textheight,keepaspectratio]{{{path}}}\n"
            f"\\caption{{{latex_text(caption)}}}\n\\end{{figure}}\n")


def _outputs(name: str, records: dict, figure_captions: dict) -> list[str]:
    record = records.get(name)
    if record is None or record.status != "ran":
        return []
    out = []
    for output in record.outputs:
        if output.startswith("tables/"):
            out.append(f"\\input{{{Path(output).as_posix()}}}\n")
        elif output.startswith("figures/"):
            stem = Path(output).stem
            out.append(_figure(Path(output).as_posix(), figure_captions.get(stem, stem)))
    return out


def report_document(records: list[ExperimentRecord], results: list[CheckResult], run_info: dict,
                    figure_captions: dict[str, str], appendix: str | None = None) -> str:
    """The text of ``report.tex`` (module docstring). ``figure_captions`` maps a figure's file stem to its caption;
    ``appendix`` is the appendix file to ``\\input`` last (relative to the report folder)."""
    by_name = {r.name: r for r in records}
    lines = ["\\documentclass[11pt]{article}", *(f"\\usepackage{{{p}}}" for p in PACKAGES),
             "\\usepackage[margin=2.2cm]{geometry}", "\\sloppy", "\\setlength{\\parindent}{0pt}",
             "\\setlength{\\parskip}{4pt}", "\\floatplacement{table}{H}",  # tables and figures stay in their section
             "\\title{catcomp verification report}", "\\date{}", "\\begin{document}", "\\maketitle", ""]
    lines.append("\\begin{itemize}")
    lines += [f"\\item {latex_text(k)}: {latex_text(format_value(v))}" for k, v in run_info.items()]
    lines += ["\\end{itemize}", ""]
    lines.append("Verdicts: \\textbf{holds} (every check of the claim that could be judged holds), \\textbf{fails} "
                 "(some check fails), \\textbf{inconclusive} (no check fails, some could not be resolved by this "
                 "run), \\textbf{not applicable} (no check could be judged here). Asserted checks are guarantees of "
                 "the theory; findings are empirical statements that may come out either way.")
    lines += ["", "\\begin{center}", "\\begin{tabular}{llll}", "\\toprule", "claim & source & verdict & checks \\\\",
              "\\midrule"]
    by_claim = {c.id: [r for r in results if r.check.claim == c.id] for c in CLAIMS}
    for claim in CLAIMS:
        rs = by_claim[claim.id]
        counts = ", ".join(f"{n} {s}" for s in ("holds", "fails", "inconclusive", "not applicable")
                           if (n := sum(r.outcome.status == s for r in rs)))
        lines.append(f"{claim.id} & {claim.source} & {verdict(rs)} & {counts or '--'} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{center}", "\\clearpage", ""]
    shown: set[str] = set()
    for claim in CLAIMS:
        rs = by_claim[claim.id]
        lines.append(f"\\section{{{claim.id} [{claim.source}]: {verdict(rs)}}}")
        lines.append(_prose(claim.statement))
        if rs:
            lines += ["\\begin{itemize}", *(_check_item(r) for r in rs), "\\end{itemize}"]
        else:
            lines.append(f"\n\\emph{{Not applicable: {_prose(reason_not_applicable(claim.id, records))}.}}")
        floats = []
        for name in dict.fromkeys(r.experiment for r in rs):
            if name not in shown:
                shown.add(name)
                floats += _outputs(name, by_name, figure_captions)
        lines += [*floats, "\\clearpage" if floats else "", ""]
    rest = [r.name for r in records if r.name not in shown and r.status == "ran"]
    if rest:
        lines.append("\\section{Experiments that decide no claim}")
        for name in rest:
            lines.append(f"\\subsection*{{\\texttt{{{latex_text(name)}}}: {latex_text(by_name[name].title)}}}")
            lines += _outputs(name, by_name, figure_captions)
        lines += ["\\clearpage", ""]
    if appendix is not None:
        lines += ["\\appendix", f"\\input{{{Path(appendix).as_posix()}}}"]
    lines.append("\\end{document}")
    return "\n".join(lines) + "\n"
