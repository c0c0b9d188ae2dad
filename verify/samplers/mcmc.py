r"""Langevin MCMC correctors between reverse steps (Du et al. 2023, *Reduce, Reuse, Recycle*).

After each reverse step to time ``t``, a corrector moves every particle with a kernel that leaves the geometric path
``π_t ∝ Π_i (q^i_t)^{w_i}`` invariant (MALA) or approximately invariant (ULA), using the composed score
``S = Σ_i w_i ∇log q^i_t`` and, for MALA, the composed unnormalized log density ``log γ_t = Σ_i w_i log q^i_t``.

* ULA: ``x' = x + ε S(x) + √(2ε) z``. Biased for ``ε > 0``: on ``N(μ, v)`` in 1-D its stationary law is
  ``N(μ, v / (1 − ε/(2v)))`` (solve ``v' = (1 − ε/v)² v' + 2ε``).
* MALA: propose ``y`` by the ULA move and accept with probability
  ``min(1, γ(y) q(x|y) / (γ(x) q(y|x)))``, ``q(y|x) = N(y; x + εS(x), 2εI)``; this Metropolis–Hastings test makes
  ``π_t`` exactly invariant for every ``ε`` (Roberts & Tweedie 1996). The test is per particle.

Inside FKC these moves change no weight: a ``π_t``-invariant kernel maps the weighted cloud targeting ``π_t`` to one
that still targets it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from closed_form.errors import CatcompError, NonFiniteInputError
from verify.samplers.noise import standard_normal


class ULA(NamedTuple):
    """Unadjusted Langevin corrector: ``n_steps`` moves of step size ``step_size`` (a float, or ``t ↦ ε``)."""

    step_size: float | Callable = 0.01
    n_steps: int = 1


class MALA(NamedTuple):
    """Metropolis-adjusted Langevin corrector. ``log_density(x, t)`` is the unnormalized ``log π_t``; ``None`` builds
    it from the score objects (:func:`verify.samplers.scores.path_log_density`)."""

    step_size: float | Callable = 0.01
    n_steps: int = 1
    log_density: Callable | None = None


def check_corrector(corrector) -> None:
    """Raise :class:`CatcompError` for a corrector that is not ``None``, :class:`ULA` or :class:`MALA`, or whose
    settings are invalid."""
    if corrector is None:
        return
    if not isinstance(corrector, (ULA, MALA)):
        raise CatcompError(f"corrector must be None, ULA(...) or MALA(...), got {type(corrector).__name__}.")
    if int(corrector.n_steps) != corrector.n_steps or corrector.n_steps < 1:
        raise CatcompError(f"corrector n_steps must be a positive integer, got {corrector.n_steps!r}.")
    if not callable(corrector.step_size):
        eps = float(corrector.step_size)
        if eps != eps or eps in (float("inf"), float("-inf")):
            raise NonFiniteInputError(f"corrector step_size is {eps}; it must be a finite positive number.")
        if eps <= 0:
            raise CatcompError(f"corrector step_size must be positive, got {eps}.")


def step_size_at(corrector, t):
    """The corrector's step size at time ``t``."""
    return corrector.step_size(t) if callable(corrector.step_size) else corrector.step_size


def ula_step(key, x, t, score_fn, step_size, noise: str = "hash"):
    """One ULA move of every particle in ``x`` (shape ``(..., d)``) toward ``π_t``."""
    z = standard_normal(key, x.shape, noise, x.dtype)
    return x + step_size * score_fn(x, t) + jnp.sqrt(2.0 * step_size) * z


def mala_step(key, x, t, score_fn, log_density_fn, step_size, noise: str = "hash"):
    r"""One MALA move of every particle in ``x`` (shape ``(..., d)``); returns ``(x', accepted)`` with ``accepted``
    of shape ``x.shape[:-1]``.

    .. math:: \log α = \log γ(y) − \log γ(x) − \frac{\lVert x − y − εS(y)\rVert^2 − \lVert y − x − εS(x)\rVert^2}{4ε}.
    """
    k_prop, k_acc = jax.random.split(key)
    s_x = score_fn(x, t)
    y = x + step_size * s_x + jnp.sqrt(2.0 * step_size) * standard_normal(k_prop, x.shape, noise, x.dtype)
    s_y = score_fn(y, t)
    forward = jnp.sum((y - x - step_size * s_x) ** 2, axis=-1)
    backward = jnp.sum((x - y - step_size * s_y) ** 2, axis=-1)
    log_alpha = log_density_fn(y, t) - log_density_fn(x, t) - (backward - forward) / (4.0 * step_size)
    u = jax.random.uniform(k_acc, log_alpha.shape, dtype=x.dtype)
    accepted = jnp.log(u) < log_alpha
    return jnp.where(accepted[..., None], y, x), accepted


def apply_corrector(key, corrector, x, t, score_fn, log_density_fn, noise: str = "hash"):
    """Run ``corrector`` (``n_steps`` moves) on every particle; returns ``(x, mean acceptance rate)`` (1 for ULA)."""
    eps = jnp.asarray(step_size_at(corrector, t), dtype=x.dtype)
    keys = jax.random.split(key, corrector.n_steps)
    if isinstance(corrector, ULA):
        for k in keys:
            x = ula_step(k, x, t, score_fn, eps, noise)
        return x, jnp.ones((), dtype=x.dtype)
    total = jnp.zeros((), dtype=x.dtype)
    for k in keys:
        x, acc = mala_step(k, x, t, score_fn, log_density_fn, eps, noise)
        total = total + jnp.mean(acc.astype(x.dtype))
    return x, total / corrector.n_steps
