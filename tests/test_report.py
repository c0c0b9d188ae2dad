"""End to end: ``python -m verify --quick`` writes the whole report, every table compiles, and the options work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_helpers import compile_latex, require_latex

from verify.experiments import REGISTRY
from verify.report.claims import CLAIMS, FAILS, STATUSES

ROOT = Path(__file__).resolve().parents[1]


def run_verify(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """One ``--quick`` run of the whole report in one process. What it costs is measured by
    ``benchmarks/report_cost.py``, not asserted here (timings on two shared cores are not a test)."""
    out = tmp_path_factory.mktemp("report")
    return out, run_verify("--size", "quick", "--jobs", "1", "--out", str(out))


def test_quick_report_succeeds(quick_report):
    out, proc = quick_report
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ready = [e for e in REGISTRY if not e.missing_requirements() and e.quick]
    for e in ready:  # one line per finished experiment
        assert f"✓ {e.name}:" in proc.stdout


def test_every_ready_experiment_writes_csv_and_sidecar(quick_report):
    out, _ = quick_report
    ready = [e for e in REGISTRY if not e.missing_requirements() and e.quick]
    assert ready
    for e in ready:
        frame = pd.read_csv(out / "data" / f"{e.name}.csv")
        assert len(frame) > 0
        meta = json.loads((out / "data" / f"{e.name}.json").read_text())
        assert meta["experiment"] == e.name
        assert meta["seed"] == 0
        assert meta["x64"] is True
        assert meta["configuration"]["size"] == "quick"
        assert [c["config"] for c in meta["configuration"]["cells"]] == [dict(c) for c in e.quick]
        assert meta["package_versions"]["jax"] and meta["package_versions"]["pandas"]
        assert "commit" in meta["git"]
        assert meta["wall_time_s"]["compute"] > 0
        assert meta["rows"] == len(frame) and meta["columns"] == list(frame.columns)


def test_tables_figures_and_summary_are_written(quick_report):
    out, _ = quick_report
    ran = [e for e in REGISTRY if not e.missing_requirements() and e.quick]
    expected_tables = {t.name for e in ran for t in e.tables if not t.split_by}
    written = {p.stem for p in (out / "tables").glob("*.tex")}
    assert expected_tables <= written
    for e in ran:
        for f in e.figures:
            for fmt in ("pdf", "png"):
                path = out / "figures" / f"{f.name}.{fmt}"
                assert path.stat().st_size > 1000, path
    summary = (out / "summary.md").read_text()
    for claim in CLAIMS:
        line = next(line for line in summary.splitlines() if line.startswith(f"| {claim.id} |"))
        # a verdict either way is allowed: findings may fail; only asserted checks must hold (below)
        assert any(f"**{v}**" in line for v in STATUSES), line
        assert f"## {claim.id} [{claim.source}]" in summary


def test_asserted_checks_hold_and_the_exit_status_follows_them(quick_report):
    """Every asserted check (a guarantee) holds, and the exit status says so; findings may come out either way and
    the summary shows which way each went."""
    out, proc = quick_report
    checks = [line for line in (out / "summary.md").read_text().splitlines() if line.startswith("- **")]
    asserted = [line for line in checks if "(asserted," in line]
    findings = [line for line in checks if "(finding," in line]
    assert asserted and findings
    failed_asserted = [line for line in asserted if line.startswith(f"- **{FAILS}**")]
    assert not failed_asserted, failed_asserted
    assert proc.returncode == 0
    for line in findings:  # each finding states its outcome
        assert any(line.startswith(f"- **{v}**") for v in STATUSES), line
    failed_findings = sum(line.startswith(f"- **{FAILS}**") for line in findings)
    if failed_findings:
        assert f"{failed_findings} finding(s) fail (not asserted)" in proc.stdout


def test_every_generated_table_compiles_with_pdflatex(quick_report, tmp_path):
    require_latex()
    out, _ = quick_report
    tables = sorted((out / "tables").glob("*.tex"))
    assert tables
    for table in tables:
        proc = compile_latex(table.read_text(), tmp_path / table.stem)
        assert proc.returncode == 0, f"{table.name} does not compile:\n{proc.stdout[-3000:]}"
        assert "\n!" not in proc.stdout
    whole = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=out,
                           capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0, whole.stdout[-3000:]


#: TeX reports a line that sticks out of the text block as "Overfull \hbox (Xpt too wide)"; a paper's tables must
#: not, beyond TeX's own rounding.
OVERFULL_TOLERANCE_PT = 1.0


def _overfull(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]


def test_no_table_or_report_page_is_wider_than_the_text(quick_report, tmp_path):
    """Every table, compiled alone, and report.tex as a whole (sections by claim, figures, the appendix) have no
    overfull box wider than 1 pt."""
    require_latex()
    out, _ = quick_report
    for table in sorted((out / "tables").glob("*.tex")):
        proc = compile_latex(table.read_text(), tmp_path / table.stem)
        too_wide = [w for w in _overfull(proc.stdout) if w > OVERFULL_TOLERANCE_PT]
        assert not too_wide, f"{table.name}: overfull by {too_wide} pt"
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "report.tex"], cwd=out, capture_output=True,
                   text=True, timeout=120)
    log = (out / "report.log").read_text(errors="replace")
    too_wide = [w for w in _overfull(log) if w > OVERFULL_TOLERANCE_PT]
    assert not too_wide, f"report.tex: overfull boxes of {too_wide} pt"


def test_the_overfull_check_catches_a_wide_line(tmp_path):
    require_latex()
    proc = compile_latex("\\begin{tabular}{l}" + "x" * 400 + "\\end{tabular}", tmp_path)
    assert max(_overfull(proc.stdout)) > 100


def test_no_table_prints_a_symbol_in_text_mode(quick_report):
    """A one-letter symbol with a subscript (λ_max, Q_t, P_a1) escaped as text would print its underscore; the
    report's LaTeX has none (identifiers such as fkc_limit_law stay text, and are several letters long)."""
    out, _ = quick_report
    texts = {p.name: p.read_text() for p in [*(out / "tables").glob("*.tex"), out / "report.tex"]}
    for name, text in texts.items():
        hits = re.findall(r"(?<![A-Za-z0-9_\\])[A-Za-z]\\_[A-Za-z0-9]+", text)  # a snake_case word's `_t_` is text
        assert not hits, f"{name}: {hits[:5]}"
        assert "\\lambda}\\_" not in text and "lambda\\_max" not in text, name
    assert "\\section{P1 [paper]" in texts["report.tex"] and "\\includegraphics" in texts["report.tex"]


