r"""Adaptive cubature of unnormalized densities in one and two dimensions.

Used as an independent route to normalizing constants and moments: ``∫ e^{f(x)} [1, u, u uᵀ] dx`` over a box, with
``u = (x − c)/h`` the coordinates scaled to ``[−1, 1]``, by SciPy's adaptive Gauss–Kronrod cubature
(``scipy.integrate.cubature``). The integrand is shifted by its maximum on a coarse grid so that nothing under- or
overflows, and the absolute tolerance is ``rtol`` times a rough estimate of the mass, so that moments that vanish by
symmetry still converge.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import cubature


def gaussian_box(gaussians, n_std: float = 15.0):
    """The smallest box holding ``mean ± n_std·sqrt(diag cov)`` of every ``(mean, cov)`` pair."""
    lows = [np.asarray(m) - n_std * np.sqrt(np.diag(c)) for m, c in gaussians]
    highs = [np.asarray(m) + n_std * np.sqrt(np.diag(c)) for m, c in gaussians]
    return np.min(lows, axis=0), np.max(highs, axis=0)


def integrate_density(logf, lower, upper, rtol: float = 1e-10):
    r"""``(log Z, mean, cov)`` of the density ``∝ exp(logf)`` restricted to the box ``[lower, upper]``.

    ``logf`` maps points ``(n, d)`` to ``(n,)``.
    """
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    d = lower.shape[0]
    c, h = 0.5 * (upper + lower), 0.5 * (upper - lower)
    grid = np.stack(np.meshgrid(*[np.linspace(lo, hi, 201) for lo, hi in zip(lower, upper)]), -1).reshape(-1, d)
    log_grid = np.asarray(logf(grid))
    shift = float(np.max(log_grid))
    z_rough = float(np.sum(np.exp(log_grid - shift)) * np.prod((upper - lower) / 200.0))

    def integrand(x):
        dens = np.exp(np.asarray(logf(x)) - shift)
        u = (x - c) / h
        outer = np.einsum("ni,nj->nij", u, u).reshape(x.shape[0], d * d)
        return dens[:, None] * np.concatenate([np.ones((x.shape[0], 1)), u, outer], axis=1)

    res = cubature(integrand, lower, upper, rtol=rtol, atol=rtol * z_rough, max_subdivisions=200_000)
    if res.status != "converged":
        raise RuntimeError(f"cubature did not converge to rtol={rtol} (estimated error {np.max(res.error):.3g}).")
    z = res.estimate[0]
    mean_u = res.estimate[1 : 1 + d] / z
    cov_u = res.estimate[1 + d :].reshape(d, d) / z - np.outer(mean_u, mean_u)
    return float(np.log(z) + shift), c + h * mean_u, cov_u * np.outer(h, h)


def integrate_function(f, lower, upper, rtol: float = 1e-9, atol: float = 0.0) -> float:
    """``∫ f`` over a box by adaptive cubature; ``f`` maps points ``(n, d)`` to ``(n,)``."""
    res = cubature(lambda x: np.asarray(f(x))[:, None], np.asarray(lower, float), np.asarray(upper, float),
                   rtol=rtol, atol=atol, max_subdivisions=200_000)
    if res.status != "converged":
        raise RuntimeError(f"cubature did not converge to rtol={rtol} (estimated error {np.max(res.error):.3g}).")
    return float(res.estimate[0])


def gaussian_logpdf_numpy(mean, cov):
    r"""``x ↦ log N(x; μ, Σ) = −½(x − μ)ᵀΣ⁻¹(x − μ) − ½log det Σ − (d/2) log 2π`` for points ``x`` of shape
    ``(n, d)``, in plain NumPy.

    For cubature, which calls its integrand thousands of times on a few hundred points: a compiled JAX call costs
    ~0.2 ms there on an idle machine but 7–20 ms when the cores are oversubscribed (its thread pool waits for them;
    measured on the project's shared 2-core machine), while this costs ~30 µs either way.
    """
    mean, cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    prec = np.linalg.inv(cov)
    prec = 0.5 * (prec + prec.T)
    const = -0.5 * np.linalg.slogdet(cov)[1] - 0.5 * mean.shape[0] * np.log(2.0 * np.pi)

    def logpdf(x):
        r = np.asarray(x, dtype=np.float64) - mean
        return -0.5 * np.einsum("ni,ij,nj->n", r, prec, r) + const

    return logpdf


def cubature_logpdf(dist):
    """``x ↦ log dist(x)`` for cubature integrands, points ``(n, d)`` to ``(n,)`` as NumPy: :func:`gaussian_logpdf_numpy`
    for a :class:`~closed_form.Gaussian`, ``log Σ_k π_k N(x; μ_k, Σ_k)`` by log-sum-exp of those for a
    :class:`~closed_form.GaussianMixture` (zero-weight components drop out), the jitted ``dist.logpdf`` otherwise."""
    from scipy.special import logsumexp

    from closed_form.gaussian import Gaussian
    from closed_form.mixture import GaussianMixture

    if isinstance(dist, Gaussian):
        return gaussian_logpdf_numpy(dist.mean, dist.cov)
    if isinstance(dist, GaussianMixture):
        with np.errstate(divide="ignore"):  # log 0 = −inf for a zero-weight component
            log_w = np.log(np.asarray(dist.weights, dtype=np.float64))
        parts = [gaussian_logpdf_numpy(m, c) for m, c in zip(np.asarray(dist.means), np.asarray(dist.covs))]
        return lambda x: logsumexp(np.stack([lw + lp(x) for lw, lp in zip(log_w, parts)]), axis=0)
    import jax

    jitted = jax.jit(dist.logpdf)
    return lambda x: np.asarray(jitted(x))


def total_variation(p, q, rtol: float = 1e-8) -> float:
    r"""``TV(p, q) = ½∫|p − q|`` between two distributions with ``.logpdf`` and ``.mean``/``.cov`` in 1-D or 2-D, by
    adaptive cubature over the box holding ``±15`` standard deviations of both, to relative tolerance ``rtol`` (and
    absolute ``1e-3·rtol``). The kink of ``|p − q|`` limits the attainable accuracy to about ``1e-8`` absolute.
    Log-densities by :func:`cubature_logpdf`."""
    lower, upper = gaussian_box([(np.asarray(p.mean), np.asarray(p.cov)), (np.asarray(q.mean), np.asarray(q.cov))])
    lp, lq = cubature_logpdf(p), cubature_logpdf(q)
    return 0.5 * integrate_function(lambda x: np.abs(np.exp(lp(x)) - np.exp(lq(x))), lower, upper, rtol=rtol, atol=1e-3 * rtol)
