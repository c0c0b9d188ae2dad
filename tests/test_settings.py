"""Setting objects: what every experiment takes. A paper setting, a user's composition and a spec (plain JSON, as a
report cell or a settings file carries it) give the same composition; invalid input raises naming what is valid."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closed_form import (
    SETTING_NAMES,
    CatcompError,
    Gaussian,
    GaussianMixture,
    ImproperCompositionError,
    NotGaussianSettingError,
    Setting,
    as_setting,
    compose,
    paper_setting,
)
from closed_form.settings import id_ood_family
from tests.strategies import spd_matrix


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_paper_settings_carry_the_papers_labels(name):
    s = paper_setting(name)
    assert s.name == name and s.labels == ("P_a1", "P_a2", "P_0") and s.weights == (1.0, 1.0, -1.0)
    assert s.in_distribution is name.endswith("_ID")
    assert s.factorized is ({"FC_ID": True, "FC_OOD": True, "NFC_ID": False, "NFC_OOD": False}.get(name))
    assert s.is_gaussian is (not name.startswith("GMM"))
    assert s.to_spec() == {"paper": name} and as_setting(s.to_spec()) is s and as_setting(name) is s


def _user_setting(rng, d=3, mixture=False):
    a = Gaussian(rng.normal(size=d), spd_matrix(rng, d, 1.0, 2.0))
    b = Gaussian(rng.normal(size=d), spd_matrix(rng, d, 1.0, 2.0))
    if mixture:
        b = GaussianMixture(np.array([0.3, 0.7]), rng.normal(size=(2, d)), np.stack([np.eye(d), 2 * np.eye(d)]))
    return Setting("mine", (a, b), (1.0, 1.0), ("A", "B"), in_distribution=False)


@pytest.mark.parametrize("mixture", [False, True])
def test_a_spec_round_trips_through_json_to_the_same_composition(mixture):
    s = _user_setting(np.random.default_rng(3), mixture=mixture)
    back = Setting.from_spec(json.loads(json.dumps(s.to_spec())))
    assert (back.name, back.labels, back.weights, back.in_distribution, back.factorized) == \
        ("mine", ("A", "B"), (1.0, 1.0), False, None)
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(np.asarray(back.composition.target_logpdf_unnormalized(x)),
                               np.asarray(s.composition.target_logpdf_unnormalized(x)), rtol=1e-13)
    assert back.is_gaussian is (not mixture)


def test_a_composition_wraps_and_the_family_matches_the_paper_ends():
    comp = paper_setting("NFC_OOD").composition
    s = Setting.from_composition(comp, "again", ("a", "b", "c"))
    assert s.sources == comp.sources and s.name == "again" and s.factorized is None
    assert as_setting(comp).name == "custom"
    for v, name in ((20.0, "NFC_ID"), (1.1, "NFC_OOD"), (10.0, "FC_ID"), (1.0, "FC_OOD")):
        family = id_ood_family(v)
        np.testing.assert_allclose(np.asarray(family.composition.target.cov),
                                   np.asarray(paper_setting(name).composition.target.cov), rtol=1e-12)
        assert family.factorized is paper_setting(name).factorized


def test_gaussian_only_operations_say_which_sources_are_mixtures():
    with pytest.raises(NotGaussianSettingError, match="GMM_OOD.*P_a1, P_a2, P_0"):
        paper_setting("GMM_OOD").require_gaussian("the amplification eigenvalue")
    paper_setting("NFC_OOD").require_gaussian("anything")  # Gaussian: no error


@pytest.mark.parametrize("spec, match", [
    ({"name": "x", "weights": [1.0]}, "needs the key 'sources'"),
    ({"name": "x", "weights": [1.0], "sources": [{"mean": [0.0]}]}, "exactly 'mean' and 'cov'"),
    ({"name": "x", "weights": [1.0], "sources": [{"mean": [0.0], "cov": [[1.0]]}], "colour": 1}, "colour"),
    ({"paper": "FC_OOD", "name": "y"}, "single key 'paper'|one key 'paper'"),
    ({"paper": "nope"}, "valid names are"),
    ({"name": "bad name!", "weights": [1.0], "sources": [{"mean": [0.0], "cov": [[1.0]]}]}, "letters, digits"),
    ({"name": "x", "weights": [1.0], "labels": ["a", "b"], "sources": [{"mean": [0.0], "cov": [[1.0]]}]},
     "give 1 distinct"),
])
def test_invalid_specs_name_what_would_be_valid(spec, match):
    with pytest.raises(CatcompError, match=match):
        Setting.from_spec(spec)


def test_an_improper_setting_is_refused_and_settings_are_immutable():
    with pytest.raises(ImproperCompositionError):
        Setting("bad", (Gaussian(np.zeros(1), np.eye(1)), Gaussian(np.zeros(1), 0.5 * np.eye(1))), (1.0, -1.0))
    s = paper_setting("FC_ID")
    with pytest.raises(AttributeError):
        s.name = "other"
    with pytest.raises(CatcompError, match="expected a Setting"):
        as_setting(3.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 4), w=st.floats(0.2, 3.0))
def test_any_proper_gaussian_spec_gives_the_composition_compose_gives(seed, d, w):
    rng = np.random.default_rng(seed)
    sources = [Gaussian(rng.normal(size=d), spd_matrix(rng, d, 1.0)) for _ in range(2)]
    s = Setting.from_spec(json.loads(json.dumps(Setting("s", sources, (w, 1.0)).to_spec())))
    np.testing.assert_allclose(np.asarray(s.composition.target.cov),
                               np.asarray(compose(sources, (w, 1.0)).target.cov), rtol=1e-12)
