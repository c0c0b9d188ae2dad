"""``--size paper``: experiments with paper-size cells run them, the others their default cells."""

import pytest

from verify.__main__ import main
from verify.experiments import REGISTRY
from verify.report.registry import Experiment, RegistryError


def _experiment(**kwargs):
    return Experiment(name="toy", title="toy", compute="verify.experiments.ress_families:family_sweep", default=({"a": 1},),
                      quick=({"a": 0},), **kwargs)


def test_paper_cells_are_chosen_only_at_size_paper():
    e = _experiment(paper=({"a": 2},))
    assert e.cells("default") == ({"a": 1},)
    assert e.cells("paper") == ({"a": 2},)
    assert e.cells("quick") == ({"a": 0},)


def test_experiments_without_paper_cells_fall_back_to_default():
    assert _experiment().cells("paper") == ({"a": 1},)


def test_unknown_size_is_refused():
    with pytest.raises(RegistryError, match="default, paper"):
        _experiment().cells("huge")


def test_ress_families_defines_the_authors_sizes():
    cells = REGISTRY["ress_families"].cells("paper")
    assert len(cells) == 8
    assert all(c["n_refits"] == 2000 and c["n_draws"] == 12 and c["n_eval"] == 20_000 for c in cells)


def test_quick_and_paper_exclude_each_other(capsys):
    assert main(["--quick", "--size", "paper", "--only", "vlb_estimator"]) == 2
    assert "exclude" in capsys.readouterr().err
