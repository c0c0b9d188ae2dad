"""The paper's experimental settings, exactly as its authors published them.

Gaussian 2×2 design (zero means, diagonal covariances): ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base
``10·I`` (FC_ID), ``20·I`` (NFC_ID), ``I`` (FC_OOD), ``1.1·I`` (NFC_OOD). Gaussian-mixture settings: three
conditions sharing the means and standard deviation of one isotropic mixture, with different component weights.
All use weights ``(1, 1, −1)``: ``Q ∝ P_a1 · P_a2 / P_0``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import numpy as np

from closed_form.composition import Composition, compose
from closed_form.errors import CatcompError, NotGaussianSettingError
from closed_form.gaussian import Gaussian
from closed_form.mixture import GaussianMixture

PAPER_WEIGHTS = (1.0, 1.0, -1.0)
#: The paper's Gaussian 2×2 design: (non-)factorized conditionals × in-/out-of-distribution target.
GAUSSIAN_SETTING_NAMES = ("FC_ID", "NFC_ID", "FC_OOD", "NFC_OOD")
#: The paper's Gaussian-mixture settings.
MIXTURE_SETTING_NAMES = ("GMM_ID", "GMM_OOD")
#: Every setting :func:`paper_setting` knows, the Gaussian ones first.
SETTING_NAMES = GAUSSIAN_SETTING_NAMES + MIXTURE_SETTING_NAMES

_GAUSSIAN_BASE_VARIANCE = dict(zip(GAUSSIAN_SETTING_NAMES, (10.0, 20.0, 1.0, 1.1)))

_GMM = {
    "GMM_ID": dict(
        means=[(-3, 2.5), (0, 2.5), (3, 2.5), (-3, -2.5), (0, -2.5), (3, -2.5)],
        std=0.6,
        a1=(0, 1, 2, 3),
        a2=(1, 2, 4, 5),
    ),
    "GMM_OOD": dict(means=[(-6, 1.5), (9, 0), (0, -9), (-1.5, 6)], std=1.0, a1=(0, 1), a2=(2, 3)),
}


#: The paper's names of its three sources, in the order of :data:`PAPER_WEIGHTS`.
PAPER_SOURCE_LABELS = ("P_a1", "P_a2", "P_0")


class Setting:
    """A composition ``Q ∝ Π_i P_i^{w_i}`` with the names a report and a user give it: what every experiment takes.

    Parameters
    ----------
    name : str
        A short identifier (letters, digits, ``_``, ``-``, ``+``, ``.``): column value, file and table label.
    sources : sequence of Gaussian or GaussianMixture
    weights : sequence of float
        One per source; the composition must be proper (:func:`closed_form.compose` checks it).
    labels : sequence of str, optional
        One name per source (default ``P_1, P_2, …``).
    factorized : bool or None
        Whether the conditionals factorize (naive composition exact at every noise level), where known.
    in_distribution : bool or None
        Whether the target lies in the sources' typical sets, where a label is given (the paper's ``*_ID``).

    Build one with :func:`paper_setting`, :meth:`from_composition` or :meth:`from_spec` (plain JSON data, as a
    report cell or a settings file carries it); :func:`as_setting` accepts any of these.

    Raises
    ------
    CatcompError
        For an invalid name or labels of the wrong number; :func:`closed_form.compose`'s errors for sources and
        weights that do not make a proper composition.
    """

    __slots__ = ("name", "sources", "weights", "labels", "factorized", "in_distribution", "composition")

    def __init__(self, name: str, sources, weights, labels=None, *, factorized: bool | None = None,
                 in_distribution: bool | None = None):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+\-]+", name):
            raise CatcompError(f"setting name {name!r} must be a non-empty string of letters, digits and _ . + -.")
        composition = compose(tuple(sources), tuple(float(w) for w in np.asarray(weights, dtype=np.float64)))
        n = len(composition.sources)
        labels = tuple(f"P_{i + 1}" for i in range(n)) if labels is None else tuple(str(x) for x in labels)
        if len(labels) != n or len(set(labels)) != n or not all(labels):
            raise CatcompError(f"setting {name!r} has {n} sources and labels {list(labels)}; give {n} distinct, "
                               "non-empty labels, one per source.")
        for flag, value in (("factorized", factorized), ("in_distribution", in_distribution)):
            if value is not None and not isinstance(value, (bool, np.bool_)):
                raise CatcompError(f"{flag} of setting {name!r} is {value!r}; expected True, False or None.")
        for slot, value in (("name", name), ("sources", composition.sources),
                            ("weights", tuple(float(w) for w in composition.weights)), ("labels", labels),
                            ("factorized", None if factorized is None else bool(factorized)),
                            ("in_distribution", None if in_distribution is None else bool(in_distribution)),
                            ("composition", composition)):
            object.__setattr__(self, slot, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Setting is immutable; build a new one instead of setting {name!r}.")

    def __repr__(self):
        kinds = ", ".join(f"{lab}: {type(s).__name__}" for lab, s in zip(self.labels, self.sources))
        return f"Setting({self.name!r}, d={self.dim}, weights={list(self.weights)}, [{kinds}])"

    @property
    def dim(self) -> int:
        return self.composition.dim

    @property
    def is_gaussian(self) -> bool:
        """Whether every source is a single Gaussian (closed-form laws and eigenvalues exist)."""
        return all(isinstance(s, Gaussian) for s in self.sources)

    def require_gaussian(self, what: str) -> None:
        """Raise :class:`NotGaussianSettingError` unless every source is Gaussian; ``what`` names the operation."""
        if not self.is_gaussian:
            mixtures = [lab for lab, s in zip(self.labels, self.sources) if not isinstance(s, Gaussian)]
            raise NotGaussianSettingError(
                f"{what} needs Gaussian sources; setting {self.name!r} has Gaussian-mixture source(s) "
                f"{', '.join(mixtures)}. Use a setting whose sources are all Gaussian (closed_form.Gaussian).")

    @classmethod
    def from_composition(cls, composition: Composition, name: str = "custom", labels=None, *,
                         factorized: bool | None = None, in_distribution: bool | None = None) -> "Setting":
        """Wrap a user's :class:`~closed_form.Composition` (its sources and weights) as a setting."""
        if not isinstance(composition, Composition):
            raise CatcompError(f"from_composition expects a closed_form.Composition, got {type(composition).__name__}.")
        return cls(name, composition.sources, composition.weights, labels, factorized=factorized,
                   in_distribution=in_distribution)

    def to_spec(self) -> dict:
        """Plain JSON data that :meth:`from_spec` turns back into this setting (a paper setting is its name)."""
        if self.name in SETTING_NAMES and self is paper_setting(self.name):
            return {"paper": self.name}
        return {
            "name": self.name,
            "labels": list(self.labels),
            "weights": list(self.weights),
            "factorized": self.factorized,
            "in_distribution": self.in_distribution,
            "sources": [_source_spec(s) for s in self.sources],
        }

    @classmethod
    def from_spec(cls, spec) -> "Setting":
        """The setting described by ``spec``: ``{"paper": NAME}``, or ``name``, ``weights``, ``sources`` (each
        ``{"mean", "cov"}`` for a Gaussian or ``{"weights", "means", "covs"}`` for a mixture) and optionally
        ``labels``, ``factorized``, ``in_distribution``.

        Raises
        ------
        CatcompError
            Naming the missing or unknown key and what would be valid.
        """
        if not isinstance(spec, Mapping):
            raise CatcompError(f"a setting spec must be a mapping, got {type(spec).__name__}.")
        if "paper" in spec:
            if set(spec) != {"paper"}:
                raise CatcompError(f"a paper setting spec has the one key 'paper'; got keys {sorted(spec)}.")
            return paper_setting(spec["paper"])
        allowed = {"name", "labels", "weights", "factorized", "in_distribution", "sources"}
        unknown = set(spec) - allowed
        if unknown:
            raise CatcompError(f"unknown key(s) {sorted(unknown)} in a setting spec; valid keys are "
                               f"{sorted(allowed)} (or the single key 'paper').")
        for key in ("name", "weights", "sources"):
            if key not in spec:
                raise CatcompError(f"a setting spec needs the key {key!r} (valid keys: {sorted(allowed)}).")
        sources = [_source_from_spec(s, f"sources[{i}]") for i, s in enumerate(spec["sources"])]
        return cls(spec["name"], sources, spec["weights"], spec.get("labels"), factorized=spec.get("factorized"),
                   in_distribution=spec.get("in_distribution"))


