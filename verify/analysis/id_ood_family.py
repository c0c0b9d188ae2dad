"""Which settings are members of the ID→OOD family (:func:`closed_form.settings.id_ood_family`), and where.

The family is a property of the composition, not of its name: a setting is the member ``v`` when its sources and
weights are those of ``id_ood_family(v)`` (``v`` read off its third source). The paper's Gaussian settings are members
too (NFC_ID ``v = 20``, FC_ID ``v = 10``, NFC_OOD ``v = 1.1``, FC_OOD ``v = 1``).
"""

from __future__ import annotations

import numpy as np

from closed_form.gaussian import Gaussian
from closed_form.settings import id_ood_family

#: Sources are compared entrywise to this relative tolerance (a spec written as JSON round-trips floats exactly; the
#: margin only absorbs a user's own rounding to ~15 digits).
FAMILY_RTOL = 1e-12


def family_parameter(setting) -> float:
    """The base variance ``v`` of the ID→OOD family member that ``setting`` is, ``nan`` if it is none."""
    sources = setting.sources
    if len(sources) != 3 or setting.dim != 2 or not all(isinstance(s, Gaussian) for s in sources):
        return float("nan")
    v = float(np.asarray(sources[2].cov)[0, 0])
    if not v > 10.0 / 11.0:
        return float("nan")
    ref = id_ood_family(v)
    same = np.allclose(setting.weights, ref.weights, rtol=FAMILY_RTOL, atol=0.0) and all(
        np.allclose(np.asarray(a.mean), np.asarray(b.mean), rtol=0.0, atol=FAMILY_RTOL)
        and np.allclose(np.asarray(a.cov), np.asarray(b.cov), rtol=FAMILY_RTOL, atol=0.0)
        for a, b in zip(sources, ref.sources))
    return v if same else float("nan")


def family_rows(frame):
    """The rows of ``frame`` (a column ``family_base_variance``, NaN off the family) that are ID→OOD family
    members, one per base variance, ordered from the most ID (largest ``v``)."""
    fam = frame[np.isfinite(frame["family_base_variance"].astype(float))]
    return fam.drop_duplicates("family_base_variance").sort_values("family_base_variance", ascending=False)


def family_steps(values, rtol: float) -> tuple[int, int, np.ndarray]:
    """``(falls, flats, rel)`` of a quantity along the family: ``rel`` the relative change at each step (``inf`` for
    a step from a finite value to ``∞``, ``0`` between two infinities), a fall beyond ``rtol``, a flat step within
    it (a step the quantity's accuracy cannot call a rise)."""
    x = np.asarray(values, dtype=float)
    both_inf = np.isinf(x[:-1]) & np.isinf(x[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(both_inf, 0.0, (x[1:] - x[:-1]) / np.abs(x[:-1]))
    rel = np.where(np.isinf(x[1:]) & ~np.isinf(x[:-1]), np.inf, rel)
    return int(np.sum(rel < -rtol)), int(np.sum(np.abs(rel) <= rtol)), rel


__all__ = ["FAMILY_RTOL", "family_parameter", "family_rows", "family_steps"]
