r"""Monte Carlo estimators with standard errors, for what has no closed form (mixtures) or is random by design.

* OOD quantifiers under draws of the target (the exact Gaussian ones are :mod:`closed_form.ood`):
  :func:`ress_inverse_monte_carlo` (``1 + χ²(Q‖P) = E_Q[Q/P]``), :func:`hdr_log_density_threshold` and
  :func:`fraction_outside_hdr_monte_carlo` (binomial standard errors), each as a :class:`MonteCarloEstimate`;
* :func:`fit_gaussian_mle`, maximum-likelihood refits of a source from ``n`` draws [paper, revision];
* the DSM excess of a mixture's misspecification, :func:`mixture_dsm_excess_monte_carlo`, and
  :func:`calibrated_mixture_misspecification`, which solves for the misspecification strength that makes it ``ε²``
  (the exact error model itself, :class:`~closed_form.perturbations.MixtureMisspecificationError`, is in
  :mod:`closed_form.perturbations`).

Every estimator takes an explicit ``jax.random`` key (or draws made from one) and states its standard error.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian
from closed_form.mixture import GaussianMixture
from closed_form.ood import gaussian_hdr_threshold
from closed_form.perturbations import MixtureMisspecificationError, misspecified_mixture
from closed_form.schedules import diffused_covariance
from closed_form.score_matching import gauss_legendre
from closed_form.validation import check_error_size


class MonteCarloEstimate(NamedTuple):
    """A Monte Carlo estimate with its standard error and sample size."""

    value: float
    stderr: float
    n: int


def _as_array(a):
    """``a`` as a JAX array of its own dtype (a NumPy array is transferred, not converted by a compiled program)."""
    return a if isinstance(a, jax.Array) else jnp.asarray(a, dtype=np.asarray(a).dtype)


def ress_inverse_monte_carlo(log_q, p, samples_q) -> MonteCarloEstimate:
    r"""``1 + χ²(Q‖P) = E_Q[Q/P]`` from draws ``samples_q`` of ``Q``; ``log_q`` is ``Q``'s *normalized* log density.

    The standard error is ``std(Q/P)/√n``; it is itself unreliable when ``E_Q[(Q/P)²]`` is infinite, which the
    caller should rule out (e.g. by the tail precisions).
    """
    x = _as_array(samples_q)
    r = np.exp(np.asarray(log_q(x)) - np.asarray(p.logpdf(x)))
    return MonteCarloEstimate(float(r.mean()), float(r.std(ddof=1) / np.sqrt(r.size)), int(r.size))


def hdr_log_density_threshold(p, key, level: float = 0.95, n: int = 200_000) -> float:
    r"""The log-density level ``ℓ`` with ``P(log p(X) ≥ ℓ) = level``: the ``1 − level`` quantile of ``log p(X)``,
    ``X ~ P``. Exact for a Gaussian (chi-square quantile); Monte Carlo (``n`` draws) for a mixture."""
    if isinstance(p, Gaussian):
        const = -0.5 * p.dim * np.log(2 * np.pi) - 0.5 * float(p.logdet_cov)
        return const - 0.5 * gaussian_hdr_threshold(p.dim, level)
    logp = np.asarray(p.logpdf(p.sample(key, n)))
    return float(np.quantile(logp, 1.0 - level))


def fraction_outside_hdr_monte_carlo(samples_q, sources, thresholds) -> dict:
    r"""Monte Carlo fractions of draws of ``Q`` outside each source's HDR (``log p_i(x) < ℓ_i``) and outside all
    of them at once, each as a :class:`MonteCarloEstimate` (binomial standard error)."""
    x = _as_array(samples_q)
    outside = np.stack([np.asarray(p.logpdf(x)) < thr for p, thr in zip(sources, thresholds)])
    n = x.shape[0]

    def est(flags):
        f = float(flags.mean())
        return MonteCarloEstimate(f, float(np.sqrt(max(f * (1 - f), 1.0 / n) / n)), n)

    return {"each": [est(o) for o in outside], "all": est(np.all(outside, axis=0))}


# ------------------------------------------------------------------------------------------------ refits
def fit_gaussian_mle(key, source, n: int) -> Gaussian:
    r"""Maximum-likelihood Gaussian fit to ``n`` draws of ``source``: sample mean and the ``1/n`` sample covariance.
    The paper's revision refits sources this way with ``n = 20,000`` [paper]."""
    if int(n) != n or n <= source.dim:
        raise CatcompError(f"a maximum-likelihood fit in d={source.dim} needs an integer n > d, got {n!r}.")
    return Gaussian(*_mean_and_mle_cov(source.sample(key, int(n))))


@jax.jit
def _mean_and_mle_cov(x):
    """Sample mean and ``1/n`` sample covariance of ``x`` (n, d), in one compiled program per shape."""
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    return mean, xc.T @ xc / x.shape[0]


