"""Settings files: TOML compositions parsed into closed_form.Setting objects; invalid files name the key and what
would be valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from closed_form import Gaussian, GaussianMixture
from closed_form.errors import CatcompError
from closed_form.settings_file import EXAMPLE, SettingsFileError, load_settings, loads_settings

ROOT = Path(__file__).resolve().parents[1]

GAUSSIAN = """
[[setting]]
name = "g3"
weights = [1, 1, -1]
labels = ["A", "B", "base"]
{flags}
[[setting.source]]
mean = [2, 0, 0]
{a}
[[setting.source]]
mean = [0, 2, 0]
cov = [[2, 0, 0], [0, 0.5, 0], [0, 0, 1]]
[[setting.source]]
mean = [0, 0, 0]
variance = 1.0
"""


def gaussian_text(a="variances = [0.5, 2, 1]", flags=""):
    return GAUSSIAN.format(a=a, flags=flags)


def test_the_shipped_example_parses_and_matches_the_module_constant():
    from_file = load_settings(ROOT / "closed_form" / "example_settings.toml")
    from_text = loads_settings(EXAMPLE)
    assert [s.to_spec() for s in from_file] == [s.to_spec() for s in from_text]
    g, m = from_file
    assert (g.name, g.labels, g.weights, g.factorized) == ("A_times_B_over_base", ("A", "B", "base"), (1.0, 1.0, -1.0),
                                                           False)
    assert all(isinstance(s, Gaussian) for s in g.sources) and all(isinstance(s, GaussianMixture) for s in m.sources)
    # Q ∝ A·B/base by hand: precision diag(2 + 1/2 − 1, 1/2 + 2 − 1, 1) and η = (2·2, 2·2, 0)
    np.testing.assert_allclose(np.asarray(g.composition.target.mean), [8 / 3, 8 / 3, 0.0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(np.asarray(g.composition.target.cov), np.diag([2 / 3, 2 / 3, 1.0]), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(m.sources[1].covs), [np.diag([1.5, 0.5])] * 2)
    np.testing.assert_allclose(np.asarray(m.sources[0].covs), [np.eye(2)] * 2)


def test_covariance_forms_agree_and_flags_and_per_source_labels_are_read():
    by_var = loads_settings(gaussian_text())[0]
    by_cov = loads_settings(gaussian_text("cov = [[0.5, 0, 0], [0, 2, 0], [0, 0, 1]]"))[0]
    assert by_var.to_spec() == by_cov.to_spec()
    flagged = loads_settings(gaussian_text(flags="factorized = true\nin_distribution = false"))[0]
    assert (flagged.factorized, flagged.in_distribution) == (True, False)
    text = gaussian_text().replace('labels = ["A", "B", "base"]\n', "")
    per_source = text.replace("mean = [2, 0, 0]", 'label = "a"\nmean = [2, 0, 0]').replace(
        "mean = [0, 2, 0]", 'label = "b"\nmean = [0, 2, 0]').replace("mean = [0, 0, 0]", 'label = "c"\nmean = [0, 0, 0]')
    assert loads_settings(per_source)[0].labels == ("a", "b", "c")
    assert loads_settings(text)[0].labels == ("P_1", "P_2", "P_3")


@pytest.mark.parametrize("text, key, hint", [
    ("", "no [[setting]]", "at least one"),
    ('[[setting]]\nname = "x"\nweights = [1]\n', "setting[0]", "missing key 'source'"),
    (gaussian_text().replace("weights = [1, 1, -1]", "weights = [1, 1]"), "setting[0].weights",
     "one weight per"),
    (gaussian_text("covariance = [1, 1, 1]"), "setting[0].source[0]", "valid keys"),
    (gaussian_text("cov = [[1, 0], [0, 1]]"), "setting[0].source[0].cov", "must be 3 × 3"),
    (gaussian_text("variances = [1, 1, 1]\nvariance = 2.0"), "setting[0].source[0]", "exactly one of"),
    (gaussian_text("variances = [1, -1, 1]"), "setting[0] ('g3')", "positive definite"),
    (gaussian_text("variances = [0.1, 0.1, 0.1]").replace("variance = 1.0", "variance = 0.01"), "setting[0] ('g3')",
     "not normalizable"),
    (gaussian_text() + gaussian_text(), "appear more than once", "own name"),
    (gaussian_text(flags='factorized = "yes"'), "setting[0].factorized", "true or false"),
    (gaussian_text().replace("mean = [0, 0, 0]", "means = [[0, 0, 0]]"), "setting[0].source[2]", "'weights'"),
    (gaussian_text().replace("[[setting]]", "title = 'x'\n[[setting]]"), "unknown top-level", "[[setting]] tables"),
    ("[[setting]\n", "not valid TOML", ""),
])
def test_invalid_files_name_the_key_and_what_would_be_valid(text, key, hint):
    with pytest.raises(SettingsFileError) as info:
        loads_settings(text, where="mine.toml")
    message = str(info.value)
    assert "mine.toml" in message and key in message and hint in message, message
    assert isinstance(info.value, CatcompError)


def test_mixture_forms_and_a_missing_file(tmp_path):
    text = """
[[setting]]
name = "mix"
weights = [1, 1]
[[setting.source]]
weights = [0.3, 0.7]
means = [[-1, 0], [1, 0]]
covs = [[[1, 0], [0, 1]], [[2, 0], [0, 1]]]
[[setting.source]]
weights = [0.5, 0.5]
means = [[0, -1], [0, 1]]
variances = [[1, 2], [1, 2]]
"""
    (m,) = loads_settings(text)
    np.testing.assert_allclose(np.asarray(m.sources[0].weights), [0.3, 0.7])
    np.testing.assert_allclose(np.asarray(m.sources[1].covs), [np.diag([1.0, 2.0])] * 2)
    with pytest.raises(SettingsFileError, match="3 weights for 2 component"):
        loads_settings(text.replace("weights = [0.3, 0.7]", "weights = [0.3, 0.3, 0.4]"))
    with pytest.raises(SettingsFileError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
