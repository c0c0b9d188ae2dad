r"""Score error measured as what training reduces: the denoising score-matching (DSM) excess.

A diffusion model trained with the ε-prediction loss ``E_{t∼U[0,T]} E ‖ε̂(x_t, t) − ε‖²``, ``x_t = α_t x₀ + σ_t ε``,
and read as a score through ``ŝ = −ε̂/σ_t``, exceeds the loss of the exact model by (``paper_notes.md``)

.. math:: ε^2[ŝ] = \frac1T \int_0^T λ(t)\, E_{q_t}\lVert ŝ(x, t) − s(x, t)\rVert^2\,dt,\qquad λ(t) = σ_t^2,

with ``q_t`` the diffused training law and ``s = ∇log q_t``. The same integral with ``q_t`` replaced by another
path of laws (the diffused target ``Q_t``, the geometric path ``π_t``) measures the error where a sampler pays it.

For an affine error ``δ(x, t) = ŝ − s = −A(t)x + b(t)`` under ``N(m, P)`` the inner expectation is exact,
``E‖δ‖² = tr(A P Aᵀ) + ‖−A m + b‖²``; the time integral is Gauss–Legendre on ``[0, T]``. The integrand is smooth
(analytic in ``t`` for the VP schedules' Gaussian paths), so the rule converges geometrically;
:func:`affine_dsm_excess` checks it by comparing ``n`` and ``2n`` nodes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError, QuadratureNotConvergedError
from closed_form.pytree import FrozenPytree
from closed_form.validation import ARRAY_TYPES, under_a_trace


def gauss_legendre(a: float, b: float, n: int):
    """Nodes and weights of the ``n``-point Gauss–Legendre rule on ``[a, b]`` (NumPy float64)."""
    if int(n) != n or n < 1:
        raise CatcompError(f"the number of quadrature nodes must be a positive integer, got {n!r}.")
    if not (np.isfinite(a) and np.isfinite(b) and b > a):
        raise CatcompError(f"the interval must be finite with b > a, got [{a!r}, {b!r}].")
    x, w = np.polynomial.legendre.leggauss(int(n))
    return 0.5 * (b - a) * x + 0.5 * (b + a), 0.5 * (b - a) * w


def affine_sq_norm(a, b, mean, cov):
    r"""``E_{N(mean, cov)}‖−A x + b‖² = tr(A Σ Aᵀ) + ‖−A m + b‖²`` (traceable)."""
    nu = -a @ mean + b
    return jnp.sum((a @ cov) * a) + nu @ nu


def affine_dsm_excess_sq(field, law, schedule, n_nodes: int = 48):
    r"""``ε² = (1/T)∫₀ᵀ σ_t² E_{law(t)}‖−A(t)x + b(t)‖² dt`` by the ``n_nodes``-point Gauss–Legendre rule.

    Parameters
    ----------
    field : callable ``t ↦ (A(t), b(t))``
        The score error ``δ(x, t) = −A(t)x + b(t)``; JAX-traceable in ``t`` (vectorized over the nodes by ``vmap``).
    law : callable ``t ↦ Gaussian``
        The path of laws the error is measured under (the diffused source for the training side).
    schedule : VPSchedule or CosineSchedule
    n_nodes : int

    Returns
    -------
    0-d float64 array; traceable (no convergence check: use :func:`affine_dsm_excess` for a checked value).
    """
    nodes, weights = gauss_legendre(0.0, float(schedule.T), n_nodes)
    compiled = _compiled_excess_sq(field, law, schedule)
    if compiled is not None:
        return compiled(nodes, weights)
    return _excess_sq(field, law, schedule, nodes, weights)


def _excess_sq(field, law, schedule, nodes, weights):
    def integrand(t):
        a, b = field(t)
        g = law(t)
        return schedule.sigma2(t) * affine_sq_norm(a, b, g.mean, g.cov)

    values = jax.vmap(integrand)(jnp.asarray(nodes))
    if isinstance(weights, tuple):  # several rules, their nodes one after another: one value per rule
        out, start = [], 0
        for w in weights:
            out.append(jnp.dot(jnp.asarray(w), values[start:start + w.shape[0]]) / schedule.T)
            start += w.shape[0]
        return tuple(out)
    return jnp.dot(jnp.asarray(weights), values) / schedule.T


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _excess_sq_apply(treedef, schedule, static, dynamic, nodes, weights):
    leaves = [x if s is None else s for s, x in zip(static, dynamic)]
    field, law = jax.tree_util.tree_unflatten(treedef, leaves)
    return _excess_sq(field, law, schedule, nodes, weights)


def _compiled_excess_sq(field, law, schedule):
    """:func:`_excess_sq` as one compiled program when ``field`` and ``law`` hold no traced values and the schedule
    hashes; ``None`` otherwise (traced values: the code runs as it is, inside the caller's trace). The arrays of pytree
    fields and laws (pytree fields, :func:`diffused_path`) are arguments of the program, so it compiles once per
    structure and shapes; a closure is static, so the program compiles once per closure object. Op by op under the
    ``vmap``, every ``jax.numpy`` operation compiled its own small program per shape."""
    from closed_form.fields import _pytree_form

    if under_a_trace():  # a closure may hold the caller's traced values
        return None
    leaves, treedef = jax.tree_util.tree_flatten((_pytree_form(field), law))
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return None
    is_array = [isinstance(x, ARRAY_TYPES) for x in leaves]
    static = tuple(None if a else x for a, x in zip(is_array, leaves))
    dynamic = [x if a else None for a, x in zip(is_array, leaves)]
    try:
        hash((treedef, static, schedule))
    except TypeError:
        return None
    return functools.partial(_excess_sq_apply, treedef, schedule, static, dynamic)


class _DiffusedPath(FrozenPytree):
    """``t ↦ dist.noised(schedule, t)`` as a pytree (leaf: ``dist``; the schedule static)."""

    _leaves = ("dist",)
    _static = ("schedule",)

    def __init__(self, dist, schedule):
        self._set(dist, schedule)

    def __call__(self, t):
        return self.dist.noised(self.schedule, t)


def diffused_path(dist, schedule):
    """The path ``t ↦ dist.noised(schedule, t)`` of a Gaussian diffused by ``schedule``, for ``law`` arguments: unlike a
    ``lambda``, a pytree, so that :func:`affine_dsm_excess_sq` compiles it once per structure and shapes."""
    return _DiffusedPath(dist, schedule)


def affine_dsm_excess(field, law, schedule, n_nodes: int = 48, rtol: float = 1e-12, atol: float = 1e-300) -> float:
    r""":func:`affine_dsm_excess_sq` with a convergence check: the ``n_nodes`` and ``2·n_nodes`` rules must agree to
    ``rtol·|value| + atol``; returns ``ε²`` from the finer rule.

    Raises
    ------
    QuadratureNotConvergedError
        If they do not (increase ``n_nodes``).
    """
    compiled = _compiled_excess_sq(field, law, schedule)
    if compiled is not None:  # both rules from one compiled program
        (x1, w1), (x2, w2) = (gauss_legendre(0.0, float(schedule.T), n) for n in (n_nodes, 2 * n_nodes))
        coarse, fine = (float(v) for v in compiled(np.concatenate([x1, x2]), (w1, w2)))
    else:
        coarse = float(affine_dsm_excess_sq(field, law, schedule, n_nodes))
        fine = float(affine_dsm_excess_sq(field, law, schedule, 2 * n_nodes))
    if not np.isfinite(fine):
        raise CatcompError(f"the DSM integrand is not finite (ε² = {fine}); the error or the law is degenerate.")
    if abs(fine - coarse) > rtol * abs(fine) + atol:
        raise QuadratureNotConvergedError(
            f"Gauss–Legendre with {n_nodes} and {2 * n_nodes} nodes gives ε² = {coarse!r} and {fine!r} (relative "
            f"change {abs(fine - coarse) / max(abs(fine), 1e-300):.2e} > rtol = {rtol:g}); pass a larger n_nodes."
        )
    return fine


__all__ = [
    "affine_dsm_excess",
    "affine_dsm_excess_sq",
    "affine_sq_norm",
    "diffused_path",
    "gauss_legendre",
]
