"""The verification report: the registry's building blocks, the cell runner and cache, tables, figures, claims and
their verdicts, ``summary.md``, and the command line. It renders and decides; it names no experiment (those are in
:mod:`verify.experiments`, whose registry ``python -m verify`` passes in)."""

from verify.report.build import build_report
from verify.report.cli import main

__all__ = [
    "build_report",
    "main",
]
