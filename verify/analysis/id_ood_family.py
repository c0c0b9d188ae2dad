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


__all__ = ["FAMILY_RTOL", "family_parameter"]