# -------------------------------------------------------------------------------------- mixture misspecification
def mixture_dsm_excess_monte_carlo(error: MixtureMisspecificationError, key, n_per_node: int = 4000,
                                   n_nodes: int = 16) -> tuple[float, float]:
    r"""``(ε², standard error)`` of ``(1/T)∫₀ᵀ σ_t² E_{q_t}‖δ‖² dt`` for a
    :class:`~closed_form.perturbations.MixtureMisspecificationError` ``δ``: Gauss–Legendre in ``t`` (``n_nodes``),
    ``n_per_node`` exact draws of ``q_t`` at each node; the SE is ``(Σ_k w_k² Var_k / n)^{1/2}/T`` (the quadrature's
    own error is far below it: the integrand is smooth in ``t``). Fixed ``key`` ⇒ common random numbers across calls,
    so the estimate is a smooth function of the misspecification. Uses the mixtures' own scores (compiled once per
    shape), not the error's ``score``/``fitted_score``."""
    nodes, weights, x = _mixture_draws(error.source, error.schedule, key, n_per_node, n_nodes)
    return _excess_on(error, nodes, weights, x)


def _excess_on(error, nodes, weights, x):
    v = np.asarray(_mixture_dsm_terms(error.fitted, error.source, x, jnp.asarray(nodes, dtype=jnp.float64),
                                      error.schedule))
    value = float(np.dot(weights, v.mean(axis=1))) / error.schedule.T
    se = float(np.sqrt(np.dot(weights**2, v.var(axis=1, ddof=1)) / x.shape[1])) / error.schedule.T
    return value, se


def _mixture_draws(source, schedule, key, n_per_node, n_nodes):
    """Gauss–Legendre nodes and weights on ``[0, T]`` and ``n_per_node`` exact draws of ``q_t`` at each node."""
    nodes, weights = gauss_legendre(0.0, float(schedule.T), n_nodes)
    # Stacked in NumPy: no compiled program per stack shape; the values are the draws themselves.
    x = jnp.asarray(np.stack([np.asarray(source.noised(schedule, float(t)).sample(jax.random.fold_in(key, k),
                                                                                  n_per_node))
                              for k, t in enumerate(nodes)]), dtype=jnp.float64)
    return nodes, weights, x


def _diffused_mixture_score(mix, x, t, schedule):
    r"""``∇log q_t(x) = −Σ_k r_k(x) C_k⁻¹(x − α_tμ_k)`` for ``x`` of shape ``(n, d)``, by explicit inverses of the
    ``K`` small covariances ``C_k = α_t²Σ_k + σ_t²I`` (einsum-only, so that it vectorizes well under ``vmap``)."""
    a = schedule.alpha(t)
    covs = diffused_covariance(schedule, mix.covs, t)
    precs = jnp.linalg.inv(covs)
    diff = x[:, None, :] - a * mix.means[None]  # (n, K, d)
    pdiff = jnp.einsum("kij,nkj->nki", precs, diff)
    logdet = jnp.linalg.slogdet(covs)[1]
    log_joint = jnp.log(mix.weights) - 0.5 * (jnp.sum(diff * pdiff, axis=-1) + logdet)
    r = jax.nn.softmax(log_joint, axis=-1)
    return -jnp.einsum("nk,nki->ni", r, pdiff)


@partial(jax.jit, static_argnames=("schedule",))
def _mixture_dsm_terms(fitted, source, x, times, schedule):
    """``σ_t² ‖∇log p̂_t − ∇log q_t‖²`` at the draws ``x[k]`` of node ``times[k]``, shape ``(n_nodes, n)``."""

    def node(xk, tk):
        d = _diffused_mixture_score(fitted, xk, tk, schedule) - _diffused_mixture_score(source, xk, tk, schedule)
        return schedule.sigma2(tk) * jnp.sum(d**2, axis=-1)

    return jax.vmap(node)(x, times)


def calibrated_mixture_misspecification(source: GaussianMixture, schedule, eps: float, key, *,
                                        n_per_node: int = 4000, n_nodes: int = 16, score=None,
                                        fitted_score_of=None) -> MixtureMisspecificationError:
    r""":func:`~closed_form.perturbations.misspecified_mixture` with ``s > 0`` chosen so that the Monte Carlo DSM
    excess equals ``eps²`` (Brent's method on the common-random-numbers estimate of
    :func:`mixture_dsm_excess_monte_carlo`, whose standard error at the solution is stored as ``calibration_se``: the
    training-side ``ε²`` is ``eps²`` up to it). ``fitted_score_of`` maps a fitted mixture to a fast score function."""
    check_error_size(eps)

    def error(s):
        fit = misspecified_mixture(source, s)
        return MixtureMisspecificationError(source, fit, schedule, score=score,
                                            fitted_score=fitted_score_of(fit) if fitted_score_of else None)

    draws = _mixture_draws(source, schedule, key, n_per_node, n_nodes)  # common random numbers for every s

    def excess(s):
        return _excess_on(error(s), *draws)[0] - eps**2

    if eps == 0:
        out = error(0.0)
        out.calibration_se = 0.0
        return out
    hi = 1e-3
    while excess(hi) < 0:
        hi *= 2.0
        if hi > 1e3:
            raise CatcompError(f"no misspecification strength below 1e3 reaches ε = {eps:g}.")
    out = error(brentq(excess, 0.0, hi, xtol=1e-12, rtol=1e-10))
    out.calibration_se = _excess_on(out, *draws)[1]
    return out


__all__ = [
    "MonteCarloEstimate",
    "calibrated_mixture_misspecification",
    "fit_gaussian_mle",
    "fraction_outside_hdr_monte_carlo",
    "hdr_log_density_threshold",
    "mixture_dsm_excess_monte_carlo",
    "ress_inverse_monte_carlo",
]