def _source_spec(source) -> dict:
    if isinstance(source, Gaussian):
        return {"mean": np.asarray(source.mean).tolist(), "cov": np.asarray(source.cov).tolist()}
    return {"weights": np.asarray(source.weights).tolist(), "means": np.asarray(source.means).tolist(),
            "covs": np.asarray(source.covs).tolist()}


def _source_from_spec(spec, where: str):
    if not isinstance(spec, Mapping):
        raise CatcompError(f"{where} must be a mapping, got {type(spec).__name__}.")
    keys = set(spec)
    if keys == {"mean", "cov"}:
        return Gaussian(np.asarray(spec["mean"], dtype=np.float64), np.asarray(spec["cov"], dtype=np.float64))
    if keys == {"weights", "means", "covs"}:
        return GaussianMixture(np.asarray(spec["weights"], dtype=np.float64),
                               np.asarray(spec["means"], dtype=np.float64),
                               np.asarray(spec["covs"], dtype=np.float64))
    raise CatcompError(f"{where} has keys {sorted(keys)}; a Gaussian source has exactly 'mean' and 'cov', a "
                       "mixture exactly 'weights', 'means' and 'covs'.")


def as_setting(value) -> Setting:
    """``value`` as a :class:`Setting`: a setting itself, a paper setting's name, a spec mapping
    (:meth:`Setting.from_spec`) or a :class:`~closed_form.Composition` (named ``"custom"``).

    Raises
    ------
    CatcompError
        For anything else, or an invalid name or spec.
    """
    if isinstance(value, Setting):
        return value
    if isinstance(value, str):
        return paper_setting(value)
    if isinstance(value, Mapping):
        return Setting.from_spec(value)
    if isinstance(value, Composition):
        return Setting.from_composition(value)
    raise CatcompError(f"expected a Setting, a paper setting name ({', '.join(SETTING_NAMES)}), a setting spec "
                       f"mapping or a Composition; got {type(value).__name__}.")


