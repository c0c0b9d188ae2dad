"""The paper's experimental settings, exactly as its authors published them.

Gaussian 2×2 design (zero means, diagonal covariances): ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base
``10·I`` (FC_ID), ``20·I`` (NFC_ID), ``I`` (FC_OOD), ``1.1·I`` (NFC_OOD). Gaussian-mixture settings: three
conditions sharing the means and standard deviation of one isotropic mixture, with different component weights.
All use weights ``(1, 1, −1)``: ``Q ∝ P_a1 · P_a2 / P_0``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from closed_form.composition import Composition, compose
from closed_form.errors import CatcompError
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


class PaperSetting(NamedTuple):
    """One of the paper's settings: sources ``(a1, a2, base)``, weights ``(1, 1, −1)`` and their composition.

    ``factorized`` is whether the conditionals factorize (naive composition exact at every noise level);
    ``in_distribution`` is whether the target lies in the sources' typical sets, as the paper labels them.
    """

    name: str
    sources: tuple
    weights: tuple
    composition: Composition
    factorized: bool | None
    in_distribution: bool


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


def _uniform_over(idx, k):
    w = np.zeros(k)
    w[list(idx)] = 1.0 / len(idx)
    return w


def paper_setting(name: str) -> PaperSetting:
    """The paper's setting ``name`` ∈ ``SETTING_NAMES``.

    Raises
    ------
    CatcompError
        For an unknown name; the message lists the valid ones.
    """
    label = in_distribution(name)  # raises for an unknown name
    if name in _GAUSSIAN_BASE_VARIANCE:
        a1 = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
        a2 = Gaussian(np.zeros(2), np.diag([1.0, 10.0]))
        base = Gaussian.isotropic(np.zeros(2), _GAUSSIAN_BASE_VARIANCE[name])
        sources = (a1, a2, base)
        fc = name.startswith("FC")
    else:  # one of the mixture settings (the name was checked above)
        spec = _GMM[name]
        means = np.asarray(spec["means"], dtype=np.float64)
        k = len(means)
        a1 = GaussianMixture.isotropic(_uniform_over(spec["a1"], k), means, spec["std"])
        a2 = GaussianMixture.isotropic(_uniform_over(spec["a2"], k), means, spec["std"])
        base = GaussianMixture.isotropic(np.full(k, 1.0 / k), means, spec["std"])
        sources = (a1, a2, base)
        fc = None  # the factorization notion of the Gaussian design is not defined for these mixtures
    return PaperSetting(name, sources, PAPER_WEIGHTS, compose(sources, PAPER_WEIGHTS), fc, label)


__all__ = ["GAUSSIAN_SETTING_NAMES", "MIXTURE_SETTING_NAMES", "PAPER_WEIGHTS", "SETTING_NAMES", "PaperSetting",
           "in_distribution", "paper_setting"]