def test_the_compile_check_catches_a_latex_error(tmp_path):
    require_latex()
    broken = "\\begin{tabular}{lr}\n\\toprule\na & b_1 \\\\\n\\bottomrule\n\\end{tabular}"  # bare _ outside math
    assert compile_latex(broken, tmp_path).returncode != 0


def test_list_names_every_experiment():
    proc = run_verify("--list", timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == list(REGISTRY.names())


def test_only_runs_the_named_experiment(tmp_path, quick_report):
    # The SymPy appendix (about 10 s of CPU) comes from the quick report's cache; this test is about --only.
    (tmp_path / "cache").mkdir()
    for tex in (quick_report[0] / "cache").glob("appendix_derivations_*.tex"):
        shutil.copy(tex, tmp_path / "cache" / tex.name)
    proc = run_verify("--quick", "--jobs", "1", "--only", "path_gap", "--no-progress", "--out", str(tmp_path))  # alias
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "data").glob("*.csv")) == ["path_gap.csv"]
    summary = (tmp_path / "summary.md").read_text()
    assert "`paper_targets` | not selected" in summary
    assert "| F1 | ours | **not applicable** |" in summary


def test_unknown_experiment_name_is_refused_with_the_valid_names(tmp_path):
    proc = run_verify("--only", "no_such_experiment", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "no_such_experiment" in proc.stderr and "path_gap" in proc.stderr
    assert not (tmp_path / "summary.md").exists()
