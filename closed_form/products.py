r"""Products of powers of Gaussian densities, in closed form.

For factors ``N(x; μ_f, Σ_f)`` with real exponents ``w_f`` (precisions ``Λ_f = Σ_f⁻¹``),

.. math:: \prod_f N(x; μ_f, Σ_f)^{w_f} = e^{c}\, N(x; Λ^{-1}η, Λ^{-1}),\qquad
          Λ = \sum_f w_f Λ_f,\quad η = \sum_f w_f Λ_f μ_f,

.. math:: c = \tfrac12 η^\top Λ^{-1} η + \tfrac12\log\lvert 2π Λ^{-1}\rvert
              - \tfrac12 \sum_f w_f\big(μ_f^\top Λ_f μ_f + \log\lvert 2π Σ_f\rvert\big),

valid when ``Λ ≻ 0`` (complete the square in the exponent). This one identity gives the geometric composition of
Gaussians, the product of Gaussian mixtures (one term per tuple of components) and the rejection envelopes of
:mod:`closed_form.composition`. Computed in NumPy float64 on concrete arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianPowerProduct(NamedTuple):
    """``Π_f N_f^{w_f} = exp(log_const) · N(mean, cov)``; ``precision = Σ_f w_f Λ_f``."""

    precision: np.ndarray
    mean: np.ndarray | None
    cov: np.ndarray | None
    log_const: float | None
    min_eigenvalue: float
    min_direction: np.ndarray


def gaussian_power_product(exponents, means, covs) -> GaussianPowerProduct:
    """Closed form of ``Π_f N(x; means[f], covs[f])^{exponents[f]}``.

    When the combined precision is not positive definite, ``mean``, ``cov`` and ``log_const`` are ``None`` and
    ``min_eigenvalue``/``min_direction`` say why.
    """
    w = np.asarray(exponents, dtype=np.float64)
    mus = np.asarray(means, dtype=np.float64)
    sig = np.asarray(covs, dtype=np.float64)
    d = mus.shape[-1]
    precs = np.linalg.inv(sig)
    lam = np.einsum("f,fij->ij", w, precs)
    lam = 0.5 * (lam + lam.T)
    eig, vec = np.linalg.eigh(lam)
    if eig[0] <= 0.0:
        return GaussianPowerProduct(lam, None, None, None, float(eig[0]), vec[:, 0])
    eta = np.einsum("f,fij,fj->i", w, precs, mus)
    cov = (vec / eig) @ vec.T
    mean = cov @ eta
    _, logdet_sig = np.linalg.slogdet(sig)
    quad = np.einsum("fi,fij,fj->f", mus, precs, mus)
    log_const = (
        0.5 * eta @ mean
        + 0.5 * (d * LOG_2PI - np.sum(np.log(eig)))
        - 0.5 * np.sum(w * (quad + d * LOG_2PI + logdet_sig))
    )
    return GaussianPowerProduct(lam, mean, 0.5 * (cov + cov.T), float(log_const), float(eig[0]), vec[:, 0])
