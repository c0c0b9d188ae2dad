r"""Sensitivity of the composed distribution to errors in the sources [ours; the amplification
ratio ``A`` is the paper's revision's].

With ``P̂_i = P_i(1 + u_i)`` and ``Q̂ ∝ Π_i P̂_i^{w_i}``, to first order in ``u``,
``Q̂ ≈ Q(1 + Σ_i w_i(u_i − E_Q u_i))``, hence

.. math:: TV(Q, Q̂) ≲ \tfrac12 \sum_i |w_i| \big(E_Q|u_i| + |E_Q u_i|\big)
          \le \sum_i |w_i| \sqrt{1 + χ^2(Q\|P_i)}\;\|u_i\|_{L^2(P_i)},\qquad
          \|u_i\|^2_{L^2(P_i)} = χ^2(P̂_i\|P_i),

by Cauchy–Schwarz, ``E_Q|u| = E_{P}[\tfrac{dQ}{dP}|u|] ≤ \sqrt{E_P(dQ/dP)^2}\,\|u\|_{L^2(P)}``. The bound is first
order: :func:`sensitivity_bound` reports the measured ``TV`` beside it rather than asserting it for large errors.
The amplification ``A = TV(Q, Q̂)/Σ_i TV(P_i, P̂_i)`` is what the paper's revision plots against
``rESS^{−1/2} = √(1 + χ²)``; ``A_{L²} = TV(Q, Q̂)/Σ_i|w_i|‖u_i‖`` is what the bound controls (``≤ max_i √rESS_i⁻¹``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from closed_form.composition import compose
from closed_form.divergences import chi2, ress_inverse, total_variation_gaussians


class SensitivityBound(NamedTuple):
    """Measured ``TV(Q, Q̂)`` beside the first-order bound, with per-source ingredients and amplification ratios."""

    tv_target: float
    bound: float
    tv_sources: np.ndarray
    u_norms: np.ndarray
    ress_inverse: np.ndarray
    amplification: float
    amplification_l2: float
    factor: float

    @property
    def holds(self) -> bool:
        return bool(self.tv_target <= self.bound)


def sensitivity_bound(sources, perturbed, weights) -> SensitivityBound:
    r"""Measured ``TV(Q, Q̂)`` (exact, :func:`closed_form.divergences.total_variation_gaussians`) and the first-order bound
    ``Σ_i |w_i| √(1 + χ²(Q‖P_i)) √χ²(P̂_i‖P_i)`` for Gaussian sources and their perturbations ``perturbed``.

    ``factor = max_i √(1 + χ²(Q‖P_i))`` bounds ``amplification_l2``; may be ``inf`` (OOD).
    Raises :class:`~closed_form.errors.ImproperCompositionError` if the perturbed composition is improper.
    """
    w = np.asarray(weights, dtype=np.float64)
    q = compose(sources, w).target
    q_hat = compose(perturbed, w).target
    tv_q = total_variation_gaussians(q, q_hat)
    tv_src = np.array([total_variation_gaussians(p, p_hat) for p, p_hat in zip(sources, perturbed)])
    u = np.sqrt(np.array([float(chi2(p_hat, p)) for p, p_hat in zip(sources, perturbed)]))
    ress = np.array([ress_inverse(q, p) for p in sources])
    with np.errstate(invalid="ignore"):
        bound = float(np.sum(np.abs(w) * np.sqrt(ress) * u))
        a_l2 = tv_q / float(np.sum(np.abs(w) * u))
    return SensitivityBound(
        tv_target=tv_q,
        bound=bound,
        tv_sources=tv_src,
        u_norms=u,
        ress_inverse=ress,
        amplification=tv_q / float(np.sum(tv_src)),
        amplification_l2=a_l2,
        factor=float(np.sqrt(np.max(ress))),
    )
