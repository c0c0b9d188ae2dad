"""Execute the notebooks and write executed copies, with their outputs and figures, for a reader without a kernel.

    python -m verify.notebooks [--out results/notebooks] [--quick] [--only 03 ...] [--timeout SECONDS]

The notebooks are stored without outputs (``notebooks/*.ipynb`` in a source checkout). This command runs each one
top to bottom in a fresh Jupyter kernel (``ipykernel``, the inline backend, as a reader's Jupyter would) and writes

- ``OUT/<notebook>.ipynb``: the executed copy, every output and figure embedded (open it in Jupyter, VS Code or on
  GitHub without running anything);
- ``OUT/<notebook>_figures/cell<NN>.png``: each figure a cell displayed, as a plain PNG file.

``OUT`` defaults to ``results/notebooks`` (git-ignored, like the report's ``results/`` folders: executed copies are
never committed). ``--quick`` runs the notebooks at their small sizes (``CATCOMP_QUICK=1``, what the tests use);
without it they run at their full sizes. The kernel imports this checkout's packages (its root is put first on
``PYTHONPATH``), not another installed copy.

A notebook asserts the claims it shows, so a cell that raises is a failed claim or a broken API: the command writes
the copy executed up to that cell, names the notebook and cell, and exits with status 1. A figure cell (one that
calls a figure function of :mod:`verify.report.figures`) that displayed no ``image/png`` is reported the same way.

Needs ``nbclient``, ``nbformat`` and ``ipykernel`` (the ``dev`` extra: ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import ast
import base64
import inspect
import os
import sys
import time
from pathlib import Path

from closed_form.errors import CatcompError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
DEFAULT_OUT = Path("results") / "notebooks"
FIGURES_MODULE = "verify.report.figures"

__all__ = ["NotebookError", "NotebookSetupError", "DEFAULT_OUT", "NOTEBOOK_DIR", "figure_functions", "figure_cells",
           "cells_missing_images", "kernel_environment", "notebook_paths", "execute_notebook", "write_executed",
           "main"]


class NotebookError(CatcompError):
    """A notebook failed: a cell raised, or a figure cell displayed no image. The message names notebook and cell."""


class NotebookSetupError(CatcompError):
    """The notebooks cannot be run here: the notebook folder is missing (an installed copy carries no notebooks: run
    from a source checkout or pass ``--notebooks``), or ``nbclient``/``nbformat``/``ipykernel`` are not installed."""


def _require_jupyter():
    try:
        import nbclient
        import nbformat
    except ImportError as err:
        raise NotebookSetupError(f"executing notebooks needs nbclient, nbformat and ipykernel ({err}); install the "
                                 "dev extra: python -m pip install -e '.[dev]'.") from err
    return nbclient, nbformat


def figure_functions() -> frozenset[str]:
    """The public functions of :mod:`verify.report.figures` that return a Figure (read from their annotations)."""
    from verify.report import figures

    names = set()
    for name, obj in vars(figures).items():
        if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != figures.__name__:
            continue
        returns = inspect.signature(obj).return_annotation
        if returns in ("Figure", figures.Figure) or getattr(returns, "__name__", None) == "Figure":
            names.add(name)
    return frozenset(names)


def _code(cell) -> str:
    # IPython magics and shell escapes are not Python; drop them before parsing.
    return "\n".join(line for line in "".join(cell.source).splitlines() if not line.lstrip().startswith(("%", "!")))


def figure_cells(nb) -> list[int]:
    """Indices (in ``nb.cells``) of the code cells that call a figure function of :mod:`verify.report.figures`.

    The names come from the notebook's own imports: ``from verify.report.figures import lines [as f]`` makes a call
    ``lines(...)``/``f(...)`` a figure call, ``import verify.report.figures as F`` (or ``from verify.report import
    figures``) makes ``F.lines(...)`` one. Only functions that return a Figure count (not ``save_figure``).
    """
    functions = figure_functions()
    trees = {}
    direct, modules = set(), set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            trees[i] = tree = ast.parse(_code(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                if node.module == FIGURES_MODULE:
                    direct |= {a.asname or a.name for a in node.names if a.name in functions}
                elif node.module == FIGURES_MODULE.rsplit(".", 1)[0]:
                    modules |= {a.asname or a.name for a in node.names if a.name == "figures"}
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names if a.name == FIGURES_MODULE and a.asname}

    def is_figure_call(node) -> bool:
        if not isinstance(node, ast.Call):
            return False
        f = node.func
        if isinstance(f, ast.Name):
            return f.id in direct
        if isinstance(f, ast.Attribute) and f.attr in functions:
            base = f.value
            if isinstance(base, ast.Name) and base.id in modules:
                return True
            return ast.unparse(base) == FIGURES_MODULE  # import verify.report.figures; verify.report.figures.f(...)
        return False

    return [i for i, tree in trees.items() if any(is_figure_call(n) for n in ast.walk(tree))]


def _displays(cell):
    return [o for o in cell.get("outputs", []) if o.output_type in ("display_data", "execute_result")]


def cells_missing_images(nb) -> list[tuple[int, str]]:
    """``(cell index, what it showed)`` for each figure cell without an ``image/png`` output, and for each output
    anywhere that shows a matplotlib Figure as text only (``<Figure size … with N Axes>``) instead of a picture."""
    missing = []
    for i in figure_cells(nb):
        if not any("image/png" in o.get("data", {}) for o in _displays(nb.cells[i])):
            shown = [o.get("data", {}).get("text/plain", o.output_type) for o in nb.cells[i].get("outputs", [])]
            missing.append((i, f"figure cell displayed no image/png; its outputs: {shown}"))
    for i, cell in enumerate(nb.cells):
        for o in _displays(cell):
            text = o.get("data", {}).get("text/plain", "")
            if text.startswith("<Figure size") and "image/png" not in o.get("data", {}):
                missing.append((i, f"a Figure displayed as text only: {text}"))
    return sorted(set(missing))


def kernel_environment(quick: bool, base: dict | None = None) -> dict:
    """The kernel's environment: ``CATCOMP_QUICK=1`` when ``quick`` (absent otherwise), and this checkout's root first
    on ``PYTHONPATH`` (the kernel runs in ``notebooks/``, where an installed copy could shadow this one)."""
    env = dict(os.environ if base is None else base)
    env.pop("CATCOMP_QUICK", None)
    if quick:
        env["CATCOMP_QUICK"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def notebook_paths(folder: Path | str | None = None, only=()) -> list[Path]:
    """The notebooks of ``folder`` (default: the checkout's ``notebooks/``) in order; ``only`` keeps those whose file
    name starts with one of the given prefixes (``"03"``, ``"03_catastrophic"``)."""
    folder = Path(folder) if folder is not None else NOTEBOOK_DIR
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise NotebookSetupError(f"no notebooks (*.ipynb) in {folder}; an installed catcomp carries no notebooks: run "
                                 "from a source checkout, or pass --notebooks DIR.")
    if only:
        chosen = [p for p in paths if p.name.startswith(tuple(only))]
        if not chosen:
            raise NotebookSetupError(f"--only {list(only)} matches none of {[p.name for p in paths]}; give the start "
                                     "of a notebook's file name, such as 03.")
        paths = chosen
    return paths


def execute_notebook(path: Path | str, *, quick: bool, timeout: float = 300, startup_timeout: float = 120):
    """Run the notebook at ``path`` top to bottom in a fresh ``python3`` kernel started in its folder; returns the
    executed notebook. A cell that raises raises :class:`NotebookError` (naming the notebook and cell) whose
    ``notebook`` attribute holds the copy executed up to that cell."""
    nbclient, nbformat = _require_jupyter()
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # A kernel that does not answer within startup_timeout, or a cell running past timeout, is an error, not a wait.
    client = nbclient.NotebookClient(nb, timeout=timeout, startup_timeout=startup_timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=kernel_environment(quick))
    except nbclient.exceptions.CellExecutionError as err:
        failed = NotebookError(f"{path.name}: a cell raised {err.ename}: {err.evalue}")
        failed.notebook = nb
        raise failed from err
    return nb


def write_executed(nb, out: Path, stem: str) -> list[Path]:
    """Write ``nb`` to ``out/<stem>.ipynb`` and each displayed ``image/png`` to ``out/<stem>_figures/cellNN.png``."""
    _, nbformat = _require_jupyter()
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{stem}.ipynb"]
    nbformat.write(nb, written[0])
    figures = out / f"{stem}_figures"
    for old in figures.glob("cell*.png"):
        old.unlink()
    for i, cell in enumerate(nb.cells):
        images = [o["data"]["image/png"] for o in _displays(cell) if "image/png" in o.get("data", {})]
        for k, data in enumerate(images):
            figures.mkdir(exist_ok=True)
            name = f"cell{i:02d}.png" if len(images) == 1 else f"cell{i:02d}_{k + 1}.png"
            (figures / name).write_bytes(base64.b64decode(data))
            written.append(figures / name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for the executed copies (default {DEFAULT_OUT}, git-ignored)")
    parser.add_argument("--quick", action="store_true", help="run at the notebooks' small sizes (CATCOMP_QUICK=1)")
    parser.add_argument("--only", nargs="+", default=(), metavar="PREFIX",
                        help="run only the notebooks whose file name starts with one of these (e.g. 01 03)")
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="folder holding the notebooks (default: this checkout's notebooks/)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one cell may run (default 1800)")
    args = parser.parse_args(argv)
    try:
        paths = notebook_paths(args.notebooks, args.only)
        _require_jupyter()
    except NotebookSetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failures = []
    for path in paths:
        start = time.perf_counter()
        try:
            nb = execute_notebook(path, quick=args.quick, timeout=args.timeout)
        except NotebookError as err:
            write_executed(err.notebook, args.out, path.stem)
            failures.append(str(err))
            print(f"FAILED {path.name} ({time.perf_counter() - start:.0f} s): {err}", file=sys.stderr)
            continue
        written = write_executed(nb, args.out, path.stem)
        missing = cells_missing_images(nb)
        if missing:
            failures += [f"{path.name}: cell {i}: {what}" for i, what in missing]
            print(f"FAILED {path.name}: figure cells without a picture: {missing}", file=sys.stderr)
        print(f"{path.name}: {len(figure_cells(nb))} figure cells, {len(written) - 1} pictures, "
              f"{time.perf_counter() - start:.0f} s -> {written[0]}")
    if failures:
        print(f"{len(failures)} failure(s); executed copies (up to a failing cell) are in {args.out}", file=sys.stderr)
        return 1
    print(f"executed copies of {len(paths)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
