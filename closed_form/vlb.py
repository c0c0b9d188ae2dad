r"""The paired DDPM variational-bound estimator of ``log P^a(x) − log P^0(x)``, exactly, for Gaussian sources.

The revision estimates density ratios on images as a difference of two discrete DDPM bounds evaluated with the same
noise, ``log P^a(x) − log P^0(x) ≈ L_0(x) − L_a(x)``, with

.. math:: L_c(x) = \sum_{j \in T} w_j\, \mathbb E_ε\lVert ε − ε_c(x_j, j)\rVert^2,\qquad
          w_j = \frac{β_j}{2(1 − β_j)(1 − \bar α_{j−1})},\qquad x_j = \sqrt{\bar α_j}\,x + \sqrt{1 − \bar α_j}\,ε,

over the steps ``T`` whose log-SNR ``λ_j = log(ᾱ_j/(1 − ᾱ_j))`` lies in a window (step 0 and steps whose cell
touches zero SNR excluded). Their Monte Carlo over ``(j, ε)`` is unbiased for this sum, so the sum is what the
estimator measures; here it is computed exactly. For a Gaussian source ``N(μ, Σ)`` the exact ε-predictor is
``ε_c(x_j) = σ_j C_j^{-1}(x_j − a_j μ)`` (``a_j = √ᾱ_j``, ``σ_j² = 1 − ᾱ_j``, ``C_j = a_j²Σ + σ_j² I``), hence

.. math:: \mathbb E_ε\lVert ε − ε_c(x_j)\rVert^2 = \operatorname{tr}\big((I − σ_j^2C_j^{-1})^2\big)
          + σ_j^2 a_j^2\,(x − μ)^\top C_j^{-2}(x − μ),

a quadratic in ``x``; so is the whole estimator, and so is its error against the exact log ratio. Since
``2w_j = e^{λ_{j−1} − λ_j} − 1``, the sum is a first-order quadrature of ``½∫ (mmse_0 − mmse_a) dλ``, which equals
the log ratio exactly over the whole line (the pointwise I-MMSE identity; ``paper_notes.md``).

Everything here is NumPy float64 on concrete arrays; a :class:`Quadratic` is ``f(x) = xᵀAx + bᵀx + c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian

#: The authors' log-SNR windows: ``trimmed`` maps to steps 100..900 and ``full`` to 1..997 of their schedule.
VLB_WINDOWS = {"trimmed": (-9.2, 2.15), "full": (-20.0, 20.0)}


class Quadratic(NamedTuple):
    """``f(x) = xᵀ A x + bᵀ x + c`` (``A`` symmetric)."""

    a: np.ndarray
    b: np.ndarray
    c: float

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.einsum("...i,ij,...j->...", x, self.a, x) + x @ self.b + self.c

    def __sub__(self, other: "Quadratic") -> "Quadratic":
        return Quadratic(self.a - other.a, self.b - other.b, self.c - other.c)

    def __add__(self, other: "Quadratic") -> "Quadratic":
        return Quadratic(self.a + other.a, self.b + other.b, self.c + other.c)

    def mean_sd_under(self, law: Gaussian) -> tuple[float, float]:
        r"""Mean and standard deviation of ``f(x)``, ``x ~ N(m, S)``: with ``x = m + z``,
        ``E f = tr(AS) + f(m)`` and ``Var f = 2 tr((AS)²) + (2Am + b)ᵀ S (2Am + b)``."""
        m, s = np.asarray(law.mean), np.asarray(law.cov)
        as_ = self.a @ s
        g = 2.0 * self.a @ m + self.b
        return float(np.trace(as_) + self(m)), float(math.sqrt(max(2.0 * np.trace(as_ @ as_) + g @ s @ g, 0.0)))

    def log_mean_exp_under(self, law: Gaussian, k: float = 1.0) -> float:
        r"""``log E exp(k f(x))`` for ``x ~ N(m, S)``; ``+inf`` unless ``P = S⁻¹ − 2kA ≻ 0``. With
        ``h = S⁻¹m + kb``: ``kc − ½log|S| − ½log|P| − ½mᵀS⁻¹m + ½hᵀP⁻¹h``."""
        m, s = np.asarray(law.mean), np.asarray(law.cov)
        s_inv = np.linalg.inv(s)
        p = s_inv - 2.0 * k * self.a
        p = 0.5 * (p + p.T)
        if np.linalg.eigvalsh(p)[0] <= 0:
            return float("inf")
        h = s_inv @ m + k * self.b
        return float(k * self.c - 0.5 * np.linalg.slogdet(s)[1] - 0.5 * np.linalg.slogdet(p)[1]
                     - 0.5 * m @ s_inv @ m + 0.5 * h @ np.linalg.solve(p, h))


def _rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. (2024), Algorithm 1: shift and scale ``√ᾱ`` so that the last step has zero SNR and the first is
    unchanged, then recover the betas."""
    sqrt_abar = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_abar[0], sqrt_abar[-1]
    sqrt_abar = (sqrt_abar - last) * first / (first - last)
    abar = sqrt_abar**2
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


