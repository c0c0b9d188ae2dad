"""Helpers of the report tests: a toy experiment whose calls can be counted across processes, and pdflatex.

This module sits on the test session's ``sys.path``, which spawned worker processes inherit, so the toy compute
function can run in a process pool or on Dask workers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from verify.report.claims import Check, Outcome
from verify.report.registry import Experiment, Registry, grid
from verify.report.tables import LATEX_PREAMBLE, Column, TableSpec


def toy_cell(a: float, seed: int, marker_dir: str, fail_flag: str | None = None, nan: bool = False) -> pd.DataFrame:
    """Three replicate draws ``2a + N(0, 0.01²)`` from ``seed``; leaves one marker file per call in ``marker_dir``.

    Raises when ``fail_flag`` names an existing file (to simulate a run interrupted by a failing cell).
    """
    Path(marker_dir, f"{a}-{uuid.uuid4().hex}").touch()
    if fail_flag is not None and Path(fail_flag).exists():
        raise RuntimeError(f"toy cell a={a} told to fail")
    rng = np.random.default_rng(seed)
    value = 2.0 * a + 0.01 * rng.standard_normal(3)
    if nan:
        value[0] = np.nan
    return pd.DataFrame({"run": np.arange(3), "value": value, "doubled": 2.0 * a})


def count_calls(marker_dir) -> int:
    return len(os.listdir(marker_dir))


def _doubling_holds(frame: pd.DataFrame) -> Outcome:
    err = float(np.max(np.abs(frame["value"] - 2.0 * frame["a"])))
    return Outcome.decide(err < 0.1, {"max |value − 2a|": err})


def _always_fails(frame: pd.DataFrame) -> Outcome:
    return Outcome.decide(False, {"rows": len(frame)})


def toy_registry(marker_dir, *, values=(0.5, 1.0, 1.5, 2.0), fail_flag=None, nan=False, failing_check=False):
    """A registry with one toy experiment (one cell per value of ``a``), a mean ± SE table and a check."""
    cells = tuple(dict(c, marker_dir=str(marker_dir), fail_flag=fail_flag, nan=nan) for c in grid(a=values))
    checks = [Check("F1", "toy values are twice a", _doubling_holds)]
    if failing_check:
        checks.append(Check("F2", "a check that fails", _always_fails, asserted=True))
    return Registry([Experiment(
        name="toy",
        title="toy doubling",
        compute="report_helpers:toy_cell",
        default=cells,
        quick=cells[:2],
        tables=(TableSpec("toy", "Toy doubling: mean ± standard error over three runs.",
                          columns=(Column("value", "2a + noise", kind="mean_se"), Column("doubled", "2a")),
                          index=("a",), replicate="run"),),
        checks=tuple(checks),
    )])


def compile_latex(table_tex: str, workdir) -> subprocess.CompletedProcess:
    """Compile ``table_tex`` inside the minimal document (``article`` + ``booktabs``) with pdflatex, halting on the
    first error. Returns the completed process (``returncode`` 0 on success; the log in ``stdout``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "doc.tex").write_text(LATEX_PREAMBLE + "\\begin{document}\n" + table_tex + "\n\\end{document}\n")
    return subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=workdir,
                          capture_output=True, text=True, timeout=120)


#: What to install for the LaTeX tests (Debian names; ``.ci/run`` installs them).
TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended"


def missing_latex() -> str | None:
    """Why the generated LaTeX cannot be compiled here (``None`` when ``pdflatex`` and ``booktabs.sty`` are found)."""
    if shutil.which("pdflatex") is None:
        return "pdflatex is not on PATH"
    if shutil.which("kpsewhich") is not None:
        found = subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True, timeout=60).stdout
        if not found.strip():
            return "booktabs.sty is not installed"
    return None


def require_latex() -> None:
    """Skip the calling test, with the reason, where TeX is missing; fail instead under CI (``CI`` set), where
    ``.ci/run`` installs TeX and a missing compiler means a broken install step rather than a choice."""
    import pytest

    why = missing_latex()
    if why is None:
        return
    advice = f"{why}; to compile the report's LaTeX in the tests, install TeX (apt-get install {TEX_PACKAGES})"
    if os.environ.get("CI"):
        pytest.fail(f"CI must compile the generated LaTeX, but {advice}", pytrace=False)
    pytest.skip(advice)


def keyed_cell(key, n: int) -> pd.DataFrame:
    """``n`` standard normal draws from a JAX ``key`` (for ``seed_kind="jax_key"``)."""
    import jax

    return pd.DataFrame({"z": np.asarray(jax.random.normal(key, (n,)))})


def network_cache_cell(a: float, seed: int) -> pd.DataFrame:
    """The folder of the trained-parameter cache active while the cell runs (empty string when none)."""
    from verify.samplers.network_cache import network_cache_dir

    folder = network_cache_dir()
    return pd.DataFrame({"a": [a], "folder": [str(folder) if folder is not None else ""]})
