r"""The eight families of 2-D Gaussian compositions of the paper's revision (its sensitivity study), as data.

Every configuration composes ``Q ∝ P_A · P_B / P_0`` (weights ``(1, 1, −1)``) with base ``P_0 = N(0, I)``; each
family varies one knob over 20 values (the grids of the authors' public code):

=========================  ===============================================  ==================================
family                     ``P_A``, ``P_B``                                 knob (20 values)
=========================  ===============================================  ==================================
``anisotropic``            ``N(0, diag(r, 1))``, ``N(0, diag(1, r))``       ``r`` linear 1.05 → 2.10
``anisotropic_r_gt_2``     the same                                         ``r`` log-spaced 2 → 200
``orthogonal_shifts``      ``N((m, 0), I)``, ``N((0, m), I)``               ``m`` linear 0.3 → 3
``opposing_shifts``        ``N((m, 0), I)``, ``N((−m, 0), I)``              ``m`` linear 0.5 → 6
``shared_precision_p_lt_1`` both ``N(0, I/p)``                              ``p`` linear 0.95 → 0.73
``shared_precision_p_gt_1`` both ``N(0, I/p)``                              ``p`` log-spaced 1.1 → 16
``far_from_base``          both ``N((3, 3), s² I)``                         ``s`` log-spaced 0.6 → 0.03
``opposed_anisotropic``    ``N(m u, diag(1.35, 1.05))``, ``N(−m u, diag(1.05, 1.35))``, ``u = (1, −1)/√2``
                                                                            ``m`` linear 1.2 → 2.85
=========================  ===============================================  ==================================

:func:`family_configs` returns the configurations; :func:`exact_log_ress_inverse` gives, per source, the exact
sensitivity metric ``log rESS_i⁻¹ = log(1 + χ²(Q‖P_i))`` (``+inf`` where ``2Σ_i − Σ_Q`` is not positive definite,
equivalently ``2Λ_Q − Λ_i`` is not).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from closed_form.composition import Composition, compose
from closed_form.divergences import log1p_chi2
from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian
from closed_form.settings import PAPER_WEIGHTS

_U = np.array([1.0, -1.0]) / np.sqrt(2.0)


def _diag(mean, variances) -> Gaussian:
    return Gaussian(np.broadcast_to(np.asarray(mean, float), (2,)).copy(),
                    np.diag(np.broadcast_to(np.asarray(variances, float), (2,))))


# family -> (knob symbol, its 20 values, knob ↦ (P_A, P_B))
_SPECS: dict[str, tuple[str, np.ndarray, Callable[[float], tuple[Gaussian, Gaussian]]]] = {
    "anisotropic": ("r", np.linspace(1.05, 2.10, 20), lambda r: (_diag(0.0, [r, 1.0]), _diag(0.0, [1.0, r]))),
    "anisotropic_r_gt_2": ("r", np.geomspace(2.0, 200.0, 20),
                           lambda r: (_diag(0.0, [r, 1.0]), _diag(0.0, [1.0, r]))),
    "orthogonal_shifts": ("m", np.linspace(0.3, 3.0, 20), lambda m: (_diag([m, 0.0], 1.0), _diag([0.0, m], 1.0))),
    "opposing_shifts": ("m", np.linspace(0.5, 6.0, 20), lambda m: (_diag([m, 0.0], 1.0), _diag([-m, 0.0], 1.0))),
    "shared_precision_p_lt_1": ("p", np.linspace(0.95, 0.73, 20),
                                lambda p: (_diag(0.0, 1.0 / p), _diag(0.0, 1.0 / p))),
    "shared_precision_p_gt_1": ("p", np.geomspace(1.1, 16.0, 20),
                                lambda p: (_diag(0.0, 1.0 / p), _diag(0.0, 1.0 / p))),
    "far_from_base": ("s", np.geomspace(0.6, 0.03, 20), lambda s: (_diag(3.0, s * s), _diag(3.0, s * s))),
    "opposed_anisotropic": ("m", np.linspace(1.20, 2.85, 20),
                            lambda m: (_diag(m * _U, [1.35, 1.05]), _diag(-m * _U, [1.05, 1.35]))),
}

#: The eight family names, in the order of the table above.
FAMILY_NAMES: tuple[str, ...] = tuple(_SPECS)

#: Source labels in the order of :attr:`FamilyConfig.sources` (weights ``(1, 1, −1)``).
FAMILY_SOURCE_LABELS = ("A", "B", "0")


class FamilyConfig(NamedTuple):
    """One configuration: ``family``, its position ``index`` (0–19) on the knob grid, the knob's ``symbol`` and
    ``value``, the sources ``(P_A, P_B, P_0)`` and their composition ``Q ∝ P_A P_B / P_0``."""

    family: str
    index: int
    symbol: str
    value: float
    sources: tuple
    composition: Composition

    @property
    def weights(self) -> tuple:
        return PAPER_WEIGHTS


def family_configs(name: str) -> tuple[FamilyConfig, ...]:
    """The 20 configurations of family ``name`` (one of :data:`FAMILY_NAMES`), in knob order.

    Raises
    ------
    CatcompError
        For an unknown family; the message lists the valid names.
    """
    if name not in _SPECS:
        raise CatcompError(f"unknown family {name!r}; valid names are {', '.join(FAMILY_NAMES)}.")
    symbol, knobs, make = _SPECS[name]
    base = Gaussian.standard(2)
    out = []
    for i, k in enumerate(knobs):
        p_a, p_b = make(float(k))
        sources = (p_a, p_b, base)
        out.append(FamilyConfig(name, i, symbol, float(k), sources, compose(sources, PAPER_WEIGHTS)))
    return tuple(out)


def family_config(name: str, index: int) -> FamilyConfig:
    """Configuration ``index`` (0–19) of family ``name``."""
    configs = family_configs(name)
    if int(index) != index or not 0 <= index < len(configs):
        raise CatcompError(f"index must be an integer in [0, {len(configs) - 1}], got {index!r}.")
    return configs[int(index)]


def exact_log_ress_inverse(composition: Composition) -> np.ndarray:
    r"""``log rESS_i⁻¹ = log(1 + χ²(Q‖P_i))`` for each source ``P_i`` of a Gaussian composition, exactly.

    ``+inf`` where ``2Σ_i − Σ_Q`` is not positive definite (``E_{P_i}(dQ/dP_i)² = ∞``). The paper's metric is the
    maximum over sources, ``−log rESS = max_i log rESS_i⁻¹``.
    """
    q = composition.target
    return np.array([float(log1p_chi2(q, p)) for p in composition.sources])


__all__ = ["FAMILY_NAMES", "FAMILY_SOURCE_LABELS", "FamilyConfig", "exact_log_ress_inverse", "family_config",
           "family_configs"]