@dataclass(frozen=True)
class DiscreteDDPMSchedule:
    r"""A discrete DDPM schedule by its ``ᾱ_j`` (``j = 0..n−1``); the default is the authors': 1000 linear betas
    from ``1e-4`` to ``0.02``, rescaled to zero terminal SNR (computed here in float64; their framework computes the
    betas in float32, a relative difference of order 1e-7)."""

    alphas_cumprod: tuple

    @classmethod
    def authors(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DiscreteDDPMSchedule":
        betas = _rescale_zero_terminal_snr(np.linspace(beta_start, beta_end, n))
        return cls(tuple(np.cumprod(1.0 - betas).tolist()))

    @property
    def abar(self) -> np.ndarray:
        return np.clip(np.asarray(self.alphas_cumprod, dtype=np.float64), 0.0, 1.0)

    @property
    def log_snr(self) -> np.ndarray:
        """``λ_j = log ᾱ_j − log(1 − ᾱ_j)`` (``−inf`` at zero SNR)."""
        a = self.abar
        with np.errstate(divide="ignore"):
            return np.log(a) - np.log1p(-a)

    @property
    def vlb_weight(self) -> np.ndarray:
        r"""``w_j = β_j/(2(1 − β_j)(1 − ᾱ_{j−1})) = ½(e^{λ_{j−1} − λ_j} − 1)`` (``ᾱ_{−1} = 1``: infinite at 0)."""
        a = self.abar
        prev = np.concatenate([[1.0], a[:-1]])
        beta = 1.0 - a / prev
        with np.errstate(divide="ignore", invalid="ignore"):
            return beta / (2.0 * (1.0 - beta) * (1.0 - prev))

    def window(self, lam_min: float, lam_max: float) -> tuple[int, int]:
        """First and last step ``(j_lo, j_hi)`` with ``λ_j`` in ``[lam_min, lam_max]``, excluding step 0 and any
        step whose next cell edge has zero SNR (the authors' rule).

        Raises
        ------
        CatcompError
            When fewer than two steps qualify.
        """
        lam = self.log_snr
        ok = np.where(np.isfinite(lam) & (lam <= lam_max) & (lam >= lam_min))[0]
        ok = ok[ok > 0]
        if len(ok) < 2:
            raise CatcompError(f"log-SNR window [{lam_min}, {lam_max}] holds fewer than two usable steps.")
        j_lo, j_hi = int(ok.min()), int(ok.max())
        while j_hi > j_lo and not (j_hi + 1 < len(lam) and np.isfinite(lam[j_hi + 1])):
            j_hi -= 1
        return j_lo, j_hi


def _sq_error_sums(source: Gaussian, a2: np.ndarray, s2: np.ndarray, w: np.ndarray) -> Quadratic:
    r"""``Σ_j w_j E‖ε − ε_c(x_j)‖²`` as a quadratic in ``x`` for the exact predictor of ``source`` at steps with
    ``a_j² = a2``, ``σ_j² = s2``, in the eigenbasis ``Σ = U diag(ℓ) Uᵀ`` (``C_j`` shares it)."""
    ell, u = np.linalg.eigh(np.asarray(source.cov))
    denom = a2[:, None] * ell[None, :] + s2[:, None]  # eigenvalues of C_j, (J, d)
    trace_m2 = np.sum((a2[:, None] * ell[None, :] / denom) ** 2, axis=1)  # tr((I − σ²C⁻¹)²)
    k_diag = np.sum(w[:, None] * s2[:, None] * a2[:, None] / denom**2, axis=0)  # Σ_j w_j σ²a² C⁻² (eigenvalues)
    k = (u * k_diag) @ u.T
    mu = np.asarray(source.mean)
    return Quadratic(k, -2.0 * k @ mu, float(np.sum(w * trace_m2) + mu @ k @ mu))


def vlb_log_ratio(numerator: Gaussian, denominator: Gaussian, schedule: DiscreteDDPMSchedule | None = None,
                  window: str | tuple = "full") -> Quadratic:
    r"""The expected value of the paired estimator ``L_den(x) − L_num(x)`` of ``log P^num(x) − log P^den(x)`` with
    exact ε-predictors, as a quadratic in ``x`` (module doc), over ``window`` (a name of :data:`VLB_WINDOWS` or a
    ``(λ_min, λ_max)`` pair) of ``schedule`` (default: :meth:`DiscreteDDPMSchedule.authors`)."""
    schedule = schedule or DiscreteDDPMSchedule.authors()
    lam_min, lam_max = VLB_WINDOWS[window] if isinstance(window, str) else window
    j_lo, j_hi = schedule.window(lam_min, lam_max)
    j = np.arange(j_lo, j_hi + 1)
    a2 = schedule.abar[j]
    s2 = 1.0 - a2
    w = schedule.vlb_weight[j]
    return _sq_error_sums(denominator, a2, s2, w) - _sq_error_sums(numerator, a2, s2, w)


def _mmse(source: Gaussian, a2: np.ndarray, s2: np.ndarray, x) -> np.ndarray:
    """``E_ε‖ε − ε_c(x_j)‖²`` at each ``(a_j², σ_j²)`` for one point ``x`` (module doc), shape ``a2.shape``."""
    ell, u = np.linalg.eigh(np.asarray(source.cov))
    y = u.T @ (np.asarray(x, dtype=np.float64) - np.asarray(source.mean))
    denom = a2[:, None] * ell[None, :] + s2[:, None]
    return np.sum((a2[:, None] * ell[None, :] / denom) ** 2 + s2[:, None] * a2[:, None] * y**2 / denom**2, axis=1)


def mmse_gap(numerator: Gaussian, denominator: Gaussian, lam, x) -> np.ndarray:
    r"""``mmse_den(x, λ) − mmse_num(x, λ)`` with ``mmse_c(x, λ) = E_ε‖ε − ε_c(x_λ)‖²`` at log-SNRs ``λ``
    (``ᾱ = sigmoid(λ)``): the integrand of the continuous identity ``log P^num − log P^den = ½∫ (…) dλ``."""
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    a2, s2 = 1.0 / (1.0 + np.exp(-lam)), 1.0 / (1.0 + np.exp(lam))
    return _mmse(denominator, a2, s2, x) - _mmse(numerator, a2, s2, x)


def discretization_bound(numerator: Gaussian, denominator: Gaussian, x, schedule=None, window="full",
                         points_per_cell: int = 9) -> float:
    r"""A bound on ``|Σ_j w_j g(λ_j) − ½∫_{λ_{j_hi}}^{λ_{j_lo − 1}} g dλ|`` for ``g`` = :func:`mmse_gap` at ``x``:
    step ``j`` owns the cell ``[λ_j, λ_{j−1}]`` of width ``Δ_j`` and weight ``w_j = ½(e^{Δ_j} − 1)``, so

    .. math:: \Big|w_j g(λ_j) − \tfrac12\int_{cell} g\Big| ≤ \tfrac12(e^{Δ_j} − 1 − Δ_j)|g(λ_j)|
              + \tfrac12 Δ_j \operatorname{osc}_{cell}\, g,

    with the oscillation of ``g`` on each cell taken over ``points_per_cell`` equally spaced points (``g`` is smooth
    on the scale of a cell). The window's tails ``½∫`` outside it are not part of this bound."""
    schedule = schedule or DiscreteDDPMSchedule.authors()
    lam_min, lam_max = VLB_WINDOWS[window] if isinstance(window, str) else window
    j_lo, j_hi = schedule.window(lam_min, lam_max)
    lam = schedule.log_snr
    j = np.arange(j_lo, j_hi + 1)
    width = lam[j - 1] - lam[j]
    frac = np.linspace(0.0, 1.0, points_per_cell)
    grid = lam[j][:, None] + width[:, None] * frac[None, :]
    g = mmse_gap(numerator, denominator, grid.ravel(), x).reshape(grid.shape)
    osc = g.max(axis=1) - g.min(axis=1)
    return float(np.sum(0.5 * (np.expm1(width) - width) * np.abs(g[:, 0]) + 0.5 * width * osc))


def exact_log_ratio(numerator: Gaussian, denominator: Gaussian) -> Quadratic:
    """``log P^num(x) − log P^den(x)`` as a quadratic in ``x``."""
    def parts(g):
        prec = np.linalg.inv(np.asarray(g.cov))
        mu = np.asarray(g.mean)
        return Quadratic(-0.5 * prec, prec @ mu, float(-0.5 * mu @ prec @ mu - 0.5 * np.linalg.slogdet(g.cov)[1]))

    return parts(numerator) - parts(denominator)


def composition_log_weight_estimates(sources, window: str | tuple = "full", schedule=None) -> list[Quadratic]:
    r"""The authors' estimated log importance weights for ``Q ∝ P_A P_B / P_0`` (sources ``(P_A, P_B, P_0)``), each a
    quadratic: ``d_A0 + d_B0`` for ``P_0`` draws, ``d_B0`` for ``P_A`` draws, ``d_A0`` for ``P_B`` draws, with
    ``d_c0`` the :func:`vlb_log_ratio` of ``P_c`` to ``P_0``; returned in the order ``(A, B, 0)``."""
    p_a, p_b, p_0 = sources
    d_a = vlb_log_ratio(p_a, p_0, schedule, window)
    d_b = vlb_log_ratio(p_b, p_0, schedule, window)
    return [d_b, d_a, d_a + d_b]


def composition_log_weights_exact(sources) -> list[Quadratic]:
    """The same log weights with exact log densities, in the order ``(A, B, 0)``."""
    p_a, p_b, p_0 = sources
    r_a, r_b = exact_log_ratio(p_a, p_0), exact_log_ratio(p_b, p_0)
    return [r_b, r_a, r_a + r_b]


def population_log_ress_inverse(log_weight: Quadratic, law: Gaussian) -> float:
    r"""``log(E w² / (E w)²)`` under ``law`` for ``w = exp(log_weight)``: the infinite-sample value of the
    self-normalized ``−log rESS`` with these log weights (``+inf`` when ``E w²`` diverges)."""
    two = log_weight.log_mean_exp_under(law, 2.0)
    one = log_weight.log_mean_exp_under(law, 1.0)
    return float("inf") if not np.isfinite(two) else two - 2.0 * one


__all__ = ["DiscreteDDPMSchedule", "Quadratic", "VLB_WINDOWS", "composition_log_weight_estimates",
           "composition_log_weights_exact", "discretization_bound", "exact_log_ratio", "mmse_gap", "population_log_ress_inverse",
           "vlb_log_ratio"]
