"""Input validation shared by the closed forms and the samplers built on them.

Each check raises a specific :class:`~closed_form.errors.CatcompError` subclass whose message says what would be
valid. Checks run only on concrete arrays: inside ``jax.jit`` the values are tracers and cannot be inspected, so validation
happens when objects are built from user input and is skipped when JAX rebuilds them from their leaves.
"""

from __future__ import annotations

import jax
import numpy as np

from closed_form.errors import (
    CatcompError,
    InvalidTimeError,
    NonFiniteInputError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)


def is_concrete(*arrays) -> bool:
    """True when none of ``arrays`` is a JAX tracer, so their values may be read."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


#: What a compiled closed-form function takes as an argument as it is (anything else — a list, a closure — is not).
ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, float, int)


def is_concrete_array(x) -> bool:
    """An array or number whose value may be read (not a tracer)."""
    return isinstance(x, ARRAY_TYPES) and not isinstance(x, jax.core.Tracer)


def is_array_tree(tree) -> bool:
    """Every leaf of ``tree`` is an array or a number (a closure is its own, non-array, leaf); tracers included."""
    return all(isinstance(leaf, ARRAY_TYPES) for leaf in jax.tree_util.tree_leaves(tree))


def is_concrete_array_tree(tree) -> bool:
    """Every leaf of ``tree`` is a concrete array or number (no tracer, no closure)."""
    return all(is_concrete_array(leaf) for leaf in jax.tree_util.tree_leaves(tree))


# Whether the caller runs inside a transformation. A closure can hold a caller's traced values without showing them
# in any argument, so the closed forms that compile their own programs for concrete calls ask JAX directly (private
# functions of jax < 0.11; without them, "traced" is assumed and the code runs as it is, inside the caller's trace).
def under_a_jit() -> bool:
    """``jax.jit`` is tracing the caller (an op-by-op ``vmap`` is not a jit); ``True`` when unknown."""
    try:
        from jax._src.core import unsafe_am_i_under_a_jit
    except ImportError:  # pragma: no cover - a JAX without it
        return True
    return unsafe_am_i_under_a_jit()


def under_a_trace() -> bool:
    """Some JAX transformation (``jit``, ``vmap``, ``grad``) is tracing the caller; ``True`` when unknown."""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover - a JAX without it
        return True
    return not trace_state_clean()


def check_finite(x, name: str) -> None:
    """Raise :class:`NonFiniteInputError` if concrete ``x`` holds NaN or inf."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteInputError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf); every entry must be a finite real number."
        )


def check_points(x, dim: int, name: str = "x") -> None:
    """Check that ``x`` has shape ``(..., dim)`` and is finite."""
    shape = np.shape(x)
    if len(shape) == 0 or shape[-1] != dim:
        raise ShapeMismatchError(
            f"{name} has shape {shape}; expected shape (..., {dim}) with the last axis the dimension {dim}."
        )
    check_finite(x, name)


def check_covariance(cov, dim: int, name: str = "cov") -> None:
    """Check that ``cov`` is a finite, symmetric positive-definite ``(dim, dim)`` matrix."""
    shape = np.shape(cov)
    if shape != (dim, dim):
        raise ShapeMismatchError(f"{name} has shape {shape}; expected ({dim}, {dim}) to match the mean.")
    check_finite(cov, name)
    if not is_concrete(cov):
        return
    c = np.asarray(cov, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(c))))
    asym = float(np.max(np.abs(c - c.T)))
    if asym > 1e-10 * scale:
        raise NotPositiveDefiniteError(
            f"{name} is not symmetric (max |C - Cᵀ| = {asym:.3g}); a covariance must be symmetric positive definite."
        )
    eig = np.linalg.eigvalsh(0.5 * (c + c.T))
    # Below this the matrix is singular to working precision: roundoff alone can make a zero eigenvalue positive.
    tol = 10.0 * dim * np.finfo(np.float64).eps * max(float(np.max(np.abs(eig))), np.finfo(np.float64).tiny)
    if eig[0] <= tol:
        raise NotPositiveDefiniteError(
            f"{name} has smallest eigenvalue {eig[0]:.6g} (≤ {tol:.3g}, zero to working precision); a covariance "
            "must be symmetric positive definite (all eigenvalues > 0)."
        )


def check_time(schedule, t) -> None:
    """Check that a concrete time lies in ``[0, schedule.T]``."""
    if not is_concrete(t):
        return
    arr = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteInputError("t is not finite; a diffusion time must be a finite number in [0, T].")
    if np.any(arr < 0.0) or np.any(arr > schedule.T):
        raise InvalidTimeError(f"t = {arr} lies outside the schedule's domain [0, {schedule.T}].")


def check_weights_for(items, weights, what: str) -> tuple:
    """Composition weights for ``items`` (a tuple of ``what``, e.g. "score function"): a finite vector with one
    weight per item, at least one. Returns them as Python floats.

    Raises
    ------
    ShapeMismatchError
        When ``weights`` is not a vector or the counts differ or are zero.
    NonFiniteInputError
        For NaN or infinite weights.
    """
    if np.ndim(weights) != 1:
        raise ShapeMismatchError(f"weights has shape {np.shape(weights)}; expected a vector, one weight per {what}.")
    if len(items) == 0 or len(items) != len(weights):
        raise ShapeMismatchError(
            f"got {len(items)} {what}(s) and {len(weights)} weight(s); pass one weight per {what} (at least one)."
        )
    check_finite(np.asarray(weights, dtype=np.float64), "weights")
    return tuple(float(w) for w in np.asarray(weights, dtype=np.float64))


def check_error_size(eps) -> None:
    """Check a training-side score-error size ``ε``: a finite number ``≥ 0`` (:class:`CatcompError` otherwise)."""
    if not (np.isfinite(eps) and eps >= 0):
        raise CatcompError(f"the training-side error ε must be a finite number ≥ 0, got {eps!r}.")


__all__ = ["check_covariance", "check_error_size", "check_finite", "check_points", "check_time", "check_weights_for",
           "is_concrete"]