def in_distribution(name: str) -> bool:
    """Whether the paper labels setting ``name`` in-distribution (``*_ID``), known without building its sources.

    Raises
    ------
    CatcompError
        For an unknown name; the message lists the valid ones.
    """
    if name not in SETTING_NAMES:
        raise CatcompError(f"unknown paper setting {name!r}; valid names are {', '.join(SETTING_NAMES)}.")
    return name.endswith("_ID")


def id_ood_family(base_variance: float) -> Setting:
    """The ID→OOD family member with ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)`` and base ``v·I``, weights
    ``(1, 1, −1)``: ``v = 20`` is NFC_ID, ``v = 1.1`` NFC_OOD; the target is ``N(0, 10v/(11v − 10)·I)``, proper
    for ``v > 10/11``. Named ``family_v<v>``. The conditionals factorize only at ``v = 10`` and ``v = 1`` (FC_ID,
    FC_OOD); the ID/OOD label is left unknown (``None``): the family is there to go from one to the other.

    Raises
    ------
    ImproperCompositionError
        For ``v ≤ 10/11``.
    """
    v = float(base_variance)
    a1 = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
    a2 = Gaussian(np.zeros(2), np.diag([1.0, 10.0]))
    base = Gaussian.isotropic(np.zeros(2), v)
    return Setting(f"family_v{v:.4g}", (a1, a2, base), PAPER_WEIGHTS, PAPER_SOURCE_LABELS,
                   factorized=v in (1.0, 10.0))


def _uniform_over(idx, k):
    w = np.zeros(k)
    w[list(idx)] = 1.0 / len(idx)
    return w


def paper_setting(name: str) -> Setting:
    """The paper's setting ``name`` ∈ ``SETTING_NAMES``, with sources labelled ``P_a1, P_a2, P_0`` (built once per
    process: settings are immutable).

    Raises
    ------
    CatcompError
        For an unknown name; the message lists the valid ones.
    """
    in_distribution(name)  # raises for an unknown name
    return _paper_setting(name)


@functools.lru_cache(maxsize=None)
def _paper_setting(name: str) -> Setting:
    label = in_distribution(name)
    fc = name.startswith("FC") if name in _GAUSSIAN_BASE_VARIANCE else None  # undefined for the mixtures
    return Setting(name, _paper_sources(name), PAPER_WEIGHTS, PAPER_SOURCE_LABELS, factorized=fc,
                   in_distribution=label)


def _paper_sources(name: str) -> tuple:
    if name in _GAUSSIAN_BASE_VARIANCE:
        a1 = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
        a2 = Gaussian(np.zeros(2), np.diag([1.0, 10.0]))
        base = Gaussian.isotropic(np.zeros(2), _GAUSSIAN_BASE_VARIANCE[name])
        return (a1, a2, base)
    spec = _GMM[name]
    means = np.asarray(spec["means"], dtype=np.float64)
    k = len(means)
    a1 = GaussianMixture.isotropic(_uniform_over(spec["a1"], k), means, spec["std"])
    a2 = GaussianMixture.isotropic(_uniform_over(spec["a2"], k), means, spec["std"])
    base = GaussianMixture.isotropic(np.full(k, 1.0 / k), means, spec["std"])
    return (a1, a2, base)


__all__ = ["GAUSSIAN_SETTING_NAMES", "MIXTURE_SETTING_NAMES", "NotGaussianSettingError", "PAPER_SOURCE_LABELS",
           "PAPER_WEIGHTS", "SETTING_NAMES", "Setting", "as_setting", "id_ood_family", "in_distribution",
           "paper_setting"]
