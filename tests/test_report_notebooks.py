"""The notebooks run top to bottom at small sizes (``CATCOMP_QUICK=1``), show every figure they make as a picture,
and are committed without outputs; ``python -m verify.notebooks`` writes executed copies with their figures.

Each notebook asserts the claims it shows, so an execution error here is a failed claim or a broken API. A figure
cell is a code cell that calls a figure function of ``verify.report.figures`` (found from the notebook's imports);
executed as Jupyter executes it (ipykernel, inline backend, no pyplot), it must display ``image/png``, not the text
``<Figure size … with 1 Axes>``.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from verify import notebooks as runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1
    assert NOTEBOOKS[0].name.startswith("01_")
    assert runner.notebook_paths() == NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} carries outputs"


def test_the_notebooks_that_draw_have_their_figure_cells_found():
    """The figure-cell finder is not vacuous: notebooks 01-04 draw figures (05 displays SymPy only)."""
    found = {p.name[:2]: runner.figure_cells(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    assert all(found[k] for k in ("01", "02", "03", "04")), found
    assert len(found["03"]) == 2 and len(found["04"]) == 2, found
    assert found["05"] == []


def _notebook(*sources, outputs=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for cell, outs in zip(nb.cells, outputs or []):
        cell.outputs = outs
    return nb


def test_figure_cells_follow_the_notebooks_imports():
    nb = _notebook("from verify.report.figures import lines as draw, save_figure\nimport verify.report.figures as F",
                   "draw(frame, x='a', y='b')",                     # aliased function
                   "F.heatmap(frame, x='a', y='b', value='c')",    # through a module alias
                   "save_figure(fig, '.', 'x')",                   # writes a figure, does not make one
                   "lines = [1, 2]\nprint(lines)",                 # not a call of an imported figure function
                   "%matplotlib inline\nx = draw(frame, x='a', y='b')\nx")
    assert runner.figure_cells(nb) == [1, 2, 5]
    assert {"lines", "heatmap", "scatter_2d", "measured_vs_bound", "stacked_split"} <= runner.figure_functions()
    assert "save_figure" not in runner.figure_functions()


def test_a_figure_shown_as_text_is_reported_and_a_picture_is_not():
    text_only = nbformat.v4.new_output("execute_result", data={"text/plain": "<Figure size 360x300 with 1 Axes>"},
                                       execution_count=2)
    picture = nbformat.v4.new_output("execute_result", execution_count=2, data={
        "text/plain": "<Figure size 360x300 with 1 Axes>", "image/png": base64.b64encode(PNG_MAGIC).decode()})
    source = ("from verify.report.figures import lines", "lines(frame, x='a', y='b')")
    assert runner.cells_missing_images(_notebook(*source, outputs=[[], [picture]])) == []
    missing = runner.cells_missing_images(_notebook(*source, outputs=[[], [text_only]]))
    assert {i for i, _ in missing} == {1} and any("no image/png" in what for _, what in missing)
    assert any("text only: <Figure size 360x300" in what for _, what in missing)
    assert [i for i, _ in runner.cells_missing_images(_notebook(*source, outputs=[[], []]))] == [1]


def test_a_report_figure_renders_as_png_for_ipython_without_pyplot():
    """IPython's PNG formatter (a fresh one: no pyplot formatter registered) turns a report figure into PNG bytes."""
    from IPython.core.formatters import PNGFormatter

    from verify.report.figures import lines

    fig = lines(pd.DataFrame({"t": [0.1, 0.5, 1.0], "y": [1.0, 2.0, 4.0]}), x="t", y="y")
    png = PNGFormatter()(fig)
    assert isinstance(png, bytes) and png.startswith(PNG_MAGIC)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_and_shows_its_figures(path, tmp_path):
    # The kernel is the one a reader's Jupyter starts (ipykernel, inline backend), at the notebooks' small sizes,
    # importing this checkout (its root first on PYTHONPATH); a cell takes at most ~30 s here.
    nb = runner.execute_notebook(path, quick=True, timeout=300, startup_timeout=120)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert runner.cells_missing_images(nb) == []
    written = runner.write_executed(nb, tmp_path, path.stem)
    assert written[0] == tmp_path / f"{path.stem}.ipynb"
    pictures = written[1:]
    assert len(pictures) >= len(runner.figure_cells(nb))
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in pictures)


def test_the_command_writes_executed_copies_with_their_figures(tmp_path):
    """``python -m verify.notebooks`` on a one-cell notebook: the executed copy and its PNG come out; a notebook whose
    cell raises makes it exit 1 after writing the copy executed so far."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    draw = ("import pandas as pd\nfrom verify.report.figures import lines\n"
            "lines(pd.DataFrame({'t': [1.0, 2.0], 'y': [3.0, 1.0]}), x='t', y='y')")
    nbformat.write(_notebook(draw), folder / "01_draw.ipynb")
    nbformat.write(_notebook("x = 1", "raise ValueError('claim fails')"), folder / "02_fails.ipynb")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "verify.notebooks", "--notebooks", str(folder), "--quick",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "02_fails.ipynb: a cell raised ValueError: claim fails" in run.stderr
    assert "01_draw.ipynb: 1 figure cells, 1 pictures" in run.stdout
    executed = nbformat.read(out / "01_draw.ipynb", as_version=4)
    assert "image/png" in executed.cells[0].outputs[0]["data"]
    assert (out / "01_draw_figures" / "cell00.png").read_bytes().startswith(PNG_MAGIC)
    assert nbformat.read(out / "02_fails.ipynb", as_version=4).cells[0].execution_count == 1


def test_executed_copies_are_kept_out_of_git():
    """The command's default folder is ignored by git, so executed copies are never committed by accident."""
    target = runner.DEFAULT_OUT / "01_closed_form_diffusions_and_compositions.ipynb"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=ROOT)
    assert check.returncode == 0, f"{target} is not ignored by .gitignore"
