"""The verification report: the experiment registry and catalog, the cell runner and cache, tables, figures, claims
and ``summary.md``, and the command line (``python -m verify``). Names experiments' compute functions by import
path, so nothing here runs an experiment until the report does."""

from verify.report.build import build_report
from verify.report.cli import main

__all__ = [
    "build_report",
    "main",
]
