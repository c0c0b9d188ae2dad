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


def test_quick_and_size_exclude_each_other(capsys):
    """--quick is --size quick; both at once is refused before anything runs (argparse exits with status 2)."""
    with pytest.raises(SystemExit) as exit_:
        main(["--quick", "--size", "paper", "--only", "vlb_estimator"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_not_applicable_says_why_for_each_kind_of_experiment():
    from closed_form import paper_setting
    from verify.report.registry import Experiment, gaussian_only

    mixture, gaussian = paper_setting("GMM_OOD"), paper_setting("FC_ID")
    fixed = Experiment("fixed", "t", "m:f", default=({"a": 1},), quick=())
    assert fixed.not_applicable("quick", [gaussian]) == "it has no cells at --size quick"
    assert "does not take a setting" in fixed.not_applicable("default", [gaussian])
    per = Experiment("per", "t", "m:f", default=({"setting": "FC_ID", "n": 2},), quick=(), applies_to=gaussian_only)
    assert per.cells("default", [mixture]) == ()
    assert per.not_applicable("default", [mixture, gaussian]).startswith("GMM_OOD: needs Gaussian sources")
    assert "FC_ID" not in per.not_applicable("default", [mixture, gaussian])
    assert per.cells("default", [mixture, gaussian]) == ({"setting": {"paper": "FC_ID"}, "n": 2},)


def test_the_summary_names_the_settings_an_experiment_skipped_and_why():
    from verify.report.claims import Check, CheckResult, Outcome
    from verify.report.summary import ExperimentRecord, render_summary

    record = ExperimentRecord("per", "t", "ran", claims=("F2",), cells=1,
                              not_applicable_to=(("mine", "needs Gaussian sources"),))
    check = Check("F2", "a statement", lambda frame: Outcome.decide(True, {}))
    text = render_summary([record], [CheckResult("per", check, Outcome.decide(True, {}, judged=("FC_ID",)))], {})
    assert "`per` did not run on every setting given — mine: needs Gaussian sources." in text
    assert "not applicable to mine (needs Gaussian sources)" in text and "Judged: FC_ID." in text
